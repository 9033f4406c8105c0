"""Sampling: the kept token sets against a scripted distribution, greedy as its limits
(top-k 1, a temperature near 0), seeds that repeat a run independently of batching, and no
use of torch's global random generator."""

from __future__ import annotations

from collections import Counter

import pytest
import torch

from nmt.config import DecodeConfig
from nmt.decoding.decode import decode_ids, sample_search
from nmt.decoding.sampling import Sampling, draw, kept_distribution, sample
from nmt.decoding.search import greedy
from nmt.special import BOS_ID, EOS_ID, PAD_ID
from tests.helpers import EditedSteps
from tests.test_beam import PrefixModel, tiny_model
from tests.test_model import VARIANTS, padded_batch

# step 0: 5 .5, 6 .3, 7 .15, 8 .05 (every other token 1e-9); then EOS
SPREAD = {(): {5: 0.5, 6: 0.3, 7: 0.15, 8: 0.05}}
ONE = (torch.ones(1, 2, dtype=torch.long), torch.tensor([2]))


def first_tokens(options: Sampling, n: int = 400) -> Counter:
    (hyps,) = sample(PrefixModel([SPREAD]), *ONE, options=Sampling(
        options.temperature, options.top_k, options.top_p, samples=n, seed=11))
    assert all(h.finished and len(h.tokens) == 1 for h in hyps)
    return Counter(h.tokens[0] for h in hyps)


@pytest.mark.parametrize("top_k,top_p,allowed", [
    (None, 1.0, {5, 6, 7, 8}),
    (1, 1.0, {5}),
    (2, 1.0, {5, 6}),
    (3, 1.0, {5, 6, 7}),
    (None, 0.75, {5, 6}),  # before 6: .5 < .75; before 7: .8
    (None, 0.85, {5, 6, 7}),  # before 7: .8 < .85; before 8: .95
    (None, 0.4, {5}),  # the most likely token is always kept
    # top-p over what top-k left, renormalised: before 7, .8 / .95 = .842
    (3, 0.83, {5, 6}),
    (3, 0.86, {5, 6, 7}),
])
def test_samples_use_exactly_the_allowed_tokens(top_k, top_p, allowed):
    counts = first_tokens(Sampling(top_k=top_k, top_p=top_p))
    assert set(counts) == allowed
    mass = sum(SPREAD[()][t] for t in allowed)
    for token, n in counts.items():  # each in proportion to its probability (4 sigma)
        p = SPREAD[()][token] / mass
        assert abs(n / 400 - p) < 4 * (p * (1 - p) / 400) ** 0.5 + 1e-9


def test_temperature_flattens_and_sharpens():
    # 5 has .5; with T=2 its share is sqrt(.5) / (sum of the square roots) = .38 (top-p .99
    # keeps the 1e-9 tokens out, raised to 3e-5 by T=2); with T=.5, .25 / .36 = .69
    hot = first_tokens(Sampling(temperature=2.0, top_p=0.99))
    cold = first_tokens(Sampling(temperature=0.5))
    assert set(hot) == {5, 6, 7, 8} and abs(hot[5] / 400 - 0.38) < 0.1
    assert abs(cold[5] / 400 - 0.69) < 0.1
    assert first_tokens(Sampling(temperature=1e-4)) == Counter({5: 400})


def test_kept_distribution_and_draw():
    log_probs = torch.tensor([[0.1, 0.6, 0.3], [0.5, 0.25, 0.25]]).log()
    probs, order = kept_distribution(log_probs, top_k=2)
    assert order[0].tolist() == [1, 2, 0] and probs[0].tolist() == pytest.approx([0.6, 0.3, 0])
    assert probs[1].tolist() == pytest.approx([0.5, 0.25, 0])  # ties: the lower column first
    # inverse CDF over the kept mass .9: u < 2/3 -> column 1, else column 2
    u = torch.tensor([0.0, 0.66])
    assert draw(log_probs[:1].expand(2, 3), u, top_k=2).tolist() == [1, 1]
    assert draw(log_probs[:1], torch.tensor([0.67]), top_k=2).tolist() == [2]
    assert draw(log_probs[:1], torch.tensor([0.9999999]), top_k=2).tolist() == [2]
    # u * total rounding up to the total still picks a kept token, never a cut one
    assert draw(log_probs[:1], torch.tensor([1.0]), top_k=2).tolist() == [2]


class NoPadBos(EditedSteps):
    """An untrained model's greedy search often picks PAD or BOS, which sampling never
    draws: the same model with both at -inf, for greedy and sampling alike."""

    def edit(self, log_probs):
        log_probs[:, [PAD_ID, BOS_ID]] = -float("inf")


@pytest.mark.parametrize("attention,feeding", VARIANTS)
def test_top_k_one_and_a_cold_temperature_are_greedy(attention, feeding):
    model = NoPadBos(tiny_model(attention, feeding))
    src, lengths = padded_batch([7, 3, 5, 1], seed=3)
    kw = dict(max_len_ratio=1.5, max_len_offset=2)
    ref = greedy(model, src, lengths, **kw)
    for options in (Sampling(top_k=1, samples=3, seed=5), Sampling(temperature=1e-4, seed=6)):
        for g, hyps in zip(ref, sample(model, src, lengths, options=options, **kw),
                           strict=True):
            for h in hyps:
                assert (h.tokens, h.finished) == (g.tokens, g.finished)
                assert h.token_scores == pytest.approx(g.token_scores, abs=1e-6)


def test_a_seed_repeats_a_run_and_another_seed_differs():
    model = tiny_model()
    src, lengths = padded_batch([7, 3, 5, 6], seed=3)

    def tokens(seed):
        out = sample(model, src, lengths, options=Sampling(samples=3, seed=seed),
                     max_len_ratio=1.5, max_len_offset=2)
        return [[h.tokens for h in hyps] for hyps in out]

    first = tokens(1)
    assert tokens(1) == first
    assert tokens(2) != first
    assert len({tuple(t) for hyps in first for t in hyps}) > 4  # the samples vary


def test_samples_do_not_depend_on_batching():
    """With a seed per sentence (what `Translator` gives), batch size and order do not
    matter."""
    model = tiny_model()
    src_ids = [[5, 6, 7], [8, 9], [10, 11, 12, 13], [14], [7, 7, 8]]
    search = sample_search(DecodeConfig(max_len_ratio=1.5, max_len_offset=2),
                           Sampling(samples=2))
    seeds = Sampling(seed=3).seeds(len(src_ids))
    runs = [decode_ids(model, src_ids, search, batch, per_sentence={"seeds": seeds})
            for batch in (1, 2, 5)]
    for hyps in runs[1:]:
        assert [[h.tokens] + [a.tokens for a in h.alternatives] for h in hyps] == \
            [[h.tokens] + [a.tokens for a in h.alternatives] for h in runs[0]]


def test_sampling_leaves_the_global_generator_alone():
    model = tiny_model()
    src, lengths = padded_batch([4, 2], seed=1)
    torch.manual_seed(123)
    state = torch.get_rng_state()
    sample(model, src, lengths, options=Sampling(samples=2, seed=4))
    sample(model, src, lengths, options=Sampling(samples=2))  # a fresh seed: still local
    assert torch.equal(torch.get_rng_state(), state)


def test_sampling_with_a_prefix_starts_with_it():
    (hyps,) = sample(PrefixModel([SPREAD]), *ONE, options=Sampling(samples=20, seed=1),
                     prefix=[[8]])
    assert all(h.tokens == [8] and h.token_scores[0] == pytest.approx(torch.tensor(
        0.05).log().item()) for h in hyps)
    assert all(h.token_scores[-1] == 0.0 for h in hyps)  # (8,): EOS with probability 1


@pytest.mark.parametrize("options,message", [
    (Sampling(temperature=0.0), "temperature: must be > 0"),
    (Sampling(temperature=-1.0), "temperature: must be > 0"),
    (Sampling(top_k=0), "top_k: must be >= 1"),
    (Sampling(top_p=0.0), r"top_p: must be in \(0, 1\]"),
    (Sampling(top_p=1.5), r"top_p: must be in \(0, 1\]"),
    (Sampling(samples=0), "samples: must be >= 1"),
])
def test_bad_values_name_the_option(options, message):
    with pytest.raises(ValueError, match=message):
        options.check()
    with pytest.raises(ValueError, match=message):
        sample(PrefixModel([SPREAD]), *ONE, options=options)
    with pytest.raises(ValueError, match="--" + message.replace("_", "-").split(":")[0]):
        options.check({"temperature": "--temperature", "top_k": "--top-k",
                       "top_p": "--top-p", "samples": "--samples"})


def test_eos_is_sampled_like_any_token():
    # EOS .5 at step 0: about half the samples are empty.
    (hyps,) = sample(PrefixModel([{(): {EOS_ID: 0.5, 5: 0.5}}]), *ONE,
                     options=Sampling(samples=200, seed=2))
    empty = sum(h.tokens == [] for h in hyps)
    assert 60 < empty < 140 and all(h.finished for h in hyps)


def test_pad_and_bos_are_never_drawn():
    # a model that finds PAD and BOS likely: sampling still never emits them
    (hyps,) = sample(PrefixModel([{(): {PAD_ID: 0.4, BOS_ID: 0.4, 5: 0.2}}]), *ONE,
                     options=Sampling(samples=50, seed=3))
    assert all(h.tokens == [5] for h in hyps)
