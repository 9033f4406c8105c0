"""`nmt serve`: a model behind HTTP, with dynamic batching and a page for people.

- `protocol`: the JSON request and response (`POST /translate`), its limits and the HTTP
  status of every refusal; plain Python, no web library.
- `batcher`: one decoding thread fed by a queue; requests that arrive together with the same
  decoding options become one `Translator.translate` call, and the results are split back.
- `page`: the page at `/` (inline CSS and script, nothing from another origin): translation,
  word-level attention heatmap in the alignment report's look, n-best alternatives.
- `app`: the Starlette application (routes, body limit, JSON errors, lifespan).
- `server`: uvicorn on a bound socket; SIGTERM stops gracefully (requests in flight are
  answered) and the process exits 0.

Starlette and uvicorn are the optional `serve` extra; only `app` and `server` import them,
and only the `serve` command imports those.
"""
