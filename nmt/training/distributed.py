"""Multi-process training with `torch.distributed` (DDP), launched by `torchrun`.

`init()` reads torchrun's environment (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR/PORT) and
starts the process group: NCCL on CUDA, gloo on the CPU. A single process (no torchrun, or
WORLD_SIZE=1) gets `DistInfo()` and every helper here is a no-op for it.

Gradients are summed across ranks (not averaged): each rank divides its summed token loss by
the number of target tokens of the whole update over all ranks, so N ranks with batches
b_1..b_N make exactly the update that one process makes with the same batches accumulated
(`train.update_freq` N).
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist

from nmt.errors import NmtError


@dataclass(frozen=True)
class DistInfo:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init(timeout_minutes: float = 30.0) -> DistInfo:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return DistInfo()
    if dist.is_initialized():
        return DistInfo(dist.get_rank(), dist.get_world_size(),
                        int(os.environ.get("LOCAL_RANK", "0")))
    try:
        rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    except KeyError as e:
        raise NmtError(f"WORLD_SIZE={world} but {e} is not set; launch with torchrun") from None
    backend = "nccl" if torch.cuda.is_available() else "gloo"
    if backend == "nccl":
        torch.cuda.set_device(local)
    dist.init_process_group(backend, timeout=timedelta(minutes=timeout_minutes))
    return DistInfo(rank, world, local)


def shutdown(info: DistInfo, clean: bool = True) -> None:
    """Leave the process group; after a clean run together (a rank that exits while another
    still receives the last collective's data can make gloo abort the other one). After an
    error, without waiting: the other ranks may never arrive, and torchrun stops them."""
    if info.enabled and dist.is_initialized():
        if clean:
            dist.barrier()
        dist.destroy_process_group()


def shard(batches: Iterable, info: DistInfo) -> Iterator:
    """This rank's share of an epoch's batches (a list or a stream); every rank gets the same
    number. Rank r takes batches r, r + N, r + 2N, ...; the last round is completed with the
    epoch's first batches, so no rank waits at the epoch end."""
    if not info.enabled:
        yield from batches
        return
    head: list = []
    round_: list = []
    for batch in batches:
        if len(head) < info.world_size:
            head.append(batch)
        round_.append(batch)
        if len(round_) == info.world_size:
            yield round_[info.rank]
            round_ = []
    if round_:
        fill = itertools.cycle(head)
        while len(round_) < info.world_size:
            round_.append(next(fill))
        yield round_[info.rank]


def _collective(value: float, dtype: torch.dtype, info: DistInfo, device: torch.device,
                broadcast: bool) -> float:
    """`value` summed over ranks (or rank 0's, with `broadcast`); as is without DDP."""
    if not info.enabled:
        return value
    t = torch.tensor([value], dtype=dtype, device=device)
    if broadcast:
        dist.broadcast(t, src=0)
    else:
        dist.all_reduce(t)
    return t.item()


def sum_int(value: int, info: DistInfo, device: torch.device) -> int:
    return int(_collective(value, torch.long, info, device, broadcast=False))


def sum_float(value: float, info: DistInfo, device: torch.device) -> float:
    return float(_collective(value, torch.float64, info, device, broadcast=False))


def broadcast_float(value: float, info: DistInfo, device: torch.device) -> float:
    """Rank 0's value, on every rank."""
    return float(_collective(value, torch.float64, info, device, broadcast=True))


def gather_objects(obj: object, info: DistInfo) -> list:
    """Every rank's `obj`, in rank order (all ranks must call this)."""
    if not info.enabled:
        return [obj]
    out: list = [None] * info.world_size
    dist.all_gather_object(out, obj)
    return out


def barrier(info: DistInfo) -> None:
    if info.enabled:
        dist.barrier()


def allreduce_sum_hook(state, bucket):  # no annotations: DDP checks them against real types
    """DDP communication hook: sum gradients over ranks instead of averaging them."""
    work = dist.all_reduce(bucket.buffer(), async_op=True)
    return work.get_future().then(lambda fut: fut.value()[0])


def wrap(model: torch.nn.Module, info: DistInfo, device: torch.device) -> torch.nn.Module:
    """DistributedDataParallel with summed gradients, or the model itself for one process."""
    if not info.enabled:
        return model
    ids = [device.index] if device.type == "cuda" else None
    ddp = torch.nn.parallel.DistributedDataParallel(model, device_ids=ids)
    ddp.register_comm_hook(None, allreduce_sum_hook)
    return ddp
