"""Two training code paths timed against each other in one process (`bench_speed --ab`).

Runs a few seconds apart on a shared machine can differ by more than a change is worth, so a
before/after of whole runs needs many repeats to show a few percent. Here both paths run in
the same process on the same batches, alternating: path A is the code as configured, path B
the same with environment switches set (e.g. `NMT_FUSED_LOSS=0`; the switches are read at
each call). Each pair times forward and backward of the same `AB_BATCHES` batches with either
path, in the order A B for even pairs and B A for odd ones, without optimizer updates (the
weights stay the same, so both paths do the same work). The result is the median over pairs
of time(B) / time(A): above 1, path A is faster.

Switches: `NMT_FUSED_LOSS=0` (torch's loss on the logits, `nmt.model.seq2seq.ModelOutput.loss`),
`NMT_PACK_WEIGHTS=0` (no packed weights, `nmt.cpu.matmul.pack_weight`), `NMT_ONEDNN_MATMUL=0`
(torch's products, `nmt.cpu.matmul`).
"""

from __future__ import annotations

import contextlib
import os
import re
import statistics
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING

from nmt.errors import NmtError

if TYPE_CHECKING:
    from nmt.training.trainer import Trainer

AB_BATCHES = 3  # batches per timed half of a pair
# the switches read at each call (NMT_SYSTEM_MALLOC, read once per process, cannot be A/B'd)
SWITCHES = ("NMT_FUSED_LOSS", "NMT_PACK_WEIGHTS", "NMT_ONEDNN_MATMUL")
SWITCH = re.compile(r"([A-Z0-9_]+)=(.*)")


def parse_switches(items: list[str]) -> dict[str, str]:
    """['NMT_X=0', ...] -> {'NMT_X': '0'}; anything else, or a name not in `SWITCHES`
    (a typo would time the same code twice), is an error naming the item."""
    switches = {}
    for item in items:
        match = SWITCH.fullmatch(item)
        if not match or match.group(1) not in SWITCHES:
            raise NmtError(f"--ab {item!r}: expected NAME=VALUE with NAME one of "
                           f"{', '.join(SWITCHES)} (e.g. NMT_FUSED_LOSS=0)")
        switches[match.group(1)] = match.group(2)
    return switches


@contextlib.contextmanager
def environment(switches: dict[str, str]) -> Iterator[None]:
    """The switches set in os.environ inside the block, the previous values restored after."""
    saved = {name: os.environ.get(name) for name in switches}
    os.environ.update(switches)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def time_paths(trainer: Trainer, switches: dict[str, str], pairs: int, warmup: int) -> dict:
    """`pairs` timed pairs after `warmup` untimed updates (both paths, alternating), on the
    trainer's first-epoch batches."""
    batches = trainer.batches.epoch_batches(0)
    trainer.model.train()
    for i in range(warmup):  # both paths warm (their own buffers, oneDNN primitives)
        with environment(switches if i % 2 else {}):
            trainer.train_update([batches[i % len(batches)]])
    seconds: dict[str, list[float]] = {"A": [], "B": []}
    tokens = 0
    for i in range(pairs):
        group = [batches[(warmup + AB_BATCHES * i + j) % len(batches)] for j in range(AB_BATCHES)]
        for path in ("AB" if i % 2 == 0 else "BA"):
            with environment(switches if path == "B" else {}):
                start = time.perf_counter()
                n = sum(trainer.train_update([g], step=False)[1] for g in group)
                seconds[path].append(time.perf_counter() - start)
        tokens += n
    ratios = [b / a for a, b in zip(seconds["A"], seconds["B"], strict=True)]
    return {"ab_switches": switches, "ab_pairs": pairs,
            "ab_time_ratio": statistics.median(ratios), "ab_time_ratio_min": min(ratios),
            "ab_time_ratio_max": max(ratios),
            "ab_tokens_per_s_a": tokens / sum(seconds["A"]),
            "ab_tokens_per_s_b": tokens / sum(seconds["B"])}
