# A SingleCellExperiment beside SpatialExperiments: a section without coordinates (a dissociated
# single-cell reference), in fusemap() and mapQuery(); mapQuery() returns the query's novelty.

as_sce <- function(spe, id) {
    sce <- SingleCellExperiment::SingleCellExperiment(
        assays = list(counts = SummarizedExperiment::assay(spe, "counts")),
        colData = SummarizedExperiment::colData(spe))
    sce$sample_id <- id
    sce
}

test_that("a SingleCellExperiment in the list is a section without coordinates", {
    spes <- starmap_spes()
    set.seed(3)
    sc <- as_sce(spes[[3]][sample(nrow(spes[[3]]), 150), ], "sc_reference")
    parts <- list(spes[[1]], spes[[2]], sc)
    model_dir <- file.path(tempdir(), "fm-sc")
    unlink(model_dir, recursive = TRUE)
    out <- do.call(fusemap, c(list(parts, model.dir = model_dir), FAST))

    n <- vapply(parts, ncol, 1L)
    expect_s4_class(out, "SpatialExperiment")
    expect_identical(ncol(out), sum(n))
    is_sc <- out$FuseMap_section == "sc_reference"
    expect_identical(sum(is_sc), n[[3]])
    coords <- SpatialExperiment::spatialCoords(out)
    expect_true(all(is.na(coords[is_sc, ])))
    expect_identical(unname(coords[seq_len(n[[1]]), ]), unname(SpatialExperiment::spatialCoords(spes[[1]])))
    for (kind in c("FuseMap_cell", "FuseMap_spatial")) {
        expect_true(all(is.finite(SingleCellExperiment::reducedDim(out, kind))))
    }
    record <- S4Vectors::metadata(out)$FuseMap$run
    expect_identical(jsonlite::fromJSON(record$no_coordinates_json), "sc_reference")
    # the reference section comes back as it was given: no coordinates, its whole panel
    back <- sectionPanel(out, "sc_reference")
    expect_false(methods::is(back, "SpatialExperiment"))
    expect_identical(sort(rownames(back)), sort(rownames(sc)))

    # a single-cell query maps onto it (the reference's own section read without coordinates),
    # and carries its novelty against the reference
    query <- as_sce(spes[[3]], "sc_query")
    mapped <- do.call(mapQuery, c(list(query, out, model.dir = file.path(tempdir(), "fm-sc-q"),
                                       overwrite = TRUE, max.epochs = 2L, progress = FALSE)))
    expect_false(methods::is(mapped, "SpatialExperiment"))
    expect_identical(colnames(mapped), colnames(query))
    nov <- mapped$FuseMap_novelty
    expect_true(is.numeric(nov) && all(nov >= 0 & nov <= 1, na.rm = TRUE))
    expect_gt(mean(is.finite(nov)), 0.9)
    expect_true(is.factor(mapped$FuseMap_novelty_cluster))
    expect_gte(nlevels(mapped$FuseMap_novelty_cluster), 2L)
})
