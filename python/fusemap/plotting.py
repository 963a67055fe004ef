"""Figures of an integration: UMAPs of both embeddings and clusters on the tissue (matplotlib)."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import anndata as ad
import matplotlib

matplotlib.use("Agg", force=False)
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from ._constants import CELL_EMBEDDING, SECTION_COLUMN, SPATIAL_EMBEDDING, SPATIAL_KEY  # noqa: E402


def _palette(n: int) -> list:
    cmap = plt.get_cmap("tab20" if n > 10 else "tab10")
    return [cmap(i % cmap.N) for i in range(n)]


def pooled_embedding(sections: Sequence[ad.AnnData], names: Sequence[str], key: str) -> ad.AnnData:
    """One AnnData of all cells holding only ``key`` embeddings, coordinates and labels."""
    parts = []
    for name, a in zip(names, sections):
        obs = pd.DataFrame({SECTION_COLUMN: name}, index=[f"{name}:{c}" for c in a.obs_names])
        for col in ("cell_type", "region"):
            if col in a.obs:
                obs[col] = a.obs[col].astype(str).to_numpy()
        p = ad.AnnData(np.zeros((a.n_obs, 0), dtype=np.float32), obs=obs)
        p.obsm["emb"] = np.asarray(a.obsm[key], dtype=np.float32)
        p.obsm[SPATIAL_KEY] = np.asarray(a.obsm[SPATIAL_KEY], dtype=np.float32)
        parts.append(p)
    out = ad.concat(parts, merge="same")
    out.obs[SECTION_COLUMN] = pd.Categorical(out.obs[SECTION_COLUMN], categories=list(names))
    return out


def cluster_and_umap(pooled: ad.AnnData, resolution: float = 0.8, seed: int = 0,
                     n_neighbors: int = 15) -> ad.AnnData:
    """Leiden clusters and a UMAP of the pooled embedding (in place; returns ``pooled``)."""
    import scanpy as sc

    sc.pp.neighbors(pooled, use_rep="emb", n_neighbors=n_neighbors, random_state=seed)
    sc.tl.leiden(pooled, resolution=resolution, random_state=seed, flavor="igraph", n_iterations=2,
                 directed=False, key_added="cluster")
    sc.tl.umap(pooled, random_state=seed)
    return pooled


def scatter_categories(ax, xy: np.ndarray, labels: pd.Series, title: str, s: float | None = None,
                       legend: bool = True) -> None:
    cats = list(pd.Categorical(labels).categories)
    colors = _palette(len(cats))
    s = s if s is not None else max(0.5, 30000 / max(len(xy), 1) ** 1.1)
    for c, col in zip(cats, colors):
        m = np.asarray(labels == c)
        ax.scatter(xy[m, 0], xy[m, 1], s=s, color=col, label=str(c), linewidths=0, rasterized=True)
    ax.set_title(title)
    ax.set_xticks([])
    ax.set_yticks([])
    if legend and len(cats) <= 30:
        ax.legend(markerscale=max(1, 6 / s ** 0.5), fontsize=7, frameon=False, loc="center left",
                  bbox_to_anchor=(1.0, 0.5), ncol=1 if len(cats) <= 15 else 2)


def umap_figure(pooled: ad.AnnData, title: str, colors: Sequence[str]) -> plt.Figure:
    cols = [c for c in colors if c in pooled.obs]
    fig, axes = plt.subplots(1, len(cols), figsize=(5.2 * len(cols), 4.2), squeeze=False)
    for ax, c in zip(axes[0], cols):
        scatter_categories(ax, pooled.obsm["X_umap"], pooled.obs[c], f"{title}: {c}")
    fig.tight_layout()
    return fig


def spatial_figure(pooled: ad.AnnData, color: str, title: str) -> plt.Figure:
    names = list(pooled.obs[SECTION_COLUMN].cat.categories)
    n = len(names)
    ncol = min(n, 4)
    nrow = int(np.ceil(n / ncol))
    fig, axes = plt.subplots(nrow, ncol, figsize=(4.2 * ncol, 4.0 * nrow), squeeze=False)
    cats = pd.Categorical(pooled.obs[color])
    for i, name in enumerate(names):
        ax = axes[i // ncol][i % ncol]
        m = np.asarray(pooled.obs[SECTION_COLUMN] == name)
        sub = pd.Series(pd.Categorical(np.asarray(cats)[m], categories=cats.categories))
        scatter_categories(ax, pooled.obsm[SPATIAL_KEY][m], sub, f"{name}", legend=(i == n - 1))
        ax.set_aspect("equal")
    for j in range(n, nrow * ncol):
        axes[j // ncol][j % ncol].axis("off")
    fig.suptitle(title)
    fig.tight_layout()
    return fig


def integration_figures(sections: Sequence[ad.AnnData], names: Sequence[str], out_dir: str | Path,
                        seed: int = 0) -> list[Path]:
    """Write the standard figures of an integration as PNGs; returns their paths.

    For each embedding: UMAP coloured by section, by Leiden cluster (and by ``cell_type`` /
    ``region`` when present), and the clusters drawn on every section's coordinates.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for key, label in ((CELL_EMBEDDING, "cell"), (SPATIAL_EMBEDDING, "spatial")):
        pooled = cluster_and_umap(pooled_embedding(sections, names, key), seed=seed)
        fig = umap_figure(pooled, f"{label} embedding", [SECTION_COLUMN, "cluster", "cell_type", "region"])
        written.append(_save(fig, out_dir / f"umap_{label}.png"))
        fig = spatial_figure(pooled, "cluster", f"{label} embedding clusters on the tissue")
        written.append(_save(fig, out_dir / f"spatial_{label}_clusters.png"))
    return written


def _save(fig: plt.Figure, path: Path) -> Path:
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path
