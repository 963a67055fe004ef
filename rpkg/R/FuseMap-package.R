#' FuseMap: integrate spatial transcriptomics sections on SpatialExperiment
#'
#' \code{\link{fusemap}()} trains FuseMap on sections with different gene
#' panels and returns cell and spatial embeddings as \code{reducedDims};
#' \code{\link{spe_to_anndata}()} and \code{\link{anndata_to_spe}()} convert
#' to and from AnnData; \code{\link{FuseMapModel}} represents a trained model
#' by its saved directory. The model runs in Python (see
#' \code{\link{fusemapPython}}).
#'
#' @import methods
#' @import SpatialExperiment
#' @keywords internal
"_PACKAGE"
