#' A trained FuseMap model, held as its saved directory
#'
#' A \code{FuseMapModel} is the path of a model directory written by FuseMap
#' (weights plus JSON files) and a summary read from it. It holds no live
#' Python object, so it survives saving and restoring the R session; Python
#' loads the directory again whenever the model is used.
#'
#' @param x For \code{FuseMapModel()}: a model directory, as written by
#'   \code{\link{fusemap}()}, \code{model.save()} in Python or
#'   \code{fusemap integrate} (its \code{model/} folder); or a
#'   \code{SpatialExperiment} returned by \code{\link{fusemap}()} or
#'   \code{\link{mapQuery}()}, whose model it gives. Elsewhere a
#'   \code{FuseMapModel}.
#' @param object A \code{FuseMapModel}.
#' @param ... Not used.
#' @return \code{FuseMapModel()}: a \code{FuseMapModel}. \code{path()}: the directory. \code{summary()}: a
#'   list with the sections (name, cells, genes, role: reference or query),
#'   each section's panel (\code{panels}), the number of genes in the
#'   model's vocabulary, the latent size, the epochs trained in each phase and
#'   the FuseMap version. \code{geneEmbedding()}: a genes x latent matrix over
#'   the union of all panels (needs Python).
#' @examples
#' \donttest{
#' if (fusemapAvailable()) {
#'     spe <- SpatialExperiment::SpatialExperiment(
#'         assays = list(counts = matrix(rpois(3000, 3), nrow = 20,
#'             dimnames = list(paste0("g", 1:20), paste0("c", 1:150)))),
#'         colData = S4Vectors::DataFrame(sample_id = rep(c("a", "b"), each = 75)),
#'         spatialCoords = cbind(x = runif(150), y = runif(150)))
#'     out <- fusemap(spe, model.dir = tempfile(), max.epochs = 2, n.hidden = 16, n.latent = 4)
#'     model <- FuseMapModel(out)
#'     model
#'     summary(model)$sections
#' }
#' }
#' @name FuseMapModel
NULL

#' @rdname FuseMapModel
#' @export
setClass("FuseMapModel", representation(path = "character", summary = "list"),
         validity = function(object) {
             if (length(object@path) != 1L) "path must be one directory" else TRUE
         })

.MODEL_FILES <- c("weights.pt", "config.json", "genes.json", "sections.json")

#' @rdname FuseMapModel
#' @export
FuseMapModel <- function(x) {
    if (methods::is(x, "SummarizedExperiment")) {
        md <- S4Vectors::metadata(x)$FuseMap
        if (is.null(md) || is.null(md$model_dir)) {
            cli::cli_abort(c("{.arg x} holds no FuseMap result.",
                             i = "Pass the object returned by {.fn fusemap} or {.fn mapQuery}, or a model directory."))
        }
        x <- md$model_dir
    }
    path <- x
    if (!is.character(path) || length(path) != 1L || !dir.exists(path)) {
        cli::cli_abort(c("{.arg x} must be a FuseMap model directory or a result of {.fn fusemap}.",
                         x = "{.path {path}} is not a directory."))
    }
    missing <- .MODEL_FILES[!file.exists(file.path(path, .MODEL_FILES))]
    if (length(missing)) {
        cli::cli_abort(c("{.path {path}} is not a FuseMap model directory.",
                         x = "Missing: {.file {missing}}.",
                         i = "Pass the directory written by {.fn fusemap} or by Python's model.save()."))
    }
    path <- normalizePath(path)
    cfg <- .read_json(file.path(path, "config.json"), simplifyVector = FALSE)
    genes <- .read_json(file.path(path, "genes.json"), simplifyVector = TRUE)
    secs <- .read_json(file.path(path, "sections.json"), simplifyVector = FALSE)$sections
    sections <- data.frame(
        section = vapply(secs, function(s) as.character(s$name), character(1)),
        n_cells = vapply(secs, function(s) as.integer(s$n_obs), integer(1)),
        n_genes = vapply(secs, function(s) length(s$genes), integer(1)))
    sections$role <- vapply(secs, function(s) if (is.null(s$role)) "reference" else as.character(s$role),
                            character(1))
    panels <- lapply(secs, function(s) as.character(unlist(s$genes)))
    names(panels) <- sections$section
    ts <- cfg$train_state
    summary <- list(
        sections = sections, panels = panels, n_genes = length(genes$genes),
        n_latent = as.integer(cfg$config$model$n_latent),
        spatial_mode = as.character(cfg$config$model$spatial_mode),
        epochs_per_phase = if (is.null(ts)) integer(0) else as.integer(unlist(ts$epochs_per_phase)),
        fusemap_version = as.character(cfg$fusemap_version))
    methods::new("FuseMapModel", path = path, summary = summary)
}

# Python's json writes NaN and Infinity, which are not JSON; read them as null.
.read_json <- function(file, ...) {
    txt <- paste(readLines(file, warn = FALSE, encoding = "UTF-8"), collapse = "\n")
    txt <- gsub("(?<=[:\\[,\\s])-?(NaN|Infinity)(?=\\s*[,\\]}])", "null", txt, perl = TRUE)
    jsonlite::fromJSON(txt, ...)
}

#' @rdname FuseMapModel
#' @export
setMethod("show", "FuseMapModel", function(object) {
    s <- object@summary
    cat("FuseMapModel:", object@path, "\n")
    cat(sprintf("  %d sections (%s), %d cells\n", nrow(s$sections),
                paste(s$sections$section, collapse = ", "), sum(s$sections$n_cells)))
    cat(sprintf("  %d genes, latent size %d, spatial mode '%s'\n", s$n_genes, s$n_latent,
                s$spatial_mode))
    if (length(s$epochs_per_phase)) {
        cat("  epochs per phase:", paste(s$epochs_per_phase, collapse = ", "), "\n")
    }
    invisible(object)
})

#' @rdname FuseMapModel
#' @importMethodsFrom BiocGenerics path
#' @export
setMethod("path", "FuseMapModel", function(object, ...) object@path)

#' @rdname FuseMapModel
#' @importMethodsFrom S4Vectors summary
#' @export
setMethod("summary", "FuseMapModel", function(object, ...) object@summary)

#' @rdname FuseMapModel
#' @export
setGeneric("geneEmbedding", function(x, ...) standardGeneric("geneEmbedding"))

#' @rdname FuseMapModel
#' @export
setMethod("geneEmbedding", "FuseMapModel", function(x, ...) {
    py <- .fusemap_py()
    out <- .py_call({
        model <- py$fusemap$FuseMap$load(x@path, device = "cpu")
        py$io$gene_embedding_for_r(model)
    }, "reading the gene embedding")
    out <- .unwire(out)
    rownames(out$values) <- as.character(out$genes)
    colnames(out$values) <- paste0("latent_", seq_len(ncol(out$values)))
    out$values
})
