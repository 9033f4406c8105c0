"""The linear LR schedule: its formula, its horizon from each budget, and exact resume."""

from __future__ import annotations

import dataclasses

import pytest

from nmt import checkpoint
from nmt.config import TrainConfig, from_dict
from nmt.errors import NmtError
from nmt.training.curves import read_metrics
from nmt.training.run import train
from nmt.training.schedule import budget_horizon, linear_lr, time_horizon
from tests.helpers import toy_config, write_toy_corpus
from tests.test_train import assert_same_weights


def test_linear_lr_starts_at_lr_and_falls_to_the_floor():
    tc = TrainConfig(lr=0.01, min_lr=0.001)
    assert linear_lr(tc, 1, 10) == 0.01
    assert linear_lr(tc, 6, 10) == pytest.approx(0.005)
    assert linear_lr(tc, 10, 10) == pytest.approx(0.001)  # 0.001 by the formula too
    assert linear_lr(tc, 11, 10) == 0.001 and linear_lr(tc, 50, 10) == 0.001


def test_horizons_of_each_budget():
    tc = TrainConfig(max_epochs=3, max_steps=None)
    assert budget_horizon(tc, 40) == 120
    assert budget_horizon(dataclasses.replace(tc, max_steps=100), 40) == 100
    assert budget_horizon(dataclasses.replace(tc, max_steps=100), 0) == 100  # streamed
    assert budget_horizon(tc, 0) is None
    # 50 updates took 100 s of run time after 20 s of preparation; 1000 s allow 490 updates
    assert time_horizon(TrainConfig(max_time=1000), 50, 120.0, 20.0) == 490
    assert time_horizon(TrainConfig(max_time=100), 50, 120.0, 20.0) == 50  # never below now


def test_config_names_the_schedule_and_the_missing_budget():
    with pytest.raises(NmtError, match="^train.lr_schedule: 'cosine' is not plateau or linear"):
        from_dict({"train": {"lr_schedule": "cosine"}})
    with pytest.raises(NmtError, match="^train.lr_schedule: linear .* set train.max_steps"):
        from_dict({"data": {"streaming": True}, "train": {"lr_schedule": "linear"}})
    from_dict({"data": {"streaming": True}, "train": {"lr_schedule": "linear", "max_steps": 9}})


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return write_toy_corpus(tmp_path_factory.mktemp("toy"))


def train_lrs(model_dir):
    return {r["step"]: r["lr"] for r in read_metrics(model_dir) if r["event"] == "train"}


def test_linear_to_max_steps_and_resume_is_exact(corpus, tmp_path):
    cfg = toy_config(corpus, lr_schedule="linear", max_steps=14, lr=0.004, min_lr=1e-5)
    whole, parts = tmp_path / "whole", tmp_path / "parts"
    train(cfg, whole, quiet=True)
    # every logged update ran at lr * (1 - (u - 1) / 14)
    lrs = train_lrs(whole)
    assert lrs and all(lr == pytest.approx(0.004 * (1 - (u - 1) / 14)) for u, lr in lrs.items())
    assert checkpoint.load(whole / "last.pt")["train_state"]["lr_horizon"] == 14
    train(cfg, parts, quiet=True, stop_at_step=9)
    train(None, parts, resume=True, quiet=True)
    assert_same_weights(whole, parts)
    assert train_lrs(parts) == lrs


def test_linear_to_max_time_fixes_the_horizon_at_the_first_validation(corpus, tmp_path):
    """With max_time, the LR stays at lr until the first validation (step 5 here), which
    fixes the horizon from the measured rate; max_epochs still bounds it."""
    out = tmp_path / "model"
    cfg = toy_config(corpus, lr_schedule="linear", max_steps=None, max_time=3600, max_epochs=2,
                     lr=0.004)
    state = train(cfg, out, quiet=True)
    log = (out / "train.log").read_text()
    horizon = checkpoint.load(out / "last.pt")["train_state"]["lr_horizon"]
    assert state.step <= horizon  # the two epochs' updates, or fewer (epochs differ a bit)
    assert horizon >= state.step - 2 and f"to 0 at update {horizon} " in log
    lrs = train_lrs(out)
    assert all(lr == 0.004 for u, lr in lrs.items() if u <= 5)
    assert all(lr == pytest.approx(0.004 * (1 - (u - 1) / horizon)) for u, lr in lrs.items()
               if u > 5)
    # the first validation fixed it: a time budget far below the epochs' would win instead
    short = toy_config(corpus, lr_schedule="linear", max_steps=None, max_time=3600,
                       max_epochs=100)
    train(short, tmp_path / "early", quiet=True, stop_at_step=4)
    assert checkpoint.load(tmp_path / "early" / "last.pt")["train_state"]["lr_horizon"] is None
    train(short, tmp_path / "short", quiet=True, stop_at_step=6)
    fixed = checkpoint.load(tmp_path / "short" / "last.pt")["train_state"]["lr_horizon"]
    assert fixed is not None and fixed > 100  # 3600 s at the toy's rate: many updates


def test_plateau_is_the_default_and_keeps_its_decays(corpus, tmp_path):
    cfg = toy_config(corpus, lr=0.004, lr_patience=0, lr_decay=0.5)
    train(cfg, tmp_path / "m", quiet=True)
    st = checkpoint.load(tmp_path / "m" / "last.pt")["train_state"]
    assert st["lr_horizon"] is None
    lrs = [h["lr"] for h in st["history"]]
    assert lrs[0] in (0.004, 0.002) and min(lrs) < 0.004  # a plateau halved it


def test_with_max_time_every_validation_renews_the_horizon(corpus, tmp_path, monkeypatch):
    """The rate-based horizon is estimated again at each validation (here a scripted
    estimate: 20 updates past the validation), and the updates after it follow it."""
    import nmt.training.trainer as trainer_module

    monkeypatch.setattr(trainer_module, "time_horizon", lambda tc, step, *_: step + 20)
    out = tmp_path / "model"
    cfg = toy_config(corpus, lr_schedule="linear", max_steps=None, max_time=3600,
                     max_epochs=100, lr=0.004, min_lr=0.0, validate_every=5, patience=50)
    train(cfg, out, quiet=True, stop_at_step=14)
    st = checkpoint.load(out / "last.pt")["train_state"]
    validated = [h["step"] for h in st["history"]]
    assert len(validated) >= 2
    assert st["lr_horizon"] == validated[-1] + 20
    for u, lr in train_lrs(out).items():
        before = [v for v in validated if v < u]
        if not before:
            assert lr == 0.004
        else:
            assert lr == pytest.approx(0.004 * (1 - (u - 1) / (before[-1] + 20)))
