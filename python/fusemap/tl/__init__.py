"""Analyses of an integration (the paper's atlas analyses), computed on its outputs.

- :func:`find_regions`, :func:`region_markers`, :func:`region_composition`: molecular tissue
  regions from the spatial embedding, sub-levels within coarse regions, marker genes.
- :func:`harmonize_nomenclatures`: two label sets on every cell and their correspondence matrix.
- :func:`gene_modules`, :func:`select_panel`, :func:`evaluate_panel`, :func:`compare_panels`:
  gene modules of the gene embedding and targeted gene-panel design.
- :func:`cell_proximity`: cell-type pairs closer than chance within regions.
- :func:`check_imputation`: measured vs imputed expression of two aligned sections on a grid.

``import fusemap`` does not import this package; heavy libraries load inside the functions.
"""

from ._inputs import gene_embedding
from .imputation_check import check_imputation
from .imputation_check import summarize as summarize_imputation_check
from .nomenclature import Correspondence, harmonize_nomenclatures
from .panels import compare_panels, evaluate_panel, gene_modules, hvg_panel, random_panel, select_panel, variability
from .proximity import ProximityResult, benjamini_hochberg, cell_proximity
from .regions import REGION_KEY, find_regions, leiden, leiden_n_clusters, region_composition, region_markers

__all__ = ["Correspondence", "ProximityResult", "REGION_KEY", "benjamini_hochberg", "cell_proximity",
           "check_imputation", "compare_panels", "evaluate_panel", "find_regions", "gene_embedding",
           "gene_modules", "harmonize_nomenclatures", "hvg_panel", "leiden", "leiden_n_clusters",
           "random_panel", "region_composition", "region_markers", "select_panel", "summarize_imputation_check",
           "variability"]
