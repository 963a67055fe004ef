"""Fast CPU dropout and the bfloat16 encoder option: same statistics, same seeds, float32 outputs."""

import numpy as np
import pytest
import torch

from fusemap import FuseMap, FuseMapInputError
from fusemap.config import make_config
from fusemap.module import FuseMapModule
from fusemap.module import Dropout
from fusemap.training import use_bf16

from conftest import FAST


def test_dropout_rate_scale_and_gradient():
    torch.manual_seed(0)
    x = torch.rand(2000, 512) + 0.5
    drop = Dropout(0.2).train()
    xg = x.clone().requires_grad_(True)
    y = drop(xg)
    kept = y != 0
    assert abs(kept.float().mean().item() - 0.8) < 0.003  # 1M elements: sd of the rate 0.0004
    assert torch.allclose(y[kept], x[kept] / 0.8)  # inverted dropout keeps the expectation
    y.sum().backward()
    assert torch.allclose(xg.grad, kept.float() / 0.8)
    # the mask is not the same for every row or column (four 16-bit uniforms per 64-bit draw)
    per_col = kept.float().mean(0)
    assert per_col.std().item() < 0.03 and 0.7 < per_col.min().item() and per_col.max().item() < 0.9


def test_fused_leaky_relu_dropout_matches_the_two_steps():
    torch.manual_seed(1)
    x = torch.randn(1500, 512)
    drop = Dropout(0.2).train()
    xg = x.clone().requires_grad_(True)
    y = drop.after_leaky_relu(xg, 0.2)
    kept = y != 0
    assert abs(kept.float().mean().item() - 0.8) < 0.003
    ref = torch.nn.functional.leaky_relu(x, 0.2) / 0.8
    torch.testing.assert_close(y[kept], ref[kept], rtol=1e-6, atol=1e-7)
    y.sum().backward()
    slope = torch.where(x > 0, 1.0, 0.2) / 0.8
    torch.testing.assert_close(xg.grad, slope * kept.float(), rtol=1e-6, atol=1e-7)
    torch.manual_seed(5)
    a = drop.after_leaky_relu(x, 0.2)
    torch.manual_seed(5)
    assert torch.equal(a, drop.after_leaky_relu(x, 0.2))  # torch's seed fixes the numpy mask
    assert torch.equal(drop.eval().after_leaky_relu(x, 0.2), torch.nn.functional.leaky_relu(x, 0.2))


def test_dropout_seeded_eval_and_zero_rate():
    x = torch.randn(64, 33)  # element count not a multiple of 4: the last 64-bit draw is partly used
    drop = Dropout(0.5).train()
    torch.manual_seed(3)
    a = drop(x)
    torch.manual_seed(3)
    b = drop(x)
    assert torch.equal(a, b)
    torch.manual_seed(4)
    assert not torch.equal(a, drop(x))
    assert torch.equal(drop.eval()(x), x)
    assert torch.equal(Dropout(0.0).train()(x), x)
    with pytest.raises(ValueError, match="dropout"):
        Dropout(1.0)


def test_precision_option_is_checked():
    with pytest.raises(FuseMapInputError, match="precision='half'"):
        make_config(precision="half")
    cpu = torch.device("cpu")
    assert use_bf16("bfloat16", cpu) and not use_bf16("float32", cpu)
    assert not use_bf16("auto", torch.device("meta"))


def test_bfloat16_training_learns_and_reads_out_float32(sim_sections, monkeypatch):
    # without the MMD term, which slows reconstruction in the first epochs (test_training)
    kw = {**FAST, "max_epochs": 15, "patience": 100, "plateau_pretrain": 0.0, "balance": False, "mmd_weight": 0.0}
    flags = []
    forward = FuseMapModule.forward

    def spy(self, blocks, sample, bf16=False):
        flags.append(bf16)
        return forward(self, blocks, sample, bf16)

    monkeypatch.setattr(FuseMapModule, "forward", spy)
    m16 = FuseMap(sim_sections, **kw, precision="bfloat16")
    m16.train()
    assert flags and all(flags)  # training and validation steps ran under bfloat16 autocast
    h = m16.history_frame()
    assert h["recon"].iloc[-3:].mean() < 0.8 * h["recon"].iloc[:2].mean()
    emb = m16.embeddings()
    for e in emb.values():
        assert e.cell.dtype == np.float32 and np.isfinite(e.cell).all()
    m32 = FuseMap(sim_sections, **kw, precision="float32")
    m32.train()
    # same data, same seed: the two arithmetics reach a similar reconstruction loss
    r16, r32 = h["val_loss"].iloc[-3:].mean(), m32.history_frame()["val_loss"].iloc[-3:].mean()
    assert abs(r16 - r32) < 0.1 * r32
