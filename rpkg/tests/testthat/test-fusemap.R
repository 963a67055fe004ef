# fusemap() on real data: one SpatialExperiment with three samples, and a list of three with
# different gene panels. Embeddings must have one row per input cell, in input order: checked by
# recomputing every section's embeddings in Python from the saved model.

check_rows_match <- function(out, model_dir, sections, tol = 1e-4) {
    ref <- recompute_embeddings(model_dir, sections)
    for (nm in names(sections)) {
        cells <- which(out$FuseMap_section == nm)
        expect_identical(length(cells), ncol(sections[[nm]]))
        # `sections[[nm]]` lists the section's cells in the order they appear in `out`
        for (kind in c("cell", "spatial")) {
            got <- unname(SingleCellExperiment::reducedDim(out, paste0("FuseMap_", kind))[cells, ])
            expect_lt(max(abs(got - ref[[nm]][[kind]])), tol)
        }
    }
}

test_that("fusemap() on one SpatialExperiment with three samples returns its cells in input order", {
    ref <- reference_result()  # the three sections in one object, samples interleaved
    one <- ref$input
    out <- ref$out
    model_dir <- ref$model_dir
    expect_s4_class(out, "SpatialExperiment")
    expect_identical(colnames(out), colnames(one))
    expect_identical(SummarizedExperiment::assay(out, "counts"), SummarizedExperiment::assay(one, "counts"))
    for (kind in c("FuseMap_cell", "FuseMap_spatial")) {
        emb <- SingleCellExperiment::reducedDim(out, kind)
        expect_identical(dim(emb), c(ncol(one), 16L))
        expect_identical(rownames(emb), colnames(one))
        expect_true(all(is.finite(emb)))
    }
    expect_identical(out$FuseMap_section, one$sample_id)
    md <- S4Vectors::metadata(out)$FuseMap
    expect_identical(md$model_dir, normalizePath(model_dir))
    expect_identical(md$run$sections, unique(one$sample_id))
    expect_identical(as.integer(md$run$n_cells), as.integer(table(one$sample_id)[unique(one$sample_id)]))
    expect_identical(md$sections$section, unique(one$sample_id))

    model <- FuseMapModel(out)
    expect_s4_class(model, "FuseMapModel")
    expect_identical(path(model), normalizePath(model_dir))
    expect_identical(summary(model)$sections$section, unique(one$sample_id))
    expect_identical(summary(model)$n_genes, nrow(one))
    expect_identical(summary(model)$n_latent, 16L)
    expect_output(show(model), "3 sections")
    ge <- geneEmbedding(model)
    expect_identical(dim(ge), c(nrow(one), 16L))
    expect_identical(rownames(ge), rownames(one))

    secs <- lapply(unique(one$sample_id), function(s) {
        idx <- which(one$sample_id == s)
        one[, rev(idx)]
    })
    names(secs) <- unique(one$sample_id)
    # recompute with each section's cells reversed, then reverse back to `out`'s order
    ref <- recompute_embeddings(model_dir, secs)
    for (nm in names(secs)) {
        cells <- which(out$FuseMap_section == nm)
        got <- unname(SingleCellExperiment::reducedDim(out, "FuseMap_cell")[cells, ])
        expect_lt(max(abs(got - ref[[nm]]$cell[rev(seq_along(cells)), ])), 1e-4)
        got <- unname(SingleCellExperiment::reducedDim(out, "FuseMap_spatial")[cells, ])
        expect_lt(max(abs(got - ref[[nm]]$spatial[rev(seq_along(cells)), ])), 1e-4)
    }
})

test_that("fusemap() on a list of three sections with different panels joins them in input order", {
    spes <- starmap_spes()
    set.seed(11)
    panels <- lapply(1:3, function(i) sort(sample(nrow(spes[[i]]), 120)))
    parts <- lapply(1:3, function(i) spes[[i]][panels[[i]], ])
    names(parts) <- c("BZ5", "BZ9", "BZ14")
    model_dir <- file.path(tempdir(), "fm-list")
    unlink(model_dir, recursive = TRUE)
    out <- do.call(fusemap, c(list(parts, model.dir = model_dir), FAST))

    n <- vapply(parts, ncol, 1L)
    expect_identical(ncol(out), sum(n))
    expect_identical(out$FuseMap_section, rep(names(parts), n))
    # the assays hold the genes all three measured: no NA, no zeros standing for unmeasured genes
    shared <- Reduce(intersect, lapply(parts, rownames))
    expect_identical(rownames(out), shared)
    expect_false(anyNA(as.matrix(SummarizedExperiment::assay(out, "counts"))))
    expect_identical(length(Matrix::colSums(SummarizedExperiment::assay(out, "counts"))), sum(n))
    for (kind in c("FuseMap_cell", "FuseMap_spatial")) {
        expect_identical(dim(SingleCellExperiment::reducedDim(out, kind)), c(sum(n), 8L))
    }
    # each section comes back with its whole panel, its counts and coordinates unchanged
    panels <- S4Vectors::metadata(out)$FuseMap_panels
    expect_identical(names(panels), names(parts))
    cols <- split(seq_len(ncol(out)), rep(1:3, n))
    for (i in 1:3) {
        whole <- sectionPanel(out, names(parts)[i])
        expect_identical(dim(whole), dim(parts[[i]]))
        expect_identical(nrow(panels[[i]]), nrow(parts[[i]]) - length(shared))
        m <- SummarizedExperiment::assay(whole, "counts")
        expect_identical(unname(as.matrix(m[rownames(parts[[i]]), ])),
                         unname(as.matrix(SummarizedExperiment::assay(parts[[i]], "counts"))))
        expect_identical(SingleCellExperiment::reducedDim(whole, "FuseMap_cell"),
                         SingleCellExperiment::reducedDim(out, "FuseMap_cell")[cols[[i]], ])
    }
    expect_error(sectionPanel(out, "BZ99"), "not a section")
    expect_identical(SpatialExperiment::spatialCoords(out)[cols[[2]], , drop = FALSE],
                     SpatialExperiment::spatialCoords(parts[[2]]), ignore_attr = TRUE)
    expect_identical(as.character(out$cell_type), unname(unlist(lapply(parts, function(p) as.character(p$cell_type)))))
    expect_identical(summary(FuseMapModel(out))$sections$n_genes, c(120L, 120L, 120L))
    check_rows_match(out, model_dir, parts)
})
