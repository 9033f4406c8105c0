"""`scripts/bench_paired.py`: two checkouts timed in lockstep; here the checkout against
itself, on the small model directory of tests/data."""

from __future__ import annotations

import json
from pathlib import Path

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


def test_missing_options_are_one_line(capsys):
    assert main(["decode", "--a", str(ROOT), "--b", str(ROOT)]) == 2
    assert capsys.readouterr().err == "error: decode needs --checkpoint and --input\n"
