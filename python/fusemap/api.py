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
    """Integrate sections and write ``obsm['X_fusemap_cell']``, ``obsm['X_fusemap_spatial']``,
    ``varm['fusemap_gene_embedding']`` and ``uns['fusemap']`` into them.

    Returns the trained :class:`FuseMap`; ``model.gene_embedding()`` gives the genes x latent table
    over the union of panels. With ``save``, the model is saved there first (the run record then
    names its directory). Keyword ``overrides`` set single configuration fields (``max_epochs=50``).
    ``panels`` and ``callback``: as for :class:`FuseMap` and :meth:`FuseMap.train`.
    """
    model = FuseMap(data, section_key, config, spatial_key=spatial_key, panels=panels, **overrides)
    model.train(checkpoint_dir=checkpoint_dir, callback=callback)
    if save is not None:
        model.save(save, overwrite=overwrite)
    model.write()
    return model
