"""Where the CPU time goes: the ops with the most self CPU time while a function runs.

`top_ops` runs a callable under `torch.profiler` (CPU activity only) and returns its top ops
as plain dicts (JSON-ready); `format_ops` prints them as a compact table.
"""

from __future__ import annotations

from collections.abc import Callable

from torch.profiler import ProfilerActivity, profile


def top_ops(fn: Callable[[], object], k: int = 15) -> list[dict]:
    """The `k` ops with the most self CPU time while `fn()` runs, most first.

    Each row: op name, self CPU ms, share (%) of the self CPU time of all recorded ops (time
    spent outside any op, e.g. in Python between ops, is not in the total), number of calls.
    """
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        fn()
    events = prof.key_averages()
    total = sum(e.self_cpu_time_total for e in events) or 1.0  # microseconds
    ranked = sorted(events, key=lambda e: e.self_cpu_time_total, reverse=True)[:k]
    return [{"name": e.key, "self_cpu_ms": round(e.self_cpu_time_total / 1000, 3),
             "share_pct": 100 * e.self_cpu_time_total / total, "calls": e.count}
            for e in ranked]


def format_ops(rows: list[dict], title: str) -> str:
    """`top_ops` rows as a fixed-width table under `title` (op names cut at 50 characters)."""
    width = min(max([len(r["name"]) for r in rows] + [2]), 50)
    lines = [title, f"{'op':<{width}}  {'self ms':>9}  {'share %':>7}  {'calls':>7}"]
    lines += [f"{r['name'][:width]:<{width}}  {r['self_cpu_ms']:>9.1f}  {r['share_pct']:>7.1f}  "
              f"{r['calls']:>7}" for r in rows]
    return "\n".join(lines)
