import pytest

from fusemap import FuseMapConfig, FuseMapInputError
from fusemap.config import make_config


def test_flat_overrides_go_to_their_subconfig():
    cfg = make_config(n_latent=16, max_epochs=7, method="knn", layer="counts")
    assert cfg.model.n_latent == 16
    assert cfg.train.max_epochs == 7
    assert cfg.graph.method == "knn"
    assert cfg.preprocess.layer == "counts"
    # the default object is untouched (immutable configuration, no global state)
    assert FuseMapConfig().model.n_latent == 64


def test_dict_round_trip():
    cfg = make_config(n_latent=8, spatial_mode="gcn", gcn_layers=2)
    assert make_config(cfg.to_dict()) == cfg


def test_unknown_option_lists_valid_ones():
    with pytest.raises(FuseMapInputError, match="unknown option 'n_latnet'.*n_latent"):
        make_config(n_latnet=3)


@pytest.mark.parametrize("opt,val,msg", [
    ("n_latent", 1, "n_latent=1"), ("dropout", 1.5, "dropout"), ("val_fraction", 0.0, "val_fraction"),
    ("method", "voronoi", "method"), ("spatial_mode", "gat", "spatial_mode"),
])
def test_invalid_values_are_named(opt, val, msg):
    with pytest.raises(FuseMapInputError, match=msg):
        make_config(**{opt: val})


def test_radius_graph_needs_a_radius():
    with pytest.raises(FuseMapInputError, match="radius"):
        make_config(method="radius")
