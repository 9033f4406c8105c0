"""Training: resume equals uninterrupted (in process and after SIGKILL), budgets, errors."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from nmt import checkpoint
from nmt.config import dump_yaml
from nmt.errors import NmtError
from nmt.training.trainer import train
from tests.helpers import toy_config, write_toy_corpus

ROOT = Path(__file__).resolve().parents[1]


def assert_same_weights(dir_a: Path, dir_b: Path) -> None:
    a, b = checkpoint.load(dir_a / "last.pt"), checkpoint.load(dir_b / "last.pt")
    assert a["model"].keys() == b["model"].keys()
    for key in a["model"]:
        assert torch.equal(a["model"][key], b["model"][key]), key
    for key in ("step", "epoch", "batch_in_epoch", "best_bleu", "best_step", "bad_validations"):
        assert a["train_state"][key] == b["train_state"][key], key
    hist = [(h["step"], h["dev_bleu"], h["lr"]) for h in a["train_state"]["history"]]
    assert hist == [(h["step"], h["dev_bleu"], h["lr"]) for h in b["train_state"]["history"]]
    torch.testing.assert_close(a["optimizer"]["state"], b["optimizer"]["state"], rtol=0, atol=0)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    return write_toy_corpus(tmp_path_factory.mktemp("toy"))


@pytest.fixture(scope="module")
def uninterrupted(corpus, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("run") / "model"
    state = train(toy_config(corpus), out, quiet=True)
    assert state.step == 14 and state.epoch >= 1  # the run crosses an epoch boundary
    return out


def test_model_dir_is_self_contained(uninterrupted):
    names = {p.name for p in uninterrupted.iterdir()}
    assert {"config.yaml", "spm.src.model", "spm.tgt.model", "last.pt", "best.pt",
            "train.log"} <= names
    assert not [n for n in names if n.endswith(".tmp")]
    model, cfg, vocabs = checkpoint.load_model(uninterrupted)
    assert cfg.train.max_steps == 14 and not model.training and len(vocabs.tgt) > 10


def test_resume_equals_uninterrupted(corpus, uninterrupted, tmp_path):
    out = tmp_path / "model"
    train(toy_config(corpus), out, quiet=True, stop_at_step=9)  # "killed" after step 9
    saved = checkpoint.load(out / "last.pt")["train_state"]
    assert saved["step"] == 8 and saved["batch_in_epoch"] > 0  # resume point mid-epoch
    state = train(None, out, resume=True, quiet=True)
    assert state.step == 14
    assert_same_weights(uninterrupted, out)


TRAIN = [sys.executable, str(ROOT / "scripts" / "train.py")]
ENV = {**os.environ, "PYTHONUNBUFFERED": "1"}


def start_training(corpus: Path, tmp_path: Path) -> tuple[subprocess.Popen, Path]:
    """`scripts/train.py` on the toy config in a child process, its stderr piped."""
    cfg_file = tmp_path / "toy.yaml"
    cfg_file.write_text(dump_yaml(toy_config(corpus)), encoding="utf-8")
    out = tmp_path / "model"
    proc = subprocess.Popen(TRAIN + ["--config", str(cfg_file), "--model-dir", str(out)],
                            stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True, env=ENV)
    return proc, out


def test_sigkill_then_resume_equals_uninterrupted(corpus, uninterrupted, tmp_path):
    """A real process killed with SIGKILL mid-run, resumed from the command line."""
    proc, out = start_training(corpus, tmp_path)
    for line in proc.stderr:
        if "checkpoint: step 4 saved" in line:
            proc.send_signal(signal.SIGKILL)
            break
    proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL
    killed_at = checkpoint.load(out / "last.pt")["train_state"]["step"]
    assert 4 <= killed_at < 14
    done = subprocess.run(TRAIN + ["--resume", str(out), "--quiet"], capture_output=True,
                          text=True, env=ENV, timeout=120)
    assert done.returncode == 0, done.stderr
    assert_same_weights(uninterrupted, out)


def test_budget_override_on_resume_continues(corpus, tmp_path):
    out = tmp_path / "model"
    first = train(toy_config(corpus, max_steps=6), out, quiet=True)
    assert first.step == 6 and "max_steps" in first.stopped
    again = train(None, out, resume=True, quiet=True, train_overrides={"max_steps": 9})
    assert again.step == 9
    assert yaml.safe_load((out / "config.yaml").read_text())["train"]["max_steps"] == 9


def test_fresh_run_refuses_existing_run(corpus, uninterrupted):
    with pytest.raises(NmtError, match="--resume"):
        train(toy_config(corpus), uninterrupted, quiet=True)


def test_cli_errors_are_one_line(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("model:\n  hidden: 3\n", encoding="utf-8")
    res = subprocess.run([sys.executable, str(ROOT / "scripts" / "train.py"), "--config",
                          str(bad), "--model-dir", str(tmp_path / "m")], capture_output=True,
                         text=True, timeout=60)
    assert res.returncode == 2
    assert res.stderr.count("\n") == 1 and "unknown key 'hidden'" in res.stderr
    res = subprocess.run([sys.executable, str(ROOT / "scripts" / "train.py"), "--resume",
                          str(tmp_path / "nope")], capture_output=True, text=True, timeout=60)
    assert res.returncode == 2 and res.stderr.startswith("error: ") and "nope" in res.stderr


def test_numbered_checkpoints_and_averaging(corpus, tmp_path):
    from nmt.cli.average import main as average_main

    out = tmp_path / "model"
    train(toy_config(corpus, keep_checkpoints=2), out, quiet=True)  # validations at 5, 10, 13, 14
    files = checkpoint.numbered(out)
    assert [f.name for f in files] == ["step13.pt", "step14.pt"]
    assert average_main(["--model-dir", str(out), "--last", "2"]) == 0
    averaged = checkpoint.load(out / "averaged.pt")["model"]
    a, b = (checkpoint.load(f)["model"] for f in files)
    for key in a:
        torch.testing.assert_close(averaged[key], (a[key] + b[key]) / 2)
    model, _, _ = checkpoint.load_model(out / "averaged.pt")
    assert torch.equal(model.state_dict()["generator.weight"], averaged["generator.weight"])
    assert average_main(["--model-dir", str(tmp_path), "--last", "2"]) == 2


def test_ctrl_c_saves_then_resume_equals_uninterrupted(corpus, uninterrupted, tmp_path):
    proc, out = start_training(corpus, tmp_path)
    err = []
    for line in proc.stderr:
        err.append(line)
        if line.startswith("step 6 "):  # a log line (log_every 2): interrupt once, mid-run
            proc.send_signal(signal.SIGINT)
    proc.wait(timeout=60)
    assert proc.returncode == 2 and "interrupted at step" in err[-1], "".join(err)
    stopped_at = checkpoint.load(out / "last.pt")["train_state"]["step"]
    assert 6 <= stopped_at < 14 and f"interrupted at step {stopped_at};" in err[-1]
    assert train(None, out, resume=True, quiet=True).step == 14
    assert_same_weights(uninterrupted, out)


def test_resume_says_when_exactness_conditions_differ(corpus, tmp_path):
    """last.pt records the kernel switches and thread count; a resume under others says so
    in one line of train.log (and a resume under the same ones does not)."""
    from nmt.cpu import switches

    out = tmp_path / "model"
    train(toy_config(corpus, max_steps=4, checkpoint_every=2), out, quiet=True)
    train(None, out, resume=True, quiet=True, train_overrides={"max_steps": 6})
    assert "not bit-exactly" not in (out / "train.log").read_text()
    with switches.override(fused_loss=False):
        train(None, out, resume=True, quiet=True, train_overrides={"max_steps": 8})
    lines = [line for line in (out / "train.log").read_text().splitlines()
             if "not bit-exactly" in line]
    assert len(lines) == 1
    assert "default kernel switches" in lines[0] and "NMT_FUSED_LOSS=0" in lines[0]
