"""Losses: cross-entropy on logits (no double softmax), adversarial losses, KL, shapes."""

import math

import torch
import torch.nn.functional as F

from fusemap.config import ModelConfig
from fusemap.module import FuseMapModule, adversarial_loss, discriminator_loss


def test_discriminator_loss_is_cross_entropy_of_logits():
    torch.manual_seed(0)
    logits = torch.randn(50, 5) * 4
    y = torch.randint(0, 5, (50,))
    expected = -torch.log_softmax(logits, 1)[torch.arange(50), y].mean()
    assert torch.allclose(discriminator_loss(logits, y), expected, atol=1e-6)
    # regression test for the published code: softmax before cross_entropy flattens the loss
    double = F.cross_entropy(torch.softmax(logits, 1), y)
    assert abs(double.item() - expected.item()) > 0.3
    # a perfect, confident discriminator has a loss near 0 (a double softmax cannot go below ~0.9)
    sure = F.one_hot(y, 5).float() * 50
    assert discriminator_loss(sure, y).item() < 1e-6
    assert F.cross_entropy(torch.softmax(sure, 1), y).item() > 0.9


def test_weighted_discriminator_loss():
    logits = torch.randn(10, 3)
    y = torch.randint(0, 3, (10,))
    w = torch.zeros(10)
    w[0] = 1.0
    assert torch.allclose(discriminator_loss(logits, y, w), F.cross_entropy(logits[:1], y[:1]))


def test_confusion_loss_is_minimal_at_uniform_prediction():
    y = torch.zeros(4, dtype=torch.long)
    uniform = torch.zeros(4, 3)
    assert math.isclose(adversarial_loss(uniform, y, "confusion").item(), math.log(3), rel_tol=1e-6)
    confident = torch.tensor([[9.0, 0, 0]]).repeat(4, 1)
    assert adversarial_loss(confident, y, "confusion").item() > math.log(3) + 1
    # 'reverse' is minus the discriminator's own loss
    assert torch.allclose(adversarial_loss(confident, y, "reverse"), -discriminator_loss(confident, y))


def test_forward_shapes_and_finite_losses(sim_sections):
    import fusemap

    model = fusemap.FuseMap(sim_sections, n_latent=8, n_hidden=32, progress=False)
    from fusemap.sampler import make_block

    blocks = [make_block(d, i, d.train_idx[:20], model.module.hops) for i, d in enumerate(model.data)]
    out = model.module(blocks, sample=True)
    assert out.z_cell.shape == (60, 8) and out.z_spatial.shape == (60, 8)
    assert out.sections.tolist() == [0] * 20 + [1] * 20 + [2] * 20
    for v in (out.losses.recon, out.losses.kl, out.losses.cell_recon):
        assert torch.isfinite(v) and v.item() >= 0


def test_gene_embedding_is_xavier_and_shared():
    m = FuseMapModule([[0, 1, 2], [2, 3]], 4, 2, ModelConfig(n_latent=8, n_hidden=16))
    E = m.gene_matrix()
    assert E.shape == (8, 4)
    bound = math.sqrt(6 / (8 + 4))
    assert E.abs().max().item() <= bound
    assert len(list(m.encoders)) == 2


def test_gcn_variant_starts_as_plain_aggregation():
    m = FuseMapModule([[0, 1]], 2, 1, ModelConfig(n_latent=4, n_hidden=8, spatial_mode="gcn"))
    adj = torch.eye(3).to_sparse_csr()
    z = torch.randn(3, 4)
    assert torch.allclose(m.spatial_encode(0, [adj], z), z)
    assert m.hops == 2
    assert sum(p.numel() for p in m.graph_aes.parameters()) == 2 * (16 + 4)


def test_mmd_is_zero_for_equal_sections_and_grows_with_a_shift():
    from fusemap.module import mmd_loss

    torch.manual_seed(0)
    z = torch.randn(400, 8)
    sec = torch.arange(400) % 2
    same = mmd_loss(z, sec).item()
    shifted = z.clone()
    shifted[sec == 1] += 1.0
    moved = mmd_loss(shifted, sec).item()
    assert same < 0.01 and moved > 10 * same
    # identical cells in both sections: exactly zero; one section only: zero
    twin = torch.cat([z[:200], z[:200]])
    assert abs(mmd_loss(twin, sec.sort().values).item()) < 1e-5
    assert mmd_loss(z, torch.zeros(400, dtype=torch.long)).item() == 0.0
    # scale-free: multiplying the embedding does not change it
    assert math.isclose(mmd_loss(shifted * 7, sec).item(), moved, rel_tol=1e-4)
    # weights: a shifted population that carries no weight does not count
    w = torch.ones(400)
    extra = shifted.clone()
    extra[(sec == 1) & (torch.arange(400) < 100)] += 20.0
    w[(sec == 1) & (torch.arange(400) < 100)] = 0.0
    base = mmd_loss(shifted, sec).item()
    assert mmd_loss(extra, sec, w).item() < mmd_loss(extra, sec).item()
    assert base > 0
    # the gradient pulls the shifted section back towards the other
    x = shifted.clone().requires_grad_(True)
    mmd_loss(x, sec).backward()
    assert (x.grad[sec == 1].mean(0) > 0).sum() >= 6  # descending moves it back (towards -1)


def test_mmd_cannot_be_lowered_by_scaling_or_separating():
    """The kernel width follows the batch's distances, with its gradient: shrinking everything
    changes nothing (a width fixed within the step rewarded it), and pushing a section away from
    the others always costs more."""
    from fusemap.module import mmd_loss

    torch.manual_seed(1)
    z = torch.randn(300, 8)
    sec = torch.arange(300) % 3
    values = []
    for gap in (0.0, 0.5, 2.0, 10.0, 100.0):
        moved = z.clone()
        moved[sec == 1, 0] += gap
        values.append(mmd_loss(moved, sec).item())
        assert math.isclose(mmd_loss(moved * 0.01, sec).item(), values[-1], rel_tol=1e-3, abs_tol=1e-6)
    assert all(b > a for a, b in zip(values, values[1:])), values
    assert values[-1] > 0.5


def test_mmd_kernel_shortcut_equals_three_gaussians_with_their_gradient():
    """The mixture is computed from one exponential (widths 1/4, 1, 4 of the scale: u**16, u**4,
    u) with a hand-written backward; it must equal the three Gaussians, value and gradient."""
    from fusemap.module import MMD_BANDWIDTHS, _GaussianMixture, mmd_loss

    assert MMD_BANDWIDTHS == (0.25, 1.0, 4.0)
    d2 = (torch.rand(30, 30, dtype=torch.float64) * 3).requires_grad_(True)
    c = torch.tensor(-0.3, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(_GaussianMixture.apply, (d2, c))

    def three_gaussians(z, sec, w):
        sq = (z * z).sum(1)
        d2 = (sq[:, None] + sq[None, :] - 2.0 * (z @ z.T)).clamp_min(0.0)
        n = z.shape[0]
        scale = (d2.sum() / (n * (n - 1))).clamp_min(1e-8)
        k = sum(torch.exp(-d2 / (b * scale)) for b in MMD_BANDWIDTHS) / 3
        labels = torch.unique(sec)
        p = (sec[:, None] == labels[None, :]).to(z.dtype) * w[:, None]
        p = p / p.sum(0, keepdim=True)
        m = p.T @ k @ p
        diag = torch.diagonal(m)
        iu = torch.triu_indices(len(labels), len(labels), offset=1)
        return (diag[:, None] + diag[None, :] - 2.0 * m)[iu[0], iu[1]].mean()

    g = torch.Generator().manual_seed(0)
    z = torch.randn(300, 16, generator=g, dtype=torch.float64)
    sec = torch.arange(300) % 3
    z[sec == 1] += 0.5
    w = torch.rand(300, generator=g, dtype=torch.float64)
    za, zb = z.clone().requires_grad_(True), z.clone().requires_grad_(True)
    ref, new = three_gaussians(za, sec, w), mmd_loss(zb, sec, w)
    ref.backward()
    new.backward()
    assert abs(ref.item() - new.item()) < 1e-10 * max(1.0, abs(ref.item()))
    assert torch.allclose(za.grad, zb.grad, rtol=1e-8, atol=1e-12)


def test_neighbourhood_loss_is_zero_when_embedding_keeps_the_neighbours_and_scale_free():
    from fusemap.module import neighbourhood_loss

    g = torch.Generator().manual_seed(0)
    x = torch.randn(64, 20, generator=g)
    # the same space, rescaled: the same soft neighbours
    assert neighbourhood_loss(x, 3.0 * x, 5).item() < 1e-4
    # a rotation keeps every distance
    q, _ = torch.linalg.qr(torch.randn(20, 20, generator=g))
    assert neighbourhood_loss(x, x @ q, 5).item() < 1e-4
    # shuffled rows: the neighbours are lost
    z = x[torch.randperm(64, generator=g)].clone().requires_grad_(True)
    loss = neighbourhood_loss(x, z, 5)
    assert loss.item() > 1.0
    loss.backward()
    assert torch.isfinite(z.grad).all() and z.grad.abs().sum() > 0


def test_neighbourhood_loss_falls_as_the_embedding_learns_the_neighbours():
    from fusemap.module import neighbourhood_loss

    g = torch.Generator().manual_seed(1)
    x = torch.cat([torch.randn(30, 10, generator=g) + 4 * c for c in torch.eye(10)[:3]])  # 3 clusters
    z = torch.randn(90, 4, generator=g).requires_grad_(True)
    opt = torch.optim.Adam([z], lr=0.05)
    first = neighbourhood_loss(x, z, 10).item()
    for _ in range(200):
        opt.zero_grad()
        loss = neighbourhood_loss(x, z, 10)
        loss.backward()
        opt.step()
    assert loss.item() < 0.5 * first
    # each cell's nearest embedded neighbour is now in its own cluster
    d = torch.cdist(z.detach(), z.detach()).fill_diagonal_(float("inf"))
    same = (d.argmin(1) // 30 == torch.arange(90) // 30).float().mean()
    assert same > 0.9  # chance: 1 in 3

