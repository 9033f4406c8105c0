"""`serve --model-dir DIR [--host 127.0.0.1] [--port 8000]`: translate over HTTP.

`POST /translate` takes `{"text": [...], "beam": 5, "nbest": 1, "alignments": false}` and
answers `{"translations": [...]}` in input order; `GET /health`, `GET /info`; a page at `/`
to try the model in a browser (translation, attention heatmap, n-best). Requests that arrive
together are decoded in one batch (`--max-batch` lines; a batch waits at most `--max-wait-ms`
for as many requests as recent batches had). SIGTERM or Ctrl-C stops after answering every
request in flight; SIGTERM exits 0. Needs the `serve` extra (Starlette and uvicorn). See
`nmt.serve` and the README's "Serving".
"""

from __future__ import annotations

import argparse
import importlib.util
import sys

from nmt.cli.guard import run_guarded

INSTALL = ".venv/bin/pip install -e '.[serve]'"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from nmt.serve.protocol import Limits

    limits = Limits()
    parser.add_argument("--model-dir", "--checkpoint", dest="model_dir", required=True,
                        action="append", metavar="DIR", help="model directory (or a .pt file "
                        "in one); repeat it to serve an ensemble of the models")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default "
                        "127.0.0.1, this machine only)")
    parser.add_argument("--port", type=int, default=8000, help="default 8000; 0 = any free")
    parser.add_argument("--quantize", action="store_true", help="int8 weights (CPU)")
    parser.add_argument("--shortlist", action="store_true", help="decode with DIR/shortlist.pt")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    parser.add_argument("--num-threads", type=int, metavar="N", help="torch CPU threads")
    parser.add_argument("--max-batch", type=int, default=64, metavar="N",
                        help="most lines decoded in one call (default 64)")
    parser.add_argument("--max-wait-ms", type=float, default=50.0, metavar="MS",
                        help="how long a batch may wait for the company recent batches had "
                        "(default 50; a lone client never waits)")
    parser.add_argument("--max-lines", type=int, default=limits.max_lines, metavar="N",
                        help=f"lines per request (default {limits.max_lines})")
    parser.add_argument("--max-chars", type=int, default=limits.max_chars, metavar="N",
                        help=f"characters per line (default {limits.max_chars})")
    parser.add_argument("--max-body", type=int, default=limits.max_body, metavar="BYTES",
                        help=f"request body size (default {limits.max_body})")
    parser.add_argument("--max-beam", type=int, default=limits.max_beam, metavar="K",
                        help=f"largest beam a request may ask for (default {limits.max_beam})")
    parser.add_argument("--graceful-timeout", type=float, metavar="S", help="on SIGTERM, "
                        "cancel requests still running after S seconds (default: wait)")
    parser.add_argument("--log-level", default="warning",
                        choices=("critical", "error", "warning", "info", "debug"),
                        help="the server's log level (default warning)")
    parser.add_argument("--access-log", action="store_true", help="log every request")


def _check(args: argparse.Namespace) -> None:
    from nmt.errors import NmtError

    for flag, value in (("--max-batch", args.max_batch), ("--max-lines", args.max_lines),
                        ("--max-chars", args.max_chars), ("--max-body", args.max_body),
                        ("--max-beam", args.max_beam), ("--num-threads", args.num_threads)):
        if value is not None and value < 1:
            raise NmtError(f"{flag}: must be >= 1 (got {value})")
    if args.max_wait_ms < 0:
        raise NmtError(f"--max-wait-ms: must be >= 0 (got {args.max_wait_ms:g})")
    if not 0 <= args.port <= 65535:
        raise NmtError(f"--port: {args.port} is not between 0 and 65535")
    missing = [m for m in ("starlette", "uvicorn") if importlib.util.find_spec(m) is None]
    if missing:
        raise NmtError(f"serve needs {' and '.join(missing)}: {INSTALL}")


def run(args: argparse.Namespace) -> int:
    _check(args)
    import torch

    from nmt.api import Translator
    from nmt.serve.app import create_app, make_service
    from nmt.serve.protocol import Limits
    from nmt.serve.server import bind, make_server, serve

    if args.num_threads:
        torch.set_num_threads(args.num_threads)
    limits = Limits(args.max_lines, args.max_chars, args.max_body, args.max_beam)
    sock = bind(args.host, args.port)  # before loading: a busy port fails at once
    translator = Translator.load(args.model_dir, quantize=args.quantize,
                                 shortlist=args.shortlist, device=args.device)
    service = make_service(translator, limits, args.max_batch, args.max_wait_ms,
                           {"quantize": args.quantize, "shortlist": args.shortlist})
    server = make_server(create_app(service), args.log_level, args.access_log,
                         args.graceful_timeout)
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    print(f"serving {', '.join(args.model_dir)} on http://{shown}:{port} "
          f"(page at /, POST /translate; SIGTERM or Ctrl-C stops)", file=sys.stderr, flush=True)
    serve(server, sock)
    print("stopped: every request answered", file=sys.stderr, flush=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="serve", description=__doc__.splitlines()[0])
    add_arguments(parser)
    return run_guarded(run, parser.parse_args(argv))
