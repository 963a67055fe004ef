"""Real data: the section-mixing check every run ends with (fusemap.mixing.integration_check) warns
on a run that did not align the STARmap sections and stays quiet on the default run."""

import json

import pytest

import fusemap

pytestmark = pytest.mark.realdata


def test_run_without_alignment_gets_the_mixing_warning(starmap_mosaic):
    masked, _ = starmap_mosaic
    sections = [a.copy() for a in masked]
    with pytest.warns(fusemap.FuseMapWarning, match=r"sections did not mix.*max_epochs.*section_key"):
        model = fusemap.integrate(sections, progress=False, seed=0, max_epochs=2, adversarial=False)
    s = model.summary()
    for part in ("mixing_cell", "mixing_spatial"):
        assert s[part]["single_section_cluster_fraction"] > 0.5, s[part]
        assert s[part]["shared_cell_fraction"] < 0.2, s[part]
        assert s[part]["seconds"] < 5.0
    assert s["mixing"].startswith("Section mixing: cell embedding:")
    assert any("did not mix" in w for w in s["warnings"])
    rec = sections[0].uns["fusemap"]
    assert json.loads(rec["mixing_json"])["cell"] == s["mixing_cell"]
    assert "did not mix" in rec["mixing_warning"]


@pytest.mark.slow
def test_default_run_mixes_without_the_warning(starmap_model, record_property):
    mixing = starmap_model.train_state.mixing
    print("\nrun check, default STARmap run:", json.dumps({k: mixing[k] for k in ("cell", "spatial")}))
    for part in ("cell", "spatial"):
        record_property(f"run_check_{part}", json.dumps(mixing[part]))
        assert mixing[part]["single_section_cluster_fraction"] <= 0.5, mixing[part]
        assert mixing[part]["shared_cell_fraction"] >= 0.5, mixing[part]
    assert mixing["warning"] == ""
    assert not any("did not mix" in w for w in starmap_model.warnings)
    assert starmap_model.summary()["balance"].startswith("Balance weights:")
