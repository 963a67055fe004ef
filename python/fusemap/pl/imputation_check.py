"""Figure of the cross-section imputation check: r per gene in each group."""

from __future__ import annotations

import os

import numpy as np
import pandas as pd

from ..tl.imputation_check import GROUPS
from ._common import finish, plt

_LABELS = {"shared_measured": "shared genes\nmeasured A vs B", "shared_imputed": "shared genes\nimputed A vs B",
           "b_only_imputed": "genes only in B\nimputed A vs B"}


def imputation_check_boxplot(check: pd.DataFrame, *, save: str | os.PathLike | None = None) -> plt.Figure:
    """Box plot (with points) of Pearson r over grid squares, one box per gene group.

    The paper's figure of the cross-section imputation check: measured shared genes give the
    ceiling, imputed shared genes and imputed genes only B measured are compared with it.

    Parameters
    ----------
    check
        The table of :func:`fusemap.tl.check_imputation`.
    save
        Write the figure there (format from the suffix, written atomically).

    Returns
    -------
    matplotlib.figure.Figure

    Examples
    --------
    >>> check = fusemap.tl.check_imputation(bz5, bz9, imputed)  # doctest: +SKIP
    >>> fusemap.pl.imputation_check_boxplot(check, save="imputation_check.png")  # doctest: +SKIP
    """
    groups = [g for g in GROUPS if g in set(check["group"])]
    data = [check.loc[check["group"] == g, "r"].dropna().to_numpy() for g in groups]
    fig, ax = plt.subplots(figsize=(1.8 * len(groups) + 1.5, 3.8))
    ax.boxplot(data, showfliers=False)
    rng = np.random.default_rng(0)
    for i, d in enumerate(data, start=1):
        ax.scatter(i + rng.uniform(-0.15, 0.15, len(d)), d, s=6, alpha=0.5, color="black")
    ax.set_xticks(range(1, len(groups) + 1), [f"{_LABELS[g]}\n(n={len(d)})" for g, d in zip(groups, data)],
                  fontsize=8)
    ax.axhline(0, color="grey", linewidth=0.6)
    ax.set_ylabel("Pearson r over grid squares")
    ax.set_title("imputation across sections")
    return finish(fig, save)
