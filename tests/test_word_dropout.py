"""Word dropout: which tokens it hides, at what rate, and that training with it resumes exactly."""

from __future__ import annotations

import pytest
import torch

from nmt import checkpoint
from nmt.data.batching import Batch
from nmt.special import BOS_ID, EOS_ID, PAD_ID, UNK_ID
from nmt.training.run import train
from nmt.training.word_dropout import drop_words, word_dropout
from tests.helpers import toy_config, write_toy_corpus
from tests.test_train import assert_same_weights


def toy_batch() -> Batch:
    src = torch.tensor([[5, 6, 7, 8, EOS_ID], [9, 10, EOS_ID, PAD_ID, PAD_ID]])
    tgt_in = torch.tensor([[BOS_ID, 11, 12, 13], [BOS_ID, 14, PAD_ID, PAD_ID]])
    tgt_out = torch.tensor([[11, 12, 13, EOS_ID], [14, EOS_ID, PAD_ID, PAD_ID]])
    return Batch(src, torch.tensor([5, 3]), tgt_in, tgt_out, [0, 1])


def test_off_returns_the_batch_itself_and_draws_nothing():
    batch = toy_batch()
    state = torch.get_rng_state()
    assert word_dropout(batch, 0.0) is batch
    assert torch.equal(torch.get_rng_state(), state)  # runs without it stay byte-identical


def test_hides_every_real_token_and_nothing_else():
    batch = toy_batch()
    out = word_dropout(batch, 1 - 1e-7)
    for before, after in ((batch.src, out.src), (batch.tgt_in, out.tgt_in)):
        real = before > EOS_ID
        assert (after[real] == UNK_ID).all()
        assert torch.equal(after[~real], before[~real])  # PAD, BOS, EOS stay
    assert out.tgt_out is batch.tgt_out  # the labels are never hidden
    assert torch.equal(out.src_lengths, batch.src_lengths)
    assert torch.equal(batch.src, toy_batch().src)  # the input batch is not modified


def test_rate_and_independence():
    torch.manual_seed(0)
    ids = torch.randint(4, 100, (400, 500))
    hidden = drop_words(ids, 0.3) == UNK_ID
    assert abs(hidden.float().mean().item() - 0.3) < 0.005
    rows = hidden.float().mean(1)
    assert rows.std().item() < 0.04  # per-position draws, not one draw per sentence
    both = (hidden[:, :-1] & hidden[:, 1:]).float().mean().item()
    assert abs(both - 0.09) < 0.005  # neighbours are hidden independently


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return write_toy_corpus(tmp_path_factory.mktemp("toy"))


def test_training_with_word_dropout_resumes_exactly_and_differs_from_without(corpus,
                                                                            tmp_path):
    cfg = toy_config(corpus, word_dropout=0.25)
    whole, parts, plain = tmp_path / "whole", tmp_path / "parts", tmp_path / "plain"
    train(cfg, whole, quiet=True)
    train(cfg, parts, quiet=True, stop_at_step=9)
    train(None, parts, resume=True, quiet=True)
    assert_same_weights(whole, parts)
    train(toy_config(corpus), plain, quiet=True)
    a = checkpoint.load(whole / "last.pt")["model"]
    b = checkpoint.load(plain / "last.pt")["model"]
    assert any(not torch.equal(a[k], b[k]) for k in a)  # the option reached training
