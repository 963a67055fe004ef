#' Integrate spatial transcriptomics sections with FuseMap
#'
#' Trains a FuseMap model on tissue sections that may come from different
#' technologies and gene panels, and returns every input cell with two
#' embeddings: \code{reducedDim(., "FuseMap_cell")} (from the cell's own
#' expression: cell identity) and \code{reducedDim(., "FuseMap_spatial")}
#' (from its spatial neighbourhood: tissue region). The model is saved to
#' \code{model.dir}; \code{metadata(.)$FuseMap} holds its location
#' (\code{model_dir}), the run record (\code{run}) and the sections
#' (\code{sections}); \code{\link{FuseMapModel}(result)} gives the model.
#'
#' Sections are the samples of \code{x}: one \code{SpatialExperiment} is split
#' by its \code{sample.id} column (in order of first appearance, or of the
#' factor levels); in a list, each element is split the same way. A section
#' in a list is named by its sample id, or, when the list is named and the
#' element holds one sample, by the element's name; section names must be
#' unique. Each section needs raw counts in \code{assay.type}, gene symbols as
#' row names (matched across sections ignoring case) and at least two columns
#' in \code{spatialCoords}. Problems are reported before any work is done.
#'
#' A \code{SingleCellExperiment} that is not a \code{SpatialExperiment} (a
#' dissociated single-cell reference, thousands of genes and curated labels)
#' is a section without coordinates: each of its cells is its own only
#' neighbour, so its spatial embedding follows from its cell embedding; it is
#' aligned with the tissue sections through the cell embedding and kept out
#' of the spatial-embedding alignment. Its genes join the model, so
#' \code{\link{imputeGenes}()} reads them out in every tissue section and
#' \code{\link{transferLabels}()} carries its labels onto them. In the joined
#' result its cells have \code{NA} \code{spatialCoords}.
#'
#' Options of the Python training pass through \code{...} with R names: a dot
#' in an R name is an underscore in Python (\code{max.epochs} is
#' \code{max_epochs}). Common ones: \code{max.epochs} (300 per phase; phase 1
#' also ends when its validation loss improves by less than \code{plateau.pretrain}, 1 \%,
#' over 10 epochs), \code{n.latent} (64), \code{n.hidden} (512), \code{seed} (0), \code{method} (spatial graph:
#' \code{"delaunay"}, \code{"knn"} or \code{"radius"}), \code{max.edge.length},
#' \code{spatial.mode} (\code{"aggregate"} or \code{"gcn"}), \code{device}
#' (\code{"auto"}, \code{"cpu"}, \code{"cuda"}), \code{normalized} (input is
#' already log-normalised), \code{shift.sections} (\code{TRUE}: after training each
#' section's embeddings move by one vector so that matched cells across sections
#' coincide on average). An unknown name is an error that lists them all.
#'
#' @param x A \code{SpatialExperiment}, or a list of them; elements may be
#'   \code{SingleCellExperiment}s without coordinates (single-cell references,
#'   see Details).
#' @param assay.type The assay holding raw counts.
#' @param sample.id The \code{colData} column naming each cell's section.
#' @param model.dir Where to save the trained model. Default: a new folder
#'   \code{fusemap-model-<date>-<time>} in the working directory, or in the
#'   folder named by \code{options(FuseMap.models = )}; a message says where.
#'   The result keeps this path (\code{metadata(.)$FuseMap$model_dir}), so the
#'   folder should live as long as the result.
#' @param overwrite Replace an existing \code{model.dir}.
#' @param ... Training options with R names (see Details).
#' @return A \code{SpatialExperiment} holding all input cells in input order.
#'   For one \code{SpatialExperiment}, it is \code{x} with the embeddings,
#'   a \code{FuseMap_section} column and \code{metadata()$FuseMap} added. For a
#'   list, the elements are joined without inventing values: the assays'
#'   rows are the genes that every element measured (no \code{NA}, no zeros
#'   for unmeasured genes); each element's other genes stay in
#'   \code{metadata(.)$FuseMap_panels} (one \code{SummarizedExperiment} per
#'   element, its cells only), and \code{\link{sectionPanel}()} gives a
#'   section back with its whole panel; the genes of every panel for every
#'   cell come from \code{\link{imputeGenes}()}. \code{colData} columns are
#'   the union, assays present in every element are kept, \code{imgData} are
#'   joined, and each element's \code{metadata()} is kept in
#'   \code{metadata(.)$FuseMap_inputs}; what cannot be joined
#'   (\code{reducedDims}, \code{altExps} of the inputs) is named in a
#'   message.
#' @seealso \code{\link{mapQuery}}, \code{\link{transferLabels}},
#'   \code{\link{imputeGenes}}, \code{\link{FuseMapModel}}.
#' @examples
#' \donttest{
#' if (fusemapAvailable()) {
#'     set.seed(1)
#'     spe <- SpatialExperiment::SpatialExperiment(
#'         assays = list(counts = matrix(rpois(3000, 3), nrow = 20,
#'             dimnames = list(paste0("g", 1:20), paste0("c", 1:150)))),
#'         colData = S4Vectors::DataFrame(sample_id = rep(c("a", "b"), each = 75)),
#'         spatialCoords = cbind(x = runif(150), y = runif(150)))
#'     out <- fusemap(spe, model.dir = tempfile(), max.epochs = 2, n.hidden = 16, n.latent = 4)
#'     dim(SingleCellExperiment::reducedDim(out, "FuseMap_cell"))
#' }
#' }
#' @export
setGeneric("fusemap", function(x, assay.type = "counts", sample.id = "sample_id",
                               model.dir = NULL, overwrite = FALSE, ...)
    standardGeneric("fusemap"), signature = "x")

#' @rdname fusemap
#' @export
setMethod("fusemap", "SpatialExperiment", function(x, assay.type = "counts",
                                                   sample.id = "sample_id", model.dir = NULL,
                                                   overwrite = FALSE, ...) {
    .run_fusemap(list(x), single = TRUE, assay.type, sample.id, model.dir, overwrite, list(...))
})

#' @rdname fusemap
#' @export
setMethod("fusemap", "list", function(x, assay.type = "counts", sample.id = "sample_id",
                                      model.dir = NULL, overwrite = FALSE, ...) {
    .run_fusemap(x, single = FALSE, assay.type, sample.id, model.dir, overwrite, list(...))
})

#' @rdname fusemap
#' @export
setMethod("fusemap", "SingleCellExperiment", function(x, assay.type = "counts",
                                                      sample.id = "sample_id", model.dir = NULL,
                                                      overwrite = FALSE, ...) {
    .run_fusemap(list(x), single = TRUE, assay.type, sample.id, model.dir, overwrite, list(...))
})

#' @rdname fusemap
#' @export
setMethod("fusemap", "ANY", function(x, assay.type = "counts", sample.id = "sample_id",
                                     model.dir = NULL, overwrite = FALSE, ...) {
    .not_spatial(x, "x")
})

# The error for an input that is neither a SpatialExperiment, a SingleCellExperiment nor a list.
.not_spatial <- function(obj, where) {
    cli::cli_abort(c("{.arg {where}} must be a SpatialExperiment, a SingleCellExperiment (a section without coordinates) or a list of them.",
                     x = "Found an object of class {.cls {class(obj)}}.",
                     i = "A matrix or data frame: build one with {.code SpatialExperiment::SpatialExperiment(assays = list(counts = m), spatialCoords = xy)}."),
                   call = NULL)
}

# Whether a section object has coordinates: a SpatialExperiment does; a SingleCellExperiment that
# is not one is a section without coordinates (a dissociated single-cell reference).
.has_coords <- function(obj) methods::is(obj, "SpatialExperiment")

# The coordinates of a section object: spatialCoords, or NA rows (ncol columns) for one without.
.coords_of <- function(obj, ncol = 2L, names = NULL) {
    if (.has_coords(obj)) return(SpatialExperiment::spatialCoords(obj))
    matrix(NA_real_, nrow = ncol(obj), ncol = ncol, dimnames = list(NULL, names))
}

.run_fusemap <- function(spes, single, assay.type, sample.id, model.dir, overwrite, opts) {
    secs <- .sections(spes, single, assay.type, sample.id, opts)
    py <- .fusemap_py()
    opts <- .python_options(opts, py)
    model.dir <- .model_dir_arg(model.dir, overwrite)
    adatas <- lapply(secs$sections, .section_anndata, py = py)
    model <- .py_call(do.call(py$fusemap$integrate,
                              c(list(unname(adatas)), list(save = model.dir, overwrite = overwrite,
                                                           callback = .progress("Training FuseMap")),
                                opts)),
                      "training the model")
    emb <- .embeddings(adatas, py)
    record <- .py_call(model$run_record(), "reading the run record")
    .report_run(record)
    out <- if (single) spes[[1]] else .combine(spes, secs)
    .add_results(out, emb, secs, model.dir, record, assay.type)
}

# The run's balance-weights, query-novelty and section-mixing sentences, as messages (silenced with
# options(FuseMap.progress = FALSE)); a mixing failure also arrives as an R warning.
.report_run <- function(record) {
    if (!isTRUE(getOption("FuseMap.progress", TRUE))) {
        return(invisible(NULL))
    }
    for (line in c(record$balance_summary, record$novelty_summary, record$mixing_summary)) {
        if (length(line) && nzchar(line)) cli::cli_inform(c(i = "{line}"))
    }
    invisible(NULL)
}

# The embeddings of every section, rows in the order of secs (the sections' cells in turn).
.embeddings <- function(adatas, py) {
    get <- function(key) {
        do.call(rbind, lapply(adatas, function(a) .unwire(.py_call(py$io$obsm_for_r(a, key),
                                                                   "reading embeddings"))))
    }
    list(cell = get("X_fusemap_cell"), spatial = get("X_fusemap_spatial"))
}

# Put the embeddings (rows in section order) into `out` (cells in input order).
.add_results <- function(out, emb, secs, model.dir, record, assay.type, key = "FuseMap") {
    pos <- unlist(lapply(secs$sections, `[[`, "cols_global"))
    place <- function(m, prefix) {
        full <- matrix(NA_real_, nrow = ncol(out), ncol = ncol(m))
        full[pos, ] <- m
        dimnames(full) <- list(colnames(out), paste0(prefix, seq_len(ncol(m))))
        full
    }
    SingleCellExperiment::reducedDim(out, "FuseMap_cell") <- place(emb$cell, "cell_")
    SingleCellExperiment::reducedDim(out, "FuseMap_spatial") <- place(emb$spatial, "spatial_")
    section <- character(ncol(out))
    for (s in secs$sections) section[s$cols_global] <- s$name
    out$FuseMap_section <- section
    S4Vectors::metadata(out)[[key]] <- list(
        model_dir = normalizePath(model.dir), run = record, assay.type = assay.type,
        sections = data.frame(section = secs$names,
                              n_cells = vapply(secs$sections, function(s) length(s$cols), 1L)))
    out
}

# -- input checks -----------------------------------------------------------------------------------

# Check every input and split it into sections, before any work. Each section: name, element index,
# cols (columns within its element), cols_global (columns in the joined result), counts, coords.
.sections <- function(spes, single, assay.type, sample.id, opts, arg = "x") {
    if (!is.list(spes) || length(spes) == 0L) {
        cli::cli_abort("{.arg {arg}} is an empty list; pass at least one SpatialExperiment.")
    }
    bad <- which(!vapply(spes, methods::is, logical(1), "SingleCellExperiment"))
    if (length(bad)) {
        .not_spatial(spes[[bad[1]]], if (single) arg else sprintf("%s[[%d]]", arg, bad[1]))
    }
    .check_scalar_string(assay.type, "assay.type")
    .check_scalar_string(sample.id, "sample.id")
    normalized <- isTRUE(opts$normalized)
    offset <- 0L
    sections <- list()
    for (i in seq_along(spes)) {
        spe <- spes[[i]]
        where <- if (single) arg else sprintf("%s[[%d]]", arg, i)
        .check_spe(spe, where, assay.type, sample.id, normalized)
        sid <- SummarizedExperiment::colData(spe)[[sample.id]]
        lev <- if (is.factor(sid)) intersect(levels(sid), as.character(sid)) else unique(as.character(sid))
        sid <- as.character(sid)
        counts <- SummarizedExperiment::assay(spe, assay.type, withDimnames = FALSE)
        coords <- if (.has_coords(spe)) SpatialExperiment::spatialCoords(spe) else NULL
        list_name <- if (!single && !is.null(names(spes)) && nzchar(names(spes)[i])) names(spes)[i] else NULL
        for (s in lev) {
            cols <- which(sid == s)
            name <- if (is.null(list_name)) s else if (length(lev) == 1L) list_name else paste(list_name, s, sep = ".")
            sections[[length(sections) + 1L]] <- list(
                name = name, element = i, cols = cols, cols_global = offset + cols,
                counts = counts[, cols, drop = FALSE],
                coords = if (is.null(coords)) NULL else coords[cols, , drop = FALSE],
                genes = rownames(spe))
        }
        offset <- offset + ncol(spe)
    }
    names <- vapply(sections, `[[`, character(1), "name")
    dup <- unique(names[duplicated(names)])
    if (length(dup)) {
        cli::cli_abort(c("Section names must be unique; {.val {dup}} occur{?s/} more than once.",
                         i = paste("Sections are the values of {.field {sample.id}}. Give each section",
                                   "its own sample id, or name the list",
                                   "(list(A = spe1, B = spe2)).")))
    }
    if (!single) {
        nc <- unique(vapply(Filter(.has_coords, spes), function(s) ncol(SpatialExperiment::spatialCoords(s)), 1L))
        if (length(nc) > 1L) {
            cli::cli_abort(c("All elements of {.arg {arg}} need the same number of spatial dimensions.",
                             x = "spatialCoords have {nc} columns."))
        }
    }
    list(sections = sections, names = names)
}

.check_scalar_string <- function(v, name) {
    if (!is.character(v) || length(v) != 1L || is.na(v)) {
        cli::cli_abort("{.arg {name}} must be one string; found {.obj_type_friendly {v}}.")
    }
}

.check_spe <- function(spe, where, assay.type, sample.id, normalized) {
    an <- SummarizedExperiment::assayNames(spe)
    if (!assay.type %in% an) {
        cli::cli_abort(c("{.arg assay.type} = {.val {assay.type}} is not an assay of {.arg {where}}.",
                         i = "Its assays: {.val {an}}. Name the assay holding raw counts."))
    }
    cd <- colnames(SummarizedExperiment::colData(spe))
    if (!sample.id %in% cd) {
        cli::cli_abort(c("{.arg sample.id} = {.val {sample.id}} is not a column of colData({.arg {where}}).",
                         i = "Its columns: {.val {cd}}. Name the column that gives each cell's section."))
    }
    if (anyNA(SummarizedExperiment::colData(spe)[[sample.id]])) {
        cli::cli_abort(c("colData({.arg {where}})${sample.id} has missing values.",
                         i = "Every cell needs a section: fill them or drop those cells."))
    }
    coords <- if (.has_coords(spe)) SpatialExperiment::spatialCoords(spe) else NULL
    if (.has_coords(spe) && (is.null(coords) || ncol(coords) < 2L)) {
        cli::cli_abort(c("{.arg {where}} has no spatial coordinates: spatialCoords() has {NCOL(coords)} column{?s}.",
                         i = paste("FuseMap builds each section's neighbourhood graph from them. Set",
                                   "{.code spatialCoords(x) <- cbind(x = ..., y = ...)}, or build",
                                   "the object with {.code SpatialExperiment(..., spatialCoords = )}.")))
    }
    if (!is.null(coords) && any(!is.finite(coords))) {
        cli::cli_abort(c("spatialCoords({.arg {where}}) hold {sum(!is.finite(coords))} missing or infinite value{?s}.",
                         i = "Drop those cells or fix their coordinates."))
    }
    if (is.null(rownames(spe))) {
        cli::cli_abort(c("{.arg {where}} has no row names.",
                         i = "FuseMap matches genes across sections by symbol: set {.code rownames(x)}."))
    }
    .check_counts(SummarizedExperiment::assay(spe, assay.type, withDimnames = FALSE),
                  sprintf("assay(%s, \"%s\")", where, assay.type), normalized)
}

.check_counts <- function(m, where, normalized) {
    v <- if (methods::is(m, "sparseMatrix")) {
        methods::as(methods::as(m, "CsparseMatrix"), "dMatrix")@x
    } else {
        as.vector(as.matrix(m))
    }
    if (!is.numeric(v)) {
        cli::cli_abort("{where} is not numeric.")
    }
    if (anyNA(v) || any(is.infinite(v))) {
        cli::cli_abort(c("{where} holds {sum(!is.finite(v))} NA/NaN/infinite value{?s}.",
                         i = "Replace them (e.g. with 0) or drop those cells."))
    }
    if (any(v < 0)) {
        cli::cli_abort(c("{where} holds {sum(v < 0)} negative value{?s} (min {signif(min(v), 3)}).",
                         i = "FuseMap needs raw counts; centred or scaled values cannot be used."))
    }
    if (!normalized) {
        frac <- abs(v - round(v)) > 1e-6
        if (any(frac)) {
            cli::cli_abort(c("{where} does not hold raw counts: {sum(frac)} value{?s} are not whole numbers (e.g. {signif(utils::head(v[frac], 3), 4)}).",
                             i = paste("Pass the assay with raw counts ({.code assay.type = \"counts\"}),",
                                       "or {.code normalized = TRUE} if the values are already",
                                       "library-size normalised and log-transformed.")))
        }
    }
    invisible(TRUE)
}

.model_dir_arg <- function(model.dir, overwrite) {
    if (is.null(model.dir)) {
        root <- getOption("FuseMap.models", getwd())
        stem <- file.path(root, format(Sys.time(), "fusemap-model-%Y%m%d-%H%M%S"))
        model.dir <- stem
        k <- 1L
        while (file.exists(model.dir)) {
            k <- k + 1L
            model.dir <- sprintf("%s-%d", stem, k)
        }
        cli::cli_inform(c(i = paste("Saving the model to {.path {model.dir}}; the result refers to it",
                                    "(pass {.arg model.dir} to choose the folder).")))
        return(normalizePath(model.dir, mustWork = FALSE))
    }
    if (!is.character(model.dir) || length(model.dir) != 1L) {
        cli::cli_abort("{.arg model.dir} must be one directory path.")
    }
    if (file.exists(model.dir) && !isTRUE(overwrite)) {
        cli::cli_abort(c("{.arg model.dir} {.path {model.dir}} already exists.",
                         i = "Pass {.code overwrite = TRUE} to replace it, or choose another directory."))
    }
    path.expand(model.dir)
}

# R-named training options -> Python keyword arguments, typed like the configuration's defaults.
.python_options <- function(opts, py, reserved = "layer") {
    if (!length(opts)) {
        return(list())
    }
    nm <- names(opts)
    if (is.null(nm) || any(!nzchar(nm))) {
        cli::cli_abort("Training options in {.arg ...} must be named (e.g. {.code max.epochs = 50}).")
    }
    defaults <- .option_defaults(py)
    pyname <- gsub(".", "_", nm, fixed = TRUE)
    bad <- nm[pyname %in% reserved]
    if (length(bad)) {
        cli::cli_abort(c("Option {.arg {bad}} is set by {.arg assay.type}; do not pass it."))
    }
    unknown <- nm[!pyname %in% names(defaults)]
    if (length(unknown)) {
        known <- gsub("_", ".", setdiff(names(defaults), reserved), fixed = TRUE)
        near <- known[apply(utils::adist(unknown, known), 1, which.min)]
        cli::cli_abort(c("Unknown training option{?s}: {.arg {unknown}}.",
                         i = "Did you mean {.arg {near}}?",
                         i = "Known options (R names): {paste(known, collapse = ', ')}."))
    }
    out <- Map(function(v, key) {
        d <- defaults[[key]]
        if (is.integer(d) && is.numeric(v) && length(v) == 1L && !is.na(v) && v == round(v)) {
            v <- as.integer(v)
        } else if (is.double(d) && is.integer(v)) {
            v <- as.double(v)
        }
        v
    }, opts, pyname)
    names(out) <- pyname
    out
}

.option_defaults <- function(py) {
    if (is.null(.py$defaults)) {
        cfg <- .py_call(py$fusemap$FuseMapConfig()$to_dict(), "reading the configuration")
        flat <- list()
        for (part in cfg) {
            for (key in names(part)) {
                flat[key] <- list(part[[key]])
            }
        }
        .py$defaults <- flat
    }
    .py$defaults
}

# A minimal AnnData for one section: counts (cells x genes), coordinates (none for a section
# without them), and its name. Cells are named "cell<column in the result>", unique across the
# sections of one call.
.section_anndata <- function(s, py) {
    n <- ncol(s$counts)
    parts <- list(n_obs = n, n_vars = nrow(s$counts), obs_names = paste0("cell", s$cols_global),
                  var_names = s$genes, X_name = "counts", assay_names = "counts",
                  assays = list(.matrix_to_part(s$counts)),
                  obs = list(names = "section",
                             columns = list(.column_to_part(rep(s$name, n)))),
                  var = list(names = character(0), columns = list()),
                  spatial = if (is.null(s$coords)) NULL else list(values = as.numeric(t(s$coords)), ncol = ncol(s$coords)),
                  spatial_names = character(0), reduced_names = character(0), reduced = list())
    .py_call(py$io$anndata_from_r(.wire(parts)), sprintf("preparing section %s", s$name))
}

# -- joining a list of SpatialExperiments --------------------------------------------------------------

.combine <- function(spes, secs) {
    shared <- Reduce(intersect, lapply(spes, rownames))
    same <- all(vapply(spes, function(s) identical(rownames(s), shared), logical(1)))
    an <- Reduce(intersect, lapply(spes, SummarizedExperiment::assayNames))
    cn <- .joined_colnames(spes, secs)
    rows_of <- function(s, genes) match(genes, rownames(s))
    assays <- lapply(an, function(a) {
        blocks <- lapply(spes, function(s) {
            SummarizedExperiment::assay(s, a, withDimnames = FALSE)[rows_of(s, shared), , drop = FALSE]
        })
        m <- Reduce(methods::cbind2, blocks)
        dimnames(m) <- list(shared, cn)
        m
    })
    names(assays) <- an
    cd <- .rbind_frames(lapply(spes, SummarizedExperiment::colData))
    rownames(cd) <- cn
    first <- Filter(.has_coords, spes)
    first <- if (length(first)) SpatialExperiment::spatialCoords(first[[1]]) else matrix(0, 0, 2)
    coords <- do.call(rbind, lapply(spes, .coords_of, ncol = ncol(first), names = colnames(first)))
    rownames(coords) <- NULL
    out <- SpatialExperiment::SpatialExperiment(assays = assays, colData = cd,
                                                rowData = .first_row_data(spes, shared),
                                                spatialCoords = coords)
    ends <- cumsum(vapply(spes, ncol, 1L))
    if (!same) {
        panels <- lapply(seq_along(spes), function(i) {
            s <- spes[[i]]
            own <- setdiff(rownames(s), shared)
            cols <- if (i == 1L) seq_len(ends[1]) else (ends[i - 1L] + 1L):ends[i]
            se <- SummarizedExperiment::SummarizedExperiment(
                assays = lapply(stats::setNames(an, an), function(a)
                    SummarizedExperiment::assay(s, a, withDimnames = FALSE)[rows_of(s, own), , drop = FALSE]),
                rowData = SummarizedExperiment::rowData(s)[own, , drop = FALSE])
            dimnames(se) <- list(own, cn[cols])
            se
        })
        names(panels) <- vapply(seq_along(spes), function(i) {
            paste(unique(vapply(Filter(function(x) x$element == i, secs$sections), `[[`, "", "name")),
                  collapse = "+")
        }, "")
        S4Vectors::metadata(out)$FuseMap_panels <- panels
    }
    inputs <- lapply(spes, S4Vectors::metadata)
    if (any(lengths(inputs) > 0L)) {
        S4Vectors::metadata(out)$FuseMap_inputs <- inputs
    }
    imgs <- lapply(Filter(.has_coords, spes), SpatialExperiment::imgData)
    if (length(imgs) && any(vapply(imgs, NROW, 1L) > 0L)) {
        SpatialExperiment::imgData(out) <- do.call(rbind, imgs)
    }
    dropped <- c(if (any(lengths(lapply(spes, SingleCellExperiment::reducedDimNames)))) "reducedDims",
                 if (any(lengths(lapply(spes, SingleCellExperiment::altExpNames)))) "altExps")
    if (length(dropped)) {
        cli::cli_inform(c(i = "The inputs' {.field {dropped}} are not carried into the joined result."))
    }
    out
}

# Column names of the joined result: the inputs' own, or, when some are missing or the same name
# occurs in two inputs, "<section>_<name>" (said in a message).
.joined_colnames <- function(spes, secs) {
    cn <- unlist(lapply(spes, function(s) if (is.null(colnames(s))) rep("", ncol(s)) else colnames(s)))
    if (all(nzchar(cn)) && !anyDuplicated(cn)) {
        return(cn)
    }
    section <- character(length(cn))
    for (sec in secs$sections) section[sec$cols_global] <- sec$name
    fixed <- ifelse(nzchar(cn), paste(section, cn, sep = "_"), paste0(section, "_", seq_along(cn)))
    cli::cli_inform(c(i = paste("Column names repeat across the inputs (or are missing); the joined",
                                "result names cells {.val <section>_<name>}.")))
    make.unique(fixed)
}

#' One section of a joined FuseMap result with its whole gene panel
#'
#' \code{\link{fusemap}()} on a list of SpatialExperiments keeps, in the joined
#' result's assays, only the genes every input measured;
#' \code{sectionPanel()} puts a section's other genes back, so the result is the
#' section as it was measured (its cells, every gene of its panel, the
#' embeddings and columns FuseMap added).
#'
#' @param x A \code{SpatialExperiment} returned by \code{\link{fusemap}()} or
#'   \code{\link{mapQuery}()}.
#' @param section A section name (a value of \code{x$FuseMap_section}).
#' @return A \code{SpatialExperiment}: the section's cells x its panel's genes.
#' @examples
#' \donttest{
#' if (fusemapAvailable()) {
#'     make <- function(genes, id) SpatialExperiment::SpatialExperiment(
#'         assays = list(counts = matrix(rpois(60 * length(genes), 3), nrow = length(genes),
#'             dimnames = list(genes, paste0(id, 1:60)))),
#'         colData = S4Vectors::DataFrame(sample_id = rep(id, 60)),
#'         spatialCoords = cbind(x = runif(60), y = runif(60)))
#'     out <- fusemap(list(make(paste0("g", 1:12), "a"), make(paste0("g", 5:16), "b")),
#'                    model.dir = tempfile(), max.epochs = 2, n.hidden = 16)
#'     dim(out)                    # the 8 genes both measured
#'     dim(sectionPanel(out, "b")) # the 12 genes of b
#' }
#' }
#' @export
sectionPanel <- function(x, section) {
    if (!methods::is(x, "SingleCellExperiment") || is.null(x$FuseMap_section)) {
        cli::cli_abort(c("{.arg x} must be a SpatialExperiment returned by {.fn fusemap} or {.fn mapQuery}.",
                         x = "It has no {.field FuseMap_section} column."))
    }
    .check_scalar_string(section, "section")
    cols <- which(x$FuseMap_section == section)
    if (!length(cols)) {
        cli::cli_abort(c("{.arg section} = {.val {section}} is not a section of {.arg x}.",
                         i = "Sections: {.val {unique(x$FuseMap_section)}}."))
    }
    part <- x[, cols]
    # a section without coordinates (NA rows in a joined result) comes back as it was given
    spatial <- .has_coords(part) && !all(is.na(SpatialExperiment::spatialCoords(part)))
    own <- .own_genes(x, colnames(part))
    if (is.null(own) || !nrow(own)) {
        if (spatial) return(part)
        own <- part[0, ]
    }
    an <- intersect(SummarizedExperiment::assayNames(part), SummarizedExperiment::assayNames(own))
    genes <- c(rownames(part), rownames(own))
    assays <- lapply(stats::setNames(an, an), function(a) {
        m <- methods::rbind2(SummarizedExperiment::assay(part, a, withDimnames = FALSE),
                             SummarizedExperiment::assay(own, a)[, colnames(part), drop = FALSE])
        dimnames(m) <- list(genes, colnames(part))
        m
    })
    md <- S4Vectors::metadata(part)
    args <- list(assays = assays, colData = SummarizedExperiment::colData(part),
                 reducedDims = SingleCellExperiment::reducedDims(part),
                 metadata = md[setdiff(names(md), "FuseMap_panels")])
    if (!spatial) return(do.call(SingleCellExperiment::SingleCellExperiment, args))
    do.call(SpatialExperiment::SpatialExperiment, c(args, list(spatialCoords = SpatialExperiment::spatialCoords(part))))
}

# The input panel (SummarizedExperiment of the genes beyond the shared ones) holding the cells
# named `cells`, or NULL when the result was not joined from different panels.
.own_genes <- function(x, cells) {
    for (p in S4Vectors::metadata(x)$FuseMap_panels) {
        if (all(cells %in% colnames(p))) return(p)
    }
    NULL
}

.rbind_frames <- function(frames) {
    cols <- unique(unlist(lapply(frames, colnames)))
    n <- vapply(frames, nrow, 1L)
    out <- methods::new("DFrame", nrows = sum(n))
    for (col in cols) {
        parts <- lapply(seq_along(frames), function(i) {
            f <- frames[[i]]
            if (col %in% colnames(f)) f[[col]] else rep(NA, n[i])
        })
        atomic <- vapply(parts, function(p) is.atomic(p) && is.null(dim(p)), logical(1))
        if (!all(atomic)) {
            next
        }
        is_fac <- vapply(parts, is.factor, logical(1))
        if (any(is_fac)) {
            lev <- unique(unlist(lapply(parts[is_fac], levels)))
            v <- unlist(lapply(parts, as.character))
            out[[col]] <- if (all(is_fac | vapply(parts, function(p) all(is.na(p)), logical(1)))) factor(v, levels = lev) else v
        } else {
            out[[col]] <- do.call(c, parts)
        }
    }
    out
}

.first_row_data <- function(spes, genes) {
    rds <- lapply(spes, SummarizedExperiment::rowData)
    common <- Reduce(intersect, lapply(rds, colnames))
    out <- methods::new("DFrame", nrows = length(genes))
    rownames(out) <- genes
    if (!length(common)) {
        return(out)
    }
    src <- match(genes, unlist(lapply(spes, rownames)))
    for (col in common) {
        parts <- lapply(rds, function(r) r[[col]])
        if (!all(vapply(parts, function(p) is.atomic(p) && is.null(dim(p)), logical(1)))) next
        v <- if (any(vapply(parts, is.factor, logical(1)))) unlist(lapply(parts, as.character)) else do.call(c, parts)
        out[[col]] <- v[src]
    }
    out
}
