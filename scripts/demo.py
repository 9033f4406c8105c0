"""The quick-start demo: generate the toy corpus, train, score the test set, translate a sample.

    python scripts/demo.py [--out runs/demo]

Leaves the model directory at OUT/model (usable with scripts/translate.py --checkpoint).
Running it again reuses the corpus and resumes (or reuses) the model.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from nmt.cli.demo import main

if __name__ == "__main__":
    raise SystemExit(main())
