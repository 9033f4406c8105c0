"""Slow: on the demo task, a run stopped by its step budget and resumed with a larger one is
the same run as one longer run, where the schedule reacts (validations every 100 updates,
lr_patience 0, so every validation without a gain halves the LR; dropout on)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from nmt import checkpoint
from nmt.cli.demo import CONFIG
from nmt.config import load_config
from nmt.data.demo_corpus import write_corpus
from nmt.training.run import train

pytestmark = pytest.mark.slow

SCHEDULE = ["train.max_time=null", "train.max_epochs=100", "train.validate_every=100",
            "train.lr_patience=0", "train.patience=100", "train.num_threads=2"]


def test_demo_650_then_700_equals_700(tmp_path: Path):
    data = tmp_path / "data"
    write_corpus(data, seed=1)
    cfg = load_config(CONFIG, [f"data.path={data}", *SCHEDULE, "train.max_steps=700"])
    assert cfg.model.dropout > 0
    straight = train(cfg, tmp_path / "straight", quiet=True)
    split_cfg = load_config(CONFIG, [f"data.path={data}", *SCHEDULE, "train.max_steps=650"])
    train(split_cfg, tmp_path / "split", quiet=True)
    resumed = train(None, tmp_path / "split", resume=True, quiet=True,
                    train_overrides={"max_steps": 700})
    assert straight.step == resumed.step == 700
    lrs = [h["lr"] for h in straight.history]
    assert len(set(lrs)) > 1, "the schedule never reacted: the test would prove nothing"
    assert [(h["step"], h["dev_bleu"], h["lr"]) for h in resumed.history] == \
        [(h["step"], h["dev_bleu"], h["lr"]) for h in straight.history]
    a = checkpoint.load(tmp_path / "straight" / "last.pt")["model"]
    b = checkpoint.load(tmp_path / "split" / "last.pt")["model"]
    for key in a:
        assert torch.equal(a[key], b[key]), key
