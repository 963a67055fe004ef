"""Data-parallel training on PyTorch's own distributed engine (``torch.distributed``).

Launch any fusemap entry point with ``torchrun``, e.g.::

    torchrun --standalone --nproc_per_node=2 -m fusemap.cli integrate A.h5ad B.h5ad --out run/

Every process (rank) reads the data and builds the same model from the same seed. All ranks
draw the same epoch plan (same seed) and each takes its own contiguous share of every section's
seed batch, so one step of N ranks processes the same global batch as one step of one process,
with the work split N ways. Gradients are averaged across ranks with one all-reduce of a flat
buffer after each backward pass; this is simpler than ``DistributedDataParallel`` here because the
discriminator step and the encoder step back-propagate through different sub-modules outside one
``forward``. Validation losses are summed across ranks, so early stopping decides the same on
every rank; balance weights and parameters are broadcast from rank 0; only rank 0 writes
checkpoints and results. Backend: NCCL when training on CUDA, gloo on CPU.

With one process (no ``WORLD_SIZE`` in the environment, or 1) every operation here is a no-op.
"""

from __future__ import annotations

import datetime
import hashlib
import logging
import os
from dataclasses import dataclass
from typing import Any, Iterable, Iterator, Sequence

import numpy as np
import torch
import torch.distributed as dist

log = logging.getLogger("fusemap")


def env_world_size() -> int:
    """Processes ``torchrun`` started (1 when not launched by it)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def env_local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", "0"))


def rank_device(device: torch.device) -> torch.device:
    """A CUDA device without index means this rank's own GPU (``LOCAL_RANK``) under torchrun."""
    if device.type == "cuda" and device.index is None:
        index = env_local_rank() if env_world_size() > 1 else torch.cuda.current_device()
        return torch.device("cuda", index)
    return device


def backend_for(device: torch.device) -> str:
    """NCCL for CUDA tensors, gloo for CPU tensors."""
    return "nccl" if device.type == "cuda" else "gloo"


@dataclass(frozen=True)
class Context:
    """Where this process stands in the process group; one process when ``world_size == 1``."""

    rank: int = 0
    world_size: int = 1
    device: torch.device = torch.device("cpu")

    @property
    def active(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    # -- work sharing ------------------------------------------------------------------------------
    def share(self, seeds: np.ndarray) -> np.ndarray:
        """This rank's contiguous part of one batch of seeds (contiguous keeps patches together)."""
        if not self.active:
            return seeds
        part = np.array_split(seeds, self.world_size)[self.rank]
        if part.size == 0 and seeds.size:  # fewer seeds than ranks: repeat one, so no rank idles
            part = seeds[[self.rank % seeds.size]]
        return part

    def shard(self, plan) -> "ShardedPlan":
        """An epoch plan whose steps hold only this rank's share of every section's batch."""
        return ShardedPlan(plan, self)

    # -- collectives -------------------------------------------------------------------------------
    def sync_gradients(self, params: Iterable[torch.nn.Parameter]) -> None:
        """Average gradients over ranks in one all-reduce of a flat buffer.

        A parameter that got no gradient on any rank keeps ``grad=None`` (so the optimiser skips it,
        as it would in one process); one with a gradient on some ranks gets the average with zeros
        from the others, i.e. the gradient of the global batch mean.
        """
        if not self.active:
            return
        params = [p for p in params if p.requires_grad]
        if not params:
            return
        dev = params[0].device
        parts = [p.grad.reshape(-1) if p.grad is not None else torch.zeros(p.numel(), device=dev, dtype=p.dtype)
                 for p in params]
        has = torch.tensor([p.grad is not None for p in params], dtype=parts[0].dtype, device=dev)
        flat = torch.cat(parts + [has])
        dist.all_reduce(flat, op=dist.ReduceOp.SUM)
        flat[:-len(params)] /= self.world_size
        counts = flat[-len(params):]
        offset = 0
        for p, c in zip(params, counts.tolist()):
            n = p.numel()
            if c > 0:
                p.grad = flat[offset:offset + n].view_as(p).clone()
            else:
                p.grad = None
            offset += n

    def sum(self, values: Sequence[float]) -> list[float]:
        """Element-wise sum of a few numbers over ranks (float64)."""
        if not self.active:
            return [float(v) for v in values]
        t = torch.tensor([float(v) for v in values], dtype=torch.float64, device=self._comm_device())
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
        return t.cpu().tolist()

    def mean(self, values: Sequence[float]) -> list[float]:
        return [v / self.world_size for v in self.sum(values)]

    def broadcast_object(self, obj: Any) -> Any:
        """Rank 0's copy of a picklable object on every rank."""
        if not self.active:
            return obj
        box = [obj if self.is_main else None]
        dist.broadcast_object_list(box, src=0, device=self._comm_device())
        return box[0]

    def broadcast_module(self, module: torch.nn.Module) -> None:
        """Copy rank 0's parameters and buffers to every rank (start of training, after resume)."""
        if not self.active:
            return
        with torch.no_grad():
            for t in list(module.parameters()) + list(module.buffers()):
                dist.broadcast(t.data, src=0)

    def broadcast_buffers(self, module: torch.nn.Module) -> None:
        """Rank 0's buffers (e.g. batch-norm running statistics) everywhere, so evaluation agrees."""
        if not self.active:
            return
        with torch.no_grad():
            for b in module.buffers():
                dist.broadcast(b.data, src=0)

    def check_in_sync(self, module: torch.nn.Module) -> None:
        """Raise when the ranks' parameters differ (they must stay identical after every step)."""
        if not self.active:
            return
        digest = parameter_digest(module)
        digests = [None] * self.world_size
        dist.all_gather_object(digests, digest)
        if len(set(digests)) != 1:
            raise RuntimeError(
                f"data-parallel ranks diverged (parameter digests {digests}); gradients were not "
                "averaged identically. This is a bug: please report it with the command line used."
            )

    def barrier(self) -> None:
        if self.active:
            dist.barrier()

    def _comm_device(self) -> torch.device:
        return self.device if dist.get_backend() == "nccl" else torch.device("cpu")


class ShardedPlan:
    """Wraps an ``EpochPlan``: same steps on every rank, each rank with its share of the seeds."""

    def __init__(self, plan, ctx: Context):
        self.plan = plan
        self.ctx = ctx
        self.n_steps = plan.n_steps
        self.batch_size = plan.batch_size

    def steps(self) -> Iterator[list[np.ndarray]]:
        for seed_lists in self.plan.steps():
            yield [self.ctx.share(s) for s in seed_lists]


def parameter_digest(module: torch.nn.Module) -> str:
    h = hashlib.sha1()
    for name, p in sorted(module.state_dict().items()):
        h.update(name.encode())
        h.update(p.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


_SINGLE = Context()


def setup(device: torch.device | str = "cpu", timeout_s: float = 1800) -> Context:
    """Join the process group ``torchrun`` describes in the environment; one process: no-op.

    The backend follows the training device (NCCL for CUDA, gloo for CPU); a CUDA rank uses
    GPU ``LOCAL_RANK``. Safe to call more than once.
    """
    device = torch.device(device)
    if env_world_size() <= 1:
        return Context(0, 1, device)
    if not dist.is_available():  # pragma: no cover - every supported torch build has it
        raise RuntimeError("WORLD_SIZE > 1 but this torch build has no torch.distributed support.")
    device = rank_device(device)
    if not dist.is_initialized():
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group(backend_for(device), timeout=datetime.timedelta(seconds=timeout_s))
        log.info("rank %d of %d joined the %s process group (device %s)", dist.get_rank(),
                 dist.get_world_size(), dist.get_backend(), device)
    return Context(dist.get_rank(), dist.get_world_size(), device)


def context() -> Context:
    """The current process group (joined by :func:`setup`), or one process."""
    if dist.is_available() and dist.is_initialized():
        dev = torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else torch.device("cpu")
        return Context(dist.get_rank(), dist.get_world_size(), dev)
    return _SINGLE


def is_main_process() -> bool:
    """True on rank 0 and when not running distributed: the process that writes results."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank() == 0
    return int(os.environ.get("RANK", "0")) == 0


def shutdown() -> None:
    """Leave the process group (end of a torchrun command)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()
