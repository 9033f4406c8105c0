"""Target-vocabulary shortlists: the table, the candidates, decoding under them, the CLI."""

from __future__ import annotations

import random
import shutil
from collections import Counter
from pathlib import Path

import pytest
import torch
import yaml

import nmt.decoding.shortlist as shortlist_module
from nmt.checkpoint import load_model
from nmt.cli import main as nmt_main
from nmt.cli.translate import main as translate_main
from nmt.data.batching import encode_sources
from nmt.decoding.beam import beam_search
from nmt.decoding.search import greedy
from nmt.decoding.shortlist import SHORTLIST_FILE, Shortlist, build_shortlist, count_pairs
from nmt.decoding.translator import Translator
from nmt.model.seq2seq import StepResult
from nmt.special import EOS_ID, PAD_ID, UNK_ID
from tests.helpers import WORDS, train_toy_model

LINES = ["ka lo mi ne", "su", "ta ri po ve zu an", "el el", "mi ka"]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    return train_toy_model(tmp_path_factory)


@pytest.fixture(scope="module")
def loaded(model_dir):
    return load_model(model_dir)


def batch(vocabs, lines=LINES) -> tuple[torch.Tensor, torch.Tensor]:
    return encode_sources(vocabs.src.encode(lines))


# ---------------------------------------------------------------------------- the table


def test_table_from_a_hand_made_corpus():
    src = [[5, 6, 7], [5, 8], [6, 7, 7], [9]]
    tgt = [[10, 11], [10], [11, 12, 12, 12], [9]]
    # sentence counts: c(5)=2 c(6)=2 c(7)=2 c(8)=1 c(9)=1; c(10)=2 c(11)=2 c(12)=1 c(9)=1
    sl = build_shortlist(src, tgt, 13, 14, frequent=2, per_source=2)
    assert sl.per_source.shape == (13, 2)
    assert sl.per_source[5].tolist() == [10, 11]  # Dice 1 (2 of 2), then 0.5
    assert sl.per_source[6].tolist() == [11, 12]  # 1, then 2/3 (beats 10's 1/2)
    assert sl.per_source[7].tolist() == [11, 12]  # a repeated token counts once a sentence
    assert sl.per_source[8].tolist() == [10, -1]  # only one partner: padded with -1
    assert sl.per_source[9].tolist() == [9, -1]
    assert sl.per_source[4].tolist() == [-1, -1]  # never seen
    assert sl.frequent.tolist() == [12, 10]  # token counts 3, 2 (10 and 11 tie: smaller id)
    strict = build_shortlist(src, tgt, 13, 14, frequent=0, per_source=3, min_count=2)
    assert strict.per_source[5].tolist() == [10, -1, -1]
    assert strict.per_source[6].tolist() == [11, -1, -1] and strict.frequent.numel() == 0


@pytest.mark.parametrize("chunk,merge", [(4096, 1 << 22), (7, 50)])  # 50: many merges
def test_counts_equal_a_python_loop(chunk, merge, monkeypatch):
    monkeypatch.setattr(shortlist_module, "_CHUNK", chunk)
    monkeypatch.setattr(shortlist_module, "_MERGE", merge)
    rng = random.Random(1)
    src = [[rng.randrange(4, 30) for _ in range(rng.randint(0, 9))] for _ in range(500)]
    tgt = [[rng.randrange(4, 40) for _ in range(rng.randint(1, 9))] for _ in range(500)]
    counts = count_pairs(iter(zip(src, tgt, strict=True)), 30, 40)  # read once, as a stream
    expected = Counter((a, b) for x, y in zip(src, tgt, strict=True)
                       for a in set(x) for b in set(y))
    assert dict(zip(zip(counts.src.tolist(), counts.tgt.tolist(), strict=True),
                    counts.both.tolist(), strict=True)) == expected
    assert list(zip(counts.src.tolist(), counts.tgt.tolist(), strict=True)) == sorted(expected)
    assert counts.c_src.tolist() == [sum(i in set(x) for x in src) for i in range(30)]
    assert counts.c_tgt.tolist() == [sum(i in set(y) for y in tgt) for i in range(40)]
    assert counts.tokens.tolist() == [sum(y.count(i) for y in tgt) for i in range(40)]
    assert counts.pairs == 500


def test_candidates_union_the_batch_include_eos_and_ignore_padding():
    per_source = torch.full((10, 2), -1, dtype=torch.long)
    per_source[PAD_ID] = torch.tensor([30, 31])  # must never show: padding is not a word
    per_source[5] = torch.tensor([20, 21])
    per_source[6] = torch.tensor([22, -1])
    sl = Shortlist(frequent=torch.tensor([25, 24]), per_source=per_source)
    src = torch.tensor([[5, EOS_ID, PAD_ID], [6, 6, EOS_ID]])
    got = sl.candidates(src, torch.tensor([2, 3]))
    assert got.tolist() == [UNK_ID, EOS_ID, 20, 21, 22, 24, 25]  # sorted, unique
    only_first = sl.candidates(src, torch.tensor([1, 0]))  # lengths, not values, decide
    assert only_first.tolist() == [UNK_ID, EOS_ID, 20, 21, 24, 25]


def test_save_and_load(tmp_path):
    sl = build_shortlist([[4, 5]], [[6, 7]], 8, 9, frequent=1, per_source=2)
    sl.save(tmp_path / SHORTLIST_FILE)
    back = Shortlist.load(tmp_path / SHORTLIST_FILE, 8, 9)
    assert torch.equal(back.frequent, sl.frequent)
    assert torch.equal(back.per_source, sl.per_source)
    with pytest.raises(Exception, match="other vocabularies"):
        Shortlist.load(tmp_path / SHORTLIST_FILE, 9, 9)
    (tmp_path / "junk.pt").write_bytes(b"not a torch file")
    with pytest.raises(Exception, match="corrupt or unreadable"):
        Shortlist.load(tmp_path / "junk.pt")


# ---------------------------------------------------------------------------- decoding


def full_shortlist(vocabs) -> Shortlist:
    return Shortlist(torch.arange(len(vocabs.tgt)),
                     torch.empty(len(vocabs.src), 0, dtype=torch.long))


def assert_same(a, b):
    assert [h.tokens for h in a] == [h.tokens for h in b]
    assert [h.finished for h in a] == [h.finished for h in b]
    for x, y in zip(a, b, strict=True):
        assert x.score == pytest.approx(y.score, abs=1e-5)
        assert x.token_scores == pytest.approx(y.token_scores, abs=1e-5)


def test_memory_select_keeps_the_batch_vocabulary(loaded):
    model, _, vocabs = loaded
    src, lengths = batch(vocabs)
    vocab = torch.tensor([UNK_ID, EOS_ID, 7, 9])
    sl = Shortlist(vocab[2:], torch.full((len(vocabs.src), 1), -1))
    memory, _ = sl.restrict(model).encode(src, lengths)
    assert torch.equal(memory.vocab, vocab)
    assert torch.equal(memory.output.weight, model.generator.weight[vocab])
    assert type(memory.output) is type(model.generator)  # the same kernels
    picked = memory.select(torch.tensor([2, 2, 0]))
    assert picked.vocab is memory.vocab and picked.output is memory.output
    assert torch.equal(picked.mask[0], memory.mask[2])
    assert picked.expand(3).vocab is memory.vocab


def test_full_shortlist_decodes_exactly_as_without(loaded):
    model, cfg, vocabs = loaded
    src, lengths = batch(vocabs)
    restricted = full_shortlist(vocabs).restrict(model)
    assert_same(greedy(model, src, lengths), greedy(restricted, src, lengths))
    plain = beam_search(model, src, lengths, beam_size=4, n_best=3)
    short = beam_search(restricted, src, lengths, beam_size=4, n_best=3)
    for a, b in zip(plain, short, strict=True):
        assert_same(a, b)
    one = Translator(model, vocabs.src, vocabs.tgt, cfg.decode).translate(LINES)
    two = Translator(model, vocabs.src, vocabs.tgt, cfg.decode,
                     shortlist=full_shortlist(vocabs)).translate(LINES)
    assert [t.text for t in one] == [t.text for t in two]


def test_restricted_shortlist_emits_only_candidates(loaded):
    model, _, vocabs = loaded
    src, lengths = batch(vocabs)
    allowed = [vocabs.tgt.encode([w])[0][0] for w in ("MI", "SU")]
    sl = Shortlist(torch.tensor(allowed), torch.full((len(vocabs.src), 1), -1))
    vocab = sl.candidates(src, lengths)
    assert vocab.tolist() == sorted([UNK_ID, EOS_ID, *allowed])
    restricted = sl.restrict(model)
    memory, state = restricted.encode(src, lengths)
    step = restricted.decode_step(torch.full((src.size(0),), 2), state, memory)
    assert step.log_probs.shape == (src.size(0), len(vocab)) and torch.equal(step.vocab, vocab)
    memory_all, _ = model.encode(src, lengths)  # the same logits, renormalised over vocab
    full = model.decode_step(torch.full((src.size(0),), 2), state, memory_all).log_probs
    torch.testing.assert_close(step.log_probs, full[:, vocab].log_softmax(-1))
    assert step.token_ids(torch.tensor([[0, 3]])).tolist() == [[vocab[0], vocab[3]]]
    hyps = greedy(restricted, src, lengths, max_len_offset=4)
    hyps += [h for n in beam_search(restricted, src, lengths, beam_size=3, n_best=3,
                                    max_len_offset=4) for h in n]
    assert len(hyps) == 5 + 15
    assert all(t in vocab.tolist() for h in hyps for t in h.tokens)
    assert all(h.score > -float("inf") for h in hyps)


class FullWidth:
    """The reference layout: a shortlist step's log-probs spread over all V ids, -inf at the
    ids outside the batch's candidates (search then picks among all V columns)."""

    def __init__(self, inner, V: int):
        self.inner, self.V = inner, V
        self.encode, self.reorder_state = inner.encode, inner.reorder_state

    def decode_step(self, tokens, state, memory):
        step = self.inner.decode_step(tokens, state, memory)
        full = step.log_probs.new_full((tokens.size(0), self.V), -float("inf"))
        return StepResult(full.index_copy_(1, step.vocab, step.log_probs), step.state,
                          step.attn)


def test_search_over_candidate_columns_equals_search_over_all_ids(loaded):
    """Picking among the V' candidate columns gives what -inf at every other id gives."""
    model, _, vocabs = loaded
    src, lengths = batch(vocabs)
    g = torch.Generator().manual_seed(0)
    keep = torch.randperm(len(vocabs.tgt), generator=g)[: len(vocabs.tgt) // 2]
    sl = Shortlist(keep.sort().values, torch.empty(len(vocabs.src), 0, dtype=torch.long))
    short, wide = sl.restrict(model), FullWidth(sl.restrict(model), len(vocabs.tgt))
    assert_same(greedy(short, src, lengths), greedy(wide, src, lengths))
    for options in ({}, {"ban_unk": True, "min_len": 3, "length_penalty": "average"}):
        a = beam_search(short, src, lengths, beam_size=4, n_best=3, **options)
        b = beam_search(wide, src, lengths, beam_size=4, n_best=3, **options)
        for x, y in zip(a, b, strict=True):
            assert_same(x, y)
        hyps = [h for n in a for h in n]
        assert all(t in sl.candidates(src, lengths).tolist() for h in hyps for t in h.tokens)
        if options:
            assert all(UNK_ID not in h.tokens and len(h.tokens) >= 3 for h in hyps)


# ---------------------------------------------------------------------------- command line


def test_cli_builds_the_shortlist_and_reports_coverage(model_dir, loaded, capsys):
    _, _, vocabs = loaded
    assert nmt_main(["shortlist", "--model-dir", str(model_dir), "--frequent", "3",
                     "--per-source", "2", "--quiet"]) == 0
    out, err = capsys.readouterr()
    assert err == "" and str(model_dir / SHORTLIST_FILE) in out
    assert "inside their sentence's candidates" in out and "batches of 100" in out
    sl = Shortlist.load(model_dir / SHORTLIST_FILE, len(vocabs.src), len(vocabs.tgt))
    assert sl.per_source.shape == (len(vocabs.src), 2) and sl.frequent.numel() == 3
    for word in WORDS:  # the toy task copies words: each word's best partner is itself
        s, t = vocabs.src.encode([word])[0], vocabs.tgt.encode([word.upper()])[0]
        assert len(s) == len(t) == 1 and sl.per_source[s[0], 0] == t[0]


def test_cli_streams_a_streaming_corpus_to_the_same_shortlist(model_dir, tmp_path, capsys):
    """`data.streaming` reads the training split as a stream: the same counts, the same
    shortlist as from the loaded split; --max-pairs counts a prefix in both modes."""
    streamed = tmp_path / "streamed"
    shutil.copytree(model_dir, streamed)
    config = (streamed / "config.yaml").read_text(encoding="utf-8")
    assert "streaming: false" in config
    (streamed / "config.yaml").write_text(config.replace("streaming: false", "streaming: true"),
                                          encoding="utf-8")
    for extra in ([], ["--max-pairs", "40"]):
        tables = []
        for d in (model_dir, streamed):
            assert nmt_main(["shortlist", "--model-dir", str(d), "--quiet", *extra]) == 0
            out = capsys.readouterr().out
            tables.append(Shortlist.load(d / SHORTLIST_FILE))
        assert torch.equal(tables[0].per_source, tables[1].per_source)
        assert torch.equal(tables[0].frequent, tables[1].frequent)
        if extra:
            assert ": 40 training pairs" in out
    assert nmt_main(["shortlist", "--model-dir", str(model_dir), "--max-pairs", "0"]) == 2
    assert "--max-pairs: must be >= 1" in capsys.readouterr().err
    # an empty streamed training split: one clear line, no empty shortlist written
    cfg = yaml.safe_load((streamed / "config.yaml").read_text(encoding="utf-8"))
    corpus = tmp_path / "empty_corpus"
    shutil.copytree(cfg["data"]["path"], corpus)
    for f in corpus.glob(f"{cfg['data']['train_split']}.*"):
        f.write_text("", encoding="utf-8")
    cfg["data"]["path"] = str(corpus)
    (streamed / "config.yaml").write_text(yaml.safe_dump(cfg), encoding="utf-8")
    (streamed / SHORTLIST_FILE).unlink()
    assert nmt_main(["shortlist", "--model-dir", str(streamed)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.endswith("train: no training pairs to count") and len(err.splitlines()) == 1
    assert not (streamed / SHORTLIST_FILE).exists()


def test_cli_errors_without_a_model_dir(tmp_path, capsys):
    assert nmt_main(["shortlist", "--model-dir", str(tmp_path / "nowhere")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "nowhere" in err and err.count("\n") == 1
    assert nmt_main(["shortlist", "--model-dir", str(tmp_path), "--per-source", "-1"]) == 2
    assert "--per-source: must be >= 0" in capsys.readouterr().err


def test_translate_with_shortlist(model_dir, tmp_path, capsys):
    src = tmp_path / "in.txt"
    src.write_text("\n".join(LINES) + "\n", encoding="utf-8")
    bare = tmp_path / "bare"
    shutil.copytree(model_dir, bare, ignore=shutil.ignore_patterns(SHORTLIST_FILE))
    args = ["--input", str(src), "--quiet", "--shortlist"]
    assert translate_main(["--checkpoint", str(bare)] + args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(bare / SHORTLIST_FILE) in err
    assert f"nmt shortlist --model-dir {bare}" in err
    assert nmt_main(["shortlist", "--model-dir", str(bare), "--quiet"]) == 0
    capsys.readouterr()
    assert translate_main(["--checkpoint", str(bare / "best.pt")] + args) == 0
    assert capsys.readouterr().out.count("\n") == len(LINES)
