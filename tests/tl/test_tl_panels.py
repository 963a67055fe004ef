"""Gene modules, panel selection and panel evaluation (mechanics on simulated data; accuracy on STARmap)."""

import numpy as np
import pandas as pd
import pytest

from fusemap import FuseMapInputError, datasets
from fusemap.tl import panels


@pytest.fixture(scope="module")
def sim_expression():
    a = datasets.simulate(n_sections=1, n_cells=600, n_genes=80, seed=5)[0]
    return a


def block_embedding(genes, n_blocks=4, seed=0):
    """A gene embedding with ``n_blocks`` well separated groups of genes (ground-truth modules)."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(n_blocks, 8)) * 5
    truth = np.arange(len(genes)) % n_blocks
    x = centres[truth] + rng.normal(size=(len(genes), 8)) * 0.3
    return pd.DataFrame(x, index=genes), truth


def test_gene_modules_recover_planted_groups(sim_expression):
    from sklearn.metrics import adjusted_rand_score

    emb, truth = block_embedding(list(sim_expression.var_names))
    for method in ("kmeans", "hierarchical"):
        mods = panels.gene_modules(emb, 4, method=method)
        assert list(mods.index) == list(emb.index)
        assert adjusted_rand_score(truth, mods) == 1.0
        sizes = mods.value_counts()
        assert sizes.index[0] == "GM1" and sizes.is_monotonic_decreasing


def test_select_panel_spreads_evenly_and_takes_the_most_variable(sim_expression):
    emb, _ = block_embedding(list(sim_expression.var_names))
    mods = panels.gene_modules(emb, 4)
    disp = panels.variability(sim_expression)
    for n in (4, 10, 23):
        panel = panels.select_panel(emb, sim_expression, n, modules=mods)
        assert len(panel) == n and panel["gene"].is_unique
        per_module = panel["module"].value_counts().reindex(sorted(set(mods)), fill_value=0)
        assert per_module.max() - per_module.min() <= 1
        for m, genes in panel.groupby("module")["gene"]:  # the top of each module, in order
            ranked = [g for g in disp.index if mods[g] == m]
            assert list(genes) == ranked[:len(genes)]


def test_panel_helpers_and_errors(sim_expression):
    genes = list(sim_expression.var_names)
    assert panels.random_panel(genes, 10, seed=1) == panels.random_panel(genes, 10, seed=1)
    assert panels.random_panel(genes, 10, seed=1) != panels.random_panel(genes, 10, seed=2)
    hvg = panels.hvg_panel(sim_expression, 5)
    assert hvg == list(panels.variability(sim_expression).index[:5])
    with pytest.raises(FuseMapInputError, match="n_genes=500"):
        panels.random_panel(genes, 500)
    with pytest.raises(FuseMapInputError, match="label_key='nope'"):
        panels.evaluate_panel(sim_expression, hvg, "nope")
    with pytest.raises(FuseMapInputError, match="none of the"):
        panels.gene_modules(pd.DataFrame(np.ones((3, 2)), index=list("abc")), 2, genes=["x"])


def test_evaluate_panel_separates_marker_genes_from_noise(sim_expression):
    """Marker genes of the simulated types classify them far better than the least variable genes."""
    disp = panels.variability(sim_expression)
    good = panels.evaluate_panel(sim_expression, list(disp.index[:10]), "cell_type")
    bad = panels.evaluate_panel(sim_expression, list(disp.index[-10:]), "cell_type")
    print(f"\nsimulated: top-10 variable genes {good:.3f}, bottom-10 {bad:.3f}")
    assert good > 0.8 and good > bad + 0.3


@pytest.mark.realdata
@pytest.mark.slow
def test_embedding_panel_at_least_as_accurate_as_random_on_starmap(starmap_model, starmap_mosaic, record_property):
    """Panels of the STARmap genes chosen with the integration's gene embedding classify the 15
    STARmap cell types (all three sections, full 166-gene measurements) at least as well as random
    panels of the same size (mean of 5 draws).

    Measured (fixture model at the current defaults, logistic regression, 5 folds; 2026-12-07):
    10 genes 0.436 vs random 0.277 (top HVG 0.450); 20 genes 0.491 vs 0.387 (HVG 0.507). The same
    seed trained on one thread instead of two gave 0.443 and 0.483. Random draws scatter with sd
    0.048, so the mean of five has sd ~0.02. The required margin of 0.05 is 2.5 of those; the
    measured margins are 0.096-0.166. An earlier model (before the MMD alignment) measured 0.544 at
    20 genes; the 0.10 margin set from it failed on a one-thread run. Against top-HVG panels the
    embedding is behind by 0.01-0.02: not asserted.
    """
    import anndata as ad

    _, full = starmap_mosaic
    expr = ad.concat([a.copy() for a in full], label="section_id", index_unique="-")
    comp = panels.compare_panels(starmap_model, expr, "cell_type", sizes=(10, 20), n_random=5, n_modules=13)
    summary = comp.groupby(["size", "kind"])["accuracy"].mean().unstack()
    print("\nSTARmap panels (mean 5-fold accuracy):\n" + summary.round(3).to_string())
    for n in (10, 20):
        record_property(f"panel{n}", summary.loc[n].round(3).to_dict())
        assert summary.loc[n, "embedding"] >= summary.loc[n, "random"] + 0.05
