"""Looking at alignments: one self-contained HTML report, and optional matplotlib heatmaps.

The report is a single HTML file with inline CSS and no script, link or URL of any kind, so
it opens offline: one table per sentence, target words as rows and source words as columns
(the (T, S) matrix as stored), shade = weight, hard-alignment cells outlined, the weight in
each cell's tooltip; a last grey column shows each target word's share on the source EOS.
Heatmap PNGs need matplotlib (the `plot` extra), imported only inside `plot_heatmaps`.
"""

from __future__ import annotations

import html
import importlib.util
from collections.abc import Sequence
from pathlib import Path

from nmt.alignment.extract import SentenceAlignment
from nmt.errors import NmtError
from nmt.io import atomic_open

CSS = """
body { font-family: sans-serif; margin: 1.5em; color: #222; }
h2 { font-size: 1.05em; margin: 1.6em 0 0.4em; }
.meta { color: #666; font-weight: normal; }
table.al { border-collapse: collapse; }
table.al td { width: 1.5em; height: 1.5em; border: 1px solid #e4e4e4; padding: 0; }
table.al th { font-weight: normal; font-size: 0.9em; padding: 0 0.4em; }
table.al th.src { writing-mode: vertical-rl; transform: rotate(180deg); text-align: left;
  vertical-align: bottom; padding: 0.3em 0; }
table.al th.tgt { text-align: right; white-space: nowrap; }
table.al td.hard { outline: 2px solid #d62728; outline-offset: -2px; }
table.al td.thr { outline-style: dashed; }
table.al td.eos { border-left: 2px dashed #999; }
table.al td:hover { outline: 2px solid #000; outline-offset: -2px; }
.legend span { display: inline-block; width: 1.2em; height: 1.2em; vertical-align: middle;
  border: 1px solid #ccc; }
"""


def _text(s: str) -> str:
    """HTML-escaped, with '/' as an entity so that no data can form a '//' anywhere."""
    return html.escape(s, quote=True).replace("/", "&#47;")


def _cell(weight: float, title: str, css: str = "", rgb: str = "31,119,180") -> str:
    cls = f' class="{css}"' if css else ""
    return (f'<td{cls} style="background:rgba({rgb},{weight:.3f})" '
            f'title="{_text(title)}"></td>')


def sentence_table(s: SentenceAlignment, threshold: float | None = None) -> str:
    """One sentence as an HTML table: rows target words, columns source words (+ EOS share)."""
    links = set(s.links())
    extra = set(s.links(threshold)) - links if threshold is not None else set()
    head = "".join(f'<th class="src">{_text(w)}</th>' for w in s.src.words)
    rows = [f'<tr><th></th>{head}<th class="src">&lt;&#47;s&gt;</th></tr>']
    for j, tgt in enumerate(s.tgt.words):
        cells = []
        for i, src in enumerate(s.src.words):
            weight = float(s.words.matrix[j, i])
            css = "hard" if (i, j) in links else ("hard thr" if (i, j) in extra else "")
            mark = " (hard link)" if css else ""
            cells.append(_cell(weight, f"{src} \u2192 {tgt}: {weight:.3f}{mark}", css))
        eos = float(s.words.eos_weight[j]) if len(s.words.eos_weight) else 0.0
        cells.append(_cell(eos, f"{tgt}: {eos:.3f} of its attention on the source EOS",
                           "eos", "120,120,120"))
        rows.append(f'<tr><th class="tgt">{_text(tgt)}</th>{"".join(cells)}</tr>')
    return f'<table class="al">{"".join(rows)}</table>'


def render_report(sentences: Sequence[SentenceAlignment], title: str,
                  threshold: float | None = None) -> str:
    parts = [f"<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
             f"<title>{_text(title)}</title><style>{CSS}</style></head><body>",
             f"<h1>{_text(title)}</h1>",
             '<p class="legend">Rows: target words; columns: source words. Shade: attention '
             'weight summed over subwords and renormalised per target word (source EOS '
             'excluded; its share is the last, grey column). <span style="outline:2px solid '
             '#d62728;outline-offset:-2px"></span> hard alignment (argmax source word per '
             'target word' + (f"; dashed: the other links with weight &ge; {threshold:g}"
                              if threshold is not None else "") +
             "). Hover a cell for its weight.</p>"]
    for s in sentences:
        meta = f"score {s.score:.3f}" if s.attention.size else "empty"
        parts.append(f'<section id="s{s.line}"><h2>Line {s.line} '
                     f'<span class="meta">({meta})</span></h2>')
        parts.append(f"<p>{_text(' '.join(s.src.words))}<br>{_text(' '.join(s.tgt.words))}</p>")
        if s.src.words and s.tgt.words:
            parts.append(sentence_table(s, threshold))
        parts.append("</section>")
    parts.append("</body></html>\n")
    return "\n".join(parts)


def write_report(path: str | Path, sentences: Sequence[SentenceAlignment], title: str,
                 threshold: float | None = None) -> Path:
    with atomic_open(path) as f:
        f.write(render_report(sentences, title, threshold))
    return Path(path)


# how to install what --plot needs (the README's set-up: the virtual environment in .venv)
PLOT_INSTALL = ".venv/bin/pip install -e '.[plot]'"


def have_matplotlib() -> bool:
    return importlib.util.find_spec("matplotlib") is not None


def plot_heatmaps(out_dir: str | Path, sentences: Sequence[SentenceAlignment],
                  limit: int) -> list[Path]:
    """heatmap_{line}.png for the first `limit` non-empty sentences; hard links marked."""
    if not have_matplotlib():
        raise NmtError(f"--plot needs matplotlib: {PLOT_INSTALL}")
    from matplotlib.figure import Figure  # the optional `plot` extra; no pyplot global state

    out_dir = Path(out_dir)
    written = []
    for s in [s for s in sentences if s.src.words and s.tgt.words][:limit]:
        T, S = s.words.matrix.shape
        fig = Figure(figsize=(max(3.0, 0.45 * S + 1.5), max(2.5, 0.4 * T + 1.2)))
        ax = fig.add_subplot()
        image = ax.imshow(s.words.matrix, cmap="Blues", vmin=0.0, vmax=1.0, aspect="auto")
        links = s.links()
        ax.scatter([i for i, _ in links], [j for _, j in links], marker="s", s=60,
                   facecolors="none", edgecolors="#d62728", linewidths=1.5)
        ax.set_xticks(range(S), s.src.words, rotation=60, ha="right")
        ax.set_yticks(range(T), s.tgt.words)
        ax.set_title(f"line {s.line}", fontsize=9)
        fig.colorbar(image, ax=ax, fraction=0.04)
        fig.tight_layout()
        path = out_dir / f"heatmap_{s.line}.png"
        with atomic_open(path, "wb") as f:
            fig.savefig(f, format="png", dpi=100)
        written.append(path)
    return written
