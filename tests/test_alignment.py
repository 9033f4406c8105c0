"""Alignments from attention: merging, hard links, Pharaoh, AER, extraction, report, CLI."""

from __future__ import annotations

import copy
import html
import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from nmt.alignment.extract import (
    SentenceAlignment,
    align_lines,
    forced_decode,
    hard_links,
    merge_subwords,
)
from nmt.alignment.pharaoh import parse_pharaoh, read_pharaoh, score_alignments, write_pharaoh
from nmt.alignment.report import plot_heatmaps, render_report, write_report
from nmt.checkpoint import load_model
from nmt.cli import main as nmt_main
from nmt.cli.align_score import main as align_score_main
from nmt.cli.translate import main as translate_main
from nmt.config import DecodeConfig
from nmt.cpu import accelerate
from nmt.data.batching import encode_sources
from nmt.data.words import Segmented, encode_line, hypothesis_segment, piece_words, segment
from nmt.decoding.beam import beam_search
from nmt.decoding.search import Hypothesis
from nmt.decoding.translator import Translator
from nmt.decoding.unk import replace_unks
from nmt.errors import NmtError
from nmt.model.seq2seq import build_model
from nmt.special import BOS_ID, EOS_ID, UNK_ID
from nmt.training.run import train
from tests.helpers import toy_config, write_toy_corpus
from tests.test_model import tiny_config

SCRIPTS = Path(__file__).resolve().parents[1] / "scripts"


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    corpus = write_toy_corpus(tmp_path_factory.mktemp("toy"), n_train=120, n_dev=10)
    out = tmp_path_factory.mktemp("run") / "model"
    train(toy_config(corpus, max_steps=6, validate_every=6), out, quiet=True)
    return out


# --- subwords to words -----------------------------------------------------------------------

def test_piece_words_follow_the_word_start_marker():
    assert piece_words(["▁the", "▁hou", "se", "▁."]) == ([0, 1, 1, 2], 3)
    # a bare marker belongs to the word it precedes; a first piece without marker is word 0
    assert piece_words(["ab", "▁", "Z", "o", "▁x", "▁", "你好"]) == ([0, 1, 1, 1, 2, 3, 3], 4)
    assert piece_words(["▁a", "▁"]) == ([0, 0], 1)  # a trailing bare marker: the last word


def test_segment_fails_loudly_when_words_do_not_match():
    seg = segment("the house .", ["▁the", "▁hou", "se", "▁."], "f:1")
    assert seg.words == ["the", "house", "."] and seg.piece_word == [0, 1, 1, 2]
    # sentencepiece treats a zero-width space as a word break, str.split() does not
    with pytest.raises(NmtError, match=r"^f:3: the subword pieces give 2 words but the line "
                                       r"has 1"):
        segment("ab\u200bcd", ["▁a", "b", "▁", "c", "d"], "f:3")


def hand_matrix() -> tuple[np.ndarray, list[int], list[int]]:
    """Target "das Haus ." (pieces ▁das ▁Ha us ▁.) + EOS row; source "the house ."
    (pieces ▁the ▁hou se ▁.) + EOS column."""
    attn = np.array([
        [0.8, 0.1, 0.0, 0.0, 0.1],  # ▁das
        [0.0, 0.3, 0.3, 0.2, 0.2],  # ▁Ha
        [0.0, 0.5, 0.4, 0.1, 0.0],  # us
        [0.0, 0.0, 0.0, 0.0, 1.0],  # ▁.  (everything on the source EOS)
        [0.1, 0.1, 0.1, 0.1, 0.6],  # the target EOS row: dropped
    ])
    return attn, [0, 1, 1, 2], [0, 1, 1, 2]


def test_merge_subwords_sums_pieces_drops_eos_and_renormalises():
    attn, tgt_map, src_map = hand_matrix()
    words = merge_subwords(attn, tgt_map, 3, src_map, 3)
    # das: raw [.8, .1, 0] / .9; EOS share .1 / 1
    # Haus: raw [0, .3+.3+.5+.4, .2+.1] = [0, 1.5, .3] / 1.8; EOS share .2 / 2
    # '.': all mass on the EOS: a zero row (no link), EOS share 1
    expected = np.array([[8 / 9, 1 / 9, 0.0], [0.0, 5 / 6, 1 / 6], [0.0, 0.0, 0.0]])
    np.testing.assert_allclose(words.matrix, expected)
    np.testing.assert_allclose(words.eos_weight, [0.1, 0.1, 1.0])
    # conserved: un-normalising gives back every non-EOS weight of the non-EOS rows
    pieces = np.bincount(tgt_map)
    raw = words.matrix * ((1 - words.eos_weight) * pieces)[:, None]
    assert raw.sum() == pytest.approx(attn[:4, :4].sum())
    assert hard_links(words.matrix) == [(0, 0), (1, 1)]
    assert hard_links(words.matrix, threshold=0.15) == [(0, 0), (1, 1), (2, 1)]


def test_merge_without_target_eos_row():
    attn, tgt_map, src_map = hand_matrix()
    a = merge_subwords(attn, tgt_map, 3, src_map, 3)
    b = merge_subwords(attn[:4], tgt_map, 3, src_map, 3)  # a hypothesis cut at max length
    np.testing.assert_array_equal(a.matrix, b.matrix)


# --- Pharaoh and AER -------------------------------------------------------------------------

def test_pharaoh_round_trip_and_possible_links(tmp_path):
    links = [[(0, 0), (2, 1), (1, 3)], [], [(1, 0)]]
    path = tmp_path / "a.pharaoh"
    write_pharaoh(path, links)
    assert path.read_text() == "0-0 1-3 2-1\n\n1-0\n"
    back = read_pharaoh(path)
    assert [sure for sure, _ in back] == [set(x) for x in links]
    assert [possible for _, possible in back] == [set(x) for x in links]
    sure, possible = parse_pharaoh("0-0 1?1 2p2", "x:1")
    assert sure == {(0, 0)} and possible == {(0, 0), (1, 1), (2, 2)}
    with pytest.raises(NmtError, match=r"^x:4: malformed link '0-x'"):
        parse_pharaoh("0-0 0-x", "x:4")


def test_aer_perfect_partial_and_possible():
    gold = [({(0, 0), (1, 1)}, {(0, 0), (1, 1)})]
    perfect = score_alignments([{(0, 0), (1, 1)}], gold)
    assert (perfect.precision, perfect.recall, perfect.aer) == (1.0, 1.0, 0.0)
    # Sentence 1: S = {0-0, 1-1, 2-2}, P = S + {2-3}; A = {0-0, 1-2, 2-3}:
    #   |A| = 3, |S| = 3, |A&S| = 1 (0-0), |A&P| = 2 (0-0, 2-3).
    # Sentence 2: S = P = {0-0}; A = {0-0, 0-1}: |A| = 2, |S| = 1, |A&S| = |A&P| = 1.
    # Corpus: precision = 3/5, recall = 2/4, AER = 1 - (2 + 3) / (5 + 4) = 4/9.
    sure1 = {(0, 0), (1, 1), (2, 2)}
    gold = [(sure1, sure1 | {(2, 3)}), ({(0, 0)}, {(0, 0)})]
    s = score_alignments([{(0, 0), (1, 2), (2, 3)}, {(0, 0), (0, 1)}], gold)
    assert s.precision == pytest.approx(3 / 5) and s.recall == pytest.approx(1 / 2)
    assert s.aer == pytest.approx(4 / 9)
    assert (s.predicted, s.sure, s.predicted_and_sure, s.predicted_and_possible) == (5, 4, 2, 3)
    # a possible link is neither required nor penalised:
    # S = {0-0}, P = {0-0, 1-1}. A = {0-0, 1-1}: 1 - (1 + 2)/(2 + 1) = 0; A = {0-0}: 1 - 2/2 = 0
    gold = [({(0, 0)}, {(0, 0), (1, 1)})]
    assert score_alignments([{(0, 0), (1, 1)}], gold).aer == 0.0
    assert score_alignments([{(0, 0)}], gold).aer == 0.0
    # ...but a link outside P costs precision: A = {0-0, 0-1}: 1 - (1 + 1)/(2 + 1) = 1/3
    assert score_alignments([{(0, 0), (0, 1)}], gold).aer == pytest.approx(1 / 3)


def test_align_score_cli(tmp_path, capsys):
    gold, pred = tmp_path / "gold.align", tmp_path / "pred.align"
    gold.write_text("0-0 1-1 2-2 2p3\n0-0\n")
    pred.write_text("0-0 1-2 2-3\n0-0 0-1\n")
    assert align_score_main(["--pred", str(pred), "--gold", str(gold), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["aer"] == pytest.approx(4 / 9) and out["precision"] == pytest.approx(0.6)
    assert nmt_main(["align-score", "--pred", str(pred), "--gold", str(gold)]) == 0
    assert "AER 0.4444" in capsys.readouterr().out


def test_align_score_errors(tmp_path, capsys):
    gold, pred = tmp_path / "gold.align", tmp_path / "pred.align"
    src, tgt = tmp_path / "s.txt", tmp_path / "t.txt"
    gold.write_text("0-0\n0-0\n")
    pred.write_text("0-0\n")
    assert align_score_main(["--pred", str(pred), "--gold", str(gold)]) == 2
    assert capsys.readouterr().err == (f"error: line count mismatch: {pred} has 1 lines, "
                                       f"{gold} has 2 lines\n")
    pred.write_text("0-0\n1:1\n")
    assert align_score_main(["--pred", str(pred), "--gold", str(gold)]) == 2
    assert capsys.readouterr().err == f"error: {pred}:2: malformed link '1:1' (expected i-j, " \
                                      "i?j or ipj)\n"
    pred.write_text("0-0\n0-0 0-2\n")
    src.write_text("a b\nc\n")
    tgt.write_text("x\ny z\n")
    args = ["--pred", str(pred), "--gold", str(gold), "--src", str(src), "--tgt", str(tgt)]
    assert align_score_main(args) == 2
    assert capsys.readouterr().err == (f"error: {pred}:2: target index 2 out of range "
                                       f"({tgt}:2 has 2 words)\n")
    gold.write_text("0-0\n1-0\n")
    pred.write_text("0-0\n0-0\n")
    assert align_score_main(args) == 2
    assert capsys.readouterr().err == (f"error: {gold}:2: source index 1 out of range "
                                       f"({src}:2 has 1 words)\n")


# --- extraction ------------------------------------------------------------------------------

def random_ids(lengths: list[int], vocab: int, seed: int) -> list[list[int]]:
    g = torch.Generator().manual_seed(seed)
    return [torch.randint(4, vocab, (n,), generator=g).tolist() for n in lengths]


@pytest.mark.parametrize("attention,feeding", [("bahdanau", True), ("general", False),
                                               ("concat", True)])
@pytest.mark.parametrize("accelerated", [False, True], ids=["plain", "accelerated"])
def test_forced_decoding_is_the_reference_model(attention, feeding, accelerated):
    """Each pair's attention rows and token log-probs equal those of test_reference's naive
    model (one sentence, float64, torch's cells, attention from the formulas) teacher-forcing
    BOS + target, with EOS as the last token, whatever batch the pair was sorted into."""
    from tests.test_reference import make_model as model_with_random_biases
    from tests.test_reference import reference

    cfg = tiny_config(attention, feeding, enc_layers=2, dec_layers=2)
    plain = model_with_random_biases(cfg, seed=2)  # eval mode
    model = accelerate(copy.deepcopy(plain), training=False) if accelerated else plain
    src_ids = random_ids([5, 2, 7, 3], 20, seed=1)
    tgt_ids = random_ids([4, 6, 1, 3], 25, seed=2)
    hyps = forced_decode(model, src_ids, tgt_ids, batch_size=3)  # sorted, two uneven batches
    for s, t, hyp in zip(src_ids, tgt_ids, hyps, strict=True):
        src, lengths = encode_sources([s])  # + EOS
        with torch.no_grad():
            logits, attn = reference(plain, src, lengths, torch.tensor([[BOS_ID] + t]))
        assert hyp.tokens == t and hyp.finished
        assert hyp.attention.shape == (len(t) + 1, len(s) + 1)  # EOS row and column
        torch.testing.assert_close(hyp.attention.double(), attn[0], atol=1e-5, rtol=1e-5)
        lp = logits[0].log_softmax(-1).gather(1, torch.tensor(t + [EOS_ID])[:, None])[:, 0]
        torch.testing.assert_close(torch.tensor(hyp.token_scores, dtype=torch.float64), lp,
                                   atol=1e-5, rtol=1e-5)
        assert hyp.raw_score == pytest.approx(float(lp.sum()), abs=1e-4)


def test_beam_hypothesis_attention_is_its_own():
    torch.manual_seed(4)
    model = build_model(tiny_config("general", True), 20, 25).eval()
    src_ids = random_ids([6, 3, 5], 20, seed=3)
    src, lengths = encode_sources(src_ids)
    nbest = beam_search(model, src, lengths, beam_size=3, n_best=3, max_len_ratio=1.5,
                        max_len_offset=2)
    for s, hyps in zip(src_ids, nbest, strict=True):
        for hyp in hyps:  # the winner and the runners-up each carry their own rows
            (forced,) = forced_decode(model, [s], [hyp.tokens], batch_size=1)
            rows = hyp.attention.size(0)
            assert rows == len(hyp.tokens) + hyp.finished
            torch.testing.assert_close(hyp.attention, forced.attention[:rows], atol=1e-6,
                                       rtol=1e-5)
            torch.testing.assert_close(torch.tensor(hyp.token_scores),
                                       torch.tensor(forced.token_scores[:rows]), atol=1e-5,
                                       rtol=1e-5)


def test_hypothesis_words_follow_detokenization(model_dir):
    _, _, vocabs = load_model(model_dir)
    ids = vocabs.tgt.encode(["KA LO"])[0]
    tokens = ids[:1] + [UNK_ID] + ids[1:]  # detokenized as "KA ⁇ LO": UNK is its own word
    seg = hypothesis_segment(tokens, vocabs.tgt, "hyp")
    assert seg.words == vocabs.tgt.decode([tokens])[0].split() and len(seg.words) == 3
    assert seg.piece_word[1] == 1 and seg.pieces[1] == "<unk>"


# --- unknown-word replacement ----------------------------------------------------------------

def unk_hypothesis(line: str, vocabs, winner: str, rival: str) -> Hypothesis:
    """KA <unk> LO, whose UNK row gives `rival` (one piece) more weight than any single piece
    of `winner`, but `winner` more in total."""
    src, _ = encode_line(line, vocabs.src, "test")
    words = src.words
    pieces = [k for k, w in enumerate(src.piece_word) if words[w] == winner]
    assert len(pieces) >= 2, src.pieces
    rival_piece = next(k for k, w in enumerate(src.piece_word) if words[w] == rival)
    ka, lo = vocabs.tgt.encode(["KA"])[0], vocabs.tgt.encode(["LO"])[0]
    tokens = ka + [UNK_ID] + lo
    S = len(src.pieces) + 1
    attn = torch.full((len(tokens) + 1, S), 1.0 / S)
    row = torch.zeros(S)
    row[pieces] = 0.6 / len(pieces)
    row[rival_piece] = 0.35
    row[-1] = 0.05
    assert row.max() == row[rival_piece]
    attn[len(ka)] = row
    return Hypothesis(tokens, 0.0, [0.0] * (len(tokens) + 1), attn, True)


def test_replace_unk_takes_the_argmax_source_word(model_dir):
    _, _, vocabs = load_model(model_dir)
    line = "ka zakolimu lo"
    hyp = unk_hypothesis(line, vocabs, winner="zakolimu", rival="ka")
    assert vocabs.tgt.decode([hyp.tokens])[0].split() == ["KA", "⁇", "LO"]
    assert replace_unks(line, [hyp], vocabs.src, vocabs.tgt) == "KA zakolimu LO"
    hyp = unk_hypothesis(line, vocabs, winner="zakolimu", rival="lo")
    assert replace_unks(line, [hyp], vocabs.src, vocabs.tgt) == "KA zakolimu LO"


def test_replace_unk_through_the_translator_with_chunks(model_dir):
    model, _, vocabs = load_model(model_dir)
    first, second = "ka lo zakolimu", "ne petravoz su"  # unseen words: several subwords each

    def search(model, src, src_lengths):  # KA <unk> LO, the UNK on the chunk's longest word
        hyps = []
        for b, n in enumerate(src_lengths.tolist()):
            words = vocabs.src.decode([src[b, : n - 1].tolist()])[0].split()
            winner = max(words, key=len)
            rival = next(w for w in words if w != winner)
            hyps.append(unk_hypothesis(" ".join(words), vocabs, winner, rival))
        return hyps

    n = max(len(vocabs.src.encode([x])[0]) for x in (first, second))
    translator = Translator(model, vocabs.src, vocabs.tgt, DecodeConfig(max_input_tokens=n),
                            search=search)
    (result,) = translator.translate([f"{first} {second}"])
    assert len(result.hyps) == 2 and result.text.split() == "KA ⁇ LO KA ⁇ LO".split()
    assert translator.replace_unk(f"{first} {second}", result) == "KA zakolimu LO KA petravoz LO"


def test_translate_cli_replace_unk(model_dir, tmp_path, capsys):
    src, out = tmp_path / "in.txt", tmp_path / "out.txt"
    src.write_text("ka lo mi\n\nsu ta\n", encoding="utf-8")
    args = ["--checkpoint", str(model_dir), "--input", str(src), "--quiet", "--beam", "2"]
    assert translate_main(args + ["--output", str(out), "--replace-unk"]) == 0
    assert len(out.read_text(encoding="utf-8").split("\n")) == 4
    assert translate_main(args + ["--replace-unk", "--nbest", "2"]) == 2
    assert "--replace-unk works on the 1-best output" in capsys.readouterr().err


# --- report and CLI --------------------------------------------------------------------------

def hand_sentence(line: int, src: list[str], tgt: list[str]) -> SentenceAlignment:
    attn, tgt_map, src_map = hand_matrix()
    words = merge_subwords(attn, tgt_map, 3, src_map, 3)
    return SentenceAlignment(line, Segmented(src, [], src_map), Segmented(tgt, [], tgt_map),
                             attn, -1.5, words)


def test_report_is_one_offline_file_with_every_word(tmp_path):
    odd = ["a<b", "x&y\"", "http://evil.example/x"]
    sentences = [hand_sentence(0, ["the", "house", "."], ["das", "Haus", "."]),
                 hand_sentence(1, odd, ["//", "Ünïcode", "'q'"])]
    path = write_report(tmp_path / "report.html", sentences, "t // http://x", threshold=0.15)
    assert [p.name for p in tmp_path.iterdir()] == ["report.html"]
    doc = path.read_text(encoding="utf-8")
    assert "http://" not in doc and "https://" not in doc and "//" not in doc
    assert "<script" not in doc and "href=" not in doc and "src=" not in doc
    text = html.unescape(doc)
    for s in sentences:
        for w in s.src.words + s.tgt.words:
            assert f">{w}</th>" in text
    assert doc.count('class="hard"') == 4 and doc.count('class="hard thr"') == 2
    assert 'title="the → das: 0.889 (hard link)"' in html.unescape(render_report(
        sentences[:1], "t"))


def test_heatmap_png(tmp_path):
    pytest.importorskip("matplotlib")
    sentences = [hand_sentence(n, ["the", "house", "."], ["das", "Haus", "."]) for n in range(3)]
    written = plot_heatmaps(tmp_path, sentences, 2)
    assert [p.name for p in written] == ["heatmap_0.png", "heatmap_1.png"]
    assert all(p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" for p in written)


def test_align_cli_writes_every_output(model_dir, tmp_path, capsys):
    src, tgt = tmp_path / "in.xx", tmp_path / "in.yy"
    src.write_text("ka lo mi\n\nsu ta ri po\nne\n", encoding="utf-8")
    tgt.write_text("MI LO KA\nKA\nPO RI TA SU\nNE\n", encoding="utf-8")
    out = tmp_path / "forced"
    assert nmt_main(["align", "--checkpoint", str(model_dir), "--src", str(src), "--tgt",
                     str(tgt), "--out", str(out), "--subword", "--threshold", "0.3"]) == 0
    assert capsys.readouterr().err.startswith("aligned 4 lines (forced decoding of ")
    names = {p.name for p in out.iterdir()}
    assert names == {"alignments.jsonl", "alignments.pharaoh", "alignments.threshold.pharaoh",
                     "alignments.npz", "report.html"}
    records = [json.loads(x) for x in (out / "alignments.jsonl").read_text().splitlines()]
    assert [r["line"] for r in records] == [0, 1, 2, 3]
    assert records[2]["src"] == ["su", "ta", "ri", "po"] and len(records[2]["attention"]) == 4
    assert all(abs(sum(row) - 1) < 1e-3 for row in records[2]["attention"])
    assert records[0]["score"] < 0 and records[0]["subword"]["tgt"][-1] == "</s>"
    pharaoh = (out / "alignments.pharaoh").read_text().split("\n")
    assert len(pharaoh) == 5 and pharaoh[1] == "" and len(pharaoh[2].split()) == 4
    with np.load(out / "alignments.npz") as npz:
        assert npz["s2"].shape == (4, 4) and npz["s1"].shape == (1, 0)
        assert json.loads(npz["src_words"][3]) == ["ne"]
    # the model's own translations, beam search, through the script's entry point
    spec = importlib.util.spec_from_file_location("inspect_alignments", SCRIPTS / "inspect_"
                                                  "alignments.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    beam = tmp_path / "beam"
    assert script.main(["--checkpoint", str(model_dir), "--src", str(src), "--out", str(beam),
                        "--beam", "2", "--limit", "3", "--quiet"]) == 0
    records = [json.loads(x) for x in (beam / "alignments.jsonl").read_text().splitlines()]
    assert len(records) == 3 and records[1]["tgt"] == [] and records[1]["alignment"] == ""
    assert (beam / "report.html").is_file()
    # bad inputs: one-line errors
    tgt.write_text("MI LO KA\n", encoding="utf-8")
    assert nmt_main(["align", "--checkpoint", str(model_dir), "--src", str(src), "--tgt",
                     str(tgt), "--out", str(out)]) == 2
    assert capsys.readouterr().err == (f"error: line count mismatch: {src} has 4 lines, "
                                       f"{tgt} has 1 lines\n")


def test_align_lines_skips_empty_sides(model_dir):
    model, _, vocabs = load_model(model_dir)
    result = align_lines(model, vocabs, ["ka lo", "mi", ""], ["LO KA", "", "SU"], batch_size=2)
    assert [r.links() == [] for r in result] == [False, True, True]
    assert result[1].src.words == ["mi"] and result[2].tgt.words == ["SU"]
