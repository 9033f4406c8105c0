"""Where the CPU time goes: the ops with the most self CPU time while a function runs, and
how much of it the matrix products take.

`profile_run` runs a callable under `torch.profiler` (CPU activity only) and returns its top
ops as plain dicts (JSON-ready), its wall time and the self CPU time of its matrix products
(`PRODUCT_OPS`); `top_ops` is the first of these alone; `format_ops` prints them as a
compact table. A product's work on torch's worker threads counts as the product's own time.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from torch.profiler import ProfilerActivity, profile

# The ops whose FLOPs `nmt.bench.speed` counts (matrix products and oneDNN's LSTM layers): their
# self time is what the counted FLOPs cost; everything else is time beside them.
PRODUCT_OPS = frozenset({
    "mkldnn::_linear_pointwise", "aten::mm", "aten::addmm", "aten::bmm", "aten::baddbmm",
    "aten::mv", "aten::addmv", "aten::addmv_", "aten::mkldnn_rnn_layer",
    "aten::mkldnn_rnn_layer_backward"})


@dataclass
class Profile:
    """ops: the top ops (see `top_ops`); wall_ms: the callable's wall time; product_ms: the
    self CPU time of `PRODUCT_OPS`."""

    ops: list[dict]
    wall_ms: float
    product_ms: float


def profile_run(fn: Callable[[], object], k: int = 15) -> Profile:
    """`fn()` under the profiler: its top `k` ops, wall time and matrix products' time."""
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        start = time.perf_counter()
        fn()
        wall = time.perf_counter() - start
    events = prof.key_averages()
    total = sum(e.self_cpu_time_total for e in events) or 1.0  # microseconds
    ranked = sorted(events, key=lambda e: e.self_cpu_time_total, reverse=True)[:k]
    ops = [{"name": e.key, "self_cpu_ms": round(e.self_cpu_time_total / 1000, 3),
            "share_pct": 100 * e.self_cpu_time_total / total, "calls": e.count}
           for e in ranked]
    products = sum(e.self_cpu_time_total for e in events if e.key in PRODUCT_OPS)
    return Profile(ops, 1000 * wall, products / 1000)


def top_ops(fn: Callable[[], object], k: int = 15) -> list[dict]:
    """The `k` ops with the most self CPU time while `fn()` runs, most first.

    Each row: op name, self CPU ms, share (%) of the self CPU time of all recorded ops (time
    spent outside any op, e.g. in Python between ops, is not in the total), number of calls.
    """
    return profile_run(fn, k).ops


def format_ops(rows: list[dict], title: str) -> str:
    """`top_ops` rows as a fixed-width table under `title` (op names cut at 50 characters)."""
    width = min(max([len(r["name"]) for r in rows] + [2]), 50)
    lines = [title, f"{'op':<{width}}  {'self ms':>9}  {'share %':>7}  {'calls':>7}"]
    lines += [f"{r['name'][:width]:<{width}}  {r['self_cpu_ms']:>9.1f}  {r['share_pct']:>7.1f}  "
              f"{r['calls']:>7}" for r in rows]
    return "\n".join(lines)
