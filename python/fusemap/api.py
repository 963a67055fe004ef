"""Convenience functions that run a whole job and write the results into the inputs."""

from __future__ import annotations

import os
from typing import Any, Callable, Mapping, Sequence

from ._constants import SPATIAL_KEY
from .config import FuseMapConfig
from .model import FuseMap


def integrate(data: Any, section_key: str | None = None, *, config: FuseMapConfig | dict | None = None,
              spatial_key: str = SPATIAL_KEY, save: str | os.PathLike | None = None,
              overwrite: bool = False, checkpoint_dir: str | os.PathLike | None = None,
              panels: Mapping[str, Sequence[str]] | None = None, callback: Callable[[dict], Any] | None = None,
              **overrides: Any) -> FuseMap:
    """Integrate sections and write the embeddings into them: set up, train, save, write in one call.

    The same as ``FuseMap(data, section_key, config, **overrides)``, then :meth:`FuseMap.train`,
    :meth:`FuseMap.save` (with ``save``) and :meth:`FuseMap.write`. Every problem with the input
    (counts, coordinates, duplicate names, sections sharing no gene ...) is reported before any
    training, naming the section and the fix.

    Parameters
    ----------
    data
        The sections: a list of AnnData (in the given order), a dict name -> AnnData (sorted
        names), one AnnData (one section, or several with ``section_key``), the path of an
        ``.h5ad`` file or of a folder of them (sorted file names), a list of such paths, or a
        SpatialData object or ``.zarr`` store (see :func:`fusemap.io.read_sections`). Each section
        holds raw counts in ``X`` (or ``layer=``) and coordinates in ``obsm[spatial_key]``; panels
        may differ (genes are matched across sections ignoring case unless ``gene_case='exact'``).
    section_key
        obs column naming each cell's section, when one AnnData (or file) holds several sections.
    config
        A :class:`FuseMapConfig`, or its nested dict form as saved in a model's ``config.json``;
        ``None`` uses the defaults.
    spatial_key
        obsm key of the 2-D (or 3-D; the first two columns are used) cell coordinates.
    save
        Directory to save the trained model to before writing the results, so that the run
        record in ``uns['fusemap']`` names it. Reload with :meth:`FuseMap.load`.
    overwrite
        Replace an existing saved model at ``save``. A folder that is not a saved fusemap model is
        never replaced.
    checkpoint_dir
        Write a checkpoint there after every epoch and resume from an existing one: a long run
        that is interrupted continues where it stopped, with the same result as an uninterrupted
        run. A checkpoint written for other data or settings is discarded with a message.
    panels
        Section name -> the genes that section measured, for tables joining sections with
        different panels: a named section's other genes are unmeasured there (never zeros).
    callback
        Called after every epoch with one dict (see :meth:`FuseMap.train`), e.g. to drive a
        progress bar of your own (the R package does); it replaces the built-in display.
    **overrides
        Single configuration fields of any part of :class:`FuseMapConfig`, by name:
        ``max_epochs=50``, ``n_latent=32``, ``method='knn'``, ``device='cuda'``, ``seed=1``.

    Returns
    -------
    FuseMap
        The trained model, with its sections attached. Each input section (or, for one AnnData
        split by ``section_key``, that AnnData in its own cell order) now holds
        ``obsm['X_fusemap_cell']`` (cell embedding, cells x ``n_latent``),
        ``obsm['X_fusemap_spatial']`` (spatial embedding), ``varm['fusemap_gene_embedding']``
        (rows of the gene embedding for its genes) and ``uns['fusemap']`` (the run record);
        SpatialData input gets them in its annotating tables, in memory.

    Raises
    ------
    FuseMapInputError
        When the input cannot be used (the message names the argument and the fix), or an
        option value is invalid.
    FileExistsError
        When ``save`` exists and ``overwrite`` is false.

    Examples
    --------
    >>> import fusemap
    >>> sections = fusemap.datasets.simulate(n_sections=3, n_cells=500, panel_size=100, n_shared=40)
    >>> model = fusemap.integrate(sections, max_epochs=20, seed=0, save="atlas_model")
    >>> sections[0].obsm["X_fusemap_cell"].shape
    (500, 64)
    >>> model.gene_embedding().shape  # genes of the union of panels x n_latent
    (150, 64)
    """
    model = FuseMap(data, section_key, config, spatial_key=spatial_key, panels=panels, **overrides)
    model.train(checkpoint_dir=checkpoint_dir, callback=callback)
    if save is not None:
        model.save(save, overwrite=overwrite)
    model.write()
    return model
