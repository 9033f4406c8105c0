"""Ensembles: scripted members combine exactly as documented; with real models an ensemble
of one is the model, two copies of a model are the model, the batch size changes nothing,
and members with other source vocabularies or shortlists decode."""

from __future__ import annotations

import math
import shutil
import types

import pytest
import torch

from nmt import api
from nmt.cli import main as nmt_main
from nmt.config import DecodeConfig
from nmt.decoding.decode import decode_ids, make_search
from nmt.decoding.ensemble import Ensemble, normalise_weights
from nmt.decoding.search import greedy
from nmt.decoding.translator import Translator
from nmt.errors import NmtError
from nmt.special import BOS_ID, EOS_ID
from tests.helpers import train_toy_model
from tests.test_beam import PrefixModel

VOCAB = 10


def fake_vocab(name: bytes):
    """What `Ensemble` reads of a source vocabulary: its serialized model."""
    return types.SimpleNamespace(sp=types.SimpleNamespace(serialized_model_proto=lambda: name))


A = {(): {5: 0.98, 6: 0.02}, (5,): {EOS_ID: 1.0}, (6,): {EOS_ID: 1.0}}
B = {(): {5: 0.001, 6: 0.5, 7: 0.499}, (5,): {EOS_ID: 1.0}, (6,): {EOS_ID: 1.0},
     (7,): {EOS_ID: 1.0}}


def probs(script: dict, prefix: tuple) -> list[float]:
    """The scripted distribution as PrefixModel gives it (1e-9 for unlisted tokens)."""
    row = script.get(prefix, {EOS_ID: 1.0})
    return [row.get(t, 1e-9) for t in range(VOCAB)]


def ensemble(scripts, weights=None, combine="prob", same=(True, True)):
    members = [PrefixModel([s], vocab=VOCAB) for s in scripts]
    vocabs = [fake_vocab(b"v0" if s else b"other") for s in same]
    return Ensemble(members, vocabs, weights, combine)


def first_step(model):
    src, lengths = torch.ones(1, 3, dtype=torch.long), torch.tensor([3])
    memory, state = model.encode(src, lengths)
    return model.decode_step(torch.tensor([BOS_ID]), state, memory)


@pytest.mark.parametrize("weights", [None, (0.75, 0.25), (3.0, 1.0)])
def test_prob_is_the_log_of_the_weighted_mean_of_probabilities(weights):
    w = normalise_weights(weights, 2)
    step = first_step(ensemble([A, B], weights))
    pa, pb = probs(A, ()), probs(B, ())
    expected = [math.log(w[0] * a + w[1] * b) for a, b in zip(pa, pb, strict=True)]
    assert step.log_probs[0].tolist() == pytest.approx(expected, rel=1e-5)
    # greedy over it takes 5 (the mean of probabilities favours A's confident 5)
    hyp = greedy(ensemble([A, B], weights), torch.ones(1, 3, dtype=torch.long),
                 torch.tensor([3]), max_len_ratio=1.0, max_len_offset=3)[0]
    assert hyp.tokens == [5] and hyp.token_scores[0] == pytest.approx(expected[5], rel=1e-5)


def test_logprob_is_the_renormalised_weighted_mean_of_log_probabilities():
    step = first_step(ensemble([A, B], (0.5, 0.5), combine="logprob"))
    geo = [math.sqrt(a * b) for a, b in zip(probs(A, ()), probs(B, ()), strict=True)]
    expected = [math.log(g / sum(geo)) for g in geo]
    assert step.log_probs[0].tolist() == pytest.approx(expected, rel=1e-4)
    assert step.log_probs[0].exp().sum().item() == pytest.approx(1.0, abs=1e-6)
    # the product of experts holds back 5, which B finds unlikely: 6 wins
    hyp = greedy(ensemble([A, B], combine="logprob"), torch.ones(1, 3, dtype=torch.long),
                 torch.tensor([3]), max_len_ratio=1.0, max_len_offset=3)[0]
    assert hyp.tokens == [6]


def test_attention_is_the_mean_of_the_members_reading_member_0s_source():
    rows = {(): [0.7, 0.2, 0.1]}, {(): [0.1, 0.1, 0.8]}
    members = [PrefixModel([A], vocab=VOCAB, attention=rows[0]),
               PrefixModel([B], vocab=VOCAB, attention=rows[1])]
    both = Ensemble(members, [fake_vocab(b"v"), fake_vocab(b"v")], (0.75, 0.25))
    assert first_step(both).attn[0].tolist() == pytest.approx([0.55, 0.175, 0.275])
    # a member with another source vocabulary attends over other positions: left out
    other = Ensemble(members, [fake_vocab(b"v"), fake_vocab(b"w")], (0.75, 0.25))
    other.sources = lambda src, lengths: [(src, lengths), (src, lengths)]  # no re-encoding
    assert first_step(other).attn[0].tolist() == pytest.approx([0.7, 0.2, 0.1])


def test_bad_weights_and_combine_are_one_line():
    with pytest.raises(NmtError, match=r"--ensemble-weights: 1 weight\(s\) for 2 member"):
        ensemble([A, B], (1.0,))
    with pytest.raises(NmtError, match="--ensemble-weights: weights must be >= 0"):
        ensemble([A, B], (1.0, -1.0))
    with pytest.raises(NmtError, match="--ensemble-combine: 'max' is not one of"):
        ensemble([A, B], combine="max")


# ---------------------------------------------------------------------- real (toy) models

@pytest.fixture(scope="module")
def members(tmp_path_factory):
    """Two toy models trained with different seeds on the same corpus (same vocabularies)."""
    return [train_toy_model(tmp_path_factory, seed=seed, max_steps=10) for seed in (3, 4)]


LINES = ["ka lo", "mi ri su ta", "", "lo lo ka", "su"]


def translate(loaded: api.Loaded, beam: int, batch_size: int = 16, lines=LINES):
    decode = DecodeConfig(beam_size=beam, batch_size=batch_size)
    translator = Translator(loaded.decodable, loaded.vocabs.src, loaded.vocabs.tgt, decode)
    return translator.translate(lines)


def hyps_of(results):
    return [[(h.tokens, h.score, h.attention) for h in r.hyps] for r in results]


@pytest.mark.parametrize("beam", [1, 4])
def test_an_ensemble_of_one_is_the_model(members, beam):
    alone = api.load(members[0])
    one = api.load([members[0]], weights=[1.0])  # forced through Ensemble
    assert isinstance(one.decodable, Ensemble) and not isinstance(alone.decodable, Ensemble)
    for a, b in zip(hyps_of(translate(alone, beam)), hyps_of(translate(one, beam)), strict=True):
        for (ta, sa, aa), (tb, sb, ab) in zip(a, b, strict=True):
            assert ta == tb and sa == sb and torch.equal(aa, ab)


@pytest.mark.parametrize("beam", [1, 4])
@pytest.mark.parametrize("combine", ["prob", "logprob"])
def test_two_copies_of_a_model_are_the_model(members, beam, combine):
    alone = translate(api.load(members[0]), beam)
    twice = translate(api.load([members[0], members[0]], combine=combine), beam)
    for a, b in zip(hyps_of(alone), hyps_of(twice), strict=True):
        for (ta, sa, aa), (tb, sb, ab) in zip(a, b, strict=True):
            assert ta == tb and sa == pytest.approx(sb, abs=1e-4)
            torch.testing.assert_close(aa, ab)


def test_two_members_differ_from_each_and_are_batch_size_independent(members):
    pair = api.load(members)
    big = translate(pair, 4, batch_size=16)
    small = translate(pair, 4, batch_size=1)
    assert [r.text for r in big] == [r.text for r in small]
    for a, b in zip(hyps_of(big), hyps_of(small), strict=True):
        for (ta, sa, _), (tb, sb, _) in zip(a, b, strict=True):
            assert ta == tb and sa == pytest.approx(sb, abs=1e-5)
    # the combination is really used: the pair's scores are neither member's
    singles = [[h.score for r in translate(api.load(m), 4) for h in r.hyps] for m in members]
    scores = [h.score for r in big for h in r.hyps]
    assert scores != singles[0] and scores != singles[1]


def test_members_must_share_the_target_vocabulary(members, tmp_path):
    other = tmp_path / "other"
    shutil.copytree(members[1], other)
    shutil.copy(members[1] / "spm.src.model", other / "spm.tgt.model")  # another target side
    with pytest.raises(NmtError, match=rf"--model-dir {other}: its target vocabulary .* "
                                       "differs from .*must share it"):
        api.load([members[0], other])


def test_a_member_with_another_source_vocabulary_reads_its_own_pieces(members, tmp_path):
    """Member 1 gets member 0's sentences re-encoded with its own sentencepiece model."""
    from nmt.checkpoint import load_model
    from nmt.config import VocabConfig
    from nmt.data.vocab import SubwordVocab, _train_one
    from nmt.model.seq2seq import build_model
    from tests.helpers import write_toy_corpus

    model0, cfg, vocabs0 = load_model(members[0])
    spm_file = tmp_path / "spm.src.model"
    corpus = (write_toy_corpus(tmp_path / "toy") / "train.xx").read_text().splitlines()
    _train_one(corpus, spm_file, VocabConfig(vocab_size=30), seed=1)

    vocab1 = SubwordVocab(spm_file)
    assert vocab1.sp.serialized_model_proto() != vocabs0.src.sp.serialized_model_proto()
    torch.manual_seed(0)
    model1 = build_model(cfg.model, len(vocab1), len(vocabs0.tgt)).eval()
    seen = []
    encode = model1.encode
    model1.encode = lambda src, lengths: seen.append(src) or encode(src, lengths)
    ens = Ensemble([model0, model1], [vocabs0.src, vocab1])
    lines = ["ka lo mi", "su ta"]
    src_ids = [vocabs0.src.encode([line])[0] for line in lines]
    hyps = decode_ids(ens, src_ids, make_search(DecodeConfig(beam_size=3)), 8)
    assert len(hyps) == 2 and all(h.tokens or h.finished for h in hyps)
    expected = [vocab1.encode([line])[0] + [EOS_ID] for line in lines]
    got = [[t for t in row if t != 0] for row in seen[0].tolist()]
    assert sorted(got) == sorted(expected)


def test_cli_ensemble_with_quantize_and_shortlist(members, tmp_path, capsys):
    src = tmp_path / "in.txt"
    src.write_text("\n".join(LINES) + "\n", encoding="utf-8")
    for m in members:
        assert nmt_main(["shortlist", "--model-dir", str(m), "--quiet"]) == 0
    args = ["translate", "--model-dir", str(members[0]), "--model-dir", str(members[1]),
            "--input", str(src), "--quiet"]
    for extra in ([], ["--quantize"], ["--shortlist"], ["--quantize", "--shortlist"],
                  ["--ensemble-weights", "2", "1", "--ensemble-combine", "logprob"]):
        capsys.readouterr()
        assert nmt_main(args + extra) == 0, extra
        out = capsys.readouterr().out.splitlines()
        assert len(out) == len(LINES) and out[2] == "", extra
    assert nmt_main(args + ["--ensemble-weights", "1"]) == 2
    assert "--ensemble-weights: 1 weight(s) for 2 member(s)" in capsys.readouterr().err


def test_merged_shortlist_is_the_union_of_the_members_candidates(members):
    loaded = api.load(members, shortlist=True)
    src_ids = [loaded.vocabs.src.encode(["ka lo mi"])[0]]
    from nmt.data.batching import encode_sources

    src, lengths = encode_sources(src_ids)
    memory, _ = loaded.decodable.encode(src, lengths)
    union = torch.cat([m.shortlist.candidates(src, lengths)
                       for m in loaded.decodable.members]).unique()
    assert torch.equal(memory.vocab, union)
    assert all(torch.equal(m.vocab, union) for m in memory.members)


def test_alignment_with_an_ensemble(members, tmp_path):
    """Forced decoding through an ensemble of one (step by step) gives the model's own
    teacher-forced attention and scores; `nmt align` takes several checkpoints."""
    from nmt.alignment.extract import align_lines

    src = ["ka lo mi", "su ta ri ne"]
    tgt = ["MI LO KA", "NE RI TA SU"]
    alone = api.load(members[0], fused=False)
    one = api.load([members[0]], weights=[1.0], fused=False)
    assert isinstance(one.decodable, Ensemble)
    a = align_lines(alone.decodable, alone.vocabs, src, tgt)
    b = align_lines(one.decodable, one.vocabs, src, tgt)
    for x, y in zip(a, b, strict=True):
        assert x.score == pytest.approx(y.score, abs=1e-4)
        assert x.attention.shape == y.attention.shape
        assert abs(x.attention - y.attention).max() < 1e-5
        assert x.links() == y.links()
    (tmp_path / "s").write_text("\n".join(src) + "\n")
    (tmp_path / "t").write_text("\n".join(tgt) + "\n")
    args = ["align", "--checkpoint", str(members[0]), "--checkpoint", str(members[1]),
            "--src", str(tmp_path / "s"), "--out", str(tmp_path / "out"), "--quiet"]
    assert nmt_main(args + ["--tgt", str(tmp_path / "t")]) == 0
    assert len((tmp_path / "out" / "alignments.pharaoh").read_text().splitlines()) == 2
    assert nmt_main(args + ["--beam", "3"]) == 0
