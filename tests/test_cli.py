"""The `nmt` command dispatches to the same code as the scripts."""

from __future__ import annotations

import json

import pytest

from nmt.cli import main


def test_nmt_lists_subcommands(capsys):
    with pytest.raises(SystemExit) as e:
        main(["--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert all(name in out for name in ("train", "translate", "score"))


def test_nmt_score_json(tmp_path, capsys):
    hyp, ref = tmp_path / "hyp.txt", tmp_path / "ref.txt"
    text = "the quick brown fox jumps over the lazy dog\n"
    hyp.write_text(text, encoding="utf-8")
    ref.write_text(text, encoding="utf-8")
    assert main(["score", "--hyp", str(hyp), str(ref), "--json"]) == 0
    scores = {s["name"]: s for s in json.loads(capsys.readouterr().out)["scores"]}
    assert scores["BLEU"]["value"] == pytest.approx(100.0)
    assert scores["BLEU"]["signature"].startswith("nrefs:1|case:mixed")


def test_nmt_user_error_exit_code(tmp_path, capsys):
    assert main(["train", "--config", str(tmp_path / "none.yaml"), "--model-dir",
                 str(tmp_path / "m")]) == 2
    err = capsys.readouterr().err
    assert err == f"error: {tmp_path / 'none.yaml'}: config file not found\n"
