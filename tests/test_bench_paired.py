"""`scripts/bench_paired.py`: two checkouts timed in lockstep; here the checkout against
itself, on the small model directory of tests/data."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from nmt.bench.paired import main

ROOT = Path(__file__).resolve().parent.parent
OLD = ROOT / "tests" / "data" / "old_model_dir"


def test_decode_pairs_alternate_and_check_the_output(tmp_path, capsys):
    out = tmp_path / "paired.json"
    assert main(["decode", "--a", str(ROOT), "--b", str(ROOT), "--checkpoint", str(OLD),
                 "--input", str(OLD / "input.txt"), "--lines", "5", "--beam", "2",
                 "--pairs", "3", "--warmup", "1", "--threads", "1", "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    assert result["pairs"] == 3 and len(result["seconds_a"]) == len(result["seconds_b"]) == 3
    assert result["ratio_min"] <= result["ratio_b_over_a"] <= result["ratio_max"]
    assert result["same_output"] and "identical output" in capsys.readouterr().out


@pytest.mark.parametrize("argv, message", [
    (["decode", "--a", str(ROOT), "--b", str(ROOT)], "decode needs --checkpoint and --input"),
    (["decode", "--a", str(ROOT), "--b", str(ROOT), "--checkpoint", str(OLD), "--input",
      str(OLD / "missing.txt")], f"--input {OLD / 'missing.txt'}: no such file"),
    (["train", "--a", str(ROOT), "--b", str(OLD), "--config", str(OLD / "config.yaml")],
     f"--b {OLD}: not a checkout of nmt"),
    (["decode", "--a", str(ROOT), "--b", str(ROOT), "--checkpoint", str(OLD), "--input",
      str(OLD / "input.txt"), "--pairs", "0"], "--pairs: must be >= 1"),
])
def test_bad_input_is_one_line(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {message}") and err.count("\n") == 1
