"""Thin wrapper: train (or resume), tune beam search on dev, score every test set.

    python scripts/bleu_benchmark.py --config data/configs/multi30k_en_de.yaml \\
        --model-dir runs/m30k_en_de --name multi30k-en-de
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from nmt.cli.benchmark import main

if __name__ == "__main__":
    raise SystemExit(main())
