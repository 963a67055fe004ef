"""The ordered set of sections every reader returns and every later step takes."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp

from ..errors import FuseMapInputError

log = logging.getLogger("fusemap")

NEVER_ZERO = "fusemap never treats unmeasured genes as zeros"
"""Said by every message about unmeasured genes."""


@dataclass
class SectionSet:
    """Sections in their fixed order: what :func:`read_sections` returns and every later step takes.

    When the sections were split out of one AnnData by ``section_key``, ``parent`` is that AnnData
    and ``parent_rows[i]`` gives, for section ``i``, the positions of its cells in ``parent``, so
    results can be written back in the parent's cell order.

    Parameters
    ----------
    names
        Section names, unique, in order.
    adatas
        One AnnData per section, in the same order.
    parent
        The AnnData the sections were split out of, if any.
    parent_rows
        Per section, the positions of its cells in ``parent``.
    section_key
        The obs column the sections were split by.
    source
        See the attribute below.
    paths
        See the attribute below.

    Examples
    --------
    >>> s = fusemap.io.read_sections({"a": adata_a, "b": adata_b})  # doctest: +SKIP
    >>> [(name, a.n_obs) for name, a in s.items()]  # doctest: +SKIP
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
        """Pairs (name, AnnData) in section order.

        Examples
        --------
        >>> for name, adata in sections.items():  # doctest: +SKIP
        ...     print(name, adata.n_obs)
        """
        return zip(self.names, self.adatas)

    def subset(self, order: list[int]) -> "SectionSet":
        """The sections at positions ``order`` (parent rows follow; the source stays).

        Parameters
        ----------
        order
            Positions of the sections to keep, in the new order.

        Returns
        -------
        SectionSet

        Examples
        --------
        >>> sections.subset([1, 0]).names  # doctest: +SKIP
        """
        return SectionSet([self.names[i] for i in order], [self.adatas[i] for i in order], parent=self.parent,
                          parent_rows=[self.parent_rows[i] for i in order] if self.parent_rows else [],
                          section_key=self.section_key, source=self.source, paths=list(self.paths))


def _all_nan_columns(m) -> np.ndarray | None:
    """Boolean mask of the columns that are NaN in every row (None for on-disk or empty matrices)."""
    if m is None or m.shape[0] == 0:
        return None
    if sp.issparse(m):
        c = sp.csr_matrix(m)
        nan_per_column = np.bincount(c.indices[np.isnan(c.data)], minlength=m.shape[1])
        return nan_per_column == m.shape[0]
    if not isinstance(m, np.ndarray) or not np.issubdtype(m.dtype, np.floating):
        return None
    return np.isnan(m).all(axis=0)


def drop_unmeasured_genes(adata: ad.AnnData, name: str) -> ad.AnnData:
    """A section cut from a table that joins several panels holds NaN for the genes it did not
    measure (``anndata.concat(join="outer")``). Those genes are left out of its panel; filling them
    with 0 would tell the model they were measured and silent."""
    masks = [_all_nan_columns(m) for m in [adata.X, *adata.layers.values()]]
    masks = [m for m in masks if m is not None]
    if not masks:
        return adata
    unmeasured = np.logical_or.reduce(masks)
    if not unmeasured.any():
        return adata
    log.info("section %r: %d gene(s) are NaN in every cell (not measured there); left out of its panel (%s)",
             name, int(unmeasured.sum()), NEVER_ZERO)
    return adata[:, ~unmeasured].copy()


def section_groups(col: pd.Series, where: str) -> list[tuple[str, np.ndarray]]:
    """(section name, row positions) for an obs column naming each cell's section, in the column's
    category order (else order of first appearance); ``where`` names the column in messages."""
    if col.isna().any():
        raise FuseMapInputError(
            f"{where} has {int(col.isna().sum())} missing value(s); every cell needs a section. Fill them "
            "or drop those cells."
        )
    values = col.astype(str).to_numpy()
    if isinstance(col.dtype, pd.CategoricalDtype):
        present = set(values)
        order = [str(c) for c in col.cat.categories if str(c) in present]
    else:
        order = [str(v) for v in pd.unique(values)]
    return [(name, np.flatnonzero(values == name)) for name in order]
