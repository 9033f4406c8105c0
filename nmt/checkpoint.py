"""Model directories: a self-contained home for config, subword models and checkpoints.

Layout of a model directory:
    config.yaml          the resolved config (all defaults filled in)
    spm.model            joint sentencepiece model (or spm.src.model + spm.tgt.model)
    last.pt              the latest resume point: model, optimizer, scheduler, RNG, train state
    best.pt              model weights with the best dev BLEU so far
    train.log            one line per log/validation event
Every file is written atomically (temporary file + rename), so a crash leaves the previous
version intact.
"""

from __future__ import annotations

import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch
import yaml

from nmt.config import Config, dump_yaml, from_dict
from nmt.cpu import accelerate
from nmt.data.vocab import Vocabs, load_vocabs
from nmt.errors import NmtError, first_line
from nmt.io import atomic_open
from nmt.model.seq2seq import Seq2Seq, build_model

FORMAT_VERSION = 1


def save(obj: dict[str, Any], path: str | Path) -> None:
    with atomic_open(path, "wb") as f:
        torch.save({"format_version": FORMAT_VERSION, **obj}, f)


def _unsafe_global(error: pickle.UnpicklingError) -> str:
    """The global a refused pickle asked for, from torch's message (its first line else)."""
    for line in str(error).splitlines():
        if "Unsupported global" in line or "GLOBAL" in line:
            return line.strip()[:200]
    return first_line(error)


def load(path: str | Path) -> dict[str, Any]:
    """A checkpoint file, read with `torch.load(weights_only=True)`: tensors, numbers,
    strings and containers of them (all that `save` writes); anything else, such as a pickled
    callable, is refused with one line and never run."""
    path = Path(path)
    if not path.is_file():
        raise NmtError(f"{path}: checkpoint not found")
    try:  # tensors and plain containers only: a downloaded file cannot run code here
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        raise NmtError(f"{path}: refused: it holds more than weights and plain values "
                       f"(loading it would run code: {_unsafe_global(e)})") from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError) as e:
        reason = first_line(e)
        raise NmtError(f"{path}: corrupt or unreadable checkpoint ({reason})") from None
    if not isinstance(obj, dict) or "model" not in obj:
        raise NmtError(f"{path}: not an nmt checkpoint")
    return obj


def write_config(cfg: Config, model_dir: str | Path) -> None:
    with atomic_open(Path(model_dir) / "config.yaml") as f:
        f.write(dump_yaml(cfg))


def read_config(model_dir: str | Path) -> Config:
    path = Path(model_dir) / "config.yaml"
    if not Path(model_dir).is_dir():
        raise NmtError(f"{model_dir}: model directory not found")
    if not path.is_file():
        raise NmtError(f"{path}: not found (is {model_dir} an nmt model directory?)")
    try:
        values = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as e:
        raise NmtError(f"{path}: unreadable config ({e})") from None
    try:
        return from_dict(values)
    except NmtError as e:
        raise NmtError(f"{path}: {e}") from None


def checkpoint_path(model_dir: str | Path, which: str = "best") -> Path:
    """`best` falls back to `last` when no validation has run yet; a .pt path is taken as is."""
    model_dir = Path(model_dir)
    if model_dir.suffix == ".pt":
        return model_dir
    best, last = model_dir / "best.pt", model_dir / "last.pt"
    if which == "best" and best.is_file():
        return best
    if last.is_file() or which == "last":
        return last
    raise NmtError(f"{model_dir}: no checkpoint (looked for {best.name} and {last.name})")


def numbered(model_dir: str | Path) -> list[Path]:
    """The `step{N}.pt` weight files of a model directory, oldest first."""
    files = [p for p in Path(model_dir).glob("step*.pt") if p.stem[4:].isdigit()]
    return sorted(files, key=lambda p: int(p.stem[4:]))


def around(steps: list[int], best: int, n: int) -> list[int]:
    """`n` consecutive entries of the sorted `steps` around `best`: best in the middle (one
    more after it when `n` is even), the window shifted inwards at either end."""
    i = steps.index(best)
    start = max(0, min(i - (n - 1) // 2, len(steps) - n))
    return steps[start: start + n]


def best_validation_step(history: list[dict]) -> int | None:
    """The step of the (first) best scheduled validation in a train state's history."""
    if not history:
        return None
    return max(history, key=lambda h: h["dev_bleu"])["step"]  # max keeps the first of ties


def numbered_around_best(model_dir: str | Path, n: int) -> list[Path]:
    """The `n` step*.pt files around the best validation (`around`, over the files there),
    from last.pt's history; [] when the best validation's weights are not there."""
    history = load(Path(model_dir) / "last.pt")["train_state"]["history"]
    best = best_validation_step(history)
    files = {int(p.stem[4:]): p for p in numbered(model_dir)}
    if best is None or best not in files:
        return []
    return [files[s] for s in around(sorted(files), best, n)]


def average(paths: list[Path]) -> dict[str, Any]:
    """The element-wise mean of the weights in `paths` (same architecture)."""
    if not paths:
        raise NmtError("no checkpoints to average")
    states = [load(p)["model"] for p in paths]
    keys = states[0].keys()
    for p, s in zip(paths[1:], states[1:], strict=True):
        if s.keys() != keys or any(s[k].shape != states[0][k].shape for k in keys):
            raise NmtError(f"{p}: weights do not match {paths[0]} (different architecture)")
    return {k: torch.stack([s[k].double() for s in states]).mean(0).to(states[0][k].dtype)
            for k in keys}


def write_average(model_dir: str | Path, files: list[Path], out: str | Path) -> Path:
    """The mean of `files`' weights (see `average`) as a loadable weights file `out` (inside
    `model_dir`, beside its config and subword models), written atomically."""
    cfg = read_config(model_dir)
    save({"model": average(files), "config": cfg.to_dict(),
          "averaged": [f.name for f in files]}, out)
    return Path(out)


def load_model(model_dir: str | Path, which: str = "best",
               device: str | torch.device = "cpu") -> tuple[Seq2Seq, Config, Vocabs]:
    """Everything translation needs, from a model directory alone. The model is in eval mode."""
    path = checkpoint_path(model_dir, which)
    model_dir = path.parent
    cfg = read_config(model_dir)
    vocabs = load_vocabs(model_dir, cfg.vocab.joint)
    model = build_model(cfg.model, len(vocabs.src), len(vocabs.tgt))
    state = load(path)["model"]
    try:
        model.load_state_dict(state)
    except RuntimeError as e:
        raise NmtError(f"{path}: weights do not match {model_dir / 'config.yaml'} "
                       f"({first_line(e)})") from None
    return model.to(device).eval(), cfg, vocabs


def load_for_inference(checkpoint: str | Path, quantize: bool = False
                       ) -> tuple[Seq2Seq, Config, Vocabs]:
    """`load_model` (a model directory or a .pt file in one) with the CPU kernels attached
    and prepared for decoding (`nmt.cpu.accelerate`; int8 weights with `quantize`)."""
    model, cfg, vocabs = load_model(checkpoint)
    return accelerate(model, training=False, quantize=quantize), cfg, vocabs
