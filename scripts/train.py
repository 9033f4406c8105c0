"""Thin wrapper: `python scripts/train.py ...` is `nmt train ...`."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from nmt.cli.train import main

if __name__ == "__main__":
    raise SystemExit(main())
