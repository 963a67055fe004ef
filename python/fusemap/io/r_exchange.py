"""Converters between AnnData and Bioconductor's SpatialExperiment, and ``.rds`` files.

Python users hand results to R colleagues with :func:`write_rds` and read theirs with
:func:`read_rds`; :func:`anndata_to_spe` / :func:`spe_to_anndata` convert in memory through rpy2.
The R package ``FuseMap`` (``rpkg/``) uses the same exchange form through reticulate.

Both languages exchange an object as *parts*: plain typed one-dimensional arrays with separate
missing-value masks, so no missing value ever crosses between R and Python. (The automatic
conversions do not survive it: rpy2/anndata2ri turn a logical NA into INT_MIN and logicals into
integers; reticulate turns a logical NA into TRUE.) The mapping:

=====================  ===========================================================
AnnData                SpatialExperiment
=====================  ===========================================================
``X``                  assay ``X_name`` (default ``"counts"``; kept in ``uns["X_name"]``)
``layers[name]``       assay ``name``
``obs`` / ``var``      ``colData`` / ``rowData`` (categoricals <-> factors)
``obs_names``          ``colnames`` (``var_names`` <-> ``rownames``)
``obsm["spatial"]``    ``spatialCoords`` (column names in ``uns["spatialCoordsNames"]``)
other ``obsm``         ``reducedDims`` (``X_fusemap_cell`` <-> ``FuseMap_cell``, same for spatial)
``uns``                ``metadata`` (nested lists, vectors, strings, numbers)
=====================  ===========================================================

Matrices keep their values exactly (stored as float64). Parts of an object that have no
counterpart (images, alternative experiments, data frames inside ``uns``) are left out with a
warning that names them.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp

from .._constants import CELL_EMBEDDING, SPATIAL_EMBEDDING, SPATIAL_KEY
from ..errors import FuseMapInputError, FuseMapWarning
from .files import atomic_file

X_NAME_KEY = "X_name"
"""``uns`` key recording which assay ``X`` came from (the same key zellkonverter uses)."""
COORD_NAMES_KEY = "spatialCoordsNames"
"""``uns`` key keeping the column names of ``spatialCoords``."""
DEFAULT_X_NAME = "counts"
REDUCED_DIM_NAMES = {CELL_EMBEDDING: "FuseMap_cell", SPATIAL_EMBEDDING: "FuseMap_spatial"}
"""obsm keys that get Bioconductor-style reducedDim names (and back)."""
_INT32_MAX = np.iinfo(np.int32).max


# -- columns and data frames ---------------------------------------------------------------------------
def _encode_column(col: pd.Series, where: str) -> dict:
    """One obs/var column as a part: kind, NA-free values and a missing mask."""
    dtype = col.dtype
    if isinstance(dtype, pd.CategoricalDtype):
        return {"kind": "factor", "codes": col.cat.codes.to_numpy().astype(np.int32),
                "levels": np.asarray([str(c) for c in dtype.categories], dtype=str),
                "ordered": bool(dtype.ordered)}
    na = col.isna().to_numpy()
    if pd.api.types.is_bool_dtype(dtype):
        return {"kind": "logical", "values": col.fillna(False).to_numpy(dtype=bool), "na": na}
    if pd.api.types.is_integer_dtype(dtype):
        vals = col.to_numpy(dtype=np.float64, na_value=0.0)
        if np.all(np.abs(vals) <= _INT32_MAX):  # R integers are 32-bit
            return {"kind": "integer", "values": vals.astype(np.int32), "na": na}
        return {"kind": "double", "values": np.where(na, np.nan, vals)}
    if pd.api.types.is_float_dtype(dtype):
        return {"kind": "double", "values": col.to_numpy(dtype=np.float64, na_value=np.nan)}
    if not (pd.api.types.is_string_dtype(dtype) or dtype == object):
        warnings.warn(f"{where}: column of dtype {dtype} is written as text.", FuseMapWarning, stacklevel=3)
    values = np.asarray(["" if m else str(v) for v, m in zip(col.to_numpy(dtype=object), na)], dtype=str)
    return {"kind": "character", "values": values, "na": na}


def _decode_column(part: dict, n: int, where: str):
    kind = _scalar(part["kind"])
    if kind == "factor":
        codes = _array(part["codes"], np.int32, n)
        levels = [str(x) for x in _array(part["levels"], str)]
        return pd.Categorical.from_codes(codes, categories=levels, ordered=bool(_scalar(part["ordered"])))
    if kind == "double":
        return _array(part["values"], np.float64, n)
    na = _array(part.get("na", np.zeros(n, bool)), bool, n)
    if kind == "logical":
        values = _array(part["values"], bool, n)
        return pd.array(np.where(na, None, values), dtype="boolean") if na.any() else values
    if kind == "integer":
        values = _array(part["values"], np.int32, n)
        return pd.arrays.IntegerArray(values, na) if na.any() else values
    if kind == "character":
        values = _array(part["values"], object, n)
        values[na] = None
        return values
    raise FuseMapInputError(f"{where}: unknown column kind {kind!r} in the exchanged object.")


def frame_to_part(df: pd.DataFrame, where: str) -> dict:
    """A data frame (obs or var) as a part; its index travels separately as names."""
    return {"names": np.asarray([str(c) for c in df.columns], dtype=str),
            "columns": [_encode_column(df[c], f"{where}[{c!r}]") for c in df.columns]}


def frame_from_part(part: dict | None, index: pd.Index, where: str) -> pd.DataFrame:
    """The data frame of a part written by :func:`frame_to_part` (or by R), on ``index``."""
    if part is None:
        return pd.DataFrame(index=index)
    names = [str(x) for x in _array(part.get("names", []), str)]
    cols = _list(part.get("columns", []))
    data = {name: _decode_column(c, len(index), f"{where}[{name!r}]") for name, c in zip(names, cols)}
    return pd.DataFrame(data, index=index)


# -- matrices ----------------------------------------------------------------------------------------------
def matrix_to_part(m: Any, where: str) -> dict:
    """A cells x genes matrix as a part. Its CSR arrays are exactly R's dgCMatrix of genes x cells."""
    if hasattr(m, "compute"):  # dask
        m = m.compute()
    if sp.issparse(m):
        m = sp.csr_matrix(m, dtype=np.float64)
        if m.nnz > _INT32_MAX:
            raise FuseMapInputError(f"{where} has {m.nnz} stored values; R's sparse matrices hold at most 2^31-1.")
        m.sort_indices()
        return {"kind": "sparse", "data": m.data.astype(np.float64), "indices": m.indices.astype(np.int32),
                "indptr": m.indptr.astype(np.int32), "shape": np.asarray(m.shape, dtype=np.int32)}
    arr = np.asarray(m, dtype=np.float64)
    if arr.ndim != 2:
        raise FuseMapInputError(f"{where} is not a matrix (shape {arr.shape}).")
    return {"kind": "dense", "values": np.ascontiguousarray(arr).ravel(),
            "shape": np.asarray(arr.shape, dtype=np.int32)}


def matrix_from_part(part: dict, shape: tuple[int, int]):
    """The matrix of a part written by :func:`matrix_to_part` (or by R): CSR or dense, float64."""
    kind = _scalar(part["kind"])
    if kind == "sparse":
        return sp.csr_matrix((_array(part["data"], np.float64), _array(part["indices"], np.int32),
                              _array(part["indptr"], np.int32)), shape=shape)
    return _array(part["values"], np.float64).reshape(shape)


def _embedding_to_part(m: Any, n_obs: int, where: str) -> dict | None:
    if isinstance(m, pd.DataFrame):
        m = m.to_numpy()
    if sp.issparse(m):
        m = m.toarray()
    arr = np.asarray(m)
    if arr.ndim != 2 or arr.shape[0] != n_obs or not np.issubdtype(arr.dtype, np.number):
        warnings.warn(f"{where} is not a numeric cells x dimensions matrix (shape {arr.shape}, "
                      f"dtype {arr.dtype}); it is left out.", FuseMapWarning, stacklevel=3)
        return None
    return {"values": np.ascontiguousarray(arr, dtype=np.float64).ravel(), "ncol": int(arr.shape[1])}


def _embedding_from_part(part: dict, n_obs: int) -> np.ndarray:
    ncol = int(_scalar(part["ncol"]))
    return _array(part["values"], np.float64).reshape(n_obs, ncol)


# -- metadata ------------------------------------------------------------------------------------------------
def plain(value: Any, where: str, dropped: list[str]):
    """``uns`` content that R's metadata can hold (nested lists, vectors, scalars); else ``None``
    with its name added to ``dropped``."""
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            pv = plain(v, f"{where}${k}", dropped)
            if pv is not None:
                out[str(k)] = pv
        return out
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value) if abs(int(value)) <= _INT32_MAX else float(value)
    if isinstance(value, (float, np.floating)):
        return float(value)
    if isinstance(value, (str, np.str_)):
        return str(value)
    if isinstance(value, (list, tuple)):
        if value and all(isinstance(v, str) for v in value):
            return np.asarray(value, dtype=str)
        if value and all(isinstance(v, (bool, np.bool_)) for v in value):
            return np.asarray(value, dtype=bool)
        if value and all(isinstance(v, (int, float, np.number)) and not isinstance(v, bool) for v in value):
            return np.asarray(value, dtype=np.float64)
        items = [plain(v, f"{where}[{i}]", dropped) for i, v in enumerate(value)]
        return [v for v in items if v is not None]
    if isinstance(value, np.ndarray) and value.dtype.kind in "biufU" and value.ndim <= 2:
        if value.dtype.kind == "u" or value.dtype.kind == "i":
            return value.astype(np.int32) if value.size == 0 or np.abs(value).max() <= _INT32_MAX else value.astype(float)
        if value.dtype.kind == "f":
            return value.astype(np.float64)
        return value
    if isinstance(value, np.ndarray) and value.dtype == object and value.ndim == 1 and all(isinstance(v, str) for v in value):
        return value.astype(str)
    dropped.append(where)
    return None


# -- AnnData <-> parts ----------------------------------------------------------------------------------------
def anndata_to_parts(adata: ad.AnnData, X_name: str | None = None) -> dict:
    """Everything of ``adata`` that a SpatialExperiment can hold, as plain arrays.

    ``X_name`` names the assay that ``X`` becomes: given, else ``uns["X_name"]``, else
    ``"counts"`` (``"X"`` when a layer is already called ``"counts"``).
    """
    if not isinstance(adata, ad.AnnData):
        raise FuseMapInputError(f"adata must be an AnnData; found {type(adata).__name__}.")
    X_name = X_name or _uns_x_name(adata) or (DEFAULT_X_NAME if DEFAULT_X_NAME not in adata.layers else "X")
    if X_name in adata.layers:
        raise FuseMapInputError(
            f"X_name={X_name!r} is also the name of a layer (layers: {list(adata.layers.keys())}); "
            "choose another name for the assay that X becomes."
        )
    assays: dict[str, dict] = {}
    if adata.X is not None:
        assays[X_name] = matrix_to_part(adata.X, "X")
    for name in adata.layers.keys():
        assays[str(name)] = matrix_to_part(adata.layers[name], f"layers[{name!r}]")
    dropped: list[str] = []
    spatial, coord_names = None, np.asarray([], dtype=str)
    reduced: dict[str, dict] = {}
    for key in adata.obsm.keys():
        part = _embedding_to_part(adata.obsm[key], adata.n_obs, f"obsm[{key!r}]")
        if part is None:
            dropped.append(f"obsm[{key!r}]")
        elif key == SPATIAL_KEY:
            spatial = part
        else:
            reduced[REDUCED_DIM_NAMES.get(str(key), str(key))] = part
    uns = {k: v for k, v in adata.uns.items() if k not in (X_NAME_KEY, COORD_NAMES_KEY)}
    if spatial is not None:
        ncol = int(spatial["ncol"])
        given = adata.uns.get(COORD_NAMES_KEY)
        if given is not None and len(given) == ncol:
            coord_names = np.asarray([str(x) for x in given], dtype=str)
        else:
            coord_names = np.asarray(["x", "y", "z"][:ncol] if ncol <= 3 else [f"dim{i + 1}" for i in range(ncol)],
                                     dtype=str)
    uns_plain = plain(uns, "uns", dropped)
    if dropped:
        warnings.warn(f"left out (no SpatialExperiment counterpart): {dropped}", FuseMapWarning, stacklevel=2)
    return {
        "n_obs": int(adata.n_obs), "n_vars": int(adata.n_vars),
        "obs_names": np.asarray(adata.obs_names.astype(str), dtype=str),
        "var_names": np.asarray(adata.var_names.astype(str), dtype=str),
        "X_name": X_name,
        "assay_names": np.asarray(list(assays), dtype=str), "assays": list(assays.values()),
        "obs": frame_to_part(adata.obs, "obs"), "var": frame_to_part(adata.var, "var"),
        "spatial": spatial, "spatial_names": coord_names,
        "reduced_names": np.asarray(list(reduced), dtype=str), "reduced": list(reduced.values()),
        "uns": uns_plain, "dropped": np.asarray(dropped, dtype=str),
    }


def anndata_from_parts(parts: dict) -> ad.AnnData:
    """Rebuild an AnnData from parts (as made by :func:`anndata_to_parts` or by the R side)."""
    n_obs, n_vars = int(_scalar(parts["n_obs"])), int(_scalar(parts["n_vars"]))
    obs_names = pd.Index([str(x) for x in _array(parts["obs_names"], str, n_obs)])
    var_names = pd.Index([str(x) for x in _array(parts["var_names"], str, n_vars)])
    x_name = str(_scalar(parts["X_name"]))
    names = [str(x) for x in _array(parts.get("assay_names", []), str)]
    mats = {name: matrix_from_part(p, (n_obs, n_vars)) for name, p in zip(names, _list(parts.get("assays", [])))}
    obsm = {}
    if parts.get("spatial") is not None:
        obsm[SPATIAL_KEY] = _embedding_from_part(parts["spatial"], n_obs)
    back = {v: k for k, v in REDUCED_DIM_NAMES.items()}
    for name, p in zip(_array(parts.get("reduced_names", []), str), _list(parts.get("reduced", []))):
        obsm[back.get(str(name), str(name))] = _embedding_from_part(p, n_obs)
    uns = _dict(parts.get("uns"))
    uns[X_NAME_KEY] = x_name
    if SPATIAL_KEY in obsm:
        uns[COORD_NAMES_KEY] = np.asarray(_array(parts.get("spatial_names", []), str), dtype=str)
    with warnings.catch_warnings():  # R allows duplicate cell names (e.g. after cbind); keep them
        warnings.filterwarnings("ignore", message=".*names? (are|is) not unique.*")
        adata = ad.AnnData(
            X=mats.pop(x_name, None),
            obs=frame_from_part(_dict(parts.get("obs")) or None, obs_names, "colData"),
            var=frame_from_part(_dict(parts.get("var")) or None, var_names, "rowData"),
            layers=mats or None, obsm=obsm or None, uns=uns,
        )
    return adata


def read_h5ad_parts(path: str | os.PathLike, X_name: str | None = None) -> dict:
    """Parts of an ``.h5ad`` file (used by R's ``anndata_to_spe("file.h5ad")``)."""
    p = Path(path)
    if not p.is_file():
        raise FuseMapInputError(f"x: file {str(p)!r} does not exist; pass the path of an .h5ad file.")
    return anndata_to_parts(ad.read_h5ad(p), X_name)


def write_h5ad(adata: ad.AnnData, path: str | os.PathLike, overwrite: bool = False) -> Path:
    """Write an ``.h5ad`` file atomically: to a temporary file beside ``path``, then renamed.

    A crash or a full disk never leaves a truncated file where R (or a later run) would read it.

    Parameters
    ----------
    adata
        The AnnData to write.
    path
        Target file.
    overwrite
        Replace an existing file at ``path``.

    Returns
    -------
    pathlib.Path
        The file written.

    Raises
    ------
    FileExistsError
        When ``path`` exists and ``overwrite`` is false.

    Examples
    --------
    >>> fusemap.io.write_h5ad(sections[0], "section0.h5ad", overwrite=True)  # doctest: +SKIP
    """
    return _atomic_write(Path(path), overwrite, lambda tmp: adata.write_h5ad(tmp), ".h5ad")


def _atomic_write(path: Path, overwrite: bool, write, suffix: str) -> Path:
    if path.exists() and not overwrite:
        raise FileExistsError(f"file={str(path)!r} already exists; pass overwrite=True to replace it "
                              "or choose another file name.")
    with atomic_file(path, suffix) as tmp:
        write(tmp)
    return path


def _uns_x_name(adata: ad.AnnData) -> str | None:
    v = adata.uns.get(X_NAME_KEY)
    return str(_scalar(v)) if v is not None else None


# -- the wire form used by the R package through reticulate --------------------------------------------------
# reticulate 1.28 (Debian's R) cannot convert NumPy 2 arrays, so arrays travel as raw bytes (little
# endian) or lists of strings; R decodes them with readBin(). Scalars, dicts and lists travel as they are.
_WIRE = "__nd__"


def to_wire(obj: Any):
    """Encode every NumPy array inside ``obj`` (dicts and lists are walked) for reticulate."""
    if isinstance(obj, dict):
        return {str(k): to_wire(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_wire(v) for v in obj]
    if isinstance(obj, np.ndarray):
        shape = [int(s) for s in obj.shape]
        kind = obj.dtype.kind
        if kind in "US" or obj.dtype == object:
            return {_WIRE: "str", "data": [str(x) for x in obj.ravel()], "shape": shape}
        if kind == "b":
            data, code = obj.astype(np.uint8), "b1"
        elif kind in "iu" and (obj.size == 0 or np.abs(obj).max() <= _INT32_MAX):
            data, code = obj.astype("<i4"), "i4"
        else:
            data, code = obj.astype("<f8"), "f8"
        return {_WIRE: code, "data": bytearray(np.ascontiguousarray(data).tobytes()), "shape": shape}
    if isinstance(obj, np.generic):
        return obj.item()
    return obj


def from_wire(obj: Any):
    """Decode what R's ``.wire()`` sent: arrays from bytes or strings, everything else as is."""
    if isinstance(obj, dict):
        if _WIRE in obj:
            code = obj[_WIRE]
            shape = tuple(int(s) for s in np.atleast_1d(obj.get("shape", [])))
            if code == "str":
                data = obj["data"]
                arr = np.asarray([data] if isinstance(data, str) else list(data or []), dtype=str)
            else:
                dtype = {"f8": "<f8", "i4": "<i4", "b1": "u1"}[code]
                arr = np.frombuffer(bytes(obj["data"]), dtype=dtype).copy()
                if code == "b1":
                    arr = arr.astype(bool)
                elif code == "i4":
                    arr = arr.astype(np.int32)
            return arr.reshape(shape) if len(shape) > 1 else arr
        return {str(k): from_wire(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [from_wire(v) for v in obj]
    return obj


def parts_for_r(x: Any, X_name: str | None = None) -> dict:
    """Parts of an AnnData or ``.h5ad`` path, in the wire form (R's ``anndata_to_spe()``)."""
    parts = read_h5ad_parts(x, X_name) if isinstance(x, (str, os.PathLike)) else anndata_to_parts(x, X_name)
    return to_wire(parts)


def anndata_from_r(parts: dict) -> ad.AnnData:
    """An AnnData from parts sent by R in the wire form (R's ``spe_to_anndata()``)."""
    return anndata_from_parts(from_wire(parts))


def obsm_for_r(adata: ad.AnnData, key: str):
    """One ``obsm`` matrix in the wire form (float64)."""
    return to_wire(np.asarray(adata.obsm[key], dtype=np.float64))


def obs_for_r(adata: ad.AnnData, columns: list[str]) -> dict:
    """The named ``obs`` columns that ``adata`` holds (e.g. the novelty map_query wrote), as a
    frame part in the wire form; columns it lacks are left out."""
    return frame_for_r(adata.obs[[c for c in columns if c in adata.obs]])


def frame_for_r(df: pd.DataFrame) -> dict:
    """A data frame (e.g. label-transfer predictions) as a frame part in the wire form."""
    return to_wire(frame_to_part(df, "frame"))


def imputed_for_r(adata: ad.AnnData) -> dict:
    """An imputation result: values (cells x genes), cell and gene names, ``var['measured_in']``."""
    x = adata.X.toarray() if sp.issparse(adata.X) else np.asarray(adata.X)
    measured = adata.var["measured_in"] if "measured_in" in adata.var else pd.Series([""] * adata.n_vars)
    return to_wire({"values": np.asarray(x, dtype=np.float64),
                    "obs_names": np.asarray(adata.obs_names.astype(str), dtype=str),
                    "var_names": np.asarray(adata.var_names.astype(str), dtype=str),
                    "measured_in": np.asarray(measured.astype(str), dtype=str)})


def gene_embedding_for_r(model) -> dict:
    """A model's gene embedding (genes x latent) and gene names in the wire form."""
    table = model.gene_embedding()
    return to_wire({"values": table.to_numpy(dtype=np.float64), "genes": np.asarray(table.index, dtype=str)})


# -- tolerant readers (parts arrive as numpy arrays from Python, lists/scalars from reticulate) ------------
def _scalar(v):
    if isinstance(v, (list, tuple, np.ndarray)):
        arr = np.asarray(v).ravel()
        return arr[0].item() if arr.size else None
    return v.item() if isinstance(v, np.generic) else v


def _array(v, dtype, n: int | None = None) -> np.ndarray:
    if v is None:
        arr = np.asarray([], dtype=dtype)
    elif isinstance(v, (str, bytes)) or np.isscalar(v):
        arr = np.asarray([v], dtype=dtype)
    else:
        arr = np.asarray(v, dtype=dtype).ravel()
    if n is not None and arr.size != n:
        raise FuseMapInputError(f"exchanged object is inconsistent: expected {n} values, found {arr.size}.")
    return arr


def _list(v) -> list:
    if v is None:
        return []
    if isinstance(v, dict):  # a single part sent unboxed
        return [v]
    return list(v)


def _dict(v) -> dict:
    return dict(v) if isinstance(v, dict) else {}


# -- SpatialExperiment through rpy2 ---------------------------------------------------------------------------
# The R side of the exchange is the R package's own code, never a copy: rpkg/R/parts.R in a source
# checkout (how `make setup` installs fusemap), else the installed R package FuseMap's namespace.
# tests/io/test_io_r.py checks that files written here read correctly in R.
PARTS_R = Path(__file__).resolve().parents[3] / "rpkg" / "R" / "parts.R"
_R_ENV = None


def _r():
    """Embedded R with SpatialExperiment loaded and the exchange functions defined."""
    global _R_ENV
    if _R_ENV is not None:
        return _R_ENV
    os.environ.setdefault("RPY2_CFFI_MODE", "ABI")  # the API build needs R's headers; ABI mode is enough
    # rpy2 prepends R's library folders (and the system's) to LD_LIBRARY_PATH when it starts R. This
    # process has already loaded its libraries, but child processes would inherit the change and a
    # Python built with its own libpython could load the system's instead; put the variable back.
    saved = os.environ.get("LD_LIBRARY_PATH")
    try:
        import rpy2.robjects as ro
    except Exception as exc:  # noqa: BLE001 - ImportError, or R missing behind rpy2
        raise ImportError(
            "fusemap.io needs R and rpy2: run scripts/setup_r.sh (installs R, SpatialExperiment and "
            f"rpy2 into .venv), or `pip install 'fusemap[r]'` where R is installed ({exc})."
        ) from exc
    finally:
        if saved is None:
            os.environ.pop("LD_LIBRARY_PATH", None)
        else:
            os.environ["LD_LIBRARY_PATH"] = saved
    ok = ro.r('function() suppressWarnings(suppressPackageStartupMessages('
              'requireNamespace("SpatialExperiment", quietly = TRUE)))')()[0]
    if not ok:
        raise ImportError("the R package SpatialExperiment is not installed; run scripts/setup_r.sh.")
    if PARTS_R.is_file():
        load = ro.r("function(path) { e <- new.env(); sys.source(path, envir = e, keep.source = FALSE); e }")
        _R_ENV = load(str(PARTS_R))
    elif ro.r('function() requireNamespace("FuseMap", quietly = TRUE)')()[0]:
        _R_ENV = ro.r("asNamespace")("FuseMap")
    else:
        raise ImportError(
            "fusemap.io's R exchange runs the R package's code (rpkg/R/parts.R), found neither in a source "
            "checkout nor installed; install the R package FuseMap (R CMD INSTALL rpkg)."
        )
    return _R_ENV


def _to_r(v):
    """Plain Python values (parts) to R objects; dict -> named list, list -> list, arrays -> vectors."""
    import rpy2.rinterface as ri
    import rpy2.robjects as ro

    if v is None:
        return ri.NULL
    if isinstance(v, dict):
        return ro.vectors.ListVector([(str(k), _to_r(x)) for k, x in v.items()])
    if isinstance(v, list):
        out = ro.r["vector"]("list", len(v))
        for i, x in enumerate(v):
            out[i] = _to_r(x)
        return out
    if isinstance(v, (bool, np.bool_)):
        return ro.BoolVector([bool(v)])
    if isinstance(v, (int, np.integer)):
        return ro.IntVector([int(v)])
    if isinstance(v, (float, np.floating)):
        return ro.FloatVector([float(v)])
    if isinstance(v, str):
        return ro.StrVector([v])
    arr = np.asarray(v)
    if arr.ndim == 2:
        vec = _to_r(np.asfortranarray(arr).ravel(order="F"))
        return ro.r["matrix"](vec, nrow=arr.shape[0], ncol=arr.shape[1])
    if arr.dtype.kind == "b":
        return ro.BoolVector(arr.tolist())
    if arr.dtype.kind in "iu":
        return ro.IntVector(arr.astype(np.int32).tolist())
    if arr.dtype.kind == "f":
        return ro.FloatVector(arr.astype(np.float64))
    return ro.StrVector([str(x) for x in arr])


def _from_r(obj, scalars: bool = False):
    """R objects to plain Python values (NA-free by the exchange protocol)."""
    import rpy2.rinterface as ri
    import rpy2.robjects as ro

    if obj is ri.NULL or obj is None:
        return None
    if isinstance(obj, (ro.vectors.ListVector, ri.ListSexpVector)):
        obj = ro.vectors.ListVector(obj) if not isinstance(obj, ro.vectors.ListVector) else obj
        names = obj.names
        has_names = names is not ri.NULL and names is not None and len(obj) and all(
            n not in ("", ri.NA_Character) for n in names)
        items = [_from_r(x, scalars) for x in obj]
        return dict(zip([str(n) for n in names], items)) if has_names else items
    if isinstance(obj, ri.ByteSexpVector):  # the wire form's raw bytes
        return bytes(obj)
    if isinstance(obj, (ri.StrSexpVector,)):
        arr = np.asarray([str(x) for x in obj], dtype=str)
    elif isinstance(obj, ri.BoolSexpVector):
        arr = np.asarray(list(obj), dtype=bool)
    elif isinstance(obj, ri.IntSexpVector):
        arr = np.asarray(list(obj), dtype=np.int32)
    elif isinstance(obj, ri.FloatSexpVector):
        arr = np.asarray(list(obj), dtype=np.float64)
    else:
        return None
    dim = ro.r["dim"](obj)
    if dim is not ri.NULL and len(dim) == 2:
        return arr.reshape((int(dim[0]), int(dim[1])), order="F")
    if scalars and arr.size == 1:
        return arr[0].item()
    return arr


def anndata_to_spe(adata: ad.AnnData, X_name: str | None = None):
    """An rpy2 SpatialExperiment holding ``adata``, for R code run through rpy2.

    ``X`` and layers become assays, ``obs``/``var`` colData/rowData, ``obsm['spatial']``
    spatialCoords, other ``obsm`` reducedDims (``X_fusemap_cell`` -> ``FuseMap_cell``), ``uns``
    metadata; the full mapping is in :mod:`fusemap.io.r_exchange`. Needs the ``r`` extra (rpy2) and
    R with SpatialExperiment.

    Parameters
    ----------
    adata
        The AnnData to convert.
    X_name
        Name of the assay that ``X`` becomes (default: ``uns['X_name']``, else ``'counts'``;
        ``'X'`` when a layer is already called ``'counts'``).

    Returns
    -------
    rpy2.robjects.methods.RS4
        The SpatialExperiment.

    Examples
    --------
    >>> spe = fusemap.io.anndata_to_spe(sections[0])  # doctest: +SKIP
    """
    env = _r()
    return env[".parts_to_spe"](_to_r(anndata_to_parts(adata, X_name)))


def spe_to_anndata(spe, X_name: str | None = None) -> ad.AnnData:
    """An AnnData from an rpy2 SpatialExperiment (or SingleCellExperiment).

    The inverse of :func:`anndata_to_spe`; parts without an AnnData counterpart (images,
    alternative experiments) are left out with a :class:`~fusemap.FuseMapWarning` naming them.

    Parameters
    ----------
    spe
        The R object (through rpy2).
    X_name
        Assay that becomes ``X`` (default ``counts`` when present, else the first assay); the
        other assays become layers.

    Returns
    -------
    anndata.AnnData

    Raises
    ------
    FuseMapInputError
        When ``spe`` is not a SingleCellExperiment or ``X_name`` is not one of its assays.

    Examples
    --------
    >>> adata = fusemap.io.spe_to_anndata(spe, X_name="counts")  # doctest: +SKIP
    """
    import rpy2.robjects as ro

    env = _r()
    cls = list(ro.r["class"](spe))
    if not ro.r("function(x) methods::is(x, 'SingleCellExperiment')")(spe)[0]:
        raise FuseMapInputError(
            f"spe must be a SpatialExperiment or SingleCellExperiment; found R class {cls}."
        )
    names = [str(x) for x in ro.r("SummarizedExperiment::assayNames")(spe)]
    if X_name is None:
        X_name = DEFAULT_X_NAME if DEFAULT_X_NAME in names else names[0]
    if X_name not in names:
        raise FuseMapInputError(f"X_name={X_name!r} is not an assay of spe (assays: {names}).")
    res = env[".spe_to_parts"](spe, X_name)  # the wire form, as the R package sends it to Python
    got = _from_r(res.rx2("dropped"))
    dropped = [] if got is None else [str(x) for x in _array(got, str)]
    if dropped:
        warnings.warn(f"left out (no AnnData counterpart): {dropped}", FuseMapWarning, stacklevel=2)
    return anndata_from_r(_from_r(res.rx2("parts"), scalars=True))


def write_rds(adata: ad.AnnData, path: str | os.PathLike, overwrite: bool = False,
              X_name: str | None = None) -> Path:
    """Save ``adata`` as a SpatialExperiment in an ``.rds`` file that R reads with ``readRDS()``.

    The way to hand results (embeddings, transferred labels) to R colleagues. Written to a
    temporary file beside ``path`` and renamed into place. Needs the ``r`` extra and R with
    SpatialExperiment.

    Parameters
    ----------
    adata
        The AnnData to save (see :func:`anndata_to_spe` for what goes where).
    path
        Target ``.rds`` file.
    overwrite
        Replace an existing file at ``path``.
    X_name
        Name of the assay that ``X`` becomes (default: ``uns['X_name']``, else ``'counts'``;
        ``'X'`` when a layer is already called ``'counts'``).

    Returns
    -------
    pathlib.Path
        The file written.

    Raises
    ------
    FileExistsError
        When ``path`` exists and ``overwrite`` is false.

    Examples
    --------
    >>> fusemap.io.write_rds(sections[0], "BZ5_fusemap.rds")  # doctest: +SKIP
    """
    import rpy2.robjects as ro

    path = Path(path)
    if path.exists() and not overwrite:  # checked before the conversion work
        raise FileExistsError(f"path={str(path)!r} already exists; pass overwrite=True to replace it.")
    spe = anndata_to_spe(adata, X_name)
    return _atomic_write(path, overwrite, lambda tmp: ro.r["saveRDS"](spe, file=str(tmp)), ".rds")


def read_rds(path: str | os.PathLike, X_name: str | None = None) -> ad.AnnData:
    """Read an ``.rds`` file holding a SpatialExperiment (or SingleCellExperiment) as AnnData.

    Parameters
    ----------
    path
        The ``.rds`` file (written by R's ``saveRDS()`` or :func:`write_rds`).
    X_name
        Assay that becomes ``X`` (default ``counts`` when present, else the first assay).

    Returns
    -------
    anndata.AnnData

    Raises
    ------
    FuseMapInputError
        When the file does not exist or holds no SingleCellExperiment.

    Examples
    --------
    >>> adata = fusemap.io.read_rds("section_from_R.rds")  # doctest: +SKIP
    >>> model = fusemap.integrate([adata, other])  # doctest: +SKIP
    """
    import rpy2.robjects as ro

    path = Path(path)
    if not path.is_file():
        raise FuseMapInputError(f"path={str(path)!r} does not exist; pass the path of an .rds file.")
    _r()
    return spe_to_anndata(ro.r["readRDS"](str(path)), X_name)


_DEPRECATIONS = (DeprecationWarning, PendingDeprecationWarning, FutureWarning)
_PACKAGE_DIR = str(Path(__file__).resolve().parents[1])


class WarningsForR:
    """Records the warnings raised during one call from R, so that R raises them as R warnings.

    Python writes warnings to the process's stderr, which R's condition handlers and knitr never
    see. Deprecation and future warnings of other packages are dropped: they speak to the authors
    of the calling code, not to R users; those raised from fusemap's own code are kept.
    """

    def __enter__(self) -> "WarningsForR":
        self._catcher = warnings.catch_warnings(record=True)
        self._log = self._catcher.__enter__()
        warnings.simplefilter("always")
        return self

    def __exit__(self, *exc: Any) -> bool:
        self._catcher.__exit__(*exc)
        return False

    def messages(self) -> list[str]:
        """Each distinct warning once, as 'Category: message', in the order raised."""
        out: list[str] = []
        for w in self._log:
            if issubclass(w.category, _DEPRECATIONS) and not str(w.filename).startswith(_PACKAGE_DIR):
                continue
            text = f"{w.category.__name__}: {w.message}"
            if text not in out:
                out.append(text)
        return out
