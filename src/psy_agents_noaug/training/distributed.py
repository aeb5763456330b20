"""torchrun / DDP support: who am I, sharded loaders, and cross-rank reductions.

Only rank 0 ("main") talks to MLflow and writes checkpoints; every rank computes the
same validation metrics from the gathered predictions, so early stopping decides the
same way everywhere and no rank waits for another forever.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, NoReturn

import torch
import torch.distributed as dist
from torch.utils.data import DataLoader, Sampler
from torch.utils.data.distributed import DistributedSampler


@dataclass(frozen=True)
class DistContext:
    """This process's place in the job (world_size 1 = plain single-process training)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


SINGLE = DistContext()


def init_distributed(device_type: str) -> DistContext:
    """Join the process group torchrun describes in the environment (no-op otherwise)."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return SINGLE
    ctx = DistContext(int(os.environ["RANK"]), world_size, int(os.environ.get("LOCAL_RANK", 0)))
    if not dist.is_initialized():
        backend = "nccl" if device_type == "cuda" else "gloo"
        dist.init_process_group(backend=backend)
    if device_type == "cuda":
        torch.cuda.set_device(ctx.local_rank)
    return ctx


def shutdown_distributed() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


def exit_without_finalizing(code: int) -> NoReturn:
    """End a torchrun worker: run the exit handlers, flush, and leave at once.

    DDP keeps the process group and its gloo worker threads alive past
    `destroy_process_group`. A worker thread that drops a finished collective's
    Python-owned tensors after interpreter finalization has begun aborts the whole
    process (SIGABRT, "terminate called without an active exception"), and torchrun
    then fails the job although training succeeded: a few percent of 2-rank CPU runs
    did so. Exit handlers (metric sink, logging) still run here, while Python is whole;
    only the finalization that races those threads is skipped.
    """
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    os._exit(code)


class ShardSampler(Sampler[int]):
    """Rank r evaluates items r, r+W, r+2W, …: every item exactly once, no padding."""

    def __init__(self, length: int, ctx: DistContext) -> None:
        self.indices = list(range(ctx.rank, length, ctx.world_size))

    def __iter__(self) -> Iterator[int]:
        return iter(self.indices)

    def __len__(self) -> int:
        return len(self.indices)


def shard_loaders(
    train: DataLoader, val: DataLoader, ctx: DistContext, seed: int
) -> tuple[DataLoader, DataLoader]:
    """Train with a DistributedSampler (shuffled per epoch); validate on disjoint shards."""
    train_sampler: DistributedSampler[Any] = DistributedSampler(
        train.dataset, num_replicas=ctx.world_size, rank=ctx.rank, shuffle=True, seed=seed
    )
    sharded_train = DataLoader(
        train.dataset,
        batch_size=train.batch_size,
        sampler=train_sampler,
        collate_fn=train.collate_fn,
        num_workers=train.num_workers,
    )
    sharded_val = DataLoader(
        val.dataset,
        batch_size=val.batch_size,
        sampler=ShardSampler(len(val.dataset), ctx),  # type: ignore[arg-type]
        collate_fn=val.collate_fn,
        num_workers=val.num_workers,
    )
    return sharded_train, sharded_val


def gather_cat(tensor: torch.Tensor) -> torch.Tensor:
    """Concatenate a (CPU) tensor's rows from every rank, in rank order."""
    if not dist.is_initialized():
        return tensor
    parts: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(parts, tensor.cpu())
    return torch.cat(parts)


def all_reduce_sum(tensor: torch.Tensor) -> torch.Tensor:
    """Sum a tensor over ranks (in place where possible); returns it."""
    if dist.is_initialized():
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor
