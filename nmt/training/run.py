"""`train()`: a training run from a config or a model directory, fresh or resumed.

A fresh run writes `config.yaml` and trains the subword models (`prepare_model_dir`), then
hands over to the loop (`nmt.training.trainer.Trainer`). A resumed run reads `config.yaml`
(with `--set train.*` overrides) and `last.pt` once, refuses a finished run or an
unchangeable key before any data is loaded (`nmt.training.resume`), and restores the loop.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

from nmt import checkpoint
from nmt.config import Config
from nmt.data.vocab import load_vocabs
from nmt.errors import NmtError
from nmt.training import distributed, resume
from nmt.training.trainer import Trainer, TrainState, prepare_model_dir


def train(cfg: Config | None, model_dir: str | Path, *, resume: bool = False,
          train_overrides: dict | None = None, quiet: bool = False,
          stop_at_step: int | None = None) -> TrainState:
    """Train into `model_dir`; with `resume`, continue the run saved there.

    `train_overrides` replaces fields of the `train` section on resume (budgets, say); each
    is applied or refused as `nmt.training.resume` says, and `config.yaml` is rewritten only
    once the resumed run has taken them.
    """
    started = time.perf_counter()
    model_dir = Path(model_dir)
    info = distributed.init()
    try:
        ckpt, changed = None, []
        if resume:
            cfg = checkpoint.read_config(model_dir)
            if train_overrides:
                cfg = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train,
                                                                         **train_overrides))
            if (model_dir / "last.pt").exists():  # read once; refusals before any data
                ckpt = checkpoint.load(model_dir / "last.pt")
                changed = _check_resume(cfg, model_dir, ckpt)
        else:
            assert cfg is not None
            if info.is_main:  # sentencepiece is trained once, then every rank loads it
                prepare_model_dir(cfg, model_dir, quiet)
            distributed.barrier(info)
        vocabs = load_vocabs(model_dir, cfg.vocab.joint)
        trainer = Trainer(cfg, model_dir, vocabs, quiet, info, started)
        if ckpt is not None:
            trainer.restore(ckpt, changed)
            del ckpt  # the weights now live in the model
        if resume and info.is_main:
            checkpoint.write_config(cfg, model_dir)
        state = trainer.run(stop_at_step)
    except BaseException:
        distributed.shutdown(info, clean=False)
        raise
    distributed.shutdown(info)
    return state


def _check_resume(cfg: Config, model_dir: Path, ckpt: dict) -> list[str]:
    """Before any data is loaded: one line when the run of `ckpt` (last.pt) has ended and
    the budgets in `cfg` would not let it go on, or when `cfg` changes a key that cannot
    change (`resume.check_config`). Returns the train.* keys to apply."""
    _refuse_finished(cfg, model_dir, ckpt["train_state"])
    return resume.check_config(ckpt["config"], cfg, str(model_dir / "config.yaml"))


def _refuse_finished(cfg: Config, model_dir: Path, saved: dict) -> None:
    if not saved.get("stopped"):
        return
    why = resume.finished_reason(cfg, saved)
    if why.startswith("early stopping"):
        raise NmtError(f"{model_dir}: training has finished ({why}); raise train.patience "
                       "(--set train.patience=N) to train on")
    if why:
        raise NmtError(f"{model_dir}: training has finished ({why}); raise the budget "
                       "(--max-steps, --max-time or --max-epochs) to train on")
