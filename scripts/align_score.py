"""Thin wrapper: `python scripts/align_score.py --pred FILE --gold FILE` is `nmt align-score`."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from nmt.cli.align_score import main

if __name__ == "__main__":
    raise SystemExit(main())
