"""Write the generated English→German demo corpus: `python scripts/make_demo_data.py --out DIR`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from nmt.data.demo_corpus import write_corpus  # noqa: E402
from nmt.errors import NmtError  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    """Parse arguments, write {train,dev,test}.{en,de,align}, print each file; 0 on success."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", default="data/demo", help="output directory (default data/demo)")
    parser.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    parser.add_argument("--train", type=int, default=20000, help="training pairs (default 20000)")
    parser.add_argument("--dev", type=int, default=500, help="dev pairs (default 500)")
    parser.add_argument("--test", type=int, default=500, help="test pairs (default 500)")
    args = parser.parse_args(argv)
    try:
        written = write_corpus(args.out, seed=args.seed, n_train=args.train, n_dev=args.dev,
                               n_test=args.test)
    except (NmtError, ValueError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    sizes = {"train": args.train, "dev": args.dev, "test": args.test}
    for name, path in written.items():
        print(f"wrote {path} ({sizes[name.split('.')[0]]} lines)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
