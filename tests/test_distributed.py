"""DDP on the CPU (gloo, 2 processes under torchrun) equals one process accumulating, and a
resumed DDP job (dropout on) equals an uninterrupted one."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from nmt import checkpoint
from nmt.config import dump_yaml, load_config
from nmt.training.distributed import DistInfo, shard
from nmt.training.run import train
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
    rng = checkpoint.load(tmp / "ddp" / "last.pt")["rng"]
    assert len(rng) == 2  # one RNG state per rank
    # seeded apart after the (shared) initialisation: even with dropout 0 (no draws since),
    # the ranks' streams differ, so their dropout masks would not be copies of each other
    assert not torch.equal(rng[0]["cpu"], rng[1]["cpu"])


@pytest.fixture(scope="module")
def dropout_runs(setup):
    """With dropout 0.1 (so each rank draws its masks from its own RNG stream): a 6-step DDP
    run, and one stopped after 4 steps and resumed to 6. Returns their model dirs and the
    RNG states the stopped run saved (each rank's stream is seeded apart after the shared
    initialisation, see `Trainer`)."""
    no_dropout, _, tmp = setup
    cfg = load_config(no_dropout)
    cfg = dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, dropout=0.1))
    cfg_file = tmp / "ddp_dropout.yaml"
    cfg_file.write_text(dump_yaml(cfg), encoding="utf-8")
    whole, resumed = tmp / "dropout_whole", tmp / "dropout_resumed"
    for res in (torchrun(cfg_file, whole, "--max-steps", "6"),
                torchrun(cfg_file, resumed, "--max-steps", "4")):
        assert res.returncode == 0, res.stderr[-2000:]
    saved = checkpoint.load(resumed / "last.pt")
    assert saved["train_state"]["step"] == 4
    res = torchrun(None, resumed, "--max-steps", "6")
    assert res.returncode == 0, res.stderr[-2000:]
    return whole, resumed, saved["rng"]


def test_resume_under_ddp_with_dropout_equals_uninterrupted(dropout_runs):
    """Each rank gets back its own RNG state: rank 1 restarting from rank 0's would draw
    other masks, and the weights would differ."""
    whole, resumed, rng = dropout_runs
    # one state per rank, and they differ (so the check can fail)
    assert len(rng) == 2 and not torch.equal(rng[0]["cpu"], rng[1]["cpu"])
    assert checkpoint.load(resumed / "last.pt")["train_state"]["step"] == 6
    assert_close_weights(weights(whole), weights(resumed))


def test_a_ddp_checkpoint_resumes_only_with_as_many_processes(dropout_runs):
    _, resumed, _ = dropout_runs
    with pytest.raises(Exception, match="saved by 2 process"):
        train(None, resumed, resume=True, quiet=True, train_overrides={"max_steps": 7})


@pytest.mark.slow  # one more torchrun launch (~6-15 s); the message is checked above
def test_resuming_with_more_processes_fails_on_every_rank(dropout_runs):
    """Every rank fails with one clear line and the job exits (no hang)."""
    _, resumed, _ = dropout_runs
    res = torchrun(None, resumed, "--max-steps", "7", nproc=3)
    assert res.returncode != 0 and "error: " in res.stderr
    assert "was saved by 2 process(es); resume it with as many (this run has 3)" in res.stderr
