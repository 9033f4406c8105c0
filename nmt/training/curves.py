"""Training curves: `metrics.jsonl` beside `train.log`, and optionally TensorBoard.

One JSON object per line, each with `event`, `step`, `epoch` (fractional), `minutes` (wall
time of the whole run, as `max_time` counts it) and `lr`:
- `"train"` (every `log_every` updates): `loss` (per target token, label-smoothed, over the
  updates since the last record), `tokens_per_s`;
- `"validation"` (scheduled): `dev_bleu`, `best` (whether it is the best so far);
- `"stop"` (the evaluation at a budget stop, outside the schedule): `dev_bleu`.

A resumed run first drops the records after its checkpoint's step (they were written by the
part of the run that was lost), so the file of a resumed run holds the same steps as that of
a run never stopped. TensorBoard (`train.tensorboard: true`, the `tensorboard` package) gets
the same scalars under `runs/` in the model directory; it is imported only then.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from nmt.errors import NmtError
from nmt.io import atomic_open

FILE = "metrics.jsonl"


class MetricsLog:
    """Appends records to `model_dir/metrics.jsonl` (and TensorBoard when asked)."""

    def __init__(self, model_dir: Path, tensorboard: bool = False):
        self.path = Path(model_dir) / FILE
        self.writer = _tensorboard_writer(Path(model_dir) / "runs") if tensorboard else None

    def truncate_after(self, step: int) -> None:
        """Drop the records of steps after `step` (a resume from `step`'s checkpoint)."""
        if not self.path.exists():
            return
        records = read_metrics(self.path.parent)
        kept = [r for r in records if r["step"] <= step]
        if len(kept) != len(records):
            with atomic_open(self.path) as f:
                f.write("".join(json.dumps(r) + "\n" for r in kept))

    def write(self, event: str, **values: Any) -> None:
        record = {"event": event, **values}
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")
        if self.writer is not None:
            for key, value in values.items():
                if key not in ("step", "epoch", "best") and isinstance(value, (int, float)):
                    self.writer.add_scalar(f"{event}/{key}", value, values["step"])
            self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


def _tensorboard_writer(log_dir: Path):
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise NmtError("train.tensorboard: true needs the tensorboard package: "
                       ".venv/bin/pip install -e '.[tensorboard]'") from None
    return SummaryWriter(log_dir=str(log_dir))


def read_metrics(model_dir: str | Path) -> list[dict[str, Any]]:
    """The records of `model_dir/metrics.jsonl`; a malformed line is one error naming it."""
    path = Path(model_dir) / FILE
    if not path.is_file():
        raise NmtError(f"{path}: not found (is {model_dir} a model directory trained by "
                       "this version of nmt?)")
    records = []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as e:
                raise NmtError(f"{path}:{n}: not a JSON object ({e.msg})") from None
            if not isinstance(record, dict) or not isinstance(record.get("step"), int) \
                    or not isinstance(record.get("event"), str):
                raise NmtError(f"{path}:{n}: a record needs an integer 'step' and an 'event'")
            records.append(record)
    return records
