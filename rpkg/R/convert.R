#' Convert between SpatialExperiment and AnnData
#'
#' \code{speToAnnData()} turns a \code{SpatialExperiment} (or
#' \code{SingleCellExperiment}) into a Python \code{AnnData} object and can
#' write it to an \code{.h5ad} file; \code{annDataToSpe()} turns an
#' \code{AnnData} object, or the path of an \code{.h5ad} file, into a
#' \code{SpatialExperiment}. Python's \code{fusemap.io} uses the same mapping,
#' so objects written by either side read the same on the other.
#'
#' The mapping: assay \code{X.name} is \code{X} and the other assays are
#' \code{layers} (AnnData stores cells x genes, so matrices are transposed;
#' values are kept exactly); \code{colData} is \code{obs} and \code{rowData}
#' is \code{var} (factors are categoricals, missing values stay missing);
#' column and row names are \code{obs_names} and \code{var_names};
#' \code{spatialCoords} is \code{obsm["spatial"]} (its column names are kept
#' in \code{uns["spatialCoordsNames"]}); the other \code{reducedDims} are
#' \code{obsm} entries (\code{FuseMap_cell} and \code{FuseMap_spatial} are
#' \code{X_fusemap_cell} and \code{X_fusemap_spatial}); \code{metadata} is
#' \code{uns} (lists, vectors, strings and numbers). The assay that became
#' \code{X} is recorded in \code{uns["X_name"]}. What has no counterpart
#' (images, alternative experiments, non-atomic columns) is left out with a
#' warning that names it. An \code{.h5ad} file stores text columns as
#' categoricals, so character columns come back from a file as factors.
#'
#' @param x For \code{speToAnnData()}, a \code{SpatialExperiment} or
#'   \code{SingleCellExperiment}. For \code{annDataToSpe()}, a Python
#'   \code{AnnData} object or the path of an \code{.h5ad} file.
#' @param X.name The assay that becomes AnnData's \code{X}, or that \code{X}
#'   becomes. Default: \code{"counts"} when there is such an assay, else the
#'   first assay (\code{speToAnnData()}); \code{uns["X_name"]} when present,
#'   else \code{"counts"} (\code{annDataToSpe()}).
#' @param file Optional path of an \code{.h5ad} file to write. It is written
#'   to a temporary file beside it and renamed into place.
#' @param overwrite Replace an existing \code{file}.
#' @param sample.id For \code{annDataToSpe()}: the \code{obs} column whose
#'   values become the \code{sample_id} column of the result (each sample is
#'   one tissue section). Default: \code{obs$sample_id} when there is such a
#'   column, else \code{obs$section} when there is that (FuseMap's files and the shared data have one), else, for a file,
#'   the file's name without \code{.h5ad}, so that objects read from
#'   different files are different sections of \code{\link{fusemap}()}.
#' @return \code{speToAnnData()}: the Python \code{AnnData} object
#'   (invisibly when \code{file} is given). \code{annDataToSpe()}: a
#'   \code{SpatialExperiment}.
#' @examples
#' \donttest{
#' if (fusemapAvailable()) {
#'     spe <- SpatialExperiment::SpatialExperiment(
#'         assays = list(counts = matrix(rpois(200, 3), nrow = 10,
#'             dimnames = list(paste0("g", 1:10), paste0("c", 1:20)))),
#'         spatialCoords = cbind(x = runif(20), y = runif(20)))
#'     ad <- speToAnnData(spe)
#'     back <- annDataToSpe(ad)
#'     identical(SummarizedExperiment::assay(back, "counts"),
#'               SummarizedExperiment::assay(spe, "counts"))
#' }
#' }
#' @name convert
NULL

#' @rdname convert
#' @export
speToAnnData <- function(x, X.name = NULL, file = NULL, overwrite = FALSE) {
    if (!methods::is(x, "SingleCellExperiment")) {
        cli::cli_abort(c("{.arg x} must be a SpatialExperiment or SingleCellExperiment.",
                         x = "Found an object of class {.cls {class(x)}}."))
    }
    an <- SummarizedExperiment::assayNames(x)
    if (length(an) == 0L) {
        cli::cli_abort(c("{.arg x} has no assays; AnnData needs a matrix for {.field X}."))
    }
    if (is.null(X.name)) {
        X.name <- if ("counts" %in% an) "counts" else an[1]
    }
    if (!X.name %in% an) {
        cli::cli_abort(c("{.arg X.name} = {.val {X.name}} is not an assay of {.arg x}.",
                         i = "Assays: {.val {an}}."))
    }
    if (!is.null(file)) {
        .check_file_arg(file, overwrite)
    }
    py <- .fusemap_py()
    conv <- .spe_to_parts(x, X.name)
    if (length(conv$dropped)) {
        cli::cli_warn("Left out (no AnnData counterpart): {.field {conv$dropped}}.")
    }
    adata <- .py_call(py$io$anndata_from_r(conv$parts), "building the AnnData object")
    if (!is.null(file)) {
        .py_call(py$io$write_h5ad(adata, path.expand(file), overwrite = overwrite),
                 "writing the .h5ad file")
        return(invisible(adata))
    }
    adata
}

#' @rdname convert
#' @export
annDataToSpe <- function(x, X.name = NULL, sample.id = NULL) {
    from_file <- NULL
    if (is.character(x)) {
        if (length(x) != 1L || !file.exists(x)) {
            cli::cli_abort(c("{.arg x} must be one .h5ad file or an AnnData object.",
                             x = "File {.path {x}} does not exist."))
        }
        x <- normalizePath(x)
        from_file <- sub("[.]h5ad$", "", basename(x), ignore.case = TRUE)
    } else if (!inherits(x, "anndata._core.anndata.AnnData")) {
        cli::cli_abort(c("{.arg x} must be a Python AnnData object or the path of an .h5ad file.",
                         x = "Found an object of class {.cls {class(x)}}."))
    }
    py <- .fusemap_py()
    parts <- .unwire(.py_call(py$io$parts_for_r(x, X.name), "reading the AnnData object"))
    if (length(parts$dropped)) {
        cli::cli_warn("Left out (no SpatialExperiment counterpart): {.field {parts$dropped}}.")
    }
    parts$uns[["X_name"]] <- NULL
    parts$uns[["spatialCoordsNames"]] <- NULL
    if (!is.null(sample.id)) {
        parts$obs <- .with_sample_id(parts$obs, sample.id)
    } else if ("sample_id" %in% as.character(parts$obs$names)) {
        # kept as it is: a SpatialExperiment written by speToAnnData() comes back with its samples
    } else if ("section" %in% as.character(parts$obs$names)) {
        parts$obs <- .with_sample_id(parts$obs, "section")
    } else if (!is.null(from_file)) {
        parts$obs <- .with_sample_id(parts$obs, NULL, value = from_file, n = parts$n_obs)
    }
    .parts_to_spe(parts)
}

# The obs part with a `sample_id` column copied from column `sample.id`, or set to `value` for all
# `n` cells (SpatialExperiment only lets sample ids be set when the object is built).
.with_sample_id <- function(obs, sample.id, value = NULL, n = 0L) {
    cols <- as.character(obs$names)
    if (is.null(sample.id)) {
        values <- rep(value, n)
    } else if (!sample.id %in% cols) {
        cli::cli_abort(c("{.arg sample.id} = {.val {sample.id}} is not a column of obs.",
                         i = "Columns: {.val {cols}}."))
    } else {
        values <- as.character(.column_from_part(obs$columns[[match(sample.id, cols)]]))
    }
    part <- .column_to_part(values)
    at <- match("sample_id", cols)
    if (is.na(at)) {
        obs$names <- c(cols, "sample_id")
        obs$columns <- c(obs$columns, list(part))
    } else {
        obs$columns[[at]] <- part
    }
    obs
}

.check_file_arg <- function(file, overwrite) {
    if (!is.character(file) || length(file) != 1L) {
        cli::cli_abort("{.arg file} must be one file path.")
    }
    if (file.exists(file) && !isTRUE(overwrite)) {
        cli::cli_abort(c("{.arg file} {.path {file}} already exists.",
                         i = "Pass {.code overwrite = TRUE} to replace it, or choose another name."))
    }
}
