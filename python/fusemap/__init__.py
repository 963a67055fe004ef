"""FuseMap: integrate spatial transcriptomics sections with different gene panels.

Main entry points: :func:`integrate` (train and write embeddings), :class:`FuseMap` (the model),
:mod:`fusemap.datasets` (simulated and shared real data).
"""

__version__ = "0.1.0"

from ._constants import CELL_EMBEDDING, SPATIAL_EMBEDDING  # noqa: E402
from .api import integrate  # noqa: E402
from .config import FuseMapConfig, GraphConfig, ModelConfig, PreprocessConfig, TrainConfig  # noqa: E402
from .errors import FuseMapInputError, FuseMapModelError, FuseMapWarning  # noqa: E402
from .model import FuseMap  # noqa: E402
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
    "datasets",
    "integrate",
]
