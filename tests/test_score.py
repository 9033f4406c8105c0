"""Tests for nmt.metrics and the `score` command."""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path

import pytest
import sacrebleu

from nmt.cli.guard import run_guarded
from nmt.cli.score import main
from nmt.errors import NmtError
from nmt.metrics import Score, corpus_bleu, corpus_scores, format_score

REPO = Path(__file__).resolve().parents[1]

SENTS = [
    "The quick brown fox jumps over the lazy dog .",
    "A stitch in time saves nine , they say .",
    "Machine translation is fun when it works .",
]


def write(path: Path, lines: list[str]) -> str:
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return str(path)


def by_name(scores: list[Score]) -> dict[str, Score]:
    return {s.name: s for s in scores}


# --- nmt.metrics ----------------------------------------------------------------------


def test_identical_is_perfect():
    s = by_name(corpus_scores(SENTS, [SENTS]))
    assert list(s) == ["BLEU", "chrF", "TER"]
    assert s["BLEU"].value == pytest.approx(100.0)
    assert s["chrF"].value == pytest.approx(100.0)
    assert s["TER"].value == pytest.approx(0.0)
    assert s["BLEU"].text.startswith("BLEU = 100.00 ")
    for score in s.values():
        assert "nrefs:1|case:mixed|" in score.signature
        assert "version:" + sacrebleu.__version__ in score.signature


def test_hand_computed_one_substitution():
    # 6 tokens, last one wrong: precisions 5/6, 4/5, 3/4, 2/3; BP = 1 -> BLEU = (1/3)^(1/4).
    s = by_name(corpus_scores(["a b c d e f"], [["a b c d e g"]]))
    assert s["BLEU"].value == pytest.approx(100 * (1 / 3) ** 0.25)
    assert s["TER"].value == pytest.approx(100 / 6)  # one edit over 6 reference words
    assert 0 < s["chrF"].value < 100


def test_lowercase_changes_score_and_signature():
    hyps, refs = ["THE CAT SAT ON THE MAT ."], [["the cat sat on the mat ."]]
    cased = by_name(corpus_scores(hyps, refs))
    lower = by_name(corpus_scores(hyps, refs, lowercase=True))
    for name in ("BLEU", "chrF"):
        assert cased[name].value < 50
        assert lower[name].value == pytest.approx(100.0)
    assert cased["TER"].value == pytest.approx(600 / 7)  # 6 of 7 words substituted
    assert lower["TER"].value == pytest.approx(0.0)
    for name in ("BLEU", "chrF", "TER"):
        assert "case:mixed" in cased[name].signature
        assert "case:lc" in lower[name].signature


def test_multiple_references():
    hyps = ["the cat is on the mat", "there is a dog in the garden"]
    ref1 = ["a cat sits upon the mat", "a dog is in the yard"]
    ref2 = ["the cat is on the mat", "there is a dog in the garden"]
    only1 = corpus_bleu(hyps, ref1)
    both = corpus_scores(hyps, [ref1, ref2], metrics=("bleu",))[0]
    assert only1.value < 50
    assert both.value == pytest.approx(100.0)
    assert "nrefs:2" in both.signature and "nrefs:1" in only1.signature


def test_metrics_selection_and_format():
    scores = corpus_scores(SENTS, [SENTS], metrics=("ter", "BLEU", "ter"))
    assert [s.name for s in scores] == ["TER", "BLEU"]
    line = format_score(scores[1])
    assert line.startswith("BLEU = 100.00 ")
    assert line.endswith(" | signature: " + scores[1].signature)
    assert scores[1].to_dict() == {
        "name": "BLEU",
        "value": scores[1].value,
        "signature": scores[1].signature,
        "text": scores[1].text,
    }


def test_metrics_errors():
    with pytest.raises(NmtError, match="0 lines"):
        corpus_scores([], [[]])
    with pytest.raises(NmtError, match="3 lines but there are 2"):
        corpus_scores(["a", "b"], [["a", "b"], ["a", "b", "c"]])
    with pytest.raises(NmtError, match="unknown metric 'meteor'"):
        corpus_scores(["a"], [["a"]], metrics=("meteor",))


def test_cross_check_with_sacrebleu_functions():
    rng = random.Random(1234)
    words = ["the", "a", "cat", "dog", "sat", "ran", "on", "under", "mat", "big", "Red", ",", "."]

    def sent() -> str:
        return " ".join(rng.choice(words) for _ in range(rng.randint(3, 15)))

    refs = [sent() for _ in range(40)]
    refs2 = [sent() for _ in range(40)]
    hyps = [r if rng.random() < 0.3 else sent() for r in refs]
    for lc in (False, True):
        ours = by_name(corpus_scores(hyps, [refs, refs2], lowercase=lc))
        assert ours["BLEU"].value == sacrebleu.corpus_bleu(hyps, [refs, refs2], lowercase=lc).score
        # corpus_chrf has no lowercase option; lowercasing the inputs is what CHRF does.
        fold = (lambda xs: [x.lower() for x in xs]) if lc else list
        chrf = sacrebleu.corpus_chrf(fold(hyps), [fold(refs), fold(refs2)]).score
        assert ours["chrF"].value == chrf
        ter = sacrebleu.corpus_ter(hyps, [refs, refs2], case_sensitive=not lc).score
        assert ours["TER"].value == ter
        assert 0 < ours["BLEU"].value < 100
    assert corpus_bleu(hyps, refs).value == sacrebleu.corpus_bleu(hyps, [refs]).score


# --- the score command ----------------------------------------------------------------


def test_cli_text_output(tmp_path, capsys):
    hyp = write(tmp_path / "hyp.txt", SENTS)
    ref = write(tmp_path / "ref.txt", SENTS)
    assert main(["--hyp", hyp, ref]) == 0
    out, err = capsys.readouterr()
    lines = out.splitlines()
    assert len(lines) == 3 and err == ""
    assert lines[0].startswith("BLEU = 100.00 ")
    assert lines[1].startswith("chrF2 = 100.00 ")
    assert lines[2].startswith("TER = 0.00 ")
    for line in lines:
        assert " | signature: nrefs:1|case:mixed|" in line


def test_cli_json_output(tmp_path, capsys):
    hyp = write(tmp_path / "hyp.txt", ["The Cat sat on the mat ."])
    ref1 = write(tmp_path / "ref1.txt", ["the cat sat on the mat ."])
    ref2 = write(tmp_path / "ref2.txt", ["a cat was on a mat ."])
    argv = ["--hyp", hyp, ref1, ref2, "--lowercase", "--json", "--metrics", "bleu", "ter"]
    assert main(argv) == 0
    obj = json.loads(capsys.readouterr().out)
    assert obj["hyp"] == hyp and obj["refs"] == [ref1, ref2]
    assert obj["lowercase"] is True and obj["n_lines"] == 1
    assert [s["name"] for s in obj["scores"]] == ["BLEU", "TER"]
    bleu, ter = obj["scores"]
    assert set(bleu) == {"name", "value", "signature", "text"}
    assert bleu["value"] == pytest.approx(100.0) and ter["value"] == pytest.approx(0.0)
    assert bleu["signature"].startswith("nrefs:2|case:lc|")
    assert "case:lc" in ter["signature"]
    assert bleu["text"].startswith("BLEU = 100.00")


def test_cli_line_count_mismatch(tmp_path, capsys):
    hyp = write(tmp_path / "hyp.txt", SENTS)
    ref = write(tmp_path / "ref.txt", SENTS[:2])
    assert main(["--hyp", hyp, ref]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    lines = err.splitlines()
    assert len(lines) == 1
    assert lines[0].startswith("error: ")
    assert hyp in lines[0] and ref in lines[0]
    assert "has 3 lines" in lines[0] and "has 2 lines" in lines[0]


def test_cli_invalid_utf8(tmp_path, capsys):
    hyp = tmp_path / "hyp.txt"
    hyp.write_bytes(b"fine line\nbad \xff byte\n")
    ref = write(tmp_path / "ref.txt", ["fine line", "bad byte"])
    assert main(["--hyp", str(hyp), ref]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith(f"error: {hyp}:2:") and len(err.splitlines()) == 1


def test_cli_missing_and_empty_files(tmp_path, capsys):
    ref = write(tmp_path / "ref.txt", SENTS)
    assert main(["--hyp", str(tmp_path / "nope.txt"), ref]) == 2
    assert "nope.txt: no such file" in capsys.readouterr().err
    empty = tmp_path / "empty.txt"
    empty.write_bytes(b"")
    assert main(["--hyp", str(empty), str(empty)]) == 2
    assert "no lines to score" in capsys.readouterr().err


def test_cli_gzip_reference(tmp_path, capsys):
    import gzip

    hyp = write(tmp_path / "hyp.txt", SENTS)
    ref = tmp_path / "ref.txt.gz"
    with gzip.open(ref, "wt", encoding="utf-8") as f:
        f.write("\n".join(SENTS) + "\n")
    assert main(["--hyp", hyp, str(ref), "--metrics", "bleu"]) == 0
    assert capsys.readouterr().out.startswith("BLEU = 100.00 ")


def test_run_guarded_exit_codes(capsys):
    def fail(msg):
        raise NmtError(msg)

    def interrupt(_):
        raise KeyboardInterrupt

    def pipe(_):
        raise BrokenPipeError

    assert run_guarded(lambda a: 0, None) == 0
    assert run_guarded(fail, "bad thing") == 2
    assert capsys.readouterr().err == "error: bad thing\n"
    assert run_guarded(interrupt, None) == 130
    assert run_guarded(pipe, None) == 1
    assert capsys.readouterr().err == ""


def test_script_runs_as_subprocess(tmp_path):
    hyp = write(tmp_path / "hyp.txt", SENTS)
    ref = write(tmp_path / "ref.txt", SENTS)
    script = str(REPO / "scripts" / "score.py")
    proc = subprocess.run(
        [sys.executable, script, "--hyp", "-", ref, "--json"],
        input=Path(hyp).read_bytes(),
        capture_output=True,
        cwd=tmp_path,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr.decode()
    obj = json.loads(proc.stdout)
    assert obj["hyp"] == "-" and obj["n_lines"] == 3
    assert obj["scores"][0]["value"] == pytest.approx(100.0)

    bad = write(tmp_path / "short.txt", SENTS[:1])
    proc = subprocess.run(
        [sys.executable, script, "--hyp", hyp, bad], capture_output=True, text=True, check=False
    )
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert proc.stderr.splitlines() == [
        f"error: line count mismatch: {hyp} has 3 lines, {bad} has 1 lines"
    ]
