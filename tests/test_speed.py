"""The speed benchmark runs its phases and reports every figure the issue names."""

from __future__ import annotations

import contextlib
import io
import json
import subprocess
import types
from types import SimpleNamespace

import pytest

from nmt.bench import speed
from nmt.bench.profile import format_ops, profile_run, top_ops
from nmt.bench.speed import CURVE_BUCKETS, length_inputs
from nmt.cli.speed import main
from nmt.config import dump_yaml
from nmt.cpu.matmul import onednn_available
from nmt.data.vocab import load_vocabs
from nmt.errors import NmtError
from nmt.training.run import train
from tests.helpers import WORDS, set_switch, toy_config, write_toy_corpus


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    """A toy corpus with a test split (a copy of dev), its config file and a trained model."""
    tmp = tmp_path_factory.mktemp("speed")
    corpus = write_toy_corpus(tmp / "toy", n_train=300, n_dev=20)
    for side in ("xx", "yy"):
        (corpus / f"test.{side}").write_bytes((corpus / f"dev.{side}").read_bytes())
    cfg = toy_config(corpus, max_steps=4)
    cfg_file = tmp / "toy.yaml"
    cfg_file.write_text(dump_yaml(cfg), encoding="utf-8")
    train(cfg, tmp / "model", quiet=True)
    return SimpleNamespace(corpus=corpus, cfg=cfg, cfg_file=cfg_file, model=tmp / "model")


def test_bench_speed_reports_all_keys(toy, tmp_path, capsys):
    out = tmp_path / "speed.json"
    assert main(["--config", str(toy.cfg_file), "--json", str(out), "--steps", "3", "--warmup",
                 "1", "--threads", "1", "--checkpoint", str(toy.model), "--split",
                 "test", "--ab", "NMT_FUSED_LOSS=0", "--ab-pairs", "1"]) == 0
    result = json.loads(out.read_text(encoding="utf-8"))
    for key in ("matmul_peak_gflops", "train_tokens_per_s", "train_flops_per_token",
                "train_gflops", "train_peak_share", "train_peak_rss_mib", "ab_time_ratio",
                "decode_greedy_sents_per_s", "decode_beam5_sents_per_s", "decode_peak_rss_mib"):
        assert result[key] > 0, key
    # counted FLOPs per token are at least the output projection's forward + backward
    assert result["train_flops_per_token"] > 3 * 2 * 32 * 30
    # the share is a median of per-block ratios against the peaks measured around each block
    peaks, shares = result["matmul_peak_gflops_train"], result["train_block_shares"]
    assert len(shares) == 1 and len(peaks) == 2  # 3 steps: one block, a peak either side
    assert result["train_peak_share"] == pytest.approx(
        result["train_gflops"] / ((peaks[0] + peaks[1]) / 2))
    assert result["train_peak_share_of_max"] == pytest.approx(
        result["train_gflops"] / max(peaks))
    if onednn_available():  # the same, against oneDNN's peak for the same product
        dnn = result["matmul_peak_gflops_onednn_train"]
        assert len(dnn) == 2 and result["matmul_peak_gflops_onednn"] > 0
        assert result["train_peak_share_onednn"] == pytest.approx(
            result["train_gflops"] / ((dnn[0] + dnn[1]) / 2))
    assert "train_tokens_per_s" in capsys.readouterr().out


REAL_RUN = subprocess.run


def run_in_process(cmd: list[str], **kwargs) -> subprocess.CompletedProcess:
    """Stands in for `subprocess.run`: `python -m nmt.bench.speed ARGS` runs in this process (child
    processes cost seconds each to import torch; the test above covers real ones)."""
    if cmd[1:3] != ["-m", "nmt.bench.speed"]:
        return REAL_RUN(cmd, **kwargs)  # e.g. git
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        speed.child_main(cmd[3:])
    return subprocess.CompletedProcess(cmd, 0, out.getvalue(), "")


@pytest.fixture(scope="module")
def curves_run(toy, tmp_path_factory):
    """bench_speed with --curves and --profile, its phases run in this process:
    (the JSON result, what it printed)."""
    out, printed = tmp_path_factory.mktemp("curves") / "speed.json", io.StringIO()
    with pytest.MonkeyPatch.context() as mp, contextlib.redirect_stdout(printed):
        mp.setattr(speed.subprocess, "run", run_in_process)
        mp.setattr(speed, "matmul_peak_gflops", lambda **_: 50.0)  # not what is tested here
        assert main(["--config", str(toy.cfg_file), "--json", str(out), "--steps", "2",
                     "--warmup", "1", "--threads", "1", "--checkpoint", str(toy.model),
                     "--split", "test", "--curves", "--curve-inputs", "3",
                     "--curve-batch-tokens", "60", "120", "240", "--curve-steps", "2",
                     "--profile", "4"]) == 0
    return json.loads(out.read_text(encoding="utf-8")), printed.getvalue()


def test_curves_and_profile_are_stored_and_printed(curves_run):
    result, printed = curves_run
    for key in ("train_curve", "decode_curve", "profile_train", "profile_decode_beam5"):
        assert result[key], key
        assert f"\n{key}" in printed, key
    assert "beam5_ms_per_sent" in printed and "self ms" in printed


def test_decode_curve_has_every_bucket(curves_run):
    curve = curves_run[0]["decode_curve"]
    assert [tuple(p["bucket"]) for p in curve] == list(CURVE_BUCKETS)
    for point in curve:
        lo, hi = point["bucket"]
        assert point["n"] == 3 and lo <= point["mean_src_len"] <= hi
        assert point["greedy_ms_per_sent"] > 0 and point["beam5_ms_per_sent"] > 0


def test_train_curve_has_every_batch_size(curves_run):
    curve = curves_run[0]["train_curve"]
    assert [p["batch_tokens"] for p in curve] == [60, 120, 240]
    for point in curve:
        assert point["tgt_tokens_per_s"] > 0 and point["ms_per_step"] > 0
        assert 0 < point["tgt_tokens_per_step"] <= point["batch_tokens"]


def check_ops_table(rows):
    assert 0 < len(rows) <= 15
    times = [r["self_cpu_ms"] for r in rows]
    assert times == sorted(times, reverse=True)
    assert sum(r["share_pct"] for r in rows) <= 100 + 1e-9
    assert all(r["calls"] >= 1 and r["name"] for r in rows)
    assert len(format_ops(rows, "title").splitlines()) == len(rows) + 2


def test_profile_tables(curves_run):
    result = curves_run[0]
    check_ops_table(result["profile_train"])
    check_ops_table(result["profile_decode_beam5"])
    assert any(r["name"].startswith("aten::") for r in result["profile_train"])
    assert 0 < result["profile_train_product_time_share"] < 1
    assert result["profile_train_peak_gflops"] == 50.0  # the fixture's peak
    assert result["profile_train_share_bound"] == pytest.approx(
        result["profile_train_product_gflops"] / 50.0)


def test_profile_run_times_the_products():
    import torch

    a = torch.randn(256, 256)
    prof = profile_run(lambda: [torch.tanh(a @ a).sum() for _ in range(4)])
    assert 0 < prof.product_ms < prof.wall_ms
    assert any(r["name"] == "aten::mm" for r in prof.ops)


def test_bad_curve_options_fail_before_any_phase(toy, tmp_path, capsys):
    assert main(["--config", str(toy.cfg_file), "--json", str(tmp_path / "x.json"),
                 "--curves", "--curve-inputs", "0"]) == 2
    assert "--curve-inputs" in capsys.readouterr().err


def check_bucket_inputs(lines, n_tokens):
    for lo, hi in CURVE_BUCKETS:
        inputs = length_inputs(lines, n_tokens, lo, hi, 12)
        assert len(inputs) == 12
        assert all(lo <= n_tokens(text) <= hi for text in inputs), (lo, hi)
        assert all(w in WORDS for text in inputs for w in text.split())  # cut between words
        assert length_inputs(lines, n_tokens, lo, hi, 12) == inputs  # deterministic


def test_length_inputs_fall_inside_their_bucket(toy):
    lines = (toy.corpus / "test.xx").read_text(encoding="utf-8").splitlines()
    vocab = load_vocabs(toy.model, toy.cfg.vocab.joint).src
    check_bucket_inputs(lines, lambda text: len(vocab.encode([text])[0]))
    check_bucket_inputs(lines, len)  # characters: words of several tokens each


def test_length_inputs_fail_when_no_text_fits():
    with pytest.raises(NmtError, match="1-10 tokens"):
        length_inputs(["abcdefghijkl", "mnopqrstuvwx"], len, 1, 10, 1)


def test_top_ops_keeps_k_rows():
    import torch

    a = torch.randn(64, 64)
    rows = top_ops(lambda: [torch.tanh(a @ a + 1).sum() for _ in range(3)], k=2)
    assert len(rows) == 2
    assert rows[0]["self_cpu_ms"] >= rows[1]["self_cpu_ms"]


def test_decode_variants_timed_scored_and_compared_with_plain(toy, tmp_path, monkeypatch):
    from nmt.cli.shortlist import main as shortlist_main

    assert shortlist_main(["--model-dir", str(toy.model), "--quiet"]) == 0
    out = tmp_path / "speed.json"
    monkeypatch.setattr(speed.subprocess, "run", run_in_process)
    monkeypatch.setattr(speed, "matmul_peak_gflops", lambda **_: 50.0)
    with contextlib.redirect_stdout(io.StringIO()) as printed:
        assert main(["--config", str(toy.cfg_file), "--json", str(out), "--skip-train",
                     "--threads", "1", "--checkpoint", str(toy.model), "--split", "test",
                     "--variants", "plain,fused,int8,shortlist,int8+shortlist",
                     "--curves", "--curve-inputs", "1"]) == 0
    result = json.loads(out.read_text(encoding="utf-8"))
    assert "train_tokens_per_s" not in result and "train_curve" not in result
    assert result["decode_curve"]  # --skip-train keeps the decoding curve
    variants = result["decode_variants"]
    assert list(variants) == ["plain", "fused", "int8", "shortlist", "int8+shortlist"]
    for modes in variants.values():
        for mode in ("greedy", "beam5"):
            r = modes[mode]
            assert r["sents_per_s"] > 0 and 0 <= r["same_as_plain"] <= 1
            assert r["bleu_signature"].startswith("nrefs:1|case:mixed")
    for mode in ("greedy", "beam5"):  # exact paths agree with plain
        assert variants["plain"][mode]["same_as_plain"] == 1.0
        assert variants["fused"][mode]["same_as_plain"] == 1.0
        assert variants["fused"][mode]["bleu"] == variants["plain"][mode]["bleu"]
    assert "| int8+shortlist |" in printed.getvalue()


def test_variants_need_a_checkpoint_and_known_names(toy, tmp_path, capsys):
    base = ["--config", str(toy.cfg_file), "--json", str(tmp_path / "x.json")]
    assert main([*base, "--variants", "fused"]) == 2
    assert main([*base, "--checkpoint", str(toy.model), "--variants", "fused,fp16"]) == 2
    err = capsys.readouterr().err
    assert "needs --checkpoint" in err and "choose from plain, fused" in err


def test_train_phase_blocks_and_counts_the_timed_batches(toy, monkeypatch):
    """7 steps in blocks of 3: three blocks (3, 3, 1) with four peaks around them, and the
    FLOPs counted on exactly the timed batches: the same as counting them one by one."""
    monkeypatch.setattr(speed, "PEAK_EVERY", 3)
    peaks = iter([40.0, 60.0, 50.0, 30.0])
    dnn_peaks = iter([80.0, 120.0, 100.0, 60.0])
    monkeypatch.setattr(speed, "matmul_peak_gflops", lambda backend="torch", **_: next(
        peaks if backend == "torch" else dnn_peaks))
    counted = []
    real_count = speed.counted_flops
    monkeypatch.setattr(speed, "counted_flops",
                        lambda t, b: counted.append(b) or real_count(t, b))
    result = speed.train_phase(toy.cfg, steps=7, warmup=2)
    assert result["matmul_peak_gflops_train"] == [40.0, 60.0, 50.0, 30.0]
    assert len(result["train_block_shares"]) == 3 and len(counted) == 7
    assert result["train_peak_share_of_max"] == pytest.approx(result["train_gflops"] / 60.0)
    assert result["matmul_peak_gflops_onednn_train"] == [80.0, 120.0, 100.0, 60.0]
    assert result["train_peak_share_onednn"] == pytest.approx(result["train_peak_share"] / 2)


@pytest.mark.parametrize("batch_first", [True, False])
def test_flop_count_includes_lstm_layers(batch_first):
    """torch's counter has no formula for oneDNN's LSTM layers; nmt.bench.flops adds one: a
    bidirectional layer over T x B positions costs 3 x 2 x T B 4H (I + H) per direction
    forward + backward (the counter would report 0 without it)."""
    import torch

    from nmt.bench.flops import count_flops

    lstm = torch.nn.LSTM(12, 8, batch_first=batch_first, bidirectional=True)
    x = torch.randn(5, 7, 12)
    flops = count_flops(lambda: lstm(x)[0].sum().backward())
    assert flops == 2 * 3 * 2 * 5 * 7 * 32 * (12 + 8)


def test_ab_times_both_paths_and_restores_the_switches(toy, tmp_path, monkeypatch, capsys):
    """`--ab`: the switch is overridden for path B only, both paths run the same batches,
    and the switches in force (and the process environment) are as before afterwards."""
    import os

    from nmt.cpu import switches
    from nmt.training.trainer import Trainer

    set_switch(monkeypatch, "NMT_FUSED_LOSS", None)
    before = switches.current()
    monkeypatch.setattr(speed.subprocess, "run", run_in_process)
    monkeypatch.setattr(speed, "matmul_peak_gflops", lambda **_: 50.0)
    paths = []  # the switch in force at every forward and backward (updates included)
    real = Trainer.forward_backward
    monkeypatch.setattr(Trainer, "forward_backward", lambda self, groups: paths.append(
        switches.current().fused_loss) or real(self, groups))
    out = tmp_path / "ab.json"
    assert main(["--config", str(toy.cfg_file), "--json", str(out), "--threads", "1",
                 "--skip-train", "--warmup", "2", "--ab", "NMT_FUSED_LOSS=0",
                 "--ab-pairs", "2"]) == 0
    result = json.loads(out.read_text(encoding="utf-8"))
    assert result["ab_switches"] == {"NMT_FUSED_LOSS": "0"} and result["ab_pairs"] == 2
    assert result["ab_time_ratio_min"] <= result["ab_time_ratio"] <= result["ab_time_ratio_max"]
    assert result["ab_tokens_per_s_a"] > 0 and result["ab_tokens_per_s_b"] > 0
    # warm-up alternates A, B; then pairs A B and B A, 3 batches each
    assert paths == [True, False] + [True] * 3 + [False] * 3 + [False] * 3 + [True] * 3
    assert switches.current() == before and before.fused_loss
    assert "NMT_FUSED_LOSS" not in os.environ  # the A/B never touches the environment
    assert "ab_switches: NMT_FUSED_LOSS=0" in capsys.readouterr().out


def test_ab_rejects_what_is_not_a_switch(toy, tmp_path, capsys):
    for item in ("FUSED_LOSS", "NMT_FUSED_LOS=0"):  # not NAME=VALUE; a misspelt switch
        assert main(["--config", str(toy.cfg_file), "--json", str(tmp_path / "x.json"),
                     "--ab", item]) == 2
        err = capsys.readouterr().err
        assert f"--ab {item!r}" in err and "NMT_PACK_WEIGHTS" in err
        assert len(err.strip().splitlines()) == 1


def test_ab_rejects_a_switch_read_once_per_process(toy, tmp_path, capsys):
    assert main(["--config", str(toy.cfg_file), "--json", str(tmp_path / "x.json"),
                 "--ab", "NMT_SYSTEM_MALLOC=1"]) == 2
    err = capsys.readouterr().err
    assert "--ab 'NMT_SYSTEM_MALLOC=1'" in err and "once per process" in err
    assert len(err.strip().splitlines()) == 1


def test_path_b_overrides_the_switches_and_restores_the_previous_ones(monkeypatch):
    from nmt.bench.ab import parse_switches
    from nmt.cpu import switches

    set_switch(monkeypatch, "NMT_PACK_WEIGHTS", "0")  # switched off before: stays off
    set_switch(monkeypatch, "NMT_FUSED_LOSS", None)
    before = switches.current()
    path_b = parse_switches(["NMT_FUSED_LOSS=0", "NMT_ONEDNN_MATMUL=0"])
    assert path_b.variables == {"NMT_FUSED_LOSS": "0", "NMT_ONEDNN_MATMUL": "0"}
    fake = types.SimpleNamespace(amp=None)  # the trainer: path B leaves its autocast alone
    with path_b.active(fake):
        now = switches.current()
        assert not now.fused_loss and not now.onednn_matmul and not now.pack_weights
    assert switches.current() == before
    assert before.fused_loss and before.onednn_matmul and not before.pack_weights
    with pytest.raises(RuntimeError), path_b.active(fake):  # restored after an error too
        raise RuntimeError
    assert switches.current() == before and fake.amp is None


def test_path_b_bf16_sets_the_trainers_autocast_and_restores_it():
    import torch

    from nmt.bench.ab import parse_switches

    path_b = parse_switches(["AMP=bf16"])
    assert path_b.variables == {"AMP": "bf16"} and path_b.bf16
    fake = types.SimpleNamespace(amp=None)
    with path_b.active(fake):
        assert fake.amp is torch.bfloat16
    assert fake.amp is None


def test_speed_options_are_declared_once_and_passed_on(toy):
    """Every option the phase processes take is on the front end, and `phase_argv` gives a
    phase process the front end's values."""
    import argparse

    from nmt.cli.speed import add_arguments

    front = argparse.ArgumentParser()
    add_arguments(front)
    args = front.parse_args([
        "--config", str(toy.cfg_file), "--json", "x.json", "--data", "d", "--threads", "3",
        "--steps", "4", "--warmup", "0", "--split", "test", "--set", "train.lr=0.1",
        "--set", "train.seed=2", "--curve-inputs", "5", "--curve-batch-tokens", "60", "120",
        "--curve-steps", "6", "--profile", "7", "--variants", "plain,int8", "--ab",
        "NMT_FUSED_LOSS=0", "--ab-pairs", "8", "--checkpoint", "m"])
    child = speed.phase_parser().parse_args(["--phase", "train", *speed.phase_argv(args)])
    shared = {flag[2:].replace("-", "_") for flag, _ in speed.options()}
    assert {k for k in vars(child) if k != "phase"} == shared
    assert all(getattr(child, k) == getattr(args, k) for k in shared)
    defaults = front.parse_args(["--config", "c", "--json", "x.json"])
    child = speed.phase_parser().parse_args(["--phase", "ab", *speed.phase_argv(defaults)])
    assert all(getattr(child, k) == getattr(defaults, k) for k in shared)


def test_bench_speed_help_shows_every_option():
    import sys
    from pathlib import Path

    script = Path(__file__).resolve().parents[1] / "scripts" / "bench_speed.py"
    res = subprocess.run([sys.executable, str(script), "--help"], capture_output=True,
                         text=True, check=True)
    flags = ("--config --data --json --checkpoint --split --steps --warmup --threads --set "
             "--curves --curve-inputs --curve-batch-tokens --curve-steps --profile --variants "
             "--ab --ab-pairs --skip-train").split()
    for flag in {*flags, *(f for f, _ in speed.options())}:
        assert flag in res.stdout, flag
