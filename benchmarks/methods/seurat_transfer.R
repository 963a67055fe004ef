# Seurat v4 label transfer (FindTransferAnchors + TransferData, its defaults: pcaproject) from the
# reference cells onto the query cells in <dir> (counts.mtx genes x cells, genes.txt, obs.csv with
# cell, role and label); writes <dir>/predictions.csv (cell, predicted label).
this_dir <- dirname(sub("^--file=", "", grep("^--file=", commandArgs(FALSE), value = TRUE)[1]))
source(file.path(this_dir, "seurat_io.R"))
args <- commandArgs(trailingOnly = TRUE)
dir <- args[1]; set.seed(as.integer(args[2]))
io <- read_case_io(dir); counts <- io$counts; genes <- io$genes; obs <- io$obs
meta <- data.frame(label = obs$label, row.names = obs$cell)
ref_cells <- obs$cell[obs$role == "reference"]; qry_cells <- obs$cell[obs$role == "query"]
ref <- CreateSeuratObject(counts[, ref_cells], meta.data = meta[ref_cells, , drop = FALSE],
                          min.cells = 0, min.features = 0)
qry <- CreateSeuratObject(counts[, qry_cells], min.cells = 0, min.features = 0)
ref <- NormalizeData(ref, verbose = FALSE); qry <- NormalizeData(qry, verbose = FALSE)
VariableFeatures(ref) <- genes
npcs <- min(30, length(genes) - 1)
ref <- ScaleData(ref, verbose = FALSE)
ref <- RunPCA(ref, npcs = npcs, verbose = FALSE)
anchors <- FindTransferAnchors(reference = ref, query = qry, features = genes, dims = 1:npcs,
                               k.filter = NA, verbose = FALSE)
k_weight <- min(50, nrow(anchors@anchors) - 1)
pred <- TransferData(anchors, refdata = ref$label, dims = 1:npcs, k.weight = k_weight, verbose = FALSE)
write.csv(data.frame(cell = colnames(qry), predicted = pred$predicted.id),
          file.path(dir, "predictions.csv"), row.names = FALSE)
writeLines(as.character(packageVersion("Seurat")), file.path(dir, "version.txt"))
