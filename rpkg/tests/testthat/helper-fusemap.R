# Shared by all test files: where the project and the shared data are, skips, and real data
# loaded once per test run.

.cache <- new.env(parent = emptyenv())

# Default model folders (fusemap() without model.dir) go to the session's temporary folder, not
# into the package sources.
options(FuseMap.models = tempdir())

project_root <- function() FuseMap:::.project_above(getwd())

data_dir <- function() {
    d <- Sys.getenv("FUSEMAP_DATA_DIR")
    if (nzchar(d)) return(d)
    root <- project_root()
    if (is.null(root)) return("")
    file.path(dirname(root), "shared", "data")
}

STARMAP <- paste0("starmap_mpfc_", c("BZ5", "BZ9", "BZ14"))

# Python is required when FUSEMAP_R_STRICT is set (as `make test` does), else its absence skips.
skip_without_python <- function() {
    if (!fusemapAvailable()) {
        if (nzchar(Sys.getenv("FUSEMAP_R_STRICT"))) {
            stop("FUSEMAP_R_STRICT is set but no Python with fusemap could be started: ",
                 "run `make setup` or set FUSEMAP_PYTHON.")
        }
        skip("no Python with fusemap (run `make setup` or set FUSEMAP_PYTHON)")
    }
}

skip_without_data <- function(names = STARMAP) {
    files <- file.path(data_dir(), paste0(names, ".h5ad"))
    if (!all(file.exists(files))) {
        skip(sprintf("shared data %s not found in '%s' (set FUSEMAP_DATA_DIR)",
                     paste(names, collapse = ", "), data_dir()))
    }
    files
}

# The three STARmap mPFC sections as SpatialExperiments (sample_id = section), read through the
# package's own converter.
starmap_spes <- function() {
    skip_without_python()
    files <- skip_without_data()
    if (is.null(.cache$starmap)) {
        .cache$starmap <- lapply(files, annDataToSpe, sample.id = "section")
    }
    .cache$starmap
}

# One SpatialExperiment from several (BiocGenerics' cbind has SpatialExperiment's method).
cbind_spe <- function(spes) do.call(BiocGenerics::cbind, unname(spes))

# Settings that make a training run short.
# Balance weights are off: they need a Leiden clustering whose numba compilation alone takes longer
# than these trainings.
FAST <- list(max.epochs = 2L, n.hidden = 32L, n.latent = 8L, batch.size = 256L, progress = FALSE,
             balance = FALSE)

# A reference trained long enough for label transfer to beat the majority class clearly. The MMD
# term (on by default) slows reconstruction in the first epochs; these 10-epoch runs test the
# bindings, not the alignment, so it is off here (FAST keeps the default and runs it from R).
REF <- list(max.epochs = 10L, n.hidden = 64L, n.latent = 16L, batch.size = 256L, progress = FALSE,
            balance = FALSE, mmd.weight = 0)

# Embeddings recomputed in Python from the saved model, for each section's cells given in `cells`
# (a list name -> SpatialExperiment), in the order given. Returns list(name -> list(cell, spatial)).
recompute_embeddings <- function(model_dir, sections) {
    fm <- reticulate::import("fusemap", convert = FALSE)
    io <- reticulate::import("fusemap.io", convert = FALSE)
    adatas <- lapply(names(sections), function(nm) {
        s <- sections[[nm]]
        s$section <- nm
        SingleCellExperiment::reducedDims(s) <- list()
        suppressWarnings(speToAnnData(s))
    })
    model <- fm$FuseMap$load(model_dir, adatas, device = "cpu")
    emb <- model$embeddings()
    out <- lapply(names(sections), function(nm) {
        e <- emb$`__getitem__`(nm)
        list(cell = FuseMap:::.unwire(reticulate::py_to_r(io$to_wire(e$cell))),
             spatial = FuseMap:::.unwire(reticulate::py_to_r(io$to_wire(e$spatial))))
    })
    names(out) <- names(sections)
    out
}

# A SpatialExperiment small enough for input checks (no Python needed).
toy_spe <- function(n = 60, genes = 12, sample_id = rep(c("a", "b"), length.out = n)) {
    set.seed(1)
    counts <- matrix(rpois(n * genes, 3), nrow = genes,
                     dimnames = list(paste0("g", seq_len(genes)), paste0("c", seq_len(n))))
    SpatialExperiment::SpatialExperiment(
        assays = list(counts = counts, logcounts = log1p(counts)),
        colData = S4Vectors::DataFrame(sample_id = sample_id),
        spatialCoords = cbind(x = runif(n), y = runif(n)))
}

# fusemap() on the three STARmap sections in one SpatialExperiment (cells interleaved); trained
# once per test run and shared by the tests that need a reference.
reference_result <- function() {
    if (is.null(.cache$one)) {
        one <- cbind_spe(starmap_spes())
        colnames(one) <- paste(one$sample_id, colnames(one), sep = ":")
        set.seed(7)
        one <- one[, sample(ncol(one))]
        model_dir <- file.path(tempdir(), "fm-one")
        unlink(model_dir, recursive = TRUE)
        out <- do.call(fusemap, c(list(one, model.dir = model_dir, seed = 3), REF))
        .cache$one <- list(input = one, out = out, model_dir = model_dir)
    }
    .cache$one
}

# Each section's cells of a fusemap() result, with the genes it was trained on.
model_sections <- function(result) {
    panels <- summary(FuseMapModel(result))$panels
    out <- lapply(names(panels), function(nm) sectionPanel(result, nm)[panels[[nm]], ])
    names(out) <- names(panels)
    out
}

# Figures worth reporting (accuracy, correlation) go to the file named by FUSEMAP_R_FIGURES, if set.
record_figure <- function(name, value) {
    f <- Sys.getenv("FUSEMAP_R_FIGURES")
    if (nzchar(f)) cat(sprintf("%s\t%.4f\n", name, value), file = f, append = TRUE)
}

# Pearson correlation per gene between an imputed matrix (genes x cells) and log-normalised counts.
gene_correlations <- function(imputed, counts) {
    counts <- as.matrix(counts)
    lib <- colSums(counts)
    norm <- log1p(t(t(counts) / pmax(lib, 1)) * stats::median(lib))
    vapply(rownames(imputed), function(g) {
        if (stats::sd(norm[g, ]) == 0 || stats::sd(imputed[g, ]) == 0) return(NA_real_)
        stats::cor(imputed[g, ], norm[g, ])
    }, numeric(1))
}
