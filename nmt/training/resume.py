"""What may change when a run is resumed, and how each change takes effect.

A resumed run reads `config.yaml` (with `--set train.*` overrides on top) and `last.pt`,
which holds the config the run was trained with so far. Every difference between the two is
either applied for real or refused with one line naming the key, before anything is written:

- budgets and reporting (`max_*`, `patience`, `validate_every`, `checkpoint_every`,
  `log_every`, `keep_checkpoints`): read by the loop as it goes; a raised `patience` also lifts
  an early stop that the new patience would not have made;
- the optimizer and schedule (`lr`, `weight_decay`, `lr_decay`, `lr_patience`, `min_lr`):
  written into the restored optimizer's parameter groups and plateau scheduler, which would
  otherwise bring back the saved values;
- per-update settings (`clip_norm`, `label_smoothing`, `word_dropout`, `update_freq`,
  `num_threads`, `device`, `amp`, `tensorboard`): taken from the next update;
- `seed` and `batch_tokens` are refused: they decide the epoch's batch list, and resume
  skips the batches already trained by count; so is `lr_schedule` (`nmt.training.schedule`);
- outside `train`, only `data.path`, `data.cache_dir`, `data.test_splits` and the `decode`
  section may differ (a moved corpus, other test sets, other dev decoding); the model,
  vocabulary and the rest of the data section are what the weights were trained with.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch

from nmt.config import Config, TrainConfig, from_dict
from nmt.errors import NmtError

# train.* keys that cannot change on resume, and why
FIXED = {
    "seed": "it decides the order of the epoch's batches, and the resumed epoch skips the "
            "batches already trained",
    "batch_tokens": "it decides how the epoch is cut into batches, and the resumed epoch skips "
                    "the batches already trained",
    "lr_schedule": "the LR so far and the schedule's saved horizon belong to the schedule the "
                   "run began with",
}
# keys outside `train` that may change (the rest describes what the weights were trained on)
MOVABLE = {("data", "path"), ("data", "cache_dir"), ("data", "test_splits")}
FREE_SECTIONS = {"train", "decode"}


def stop_reason(tc: TrainConfig, step: int, epoch: int, seconds: float,
                early_stop: str = "") -> str:
    """Why training must stop now ('' if it can go on), from the budgets in `tc`."""
    if early_stop:
        return early_stop
    if tc.max_steps is not None and step >= tc.max_steps:
        return f"max_steps {tc.max_steps} reached"
    if tc.max_time is not None and seconds >= tc.max_time:
        return f"max_time {tc.max_time:g}s reached"
    if epoch >= tc.max_epochs:
        return f"max_epochs {tc.max_epochs} reached"
    return ""


def early_stop_after(tc: TrainConfig, bad_validations: int) -> str:
    """The early-stopping verdict for `bad_validations` validations without a gain."""
    if bad_validations >= tc.patience:
        return f"early stopping: no dev BLEU gain in {bad_validations} validations"
    return ""


def finished_reason(cfg: Config, train_state: dict[str, Any]) -> str:
    """Why a saved run cannot go on under `cfg`'s budgets ('' if it can), read from
    `last.pt`'s train state before any data is loaded."""
    tc, st = cfg.train, train_state
    early = early_stop_after(tc, st["bad_validations"]) if st.get("early_stop") else ""
    return stop_reason(tc, st["step"], st["epoch"], st["train_seconds"], early)


def check_config(saved: dict[str, Any], cfg: Config, where: str) -> list[str]:
    """The train.* keys whose value differs from the saved run's (as 'key old -> new');
    raises NmtError naming the first key that cannot change."""
    before = from_dict(saved)
    for section in dataclasses.fields(Config):
        if section.name in FREE_SECTIONS:
            continue
        old, new = getattr(before, section.name), getattr(cfg, section.name)
        for f in dataclasses.fields(old):
            a, b = getattr(old, f.name), getattr(new, f.name)
            if a != b and (section.name, f.name) not in MOVABLE:
                raise NmtError(f"{where}: {section.name}.{f.name} is {b!r} but the run in "
                               f"last.pt was trained with {a!r}; only train.*, decode.* and "
                               "data.path can change on resume (start a new run to change it)")
    changed = []
    for f in dataclasses.fields(TrainConfig):
        a, b = getattr(before.train, f.name), getattr(cfg.train, f.name)
        if a == b:
            continue
        if f.name in FIXED:
            raise NmtError(f"train.{f.name} cannot change on resume ({a!r} -> {b!r}): "
                           f"{FIXED[f.name]}; start a new run to change it")
        changed.append(f.name)
    return changed


def apply_schedule(tc: TrainConfig, optimizer: torch.optim.Optimizer,
                   scheduler: torch.optim.lr_scheduler.ReduceLROnPlateau,
                   changed: list[str]) -> None:
    """Write the changed optimizer/schedule keys into the restored optimizer and scheduler
    (their state_dicts bring back the saved values)."""
    for group in optimizer.param_groups:
        if "lr" in changed:
            group["lr"] = tc.lr
            group["initial_lr"] = tc.lr
        if "weight_decay" in changed:
            group["weight_decay"] = tc.weight_decay
    if "lr" in changed:
        scheduler._last_lr = [g["lr"] for g in optimizer.param_groups]
    if "lr_decay" in changed:
        scheduler.factor = tc.lr_decay
    if "lr_patience" in changed:
        scheduler.patience = tc.lr_patience
    if "min_lr" in changed:
        scheduler.default_min_lr = tc.min_lr
        scheduler.min_lrs = [tc.min_lr] * len(optimizer.param_groups)
