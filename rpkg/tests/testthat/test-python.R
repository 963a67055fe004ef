# Finding Python (FUSEMAP_PYTHON, the project's .venv, installFuseMap()'s environment, else an error
# that says what to run), and what reaches R from Python: warnings and training progress.

test_that("the project .venv is found from a folder below the project", {
    root <- tempfile("proj")
    dir.create(file.path(root, ".venv", "bin"), recursive = TRUE)
    dir.create(file.path(root, "a", "b"), recursive = TRUE)
    writeLines(c("[project]", 'name = "fusemap"'), file.path(root, "pyproject.toml"))
    file.create(file.path(root, ".venv", "bin", "python"))
    found <- FuseMap:::.venv_above(file.path(root, "a", "b"))
    expect_identical(found, file.path(normalizePath(root), ".venv", "bin", "python"))
    # another project's .venv is not taken
    writeLines(c("[project]", 'name = "other"'), file.path(root, "pyproject.toml"))
    expect_null(FuseMap:::.venv_above(file.path(root, "a", "b")))
})

test_that("FUSEMAP_PYTHON wins; a wrong one is an error that says what to run", {
    withr_env <- Sys.getenv("FUSEMAP_PYTHON", unset = NA)
    on.exit(if (is.na(withr_env)) Sys.unsetenv("FUSEMAP_PYTHON") else Sys.setenv(FUSEMAP_PYTHON = withr_env))
    Sys.setenv(FUSEMAP_PYTHON = "/nonexistent/python")
    expect_identical(fusemapPython(), "/nonexistent/python")
    # a fresh R process (this one may already run Python) reports the problem and the fix
    rscript <- file.path(R.home("bin"), "Rscript")
    code <- "tryCatch(FuseMap:::.fusemap_py(), error = function(e) cat(conditionMessage(e)))"
    res <- system2(rscript, c("-e", shQuote(code)), stdout = TRUE, stderr = TRUE,
                   env = c("FUSEMAP_PYTHON=/nonexistent/python",
                           paste0("R_LIBS=", paste(.libPaths(), collapse = ":"))))
    msg <- paste(res, collapse = "\n")
    expect_match(msg, "does not exist")
    expect_match(msg, "installFuseMap()", fixed = TRUE)
})

test_that("the reference BLAS, which slows torch inside R about 10x, is recognised from its path", {
    expect_true(FuseMap:::.is_reference_blas("/usr/lib/x86_64-linux-gnu/blas/libblas.so.3.11.0"))
    expect_true(FuseMap:::.is_reference_blas("/usr/lib/R/lib/libRblas.so"))
    expect_false(FuseMap:::.is_reference_blas("/usr/lib/x86_64-linux-gnu/openblas-pthread/libblas.so.3"))
    expect_false(FuseMap:::.is_reference_blas("/usr/lib/x86_64-linux-gnu/atlas/libblas.so.3"))
    expect_false(FuseMap:::.is_reference_blas("/opt/intel/mkl/lib/libmkl_rt.so"))
    expect_false(FuseMap:::.is_reference_blas("/System/Library/Frameworks/Accelerate.framework/libBLAS.dylib"))
    expect_false(FuseMap:::.is_reference_blas(""))
    expect_false(FuseMap:::.is_reference_blas(NA_character_))
})

test_that("R's OpenBLAS runs on one thread during a FuseMap call and gets its threads back after", {
    skip_if_not(fusemapAvailable(), "Python fusemap not available")
    hb <- FuseMap:::.fusemap_py()$hostblas
    before <- hb$host_blas_threads()
    skip_if(is.null(before), "R does not use OpenBLAS here")
    inside <- FuseMap:::.py_call(hb$host_blas_threads(), "reading the BLAS threads")
    expect_identical(as.integer(inside), 1L)
    expect_identical(hb$host_blas_threads(), before)
})

test_that("installFuseMap() checks its arguments before creating anything", {
    envdir <- tempfile("env")
    expect_error(installFuseMap(envdir, python = "/nonexistent/python3"), "does not exist")
    expect_error(installFuseMap(envdir, source = tempfile()), "does not exist")
    nosrc <- tempfile("src")
    dir.create(nosrc)
    expect_error(installFuseMap(envdir, source = nosrc), "without.*pyproject.toml")
    expect_error(installFuseMap(envdir, pip.args = 1), "character vector")
    expect_false(dir.exists(envdir))
    # a folder that is not a virtual environment is never replaced
    other <- tempfile("other")
    dir.create(other)
    writeLines("keep", file.path(other, "notes.txt"))
    root <- FuseMap:::.project_above(getwd())
    skip_if(is.null(root), "not run inside the FuseMap project folder")
    expect_error(installFuseMap(other, source = root), "already exists")
    expect_error(installFuseMap(other, source = root, overwrite = TRUE), "not a Python virtual environment")
    expect_identical(readLines(file.path(other, "notes.txt")), "keep")
    # the managed environment is where fusemapPython() looks, one folder per package version
    expect_match(fusemapEnvDir(), paste0("python-", utils::packageVersion("FuseMap"), "$"))
})

test_that("Python warnings become R warnings; dependencies' deprecation notices are dropped", {
    skip_without_python()
    py <- FuseMap:::.fusemap_py()
    code <- paste("import warnings, fusemap.errors as e",
                  "warnings.warn('check the panels', e.FuseMapWarning)",
                  "warnings.warn('check the panels', e.FuseMapWarning)",
                  "warnings.warn('old API', FutureWarning)", sep = "\n")
    caught <- character(0)
    withCallingHandlers(FuseMap:::.py_call(reticulate::py_run_string(code), "testing"),
                        warning = function(w) {
                            caught <<- c(caught, conditionMessage(w))
                            invokeRestart("muffleWarning")
                        })
    expect_length(caught, 1L)   # the same warning once; the FutureWarning (not fusemap's) dropped
    expect_match(caught, "FuseMapWarning: check the panels")
})

test_that("training reports its progress from R: a line per phase and a closing line", {
    skip_without_python()
    old <- options(FuseMap.progress = TRUE)
    on.exit(options(old))
    msgs <- character(0)
    # (a 2-epoch run leaves sections apart: the mixing warning is expected and not tested here)
    out <- suppressWarnings(withCallingHandlers(
        do.call(fusemap, c(list(toy_spe(n = 120)), FAST)),
        message = function(m) {
            msgs <<- c(msgs, conditionMessage(m))
            invokeRestart("muffleMessage")
        }))
    expect_true(any(grepl("Training FuseMap: .*phase 1", msgs)))
    expect_true(any(grepl("Training FuseMap: 2 epochs in", msgs)))
    # the section-mixing sentence of the run record is shown
    mixing <- S4Vectors::metadata(out)$FuseMap$run$mixing_summary
    expect_true(any(grepl(substr(mixing, 1, 20), msgs, fixed = TRUE)))
    expect_true(nzchar(S4Vectors::metadata(out)$FuseMap$run$mixing_summary))
    # the default model folder is said, and made where options(FuseMap.models) points
    dir <- S4Vectors::metadata(out)$FuseMap$model_dir
    expect_true(any(grepl("Saving the model to", msgs)))
    expect_identical(dirname(dir), normalizePath(getOption("FuseMap.models")))
    expect_true(file.exists(file.path(dir, "weights.pt")))
    options(FuseMap.progress = FALSE)
    msgs <- character(0)
    suppressWarnings(withCallingHandlers(
        do.call(fusemap, c(list(toy_spe(n = 120), model.dir = tempfile()), FAST)),
        message = function(m) {
            msgs <<- c(msgs, conditionMessage(m))
            invokeRestart("muffleMessage")
        }))
    expect_false(any(grepl("epochs in", msgs)))
})
