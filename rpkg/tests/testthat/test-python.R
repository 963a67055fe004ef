# Finding Python: FUSEMAP_PYTHON, else the project's .venv, else an error that says what to run.

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
    expect_match(msg, "make setup")
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
