"""DDP on the CPU (gloo, 2 processes under torchrun) equals one process accumulating."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from nmt import checkpoint
from nmt.config import dump_yaml
from nmt.training.distributed import DistInfo, shard
from nmt.training.trainer import train
from tests.helpers import toy_config, write_toy_corpus

ROOT = Path(__file__).resolve().parents[1]


def test_shard_gives_every_rank_the_same_number_of_batches():
    batches = [[i] for i in range(7)]
    parts = [list(shard(batches, DistInfo(rank, 3))) for rank in range(3)]
    assert [len(p) for p in parts] == [3, 3, 3]
    assert parts[0] == [[0], [3], [6]] and parts[1] == [[1], [4], [0]]  # padded by wrapping
    assert list(shard(iter(batches), DistInfo())) == batches
    assert list(shard(iter(batches), DistInfo(1, 3))) == parts[1]  # streams shard the same


def torchrun(cfg_file: Path, model_dir: Path, *extra: str,
             nproc: int = 2) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node",
           str(nproc), str(ROOT / "scripts" / "train.py"), "--quiet", *extra]
    cmd += ["--resume", str(model_dir)] if not cfg_file else ["--config", str(cfg_file),
                                                              "--model-dir", str(model_dir)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    return subprocess.run(cmd, capture_output=True, text=True, timeout=240, env=env)


def weights(model_dir: Path) -> dict:
    return checkpoint.load(model_dir / "last.pt")["model"]


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    corpus = write_toy_corpus(tmp_path_factory.mktemp("toy"))
    base = toy_config(corpus, batch_tokens=60, max_steps=4, validate_every=100,
                      checkpoint_every=100)
    cfg = base.__class__(**{**base.__dict__,
                            "model": base.model.__class__(**{**base.model.__dict__,
                                                             "dropout": 0.0})})
    tmp = tmp_path_factory.mktemp("ddp")
    cfg_file = tmp / "ddp.yaml"
    cfg_file.write_text(dump_yaml(cfg), encoding="utf-8")
    single = tmp / "single"
    accumulate = cfg.__class__(**{**cfg.__dict__, "train": cfg.train.__class__(
        **{**cfg.train.__dict__, "update_freq": 2})})
    train(accumulate, single, quiet=True)
    return cfg_file, single, tmp


def assert_close_weights(a: dict, b: dict) -> None:
    for key in a:
        assert torch.allclose(a[key], b[key], atol=1e-6, rtol=1e-5), key


def test_two_ranks_equal_one_process_with_update_freq_two(setup):
    cfg_file, single, tmp = setup
    res = torchrun(cfg_file, tmp / "ddp")
    assert res.returncode == 0, res.stderr[-2000:]
    state = checkpoint.load(tmp / "ddp" / "last.pt")["train_state"]
    assert state["step"] == 4 and state["batch_in_epoch"] == 4  # 4 updates of 2 batches each
    assert_close_weights(weights(single), weights(tmp / "ddp"))
    assert len(checkpoint.load(tmp / "ddp" / "last.pt")["rng"]) == 2  # one RNG state per rank


def test_resume_under_ddp_equals_uninterrupted(setup):
    cfg_file, single, tmp = setup
    res = torchrun(cfg_file, tmp / "ddp_resumed", "--max-steps", "2")
    assert res.returncode == 0, res.stderr[-2000:]
    assert checkpoint.load(tmp / "ddp_resumed" / "last.pt")["train_state"]["step"] == 2
    res = torchrun(None, tmp / "ddp_resumed", "--max-steps", "4")
    assert res.returncode == 0, res.stderr[-2000:]
    assert_close_weights(weights(single), weights(tmp / "ddp_resumed"))
    # a DDP checkpoint cannot be resumed by a different number of processes: every rank
    # fails with one clear line and the job exits (no hang)
    with pytest.raises(Exception, match="saved by 2 process"):
        train(None, tmp / "ddp_resumed", resume=True, quiet=True,
              train_overrides={"max_steps": 5})
    res = torchrun(None, tmp / "ddp_resumed", "--max-steps", "5", nproc=3)
    assert res.returncode != 0 and "error: " in res.stderr
    assert "was saved by 2 process(es); resume it with as many (this run has 3)" in res.stderr
