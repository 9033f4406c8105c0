"""Thin wrapper: `python scripts/inspect_alignments.py ...` is `nmt align ...`."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from nmt.cli.align import main

if __name__ == "__main__":
    raise SystemExit(main())
