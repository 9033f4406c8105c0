"""Load and fault test of `nmt serve` on loopback: latency, throughput against the CLI's
batch throughput, lost/misrouted lines, bad requests, a clean SIGTERM (`nmt.bench.serve_load`).

    python scripts/bench_serve.py --model-dir DIR --input test.de --clients 1 8 32 --beam 5
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from nmt.bench.serve_load import main

if __name__ == "__main__":
    raise SystemExit(main())
