"""Thin wrapper: `python scripts/average_checkpoints.py --model-dir DIR --last 5`."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from nmt.cli.average import main

if __name__ == "__main__":
    raise SystemExit(main())
