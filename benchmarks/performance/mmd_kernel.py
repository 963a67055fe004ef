"""Cost of the MMD term in a training step: the three-Gaussian kernel written with autograd (as
before) against ``fusemap.module.mmd_loss`` (one exponential, hand-written backward).

    .venv/bin/python benchmarks/performance/mmd_kernel.py

One process per data set, one thread. After a warm-up epoch of the balanced phase, epochs run
alternately with each kernel (``--reps`` each, interleaved so that other work on the machine
affects both alike); the median seconds per step are compared. Data: the STARmap mosaic (3
sections, 768 seeds a step) and a 10,000-cell tiled Xenium atlas (8 sections, 2,048 seeds a step:
the kernel is quadratic in the seeds). Writes ``results/mmd_kernel.csv``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from run import RESULTS, _machine  # noqa: E402


def three_gaussians(z, sections, weights=None):
    """The MMD as computed before: three exponentials, autograd throughout (same value)."""
    import torch

    from fusemap.module import MMD_BANDWIDTHS

    labels = torch.unique(sections)
    if len(labels) < 2:
        return z.new_zeros(())
    sq = (z * z).sum(1)
    d2 = (sq[:, None] + sq[None, :] - 2.0 * (z @ z.T)).clamp_min(0.0)
    n = z.shape[0]
    scale = (d2.sum() / max(n * (n - 1), 1)).clamp_min(1e-8)
    k = sum(torch.exp(-d2 / (b * scale)) for b in MMD_BANDWIDTHS) / len(MMD_BANDWIDTHS)
    onehot = (sections[:, None] == labels[None, :]).to(z.dtype)
    if weights is not None:
        onehot = onehot * weights[:, None].to(z.dtype)
    p = onehot / onehot.sum(0, keepdim=True).clamp_min(1e-12)
    m = p.T @ k @ p
    diag = torch.diagonal(m)
    pair = diag[:, None] + diag[None, :] - 2.0 * m
    iu = torch.triu_indices(len(labels), len(labels), offset=1, device=z.device)
    return pair[iu[0], iu[1]].mean()


def measure(data: str, reps: int) -> dict:
    import torch

    torch.set_num_threads(1)
    import fusemap
    import fusemap.training as training
    from fusemap import datasets
    from fusemap.module import mmd_loss
    from fusemap.training import PHASE_BALANCED, Trainer

    secs = (datasets.tiled_atlas(n_cells=10_000, n_sections=8, seed=0) if data == "atlas_10000"
            else datasets.starmap_mosaic()[0])
    model = fusemap.FuseMap(secs, progress=False)
    trainer = Trainer(model.module, model.data, model.config, model.device, adversarial=True)
    trainer.state.phase = PHASE_BALANCED  # the MMD acts in the balanced phase
    trainer._train_epoch()  # warm-up; sets the adversarial weight
    times: dict[str, list[float]] = {"autograd, 3 exponentials": [], "fusemap (1 exponential)": []}
    for _ in range(reps):
        for name, fn in zip(times, (three_gaussians, mmd_loss)):
            training.mmd_loss = fn
            t0 = time.perf_counter()
            out = trainer._train_epoch()
            times[name].append((time.perf_counter() - t0) / out["steps"])
    training.mmd_loss = mmd_loss
    old, new = (statistics.median(v) for v in times.values())
    seeds = len(secs) * min(model.config.train.batch_size, min(len(d.train_idx) for d in model.data))
    return {"data": data, "sections": len(secs), "seeds_per_step": seeds, "reps": reps,
            "s_per_step_before": old, "s_per_step_now": new, "speedup": old / new,
            "load_avg": os.getloadavg()[0], "machine": _machine()}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--reps", type=int, default=6)
    a = p.parse_args()
    import pandas as pd

    rows = [measure(d, a.reps) for d in ("starmap_mosaic", "atlas_10000")]
    df = pd.DataFrame(rows)
    df.to_csv(RESULTS / "mmd_kernel.csv", index=False)
    print(df.to_string(index=False))


if __name__ == "__main__":
    main()
