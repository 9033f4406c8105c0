"""Thin wrapper: `python scripts/bench_ddp.py --config FILE --procs N [--steps N] [--work DIR]
[--json OUT]`: training tokens/s of 1 process vs N gloo processes (see `nmt.bench.ddp`)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from nmt.bench.ddp import main

if __name__ == "__main__":
    raise SystemExit(main())
