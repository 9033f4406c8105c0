"""Greedy search against a scripted decoder and against the real model."""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import torch

from nmt.decoding.search import greedy, max_lengths
from nmt.model.decoder import DecoderState, Memory
from nmt.model.seq2seq import StepResult, build_model
from nmt.special import BOS_ID, EOS_ID, PAD_ID
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
