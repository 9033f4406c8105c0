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
    with pytest.raises(NmtError, match="device: 'tpu' is not a device"):
        Translator.load(models[0], device="tpu")


PREFIXES = ["ZU", "SU", None, "AN EL", "KA LO MI"]


def test_prefix_starts_every_candidate_as_the_command_line_does(models, tmp_path, capsys):
    tr = Translator.load(models[0])
    results = tr.translate(LINES, beam=4, nbest=3, prefix=PREFIXES)
    plain = tr.translate(LINES, beam=4, nbest=3)
    for line, prefix, result, alone in zip(LINES, PREFIXES, results, plain, strict=True):
        if not line or not prefix:
            assert result == alone
            continue
        pieces = tr.loaded.vocabs.tgt.encode_pieces(prefix)
        for c in result.candidates:
            assert c.tokens[: len(pieces)] == pieces  # token level
            assert c.text.startswith(prefix)  # text level
    pre = tmp_path / "prefix.txt"
    pre.write_text("".join((p or "") + "\n" for p in PREFIXES), encoding="utf-8")
    cli = cli_jsonl(models[0], tmp_path, capsys, "--beam", "4", "--nbest", "3", "--prefix",
                    str(pre))
    for record, result in zip(cli, results, strict=True):
        assert [h["text"] for h in record["hyps"]] == [c.text for c in result.candidates]
        assert [h["score"] for h in record["hyps"]] == pytest.approx(
            [c.score for c in result.candidates], abs=1e-4)


def test_empty_prefixes_are_no_prefixes(models):
    tr = Translator.load(models[0])
    for beam in (1, 3):
        assert tr.translate(LINES, beam=beam, prefix=[""] * 5) == tr.translate(LINES, beam=beam)
        assert tr.translate(LINES, beam=beam, prefix=[None] * 5) == tr.translate(LINES,
                                                                                 beam=beam)


def test_prefix_with_alignments(models):
    results = Translator.load(models[0]).translate(LINES, beam=2, alignments=True,
                                                   prefix=PREFIXES)
    assert results[0].text.startswith("ZU")
    assert results[0].alignment.tgt_words[0] == "ZU"


def test_sampling_repeats_with_its_seed_as_the_command_line_does(models, tmp_path, capsys):
    tr = Translator.load(models[0])
    first = tr.translate(LINES, sample=True, samples=3, seed=5)
    assert all(len(r.candidates) == 3 for r in first)
    assert tr.translate(LINES, sample=True, samples=3, seed=5) == first
    assert tr.translate(LINES, sample=True, samples=3, seed=6) != first
    # each line's samples do not depend on the batch it is decoded in (to float rounding)
    alone = tr.translate(LINES, sample=True, samples=3, seed=5, batch_size=1)
    for a, b in zip(alone, first, strict=True):
        assert [(c.text, c.tokens) for c in a.candidates] == \
            [(c.text, c.tokens) for c in b.candidates]
        assert [c.score for c in a.candidates] == pytest.approx(
            [c.score for c in b.candidates], abs=1e-4)
    assert not {"<s>", "<pad>"} & {t for r in first for c in r.candidates for t in c.tokens}
    cli = cli_jsonl(models[0], tmp_path, capsys, "--sample", "--samples", "3", "--seed", "5")
    for record, result in zip(cli, first, strict=True):
        assert [h["text"] for h in record["hyps"]] == [c.text for c in result.candidates]
    greedy = tr.translate(LINES, beam=1)
    assert tr.translate(LINES, sample=True, top_k=1) == greedy
    assert tr.translate(LINES, sample=True, temperature=1e-4, seed=1) == greedy


@pytest.mark.parametrize("kwargs, message", [
    (dict(sample=True, beam=3), "beam 3: sampling draws one path per sample"),
    (dict(sample=True, nbest=2), "nbest: sampling gives samples=N outputs per line"),
    (dict(sample=True, length_penalty="average"), "length_penalty: ranks beam-search"),
    (dict(top_k=3), "top_k: only with sample=True"),
    (dict(seed=3), "seed: only with sample=True"),
    (dict(sample=True, temperature=0), "temperature: must be > 0"),
    (dict(sample=True, top_p=1.2), r"top_p: must be in \(0, 1\]"),
    (dict(sample=True, top_k=0), "top_k: must be >= 1"),
    (dict(sample=True, samples=0), "samples: must be >= 1"),
    (dict(prefix="ZU"), "prefix takes a list"),
    (dict(prefix=["ZU"]), "prefix: 1 prefixes for 5 lines"),
])
def test_bad_prefix_and_sampling_calls_are_one_line(models, kwargs, message):
    with pytest.raises(NmtError, match=message):
        Translator.load(models[0]).translate(LINES, **kwargs)


def test_prefix_is_refused_under_a_shortlist(models, tmp_path):
    import shutil

    model = shutil.copytree(models[0], tmp_path / "model")  # shortlist.pt goes inside
    assert nmt_main(["shortlist", "--model-dir", str(model), "--quiet"]) == 0
    tr = Translator.load(model, shortlist=True)
    assert tr.translate(LINES, prefix=[""] * 5)  # no prefix at all: fine
    with pytest.raises(NmtError, match="prefix: not with a shortlist"):
        tr.translate(LINES, prefix=PREFIXES)
