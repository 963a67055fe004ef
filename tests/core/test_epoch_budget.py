"""An epoch's cost is bounded whatever the data size (``max_epoch_steps``, ``max_val_cells``), the
capped epochs still draw every training cell evenly, and the stopping rule then counts steps."""

import numpy as np
import pytest
import scipy.sparse as sp

from fusemap import datasets
from fusemap.config import GraphConfig, make_config
from fusemap.errors import FuseMapInputError
from fusemap.graph import section_graph
from fusemap.sampler import EpochPlan, SectionData, iterate_blocks


def _section(n_cells: int, seed: int = 0) -> SectionData:
    a = datasets.simulate(n_sections=1, n_cells=n_cells, n_genes=12, seed=seed)[0]
    perm = np.random.default_rng(seed).permutation(a.n_obs)
    n_val = int(0.15 * a.n_obs)
    return SectionData(f"s{n_cells}", sp.csr_matrix(a.X, dtype=np.float32), section_graph(a, GraphConfig()),
                       np.arange(12), np.sort(perm[n_val:]), np.sort(perm[:n_val]))


@pytest.fixture(scope="module")
def sections():
    return {n: _section(n) for n in (1_000, 4_000, 16_000)}


@pytest.mark.parametrize("patch_size", [None, 64])
def test_capped_epochs_have_the_same_steps_and_encodings_at_every_size(sections, patch_size):
    steps, encoded, per_seed = {}, {}, {}
    for n, s in sections.items():
        plan = EpochPlan([s], 256, np.random.default_rng(0), max_steps=8, patch_size=patch_size)
        steps[n] = plan.n_steps
        blocks = [b for bl in iterate_blocks([s], plan, 2) for b in bl]
        encoded[n] = sum(len(b.nodes) for b in blocks)
        per_seed[n] = encoded[n] / sum(b.n_seeds for b in blocks)
    # 1,000 cells: a whole pass (850 training cells -> 4 steps); above 8 * 256 the cap holds
    assert steps == {1_000: 4, 4_000: 8, 16_000: 8}
    # random seeds (the default): at most a two-hop Delaunay ball per seed (fewer where balls
    # overlap in a small section); patches: a few cells. Either way an epoch has a fixed ceiling.
    bound = 20 if patch_size is None else 4
    assert max(per_seed.values()) < bound, per_seed
    assert max(encoded.values()) < bound * 8 * 256
    uncapped = EpochPlan([sections[16_000]], 256, np.random.default_rng(0)).n_steps
    assert uncapped == int(np.ceil(len(sections[16_000].train_idx) / 256)) == 54


def test_capped_epochs_draw_distinct_cells_and_every_cell_evenly(sections):
    s = sections[4_000]
    rng = np.random.default_rng(1)
    counts = np.zeros(s.n_obs)
    n_epochs = 300
    for _ in range(n_epochs):
        seeds = np.concatenate([b[0] for b in EpochPlan([s], 128, rng, max_steps=5).steps()])
        assert len(seeds) == 5 * 128 and len(np.unique(seeds)) == len(seeds)  # none twice in an epoch
        assert np.isin(seeds, s.train_idx).all()
        counts[seeds] += 1
    drawn = counts[s.train_idx]
    expected = n_epochs * 5 * 128 / len(s.train_idx)
    assert counts[s.val_idx].sum() == 0
    assert abs(drawn.mean() - expected) < 1e-9
    # binomial spread around the expectation: no cell is systematically skipped or favoured
    assert drawn.min() > 0.3 * expected and drawn.max() < 2.0 * expected
    assert drawn.std() < 1.5 * np.sqrt(expected)


def test_validation_uses_a_fixed_evenly_spaced_subset(sections):
    s = sections[16_000]
    plans = [EpochPlan([s], 1024, np.random.default_rng(r), use="val", max_cells=500) for r in (0, 1)]
    cells = [np.concatenate([b[0] for b in p.steps()]) for p in plans]
    assert len(cells[0]) == 500 and np.array_equal(cells[0], cells[1])  # the same cells every epoch
    assert np.isin(cells[0], s.val_idx).all() and len(np.unique(cells[0])) == 500
    # spread over the whole held-out list, not its first 500 (which sit at low cell indices)
    assert cells[0].max() > np.quantile(s.val_idx, 0.99)
    small = sections[1_000]
    all_val = np.concatenate([b[0] for b in EpochPlan([small], 1024, np.random.default_rng(0), use="val",
                                                       max_cells=500).steps()])
    assert np.array_equal(all_val, small.val_idx)  # under the cap: every held-out cell


def test_budget_options_are_checked():
    cfg = make_config()
    assert cfg.train.max_epoch_steps == 16 and cfg.train.max_val_cells == 2048
    assert make_config(max_epoch_steps=None, max_val_cells=None).train.max_epoch_steps is None
    with pytest.raises(FuseMapInputError, match="max_epoch_steps"):
        make_config(max_epoch_steps=0)
    with pytest.raises(FuseMapInputError, match="max_val_cells"):
        make_config(max_val_cells=0)


def test_training_counts_capped_epochs_in_its_history():
    from fusemap import FuseMap

    secs = datasets.simulate(n_sections=2, n_cells=800, n_genes=30, seed=4)
    kw = dict(max_epochs=2, patience=100, plateau_pretrain=0.0, balance=False, mmd_weight=0.0, batch_size=64,
              n_hidden=32, n_latent=8, progress=False, seed=0)
    capped = FuseMap(secs, max_epoch_steps=5, **kw)
    capped.train()
    whole = FuseMap(secs, max_epoch_steps=None, **kw)
    whole.train()
    n_train = int(np.ceil(len(whole.data[0].train_idx) / 64))
    assert [h["steps"] for h in capped.history] == [5, 5]
    assert [h["steps"] for h in whole.history] == [n_train] * 2 and n_train == 11
    # each step trains 64 seeds of each of the 2 sections: a capped epoch 5 steps' worth, an uncapped
    # one at least every training cell (the smaller section's seeds are drawn again to fill its steps)
    assert [h["seeds"] for h in capped.history] == [5 * 64 * 2] * 2
    assert [h["seeds"] for h in whole.history] == [n_train * 64 * 2] * 2
    assert n_train * 64 * 2 >= sum(len(d.train_idx) for d in whole.data)
    assert all(np.isfinite(h["val_loss"]) for h in capped.history)


def test_balance_clusters_a_fixed_number_of_cells_per_section(monkeypatch):
    """Leiden runs on at most MAX_CLUSTER_CELLS cells of a section, so cluster granularity (and the
    cost) does not grow with the section; every cell still gets the label of its nearest centroid."""
    from fusemap import balance

    seen = []
    real = balance.leiden_labels

    def spy(emb, resolution, seed):
        seen.append(len(emb))
        return real(emb, resolution, seed)

    monkeypatch.setattr(balance, "leiden_labels", spy)
    rng = np.random.default_rng(0)
    centres = rng.normal(0, 5, (6, 8))
    emb = (centres[rng.integers(0, 6, 12_000)] + rng.normal(0, 1, (12_000, 8))).astype(np.float32)
    labels = balance.cluster_cells(emb, 1.0, seed=0)
    assert seen == [balance.MAX_CLUSTER_CELLS] == [5_000]
    assert labels.shape == (12_000,) and labels.min() == 0
    small = balance.cluster_cells(emb[:3_000], 1.0, seed=0)
    assert seen[-1] == 3_000 and len(small) == 3_000  # under the cap: all cells, as before
    # the subset's clusters are as many as the subset alone gives, whatever the section size
    assert labels.max() == real(emb[np.random.default_rng(0).choice(12_000, 5_000, replace=False)], 1.0, 0).max()


def test_cells_outside_the_clustered_subset_join_their_nearest_centroid():
    from fusemap import balance

    rng = np.random.default_rng(1)
    emb = rng.normal(0, 1, (balance.MAX_CLUSTER_CELLS + 2_000, 6)).astype(np.float32)
    emb[::2] += 6.0
    labels = balance.cluster_cells(emb, 0.5, seed=0)
    cents = np.stack([emb[labels == k].mean(0) for k in range(labels.max() + 1)])
    d = ((emb[:, None, :] - cents[None]) ** 2).sum(-1)
    # centroids of the final labels: almost every cell is nearest to its own (ties and the Leiden
    # subset's own boundaries aside)
    assert (d.argmin(1) == labels).mean() > 0.95
