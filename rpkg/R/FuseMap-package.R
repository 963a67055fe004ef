#' FuseMap: integrate spatial transcriptomics sections on SpatialExperiment
#'
#' \code{\link{fusemap}()} trains FuseMap on sections with different gene
#' panels and returns cell and spatial embeddings as \code{reducedDims};
#' \code{\link{speToAnnData}()} and \code{\link{annDataToSpe}()} convert
#' to and from AnnData; \code{\link{FuseMapModel}} represents a trained model
#' by its saved directory. The model runs in Python: \code{\link{installFuseMap}()}
#' installs it once (see \code{\link{fusemapPython}}).
#'
#' @import methods
#' @import SpatialExperiment
#' @importClassesFrom SingleCellExperiment SingleCellExperiment
#' @keywords internal
"_PACKAGE"
