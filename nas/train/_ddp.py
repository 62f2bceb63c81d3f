"""Data-parallel training across processes and machines, set up from ``torchrun``'s environment
(shared by stand-alone and supernet training).

Under ``torchrun --nproc_per_node K [--nnodes N …]`` the variables ``RANK``/``WORLD_SIZE``/
``LOCAL_RANK``/``MASTER_ADDR``/``MASTER_PORT`` are set; the process group then uses NCCL when CUDA is
available and gloo otherwise. Without them the run is a single process and nothing changes.

Every rank runs the same step (a supernet samples the same subnets, seeded identically) on its own
shard of each batch; after the step's backward passes the gradients are averaged with one coalesced
all-reduce. That is what ``DistributedDataParallel`` does for one forward/backward per step; the
sandwich rule runs several subnets with different parameter subsets per step, which the DDP wrapper's
per-backward bucketing does not fit, so the reduction is explicit (and one path serves both).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist

from nas.errors import NasError


@dataclass(frozen=True)
class DistInfo:
    """Where this process sits in the job."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    backend: str | None = None
    device: str = "cpu"

    @property
    def is_main(self) -> bool:
        """Rank 0 writes checkpoints and prints progress."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        """More than one process."""
        return self.world > 1


def env_world_size() -> int:
    """``WORLD_SIZE`` from the environment (1 when unset)."""
    try:
        return int(os.environ.get("WORLD_SIZE", "1"))
    except ValueError:
        return 1


def check_device(device: str | None, name: str = "--device") -> str | None:
    """``device`` if this torch can use it (``cpu``, ``cuda`` or ``cuda:N``); else a one-line NasError."""
    if device is None:
        return None
    if not re.fullmatch(r"cpu|cuda(:\d+)?", device):
        raise NasError(f"{name} must be cpu, cuda or cuda:N (got {device!r})")
    if device.startswith("cuda"):
        if not torch.cuda.is_available():
            raise NasError(f"{name} {device}: this torch build or machine has no CUDA device; use --device cpu")
        if ":" in device and int(device.split(":")[1]) >= torch.cuda.device_count():
            raise NasError(f"{name} {device}: only {torch.cuda.device_count()} CUDA device(s) here")
    return device


def init_distributed(device: str | None = None) -> DistInfo:
    """Join the process group described by the environment (no-op for a single process)."""
    check_device(device)
    cuda = torch.cuda.is_available() if device is None else device.startswith("cuda")
    world = env_world_size()
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if world <= 1:
        return DistInfo(device=device or ("cuda" if cuda else "cpu"))
    backend = "nccl" if cuda else "gloo"
    if not dist.is_initialized():
        if cuda:
            torch.cuda.set_device(local)
        dist.init_process_group(backend=backend)
    dev = f"cuda:{local}" if cuda else "cpu"
    return DistInfo(dist.get_rank(), dist.get_world_size(), local, backend, dev)


def shutdown(info: DistInfo) -> None:
    """Leave the process group."""
    if info.distributed and dist.is_initialized():
        dist.destroy_process_group()


def average_gradients(params: Iterable[torch.nn.Parameter], info: DistInfo) -> None:
    """Average ``.grad`` over ranks in one all-reduce.

    Every rank runs the same subnets, so the parameters holding a gradient are the same everywhere;
    parameters without one stay without (the optimizer skips them, as in a single process).
    """
    if not info.distributed:
        return
    ps = [p for p in params if p.grad is not None]
    if not ps:
        return
    flat = torch.cat([p.grad.reshape(-1) for p in ps])  # type: ignore[union-attr]
    dist.all_reduce(flat)
    flat /= info.world
    off = 0
    for p in ps:
        n = p.numel()
        p.grad.copy_(flat[off : off + n].view_as(p))  # type: ignore[union-attr]
        off += n


def mean_over_ranks(values: list[float], info: DistInfo) -> list[float]:
    """Element-wise mean of a few floats over ranks."""
    if not info.distributed:
        return values
    t = torch.tensor(values, dtype=torch.float64, device=info.device if info.backend == "nccl" else "cpu")
    dist.all_reduce(t)
    return [float(v) / info.world for v in t.cpu()]


def sum_over_ranks(values: list[float], info: DistInfo) -> list[float]:
    """Element-wise sum of a few floats over ranks."""
    if not info.distributed:
        return values
    t = torch.tensor(values, dtype=torch.float64, device=info.device if info.backend == "nccl" else "cpu")
    dist.all_reduce(t)
    return [float(v) for v in t.cpu()]


def broadcast_object(obj: Any, info: DistInfo) -> Any:
    """Rank 0's ``obj`` on every rank (a small picklable value such as an output path)."""
    if not info.distributed:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0, device=torch.device(info.device) if info.backend == "nccl" else None)
    return box[0]


@torch.no_grad()
def average_buffers(module: torch.nn.Module, info: DistInfo) -> None:
    """Average the floating-point buffers (BatchNorm running statistics) over ranks, so that every rank
    evaluates and checkpoints the same model (timm's ``distribute_bn`` with ``reduce``)."""
    if not info.distributed:
        return
    bufs = [b for b in module.buffers() if b.is_floating_point()]
    if not bufs:
        return
    flat = torch.cat([b.reshape(-1) for b in bufs])
    dist.all_reduce(flat)
    flat /= info.world
    off = 0
    for b in bufs:
        b.copy_(flat[off : off + b.numel()].view_as(b))
        off += b.numel()


def barrier(info: DistInfo) -> None:
    """Wait for every rank."""
    if info.distributed:
        dist.barrier()
