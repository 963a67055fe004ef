"""Sections larger than memory: read from backed ``.h5ad`` or zarr in chunks of rows.

A section whose expression matrix stays on disk (``anndata.read_h5ad(path, backed="r")``, an
AnnData zarr store opened with :func:`open_sections`, or any row-sliceable array: h5py / zarr
datasets, anndata's on-disk sparse datasets, dask arrays) is preprocessed a block of rows at a
time into a CSR matrix whose arrays are memory-mapped files. Training then reads only the rows
of each minibatch from those files, so neither the raw nor the preprocessed matrix has to fit
in memory; what stays in memory is per cell (coordinates, graph, row pointers), i.e. linear in
cells and independent of panel width.

The source is read once. Pass 1 streams raw counts into the memory-mapped files and sums each
cell's library size; pass 2 normalises, log-transforms and accumulates per-gene moments in place;
pass 3 scales and clips in place (the same per-chunk steps as :mod:`fusemap.preprocess`). The
files live in a temporary folder (``tempfile``: set ``TMPDIR`` to put it on a large disk) that is
deleted when the matrix is garbage-collected.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import weakref
from pathlib import Path
from typing import Sequence

import numpy as np
import scipy.sparse as sp

from ..errors import FuseMapInputError
from ..preprocess import (CHUNK_NNZ, ColumnMoments, PreprocessStats, chunk_row_sums, library_factors,
                         normalize_chunk, row_chunks, scale_clip_chunk)


def is_out_of_core(m) -> bool:
    """True for matrices that stay on disk (or are lazy) and must be read in row blocks."""
    if m is None or sp.issparse(m) or isinstance(m, np.ndarray):
        return False
    return hasattr(m, "shape") and len(getattr(m, "shape", ())) == 2 and hasattr(m, "__getitem__")


def default_chunk_rows(n_vars: int) -> int:
    return max(256, CHUNK_NNZ // max(int(n_vars), 1))


def iter_row_blocks(m, chunk_rows: int | None = None):
    """``(start, csr float32 block)`` over the rows of an on-disk or lazy matrix."""
    n, g = m.shape
    step = chunk_rows or default_chunk_rows(g)
    for start in range(0, n, step):
        block = m[start:min(start + step, n)]
        if hasattr(block, "compute"):  # dask
            block = block.compute()
        if sp.issparse(block):
            block = sp.csr_matrix(block)
            if block.dtype != np.float32:
                block = block.astype(np.float32)
        else:
            block = sp.csr_matrix(np.asarray(block, dtype=np.float32))
        block.eliminate_zeros()
        block.sum_duplicates()
        block.sort_indices()
        yield start, block


class _Spill:
    """Append-only binary file, memory-mapped once complete."""

    def __init__(self, path: Path, dtype):
        self.path, self.dtype, self.n = path, np.dtype(dtype), 0
        self.fh = open(path, "wb")

    def write(self, a: np.ndarray) -> None:
        self.fh.write(np.ascontiguousarray(a, dtype=self.dtype).tobytes())
        self.n += a.size

    def open(self) -> np.ndarray:
        self.fh.close()
        if self.n == 0:
            return np.zeros(0, dtype=self.dtype)
        return np.memmap(self.path, dtype=self.dtype, mode="r+", shape=(self.n,))


def preprocess_chunked(m, *, normalized: bool = False, target_sum: float | None = None, clip: float = 10.0,
                       directory: str | os.PathLike | None = None, chunk_rows: int | None = None,
                       chunk_nnz: int = CHUNK_NNZ) -> tuple[sp.csr_matrix, PreprocessStats]:
    """Preprocess an on-disk matrix into a CSR matrix backed by memory-mapped files.

    Same result as :func:`fusemap.preprocess.preprocess` (float32) with memory bounded by one
    block of ``chunk_rows`` rows read from the source, temporaries for ``chunk_nnz`` stored
    entries, and per-cell and per-gene vectors.
    """
    n, g = m.shape
    folder = Path(tempfile.mkdtemp(prefix="fusemap-backed-", dir=directory))
    try:
        data_f = _Spill(folder / "data.f32", np.float32)
        idx_f = _Spill(folder / "indices.i32", np.int32)
        indptr = np.zeros(n + 1, dtype=np.int64)
        totals = np.zeros(n, dtype=np.float64)
        for start, block in iter_row_blocks(m, chunk_rows):  # pass 1: spill raw values
            r1 = start + block.shape[0]
            lengths = np.diff(block.indptr)
            indptr[start + 1:r1 + 1] = indptr[start] + np.cumsum(lengths)
            totals[start:r1] = chunk_row_sums(block.data, lengths)
            data_f.write(block.data)
            idx_f.write(block.indices)
        data, indices = data_f.open(), idx_f.open()
        if normalized:
            tsum, n_empty = None, int((np.diff(indptr) == 0).sum())
        else:
            factors, tsum, n_empty = library_factors(totals, target_sum)
        mom = ColumnMoments(g)
        for a, b in row_chunks(indptr, chunk_nnz):  # pass 2: normalise + log1p in place, gene moments
            s, e = indptr[a], indptr[b]
            if not normalized:
                normalize_chunk(data[s:e], np.diff(indptr[a:b + 1]), factors[a:b])
            mom.add(data[s:e], indices[s:e])
        scale = mom.std(n)
        scale[scale == 0] = 1.0
        inv = (1.0 / scale).astype(np.float32)
        for a, b in row_chunks(indptr, chunk_nnz):  # pass 3: per-gene scaling and clipping in place
            s, e = indptr[a], indptr[b]
            scale_clip_chunk(data[s:e], indices[s:e], inv, clip)
        if isinstance(data, np.memmap):
            data.flush()
        x = sp.csr_matrix((data, indices, indptr), shape=(n, g), copy=False)
        x.has_sorted_indices = True
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    weakref.finalize(x, shutil.rmtree, str(folder), True)
    return x, PreprocessStats(tsum, scale.astype(np.float32), n_empty)


class ColumnSubset:
    """Row-sliceable view of an on-disk matrix restricted to columns ``pos`` (read block, then select)."""

    def __init__(self, m, pos: np.ndarray):
        self.m, self.pos = m, np.asarray(pos)
        self.shape = (m.shape[0], len(self.pos))

    def __getitem__(self, rows):
        block = self.m[rows]
        if hasattr(block, "compute"):
            block = block.compute()
        return sp.csr_matrix(block)[:, self.pos] if sp.issparse(block) else np.asarray(block)[:, self.pos]


def select_columns(m, pos: np.ndarray):
    """``m[:, pos]`` without reading an on-disk matrix whole."""
    return ColumnSubset(m, pos) if is_out_of_core(m) else m[:, pos]


def preprocess_matrix(m, *, normalized: bool = False, target_sum: float | None = None,
                      clip: float = 10.0) -> tuple[sp.csr_matrix, PreprocessStats]:
    """In-memory matrices go through :func:`fusemap.preprocess.preprocess`; on-disk ones are
    preprocessed in row blocks into memory-mapped files (:func:`preprocess_chunked`)."""
    if is_out_of_core(m):
        return preprocess_chunked(m, normalized=normalized, target_sum=target_sum, clip=clip)
    from ..preprocess import preprocess

    return preprocess(m, normalized=normalized, target_sum=target_sum, clip=clip)


def open_sections(paths: Sequence[str | os.PathLike]):
    """Open ``.h5ad`` files (backed, read-only) or AnnData ``.zarr`` stores without loading ``X``.

    For sections larger than memory: everything but the expression matrix (obs, var, obsm, ...)
    is read into memory; the expression is preprocessed a block of rows at a time into
    memory-mapped files (in ``$TMPDIR``) and training reads only each minibatch's rows. Pass the
    result to :class:`fusemap.FuseMap` / :func:`fusemap.integrate` like in-memory sections.

    Parameters
    ----------
    paths
        ``.h5ad`` files or AnnData ``.zarr`` stores, one section each.

    Returns
    -------
    list of anndata.AnnData
        One per path, in the given order.

    Raises
    ------
    FuseMapInputError
        When a path does not exist or cannot be opened.

    Examples
    --------
    >>> from fusemap.io.backed import open_sections
    >>> sections = open_sections(["A.h5ad", "B.zarr"])  # doctest: +SKIP
    >>> model = fusemap.integrate(sections)  # doctest: +SKIP
    """
    import anndata as ad

    out = []
    for p in paths:
        path = Path(p)
        if not path.exists():
            raise FuseMapInputError(f"sections: {str(path)!r} does not exist.")
        if path.suffix == ".zarr" or path.is_dir():
            out.append(_open_zarr(path))
        else:
            try:
                out.append(ad.read_h5ad(path, backed="r"))
            except Exception as exc:  # noqa: BLE001 - re-raised with the file name
                raise FuseMapInputError(f"sections: could not open {str(path)!r} as .h5ad ({exc}).") from exc
    return out


def _open_zarr(path: Path):
    """An AnnData zarr store with ``X`` left on disk (anndata's on-disk sparse dataset or a zarr array)."""
    import anndata as ad
    import zarr
    from anndata.io import read_elem, sparse_dataset

    try:
        g = zarr.open_group(str(path), mode="r")
        X = g["X"]
        parts = {k: read_elem(g[k]) for k in ("obs", "var", "obsm", "uns") if k in g}
        return ad.AnnData(X=sparse_dataset(X) if isinstance(X, zarr.Group) else X, **parts)
    except Exception as exc:  # noqa: BLE001 - re-raised with the store name
        raise FuseMapInputError(
            f"sections: could not open {str(path)!r} as an AnnData zarr store ({exc}). SpatialData "
            "stores are read by fusemap.io.spatialdata (pass the store path itself)."
        ) from exc
