"""Section shifts (fusemap.shift): a translated section is moved back, composition differences
do not pull a section onto cell types it lacks, fixed sections stay, two sections meet."""

import numpy as np
import pytest

from fusemap.shift import mnn_pairs, mnn_shifts


def _clusters(rng, centres, n_per):
    return np.concatenate([c + 0.3 * rng.standard_normal((n, len(c))) for c, n in zip(centres, n_per)])


def test_translated_sections_are_moved_back_onto_each_other():
    rng = np.random.default_rng(0)
    centres = [np.eye(8)[i] * 4 for i in range(4)]
    offset = np.full(8, 0.25)  # small next to the clusters' distances, as left by training
    a = _clusters(rng, centres, [300] * 4)
    b = _clusters(rng, centres, [300] * 4) + offset
    c = _clusters(rng, centres, [300] * 4) - offset
    shifts = mnn_shifts([a, b, c], [True, True, True])
    moved = [a + shifts[0], b + shifts[1], c + shifts[2]]
    gaps = [np.linalg.norm(moved[i].mean(0) - moved[j].mean(0)) for i, j in ((0, 1), (0, 2), (1, 2))]
    assert max(gaps) < 0.1 * np.linalg.norm(offset)  # offsets of 0.71 and 1.41 brought under 0.07
    sizes = np.array([len(a), len(b), len(c)])
    assert np.allclose((sizes[:, None] * shifts).sum(0), 0, atol=1e-4)  # the atlas stays centred


def test_unique_cell_types_do_not_drive_the_shift():
    rng = np.random.default_rng(1)
    centres = [np.eye(8)[i] * 4 for i in range(4)]
    ref = _clusters(rng, centres[:3], [400] * 3)
    query = _clusters(rng, centres, [400, 400, 400, 800]) + 0.2  # a fourth type, twice as large
    shifts = mnn_shifts([ref, query], [False, True])
    assert np.allclose(shifts[0], 0)  # the fixed section does not move
    # centring the query would move it by 0.2 + (its extra type's mean pull) ~ 1.4 along axis 3
    assert np.abs(shifts[1] + 0.2).max() < 0.05


def test_two_sections_meet_and_single_section_is_left_alone():
    rng = np.random.default_rng(2)
    centres = [np.eye(4)[i] * 3 for i in range(3)]
    a = _clusters(rng, centres, [200] * 3)
    b = _clusters(rng, centres, [200] * 3) + 0.3
    shifts = mnn_shifts([a, b], [True, True])
    assert np.linalg.norm((a + shifts[0]).mean(0) - (b + shifts[1]).mean(0)) < 0.05  # not swapped
    assert np.allclose(mnn_shifts([a], [True]), 0)
    i, j = mnn_pairs(a, b, 5)
    assert len(i) > len(a) and len(i) == len(j)  # several mutual partners per cell


def test_training_sets_shifts_that_the_embeddings_carry(sim_sections):
    from conftest import FAST
    from fusemap import FuseMap
    from fusemap.inference import embed_section

    model = FuseMap([a.copy() for a in sim_sections], **FAST).train()
    plain = FuseMap([a.copy() for a in sim_sections], shift_sections=False, **FAST).train()
    sizes = np.array([d.n_obs for d in model.data])
    shifts = np.stack([model.section_shift(i) for i in range(len(model.data))])
    assert np.abs(shifts).max() > 0 and np.allclose((sizes[:, None] * shifts).sum(0), 0, atol=1e-4)
    for i, d in enumerate(model.data):
        zc, zt = embed_section(model.module, i, d, model.device)
        assert np.allclose(model.embeddings()[d.name].cell, zc + shifts[i], atol=1e-6)
        assert np.allclose(model.embeddings()[d.name].spatial, zt + shifts[i], atol=1e-6)
        # the shift comes after training: the same seed trains the same networks without it
        assert np.array_equal(plain.embeddings()[d.name].cell, zc)
        assert not plain.section_shift(i).any() and "shift" not in plain.section_info[i]


def test_neighbour_searches_stay_within_the_sample_caps(monkeypatch):
    """The cost of the shifts is bounded at any atlas size: every neighbour search sees at most
    ``max_cells`` rows of the moved section and ``max_pool`` pooled rows of the others, and the
    large sections are still moved back (from their samples)."""
    import fusemap.shift as shift

    seen = []
    real = shift.nearest

    def counting(ref, query, k, **kw):
        seen.append((len(ref), len(query)))
        return real(ref, query, k, **kw)

    monkeypatch.setattr(shift, "nearest", counting)
    rng = np.random.default_rng(3)
    centres = [np.eye(8)[i] * 4 for i in range(4)]
    offset = np.full(8, 0.25)
    sections = [_clusters(rng, centres, [n] * 4) + s * offset for n, s in ((500, 0), (400, 1), (300, -1))]
    shifts = shift.mnn_shifts(sections, [True] * 3, max_cells=300, max_pool=500)
    assert seen and max(max(r, q) for r, q in seen) == 500  # sections of 1,200-2,000 cells: 300 + 500 rows searched
    assert {min(r, q) for r, q in seen} == {300}
    moved = [x + s for x, s in zip(sections, shifts)]
    assert np.linalg.norm(moved[1].mean(0) - moved[2].mean(0)) < 0.1 * np.linalg.norm(2 * offset)


def test_embedding_spread_equals_the_pooled_total_variance_without_pooling():
    from fusemap.shift import embedding_spread

    rng = np.random.default_rng(3)
    cells = [rng.normal(m, s, (n, 8)).astype(np.float32) for m, s, n in ((0.0, 1.0, 700), (3.0, 0.5, 1300), (-1.0, 2.0, 5))]
    want = float(np.sqrt(np.concatenate(cells).astype(np.float64).var(0).sum()))
    assert embedding_spread(cells, chunk=256) == pytest.approx(want, rel=1e-9)
    assert embedding_spread([]) == 0.0 and embedding_spread([np.zeros((0, 4), np.float32)]) == 0.0
