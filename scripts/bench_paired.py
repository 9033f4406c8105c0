"""Thin wrapper: `python scripts/bench_paired.py decode|train --a CHECKOUT --b CHECKOUT ...`:
two checkouts of nmt timed against each other in lockstep (see `nmt.bench.paired`)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from nmt.bench.paired import main

if __name__ == "__main__":
    raise SystemExit(main())
