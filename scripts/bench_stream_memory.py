"""Peak resident memory of reading a generated corpus: streaming vs in memory
(`nmt.bench.stream_memory`)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from nmt.bench.stream_memory import main

if __name__ == "__main__":
    raise SystemExit(main())
