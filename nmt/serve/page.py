"""The page at `/`: type or paste text, read the translation, its attention and alternatives.

One self-contained document (inline CSS and script, no URL of any kind, so it works offline
and under a `default-src 'none'` content security policy). The script posts the lines to
`translate` with `alignments: true` and draws each sentence's word-level heatmap from the
returned matrix in the HTML alignment report's look (`nmt.alignment.report`: its CSS, the
same table of target-word rows and source-word columns, shade = weight, hard links outlined,
the weight in each cell's tooltip, also shown under the table on hover). The report's grey
source-EOS column is left out: the API's alignment holds the matrix renormalised over source
words, not the EOS share. With "alternatives" above 1 the n-best list is shown too.
"""

from __future__ import annotations

import html

from nmt.alignment.report import CSS as REPORT_CSS

# the policy sent with the page: nothing but itself and its own origin's API
CONTENT_SECURITY_POLICY = ("default-src 'none'; style-src 'unsafe-inline'; "
                           "script-src 'unsafe-inline'; connect-src 'self'; img-src data:; "
                           "base-uri 'none'; form-action 'none'")

PAGE_CSS = """
textarea { width: 100%; max-width: 48em; font: inherit; padding: 0.4em; box-sizing: border-box; }
.controls { margin: 0.5em 0 1em; display: flex; gap: 1.2em; align-items: center;
  flex-wrap: wrap; }
.controls input[type=number] { width: 4em; }
button { font: inherit; padding: 0.25em 1.2em; }
#status.error { color: #b00020; }
section.sentence { margin-bottom: 1.6em; }
p.translation { font-size: 1.2em; font-weight: bold; margin: 0.2em 0 0.6em; }
p.source { color: #555; margin: 0.2em 0; }
ol.alternatives { margin: 0 0 0.6em; color: #333; }
#hover { min-height: 1.3em; }
"""

SCRIPT = r"""
"use strict";
const $ = (id) => document.getElementById(id);
const form = $("form"), source = $("source"), beam = $("beam"), nbest = $("nbest");
const heat = $("heatmap"), button = $("translate"), status = $("status");
const output = $("output"), hover = $("hover");

function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
}

function heatmap(a) {
  const links = new Set(a.links.map((l) => l[0] + "," + l[1]));
  const table = el("table", "al"), head = el("tr");
  head.appendChild(el("th"));
  for (const w of a.src) head.appendChild(el("th", "src", w));
  table.appendChild(head);
  a.tgt.forEach((tgt, j) => {
    const row = el("tr");
    row.appendChild(el("th", "tgt", tgt));
    a.src.forEach((src, i) => {
      const w = a.matrix[j][i], hard = links.has(i + "," + j);
      const td = el("td", hard ? "hard" : "");
      td.style.background = "rgba(31,119,180," + w.toFixed(3) + ")";
      td.title = src + " \u2192 " + tgt + ": " + w.toFixed(3) + (hard ? " (hard link)" : "");
      row.appendChild(td);
    });
    table.appendChild(row);
  });
  return table;
}

function sentence(n, line, entry) {
  const list = Array.isArray(entry) ? entry : [entry], best = list[0];
  const section = el("section", "sentence"), h2 = el("h2", "", "Line " + (n + 1) + " ");
  h2.appendChild(el("span", "meta", "(score " + best.score.toFixed(3) + ")"));
  section.append(h2, el("p", "source", line), el("p", "translation", best.text));
  if (list.length > 1) {
    const ol = el("ol", "alternatives");
    for (const c of list) ol.appendChild(el("li", "", c.text + "  (" + c.score.toFixed(3) + ")"));
    section.appendChild(ol);
  }
  const a = best.alignment;
  if (a && a.src.length && a.tgt.length) section.appendChild(heatmap(a));
  return section;
}

function say(text, error) {
  status.textContent = text;
  status.className = error ? "error" : "";
}

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  const lines = source.value.split("\n").map((s) => s.trim()).filter((s) => s);
  if (!lines.length) { say("type a sentence first", true); return; }
  const body = {text: lines, beam: Number(beam.value), nbest: Number(nbest.value),
                alignments: heat.checked};
  button.disabled = true;
  say("translating\u2026");
  const start = performance.now();
  try {
    const response = await fetch("translate", {method: "POST",
      headers: {"Content-Type": "application/json"}, body: JSON.stringify(body)});
    const data = await response.json();
    if (!response.ok) throw new Error(data.error || response.statusText);
    output.replaceChildren(...data.translations.map((t, n) => sentence(n, lines[n], t)));
    say(lines.length + (lines.length > 1 ? " lines" : " line") + " in "
        + Math.round(performance.now() - start) + " ms");
  } catch (e) {
    say("error: " + e.message, true);
  } finally {
    button.disabled = false;
  }
});
source.addEventListener("keydown", (e) => {
  if (e.key === "Enter" && (e.ctrlKey || e.metaKey)) form.requestSubmit();
});
beam.addEventListener("change", () => { nbest.max = beam.value; });
output.addEventListener("mouseover", (e) => {
  if (e.target.tagName === "TD") hover.textContent = e.target.title;
});
"""


def render_page(src_lang: str, tgt_lang: str, default_beam: int, max_beam: int) -> str:
    """The page for a model translating `src_lang` into `tgt_lang`."""
    langs = html.escape(f"{src_lang} \u2192 {tgt_lang}")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="data:,">
<title>nmt {langs}</title>
<style>{REPORT_CSS}{PAGE_CSS}</style></head>
<body>
<h1>nmt <span class="meta">{langs}</span></h1>
<form id="form">
<textarea id="source" rows="5" placeholder="One sentence per line (Ctrl+Enter translates)"
  autofocus></textarea>
<div class="controls">
<label>beam <input id="beam" type="number" min="1" max="{max_beam}" value="{default_beam}">
</label>
<label>alternatives <input id="nbest" type="number" min="1" max="{default_beam}" value="1">
</label>
<label><input id="heatmap" type="checkbox" checked> attention heatmap</label>
<button id="translate" type="submit">Translate</button>
<span id="status" role="status"></span>
</div>
</form>
<p class="legend">Heatmap rows: target words; columns: source words. Shade: attention weight
summed over subwords and renormalised per target word. <span style="outline:2px solid
#d62728;outline-offset:-2px"></span> hard alignment (argmax source word per target word).
Hover a cell for its weight.</p>
<div id="output"></div>
<p id="hover" class="meta"></p>
<script>{SCRIPT}</script>
</body></html>
"""
