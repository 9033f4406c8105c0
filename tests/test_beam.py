"""Beam search: scripted decoders with hand-derived results, then the real (tiny) model.

Conventions of the hand derivations below: K = beam size; each step the search takes the 2K
best expansions per sentence; an EOS among the first K ends a hypothesis (finished); the first
K non-EOS ones form the next beam. "p" is a hypothesis' probability, its raw score is ln p;
L counts emitted tokens, EOS included. Tokens a script does not list get probability 1e-9.
"""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass, field, replace

import pytest
import torch

from nmt.config import DecodeConfig
from nmt.decoding.beam import beam_search
from nmt.decoding.decode import beam_search_fn
from nmt.decoding.processors import (
    LengthPenalty,
    apply_processors,
    ban_tokens,
    build_processors,
    coverage_penalty,
    min_length,
)
from nmt.decoding.search import greedy
from nmt.model.decoder import DecoderState, Memory
from nmt.model.seq2seq import StepResult, build_model
from nmt.special import BOS_ID, EOS_ID, UNK_ID
from tests.test_model import VARIANTS, padded_batch, tiny_config

ln = math.log
MAX_STEPS = 16


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """Tiny tensors: extra threads only cost synchronisation (badly so on a busy machine)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@dataclass
class PrefixModel:
    """A decoder whose next-token distribution depends on the prefix emitted so far.

    scripts[b][prefix] = {token: prob} for sentence b, prefix = the tokens emitted after BOS;
    a prefix not in the script gets `default`. attention[prefix] is the attention row of the
    step taken from that prefix (uniform over the real source if absent). The state carries
    the prefix itself (h: tokens, c: their number, feed: the sentence), so a search that
    reorders the beam wrongly reads the wrong script entries. Extending a hypothesis that
    already emitted EOS is an error; `calls` counts decoder steps.
    """

    scripts: list[dict[tuple[int, ...], dict[int, float]]]
    default: dict[int, float] = field(default_factory=lambda: {EOS_ID: 1.0})
    attention: dict[tuple[int, ...], list[float]] = field(default_factory=dict)
    vocab: int = 10
    calls: int = 0

    def encode(self, src, src_lengths):
        B, S = src.shape
        mask = torch.arange(S)[None] < src_lengths[:, None]
        memory = Memory(torch.zeros(B, S, 1), torch.zeros(B, S, 1), mask)
        sentence = torch.arange(B, dtype=torch.float).view(B, 1)
        return memory, DecoderState((torch.zeros(1, B, MAX_STEPS), torch.zeros(1, B, 1)), sentence)

    def decode_step(self, tokens, state, memory):
        self.calls += 1
        h, c = state.rnn[0].clone(), state.rnn[1] + 1
        probs = torch.full((tokens.size(0), self.vocab), 1e-9)
        mask = memory.row_mask()
        attn = mask.float() / mask.sum(1, keepdim=True)
        for r in range(tokens.size(0)):
            n = int(state.rnn[1][0, r, 0])
            if n > 0:  # the token fed now is the last one emitted
                h[0, r, n - 1] = tokens[r]
            prefix = tuple(int(x) for x in h[0, r, :n])
            assert EOS_ID not in prefix, f"hypothesis {prefix} extended after EOS"
            row = self.scripts[int(state.feed[r, 0])].get(prefix, self.default)
            probs[r, list(row)] = torch.tensor(list(row.values()))
            if prefix in self.attention:
                attn[r] = torch.tensor(self.attention[prefix])
        return StepResult(probs.log(), DecoderState((h, c), state.feed), attn)

    @staticmethod
    def reorder_state(state, index):
        return state.select(index)


def run(scripts, *, src_lengths=(2,), ratio=1.0, offset=4, **kw):
    """Beam search over `scripts` (one per sentence); max length ceil(ratio*S)+offset."""
    model = scripts if isinstance(scripts, PrefixModel) else PrefixModel(scripts)
    lengths = torch.tensor(src_lengths)
    src = torch.ones(len(src_lengths), max(src_lengths), dtype=torch.long)
    kw.setdefault("length_penalty", "none")
    return beam_search(model, src, lengths, max_len_ratio=ratio, max_len_offset=offset, **kw)


def summary(hyps):
    return [(h.tokens, h.finished) for h in hyps]


# Greedy takes 5 (0.5 > 0.4), but every continuation of 5 is poor; 6 7 is better.
BETTER_LATER = {
    (): {5: 0.5, 6: 0.4, 9: 0.1},
    (5,): {7: 0.4, 8: 0.35, 9: 0.25},
    (6,): {7: 0.9, 8: 0.1},
    (5, 7): {EOS_ID: 1.0}, (6, 7): {EOS_ID: 1.0},
}


def test_beam_finds_what_greedy_misses():
    # K=2. Step 0: candidates 5 (.5), 6 (.4), 9 (.1), no EOS: beam [5], [6].
    # Step 1: 6 7 (.4*.9=.36), 5 7 (.2), 5 8 (.175), 5 9 (.125): beam [6 7], [5 7].
    # Step 2: 6 7 EOS (.36) and 5 7 EOS (.2) are the two best: both finish, K finished: stop.
    # Greedy: 5 (.5), 7 (.4), EOS (1) = .2.
    (g,) = greedy(PrefixModel([BETTER_LATER]), torch.ones(1, 2, dtype=torch.long),
                  torch.tensor([2]))
    assert g.tokens == [5, 7] and g.score == pytest.approx(ln(0.2))
    (hyps,) = run([BETTER_LATER], beam_size=2, n_best=2)
    assert summary(hyps) == [([6, 7], True), ([5, 7], True)]
    assert [h.score for h in hyps] == pytest.approx([ln(0.36), ln(0.2)])
    assert hyps[0].token_scores == pytest.approx([ln(0.4), ln(0.9), 0.0])
    assert hyps[0].raw_score == pytest.approx(hyps[0].score)
    assert hyps[0].attention.shape == (3, 2)  # one row per emitted token, EOS included


EARLY_EOS = {
    (): {EOS_ID: 0.4, 5: 0.35, 6: 0.25},
    (5,): {EOS_ID: 0.9, 7: 0.1},
    (6,): {EOS_ID: 0.8, 8: 0.2},
}


def test_early_finished_hypothesis_is_kept_and_not_extended():
    # K=2. Step 0: EOS (.4) ranks first: the empty hypothesis finishes (L=1); beam [5], [6].
    # Step 1: 5 EOS (.315), 6 EOS (.2), 6 8 (.05), 5 7 (.035): both EOS finish; 3 finished.
    # The empty one, ended at step 0, still ranks first. PrefixModel checks no prefix holds EOS.
    model = PrefixModel([EARLY_EOS])
    (hyps,) = run(model, beam_size=2, n_best=2)
    assert summary(hyps) == [([], True), ([5], True)]
    assert [h.score for h in hyps] == pytest.approx([ln(0.4), ln(0.35 * 0.9)])
    assert hyps[0].token_scores == pytest.approx([ln(0.4)])
    assert hyps[0].attention.shape == (1, 2)
    assert model.calls == 2


def test_stops_when_no_live_hypothesis_can_win():
    # n_best=1, no length penalty: after step 0 the finished empty hypothesis (ln .4) beats
    # the best live one (ln .35), whose score can only fall: one decoder step in all.
    model = PrefixModel([EARLY_EOS])
    (hyps,) = run(model, beam_size=2, n_best=1)
    assert summary(hyps) == [([], True)] and model.calls == 1


# A: 5 EOS (p=.6*.55=.33, L=2); B: 6 8 9 EOS (p=.4*.9^3=.2916, L=4); C: 5 7 8 EOS
# (p=.6*.45*.8*.6=.1296, L=4).
# K=2. Step 0: beam [5] (.6), [6] (.4).
# Step 1: 6 8 (.36), 5 EOS (.33) -> A finishes; 5 7 (.27), 6 7 (.04): beam [6 8], [5 7].
# Step 2: 6 8 9 (.324), 5 7 8 (.216), 5 7 EOS (.054: rank 2, not kept), 6 8 7 (.036).
#   Without length penalty A (ln .33) beats the best live (ln .324): stop, A wins.
#   With alpha=1 or average the bound (ln .324 over the largest denominator, at the max
#   length 6) is far above A's score: go on.
# Step 3: 6 8 9 EOS (.2916) -> B, 5 7 8 EOS (.1296) -> C; 3 finished: stop.
#   average: A ln(.33)/2 = -.554, B ln(.2916)/4 = -.308, C ln(.1296)/4 = -.511: B, C, A.
#   gnmt:1 (lp(2)=7/6, lp(4)=9/6): A -.950, B -.822, C -1.362: B, A, C.
#   B beats A under gnmt once alpha > ln(1.23237/1.10866)/ln(1.5/(7/6)) = 0.42.
SHORT_OR_LONG = {
    (): {5: 0.6, 6: 0.4},
    (5,): {EOS_ID: 0.55, 7: 0.45},
    (6,): {8: 0.9, 7: 0.1},
    (5, 7): {EOS_ID: 0.2, 8: 0.8},
    (6, 8): {9: 0.9, 7: 0.1},
    (5, 7, 8): {EOS_ID: 0.6, 9: 0.4},
    (6, 8, 9): {EOS_ID: 0.9, 7: 0.1},
}
A, B, C = [5], [6, 8, 9], [5, 7, 8]


@pytest.mark.parametrize("penalty,best,score", [
    ("none", A, ln(0.33)),
    ("gnmt:0", A, ln(0.33)),
    ("gnmt:0.3", A, ln(0.33) / (7 / 6) ** 0.3),
    ("gnmt:1", B, ln(0.2916) / 1.5),
    ("average", B, ln(0.2916) / 4),
])
def test_length_penalty_moves_between_short_and_long(penalty, best, score):
    (hyps,) = run([SHORT_OR_LONG], beam_size=2, length_penalty=penalty)
    assert hyps[0].tokens == best and hyps[0].score == pytest.approx(score)
    assert hyps[0].raw_score == pytest.approx(ln(0.33) if best == A else ln(0.2916))


@pytest.mark.parametrize("penalty,order", [("average", [B, C]), ("none", [A, B]),
                                           ("gnmt:1", [B, A])])
def test_nbest_order(penalty, order):
    # n_best=2 with no penalty: after step 2 only A has finished (< n_best), so the search
    # goes on to step 3 and returns A (ln .33), B (ln .2916).
    (hyps,) = run([SHORT_OR_LONG], beam_size=2, n_best=2, length_penalty=penalty)
    assert [h.tokens for h in hyps] == order
    assert hyps[0].score >= hyps[1].score


def test_nbest_must_fit_the_beam():
    with pytest.raises(ValueError, match="n_best"):
        run([SHORT_OR_LONG], beam_size=2, n_best=3)
    with pytest.raises(ValueError, match="n_best"):
        run([SHORT_OR_LONG], beam_size=2, n_best=0)
    with pytest.raises(ValueError, match="beta"):
        run([SHORT_OR_LONG], beam_size=2, coverage_penalty=-0.1)


@pytest.mark.parametrize("n,tokens,p", [
    (0, [], 0.4),  # as in test_stops_when_no_live_hypothesis_can_win
    # EOS banned at step 0: beam [5] (.35), [6] (.25); step 1: 5 EOS (.315), 6 EOS (.2).
    (1, [5], 0.35 * 0.9),
    # EOS banned at steps 0 and 1: beam [6 8] (.05), [5 7] (.035); both unscripted from
    # there (default: EOS 1.0): 6 8 EOS (.05) wins.
    (2, [6, 8], 0.25 * 0.2),
])
def test_min_length(n, tokens, p):
    (hyps,) = run([EARLY_EOS], beam_size=2, min_len=n)
    assert hyps[0].tokens == tokens and hyps[0].score == pytest.approx(ln(p))


def test_ban_unk():
    # Step 0: UNK (.7), 5 (.3); then EOS (1.0) after either. Banned, UNK's log-prob is -inf
    # and the second beam row is a 1e-9 token.
    script = {(): {UNK_ID: 0.7, 5: 0.3}}
    (hyps,) = run([script], beam_size=2)
    assert hyps[0].tokens == [UNK_ID] and hyps[0].score == pytest.approx(ln(0.7))
    (hyps,) = run([script], beam_size=2, n_best=2, ban_unk=True)
    assert hyps[0].tokens == [5] and hyps[0].score == pytest.approx(ln(0.3))
    assert all(UNK_ID not in h.tokens for h in hyps)


NEVER_ENDS = PrefixModel([{(): {5: 0.6, 6: 0.4}}], default={5: 0.7, 6: 0.3})


def test_max_length_returns_unfinished_hypotheses():
    # S=2, ratio 1, offset 1: at most 3 tokens. Step 0: [5] .6, [6] .4. Step 1: 5 5 (.42),
    # 6 5 (.28), 5 6 (.18), 6 6 (.12). Step 2: 5 5 5 (.294), 6 5 5 (.196), 5 5 6 (.126), ...
    # 3 tokens reached: the beam ends unfinished.
    (hyps,) = run(NEVER_ENDS, beam_size=2, n_best=2, offset=1)
    assert summary(hyps) == [([5, 5, 5], False), ([6, 5, 5], False)]
    assert [h.score for h in hyps] == pytest.approx([ln(0.294), ln(0.196)])
    assert [len(h.token_scores) for h in hyps] == [3, 3]
    assert hyps[1].attention.shape == (3, 2)


FINISHES_LOW = {(): {5: 0.6, 6: 0.4}, (5,): {5: 0.7, 6: 0.3}, (6,): {EOS_ID: 0.9, 5: 0.1}}


def test_finished_ranks_before_unfinished():
    # At most 2 tokens. Step 1: 5 5 (.42), 6 EOS (.36) -> finished, 5 6 (.18), 6 5 (.04);
    # the beam [5 5], [5 6] is then cut. The finished 6 comes first despite ln .36 < ln .42.
    (hyps,) = run([FINISHES_LOW], beam_size=2, n_best=2, offset=0)
    assert summary(hyps) == [([6], True), ([5, 5], False)]
    assert [h.score for h in hyps] == pytest.approx([ln(0.36), ln(0.42)])


def test_batch_of_scripts_equals_one_at_a_time():
    """Sentences that end at different steps leave the batch; results do not change."""
    scripts = [BETTER_LATER, EARLY_EOS, FINISHES_LOW, SHORT_OR_LONG]
    lengths = [3, 1, 2, 5]
    kw = dict(beam_size=2, n_best=2, offset=0, length_penalty="average")
    batched = run(scripts, src_lengths=lengths, **kw)
    for script, n, hyps in zip(scripts, lengths, batched, strict=True):
        (alone,) = run([script], src_lengths=[n], **kw)
        assert summary(hyps) == summary(alone)
        assert [h.score for h in hyps] == pytest.approx([h.score for h in alone])
        assert all(h.attention.shape == (len(h.token_scores), n) for h in hyps)


def test_coverage_penalty_reranks():
    # 5 EOS (p=.6) attends [.9, .1] twice: coverage [1.8, .2] -> log(min(., 1)) sums to ln .2.
    # 6 EOS (p=.4) attends [.9, .1] then [.1, .9]: coverage [1, 1] -> 0.
    # beta=.5: 5 EOS: ln .6 + .5 ln .2 = -1.316 < 6 EOS: ln .4 = -0.916.
    model = PrefixModel([{(): {5: 0.6, 6: 0.4}}], attention={
        (): [0.9, 0.1], (5,): [0.9, 0.1], (6,): [0.1, 0.9]})
    (hyps,) = run(model, beam_size=2, n_best=2)
    assert [h.tokens for h in hyps] == [[5], [6]]
    (hyps,) = run(model, beam_size=2, n_best=2, coverage_penalty=0.5)
    assert [h.tokens for h in hyps] == [[6], [5]]
    assert [h.score for h in hyps] == pytest.approx([ln(0.4), ln(0.6) + 0.5 * ln(0.2)],
                                                    abs=1e-6)
    torch.testing.assert_close(hyps[0].attention, torch.tensor([[0.9, 0.1], [0.1, 0.9]]))


# ---------------------------------------------------------------------------------------------
# The scoring pieces on their own


def test_length_penalty_values_and_parsing():
    assert LengthPenalty.parse("gnmt:0.6") == LengthPenalty("gnmt", 0.6)
    assert str(LengthPenalty.parse(" average ")) == "average"
    assert str(LengthPenalty("gnmt", 0.6)) == "gnmt:0.6"
    raw = torch.tensor([-3.0])
    assert LengthPenalty().normalise(raw, 4).item() == -3.0
    assert LengthPenalty("average").normalise(raw, 4).item() == pytest.approx(-0.75)
    # ((5 + 4) / 6) ** 2 = 2.25
    assert LengthPenalty("gnmt", 2.0).normalise(raw, 4).item() == pytest.approx(-3.0 / 2.25)
    for bad in ("gnmt", "gnmt:x", "average:1", "lp:0.6"):
        with pytest.raises(ValueError, match="length penalty"):
            LengthPenalty.parse(bad)


def test_best_possible_bounds_every_extension():
    # A live raw score of -2 after 3 tokens, lengths 4..10 left. An extension has raw <= -2.
    for penalty in ("none", "average", "gnmt:0.6", "gnmt:-0.5"):
        lp = LengthPenalty.parse(penalty)
        bound = lp.best_possible(-2.0, 4, 10)
        best = max(float(lp.normalise(torch.tensor(raw), n))
                   for raw in (-2.0, -2.5, -6.0) for n in range(4, 11))
        assert best == pytest.approx(bound)  # reached by raw = -2 at one end of the range
    assert LengthPenalty("gnmt", 0.6).best_possible(-2.0, 4, 10) == pytest.approx(
        -2.0 / (15 / 6) ** 0.6)


def test_coverage_penalty_ignores_padding():
    attn_sum = torch.tensor([[1.5, 0.5, 0.0], [0.25, 0.25, 0.0]])
    mask = torch.tensor([[True, True, False], [True, True, True]])
    cp = coverage_penalty(attn_sum, mask, 0.2)
    # row 0: log 1 + log .5 (padding skipped); row 1: a real position with no attention: -inf
    assert cp[0].item() == pytest.approx(0.2 * ln(0.5))
    assert cp[1].item() == -math.inf
    assert coverage_penalty(attn_sum, mask, 0.0).tolist() == [0.0, 0.0]


def test_log_prob_processors():
    log_probs = torch.zeros(2, 5)
    banned = ban_tokens([UNK_ID])(log_probs, 0)
    assert banned[:, UNK_ID].tolist() == [-math.inf] * 2 and log_probs.eq(0).all()
    eos_ban = min_length(2)
    assert eos_ban(log_probs, 1)[:, EOS_ID].tolist() == [-math.inf] * 2
    assert eos_ban(log_probs, 2)[:, EOS_ID].tolist() == [0.0, 0.0]
    both = apply_processors(build_processors(min_len=1, ban_unk=True), log_probs, 0)
    assert torch.isinf(both).sum().item() == 4
    assert build_processors() == []


# ---------------------------------------------------------------------------------------------
# The real model


def tiny_model(attention="general", feeding=True, seed=5):
    """An untrained tiny model whose EOS is likely enough that hypotheses end at many lengths."""
    torch.manual_seed(seed)
    model = build_model(tiny_config(attention, feeding), 20, 25).eval()
    with torch.no_grad():
        model.generator.weight[EOS_ID] *= 2
    return model


@pytest.mark.parametrize("options", [{}, dict(min_len=3, ban_unk=True)],
                         ids=["plain", "min_len+ban_unk"])
@pytest.mark.parametrize("attention,feeding", VARIANTS)
def test_beam_one_is_greedy(attention, feeding, options):
    # Untrained, several variants emit UNK or end before 3 tokens, so the options matter.
    model = tiny_model(attention, feeding)
    src, lengths = padded_batch([7, 3, 5, 1], seed=3)
    kw = dict(max_len_ratio=1.5, max_len_offset=2, **options)
    beams = beam_search(model, src, lengths, beam_size=1, length_penalty="none", **kw)
    for (beam,), g in zip(beams, greedy(model, src, lengths, **kw), strict=True):
        assert (beam.tokens, beam.finished) == (g.tokens, g.finished)
        assert beam.token_scores == g.token_scores
        torch.testing.assert_close(beam.attention, g.attention)
        assert beam.score == pytest.approx(g.score, abs=1e-5)
        if options:
            assert UNK_ID not in g.tokens and (len(g.tokens) >= 3 or not g.finished)


# UNK first, and an early EOS after it or after the runner-up.
UNK_THEN_EOS = {
    (): {UNK_ID: 0.5, EOS_ID: 0.3, 5: 0.2},
    (UNK_ID,): {EOS_ID: 0.9, 6: 0.1},
    (5,): {EOS_ID: 0.6, UNK_ID: 0.3, 7: 0.1},
    (5, 7): {UNK_ID: 0.5, EOS_ID: 0.3, 8: 0.2},
    (5, 7, 8): {EOS_ID: 1.0},
}


@pytest.mark.parametrize("min_len,ban_unk,tokens,p", [
    (0, False, [UNK_ID], 0.5 * 0.9),
    (0, True, [], 0.3),
    (1, True, [5], 0.2 * 0.6),
    (2, True, [5, 7], 0.2 * 0.1 * 0.3),
    (3, True, [5, 7, 8], 0.2 * 0.1 * 0.2),
])
def test_greedy_honours_beam_options_and_equals_beam_one(min_len, ban_unk, tokens, p):
    # Greedy applies beam search's processors before its argmax: with UNK banned and EOS
    # held back for min_len tokens it takes the best remaining token at every step.
    opts = dict(min_len=min_len, ban_unk=ban_unk)
    src, lengths = torch.ones(1, 2, dtype=torch.long), torch.tensor([2])
    (g,) = greedy(PrefixModel([UNK_THEN_EOS]), src, lengths, max_len_offset=4, **opts)
    assert (g.tokens, g.finished) == (tokens, True) and g.score == pytest.approx(ln(p))
    ((beam,),) = run([UNK_THEN_EOS], beam_size=1, **opts)
    assert (beam.tokens, beam.finished, beam.token_scores) == (g.tokens, g.finished,
                                                               g.token_scores)


def test_beam_one_search_from_config_bans_unk():
    # What `translate --beam 1 --ban-unk` (and greedy validation) decodes with.
    from nmt.cli.translate import _decode_config, add_arguments
    from nmt.decoding.decode import greedy_search, make_search

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(["--checkpoint", "x", "--beam", "1", "--ban-unk"])
    cfg = _decode_config(args, DecodeConfig(max_len_ratio=1.0, max_len_offset=4))
    src, lengths = torch.ones(1, 2, dtype=torch.long), torch.tensor([2])
    model = PrefixModel([UNK_THEN_EOS])
    for search in (make_search(cfg, args.nbest), greedy_search(cfg)):
        (hyp,) = search(model, src, lengths)
        assert hyp.tokens == [] and hyp.score == pytest.approx(ln(0.3))
    (hyp,) = make_search(replace(cfg, ban_unk=False))(model, src, lengths)
    assert hyp.tokens == [UNK_ID]


@pytest.mark.parametrize("attention,feeding", [("bahdanau", True), ("general", False)])
def test_beam_batched_equals_one_at_a_time(attention, feeding):
    model = tiny_model(attention, feeding)
    src, lengths = padded_batch([7, 3, 5, 1, 6], seed=4)
    kw = dict(beam_size=3, n_best=3, max_len_ratio=1.5, max_len_offset=2,
              length_penalty="gnmt:0.6", coverage_penalty=0.2)
    batched = beam_search(model, src, lengths, **kw)
    for i, hyps in enumerate(batched):
        n = int(lengths[i])
        (alone,) = beam_search(model, src[i: i + 1, :n], lengths[i: i + 1], **kw)
        assert summary(hyps) == summary(alone)
        torch.testing.assert_close(torch.tensor([h.score for h in hyps]),
                                   torch.tensor([h.score for h in alone]), atol=1e-5, rtol=1e-5)
    assert all(len(hyps) == 3 for hyps in batched)
    assert {h.finished for hyps in batched for h in hyps} == {True, False}  # both kinds met


@pytest.mark.parametrize("attention,feeding", [("bahdanau", True), ("concat", False)])
def test_nbest_attention_and_scores_equal_teacher_forcing(attention, feeding):
    """Every n-best hypothesis, not only the greedy one, is its own teacher-forced path."""
    model = tiny_model(attention, feeding)
    src, lengths = padded_batch([6, 2, 4], seed=7)
    nbest = beam_search(model, src, lengths, beam_size=4, n_best=4, max_len_ratio=1.0,
                        max_len_offset=3, length_penalty="average")
    greedy_tokens = [g.tokens for g in greedy(model, src, lengths, max_len_ratio=1.0,
                                              max_len_offset=3)]
    checked_other = 0
    for i, hyps in enumerate(nbest):
        n = int(lengths[i])
        keys = [(h.finished, h.score) for h in hyps]  # finished first, then by score
        assert keys == sorted(keys, reverse=True)
        assert len({tuple(h.tokens) + (h.finished,) for h in hyps}) == len(hyps)  # distinct
        for h in hyps:
            emitted = h.tokens + ([EOS_ID] if h.finished else [])
            forced = model(src[i: i + 1, :n], lengths[i: i + 1],
                           torch.tensor([[BOS_ID] + emitted[:-1]]))
            torch.testing.assert_close(forced.attn[0], h.attention, atol=1e-6, rtol=1e-5)
            lp = forced.logits[0].log_softmax(-1).gather(1, torch.tensor(emitted)[:, None])
            torch.testing.assert_close(lp.squeeze(1), torch.tensor(h.token_scores), atol=1e-5,
                                       rtol=1e-5)
            checked_other += h.tokens != greedy_tokens[i]
    assert checked_other >= 6


def test_beam_search_fn_returns_the_best_with_alternatives():
    model = tiny_model()
    src, lengths = padded_batch([5, 3], seed=2)
    cfg = DecodeConfig(max_len_ratio=1.5, max_len_offset=2)
    search = beam_search_fn(cfg, beam_size=3, n_best=2, length_penalty="average")
    best = search(model, src, lengths)
    nbest = beam_search(model, src, lengths, beam_size=3, n_best=2, max_len_ratio=1.5,
                        max_len_offset=2, length_penalty="average")
    assert [h.tokens for h in best] == [hyps[0].tokens for hyps in nbest]
    assert [[a.tokens for a in h.alternatives] for h in best] == [[hyps[1].tokens]
                                                                  for hyps in nbest]
    with pytest.raises(ValueError, match="n_best"):
        beam_search_fn(cfg, beam_size=2, n_best=3)
    with pytest.raises(ValueError, match="length penalty"):
        beam_search_fn(cfg, beam_size=2, length_penalty="gnmt")


# ---------------------------------------------------------------------------------------------
# Target prefixes: the output starts with the prefix, search goes on from there, and the
# prefix tokens' log-probs count in the score (as in fairseq).


def test_beam_with_a_prefix_continues_from_it():
    # SHORT_OR_LONG, K=2, no penalty; without a prefix A = [5] wins (test above).
    # Prefix [6]. Step 0: 6 forced (.4); the beam holds that one hypothesis.
    # Step 1: 6 8 (.36), 6 7 (.04), no EOS among the first K: beam [6 8], [6 7].
    # Step 2: 6 8 9 (.324), 6 7 EOS (.04, (6, 7) is unscripted: EOS 1.0) -> finished,
    #   6 8 7 (.036): beam [6 8 9], [6 8 7]; one finished < n_best=2: go on.
    # Step 3: 6 8 9 EOS (.2916), 6 8 7 EOS (.036): both finish; 3 finished: stop.
    # n-best: 6 8 9 (ln .2916), 6 7 (ln .04); 6 8 7 (ln .036) third.
    (hyps,) = run([SHORT_OR_LONG], beam_size=2, n_best=2, prefix=[[6]])
    assert summary(hyps) == [([6, 8, 9], True), ([6, 7], True)]
    assert [h.score for h in hyps] == pytest.approx([ln(0.2916), ln(0.04)])
    assert hyps[0].token_scores == pytest.approx([ln(0.4), ln(0.9), ln(0.9), ln(0.9)])


@pytest.mark.parametrize("penalty,scores", [
    ("none", [ln(0.6 * 0.45 * 0.8 * 0.6), ln(0.6 * 0.45 * 0.2)]),
    ("average", [ln(0.6 * 0.45 * 0.8 * 0.6) / 4, ln(0.6 * 0.45 * 0.2) / 3]),
])
def test_the_prefix_end_is_not_an_eos(penalty, scores):
    # Prefix [5, 7] (C's start). Steps 0-1 forced: 5 (.6), 7 (.45): [5 7] (.27).
    # Step 2: 5 7 8 (.216), 5 7 EOS (.054) -> [5 7] finishes, L=3; live [5 7 8] and a
    #   1e-9 row. The finished [5 7] is below the best live one: go on.
    # Step 3: 5 7 8 EOS (.1296) finishes, 5 7 8 9 (.0864) lives; 2 finished = K: stop.
    # [5 7 8] (L=4) beats [5 7] (L=3): the search went past the prefix's end. The prefix's
    # two tokens count in L under "average".
    (hyps,) = run([SHORT_OR_LONG], beam_size=2, n_best=2, prefix=[[5, 7]],
                  length_penalty=penalty)
    assert summary(hyps) == [([5, 7, 8], True), ([5, 7], True)]
    assert [h.score for h in hyps] == pytest.approx(scores)


def test_a_prefix_token_the_model_finds_unlikely_is_emitted_at_its_log_prob():
    # 9 has probability 1e-9 at step 0; (9,) is unscripted: EOS 1.0.
    for search in (lambda **kw: run([SHORT_OR_LONG], beam_size=2, **kw)[0][0],
                   lambda **kw: greedy(PrefixModel([SHORT_OR_LONG]),
                                       torch.ones(1, 2, dtype=torch.long), torch.tensor([2]),
                                       max_len_offset=4, **kw)[0]):
        hyp = search(prefix=[[9]])
        assert (hyp.tokens, hyp.finished) == ([9], True)
        assert hyp.token_scores == pytest.approx([ln(1e-9), 0.0], abs=1e-6)


def test_greedy_with_a_prefix():
    # BETTER_LATER: greedy alone takes 5 7 (.2). With prefix [6]: 6 (.4), then 7 (.9), EOS.
    src, lengths = torch.ones(1, 2, dtype=torch.long), torch.tensor([2])
    (g,) = greedy(PrefixModel([BETTER_LATER]), src, lengths, prefix=[[6]])
    assert (g.tokens, g.finished) == ([6, 7], True)
    assert g.token_scores == pytest.approx([ln(0.4), ln(0.9), 0.0])
    assert g.attention.shape == (3, 2)


def test_a_prefix_overrides_the_processors():
    # UNK banned, but the prefix asks for it: it is emitted at the model's log-prob (.5).
    src, lengths = torch.ones(1, 2, dtype=torch.long), torch.tensor([2])
    (g,) = greedy(PrefixModel([UNK_THEN_EOS]), src, lengths, ban_unk=True, prefix=[[UNK_ID]])
    assert g.tokens == [UNK_ID] and g.score == pytest.approx(ln(0.5 * 0.9))
    ((beam,),) = run([UNK_THEN_EOS], beam_size=2, ban_unk=True, prefix=[[UNK_ID]])
    assert beam.tokens == [UNK_ID] and beam.score == pytest.approx(ln(0.5 * 0.9))


def test_a_prefix_longer_than_the_maximum_length_still_fits():
    # S=2, ratio 1, offset 0: at most 2 tokens, raised to the prefix's 4 and one more.
    (hyps,) = run(NEVER_ENDS, beam_size=2, offset=0, prefix=[[6, 6, 6, 6]])
    assert summary(hyps) == [([6, 6, 6, 6, 5], False)]
    (g,) = greedy(NEVER_ENDS, torch.ones(1, 2, dtype=torch.long), torch.tensor([2]),
                  max_len_ratio=1.0, max_len_offset=0, prefix=[[6, 6, 6, 6]])
    assert (g.tokens, g.finished) == ([6, 6, 6, 6, 5], False)


def test_batch_with_mixed_prefixes_equals_one_at_a_time():
    scripts = [SHORT_OR_LONG, BETTER_LATER, EARLY_EOS, FINISHES_LOW, SHORT_OR_LONG]
    prefixes = [[5, 7], [], [6], [6], [6, 8, 9]]
    lengths = [3, 1, 2, 5, 2]
    kw = dict(beam_size=2, n_best=2, offset=1, length_penalty="average")
    batched = run(scripts, src_lengths=lengths, prefix=prefixes, **kw)
    for script, n, prefix, hyps in zip(scripts, lengths, prefixes, batched, strict=True):
        (alone,) = run([script], src_lengths=[n], prefix=[prefix], **kw)
        assert summary(hyps) == summary(alone)
        assert [h.score for h in hyps] == pytest.approx([h.score for h in alone])
        assert all(h.tokens[: len(prefix)] == prefix for h in hyps)


def test_bad_prefixes():
    with pytest.raises(ValueError, match="special token"):
        run([SHORT_OR_LONG], beam_size=2, prefix=[[5, EOS_ID]])
    with pytest.raises(ValueError, match="2 prefixes for 1 sentences"):
        run([SHORT_OR_LONG], beam_size=2, prefix=[[5], [6]])


def test_force_tokens_under_a_shortlist_reads_columns_as_ids():
    from nmt.decoding.processors import force_tokens

    raw = torch.log(torch.tensor([[0.2, 0.3, 0.5], [0.6, 0.3, 0.1]]))
    processed = raw.clone()
    processed[:, 2] = -math.inf  # a processor banned id 9
    vocab = torch.tensor([3, 7, 9])  # the columns' target ids
    out = force_tokens(processed, raw, torch.tensor([9, -1]), vocab)
    assert out[0].tolist() == [-math.inf, -math.inf, pytest.approx(ln(0.5))]
    assert out[1].tolist() == processed[1].tolist()
    with pytest.raises(ValueError, match="shortlist"):
        force_tokens(processed, raw, torch.tensor([8, -1]), vocab)


@pytest.mark.parametrize("attention,feeding", [("bahdanau", True), ("general", False)])
def test_real_model_prefixes_batched_empty_and_alone(attention, feeding):
    model = tiny_model(attention, feeding)
    src, lengths = padded_batch([7, 3, 5, 1, 6], seed=4)
    prefixes = [[7, 9, 11], [], [5], [12, 4, 6, 8], []]
    kw = dict(max_len_ratio=1.5, max_len_offset=2)
    beam_kw = dict(beam_size=3, n_best=2, length_penalty="gnmt:0.6", **kw)
    # an empty prefix changes nothing, to the bit
    for search, opts in ((greedy, kw), (beam_search, beam_kw)):
        plain = search(model, src, lengths, **opts)
        empty = search(model, src, lengths, prefix=[[]] * 5, **opts)
        for a, b in zip(plain, empty, strict=True):
            for x, y in zip(*(h if isinstance(h, list) else [h] for h in (a, b)), strict=True):
                assert (x.tokens, x.token_scores, x.score) == (y.tokens, y.token_scores, y.score)
                assert torch.equal(x.attention, y.attention)
    # batched with mixed prefix lengths equals one sentence at a time
    g_batched = greedy(model, src, lengths, prefix=prefixes, **kw)
    b_batched = beam_search(model, src, lengths, prefix=prefixes, **beam_kw)
    for i, prefix in enumerate(prefixes):
        n = int(lengths[i])
        one = (src[i: i + 1, :n], lengths[i: i + 1])
        (g,) = greedy(model, *one, prefix=[prefix], **kw)
        assert g.tokens == g_batched[i].tokens and g.tokens[: len(prefix)] == prefix
        assert g.token_scores == pytest.approx(g_batched[i].token_scores, abs=1e-5)
        (alone,) = beam_search(model, *one, prefix=[prefix], **beam_kw)
        assert summary(alone) == summary(b_batched[i])
        assert all(h.tokens[: len(prefix)] == prefix for h in alone)
        assert [h.score for h in alone] == pytest.approx([h.score for h in b_batched[i]],
                                                        abs=1e-5)
