"""`scripts/bench_ddp.py` (`nmt.bench.ddp`): one process against N gloo processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from nmt.bench import ddp
from nmt.config import dump_yaml
from tests.helpers import toy_config, write_toy_corpus

ROOT = Path(__file__).resolve().parents[1]


def test_both_runs_are_nmt_train_and_their_logs_give_the_figures(tmp_path, monkeypatch):
    """The runs are `nmt train` (python -m nmt.cli, under torchrun for N processes) with the
    same global batch; tokens/s is the mean logged after the warm-up steps."""
    runs = []

    def fake_run(cmd, threads, log):  # writes the train.log the run would have written
        runs.append((cmd, threads))
        model_dir = Path(cmd[cmd.index("--model-dir") + 1])
        model_dir.mkdir()
        rate = 100 if len(runs) == 1 else 150
        (model_dir / "train.log").write_text("".join(
            f"2026-01-01 00:00:00 step {s} epoch 1 loss 1.0 tokens/s {rate + s}\n"
            for s in (5, 10, 15)))

    monkeypatch.setattr(ddp, "run_logged", fake_run)
    work = tmp_path / "work"
    (work / "stale").mkdir(parents=True)
    out = tmp_path / "ddp.json"
    assert ddp.main(["--config", "c.yaml", "--procs", "2", "--steps", "15", "--warmup", "5",
                     "--threads", "4", "--work", str(work), "--json", str(out)]) == 0
    (one, one_threads), (multi, multi_threads) = runs
    assert one[1:4] == ["-m", "nmt.cli", "train"] and "train.update_freq=2" in one
    assert multi[1:3] == ["-m", "torch.distributed.run"] and "--nproc_per_node=2" in multi
    assert multi[multi.index("-m", 3):][:3] == ["-m", "nmt.cli", "train"]
    assert "train.update_freq=2" not in multi and "train.max_steps=15" in multi
    assert (one_threads, multi_threads) == (4, 2)
    assert not any("scripts" in part for part in one + multi)
    assert not (work / "stale").exists()  # the work folder is emptied first
    result = json.loads(out.read_text(encoding="utf-8"))
    assert result["one_process_tokens_per_s"] == 112.5  # steps 10 and 15
    assert result["multi_process_tokens_per_s"] == 162.5
    assert result["speedup"] == pytest.approx(162.5 / 112.5)


def test_a_log_without_rates_after_the_warmup_is_one_error_line(tmp_path, capsys, monkeypatch):
    def fake_run(cmd, threads, log):
        model_dir = Path(cmd[cmd.index("--model-dir") + 1])
        model_dir.mkdir()
        (model_dir / "train.log").write_text("step 5 epoch 1 loss 1.0 tokens/s 100\n")

    monkeypatch.setattr(ddp, "run_logged", fake_run)
    assert ddp.main(["--config", "c.yaml", "--warmup", "5", "--work", str(tmp_path / "w")]) == 2
    err = capsys.readouterr().err.strip()
    assert "no tokens/s logged after step 5" in err and len(err.splitlines()) == 1


def test_python_m_nmt_cli_runs_the_nmt_command(tmp_path):
    res = subprocess.run([sys.executable, "-m", "nmt.cli", "train", "--help"], cwd=tmp_path,
                         env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True,
                         text=True, check=False)
    assert res.returncode == 0 and "--model-dir" in res.stdout


@pytest.mark.slow
def test_bench_ddp_script_end_to_end(tmp_path):
    corpus = write_toy_corpus(tmp_path / "toy", n_train=200, n_dev=10)
    cfg = tmp_path / "toy.yaml"
    cfg.write_text(dump_yaml(toy_config(corpus, batch_tokens=60)), encoding="utf-8")
    out = tmp_path / "ddp.json"
    res = subprocess.run([sys.executable, str(ROOT / "scripts" / "bench_ddp.py"), "--config",
                          str(cfg), "--procs", "2", "--steps", "12", "--warmup", "2",
                          "--threads", "2", "--work", str(tmp_path / "work"), "--json",
                          str(out)], capture_output=True, text=True, timeout=600, check=False)
    assert res.returncode == 0, res.stderr
    result = json.loads(out.read_text(encoding="utf-8"))
    assert json.loads(res.stdout) == result
    assert result["one_process_tokens_per_s"] > 0 and result["multi_process_tokens_per_s"] > 0
