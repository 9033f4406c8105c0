"""Two training code paths timed against each other in one process (`bench_speed --ab`).

Runs a few seconds apart on a shared machine can differ by more than a change is worth, so a
before/after of whole runs needs many repeats to show a few percent. Here both paths run in
the same process on the same batches, alternating: path A is the code as configured, path B
the same with kernel switches changed (`--ab NMT_FUSED_LOSS=0`, the syntax of the environment
variable; inside the process the change is `nmt.cpu.switches.override`, not the environment,
which `nmt.cpu.switches` reads once). Each pair times forward and backward
(`Trainer.forward_backward`) of the same `AB_BATCHES` batches with either path, in the order
A B for even pairs and B A for odd ones, without optimizer updates (the weights stay the
same, so both paths do the same work). The result is the median over pairs of
time(B) / time(A): above 1, path A is faster.

The switches are listed in `nmt.cpu.switches`; all but those acting once per process
(`ONCE_PER_PROCESS`) can be timed this way. `--ab AMP=bf16` times bf16 autocast (path B)
against fp32 (`train.amp`, see `nmt.training.device.autocast`) the same way.
"""

from __future__ import annotations

import contextlib
import statistics
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from nmt.cpu import switches
from nmt.errors import NmtError

if TYPE_CHECKING:
    from nmt.training.trainer import Trainer

AB_BATCHES = 3  # batches per timed half of a pair
# switches that take effect once per process (the allocator's settings when training starts):
# overriding them inside the process would time the same code twice
ONCE_PER_PROCESS = ("keep_freed_memory",)


def ab_variables() -> list[str]:
    """What path B can change, as `NAME=VALUE`: each switch with the value that turns it off,
    and `AMP=bf16`."""
    return [f"{name}={off}" for name, (field, off) in switches.VARIABLES.items()
            if field not in ONCE_PER_PROCESS] + ["AMP=bf16"]


@dataclass(frozen=True)
class PathB:
    """What path B changes: `variables` as given (`{"NMT_FUSED_LOSS": "0"}`, the record) and
    `fields`, the `nmt.cpu.switches.Switches` fields they set (`{"fused_loss": False}`)."""

    variables: dict[str, str]
    fields: dict[str, bool]
    bf16: bool = False  # path B trains under bf16 autocast

    @contextlib.contextmanager
    def active(self, trainer: Trainer) -> Iterator[None]:
        """The switches (and autocast) of path B inside the block, those before restored
        after it."""
        amp = trainer.amp
        if self.bf16:
            import torch

            trainer.amp = torch.bfloat16
        try:
            with switches.override(**self.fields):
                yield
        finally:
            trainer.amp = amp


def parse_switches(items: list[str]) -> PathB:
    """['NMT_FUSED_LOSS=0', ...] -> PathB; a misspelt switch (a typo would time the same code
    twice) or one that acts once per process is a one-line error naming the item."""
    variables, fields, bf16 = {}, {}, False
    for item in items:
        if item == "AMP=bf16":
            variables["AMP"], bf16 = "bf16", True
            continue
        try:
            field, on = switches.parse_assignment(item)
        except NmtError:
            raise NmtError(f"--ab {item!r}: not a switch; --ab takes "
                           f"{', '.join(ab_variables())}") from None
        name, _, value = item.partition("=")
        if field in ONCE_PER_PROCESS:
            raise NmtError(f"--ab {item!r}: {name} is read once per process, so both paths of "
                           "one process would run alike; time it with two runs instead")
        variables[name], fields[field] = value, on
    return PathB(variables, fields, bf16)


def time_paths(trainer: Trainer, path_b: PathB, pairs: int, warmup: int) -> dict:
    """`pairs` timed pairs after `warmup` untimed updates (both paths, alternating), on the
    trainer's first-epoch batches."""
    batches = trainer.batches.epoch_batches(0)

    def path(name: str) -> contextlib.AbstractContextManager:
        return path_b.active(trainer) if name == "B" else contextlib.nullcontext()

    trainer.model.train()
    for i in range(warmup):  # both paths warm (their own buffers, oneDNN primitives)
        with path("B" if i % 2 else "A"):
            trainer.train_update([batches[i % len(batches)]])
    seconds: dict[str, list[float]] = {"A": [], "B": []}
    tokens = 0
    for i in range(pairs):
        group = [batches[(warmup + AB_BATCHES * i + j) % len(batches)] for j in range(AB_BATCHES)]
        for name in ("AB" if i % 2 == 0 else "BA"):
            with path(name):
                start = time.perf_counter()
                n = sum(trainer.forward_backward([g])[1] for g in group)
                seconds[name].append(time.perf_counter() - start)
        tokens += n
    ratios = [b / a for a, b in zip(seconds["A"], seconds["B"], strict=True)]
    return {"ab_switches": path_b.variables, "ab_pairs": pairs,
            "ab_time_ratio": statistics.median(ratios), "ab_time_ratio_min": min(ratios),
            "ab_time_ratio_max": max(ratios),
            "ab_tokens_per_s_a": tokens / sum(seconds["A"]),
            "ab_tokens_per_s_b": tokens / sum(seconds["B"])}
