# Converter round trips on the real STARmap sections: counts, coordinates, colData and gene names
# come back identical, in memory and through .h5ad files.

test_that("an .h5ad file becomes a SpatialExperiment with the file's content", {
    spes <- starmap_spes()
    ad <- reticulate::import("anndata", convert = FALSE)
    io <- reticulate::import("fusemap.io", convert = FALSE)
    file <- file.path(data_dir(), "starmap_mpfc_BZ5.h5ad")
    a <- ad$read_h5ad(file)
    spe <- spes[[1]]
    expect_s4_class(spe, "SpatialExperiment")
    expect_identical(dim(spe), as.integer(rev(reticulate::py_to_r(a$shape))))
    expect_identical(rownames(spe), reticulate::py_to_r(a$var_names$tolist()))
    expect_identical(colnames(spe), reticulate::py_to_r(a$obs_names$tolist()))
    # the counts equal the file's X (summed per cell and gene, and the total)
    x <- FuseMap:::.unwire(reticulate::py_to_r(io$to_wire(a$X$toarray())))
    expect_identical(unname(t(x)), unname(as.matrix(SummarizedExperiment::assay(spe, "counts"))))
    coords <- FuseMap:::.unwire(reticulate::py_to_r(io$obsm_for_r(a, "spatial")))
    expect_identical(unname(SpatialExperiment::spatialCoords(spe)), coords)
    expect_identical(colnames(SpatialExperiment::spatialCoords(spe)), c("x", "y"))
    expect_true(is.factor(spe$cell_type))
    expect_identical(levels(spe$cell_type),
                     reticulate::py_to_r(a$obs$`__getitem__`("cell_type")$cat$categories$tolist()))
    expect_identical(unique(spe$sample_id), "20180417_BZ5_control")
    expect_identical(S4Vectors::metadata(spe)$X_content, "raw integer counts (as in source)")
})

test_that("SpatialExperiment -> AnnData -> SpatialExperiment keeps everything identical", {
    spes <- starmap_spes()
    one <- cbind_spe(spes)
    # add columns of every kind, with missing values, and a second (dense) assay
    one$flag <- rep(c(TRUE, NA, FALSE), length.out = ncol(one))
    one$count <- rep(c(1L, NA, 3L), length.out = ncol(one))
    one$score <- rep(c(0.5, NA, -2), length.out = ncol(one))
    one$note <- rep(c("a", NA, "c"), length.out = ncol(one))
    one$ordered <- factor(rep(c("lo", "hi"), length.out = ncol(one)), levels = c("lo", "hi"),
                          ordered = TRUE)
    SummarizedExperiment::assay(one, "dense") <- as.matrix(SummarizedExperiment::assay(one, "counts")) / 3
    SummarizedExperiment::rowData(one)$symbol_len <- nchar(rownames(one))
    SingleCellExperiment::reducedDim(one, "PCA") <- matrix(seq_len(ncol(one) * 2) / 7, ncol = 2)

    ad <- speToAnnData(one)
    expect_identical(ad$n_obs, ncol(one))
    back <- annDataToSpe(ad)
    expect_identical(SummarizedExperiment::assayNames(back), c("counts", "dense"))
    expect_identical(SummarizedExperiment::assay(back, "counts"), SummarizedExperiment::assay(one, "counts"))
    expect_identical(SummarizedExperiment::assay(back, "dense"), SummarizedExperiment::assay(one, "dense"))
    expect_identical(SpatialExperiment::spatialCoords(back), SpatialExperiment::spatialCoords(one))
    expect_identical(as.data.frame(SummarizedExperiment::colData(back)),
                     as.data.frame(SummarizedExperiment::colData(one)))
    expect_identical(SummarizedExperiment::rowData(back)$symbol_len, nchar(rownames(one)))
    expect_identical(rownames(back), rownames(one))
    expect_identical(colnames(back), colnames(one))
    expect_identical(unname(SingleCellExperiment::reducedDim(back, "PCA")),
                     unname(SingleCellExperiment::reducedDim(one, "PCA")))
})

test_that("a round trip through an .h5ad file keeps counts, coordinates, colData and genes", {
    spes <- starmap_spes()
    one <- cbind_spe(spes)
    one$note <- rep(c("a", NA, "c"), length.out = ncol(one))
    file <- tempfile(fileext = ".h5ad")
    on.exit(unlink(file))
    speToAnnData(one, file = file)
    expect_true(file.exists(file))
    expect_error(speToAnnData(one, file = file), "already exists")
    back <- annDataToSpe(file)
    expect_identical(SummarizedExperiment::assay(back, "counts"), SummarizedExperiment::assay(one, "counts"))
    expect_identical(SpatialExperiment::spatialCoords(back), SpatialExperiment::spatialCoords(one))
    expect_identical(rownames(back), rownames(one))
    expect_identical(colnames(back), colnames(one))
    cd_one <- as.data.frame(SummarizedExperiment::colData(one))
    cd_back <- as.data.frame(SummarizedExperiment::colData(back))
    expect_identical(colnames(cd_back), colnames(cd_one))
    # .h5ad stores text as categoricals: same values, factors on return
    for (col in colnames(cd_one)) {
        expect_identical(as.character(cd_back[[col]]), as.character(cd_one[[col]]), info = col)
    }
    expect_true(is.na(back$note[2]))
    # overwrite = TRUE replaces the file
    small <- one[, 1:10]
    speToAnnData(small, file = file, overwrite = TRUE)
    expect_identical(ncol(annDataToSpe(file)), 10L)
})

test_that("converters reject what they cannot convert, with the reason", {
    skip_without_python()
    expect_error(speToAnnData(matrix(1:4, 2)), "must be a SpatialExperiment")
    expect_error(speToAnnData(toy_spe(), X.name = "nope"), "not an assay")
    expect_error(annDataToSpe(tempfile(fileext = ".h5ad")), "does not exist")
    expect_error(annDataToSpe(42), "AnnData object or the path")
    spes <- starmap_spes()
    expect_error(annDataToSpe(file.path(data_dir(), "starmap_mpfc_BZ5.h5ad"), sample.id = "nope"),
                 "not a column of obs")
})

test_that("annDataToSpe takes each object's sample id from obs$section, else the file name", {
    skip_without_python()
    files <- skip_without_data("starmap_mpfc_BZ5")
    spe <- annDataToSpe(files[1])
    expect_identical(unique(spe$sample_id), "20180417_BZ5_control")   # obs$section
    dir <- tempfile()
    dir.create(dir)
    paths <- file.path(dir, c("slideA.h5ad", "slideB.h5ad"))
    for (p in paths) {
        a <- speToAnnData(toy_spe())
        reticulate::py_get_attr(a, "obs")$drop(columns = list("sample_id"), inplace = TRUE)
        a$write_h5ad(p)
    }
    spes <- lapply(paths, annDataToSpe)
    expect_identical(vapply(spes, function(s) unique(s$sample_id), ""), c("slideA", "slideB"))
    # so the converted objects are two sections for fusemap(), not one name twice
    secs <- FuseMap:::.sections(spes, FALSE, "counts", "sample_id", list())
    expect_identical(secs$names, c("slideA", "slideB"))
    # an explicit column still wins
    expect_identical(unique(annDataToSpe(files[1], sample.id = "cell_type")$sample_id),
                     unique(as.character(spe$cell_type)))
})
