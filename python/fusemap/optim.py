"""Adam, as ``torch.optim.Adam`` computes it, updating all parameters with ``torch._foreach`` ops.

Why not ``torch.optim``: building any of its optimisers imports ``torch._dynamo`` (its
``add_param_group`` is wrapped by ``torch._disable_dynamo``), which costs ~75 MB and ~5 CPU s in
every process, as much as training a small atlas, and its CPU update loops over parameters one at
a time. The update is the same (``tests/test_optim.py`` compares it with torch's, step by step):

    g <- g + weight_decay * p;  m <- b1 m + (1 - b1) g;  v <- b2 v + (1 - b2) g^2
    p <- p - lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)

Parameters without a gradient in a step are skipped (their step count does not advance).
"""

from __future__ import annotations

import math
from typing import Iterable

import torch


class Adam:
    def __init__(self, params: Iterable[torch.nn.Parameter], lr: float = 1e-3, betas=(0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0.0):
        self.params = list(params)
        if len({id(p) for p in self.params}) != len(self.params):
            raise ValueError("a parameter is listed twice")
        self.lr, self.betas, self.eps, self.weight_decay = float(lr), tuple(map(float, betas)), float(eps), \
            float(weight_decay)
        self.steps = [0] * len(self.params)
        self.exp_avg = [torch.zeros_like(p, memory_format=torch.preserve_format) for p in self.params]
        self.exp_avg_sq = [torch.zeros_like(p, memory_format=torch.preserve_format) for p in self.params]

    def zero_grad(self, set_to_none: bool = True) -> None:
        for p in self.params:
            if p.grad is not None:
                if set_to_none:
                    p.grad = None
                else:
                    p.grad.detach_().zero_()

    @torch.no_grad()
    def step(self) -> None:
        live = [i for i, p in enumerate(self.params) if p.grad is not None]
        if not live:
            return
        b1, b2 = self.betas
        # parameters of a step share their step count except after a skipped gradient: group by it
        by_step: dict[int, list[int]] = {}
        for i in live:
            self.steps[i] += 1
            by_step.setdefault(self.steps[i], []).append(i)
        for t, idx in by_step.items():
            params = [self.params[i] for i in idx]
            grads = [self.params[i].grad for i in idx]
            m = [self.exp_avg[i] for i in idx]
            v = [self.exp_avg_sq[i] for i in idx]
            if self.weight_decay:
                grads = torch._foreach_add(grads, params, alpha=self.weight_decay)
            torch._foreach_lerp_(m, grads, 1 - b1)
            torch._foreach_mul_(v, b2)
            torch._foreach_addcmul_(v, grads, grads, 1 - b2)
            step_size = self.lr / (1 - b1 ** t)
            denom = torch._foreach_sqrt(v)
            torch._foreach_div_(denom, math.sqrt(1 - b2 ** t))
            torch._foreach_add_(denom, self.eps)
            torch._foreach_addcdiv_(params, m, denom, -step_size)

    # -- checkpoints ---------------------------------------------------------------------------
    def state_dict(self) -> dict:
        return {"steps": torch.tensor(self.steps, dtype=torch.long),
                "exp_avg": [t.detach().cpu().clone() for t in self.exp_avg],
                "exp_avg_sq": [t.detach().cpu().clone() for t in self.exp_avg_sq]}

    def load_state_dict(self, state: dict) -> None:
        if len(state["exp_avg"]) != len(self.params):
            raise ValueError(f"optimiser state holds {len(state['exp_avg'])} parameters, this optimiser "
                             f"{len(self.params)}")
        for mine, theirs in zip(self.exp_avg + self.exp_avg_sq, state["exp_avg"] + state["exp_avg_sq"]):
            if mine.shape != theirs.shape:
                raise ValueError(f"optimiser state of shape {tuple(theirs.shape)} for a parameter of shape "
                                 f"{tuple(mine.shape)}")
            mine.copy_(theirs)
        self.steps = [int(s) for s in state["steps"]]
