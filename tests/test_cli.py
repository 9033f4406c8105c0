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


def test_a_directory_given_as_a_file_names_the_flag(tmp_path, capsys):
    folder, ref = tmp_path / "folder", tmp_path / "ref.txt"
    folder.mkdir()
    ref.write_text("a b c\n", encoding="utf-8")
    assert main(["score", "--hyp", str(folder), str(ref)]) == 2
    assert capsys.readouterr().err == f"error: --hyp {folder} is a directory, not a file\n"
    assert main(["score", "--hyp", str(ref), str(folder)]) == 2
    assert capsys.readouterr().err == f"error: reference {folder} is a directory, not a file\n"
    assert main(["align", "--checkpoint", str(tmp_path), "--src", str(folder), "--out",
                 str(tmp_path / "out")]) == 2
    assert capsys.readouterr().err == f"error: --src {folder} is a directory, not a file\n"


def test_files_the_package_reads_from_the_repository_exist():
    """Paths computed from a module's location (they move when the module moves)."""
    from nmt.cli.demo import CONFIG

    assert CONFIG.is_file() and CONFIG.name == "demo.yaml"


def test_every_script_runs_its_help(tmp_path):
    """Each script under scripts/ imports and answers --help (a thin wrapper that lost its
    target after a move fails here)."""
    import subprocess
    import sys
    from pathlib import Path

    for script in sorted((Path(__file__).parent.parent / "scripts").glob("*.py")):
        out = subprocess.run([sys.executable, str(script), "--help"], capture_output=True,
                             text=True, cwd=tmp_path, timeout=120)
        assert out.returncode == 0 and "usage" in out.stdout.lower(), (script.name, out.stderr)
