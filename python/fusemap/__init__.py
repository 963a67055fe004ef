"""FuseMap: integrate spatial transcriptomics sections with different gene panels.

Main entry points: :func:`integrate` (train and write embeddings), :class:`FuseMap` (the model),
:func:`map_query` (new sections onto a trained reference), :func:`impute` (genes from the
embeddings), :func:`transfer_labels` (annotations from reference to query),
:mod:`fusemap.datasets` (simulated and shared real data), :mod:`fusemap.tl` (atlas analyses:
regions, nomenclatures, gene panels, proximity, imputation check) and :mod:`fusemap.pl` (their figures).

Layers, each importing only from those below it:

- :mod:`fusemap.cli`: the command line; parses flags and calls the functions below.
- :mod:`fusemap.pl` over :mod:`fusemap.tl`: figures over analyses.
- tasks: :mod:`~fusemap.api` (integrate), :mod:`~fusemap.mapping`, :mod:`~fusemap.imputation`,
  :mod:`~fusemap.transfer`.
- the model: :mod:`~fusemap.model` (one state setter for training, loading and mapping),
  :mod:`~fusemap.training`, :mod:`~fusemap.inference`, :mod:`~fusemap.module`,
  :mod:`~fusemap.graph`, :mod:`~fusemap.sampler`, :mod:`~fusemap.validation`.
- :mod:`fusemap.io`: reading sections (one reader), writing results (one writer), atomic files
  and output folders, SpatialData, on-disk sections, the R exchange.
- foundations: :mod:`~fusemap.config`, :mod:`~fusemap.vocabulary`, :mod:`~fusemap.preprocess`,
  :mod:`~fusemap.balance`, :mod:`~fusemap.errors`.
"""

import os as _os
import sys as _sys

# OpenMP threads that wait for each other by sleeping instead of spinning: on a machine whose cores
# other processes also use, spinning threads burn the time slices their partners need: beside four
# busy processes on 2 cores an epoch took 26x its quiet time, 3.1x when sleeping (quiet: no
# difference; benchmarks/performance/results/contention.csv). libgomp reads this once, when torch loads it,
# so it only takes effect when fusemap is imported before torch; a value the user set wins.
if "torch" not in _sys.modules:
    _os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from ._constants import VERSION as __version__  # noqa: E402

from ._constants import CELL_EMBEDDING, SPATIAL_EMBEDDING  # noqa: E402
from .api import integrate  # noqa: E402
from .config import FuseMapConfig, GraphConfig, ModelConfig, PreprocessConfig, TrainConfig  # noqa: E402
from .errors import FuseMapInputError, FuseMapModelError, FuseMapWarning  # noqa: E402
from .model import FuseMap  # noqa: E402
from .imputation import impute  # noqa: E402
from .mapping import map_query  # noqa: E402
from .transfer import TransferResult, transfer_labels  # noqa: E402
from . import datasets  # noqa: E402

__all__ = [
    "CELL_EMBEDDING",
    "SPATIAL_EMBEDDING",
    "FuseMap",
    "FuseMapConfig",
    "FuseMapInputError",
    "FuseMapModelError",
    "FuseMapWarning",
    "GraphConfig",
    "ModelConfig",
    "PreprocessConfig",
    "TrainConfig",
    "TransferResult",
    "__version__",
    "datasets",
    "impute",
    "integrate",
    "map_query",
    "pl",
    "tl",
    "transfer_labels",
]


def __getattr__(name: str):
    """``fusemap.tl`` (analyses) and ``fusemap.pl`` (their figures) load on first use: importing
    fusemap does not pull in matplotlib, scikit-learn or scanpy's plotting for them."""
    if name in ("tl", "pl"):
        import importlib

        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'fusemap' has no attribute {name!r}")
