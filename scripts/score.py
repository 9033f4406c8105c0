"""Score a hypothesis file against references: `python scripts/score.py --hyp FILE REF...`."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from nmt.cli.score import main

raise SystemExit(main())
