#' Map new sections onto a trained FuseMap reference
#'
#' Trains encoders for the query sections only, so that they land in the
#' reference's cell and spatial embedding spaces; every reference weight stays
#' unchanged and the reference's model directory is not touched. Genes the
#' reference never saw get new gene-embedding columns. The mapped model
#' (reference plus query sections) is saved to \code{model.dir}. This calls
#' Python's \code{fusemap.map_query}.
#'
#' The reference sections' data are needed (their embeddings enter the
#' discriminators): \code{reference} is the \code{SpatialExperiment} returned
#' by \code{\link{fusemap}()} for the model (or a list of such results, e.g. a
#' reference and a mapped query, when mapping onto a mapped model). Each model
#' section is found by the \code{FuseMap_section} column, with the genes it
#' was trained on.
#'
#' @param x The query: a \code{SpatialExperiment} or a list of them, split
#'   into sections as in \code{\link{fusemap}()} (a
#'   \code{SingleCellExperiment} is a section without coordinates). Section
#'   names must differ from the reference's.
#' @param model A \code{\link{FuseMapModel}}, or the \code{SpatialExperiment}
#'   returned by \code{fusemap()} (then it is also the default
#'   \code{reference}).
#' @param reference The reference data (see Details).
#' @param assay.type,sample.id As in \code{\link{fusemap}()}, for the query.
#' @param model.dir Where to save the mapped model (default as in
#'   \code{\link{fusemap}()}: a new folder in the working directory).
#' @param overwrite Replace an existing \code{model.dir}.
#' @param ... Training options with R names (only training options:
#'   \code{max.epochs}, \code{seed}, \code{batch.size}, \code{lr},
#'   \code{device}, ...; architecture and preprocessing come from the
#'   reference).
#' @return The query as a \code{SpatialExperiment} (joined as in
#'   \code{fusemap()} for a list) with \code{reducedDim}s
#'   \code{"FuseMap_cell"} and \code{"FuseMap_spatial"} in the reference's
#'   space, a \code{FuseMap_section} column, \code{FuseMap_novelty} (0-1:
#'   the share of reference cells that lie nearer the reference than the
#'   cell; near 1 for states the reference lacks) and
#'   \code{FuseMap_novelty_cluster} (the query cluster it was scored with), and \code{metadata()$FuseMap}
#'   with the mapped model's directory, the run record and the reference
#'   model's directory.
#' @seealso \code{\link{transferLabels}}, \code{\link{imputeGenes}}.
#' @examples
#' \donttest{
#' if (fusemapAvailable()) {
#'     set.seed(1)
#'     make <- function(ids) SpatialExperiment::SpatialExperiment(
#'         assays = list(counts = matrix(rpois(20 * length(ids), 3), nrow = 20,
#'             dimnames = list(paste0("g", 1:20), NULL))),
#'         colData = S4Vectors::DataFrame(sample_id = ids),
#'         spatialCoords = cbind(x = runif(length(ids)), y = runif(length(ids))))
#'     ref <- fusemap(make(rep(c("a", "b"), each = 60)), model.dir = tempfile(),
#'                    max.epochs = 2, n.hidden = 16)
#'     query <- mapQuery(make(rep("q", 60)), ref, model.dir = tempfile(), max.epochs = 2)
#'     dim(SingleCellExperiment::reducedDim(query, "FuseMap_cell"))
#' }
#' }
#' @export
setGeneric("mapQuery", function(x, model, reference = NULL, assay.type = "counts",
                                sample.id = "sample_id", model.dir = NULL, overwrite = FALSE, ...)
    standardGeneric("mapQuery"), signature = "x")

#' @rdname mapQuery
#' @export
setMethod("mapQuery", "SpatialExperiment", function(x, model, reference = NULL,
                                                    assay.type = "counts", sample.id = "sample_id",
                                                    model.dir = NULL, overwrite = FALSE, ...) {
    .run_map_query(list(x), TRUE, model, reference, assay.type, sample.id, model.dir, overwrite,
                   list(...))
})

#' @rdname mapQuery
#' @export
setMethod("mapQuery", "list", function(x, model, reference = NULL, assay.type = "counts",
                                       sample.id = "sample_id", model.dir = NULL,
                                       overwrite = FALSE, ...) {
    .run_map_query(x, FALSE, model, reference, assay.type, sample.id, model.dir, overwrite,
                   list(...))
})

#' @rdname mapQuery
#' @export
setMethod("mapQuery", "SingleCellExperiment", function(x, model, reference = NULL,
                                                       assay.type = "counts", sample.id = "sample_id",
                                                       model.dir = NULL, overwrite = FALSE, ...) {
    .run_map_query(list(x), TRUE, model, reference, assay.type, sample.id, model.dir, overwrite,
                   list(...))
})

#' @rdname mapQuery
#' @export
setMethod("mapQuery", "ANY", function(x, model, reference = NULL, assay.type = "counts",
                                      sample.id = "sample_id", model.dir = NULL,
                                      overwrite = FALSE, ...) {
    .not_spatial(x, "x")
})

.run_map_query <- function(spes, single, model, reference, assay.type, sample.id, model.dir,
                           overwrite, opts) {
    if (methods::is(model, "SpatialExperiment")) {
        if (is.null(reference)) reference <- model
        model <- FuseMapModel(model)
    }
    if (!methods::is(model, "FuseMapModel")) {
        cli::cli_abort(c("{.arg model} must be a FuseMapModel or the result of {.fn fusemap}.",
                         x = "Found an object of class {.cls {class(model)}}."))
    }
    if (is.null(reference)) {
        cli::cli_abort(c("{.arg reference} is needed: the reference sections' data place the query.",
                         i = "Pass the SpatialExperiment that {.fn fusemap} returned for this model."))
    }
    secs <- .sections(spes, single, assay.type, sample.id, opts)
    clash <- intersect(secs$names, model@summary$sections$section)
    if (length(clash)) {
        cli::cli_abort(c("Query section{?s} {.val {clash}} {?is/are} already in the reference model.",
                         i = "Give the query sections other sample ids."))
    }
    ref_secs <- .model_sections(reference, model, "reference")
    py <- .fusemap_py()
    opts <- .python_options(opts, py)
    model.dir <- .model_dir_arg(model.dir, overwrite)
    qdata <- lapply(secs$sections, .section_anndata, py = py)
    rdata <- lapply(ref_secs, .section_anndata, py = py)
    mapped <- .py_call(do.call(py$fusemap$map_query,
                               c(list(model@path, unname(qdata)),
                                 list(reference = unname(rdata), callback = .progress("Mapping the query")),
                                 opts)),
                       "mapping the query")
    .py_call(mapped$save(model.dir, overwrite = overwrite), "saving the mapped model")
    emb <- .embeddings(qdata, py)
    record <- .py_call(mapped$run_record(), "reading the run record")
    .report_run(record)
    out <- if (single) spes[[1]] else .combine(spes, secs)
    out <- .add_results(out, emb, secs, model.dir, record, assay.type)
    out <- .add_novelty(out, qdata, secs, py)
    S4Vectors::metadata(out)$FuseMap$reference_model_dir <- model@path
    out
}

# The query cells' novelty against the reference, as map_query wrote it into each section's obs
# (fusemap_novelty: share of reference cells nearer the reference than this cell, 0-1;
# fusemap_novelty_cluster: its query cluster), into colData FuseMap_novelty and
# FuseMap_novelty_cluster (NA for cells of no query section).
.add_novelty <- function(out, adatas, secs, py) {
    cols <- c("fusemap_novelty", "fusemap_novelty_cluster")
    frames <- lapply(adatas, function(a) {
        .frame_from_part(.unwire(.py_call(py$io$obs_for_r(a, as.list(cols)), "reading the novelty")), NULL)
    })
    for (col in cols) {
        if (!all(vapply(frames, function(f) col %in% colnames(f), logical(1)))) next
        v <- rep(NA, ncol(out))
        for (i in seq_along(frames)) v[secs$sections[[i]]$cols_global] <- as.vector(frames[[i]][[col]])
        SummarizedExperiment::colData(out)[[sub("^fusemap_", "FuseMap_", col)]] <-
            if (col == "fusemap_novelty") as.numeric(v) else factor(v)
    }
    out
}

# The data of every section of `model`, taken from fusemap()/mapQuery() results: the cells of its
# FuseMap_section, the genes it was trained on, the assay it was trained from.
.model_sections <- function(data, model, arg, only = NULL) {
    spes <- if (methods::is(data, "SingleCellExperiment")) list(data) else data
    if (!is.list(spes) || !all(vapply(spes, methods::is, logical(1), "SingleCellExperiment"))) {
        cli::cli_abort("{.arg {arg}} must be a SpatialExperiment returned by {.fn fusemap}, or a list of them.")
    }
    panels <- model@summary$panels
    if (!is.null(only)) panels <- panels[names(panels) %in% only]
    out <- list()
    for (name in names(panels)) {
        hit <- NULL
        for (spe in spes) {
            sec <- spe$FuseMap_section
            if (!is.null(sec) && any(sec == name, na.rm = TRUE)) {
                hit <- spe
                break
            }
        }
        if (is.null(hit)) {
            cli::cli_abort(c("{.arg {arg}} holds no cells of model section {.val {name}}.",
                             i = paste("Pass the SpatialExperiment(s) that {.fn fusemap} (and",
                                       "{.fn mapQuery}) returned for the model's sections:",
                                       "{.val {names(panels)}}.")))
        }
        assay.type <- S4Vectors::metadata(hit)$FuseMap$assay.type
        if (is.null(assay.type)) assay.type <- "counts"
        genes <- panels[[name]]
        cols <- which(hit$FuseMap_section == name)
        whole <- sectionPanel(hit, name)
        rows <- match(genes, rownames(whole))
        if (anyNA(rows) || !assay.type %in% SummarizedExperiment::assayNames(whole)) {
            cli::cli_abort(c("{.arg {arg}}: section {.val {name}} lacks the data it was trained on.",
                             x = "{sum(is.na(rows))} of its {length(genes)} genes are missing, or assay {.val {assay.type}} is absent."))
        }
        # a section without coordinates (a single-cell reference) has NA rows in a joined result
        coords <- if (.has_coords(whole)) SpatialExperiment::spatialCoords(whole) else NULL
        if (!is.null(coords) && all(is.na(coords))) coords <- NULL
        out[[length(out) + 1L]] <- list(
            name = name, cols = cols, cols_global = cols,
            counts = SummarizedExperiment::assay(whole, assay.type, withDimnames = FALSE)[rows, , drop = FALSE],
            coords = coords, genes = genes)
    }
    out
}

#' Transfer labels from reference cells to query cells
#'
#' Trains a classifier on the reference cells' FuseMap embeddings and
#' predicts the query cells' labels, with an uncertainty (1 minus the
#' classifier's highest class probability). Cell types are best transferred
#' with the cell embedding, tissue regions with the spatial embedding. With
#' \code{hierarchy}, finer label columns are transferred within each
#' predicted class of the level above. This calls Python's
#' \code{fusemap.transfer_labels}.
#'
#' @param x The query: a \code{SpatialExperiment} with FuseMap embeddings in
#'   the reference's space (returned by \code{\link{mapQuery}()}).
#' @param reference A \code{SpatialExperiment} with FuseMap embeddings and the
#'   label column(s) (returned by \code{\link{fusemap}()}).
#' @param labels The \code{colData} column of \code{reference} to transfer.
#' @param embedding \code{"cell"} (\code{FuseMap_cell}) or \code{"spatial"}
#'   (\code{FuseMap_spatial}).
#' @param method \code{"mlp"} (a small neural network) or \code{"knn"}.
#' @param hierarchy Optional \code{colData} column(s) of finer levels nested
#'   in \code{labels}.
#' @param ... Further options of the Python function with R names
#'   (\code{min.cells}, \code{rare}, \code{holdout}, \code{n.neighbors},
#'   \code{max.train.cells}, \code{seed}, \code{novelty.threshold}: query
#'   cells farther from the reference than this share of reference cells are
#'   \code{"unassigned"}; suggested 0.99; default \code{NULL} assigns every cell).
#' @return \code{x} with, for each level, \code{colData} columns
#'   \code{FuseMap_<label>} (predicted class, a factor) and
#'   \code{FuseMap_<label>_uncertainty}, \code{FuseMap_<labels>_novelty}
#'   (0-1, on the cell embedding), and
#'   \code{metadata()$FuseMap_transfer[[labels]]}: held-out accuracy and
#'   macro-F1 on reference cells, classes, rare classes.
#' @seealso \code{\link{mapQuery}}.
#' @examples
#' \donttest{
#' if (fusemapAvailable()) {
#'     set.seed(1)
#'     make <- function(ids) {
#'         spe <- SpatialExperiment::SpatialExperiment(
#'             assays = list(counts = matrix(rpois(20 * length(ids), 3), nrow = 20,
#'                 dimnames = list(paste0("g", 1:20), NULL))),
#'             colData = S4Vectors::DataFrame(sample_id = ids),
#'             spatialCoords = cbind(x = runif(length(ids)), y = runif(length(ids))))
#'         spe$type <- rep(c("A", "B"), length.out = length(ids))
#'         spe
#'     }
#'     ref <- fusemap(make(rep(c("a", "b"), each = 60)), model.dir = tempfile(),
#'                    max.epochs = 2, n.hidden = 16)
#'     query <- mapQuery(make(rep("q", 60)), ref, model.dir = tempfile(), max.epochs = 2)
#'     query <- transferLabels(query, ref, labels = "type")
#'     table(query$FuseMap_type)
#' }
#' }
#' @export
transferLabels <- function(x, reference, labels, embedding = c("cell", "spatial"),
                           method = c("mlp", "knn"), hierarchy = NULL, ...) {
    embedding <- match.arg(embedding)
    method <- match.arg(method)
    .check_scalar_string(labels, "labels")
    levels <- c(labels, hierarchy)
    key <- paste0("FuseMap_", embedding)
    for (arg in c("x", "reference")) {
        obj <- if (arg == "x") x else reference
        if (!methods::is(obj, "SingleCellExperiment") ||
            !key %in% SingleCellExperiment::reducedDimNames(obj)) {
            cli::cli_abort(c("{.arg {arg}} must be a SpatialExperiment with reducedDim {.val {key}}.",
                             i = if (arg == "x") "Map the query first with {.fn mapQuery}."
                                 else "Pass the result of {.fn fusemap}."))
        }
    }
    miss <- setdiff(levels, colnames(SummarizedExperiment::colData(reference)))
    if (length(miss)) {
        cli::cli_abort(c("{.val {miss}} {?is/are} not {?a column/columns} of colData({.arg reference}).",
                         i = "Columns: {.val {colnames(SummarizedExperiment::colData(reference))}}."))
    }
    py <- .fusemap_py()
    opts <- list(...)
    if (length(opts)) {
        if (is.null(names(opts)) || any(!nzchar(names(opts)))) {
            cli::cli_abort("Options in {.arg ...} must be named (e.g. {.code min.cells = 5}).")
        }
        names(opts) <- gsub(".", "_", names(opts), fixed = TRUE)
        opts <- Map(function(v, k) {
            if (!k %in% c("holdout", "novelty_threshold") && is.numeric(v) && length(v) == 1L && !is.na(v) && v == round(v)) as.integer(v) else v
        }, opts, names(opts))
    }
    ref_ad <- .embedding_anndata(reference, levels, py)
    q_ad <- .embedding_anndata(x, character(0), py)
    res <- .py_call(do.call(py$fusemap$transfer_labels,
                            c(list(ref_ad, q_ad, labels, embedding = embedding, method = method,
                                   hierarchy = if (length(hierarchy)) as.list(hierarchy) else NULL,
                                   write = FALSE), opts)),
                    "transferring labels")
    pred <- .unwire(.py_call(py$io$frame_for_r(res$predictions), "reading predictions"))
    frame <- .frame_from_part(pred, NULL)
    for (col in setdiff(colnames(frame), "section")) {
        v <- frame[[col]]
        # Python names them fusemap_<label>; R results use one prefix, FuseMap_
        SummarizedExperiment::colData(x)[[sub("^fusemap_", "FuseMap_", col)]] <- if (is.character(v)) factor(v) else v
    }
    S4Vectors::metadata(x)$FuseMap_transfer[[labels]] <- .py_call(res$summary(), "reading the summary")
    x
}

# An AnnData holding only a SpatialExperiment's FuseMap embeddings and some colData columns.
.embedding_anndata <- function(x, columns, py) {
    n <- ncol(x)
    cols <- lapply(columns, function(c) .column_to_part(SummarizedExperiment::colData(x)[[c]]))
    emb <- function(k) {
        m <- as.matrix(SingleCellExperiment::reducedDim(x, k, withDimnames = FALSE))
        list(values = as.numeric(t(m)), ncol = ncol(m))
    }
    have <- intersect(c("FuseMap_cell", "FuseMap_spatial"), SingleCellExperiment::reducedDimNames(x))
    parts <- list(n_obs = n, n_vars = 0L, obs_names = paste0("cell", seq_len(n)),
                  var_names = character(0), X_name = "counts", assay_names = character(0),
                  assays = list(), obs = list(names = as.character(columns), columns = cols),
                  var = list(names = character(0), columns = list()), spatial = NULL,
                  spatial_names = character(0), reduced_names = have, reduced = lapply(have, emb))
    .py_call(py$io$anndata_from_r(.wire(parts)), "preparing embeddings")
}

#' Impute genes from the FuseMap embeddings
#'
#' Imputed expression of any gene of the model's vocabulary (the union of all
#' panels, including genes a section did not measure) for the cells of
#' \code{x}, on the model's preprocessed scale (log1p of library-size
#' normalised counts divided by the section's per-gene standard deviation).
#' This calls Python's \code{fusemap.impute}.
#'
#' @param x A \code{SpatialExperiment} returned by \code{\link{fusemap}()} or
#'   \code{\link{mapQuery}()}: its cells' sections (\code{FuseMap_section})
#'   must be sections of the model, with the genes they were trained on.
#' @param genes Gene symbols to impute (matched as the model matches genes);
#'   \code{NULL} imputes the whole vocabulary.
#' @param model The \code{\link{FuseMapModel}}; default \code{FuseMapModel(x)}.
#' @param method \code{"decoder"} (default: the read-out the model was
#'   trained to reconstruct, spatially smoothed) or \code{"product"} (the
#'   plain product of cell and gene embeddings).
#' @param name Name of the alternative experiment that receives the result.
#' @return \code{x} with \code{altExp(x, name)}: a
#'   \code{SummarizedExperiment} of the imputed genes x the cells of \code{x},
#'   assay \code{"imputed"}, and \code{rowData} column \code{measured_in}
#'   (sections of \code{x} that measured the gene).
#' @seealso \code{\link{fusemap}}, \code{\link{mapQuery}}.
#' @examples
#' \donttest{
#' if (fusemapAvailable()) {
#'     set.seed(1)
#'     spe <- SpatialExperiment::SpatialExperiment(
#'         assays = list(counts = matrix(rpois(3000, 3), nrow = 20,
#'             dimnames = list(paste0("g", 1:20), paste0("c", 1:150)))),
#'         colData = S4Vectors::DataFrame(sample_id = rep(c("a", "b"), each = 75)),
#'         spatialCoords = cbind(x = runif(150), y = runif(150)))
#'     out <- fusemap(spe, model.dir = tempfile(), max.epochs = 2, n.hidden = 16)
#'     out <- imputeGenes(out, genes = c("g1", "g2"))
#'     SingleCellExperiment::altExp(out, "FuseMap_imputed")
#' }
#' }
#' @export
imputeGenes <- function(x, genes = NULL, model = NULL, method = c("decoder", "product"),
                        name = "FuseMap_imputed") {
    method <- match.arg(method)
    if (!methods::is(x, "SpatialExperiment") || is.null(x$FuseMap_section)) {
        cli::cli_abort(c("{.arg x} must be a SpatialExperiment returned by {.fn fusemap} or {.fn mapQuery}.",
                         x = "It has no {.field FuseMap_section} column."))
    }
    if (is.null(model)) model <- FuseMapModel(x)
    if (!methods::is(model, "FuseMapModel")) {
        cli::cli_abort("{.arg model} must be a FuseMapModel; found {.cls {class(model)}}.")
    }
    if (!is.null(genes) && (!is.character(genes) || !length(genes) || anyNA(genes))) {
        cli::cli_abort("{.arg genes} must be gene symbols (a character vector) or NULL for all genes.")
    }
    present <- unique(x$FuseMap_section)
    unknown <- setdiff(present, names(model@summary$panels))
    if (length(unknown)) {
        cli::cli_abort(c("Section{?s} {.val {unknown}} of {.arg x} {?is/are} not in the model.",
                         i = "Model sections: {.val {names(model@summary$panels)}}."))
    }
    secs <- .model_sections(x, model, "x", only = present)
    py <- .fusemap_py()
    data <- lapply(secs, .section_anndata, py = py)
    res <- .py_call({
        fm_model <- py$fusemap$FuseMap$load(model@path)
        result <- py$fusemap$impute(fm_model, unname(data), if (is.null(genes)) NULL else as.list(genes),
                                    method = method)
        py$io$imputed_for_r(result)
    }, "imputing genes")
    res <- .unwire(res)
    cols <- as.integer(sub("^cell", "", res$obs_names))
    mat <- matrix(NA_real_, nrow = length(res$var_names), ncol = ncol(x),
                  dimnames = list(res$var_names, colnames(x)))
    mat[, cols] <- t(res$values)
    rd <- S4Vectors::DataFrame(measured_in = res$measured_in, row.names = res$var_names)
    se <- SummarizedExperiment::SummarizedExperiment(assays = list(imputed = mat), rowData = rd,
                                                     metadata = list(method = method, model_dir = model@path))
    SingleCellExperiment::altExp(x, name) <- se
    x
}
