# Bad input is refused before any work, with a message that names the argument and the fix.

test_that("missing spatialCoords, non-count assay, unknown sample.id column are clear errors", {
    spe <- toy_spe()
    nocoords <- SpatialExperiment::SpatialExperiment(
        assays = list(counts = SummarizedExperiment::assay(spe, "counts")),
        colData = SummarizedExperiment::colData(spe))
    expect_error(fusemap(nocoords), "has no spatial coordinates")
    expect_error(fusemap(nocoords), "spatialCoords")
    expect_error(fusemap(spe, assay.type = "logcounts"), "does not hold raw counts")
    expect_error(fusemap(spe, assay.type = "logcounts"), "normalized = TRUE")
    expect_error(fusemap(spe, sample.id = "slide"), "is not a column of colData")
    expect_error(fusemap(spe, sample.id = "slide"), "sample_id")
    expect_error(fusemap(spe, assay.type = "raw"), "is not an assay")
})

test_that("other bad input: negative or missing values, lists, names, model.dir", {
    spe <- toy_spe()
    neg <- spe
    SummarizedExperiment::assay(neg, "counts")[1, 1] <- -1
    expect_error(fusemap(neg), "negative value")
    expect_error(fusemap(toy_spe(sample_id = c("a", NA, rep("b", 58)))), "missing values")
    expect_error(fusemap(list()), "empty list")
    expect_error(fusemap(list(spe, 1)), "x[[2]]", fixed = TRUE)
    # a SingleCellExperiment is a section without coordinates; its input is checked like any other
    sce <- SingleCellExperiment::SingleCellExperiment(list(counts = SummarizedExperiment::assay(spe, "counts")))
    expect_error(fusemap(sce), "sample.id")
    sce$sample_id <- "ref"
    SummarizedExperiment::assay(sce, "counts")[2, 2] <- 0.5
    expect_error(fusemap(list(spe, sce)), "assay(x[[2]], \"counts\")", fixed = TRUE)
    expect_error(mapQuery(sce, tempdir()), "must be a FuseMapModel")
    expect_error(fusemap(data.frame(a = 1)), "must be a SpatialExperiment, a SingleCellExperiment")
    expect_error(fusemap(data.frame(a = 1)), "SpatialExperiment::SpatialExperiment")
    # two unnamed list elements with the same sample ids
    expect_error(fusemap(list(spe, spe)), "must be unique")
    existing <- tempfile()
    dir.create(existing)
    expect_error(fusemap(spe, model.dir = existing), "already exists")
    norows <- spe
    rownames(norows) <- NULL
    expect_error(fusemap(norows), "no row names")
    expect_error(FuseMapModel(tempdir()), "not a FuseMap model directory")
    expect_error(FuseMapModel(spe), "holds no FuseMap result")
})

test_that("training options: R names pass through, unknown names are refused", {
    skip_without_python()
    spe <- toy_spe()
    expect_error(fusemap(spe, max.epoch = 3), "Unknown training option")
    expect_error(fusemap(spe, max.epoch = 3), "max.epochs")
    expect_error(fusemap(spe, layer = "counts"), "assay.type")
    opts <- FuseMap:::.python_options(list(max.epochs = 3, n.latent = 4, lr = 1L), FuseMap:::.fusemap_py())
    expect_identical(names(opts), c("max_epochs", "n_latent", "lr"))
    expect_identical(opts$max_epochs, 3L)
    expect_identical(opts$lr, 1)
})

test_that("an error raised in Python reaches R with its message", {
    skip_without_python()
    spe <- toy_spe(n = 60, sample_id = c(rep("a", 5), rep("b", 55)))
    # section 'a' has 5 cells: Python's validation refuses it and says why
    expect_error(fusemap(spe, model.dir = tempfile(), max.epochs = 1), "FuseMapInputError")
})
