# Shared by the Seurat workers: read the case the Python side wrote into <dir> (counts.mtx genes x
# cells, genes.txt, obs.csv with a 'cell' column) as a counts matrix with names and the obs table.
suppressPackageStartupMessages({ library(Seurat); library(Matrix) })
read_case_io <- function(dir) {
  counts <- as(readMM(file.path(dir, "counts.mtx")), "CsparseMatrix")
  genes <- readLines(file.path(dir, "genes.txt"))
  obs <- read.csv(file.path(dir, "obs.csv"), stringsAsFactors = FALSE)
  rownames(counts) <- genes; colnames(counts) <- obs$cell
  list(counts = counts, genes = genes, obs = obs)
}
