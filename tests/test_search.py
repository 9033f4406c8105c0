"""Greedy search against a scripted decoder and against the real model."""

from __future__ import annotations

import math
from dataclasses import dataclass

import pytest
import torch

from nmt.decoding.search import greedy, max_lengths
from nmt.model.decoder import DecoderState, Memory
from nmt.model.seq2seq import StepResult, build_model
from nmt.special import BOS_ID, EOS_ID, PAD_ID, UNK_ID
from tests.test_model import padded_batch, tiny_config


@dataclass
class ScriptedModel:
    """A decoder whose next-token distribution is scripted per sentence and time step.

    script[b][t] is a dict {token: prob}; the rest of the mass is spread over token 4..V-1
    uniformly. The state carries (sentence id, t) so reordering is checked too.
    """

    script: list[list[dict[int, float]]]
    vocab: int = 10

    def encode(self, src, src_lengths):
        B, S = src.shape
        mask = torch.arange(S)[None] < src_lengths[:, None]
        memory = Memory(torch.zeros(B, S, 1), torch.zeros(B, S, 1), mask)
        ids = torch.arange(B, dtype=torch.float)
        return memory, DecoderState((ids.view(1, B, 1), torch.zeros(1, B, 1)), torch.zeros(B, 0))

    def decode_step(self, tokens, state, memory):
        B = tokens.size(0)
        probs = torch.full((B, self.vocab), 1e-9)
        t = state.rnn[1][0, :, 0].long()
        for r in range(B):
            b = int(state.rnn[0][0, r, 0])
            row = self.script[b][min(int(t[r]), len(self.script[b]) - 1)]
            probs[r, list(row)] = torch.tensor(list(row.values()))
        attn = memory.mask.float() / memory.mask.sum(1, keepdim=True)
        new = DecoderState((state.rnn[0], state.rnn[1] + 1), state.feed)
        return StepResult(probs.log(), new, attn)

    @staticmethod
    def reorder_state(state, index):
        return state.select(index)


def test_greedy_follows_script_and_stops_per_sentence():
    script = [
        [{5: 0.6, 6: 0.4}, {EOS_ID: 0.7, 7: 0.3}],  # 5 EOS
        [{6: 0.9, EOS_ID: 0.1}, {7: 0.5, 8: 0.4, EOS_ID: 0.1}, {EOS_ID: 1.0}],  # 6 7 EOS
        [{8: 1.0}],  # never ends: stopped by the max length
    ]
    model = ScriptedModel(script)
    src, lengths = torch.ones(3, 2, dtype=torch.long), torch.tensor([2, 2, 1])
    hyps = greedy(model, src, lengths, max_len_ratio=1.0, max_len_offset=3)
    assert [h.tokens for h in hyps] == [[5], [6, 7], [8, 8, 8, 8]]
    assert [h.finished for h in hyps] == [True, True, False]
    torch.testing.assert_close(torch.tensor(hyps[0].token_scores),
                               torch.tensor([0.6, 0.7]).log())
    assert hyps[1].score == pytest.approx(float(torch.tensor([0.9, 0.5, 1.0]).log().sum()))
    assert [h.attention.shape for h in hyps] == [(2, 2), (3, 2), (4, 1)]


def test_max_lengths():
    assert max_lengths(torch.tensor([1, 10]), 1.5, 2).tolist() == [4, 17]


def test_greedy_batched_equals_one_at_a_time_and_attention_is_the_hypothesis():
    torch.manual_seed(5)
    model = build_model(tiny_config("general", True), 20, 25).eval()
    src, lengths = padded_batch([7, 3, 5, 1], seed=3)
    batched = greedy(model, src, lengths, max_len_ratio=1.5, max_len_offset=2)
    for i, hyp in enumerate(batched):
        n = int(lengths[i])
        (alone,) = greedy(model, src[i: i + 1, :n], lengths[i: i + 1], max_len_ratio=1.5,
                          max_len_offset=2)
        assert alone.tokens == hyp.tokens
        torch.testing.assert_close(torch.tensor(alone.token_scores),
                                   torch.tensor(hyp.token_scores), atol=1e-5, rtol=1e-5)
        # teacher-forcing the hypothesis reproduces its attention rows and scores
        emitted = hyp.tokens + ([EOS_ID] if hyp.finished else [])
        tgt_in = torch.tensor([[BOS_ID] + emitted[:-1]])
        forced = model(src[i: i + 1, :n], lengths[i: i + 1], tgt_in)
        torch.testing.assert_close(forced.attn[0], hyp.attention, atol=1e-6, rtol=1e-5)
        lp = forced.logits[0].log_softmax(-1).gather(1, torch.tensor(emitted)[:, None])
        torch.testing.assert_close(lp.squeeze(1), torch.tensor(hyp.token_scores), atol=1e-5,
                                   rtol=1e-5)
    assert all(PAD_ID not in h.tokens and BOS_ID not in h.tokens for h in batched)


# Beam search's log-prob processors apply to greedy too (nmt.decoding.processors).
PREFERS_UNK = [
    [{UNK_ID: 0.6, 5: 0.3, EOS_ID: 0.1}, {UNK_ID: 0.7, EOS_ID: 0.3}],  # UNK is the argmax
    [{6: 0.9, UNK_ID: 0.1}, {EOS_ID: 1.0}],  # no UNK: the ban changes nothing
]


def test_greedy_ban_unk_takes_the_runner_up():
    model = ScriptedModel(PREFERS_UNK)
    src, lengths = torch.ones(2, 2, dtype=torch.long), torch.tensor([2, 2])
    free = greedy(model, src, lengths, max_len_ratio=1.0, max_len_offset=2)
    assert [h.tokens for h in free] == [[UNK_ID] * 4, [6]]
    hyps = greedy(model, src, lengths, max_len_ratio=1.0, max_len_offset=2, ban_unk=True)
    assert [h.tokens for h in hyps] == [[5], [6]] and all(h.finished for h in hyps)
    # the scores stay the model's log-probs of the chosen tokens
    assert hyps[0].token_scores == pytest.approx([math.log(0.3), math.log(0.3)])
    assert hyps[0].score == pytest.approx(2 * math.log(0.3))
    assert hyps[1].token_scores == pytest.approx([math.log(0.9), 0.0])


EARLY_EOS = [
    [{EOS_ID: 0.6, 5: 0.4}, {EOS_ID: 0.8, 6: 0.2}, {EOS_ID: 0.9, 7: 0.1}],
    [{7: 0.9, EOS_ID: 0.1}, {8: 0.6, EOS_ID: 0.4}, {EOS_ID: 1.0}],  # 2 tokens anyway
]


@pytest.mark.parametrize("min_len,first,scores", [
    (0, [], [0.6]),
    (1, [5], [0.4, 0.8]),
    (2, [5, 6], [0.4, 0.2, 0.9]),
])
def test_greedy_min_len_holds_eos_back(min_len, first, scores):
    model = ScriptedModel(EARLY_EOS)
    src, lengths = torch.ones(2, 2, dtype=torch.long), torch.tensor([2, 2])
    hyps = greedy(model, src, lengths, max_len_ratio=1.0, max_len_offset=3, min_len=min_len)
    assert [h.tokens for h in hyps] == [first, [7, 8]] and all(h.finished for h in hyps)
    assert hyps[0].token_scores == pytest.approx([math.log(p) for p in scores])


def test_greedy_min_len_beyond_the_maximum_length_ends_unfinished():
    model = ScriptedModel(EARLY_EOS)
    src, lengths = torch.ones(1, 1, dtype=torch.long), torch.tensor([1])
    (hyp,) = greedy(model, src, lengths, max_len_ratio=1.0, max_len_offset=1, min_len=5)
    assert hyp.tokens == [5, 6] and not hyp.finished
    with pytest.raises(ValueError, match="min_len"):
        greedy(model, src, lengths, min_len=-1)


# Shortlist columns: column c is target id SHORTLIST[c]. Column UNK_ID holds 7 and column
# EOS_ID holds 5, so processors that banned columns instead of ids would pick UNK and EOS.
SHORTLIST = torch.tensor([EOS_ID, 7, UNK_ID, 5, 6])


@dataclass
class ShortlistedModel(ScriptedModel):
    """ScriptedModel scoring only the ids in SHORTLIST, as `shortlist.restrict` does."""

    def decode_step(self, tokens, state, memory):
        step = super().decode_step(tokens, state, memory)
        return StepResult(step.log_probs[:, SHORTLIST], step.state, step.attn, SHORTLIST)


def test_greedy_processors_read_shortlist_columns_as_ids():
    script = [[{UNK_ID: 0.5, 7: 0.3, 5: 0.2}, {EOS_ID: 0.5, 5: 0.4, 6: 0.1},
               {EOS_ID: 0.6, 6: 0.4}]]
    assert SHORTLIST[UNK_ID] == 7 and SHORTLIST[EOS_ID] == 5
    model = ShortlistedModel(script)
    src, lengths = torch.ones(1, 2, dtype=torch.long), torch.tensor([2])
    (free,) = greedy(model, src, lengths)
    assert free.tokens == [UNK_ID] and free.finished
    (hyp,) = greedy(model, src, lengths, ban_unk=True, min_len=2)
    assert hyp.tokens == [7, 5] and hyp.finished
    assert hyp.token_scores == pytest.approx([math.log(0.3), math.log(0.4), math.log(0.6)])
