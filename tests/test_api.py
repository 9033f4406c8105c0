"""The Python API: `from nmt import Translator`, same output as `nmt translate`, alignments
as `nmt align` gives them, no global state between translators."""

from __future__ import annotations

import json

import pytest

from nmt import Translator
from nmt.cli import main as nmt_main
from nmt.errors import NmtError
from tests.helpers import train_toy_model

LINES = ["ka lo mi", "", "su ta ri po ne", "ve", "zu an el ka lo"]


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    return [train_toy_model(tmp_path_factory, seed=seed, max_steps=10) for seed in (3, 5)]


def cli_jsonl(model_dir, tmp_path, capsys, *flags) -> list[dict]:
    src = tmp_path / "in.txt"
    src.write_text("\n".join(LINES) + "\n", encoding="utf-8")
    capsys.readouterr()
    assert nmt_main(["translate", "--checkpoint", str(model_dir), "--input", str(src),
                     "--format", "jsonl", "--quiet", *flags]) == 0
    return [json.loads(line) for line in capsys.readouterr().out.splitlines()]


@pytest.mark.parametrize("beam, nbest", [(1, 1), (4, 1), (4, 3)])
def test_same_output_as_the_command_line(models, tmp_path, capsys, beam, nbest):
    cli = cli_jsonl(models[0], tmp_path, capsys, "--beam", str(beam), "--nbest", str(nbest))
    results = Translator.load(models[0]).translate(LINES, beam=beam, nbest=nbest)
    assert len(results) == len(LINES)
    for record, result in zip(cli, results, strict=True):
        assert [h["text"] for h in record["hyps"]] == [c.text for c in result.candidates]
        assert [h["score"] for h in record["hyps"]] == pytest.approx(
            [c.score for c in result.candidates], abs=1e-4)
    assert results[1].text == "" and results[1].candidates == [results[1].best] * nbest
    assert results[0].tokens and "".join(results[0].tokens).replace("\u2581", " ").strip() \
        == results[0].text


def test_alignments_match_nmt_align(models, tmp_path):
    tr = Translator.load(models[0])
    results = tr.translate(LINES, beam=3, alignments=True)
    src = tmp_path / "in.txt"
    src.write_text("\n".join(LINES) + "\n", encoding="utf-8")
    assert nmt_main(["align", "--checkpoint", str(models[0]), "--src", str(src), "--out",
                     str(tmp_path / "al"), "--beam", "3", "--quiet"]) == 0
    pharaoh = (tmp_path / "al" / "alignments.pharaoh").read_text().splitlines()
    for line, result, links in zip(LINES, results, pharaoh, strict=True):
        a = result.alignment
        if not line:
            assert a is None or not a.links
            continue
        assert a.src_words == line.split() and a.tgt_words == result.text.split()
        assert len(a.matrix) == len(a.tgt_words)
        assert all(len(row) == len(a.src_words) for row in a.matrix)
        assert all(abs(sum(row) - 1) < 1e-4 or sum(row) == 0 for row in a.matrix)
        assert " ".join(f"{i}-{j}" for i, j in a.links) == links


def test_two_translators_live_side_by_side(models):
    a, b = (Translator.load(m) for m in models)
    first = [r.text for r in a.translate(LINES, beam=3)]
    other = [r.text for r in b.translate(LINES, beam=3)]
    assert [r.text for r in a.translate(LINES, beam=3)] == first
    assert [r.text for r in Translator.load(models[1]).translate(LINES, beam=3)] == other
    # an ensemble of both, through the same API
    both = Translator.load(models).translate(LINES, beam=3)
    assert len(both) == len(LINES)


def test_bad_calls_are_one_line(models):
    tr = Translator.load(models[0])
    with pytest.raises(NmtError, match="a list of lines"):
        tr.translate("ka lo")
    with pytest.raises(NmtError, match=r"nbest 4: must be between 1 and the beam size \(2\)"):
        tr.translate(LINES, beam=2, nbest=4)
    with pytest.raises(NmtError, match="unknown decoding option"):
        tr.translate(LINES, beem=2)
    with pytest.raises(NmtError, match="beam_size"):
        tr.translate(LINES, beam=0)
    with pytest.raises(NmtError, match="device 'tpu'"):
        Translator.load(models[0], device="tpu")
