"""Tests for nmt.metrics and the `score` command."""

from __future__ import annotations

import json
import math
import random
import subprocess
import sys
from collections import Counter
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


def hand_bleu(hyps: list[str], ref_streams: list[list[str]], lowercase: bool = False) -> float:
    """Corpus BLEU written out (Papineni et al. 2002, mteval's conventions): n-gram counts
    (n <= 4) clipped by the largest count in any one reference and summed over the corpus;
    per sentence the reference length closest to the hypothesis's (the shorter one on a
    tie); brevity penalty exp(1 - r / c) when c < r; an order with no match gets precision
    1 / (2^k total) for its k-th such order ("exp" smoothing). Tokens are whitespace words
    (what 13a leaves of text whose punctuation is already split off)."""
    fold = str.lower if lowercase else str
    matches, totals, c, r = [0] * 4, [0] * 4, 0, 0
    for k, hyp in enumerate(hyps):
        h = fold(hyp).split()
        refs = [fold(stream[k]).split() for stream in ref_streams]
        c += len(h)
        r += min((len(ref) for ref in refs), key=lambda n: (abs(n - len(h)), n))
        for n in range(1, 5):
            grams = Counter(tuple(h[i: i + n]) for i in range(len(h) - n + 1))
            most = Counter()
            for ref in refs:
                most |= Counter(tuple(ref[i: i + n]) for i in range(len(ref) - n + 1))
            matches[n - 1] += sum(min(count, most[g]) for g, count in grams.items())
            totals[n - 1] += max(len(h) - n + 1, 0)
    log_p, zeros = 0.0, 0
    for m, t in zip(matches, totals, strict=True):
        if m == 0:
            zeros += 1
        log_p += math.log((m if m else 2.0 ** -zeros) / t) / 4
    return 100 * min(1.0, math.exp(1 - r / c)) * math.exp(log_p)


def test_hand_bleu_by_hand():
    """The reference implementation on cases worked out on paper."""
    assert hand_bleu(["a b c d e f"], [["a b c d e g"]]) == pytest.approx(100 * 3 ** -0.25)
    # exp smoothing: 4/5, 2/4, 1/3 and no 4-gram match of 2: 1 / (2 * 2)
    want = 100 * (4 / 5 * 2 / 4 * 1 / 3 * 1 / 4) ** 0.25
    assert hand_bleu(["a b c d e"], [["a b c x e"]]) == pytest.approx(want)


def test_bleu_clips_counts_and_penalises_brevity():
    """"a" twice against one "a" in the reference: 1-grams 5/6 (clipped), 2-grams 4/5
    (aa, ab, bc, cd, de: all but aa), 3-grams 3/4, 4-grams 2/3; c = 6 < r = 8:
    BP = exp(1 - 8/6)."""
    s = by_name(corpus_scores(["a a b c d e"], [["a b c d e f g h"]]))
    assert s["BLEU"].value == pytest.approx(100 * math.exp(-1 / 3) * 3 ** -0.25)


def test_bleu_sums_counts_over_the_corpus():
    """Not the mean of sentence scores: 1-grams (4 + 3)/8, 2-grams (3 + 2)/6, 3-grams
    (2 + 1)/4, 4-grams (1 + 0)/2; c = r = 8."""
    s = corpus_bleu(["a b c d", "e f g h"], ["a b c d", "e f g x"])
    assert s.value == pytest.approx(100 * (7 / 8 * 5 / 6 * 3 / 4 * 1 / 2) ** 0.25)


def test_bleu_smooths_an_order_without_matches():
    """mteval's exp smoothing (sacreBLEU's default for corpus BLEU): the first order without
    a match counts as 1 / (2 * total): 4/5, 2/4, 1/3, then 1/(2 * 2)."""
    s = corpus_bleu(["a b c d e"], ["a b c x e"])
    assert s.value == pytest.approx(100 * (4 / 5 * 2 / 4 * 1 / 3 * 1 / 4) ** 0.25)


def test_bleu_multiple_references_clip_by_the_best_and_take_the_closest_length():
    """Every n-gram of "a b c d e f" is in one reference or the other, and the second has
    its length: 100. Against the first alone: 5/6, 4/5, 3/4, 2/3 and r = 9: BP exp(-1/2)."""
    hyp, ref1, ref2 = ["a b c d e f"], ["a b c d e g h i j"], ["x b c d e f"]
    both = corpus_scores(hyp, [ref1, ref2], metrics=("bleu",))[0]
    assert both.value == pytest.approx(100.0) and "nrefs:2" in both.signature
    assert corpus_bleu(hyp, ref1).value == pytest.approx(100 * math.exp(-0.5) * 3 ** -0.25)


def test_chrf_averages_precision_and_recall_over_character_orders():
    """chrF2 (Popović 2015; sacreBLEU's default: character n-grams up to 6, no word n-grams,
    whitespace removed): the hypothesis' 8 characters are the reference's first 8 of 12, so
    for n = 1..6 precision is 1 and recall (9 - n) / (13 - n); chrF2 = 5 P R / (4 P + R) of
    their averages over the six orders."""
    recall = sum((9 - n) / (13 - n) for n in range(1, 7)) / 6
    s = by_name(corpus_scores(["abc defgh"], [["abcdefgh ijkl"]], metrics=("chrf",)))
    assert s["chrF"].value == pytest.approx(100 * 5 * recall / (4 + recall))


def test_ter_counts_a_shift_as_one_edit_and_takes_the_best_reference():
    """TER (Snover et al. 2006): edits / reference words. Moving "c" to the end is one shift
    (word edit distance alone would need two edits). With two references: the fewest edits
    (1, against "a b c x") over the average reference length ((4 + 6) / 2)."""
    assert by_name(corpus_scores(["c a b"], [["a b c"]]))["TER"].value == pytest.approx(100 / 3)
    multi = corpus_scores(["a b c d"], [["a b c x"], ["a b c d e f"]], metrics=("ter",))[0]
    assert multi.value == pytest.approx(100 * 1 / 5)


def test_every_score_carries_sacrebleus_signature():
    """The settings metrics.py documents, in the signature printed with each score."""
    s = by_name(corpus_scores(SENTS, [SENTS]))
    assert "|eff:no|tok:13a|smooth:exp|" in s["BLEU"].signature
    assert "|eff:yes|nc:6|nw:0|space:no|" in s["chrF"].signature
    assert "|tok:tercom|norm:no|punct:yes|asian:no|" in s["TER"].signature
    for score in s.values():
        assert score.signature.startswith("nrefs:1|case:mixed|")
        assert format_score(score) == f"{score.text} | signature: {score.signature}"


def test_bleu_equals_a_hand_written_bleu_on_a_random_corpus():
    """Two references, 40 sentences, cased and lowercased, against `hand_bleu`."""
    rng = random.Random(1234)
    words = ["the", "a", "cat", "dog", "sat", "ran", "on", "under", "mat", "big", "Red", ",", "."]

    def sent() -> str:
        return " ".join(rng.choice(words) for _ in range(rng.randint(3, 15)))

    refs = [sent() for _ in range(40)]
    refs2 = [sent() for _ in range(40)]
    hyps = [r if rng.random() < 0.3 else sent() for r in refs]
    for lc in (False, True):
        ours = corpus_scores(hyps, [refs, refs2], lowercase=lc, metrics=("bleu",))[0]
        assert 0 < ours.value < 100
        assert ours.value == pytest.approx(hand_bleu(hyps, [refs, refs2], lc), abs=1e-9)
    assert corpus_bleu(hyps, refs).value == pytest.approx(hand_bleu(hyps, [refs]), abs=1e-9)
    assert corpus_bleu(hyps, refs).value != pytest.approx(hand_bleu(hyps, [refs, refs2]))


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
    assert capsys.readouterr().err == "interrupted\n"
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
