"""Thin wrapper: `python scripts/translate.py ...` is `nmt translate ...`."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from nmt.cli.translate import main

if __name__ == "__main__":
    raise SystemExit(main())
