"""Reading and writing: sections in, results out; nothing here knows the model.

- :mod:`~fusemap.io.sections`: the one section reader (:func:`read_sections`).
- :mod:`~fusemap.io.spatialdata`: sections from SpatialData tables, results back into them.
- :mod:`~fusemap.io.backed`: sections whose expression stays on disk.
- :mod:`~fusemap.io.results`: the one results writer.
- :mod:`~fusemap.io.files`: atomic writes and output folders (what fusemap may replace).
- :mod:`~fusemap.io.r_exchange`: AnnData <-> R (SpatialExperiment), the functions R calls.
"""

from .r_exchange import (WarningsForR, anndata_from_parts, anndata_from_r, anndata_to_parts, anndata_to_spe, frame_for_r,
                         frame_from_part, frame_to_part, from_wire, gene_embedding_for_r, imputed_for_r,
                         matrix_from_part, matrix_to_part, obs_for_r, obsm_for_r, parts_for_r, read_h5ad_parts, read_rds,
                         spe_to_anndata, to_wire, write_h5ad, write_rds)
from .sections import read_sections
from .sectionset import SectionSet

__all__ = ["SectionSet", "WarningsForR", "anndata_from_parts", "anndata_from_r", "anndata_to_parts", "anndata_to_spe", "frame_for_r",
           "frame_from_part", "frame_to_part", "from_wire", "gene_embedding_for_r", "imputed_for_r",
           "matrix_from_part", "matrix_to_part", "obs_for_r", "obsm_for_r", "parts_for_r", "read_h5ad_parts", "read_rds",
           "read_sections", "spe_to_anndata", "to_wire", "write_h5ad", "write_rds"]
