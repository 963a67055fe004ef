"""Figures (matplotlib): every function returns the Figure and writes it when given ``save=``.

- :func:`integration_figures`, :func:`tissue_clusters`: UMAPs of both embeddings, and clusters on
  the tissue (on the cells' own shapes for a SpatialData object).
- Figures of the analyses in :mod:`fusemap.tl`: regions, nomenclature correspondence, gene
  modules and panels, cell proximity, imputation checks.
"""

from .embedding import integration_figures, tissue_clusters
from .imputation_check import imputation_check_boxplot
from .nomenclature import correspondence_heatmap
from .panels import gene_modules_umap, panel_accuracy
from .proximity import proximity_heatmap, proximity_summary
from .regions import region_markers_heatmap, regions_spatial

__all__ = ["correspondence_heatmap", "gene_modules_umap", "imputation_check_boxplot", "integration_figures",
           "panel_accuracy", "proximity_heatmap", "proximity_summary", "region_markers_heatmap", "regions_spatial",
           "tissue_clusters"]
