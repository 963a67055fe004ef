"""The ordered set of sections every reader returns and every later step takes."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import anndata as ad
import numpy as np


@dataclass
class SectionSet:
    """Sections in their fixed order.

    When the sections were split out of one AnnData by ``section_key``, ``parent`` is that AnnData
    and ``parent_rows[i]`` gives, for section ``i``, the positions of its cells in ``parent``, so
    results can be written back in the parent's cell order.
    """

    names: list[str]
    adatas: list[ad.AnnData]
    parent: ad.AnnData | None = None
    parent_rows: list[np.ndarray] = field(default_factory=list)
    section_key: str | None = None
    source: Any = None
    """Where the sections came from when that is not AnnData (a SpatialData object): an object with
    ``write_back(sections)``, which :meth:`FuseMap.write` calls to put results back there."""
    paths: list[str] = field(default_factory=list)
    """Files or stores the sections were read from (what an output must never replace)."""

    def __len__(self) -> int:
        return len(self.names)

    def items(self):
        return zip(self.names, self.adatas)

    def subset(self, order: list[int]) -> "SectionSet":
        """The sections at positions ``order`` (parent rows follow; the source stays)."""
        return SectionSet([self.names[i] for i in order], [self.adatas[i] for i in order], parent=self.parent,
                          parent_rows=[self.parent_rows[i] for i in order] if self.parent_rows else [],
                          section_key=self.section_key, source=self.source, paths=list(self.paths))
