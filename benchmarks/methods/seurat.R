# Seurat v4 anchor integration of the sections in <dir> (counts.mtx genes x cells, genes.txt,
# obs.csv with cell and section); writes <dir>/embedding.csv (PCA of the integrated assay).
this_dir <- dirname(sub("^--file=", "", grep("^--file=", commandArgs(FALSE), value = TRUE)[1]))
source(file.path(this_dir, "seurat_io.R"))
args <- commandArgs(trailingOnly = TRUE)
dir <- args[1]; set.seed(as.integer(args[2]))
io <- read_case_io(dir); counts <- io$counts; genes <- io$genes; obs <- io$obs
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
