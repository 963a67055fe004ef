"""Does the per-section Python loop of a training step cost much? (issue 8, idea 2)

Times forward + backward of FuseMapModule for one step with the same number of encoded cells
split over V sections (V encoders, V small matrix products each) versus one section, with
500-gene panels and the default architecture. Prints the overhead per section. Usage:

    .venv/bin/python benchmarks/performance/section_loop.py [--cells 8192] [--sections 1 8 64 256]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import scipy.sparse as sp
import torch

from fusemap.config import ModelConfig
from fusemap.module import FuseMapModule
from fusemap.sampler import SectionData, make_block


def step_seconds(n_sections: int, cells: int, genes: int, repeats: int) -> float:
    per = max(cells // n_sections, 8)
    rng = np.random.default_rng(0)
    panels = [np.arange(genes) for _ in range(n_sections)]
    torch.manual_seed(0)
    module = FuseMapModule(panels, genes, n_sections, ModelConfig())
    blocks = []
    for v in range(n_sections):
        x = sp.random(per, genes, density=0.2, format="csr", random_state=rng, dtype=np.float32)
        # a chain graph: blocks are cheap to cut; only the network cost matters here
        a = sp.diags([np.ones(per - 1), np.ones(per), np.ones(per - 1)], [-1, 0, 1], format="csr", dtype=np.float32) / 3
        d = SectionData(f"s{v}", x, a, panels[v], np.arange(per), np.arange(0))
        blocks.append(make_block(d, v, np.arange(per // 2), 2))
    opt = torch.optim.Adam(module.parameters(), 1e-3)
    times = []
    for r in range(repeats + 1):
        t = time.process_time()
        out = module(blocks, sample=True)
        loss = out.losses.autoencoder(1.0, 1.0)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if r:
            times.append(time.process_time() - t)
    return float(np.median(times))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--cells", type=int, default=8192, help="encoded cells per step, all sections together")
    p.add_argument("--genes", type=int, default=500)
    p.add_argument("--sections", type=int, nargs="+", default=[1, 8, 64, 256])
    p.add_argument("--repeats", type=int, default=5)
    a = p.parse_args()
    base = None
    print(f"{'sections':>8} {'cells/section':>13} {'CPU s/step':>10} {'vs 1 section':>12} {'ms per extra section':>20}")
    for v in a.sections:
        s = step_seconds(v, a.cells, a.genes, a.repeats)
        base = s if base is None else base
        extra = (s - base) / max(v - 1, 1) * 1000 if v > 1 else 0.0
        print(f"{v:>8} {a.cells // v:>13} {s:>10.3f} {s / base:>12.2f} {extra:>20.2f}")


if __name__ == "__main__":
    main()
