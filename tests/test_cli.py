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


# ---------------------------------------------------------------------------------------------
# What a new user meets first


def subparsers():
    import argparse

    from nmt.cli import build_parser

    parser, _ = build_parser()
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return parser, action.choices


def test_version(capsys):
    import nmt

    with pytest.raises(SystemExit) as e:
        main(["--version"])
    assert e.value.code == 0 and capsys.readouterr().out == f"nmt {nmt.__version__}\n"


def test_help_lists_every_subcommand(capsys):
    from nmt.cli import COMMANDS

    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    for name, help_text in COMMANDS.items():
        assert f"    {name}" in out and help_text[:40] in out, name
    assert "--version" in out


def test_every_option_of_every_subcommand_has_help():
    import argparse

    parser, commands = subparsers()
    missing = [f"{name} {a.option_strings or a.dest}"
               for name, p in [("nmt", parser), *commands.items()] for a in p._actions
               if not isinstance(a, argparse._SubParsersAction) and not (a.help or "").strip()]
    assert not missing, f"options without help: {missing}"


def test_each_subcommand_names_itself():
    _, commands = subparsers()
    for name, p in commands.items():
        assert p.prog == f"nmt {name}"
        assert p.description.startswith((f"`nmt {name} ", f"`{name} ")), (name, p.description)


def test_benchmark_help_names_nmt_benchmark(capsys):
    with pytest.raises(SystemExit):
        main(["benchmark", "--help"])
    out = capsys.readouterr().out
    assert out.startswith("usage: nmt benchmark ") and "`nmt benchmark --config" in out
    assert "`bleu_benchmark" not in out


def test_align_help_keeps_its_table(capsys):
    with pytest.raises(SystemExit):
        main(["align", "--help"])
    lines = capsys.readouterr().out.splitlines()
    for row in ("  alignments.jsonl     per line:", "  alignments.pharaoh   `i-j`",
                "  alignments.npz       one (T, S) array", "  report.html          one self",
                "  heatmap_{line}.png   with --plot N"):
        assert any(line.startswith(row) for line in lines), row


def test_python_dash_m_nmt(tmp_path):
    import subprocess
    import sys

    import nmt

    out = subprocess.run([sys.executable, "-m", "nmt", "--version"], capture_output=True,
                         text=True, cwd=tmp_path, timeout=120)
    assert out.returncode == 0 and out.stdout == f"nmt {nmt.__version__}\n"
    out = subprocess.run([sys.executable, "-m", "nmt", "translate", "--help"],
                         capture_output=True, text=True, cwd=tmp_path, timeout=120)
    assert out.returncode == 0 and out.stdout.startswith("usage: nmt translate ")


@pytest.mark.parametrize("command, required", [
    ("translate", []), ("align", ["--src", "s", "--out", "o"]), ("train", []),
    ("average", []), ("shortlist", []), ("benchmark", ["--name", "n"]),
])
def test_model_dir_is_the_name_and_checkpoint_its_alias(command, required, capsys):
    _, commands = subparsers()
    p = commands[command]
    repeatable = command in ("translate", "align")
    for spelling in ("--model-dir", "--checkpoint"):
        args = p.parse_args([spelling, "a", *required])
        assert args.model_dir == (["a"] if repeatable else "a")
    if repeatable:  # an ensemble, the two spellings mixed
        args = p.parse_args(["--model-dir", "a", "--checkpoint", "b", *required])
        assert args.model_dir == ["a", "b"]
    usage = p.format_usage()
    assert "--model-dir" in usage and "--checkpoint" not in usage
    assert "--model-dir DIR, --checkpoint DIR" in p.format_help()


def test_plot_without_matplotlib_names_the_readme_install(tmp_path, capsys, monkeypatch):
    from pathlib import Path

    from nmt.alignment import report

    monkeypatch.setattr(report, "have_matplotlib", lambda: False)
    src = tmp_path / "src.txt"
    src.write_text("a b\n", encoding="utf-8")
    assert main(["align", "--model-dir", str(tmp_path), "--src", str(src), "--out",
                 str(tmp_path / "out"), "--plot", "1"]) == 2
    install = ".venv/bin/pip install -e '.[plot]'"
    assert capsys.readouterr().err == f"error: --plot needs matplotlib: {install}\n"
    readme = (Path(__file__).parents[1] / "README.md").read_text(encoding="utf-8")
    assert install in readme


def test_readme_commands_run_from_the_virtual_environment():
    """The README sets up `.venv` and never activates it: every command it shows runs the
    venv's own executables (`.venv/bin/nmt`, `.venv/bin/python`, ...; other tools such as
    curl as they are), and names the model directory `--model-dir`."""
    import re
    from pathlib import Path

    readme = (Path(__file__).parents[1] / "README.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```bash\n(.*?)```", readme, flags=re.S)
    assert len(blocks) >= 10
    commands = []
    for block in blocks:
        continued = False
        for line in block.splitlines():
            if line.strip() and not line.lstrip().startswith("#") and not continued:
                commands.append(line)
            continued = line.rstrip().endswith("\\")
    ours = {"nmt", "python", "pip", "torchrun", "pytest", "ruff"}  # what the venv provides
    bare = [c for c in commands if c.split()[0] in ours]
    assert not bare, f"commands not run from .venv: {bare}"
    assert sum(c.startswith(".venv/bin/nmt ") for c in commands) >= 8
    assert not re.search(r"`(?:\.venv/bin/)?nmt [^`]*--checkpoint", readme)
    assert "nmt translate --checkpoint" not in readme and "nmt align --checkpoint" not in readme
