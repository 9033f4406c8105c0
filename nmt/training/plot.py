"""Training curves of one or several runs, side by side: a self-contained HTML page (inline
SVG, no script or URL) and, with matplotlib (the `plot` extra), a PNG.

Four panels: training loss and dev BLEU, each against updates and against wall-clock
minutes (the time `max_time` counts), one colour per run. Validations are dots joined by a
line; the evaluation at a budget stop is a hollow dot.
"""

from __future__ import annotations

import html
import importlib.util
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from nmt.errors import NmtError
from nmt.io import atomic_open
from nmt.training.curves import read_metrics

COLOURS = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2",
           "#7f7f7f", "#bcbd22", "#17becf"]
# (title, y key, x key, events drawn as line, events drawn as hollow dots)
PANELS = [
    ("training loss / updates", "loss", "step", ("train",), ()),
    ("training loss / minutes", "loss", "minutes", ("train",), ()),
    ("dev BLEU / updates", "dev_bleu", "step", ("validation",), ("stop",)),
    ("dev BLEU / minutes", "dev_bleu", "minutes", ("validation",), ("stop",)),
]
W, H, PAD_L, PAD_R, PAD_T, PAD_B = 460, 280, 52, 14, 26, 38


@dataclass
class Run:
    name: str
    records: list[dict]

    def points(self, events: Sequence[str], x: str, y: str) -> list[tuple[float, float]]:
        return [(float(r[x]), float(r[y])) for r in self.records
                if r["event"] in events and isinstance(r.get(x), (int, float))
                and isinstance(r.get(y), (int, float))]


def load_runs(model_dirs: Sequence[str | Path]) -> list[Run]:
    """Each directory's metrics.jsonl, named by the directory (made unique if needed)."""
    runs, names = [], set()
    for d in model_dirs:
        name = Path(d).resolve().name
        while name in names:
            name = f"{Path(d).resolve().parent.name}/{name}"
        names.add(name)
        runs.append(Run(name, read_metrics(d)))
    return runs


def _ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    """About `n` round tick values covering [lo, hi]."""
    if hi <= lo:
        return [lo]
    raw = (hi - lo) / n
    mag = 10 ** math.floor(math.log10(raw))
    step = min((m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw), default=10 * mag)
    first = math.ceil(lo / step) * step
    return [first + i * step for i in range(int((hi - first) / step + 1e-9) + 1)]


def _fmt(v: float) -> str:
    return f"{v:.0f}" if abs(v) >= 100 or v == int(v) else f"{v:.3g}"


def svg_panel(runs: Sequence[Run], title: str, y: str, x: str, line_events: Sequence[str],
              dot_events: Sequence[str]) -> str:
    """One chart as an inline <svg> element."""
    series = [(i, run.points(line_events, x, y), run.points(dot_events, x, y))
              for i, run in enumerate(runs)]
    every = [p for _, line, dots in series for p in line + dots]
    out = [f'<svg width="{W}" height="{H}" '
           f'viewBox="0 0 {W} {H}" role="img"><title>{html.escape(title)}</title>',
           f'<text x="{W / 2}" y="16" text-anchor="middle" font-size="13">'
           f'{html.escape(title)}</text>']
    if not every:
        out.append(f'<text x="{W / 2}" y="{H / 2}" text-anchor="middle" fill="#888">'
                   'no records</text></svg>')
        return "".join(out)
    x0, x1 = min(p[0] for p in every), max(p[0] for p in every)
    y0, y1 = min(p[1] for p in every), max(p[1] for p in every)
    if x1 == x0:
        x0, x1 = x0 - 1, x1 + 1
    if y1 == y0:
        y0, y1 = y0 - 1, y1 + 1
    margin = (y1 - y0) * 0.05
    y0, y1 = y0 - margin, y1 + margin

    def sx(v: float) -> float:
        return PAD_L + (v - x0) / (x1 - x0) * (W - PAD_L - PAD_R)

    def sy(v: float) -> float:
        return H - PAD_B - (v - y0) / (y1 - y0) * (H - PAD_T - PAD_B)

    out.append(f'<rect x="{PAD_L}" y="{PAD_T}" width="{W - PAD_L - PAD_R}" '
               f'height="{H - PAD_T - PAD_B}" fill="none" stroke="#bbb"/>')
    for t in _ticks(x0, x1):
        out.append(f'<line x1="{sx(t):.1f}" y1="{H - PAD_B}" x2="{sx(t):.1f}" '
                   f'y2="{H - PAD_B + 4}" stroke="#888"/><text x="{sx(t):.1f}" '
                   f'y="{H - PAD_B + 16}" text-anchor="middle" font-size="11">{_fmt(t)}</text>')
    for t in _ticks(y0, y1):
        out.append(f'<line x1="{PAD_L}" y1="{sy(t):.1f}" x2="{W - PAD_R}" y2="{sy(t):.1f}" '
                   f'stroke="#eee"/><text x="{PAD_L - 5}" y="{sy(t) + 4:.1f}" '
                   f'text-anchor="end" font-size="11">{_fmt(t)}</text>')
    out.append(f'<text x="{W / 2}" y="{H - 4}" text-anchor="middle" font-size="11" '
               f'fill="#555">{"updates" if x == "step" else "minutes"}</text>')
    for i, line, dots in series:
        colour = COLOURS[i % len(COLOURS)]
        name = html.escape(runs[i].name)
        if line:
            coords = " ".join(f"{sx(a):.1f},{sy(b):.1f}" for a, b in line)
            out.append(f'<polyline class="run{i}" fill="none" stroke="{colour}" '
                       f'stroke-width="1.6" points="{coords}"><title>{name}</title></polyline>')
            if "validation" in line_events:
                out.extend(f'<circle cx="{sx(a):.1f}" cy="{sy(b):.1f}" r="2.5" fill="{colour}">'
                           f'<title>{name}: {_fmt(a)}, {b:.2f}</title></circle>' for a, b in line)
        out.extend(f'<circle cx="{sx(a):.1f}" cy="{sy(b):.1f}" r="3.5" fill="white" '
                   f'stroke="{colour}"><title>{name} (stop): {_fmt(a)}, {b:.2f}</title></circle>'
                   for a, b in dots)
    out.append("</svg>")
    return "".join(out)


def _summary_row(run: Run) -> str:
    """updates, minutes and best dev BLEU (with its update) of one run, as a table row."""
    evaluated = [r for r in run.records if r["event"] in ("validation", "stop")]
    best = max(evaluated, key=lambda r: r["dev_bleu"], default=None)
    last = run.records[-1] if run.records else None
    cells = [html.escape(run.name),
             str(last["step"]) if last else "-",
             f"{last['minutes']:.1f}" if last else "-",
             f"{best['dev_bleu']:.2f} (update {best['step']})" if best else "-"]
    return "<tr>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>"


def render_html(runs: Sequence[Run], title: str = "training curves") -> str:
    legend = "".join(f'<span style="color:{COLOURS[i % len(COLOURS)]}">&#9632;</span> '
                     f'{html.escape(r.name)}&nbsp;&nbsp; ' for i, r in enumerate(runs))
    rows = "".join(_summary_row(r) for r in runs)
    panels = "".join(f"<div>{svg_panel(runs, *p)}</div>" for p in PANELS)
    return f"""<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>{html.escape(title)}</title><style>
body {{ font-family: sans-serif; margin: 1.5em; color: #222; }}
.grid {{ display: grid; grid-template-columns: repeat(2, {W}px); gap: 12px; }}
table {{ border-collapse: collapse; margin: 0.8em 0; }}
td, th {{ border: 1px solid #ddd; padding: 0.2em 0.6em; text-align: left; }}
</style></head><body>
<h1 style="font-size:1.2em">{html.escape(title)}</h1>
<p>{legend}</p>
<table><tr><th>run</th><th>updates</th><th>minutes</th><th>best dev BLEU</th></tr>
{rows}</table>
<div class="grid">{panels}</div>
</body></html>
"""


def write_html(path: str | Path, runs: Sequence[Run]) -> Path:
    with atomic_open(path) as f:
        f.write(render_html(runs))
    return Path(path)


def write_png(path: str | Path, runs: Sequence[Run]) -> Path:
    """The same four panels as a PNG (matplotlib, the `plot` extra)."""
    if importlib.util.find_spec("matplotlib") is None:
        raise NmtError("--png needs matplotlib: .venv/bin/pip install -e '.[plot]'")
    from matplotlib.figure import Figure  # optional; no pyplot global state

    fig = Figure(figsize=(11, 7))
    for k, (title, y, x, line_events, dot_events) in enumerate(PANELS):
        ax = fig.add_subplot(2, 2, k + 1)
        for i, run in enumerate(runs):
            colour = COLOURS[i % len(COLOURS)]
            line = run.points(line_events, x, y)
            if line:
                marker = "o" if "validation" in line_events else None
                ax.plot(*zip(*line, strict=True), color=colour, marker=marker, markersize=3,
                        linewidth=1.4, label=run.name)
            dots = run.points(dot_events, x, y)
            if dots:
                ax.scatter(*zip(*dots, strict=True), facecolors="white", edgecolors=colour,
                           zorder=3)
        ax.set_title(title, fontsize=10)
        ax.set_xlabel("updates" if x == "step" else "minutes", fontsize=9)
        ax.grid(alpha=0.3)
        if k == 0 and runs:
            ax.legend(fontsize=8)
    fig.tight_layout()
    with atomic_open(path, "wb") as f:
        fig.savefig(f, format="png", dpi=100)
    return Path(path)
