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
from nmt.training.run import train
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
    # metrics.jsonl: the records after the checkpoint (step 9's) were dropped on resume, so
    # the curve is the uninterrupted run's (the checkpoint at 8 is a logging step: same losses)
    assert curve(out) == curve(uninterrupted)


def curve(model_dir: Path) -> list[tuple]:
    from nmt.training.curves import read_metrics

    return [(r["event"], r["step"], r["epoch"], r["lr"], r.get("loss"), r.get("dev_bleu"))
            for r in read_metrics(model_dir)]


def test_metrics_jsonl_records_the_run(uninterrupted):
    records = curve(uninterrupted)
    assert [s for e, s, *_ in records if e == "train"] == list(range(2, 15, 2))  # log_every 2
    assert [s for e, s, *_ in records if e == "validation"] == [5, 10, 13]  # 13: epoch end
    assert [s for e, s, *_ in records if e == "stop"] == [14]
    history = checkpoint.load(uninterrupted / "last.pt")["train_state"]["history"]
    assert [(h["step"], h["dev_bleu"]) for h in history] == \
        [(s, b) for e, s, _, _, _, b in records if e == "validation"]
    assert all(loss > 0 for e, *_, loss, _ in records if e == "train")


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
    res = subprocess.run([sys.executable, str(ROOT / "scripts" / "train.py"), "--resume",
                          str(tmp_path / "nope"), "--max-time", "0"], capture_output=True,
                         text=True, timeout=60)
    assert res.returncode == 2 and res.stderr == "error: --max-time: must be > 0 (got 0.0)\n"


def test_numbered_checkpoints_and_averaging(corpus, tmp_path):
    from nmt.cli.average import main as average_main

    out = tmp_path / "model"
    # validations at 5, 10 and 13 (the epoch's end); the budget stop at 14 is no validation
    train(toy_config(corpus, keep_checkpoints=2), out, quiet=True)
    files = checkpoint.numbered(out)
    assert [f.name for f in files] == ["step10.pt", "step13.pt"]
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
    assert proc.returncode == 130, "".join(err)  # a shell's status for SIGINT, not an error
    stopped_at = checkpoint.load(out / "last.pt")["train_state"]["step"]
    assert 6 <= stopped_at < 14 and err[-1].startswith(f"interrupted at step {stopped_at};")
    assert [line for line in err if "interrupted" in line] == [err[-1]]  # said once
    assert f"interrupted at step {stopped_at};" in (out / "train.log").read_text()
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


def test_budget_stop_then_resume_equals_one_longer_run(corpus, uninterrupted, tmp_path):
    """A run stopped by its budget between validations (step 7), then resumed with a larger
    budget, is the 14-step run: the stop's evaluation must not step the plateau scheduler
    (lr_patience 0 here, so a counted bad validation halves the LR), count toward early
    stopping or keep a numbered checkpoint. Dropout is on."""
    out = tmp_path / "model"
    first = train(toy_config(corpus, max_steps=7), out, quiet=True)
    assert first.step == 7
    assert train(None, out, resume=True, quiet=True, train_overrides={"max_steps": 14}).step == 14
    assert_same_weights(uninterrupted, out)
    assert "evaluation at the stop (the schedule is unchanged): step 7" in (
        out / "train.log").read_text()


def _last(out: Path) -> dict:
    return checkpoint.load(out / "last.pt")


def test_resume_applies_schedule_overrides(corpus, tmp_path):
    """`--set train.lr=...` etc. on resume reach the optimizer and the scheduler (whose
    restored state_dicts would bring back the saved values), and train.log says so."""
    out = tmp_path / "model"
    train(toy_config(corpus, max_steps=4), out, quiet=True)
    assert _last(out)["optimizer"]["param_groups"][0]["lr"] == 3e-3
    new = {"max_steps": 6, "validate_every": 100, "lr": 1e-3, "weight_decay": 0.01,
           "lr_decay": 0.25, "lr_patience": 3, "min_lr": 1e-6}
    train(None, out, resume=True, quiet=True, train_overrides=new)  # no validation in 5..6
    ckpt = _last(out)
    group = ckpt["optimizer"]["param_groups"][0]
    assert (group["lr"], group["weight_decay"]) == (1e-3, 0.01)
    sched = ckpt["scheduler"]
    assert (sched["factor"], sched["patience"], sched["min_lrs"]) == (0.25, 3, [1e-6])
    assert sched["_last_lr"] == [1e-3]
    saved = yaml.safe_load((out / "config.yaml").read_text())["train"]
    assert {k: saved[k] for k in new} == new
    log = (out / "train.log").read_text()
    assert "resume: train.lr 0.003 -> 0.001" in log and "train.lr_decay 0.5 -> 0.25" in log


@pytest.mark.parametrize("key, value", [("seed", 4), ("batch_tokens", 200),
                                        ("lr_schedule", "linear")])
def test_resume_refuses_keys_that_reorder_batches(corpus, tmp_path, key, value):
    """seed and batch_tokens decide the epoch's batch list that resume skips into by count
    (and lr_schedule the LR so far): a change is refused with one line naming the key, and
    config.yaml is left alone."""
    out = tmp_path / "model"
    train(toy_config(corpus, max_steps=4), out, quiet=True)
    before = (out / "config.yaml").read_text()
    with pytest.raises(NmtError, match=rf"^train\.{key} cannot change on resume"):
        train(None, out, resume=True, quiet=True, train_overrides={key: value, "max_steps": 6})
    assert (out / "config.yaml").read_text() == before
    assert _last(out)["train_state"]["step"] == 4


def test_resume_refuses_an_edited_model_section(corpus, tmp_path):
    out = tmp_path / "model"
    train(toy_config(corpus, max_steps=4), out, quiet=True)
    cfg = yaml.safe_load((out / "config.yaml").read_text())
    cfg["model"]["dec_hidden"] = 48
    cfg["data"]["path"] = str(corpus / ".." / corpus.name)  # a moved corpus is fine
    (out / "config.yaml").write_text(yaml.safe_dump(cfg), encoding="utf-8")
    with pytest.raises(NmtError, match=r"config\.yaml: model\.dec_hidden is 48 but the run"):
        train(None, out, resume=True, quiet=True, train_overrides={"max_steps": 6})
    cfg["model"]["dec_hidden"] = 32
    (out / "config.yaml").write_text(yaml.safe_dump(cfg), encoding="utf-8")
    assert train(None, out, resume=True, quiet=True, train_overrides={"max_steps": 6}).step == 6


def test_resume_of_a_finished_run_says_so_before_loading_data(corpus, tmp_path, monkeypatch):
    import nmt.training.trainer as trainer_module

    out = tmp_path / "model"
    train(toy_config(corpus, max_steps=30, patience=1, validate_every=1), out, quiet=True)
    saved = _last(out)["train_state"]
    assert saved["stopped"].startswith("early stopping") and saved["step"] < 30
    steps = saved["step"]

    def no_data(*args, **kwargs):
        raise AssertionError("data loaded for a finished run")

    with monkeypatch.context() as m:
        m.setattr(trainer_module, "prepare_split", no_data)
        with pytest.raises(NmtError, match=r"training has finished \(early stopping.*"
                                           r"raise train\.patience"):
            train(None, out, resume=True, quiet=True)
        with pytest.raises(NmtError, match=rf"training has finished \(max_steps {steps} "
                                           r"reached\); raise the budget"):
            train(None, out, resume=True, quiet=True,
                  train_overrides={"patience": 50, "max_steps": steps})
    # a larger patience lifts the early stop (the new patience would not have made it)
    state = train(None, out, resume=True, quiet=True,
                  train_overrides={"patience": 50, "max_steps": steps + 2})
    assert state.step == steps + 2 and f"max_steps {steps + 2}" in state.stopped


def test_wall_time_counts_the_whole_run(corpus, tmp_path, monkeypatch):
    """max_time counts everything: the evaluation and checkpoint after the last update too
    (a slow final evaluation shows up in the saved wall time)."""
    import time

    from nmt.training.trainer import Trainer

    slow = Trainer.dev_bleu

    def dev_bleu(self):
        if self.state.step == 6:
            time.sleep(1.0)
        return slow(self)

    monkeypatch.setattr(Trainer, "dev_bleu", dev_bleu)
    out = tmp_path / "model"
    start = time.perf_counter()
    train(toy_config(corpus, max_steps=6), out, quiet=True)
    wall = time.perf_counter() - start
    seconds = _last(out)["train_state"]["train_seconds"]
    assert wall - 0.3 < seconds <= wall


def test_numbered_checkpoints_keep_the_best(corpus, tmp_path, monkeypatch):
    """keep_checkpoints N keeps the newest N validations' weights and N around the best."""
    import types

    from nmt.training.trainer import Trainer

    bleu = {1: 1.0, 2: 5.0, 3: 9.0, 4: 3.0, 5: 2.0, 6: 2.0, 7: 1.0, 8: 1.0}

    def scripted(self):
        score = bleu[self.state.step]
        return types.SimpleNamespace(value=score, text=f"BLEU = {score}", signature="s"), []

    monkeypatch.setattr(Trainer, "dev_bleu", scripted)
    out = tmp_path / "model"
    train(toy_config(corpus, max_steps=8, validate_every=1, keep_checkpoints=2), out,
          quiet=True)
    assert [f.name for f in checkpoint.numbered(out)] == \
        ["step3.pt", "step4.pt", "step7.pt", "step8.pt"]
    assert [f.name for f in checkpoint.numbered_around_best(out, 2)] == ["step3.pt", "step4.pt"]
    from nmt.cli.average import main as average_main

    assert average_main(["--model-dir", str(out), "--around-best", "2"]) == 0
    assert checkpoint.load(out / "averaged.pt")["averaged"] == ["step3.pt", "step4.pt"]
    assert average_main(["--model-dir", str(out), "--around-best", "0"]) == 2
