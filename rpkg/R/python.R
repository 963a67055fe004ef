# Finding and starting the Python that runs FuseMap, and calling it with R-style errors.

.py <- new.env(parent = emptyenv())

#' Where FuseMap's Python is
#'
#' FuseMap's model runs in Python. The interpreter is, in this order: the one
#' named by the environment variable \code{FUSEMAP_PYTHON}; the project's own
#' virtual environment (\code{.venv/bin/python} in the FuseMap project folder,
#' looked for from the working directory and from the installed package
#' upwards); otherwise there is none and FuseMap's functions stop with an error
#' that says what to run (\code{make setup} in the project folder).
#'
#' @return \code{fusemapPython()}: the path of the interpreter, or \code{NULL}.
#'   \code{fusemapAvailable()}: \code{TRUE} when that Python can be started
#'   in this R session and has the \code{fusemap} package.
#' @examples
#' fusemapPython()
#' @export
fusemapPython <- function() {
    env <- Sys.getenv("FUSEMAP_PYTHON")
    if (nzchar(env)) {
        return(env)
    }
    starts <- c(getwd(), tryCatch(getNamespaceInfo("FuseMap", "path"),
                                  error = function(e) character(0)))
    for (start in starts) {
        found <- .venv_above(start)
        if (!is.null(found)) {
            return(found)
        }
    }
    NULL
}

# The project's .venv python in `start` or a folder above it. A folder counts as the project when
# its pyproject.toml names the package fusemap.
.venv_above <- function(start) {
    dir <- normalizePath(start, mustWork = FALSE)
    repeat {
        cand <- file.path(dir, ".venv", "bin", "python")
        proj <- file.path(dir, "pyproject.toml")
        if (file.exists(cand) && file.exists(proj) &&
            any(grepl('^name *= *"fusemap"', readLines(proj, warn = FALSE)))) {
            return(cand)
        }
        parent <- dirname(dir)
        if (identical(parent, dir)) {
            return(NULL)
        }
        dir <- parent
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
    c(i = paste("In the FuseMap project folder run {.code make setup} (creates {.path .venv}",
                "with fusemap), or set {.envvar FUSEMAP_PYTHON} to a Python that has the",
                "{.pkg fusemap} package, then restart R."))
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
                             x = paste("{.envvar FUSEMAP_PYTHON} is not set and no project",
                                       "{.path .venv} was found above {.path {getwd()}}."),
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
                         i = paste("This R session already runs that Python; FuseMap cannot",
                                   "switch it. Restart R."),
                         .setup_hint()), call = NULL)
    }
    .warn_reference_blas()
    .py$fusemap <- .py_call(reticulate::import("fusemap"), "importing fusemap")
    .py$io <- reticulate::import("fusemap.io")
    .py$hostblas <- reticulate::import("fusemap.hostblas")
    .py$python <- python
    .py
}

# Evaluate a call into Python; a Python exception becomes a cli error carrying its message. While
# it runs, R's OpenBLAS (if R uses one) has one thread: torch's products run through it here, and
# its thread pool spinning against torch's made training 1.7x slower (fusemap/hostblas.py).
.py_call <- function(expr, what) {
    if (!is.null(.py$hostblas)) {
        ctx <- .py$hostblas$single_threaded_host_blas()
        ctx$`__enter__`()
        on.exit(ctx$`__exit__`(NULL, NULL, NULL), add = TRUE)
    }
    tryCatch(expr, error = function(e) {
        err <- tryCatch(reticulate::py_last_error(), error = function(e2) NULL)
        msg <- if (!is.null(err) && length(err$value)) err$value else conditionMessage(e)
        type <- if (!is.null(err) && length(err$type)) err$type else "error"
        cli::cli_abort(c("FuseMap failed while {what}.", x = "{type}: {msg}"), call = NULL)
    })
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
