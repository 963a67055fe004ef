# Seurat v4 anchor integration of the sections in <dir> (counts.mtx genes x cells, genes.txt,
# obs.csv with cell and section); writes <dir>/embedding.csv (PCA of the integrated assay).
suppressPackageStartupMessages({ library(Seurat); library(Matrix) })
args <- commandArgs(trailingOnly = TRUE)
dir <- args[1]; set.seed(as.integer(args[2]))
counts <- as(readMM(file.path(dir, "counts.mtx")), "CsparseMatrix")
genes <- readLines(file.path(dir, "genes.txt"))
obs <- read.csv(file.path(dir, "obs.csv"), stringsAsFactors = FALSE)
rownames(counts) <- genes; colnames(counts) <- obs$cell
meta <- data.frame(section = obs$section, row.names = obs$cell)
obj <- CreateSeuratObject(counts, meta.data = meta, min.cells = 0, min.features = 0)
parts <- SplitObject(obj, split.by = "section")
parts <- lapply(parts, function(x) { x <- NormalizeData(x, verbose = FALSE); VariableFeatures(x) <- genes; x })
npcs <- min(30, length(genes) - 1)
smallest <- min(sapply(parts, ncol))
anchors <- FindIntegrationAnchors(parts, anchor.features = genes, dims = 1:npcs,
                                  k.filter = min(200, smallest - 1), verbose = FALSE)
integrated <- IntegrateData(anchors, dims = 1:npcs, k.weight = min(100, smallest - 1), verbose = FALSE)
DefaultAssay(integrated) <- "integrated"
integrated <- ScaleData(integrated, verbose = FALSE)
integrated <- RunPCA(integrated, npcs = npcs, verbose = FALSE)
emb <- Embeddings(integrated, "pca")[obs$cell, , drop = FALSE]
write.csv(emb, file.path(dir, "embedding.csv"))
writeLines(as.character(packageVersion("Seurat")), file.path(dir, "version.txt"))
