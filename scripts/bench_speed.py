"""Thin wrapper: `python scripts/bench_speed.py --config data/configs/bench_bahdanau_if.yaml
--data DIR --json runs/speed.json [--checkpoint DIR] [--curves] [--profile N]` (see
`nmt.cli.speed`; `--help` lists every option)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from nmt.cli.speed import main

if __name__ == "__main__":
    raise SystemExit(main())
