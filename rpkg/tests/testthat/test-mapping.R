# mapQuery(), transferLabels(), imputeGenes() on real data: BZ14's cells, renamed, with 120 of its
# 166 genes and shuffled, mapped onto the reference trained on the three STARmap sections.

query_section <- function() {
    q <- starmap_spes()[[3]]
    q$sample_id <- "BZ14_query"
    set.seed(5)
    keep <- sort(sample(nrow(q), 120))
    q[keep, sample(ncol(q))]
}

mapped_query <- function() {
    if (is.null(.cache$mapped)) {
        ref <- reference_result()
        q <- query_section()
        files <- list.files(ref$model_dir, full.names = TRUE, recursive = TRUE, all.files = TRUE)
        before <- tools::md5sum(files)
        mapped_dir <- file.path(tempdir(), "fm-mapped")
        unlink(mapped_dir, recursive = TRUE)
        out <- mapQuery(q, ref$out, model.dir = mapped_dir, max.epochs = 2, progress = FALSE, seed = 1)
        after_files <- list.files(ref$model_dir, full.names = TRUE, recursive = TRUE, all.files = TRUE)
        .cache$mapped <- list(query = q, out = out, mapped_dir = mapped_dir, before = before,
                              after = tools::md5sum(after_files))
    }
    .cache$mapped
}

test_that("mapQuery maps a new section, in input order, leaving the reference model unchanged", {
    ref <- reference_result()
    m <- mapped_query()
    out <- m$out
    # every file of the reference model directory is byte-identical, none added or removed
    expect_identical(m$after, m$before)
    expect_true(length(m$before) >= 4)

    expect_identical(colnames(out), colnames(m$query))
    expect_identical(unique(out$FuseMap_section), "BZ14_query")
    for (kind in c("FuseMap_cell", "FuseMap_spatial")) {
        emb <- SingleCellExperiment::reducedDim(out, kind)
        expect_identical(dim(emb), c(ncol(m$query), 16L))
        expect_true(all(is.finite(emb)))
    }
    md <- S4Vectors::metadata(out)$FuseMap
    expect_identical(md$reference_model_dir, normalizePath(ref$model_dir))
    expect_identical(md$model_dir, normalizePath(m$mapped_dir))
    model <- FuseMapModel(out)
    s <- summary(model)
    expect_identical(s$sections$section, c(unique(ref$input$sample_id), "BZ14_query"))
    expect_identical(s$sections$role, c(rep("reference", 3), "query"))
    expect_identical(s$panels$BZ14_query, rownames(m$query))

    # rows are the query's cells in input order: recompute from the mapped model, query reversed
    secs <- c(model_sections(ref$out), list(BZ14_query = m$query[, rev(seq_len(ncol(m$query)))]))
    again <- recompute_embeddings(m$mapped_dir, secs)
    n <- ncol(m$query)
    for (kind in c("cell", "spatial")) {
        got <- unname(SingleCellExperiment::reducedDim(out, paste0("FuseMap_", kind)))
        expect_lt(max(abs(got - again$BZ14_query[[kind]][rev(seq_len(n)), ])), 1e-4)
    }
    # a clash of section names and a missing reference are refused before any work
    expect_error(mapQuery(starmap_spes()[[1]], ref$out), "already in the reference model")
    expect_error(mapQuery(m$query, FuseMapModel(ref$out)), "reference.*is needed")
})

test_that("transferLabels gives Python's predictions for the query's cells, above the majority class", {
    ref <- reference_result()
    m <- mapped_query()
    tr <- transferLabels(m$out, ref$out, labels = "cell_type", seed = 0)
    pred <- tr$FuseMap_cell_type
    expect_true(is.factor(pred))
    expect_identical(length(pred), ncol(m$out))
    expect_true(all(levels(pred) %in% levels(ref$out$cell_type)))
    unc <- tr$FuseMap_cell_type_uncertainty
    expect_true(all(unc >= 0 & unc <= 1))
    # the same call made directly in Python on objects built by the converters gives the same result
    fm <- reticulate::import("fusemap", convert = FALSE)
    direct <- fm$transfer_labels(speToAnnData(ref$out), speToAnnData(m$out), "cell_type",
                                 seed = 0L, write = FALSE)
    dpred <- reticulate::py_to_r(direct$predictions$`__getitem__`("fusemap_cell_type")$tolist())
    dunc <- reticulate::py_to_r(direct$predictions$`__getitem__`("fusemap_cell_type_uncertainty")$tolist())
    expect_identical(as.character(pred), dpred)
    expect_equal(unc, unlist(dunc), tolerance = 1e-12)
    # held-out reference cells are classified far better than by always guessing the majority class
    majority <- max(table(ref$out$cell_type)) / ncol(ref$out)
    summ <- S4Vectors::metadata(tr)$FuseMap_transfer$cell_type
    expect_gt(summ$heldout_accuracy$cell_type, majority + 0.1)
    record_figure("transfer_heldout_accuracy", summ$heldout_accuracy$cell_type)
    record_figure("transfer_majority", majority)
    record_figure("transfer_query_accuracy", mean(as.character(pred) == as.character(m$query$cell_type)))

    tr2 <- transferLabels(m$out, ref$out, labels = "region", embedding = "spatial", method = "knn")
    expect_identical(length(tr2$FuseMap_region), ncol(m$out))
    expect_true(all(as.character(tr2$FuseMap_region) %in% levels(ref$out$region)))
    expect_identical(names(S4Vectors::metadata(tr2)$FuseMap_transfer), "region")
    expect_error(transferLabels(m$out, ref$out, labels = "nope"), "not a column")
    expect_error(transferLabels(m$query, ref$out, labels = "cell_type"), "Map the query first")
})

test_that("imputeGenes imputes genes the query did not measure, correlated with their measurement", {
    m <- mapped_query()
    full <- starmap_spes()[[3]]
    masked <- setdiff(rownames(full), rownames(m$query))
    expect_identical(length(masked), 46L)
    imp <- imputeGenes(m$out, genes = masked)
    ae <- SingleCellExperiment::altExp(imp, "FuseMap_imputed")
    x <- SummarizedExperiment::assay(ae, "imputed")
    expect_identical(dim(x), c(46L, ncol(m$out)))
    expect_identical(rownames(x), masked)
    expect_identical(colnames(x), colnames(m$out))
    expect_true(all(is.finite(x)) && all(x >= 0))  # decoder read-out ends in a ReLU
    expect_true(all(SummarizedExperiment::rowData(ae)$measured_in == ""))
    # ground truth: the masked genes were measured (a 2-epoch mapping is too short for a floor here)
    r <- gene_correlations(x, SummarizedExperiment::assay(full, "counts")[masked, colnames(m$out)])
    record_figure("impute_masked_mean_r", mean(r, na.rm = TRUE))
    # the same imputation made directly in Python on the converter's AnnData
    fm <- reticulate::import("fusemap", convert = FALSE)
    io <- reticulate::import("fusemap.io", convert = FALSE)
    q <- m$query
    q$section <- "BZ14_query"
    SingleCellExperiment::reducedDims(q) <- list()
    direct <- fm$impute(fm$FuseMap$load(m$mapped_dir), list(speToAnnData(q)), as.list(masked))
    d <- FuseMap:::.unwire(reticulate::py_to_r(io$imputed_for_r(direct)))
    expect_identical(d$var_names, masked)
    expect_equal(unname(x), unname(t(d$values)), tolerance = 1e-6)
    # a measured gene is flagged as measured by the query section
    own <- imputeGenes(m$out, genes = rownames(m$query)[1:3], method = "product")
    expect_identical(SummarizedExperiment::rowData(SingleCellExperiment::altExp(own, "FuseMap_imputed"))$measured_in,
                     rep("BZ14_query", 3))
    expect_error(imputeGenes(m$query), "FuseMap_section")
})

test_that("imputeGenes on the reference follows the measured expression, cell by cell", {
    ref <- reference_result()
    genes <- rownames(ref$out)[1:40]
    imp <- imputeGenes(ref$out, genes = genes)
    x <- SummarizedExperiment::assay(SingleCellExperiment::altExp(imp, "FuseMap_imputed"), "imputed")
    expect_identical(dim(x), c(40L, ncol(ref$out)))
    r <- gene_correlations(x, SummarizedExperiment::assay(ref$out, "counts")[genes, ])
    record_figure("impute_reference_mean_r", mean(r, na.rm = TRUE))
    expect_gt(mean(r, na.rm = TRUE), 0.08)
    # with the cells shuffled the agreement is lost: the floor above checks cell order
    set.seed(2)
    r0 <- gene_correlations(x[, sample(ncol(x))], SummarizedExperiment::assay(ref$out, "counts")[genes, ])
    expect_lt(abs(mean(r0, na.rm = TRUE)), 0.03)
})
