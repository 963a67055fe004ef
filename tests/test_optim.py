"""fusemap.optim.Adam takes the steps torch.optim.Adam takes (it exists to avoid torch.optim's
import of torch._dynamo), skips parameters without gradients, and round-trips its state."""

import subprocess
import sys

import pytest
import torch

from fusemap.optim import Adam


def _net(seed):
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Linear(7, 16), torch.nn.LayerNorm(16), torch.nn.Linear(16, 3))


@pytest.mark.parametrize("weight_decay", [0.0, 1e-3])
def test_same_steps_as_torch_adam(weight_decay):
    a, b = _net(0), _net(0)
    ours = Adam(a.parameters(), lr=3e-3, weight_decay=weight_decay)
    ref = torch.optim.Adam(b.parameters(), lr=3e-3, weight_decay=weight_decay)
    gen = torch.Generator().manual_seed(1)
    for step in range(40):
        x = torch.randn(32, 7, generator=gen)
        for net, opt in ((a, ours), (b, ref)):
            opt.zero_grad(set_to_none=True)
            loss = net(x).pow(2).mean()
            loss.backward()
            if step % 7 == 3:  # now and then one parameter gets no gradient
                net[1].bias.grad = None
            opt.step()
    moved = max((p - q).abs().max().item() for p, q in zip(a.parameters(), _net(0).parameters()))
    assert moved > 0.05  # the weights really moved
    for p, q in zip(a.parameters(), b.parameters()):
        torch.testing.assert_close(p, q, rtol=1e-5, atol=1e-6)
    assert ours.steps[3] == 40 - 6 and ours.steps[0] == 40  # the skipped bias advanced 34 times


def test_state_round_trip_resumes_exactly():
    a, b = _net(2), _net(2)
    opt_a, opt_b = Adam(a.parameters(), lr=1e-2), Adam(b.parameters(), lr=1e-2)
    x = torch.randn(16, 7)
    for net, opt in ((a, opt_a), (b, opt_b)):
        for _ in range(5):
            opt.zero_grad()
            net(x).sum().backward()
            opt.step()
    c = _net(9)
    c.load_state_dict(a.state_dict())
    opt_c = Adam(c.parameters(), lr=1e-2)
    opt_c.load_state_dict(opt_a.state_dict())
    for net, opt in ((b, opt_b), (c, opt_c)):
        opt.zero_grad()
        net(x).sum().backward()
        opt.step()
    for p, q in zip(b.parameters(), c.parameters()):
        assert torch.equal(p, q)
    with pytest.raises(ValueError, match="parameters"):
        Adam(list(c.parameters())[:2]).load_state_dict(opt_a.state_dict())


def test_training_does_not_import_torch_dynamo():
    code = ("import sys, fusemap; from fusemap import datasets\n"
            "s = datasets.simulate(n_sections=2, n_cells=120, n_genes=30, panel_size=20, n_shared=10, seed=0)\n"
            "fusemap.FuseMap(s, max_epochs=2, n_hidden=32, n_latent=8, progress=False).train()\n"
            "print(sorted(m for m in ('torch._dynamo', 'scanpy', 'squidpy') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "[]"
