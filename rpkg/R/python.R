# Finding, installing and starting the Python that runs FuseMap, and calling it with R-style
# errors, warnings and progress.

.py <- new.env(parent = emptyenv())

#' Where FuseMap's Python is
#'
#' FuseMap's model runs in Python. The interpreter is, in this order: the one
#' named by the environment variable \code{FUSEMAP_PYTHON}; the virtual
#' environment of a FuseMap project folder (\code{.venv/bin/python}) that holds
#' the working directory; the environment made by
#' \code{\link{installFuseMap}()} (\code{fusemapEnvDir()}); the project
#' \code{.venv} above the installed package. Otherwise there is none and
#' FuseMap's functions stop with an error that says to run
#' \code{installFuseMap()}.
#'
#' @return \code{fusemapPython()}: the path of the interpreter, or \code{NULL}.
#'   \code{fusemapAvailable()}: \code{TRUE} when that Python can be started
#'   in this R session and has the \code{fusemap} package.
#'   \code{fusemapEnvDir()}: the folder of the environment that
#'   \code{installFuseMap()} creates by default.
#' @seealso \code{\link{installFuseMap}}.
#' @examples
#' fusemapPython()
#' fusemapEnvDir()
#' @export
fusemapPython <- function() {
    env <- Sys.getenv("FUSEMAP_PYTHON")
    if (nzchar(env)) {
        return(env)
    }
    found <- .venv_above(getwd())
    if (!is.null(found)) {
        return(found)
    }
    managed <- .env_python(fusemapEnvDir())
    if (file.exists(managed)) {
        return(managed)
    }
    pkg <- tryCatch(getNamespaceInfo("FuseMap", "path"), error = function(e) character(0))
    if (length(pkg)) .venv_above(pkg) else NULL
}

#' @rdname fusemapPython
#' @export
fusemapEnvDir <- function() {
    file.path(tools::R_user_dir("FuseMap", "data"),
              paste0("python-", utils::packageVersion("FuseMap")))
}

.env_python <- function(envdir) {
    if (.Platform$OS.type == "windows") file.path(envdir, "Scripts", "python.exe")
    else file.path(envdir, "bin", "python")
}

# The project's .venv python when `start` is in a FuseMap project folder.
.venv_above <- function(start) {
    root <- .project_above(start)
    cand <- if (is.null(root)) "" else file.path(root, ".venv", "bin", "python")
    if (file.exists(cand)) cand else NULL
}

# The FuseMap project folder holding `start`: the first folder upwards whose pyproject.toml names
# the package fusemap.
.project_above <- function(start) {
    dir <- normalizePath(start, mustWork = FALSE)
    repeat {
        proj <- file.path(dir, "pyproject.toml")
        if (file.exists(proj) && any(grepl('^name *= *"fusemap"', readLines(proj, warn = FALSE)))) {
            return(dir)
        }
        if (identical(dirname(dir), dir)) return(NULL)
        dir <- dirname(dir)
    }
}

#' @rdname fusemapPython
#' @export
fusemapAvailable <- function() {
    ok <- tryCatch({
        .fusemap_py()
        TRUE
    }, error = function(e) FALSE)
    ok
}

.setup_hint <- function() {
    c(i = paste("Run {.run FuseMap::installFuseMap()} once (it creates a Python environment with",
                "{.pkg fusemap} in {.path {fusemapEnvDir()}}), or set {.envvar FUSEMAP_PYTHON}",
                "to a Python that has the {.pkg fusemap} package."))
}

#' Install FuseMap's Python
#'
#' Creates a Python virtual environment for the R package and installs the
#' Python package \code{fusemap} of the same version into it, with its
#' dependencies (torch, anndata, scanpy, ...) from the Python Package Index.
#' Afterwards FuseMap's functions find it by themselves (see
#' \code{\link{fusemapPython}}): run it once per R package version.
#'
#' The \code{fusemap} sources come from the wheel shipped inside the installed
#' R package (\code{system.file("python", package = "FuseMap")}); a package
#' installed straight from the project folder has none, and then the project
#' folder above the working directory is used. \code{torch} is installed
#' first so that its version is the one given (a CPU build where the index
#' offers one: pass \code{pip.args = c("--extra-index-url", URL)} for another
#' build).
#'
#' @param envdir The folder of the new environment. Default
#'   \code{fusemapEnvDir()}, in R's per-user data folder.
#' @param python The Python (3.11 or 3.12) that creates the environment;
#'   default: \code{python3.11}, \code{python3.12} or \code{python3} on the
#'   PATH.
#' @param source A \code{fusemap} wheel (\code{.whl}) or a FuseMap project
#'   folder; default as described in Details.
#' @param torch The torch requirement installed first.
#' @param pip.args Further arguments for every \code{pip install}.
#' @param overwrite Replace an existing environment in \code{envdir}.
#' @return The path of the environment's Python, invisibly.
#' @examples
#' \dontrun{
#' installFuseMap()
#' fusemapAvailable()
#' }
#' @export
installFuseMap <- function(envdir = fusemapEnvDir(), python = NULL, source = NULL,
                           torch = "torch==2.13.0", pip.args = character(0),
                           overwrite = FALSE) {
    .check_scalar_string(envdir, "envdir")
    .check_scalar_string(torch, "torch")
    if (!is.character(pip.args)) {
        cli::cli_abort("{.arg pip.args} must be a character vector; found {.obj_type_friendly {pip.args}}.")
    }
    python <- .base_python(python)
    source <- .fusemap_source(source)
    target <- .env_python(envdir)
    if (dir.exists(envdir) && length(list.files(envdir, all.files = TRUE, no.. = TRUE))) {
        if (!isTRUE(overwrite)) {
            cli::cli_abort(c("{.arg envdir} {.path {envdir}} already exists.",
                             i = "Pass {.code overwrite = TRUE} to rebuild it, or choose another folder."))
        }
        if (!file.exists(file.path(envdir, "pyvenv.cfg"))) {
            cli::cli_abort(c("{.arg envdir} {.path {envdir}} is not a Python virtual environment (no {.file pyvenv.cfg}); FuseMap replaces only environments.",
                             i = "Choose another folder."))
        }
        unlink(envdir, recursive = TRUE)
    }
    version <- as.character(utils::packageVersion("FuseMap"))
    cli::cli_inform(c(i = "Creating {.path {envdir}} with {.path {python}}."))
    .run_or_abort(python, c("-m", "venv", shQuote(envdir)), "creating the virtual environment")
    pip <- function(...) .run_or_abort(target, c("-m", "pip", "install", "--disable-pip-version-check",
                                                 "--quiet", pip.args, ...), "installing with pip")
    cli::cli_inform(c(i = "Installing {.val {torch}}."))
    pip(shQuote(torch))
    cli::cli_inform(c(i = "Installing {.pkg fusemap} {version} from {.path {source}}."))
    pip(shQuote(source))
    got <- system2(target, c("-c", shQuote("import fusemap; print(fusemap.__version__)")),
                   stdout = TRUE, stderr = TRUE, env = .child_env())
    got <- utils::tail(got, 1)
    if (!identical(got, version)) {
        cli::cli_abort(c("The environment's {.pkg fusemap} is version {.val {got}}; the R package is {.val {version}}.",
                         i = "Pass {.arg source} = the FuseMap project folder or wheel of version {version}."))
    }
    cli::cli_inform(c(v = "FuseMap's Python is ready: {.path {target}}."))
    if (reticulate::py_available(initialize = FALSE) &&
        !identical(normalizePath(reticulate::py_config()$python, mustWork = FALSE),
                   normalizePath(target, mustWork = FALSE))) {
        cli::cli_inform(c(i = paste("This R session already runs another Python; restart R to use it.")))
    }
    invisible(target)
}

.base_python <- function(python) {
    if (is.null(python)) {
        cands <- Sys.which(c("python3.11", "python3.12", "python3"))
        cands <- cands[nzchar(cands)]
        if (!length(cands)) {
            cli::cli_abort(c("No Python 3 was found on the PATH to create the environment.",
                             i = "Install Python 3.11 or 3.12, or pass its path as {.arg python}."))
        }
        python <- unname(cands[1])
    }
    .check_scalar_string(python, "python")
    if (!file.exists(python) && !nzchar(Sys.which(python))) {
        cli::cli_abort("{.arg python} = {.path {python}} does not exist.")
    }
    ver <- tryCatch(system2(python, c("-c", shQuote("import sys; print('%d.%d' % sys.version_info[:2])")),
                            stdout = TRUE, stderr = TRUE, env = .child_env()), error = function(e) "")
    ver <- utils::tail(ver, 1)
    if (!length(ver) || !ver %in% c("3.11", "3.12")) {
        cli::cli_abort(c("{.arg python} = {.path {python}} is Python {.val {ver}}; {.pkg fusemap} needs 3.11 or 3.12.",
                         i = "Pass the path of a Python 3.11 or 3.12 as {.arg python}."))
    }
    python
}

.fusemap_source <- function(source) {
    if (is.null(source)) {
        shipped <- list.files(system.file("python", package = "FuseMap"), pattern = "[.]whl$",
                              full.names = TRUE)
        if (length(shipped)) {
            return(shipped[1])
        }
        root <- .project_above(getwd())
        if (is.null(root)) {
            cli::cli_abort(c("No {.pkg fusemap} sources were found: this installation of the R package ships no wheel and the working directory is not in a FuseMap project folder.",
                             i = paste("Pass {.arg source} = the FuseMap project folder (the one with",
                                       "{.file pyproject.toml}) or a fusemap {.file .whl} file.")))
        }
        return(root)
    }
    .check_scalar_string(source, "source")
    if (!file.exists(source)) {
        cli::cli_abort("{.arg source} = {.path {source}} does not exist.")
    }
    source <- normalizePath(source)
    if (dir.exists(source) && !file.exists(file.path(source, "pyproject.toml"))) {
        cli::cli_abort(c("{.arg source} = {.path {source}} is a folder without {.file pyproject.toml}.",
                         i = "Pass the FuseMap project folder or a fusemap {.file .whl} file."))
    }
    source
}

# The library path a Python started from R should see. R's startup puts its own folder, the
# system's library folder (where another libpython may live) and Java's in front of
# LD_LIBRARY_PATH; a Python of another build then loads that libpython and lacks modules such as
# ssl. Those entries are dropped for child processes (system folders are searched anyway).
.child_env <- function() {
    ld <- strsplit(Sys.getenv("LD_LIBRARY_PATH"), ":", fixed = TRUE)[[1]]
    r_added <- ld == R.home("lib") | grepl("^(/usr)?/lib(64)?(/[^/]+-linux-gnu)?/?$", ld) |
        grepl("/jvm/", ld, fixed = TRUE) | !nzchar(ld)
    paste0("LD_LIBRARY_PATH=", shQuote(paste(ld[!r_added], collapse = ":")))
}

.run_or_abort <- function(cmd, args, what) {
    out <- suppressWarnings(system2(cmd, args, stdout = TRUE, stderr = TRUE, env = .child_env()))
    status <- attr(out, "status")
    if (!is.null(status) && status != 0) {
        cli::cli_abort(c("Failed while {what} (exit status {status}).",
                         x = "{utils::tail(out, 15)}"), call = NULL)
    }
    invisible(out)
}

# The Python modules, started on first use: list(fusemap, io, python).
.fusemap_py <- function() {
    if (!is.null(.py$fusemap)) {
        return(.py)
    }
    if (reticulate::py_available(initialize = FALSE)) {
        python <- reticulate::py_config()$python
    } else {
        python <- fusemapPython()
        if (is.null(python)) {
            cli::cli_abort(c("No Python with the {.pkg fusemap} package was found.",
                             x = paste("{.envvar FUSEMAP_PYTHON} is not set, {.fn installFuseMap} has",
                                       "not been run, and {.path {getwd()}} is not in a FuseMap",
                                       "project folder."),
                             .setup_hint()), call = NULL)
        }
        if (!file.exists(python)) {
            cli::cli_abort(c("{.envvar FUSEMAP_PYTHON} names {.path {python}}, which does not exist.",
                             .setup_hint()), call = NULL)
        }
        old <- Sys.getenv("RETICULATE_PYTHON", unset = NA)
        Sys.setenv(RETICULATE_PYTHON = python)
        on.exit(if (is.na(old)) Sys.unsetenv("RETICULATE_PYTHON")
                else Sys.setenv(RETICULATE_PYTHON = old), add = TRUE)
        started <- tryCatch(reticulate::py_available(initialize = TRUE), error = function(e) FALSE)
        if (!isTRUE(started)) {
            cli::cli_abort(c("Could not start Python {.path {python}} through reticulate.",
                             .setup_hint()), call = NULL)
        }
    }
    if (!reticulate::py_module_available("fusemap")) {
        cli::cli_abort(c("The Python in use ({.path {python}}) has no {.pkg fusemap} package.",
                         i = paste("This R session already started that Python and cannot switch:",
                                   "restart R, then call FuseMap before anything else starts Python."),
                         .setup_hint()), call = NULL)
    }
    .warn_reference_blas()
    .py$fusemap <- .py_call(reticulate::import("fusemap"), "importing fusemap")
    .py$io <- reticulate::import("fusemap.io")
    .py$hostblas <- reticulate::import("fusemap.hostblas")
    .py$python <- python
    .check_python_version(.py$fusemap$`__version__`, python)
    .py
}

.check_python_version <- function(got, python) {
    want <- as.character(utils::packageVersion("FuseMap"))
    if (!identical(as.character(got), want)) {
        cli::cli_warn(c("The Python package {.pkg fusemap} in {.path {python}} is version {.val {got}}; this R package is {.val {want}}.",
                        i = "Run {.run FuseMap::installFuseMap(overwrite = TRUE)} for a matching Python."),
                      call = NULL)
    }
}

# Evaluate a call into Python. A Python exception becomes a cli error carrying its message; the
# warnings Python raised meanwhile become R warnings (Python writes them to the process's stderr,
# which R's handlers and knitr never see). While it runs, R's OpenBLAS (if R uses one) has one
# thread: torch's products run through it here, and its thread pool spinning against torch's made
# training 1.7x slower (fusemap/hostblas.py).
.py_call <- function(expr, what) {
    if (!is.null(.py$hostblas)) {
        ctx <- .py$hostblas$single_threaded_host_blas()
        ctx$`__enter__`()
        on.exit(ctx$`__exit__`(NULL, NULL, NULL), add = TRUE)
    }
    if (!is.null(.py$io)) {
        recorder <- .py$io$WarningsForR()
        recorder$`__enter__`()
        on.exit({
            recorder$`__exit__`(NULL, NULL, NULL)
            for (msg in recorder$messages()) cli::cli_warn("{msg}", call = NULL)
        }, add = TRUE)
    }
    tryCatch(expr, error = function(e) {
        err <- tryCatch(reticulate::py_last_error(), error = function(e2) NULL)
        msg <- if (!is.null(err) && length(err$value)) err$value else conditionMessage(e)
        type <- if (!is.null(err) && length(err$type)) err$type else "error"
        cli::cli_abort(c("FuseMap failed while {what}.", x = "{type}: {msg}"), call = NULL)
    })
}

# A training-progress callback for Python's fusemap (argument `callback`): a cli progress bar in
# interactive sessions, else a line per phase and every 100 epochs (scripts, knitr, batch jobs).
# options(FuseMap.progress = FALSE) silences it. The bar belongs to the caller's frame `envir`.
.progress <- function(what, envir = parent.frame()) {
    if (!isTRUE(getOption("FuseMap.progress", TRUE))) {
        return(NULL)
    }
    state <- new.env(parent = emptyenv())
    state$phase <- 0L
    state$bar <- NULL
    bar <- interactive() && cli::is_dynamic_tty()
    function(event) {
        if (bar) {
            if (is.null(state$bar)) {
                state$bar <- cli::cli_progress_bar(what, total = event$epochs_total, .envir = envir,
                                                   clear = TRUE)
            }
            cli::cli_progress_update(id = state$bar, set = event$epochs_done,
                                     total = event$epochs_total, .envir = envir)
        } else if (!identical(as.integer(event$phase), state$phase)) {
            state$phase <- as.integer(event$phase)
            cli::cli_inform(c(i = "{what}: {event$phase_name} (phase {event$phase}), up to {event$max_epochs} epochs."))
        } else if (event$epoch %% 100L == 0L) {
            cli::cli_inform("  epoch {event$epoch}, validation loss {signif(event$val_loss, 4)}, {round(event$seconds)} s")
        }
        if (isTRUE(event$done)) {
            if (!is.null(state$bar)) cli::cli_progress_done(id = state$bar, .envir = envir)
            cli::cli_inform(c(v = "{what}: {event$epochs_done} epochs in {round(event$seconds)} s."))
        }
        invisible(NULL)
    }
}

# torch's CPU library exports the BLAS symbols it bundles (sgemm_, ...); inside R they resolve to the
# BLAS that R itself loaded. With R's unoptimised reference BLAS every matrix product of the model
# runs through it: training measured 14x slower than the same Python outside R. Warn, with the fix.
.is_reference_blas <- function(path) {
    if (!length(path) || is.na(path) || !nzchar(path)) {
        return(FALSE)
    }
    grepl("^libR?blas[.]so", basename(path)) &&
        !grepl("openblas|atlas|blis|mkl|flexiblas|accelerate|veclib", tolower(path))
}

.warn_reference_blas <- function() {
    blas <- tryCatch(extSoftVersion()[["BLAS"]], error = function(e) "")
    if (.is_reference_blas(blas)) {
        cli::cli_warn(c("R uses the reference BLAS ({.path {blas}}): FuseMap's torch runs its matrix products through it in this session, about 10x slower than in Python.",
                        i = paste("Install an optimised BLAS and restart R, e.g. on Debian/Ubuntu",
                                  "{.code apt-get install libopenblas0-pthread} (it becomes R's BLAS),",
                                  "or run FuseMap from Python for large data.")),
                      call = NULL)
    }
    invisible(blas)
}
