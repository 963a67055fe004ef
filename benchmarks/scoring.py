"""Scores shared by every method: scIB metrics on embeddings, imputation Pearson R on masked genes
(against kNN baselines), and annotation transfer to a held-out section.

All figures come from the same inputs for every method: the case folder and the worker's
``outputs.npz``. The unintegrated embedding given to scib-metrics is the PCA of the shared genes
(``benchmarks.methods.pca.shared_pca``), for every method.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp
from scipy.spatial import Delaunay
from sklearn.metrics import accuracy_score, f1_score
from sklearn.neighbors import KNeighborsClassifier, NearestNeighbors

from .methods._common import imputation_tasks, load_case, log_normalise, shared_counts
from .methods.pca import shared_pca

KNN_IMPUTE_K = 15
KNN_TRANSFER_K = 15


@dataclass
class Case:
    """A case folder read once for scoring: all cells, labels, PCA of shared genes, graphs."""
    dir: Path
    info: dict
    sections: list[ad.AnnData]
    obs: pd.DataFrame
    pca: np.ndarray
    adjacency: sp.csr_matrix          # block-diagonal Delaunay graph with self loops, row-normalised
    truth: dict[str, ad.AnnData] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.info["name"]


def delaunay_mean_operator(xy: np.ndarray) -> sp.csr_matrix:
    """Row-normalised (A + I) of the Delaunay graph: multiplying by it averages each cell with its
    neighbours (used to give methods without a spatial embedding a neighbourhood embedding)."""
    tri = Delaunay(xy)
    s = tri.simplices
    rows = np.concatenate([s[:, 0], s[:, 1], s[:, 2], s[:, 1], s[:, 2], s[:, 0]])
    cols = np.concatenate([s[:, 1], s[:, 2], s[:, 0], s[:, 0], s[:, 1], s[:, 2]])
    n = len(xy)
    a = sp.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(n, n))
    a.data[:] = 1.0
    a = a + sp.identity(n, format="csr")
    deg = np.asarray(a.sum(1)).ravel()
    return sp.diags(1.0 / deg) @ a


def read_case(case_dir: str | Path) -> Case:
    info, secs = load_case(str(case_dir))
    shared = shared_counts(info, secs)
    # a section without coordinates is its own neighbourhood (identity block)
    blocks = [delaunay_mean_operator(np.asarray(a.obsm["spatial"], dtype=np.float64)) if "spatial" in a.obsm
              else sp.identity(a.n_obs, format="csr") for a in secs]
    truth = {}
    tdir = Path(case_dir) / "truth"
    if tdir.exists():
        truth = {s: ad.read_h5ad(tdir / f"{s}.h5ad") for s in info["sections"] if (tdir / f"{s}.h5ad").exists()}
    obs = shared.obs[["section", "cell_type", "region"]].copy()
    return Case(Path(case_dir), info, secs, obs, shared_pca(shared), sp.block_diag(blocks, format="csr"), truth)


def load_outputs(out_dir: str | Path, case: Case) -> dict:
    """The worker's outputs, checked against the case's cell order."""
    z = np.load(Path(out_dir) / "outputs.npz", allow_pickle=False)
    meta = json.loads((Path(out_dir) / "meta.json").read_text())
    names = z["obs_names"].astype(str)
    if not np.array_equal(names, case.obs.index.to_numpy().astype(str)):
        raise ValueError(f"{out_dir}: cells are not in the case's order")
    out = {"cell": z["cell"], "spatial": z["spatial"] if "spatial" in z.files else None, "meta": meta,
           "imputed": {}, "pred": {}}
    for k in z.files:
        if k.startswith("imputed::"):
            sec = k.split("::", 1)[1]
            out["imputed"][sec] = (meta["imputed_genes"][sec], z[k])
        if k.startswith("pred::"):
            key = k.split("::", 1)[1]
            out["pred"][key] = (z[f"pred_names::{key}"].astype(str), z[k].astype(str))
    return out


# -- scIB -------------------------------------------------------------------------------------------
def _exact_neighbors(x: np.ndarray, k: int):
    from scib_metrics.nearest_neighbors import NeighborsResults

    nn = NearestNeighbors(n_neighbors=k).fit(x)
    d, i = nn.kneighbors(x)
    return NeighborsResults(indices=i, distances=d)


def _scib_key(case: Case, emb: np.ndarray, label_key: str, kbet: bool) -> str:
    """Identity of one scIB scoring: the embedding's values, the labels, batches and unintegrated
    PCA of the case, and the metric set."""
    import hashlib

    h = hashlib.sha1()
    for part in (np.ascontiguousarray(emb, dtype=np.float32), np.ascontiguousarray(case.pca, dtype=np.float32)):
        h.update(str(part.shape).encode())
        h.update(part.tobytes())
    h.update("\x00".join(case.obs[label_key].astype(str)).encode())
    h.update("\x00".join(case.obs["section"].astype(str)).encode())
    h.update(f"{label_key}|kbet={kbet}|v1".encode())
    return h.hexdigest()


def scib_scores(case: Case, embeddings: dict[str, np.ndarray], label_key: str, kbet: bool = True,
                cache_dir: str | Path | None = None) -> pd.DataFrame:
    """:func:`scib_scores_uncached`, remembering each embedding's row in ``cache_dir``. Without
    min-max scaling every scib-metrics score depends only on that embedding (and the shared
    unintegrated PCA), so a rerun scores only the embeddings it has not seen."""
    if cache_dir is None:
        return scib_scores_uncached(case, embeddings, label_key, kbet)
    cache = Path(cache_dir)
    cache.mkdir(parents=True, exist_ok=True)
    keys = {k: _scib_key(case, np.asarray(e), label_key, kbet) for k, e in embeddings.items()}
    rows, todo = {}, {}
    for k, e in embeddings.items():
        f = cache / f"{keys[k]}.json"
        if f.exists():
            rows[k] = pd.Series(json.loads(f.read_text()), dtype=float)
        else:
            todo[k] = e
    if todo:
        fresh = scib_scores_uncached(case, todo, label_key, kbet)
        for k, row in fresh.iterrows():
            tmp = cache / f"{keys[k]}.tmp"
            tmp.write_text(json.dumps({c: float(v) for c, v in row.items()}))
            tmp.replace(cache / f"{keys[k]}.json")
            rows[k] = row
    return pd.DataFrame([rows[k] for k in embeddings], index=list(embeddings))


def scib_scores_uncached(case: Case, embeddings: dict[str, np.ndarray], label_key: str,
                         kbet: bool = True) -> pd.DataFrame:
    """scib-metrics Benchmarker (exact neighbours, no min-max scaling) on every embedding; one row
    per embedding key with the metric columns and the three aggregate scores.

    The full metric set, kBET per label included (it measures local mixing, where a section offset
    that the other batch metrics forgive shows); ``kbet=False`` leaves it out for quick runs (a
    minute or more per embedding on two shared CPU cores), and the batch score is then the mean of
    BRAS, iLISI, graph connectivity and PCR comparison."""
    from scib_metrics.benchmark import BatchCorrection, Benchmarker

    adata = ad.AnnData(np.zeros((case.obs.shape[0], 1), dtype=np.float32), obs=case.obs.copy())
    adata.obsm["X_pca_shared"] = case.pca
    keys = []
    for i, (k, e) in enumerate(embeddings.items()):
        key = f"emb{i}"
        adata.obsm[key] = np.asarray(e, dtype=np.float32)
        keys.append((key, k))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        bm = Benchmarker(adata, batch_key="section", label_key=label_key, embedding_obsm_keys=[k for k, _ in keys],
                         pre_integrated_embedding_obsm_key="X_pca_shared", n_jobs=1, progress_bar=False,
                         batch_correction_metrics=BatchCorrection(kbet_per_label=kbet))
        bm.prepare(neighbor_computer=_exact_neighbors)
        bm.benchmark()
        res = bm.get_results(min_max_scale=False, clean_names=True)
    res = res.drop(index="Metric Type", errors="ignore")
    res = res.loc[[k for k, _ in keys]].astype(float)
    res.index = [name for _, name in keys]
    return res


# -- imputation -------------------------------------------------------------------------------------
def _section_lognorm(case: Case) -> tuple[list[np.ndarray], list[np.ndarray], list[float]]:
    """Per section: log-normalised expression of its own panel, library sizes and target size."""
    xs, libs, targets = [], [], []
    for a in case.sections:
        x = a.X.toarray() if sp.issparse(a.X) else np.asarray(a.X)
        lib = x.sum(1)
        t = float(np.median(lib[lib > 0]))
        xs.append(log_normalise(x, t))
        libs.append(lib)
        targets.append(t)
    return xs, libs, targets


def imputation_truth(case: Case) -> dict[str, tuple[list[str], np.ndarray]]:
    """Measured values of each section's masked genes, normalised with that section's own panel
    library size (what the user has), log1p."""
    _, libs, targets = _section_lognorm(case)
    out = {}
    for i, s in enumerate(case.info["sections"]):
        if s not in case.truth:
            continue
        t = case.truth[s]
        genes = list(case.info["masked_genes"][s])
        x = t[:, genes].X
        x = x.toarray() if sp.issparse(x) else np.asarray(x)
        out[s] = (genes, np.log1p(x / np.maximum(libs[i], 1e-12)[:, None] * targets[i]))
    return out


def _pearson_columns(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a - a.mean(0)
    b = b - b.mean(0)
    den = np.sqrt((a ** 2).sum(0) * (b ** 2).sum(0))
    with np.errstate(invalid="ignore", divide="ignore"):
        r = (a * b).sum(0) / den
    r[den == 0] = np.nan
    return r


def knn_impute(case: Case, embedding: np.ndarray, k: int = KNN_IMPUTE_K) -> dict[str, tuple[list[str], np.ndarray]]:
    """Impute each section's masked genes as the mean log-normalised expression of its k nearest
    cells (in ``embedding``) among the other sections that measured the gene."""
    xs, _, _ = _section_lognorm(case)
    sec_of = case.obs["section"].astype(str).to_numpy()
    names = case.info["sections"]
    # genes no other section measured stay NaN (no score)
    out = {s: (list(case.info["masked_genes"][s]), np.full(((sec_of == s).sum(), len(case.info["masked_genes"][s])),
                                                          np.nan, dtype=np.float32))
           for s in names if case.info.get("masked_genes", {}).get(s)}
    # what every imputation method is given: groups of genes measured by the same other sections
    for i, genes, src, _ in imputation_tasks(case.info, case.sections):
        target = embedding[sec_of == names[i]]
        src_emb = np.concatenate([embedding[sec_of == names[j]] for j in src])
        src_x = np.concatenate([xs[j][:, [list(case.sections[j].var_names).index(g) for g in genes]] for j in src])
        _, idx = NearestNeighbors(n_neighbors=min(k, len(src_emb))).fit(src_emb).kneighbors(target)
        col = {g: c for c, g in enumerate(out[names[i]][0])}
        out[names[i]][1][:, [col[g] for g in genes]] = src_x[idx].mean(1)
    return out


def _ssim_columns(pred: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """SSIM per gene as in Li et al. (Nat. Methods 2022): each vector scaled by its maximum to
    [0, 1], then the global structural similarity with C1 = 0.01², C2 = 0.03²."""
    def scale(m):
        mx = m.max(0)
        return np.divide(m, mx, out=np.zeros_like(m, dtype=np.float64), where=mx > 0)
    x, y = scale(np.asarray(pred, dtype=np.float64)), scale(np.asarray(truth, dtype=np.float64))
    mx, my = x.mean(0), y.mean(0)
    cov = ((x - mx) * (y - my)).mean(0)
    c1, c2 = 0.01 ** 2, 0.03 ** 2
    return ((2 * mx * my + c1) * (2 * cov + c2)) / ((mx ** 2 + my ** 2 + c1) * (x.var(0) + y.var(0) + c2))


def _rmse_columns(pred: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """RMSE per gene between the z-scored vectors (Li et al. 2022): shape, not scale, is compared."""
    def z(m):
        m = np.asarray(m, dtype=np.float64)
        sd = m.std(0)
        return np.divide(m - m.mean(0), sd, out=np.zeros_like(m), where=sd > 0)
    return np.sqrt(((z(pred) - z(truth)) ** 2).mean(0))


def _js_columns(pred: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """Jensen-Shannon divergence per gene (base 2, in [0, 1]) between the vectors normalised to sum
    1 over cells (Li et al. 2022); negative predictions count as 0."""
    def dist(m):
        m = np.clip(np.asarray(m, dtype=np.float64), 0, None)
        tot = m.sum(0)
        return np.divide(m, tot, out=np.full_like(m, 1.0 / max(len(m), 1)), where=tot > 0)
    p, q = dist(pred), dist(truth)
    mid = 0.5 * (p + q)

    def kl(a, b):
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(a > 0, a * np.log2(a / b), 0.0).sum(0)
    return 0.5 * kl(p, mid) + 0.5 * kl(q, mid)


def imputation_scores(truth: dict, imputed: dict) -> dict[str, float]:
    """Per (section, gene), averaged: Pearson R (also its median), and the other three scores of
    Li et al. 2022: SSIM (higher is better), RMSE of z-scores and JS divergence (lower is better)."""
    rs, ss, es, js = [], [], [], []
    for s, (genes, y) in truth.items():
        if s not in imputed:
            continue
        pg, p = imputed[s]
        col = {g: j for j, g in enumerate(pg)}
        keep = [i for i, g in enumerate(genes) if g in col]
        pred, true = np.asarray(p)[:, [col[genes[i]] for i in keep]], y[:, keep]
        r = _pearson_columns(pred, true)
        ok = np.isfinite(r) & np.isfinite(pred).all(0)  # a gene measured as constant has no R
        rs.extend(r[ok].tolist())
        ss.extend(_ssim_columns(pred[:, ok], true[:, ok]).tolist())
        es.extend(_rmse_columns(pred[:, ok], true[:, ok]).tolist())
        js.extend(_js_columns(pred[:, ok], true[:, ok]).tolist())
    if not rs:
        return {}
    rs = np.asarray(rs)
    return {"pearson_mean": float(rs.mean()), "pearson_median": float(np.median(rs)),
            "ssim_mean": float(np.mean(ss)), "rmse_mean": float(np.mean(es)), "js_mean": float(np.mean(js)),
            "n_genes": int(rs.size)}


# -- annotation transfer ----------------------------------------------------------------------------
def transfer_scores(case: Case, embedding: np.ndarray, label_key: str, k: int = KNN_TRANSFER_K) -> dict[str, float]:
    """kNN classifier on the reference sections' cells, evaluated on the held-out section's cells
    whose true label exists in the reference (labels unique to the query cannot be transferred)."""
    return label_scores(*knn_transfer_predictions(case, embedding, label_key, k))


def knn_transfer_predictions(case: Case, embedding: np.ndarray, label_key: str,
                             k: int = KNN_TRANSFER_K) -> tuple[np.ndarray, np.ndarray, set]:
    """True and 15-NN-predicted labels of the held-out cells, and the reference's label set."""
    sec = case.obs["section"].astype(str).to_numpy()
    y = case.obs[label_key].astype(str).to_numpy()
    ref = np.isin(sec, case.info["reference"])
    qry = sec == case.info["held_out"]
    pred = KNeighborsClassifier(n_neighbors=k).fit(embedding[ref], y[ref]).predict(embedding[qry])
    return y[qry], pred, set(y[ref])


def per_class_f1(true: np.ndarray, pred: np.ndarray, known: set) -> dict[str, float]:
    """F1 of each class the reference and the held-out section share (cells of other classes left out)."""
    m = np.isin(true, list(known))
    labels = sorted(known & set(true[m]))
    f1 = f1_score(true[m], pred[m], labels=labels, average=None, zero_division=0)
    return dict(zip(labels, (float(v) for v in f1)))


def label_scores(true: np.ndarray, pred: np.ndarray, known: set) -> dict[str, float]:
    m = np.isin(true, list(known))
    labels = sorted(known & set(true[m]))
    return {"accuracy": float(accuracy_score(true[m], pred[m])),
            "macro_f1": float(f1_score(true[m], pred[m], labels=labels, average="macro", zero_division=0)),
            "n_query": int(m.sum())}


def native_transfer_scores(case: Case, pred: tuple[np.ndarray, np.ndarray], label_key: str) -> dict[str, float]:
    """Scores of a method's own predictions for the held-out section (``pred`` = names, labels)."""
    names, labels = pred
    y = case.obs[label_key].astype(str)
    sec = case.obs["section"].astype(str).to_numpy()
    known = set(y[np.isin(sec, case.info["reference"])])
    return label_scores(y.loc[names].to_numpy(), np.asarray(labels), known)
