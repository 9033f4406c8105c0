"""Dropout. nmt.cpu.dropout: the CPU mask keeps each element with the stated probability,
independently, scales by its inverse, and is reproducible; the model uses it everywhere.
Where it acts: in training only (it changes the loss and follows the seed), never in
translation (decoding a model with dropout equals decoding it with dropout 0)."""

import copy
import dataclasses
from pathlib import Path

import pytest
import torch
from torch import nn

from nmt import checkpoint
from nmt.checkpoint import load_for_inference, load_model
from nmt.config import ModelConfig
from nmt.cpu import accelerate
from nmt.cpu.dropout import Dropout, dropout, keep_mask, keep_probability
from nmt.cpu.seq2seq import FastSeq2Seq
from nmt.decoding.translator import Translator
from nmt.model.seq2seq import Seq2Seq, build_model
from nmt.training.run import train
from tests.helpers import toy_config, write_toy_corpus
from tests.test_model import padded_batch


@pytest.mark.parametrize("p", [0.1, 0.3, 0.5])
def test_keep_rate_per_lane_and_scale(p):
    torch.manual_seed(0)
    n = 3 * 400_000
    mask = keep_mask(torch.Size([n]), p, torch.float32)
    keep = keep_probability(p)
    assert abs(keep - (1 - p)) <= 2 ** -17
    kept = mask != 0
    assert torch.all(mask[kept] == 1 / keep)
    # each of the three lanes of a 64-bit word (a lane with a constant bit would keep
    # at a very different rate), and all together; 5 standard deviations
    sd = (keep * (1 - keep) / (n // 3)) ** 0.5
    for lane in range(3):
        assert abs(kept[lane::3].float().mean().item() - keep) < 5 * sd, lane
    # neighbours are independent: P(both kept) = keep^2
    both = (kept[1:] & kept[:-1]).float().mean().item()
    assert abs(both - keep ** 2) < 5 * sd


def test_forward_backward_and_odd_shapes():
    torch.manual_seed(1)
    x = (torch.rand(7, 5, 3) + 0.5).requires_grad_()  # 105 elements: not a multiple of 4
    y = dropout(x, 0.3, training=True)
    keep = keep_probability(0.3)
    kept = y != 0
    assert 0 < kept.sum() < x.numel()
    torch.testing.assert_close(y[kept], x[kept] / keep)
    y.backward(torch.full_like(y, 2.0))
    torch.testing.assert_close(x.grad, kept.float() * 2 / keep)
    assert dropout(torch.empty(0, 4), 0.3, True).shape == (0, 4)
    assert dropout(torch.ones(6, dtype=torch.bfloat16), 0.3, True).dtype == torch.bfloat16


def test_reproducible_and_identity_when_off():
    x = torch.randn(50, 40)
    torch.manual_seed(3)
    a, b = dropout(x, 0.3, True), dropout(x, 0.3, True)
    torch.manual_seed(3)
    assert torch.equal(dropout(x, 0.3, True), a)
    assert not torch.equal(a, b)  # fresh draws each call
    assert dropout(x, 0.3, training=False) is x and dropout(x, 0.0, True) is x
    layer = Dropout(0.3).eval()
    assert layer(x) is x


def test_model_uses_it_everywhere():
    cfg = ModelConfig(emb_size=12, enc_hidden=8, dec_hidden=16, dec_layers=2, dropout=0.3)
    model = build_model(cfg, 20, 25)
    assert len([m for m in model.modules() if type(m) is nn.Dropout]) == 3  # plain
    accelerate(model)
    assert not [m for m in model.modules() if type(m) is nn.Dropout]
    assert len([m for m in model.modules() if type(m) is Dropout]) == 3


# --- where dropout acts: training only, reproducibly ------------------------------------------

TWO_LAYERS = ModelConfig(emb_size=12, enc_hidden=8, dec_hidden=16, enc_layers=2, dec_layers=2,
                         dropout=0.5)  # every dropout site: embeddings, between layers, outputs


def without_dropout(model: Seq2Seq) -> Seq2Seq:
    """The same weights in a model built with dropout 0 (same mode as `model`)."""
    cfg = dataclasses.replace(model.cfg, dropout=0.0)
    twin = build_model(cfg, model.encoder.embed.num_embeddings, model.generator.out_features)
    twin.load_state_dict(model.state_dict())
    return twin.train(model.training)


@pytest.mark.parametrize("accelerated", [False, True])
def test_training_with_dropout_differs_from_none_and_follows_the_seed(accelerated):
    """In training mode the masks change the loss and every gradient; the same seed gives
    the same masks (bit for bit), another seed other masks."""
    torch.manual_seed(0)
    model = build_model(TWO_LAYERS, 20, 25)  # training mode, as built
    plain = without_dropout(model)
    if accelerated:
        model, plain = accelerate(model), accelerate(plain)
    src, lengths = padded_batch([6, 3, 5])
    tgt = torch.randint(4, 25, (3, 6))

    def run(m: Seq2Seq, seed: int) -> tuple[torch.Tensor, ...]:
        m.zero_grad(set_to_none=True)
        torch.manual_seed(seed)
        loss = m(src, lengths, tgt[:, :-1]).loss(tgt[:, 1:], 0.1)
        loss.backward()
        return (loss.detach(), *(p.grad.clone() for p in m.parameters()))

    first, again, other, none = run(model, 1), run(model, 1), run(model, 2), run(plain, 1)
    assert all(torch.equal(a, b) for a, b in zip(first, again, strict=True))
    assert not torch.equal(first[0], other[0])
    assert not torch.equal(first[0], none[0])
    names = [name for name, _ in model.named_parameters()]
    for name, g, g_none in zip(names, first[1:], none[1:], strict=True):
        if "embed" not in name:  # an embedding row's gradient can miss every mask by chance
            assert not torch.allclose(g, g_none), f"{name}: dropout changed nothing"


@pytest.fixture(scope="module")
def dropout_model_dir(tmp_path_factory) -> Path:
    """A model directory trained two steps with dropout 0.5 and two layers on both sides."""
    corpus = write_toy_corpus(tmp_path_factory.mktemp("toy"), n_train=60, n_dev=5)
    cfg = toy_config(corpus, max_steps=2, validate_every=100, checkpoint_every=100)
    cfg = dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, dropout=0.5,
                                                             enc_layers=2, dec_layers=2))
    out = tmp_path_factory.mktemp("run") / "model"
    train(cfg, out, quiet=True)
    return out


LINES = ["ka lo mi", "su ta ri po ve", "ne", "zu an el ka lo"]


def translations(model: Seq2Seq, vocabs, cfg) -> list[tuple[str, float]]:
    with torch.inference_mode():
        return [(t.text, t.hyps[0].raw_score)
                for t in Translator(model, vocabs.src, vocabs.tgt, cfg.decode).translate(LINES)]


def assert_same(got: list[tuple[str, float]], want: list[tuple[str, float]]) -> None:
    assert [text for text, _ in got] == [text for text, _ in want]
    assert [score for _, score in got] == pytest.approx([score for _, score in want], abs=1e-5)


def test_translation_turns_dropout_off(dropout_model_dir):
    """What `translate` loads (`load_model`, then `load_for_inference`), and a model
    prepared for decoding from training mode (`accelerate(training=False)`), decode
    deterministically, exactly as the same weights built with dropout 0."""
    model, cfg, vocabs = load_model(dropout_model_dir)
    assert cfg.model.dropout == 0.5 and not model.training
    reference = without_dropout(model).eval()
    want = translations(reference, vocabs, cfg)
    fast_reference = accelerate(copy.deepcopy(reference), training=False)
    assert_same(translations(fast_reference, vocabs, cfg), want)
    in_training_mode = copy.deepcopy(model).train()
    assert accelerate(in_training_mode, training=False) is in_training_mode
    for decoder in (model, load_for_inference(dropout_model_dir)[0], in_training_mode):
        assert_same(translations(decoder, vocabs, cfg), want)
        assert_same(translations(decoder, vocabs, cfg), want)
    # the check can fail: in training mode, dropout 0.5 changes these scores
    noisy = translations(copy.deepcopy(model).train(), vocabs, cfg)
    assert [s for _, s in noisy] != pytest.approx([s for _, s in want], abs=1e-5)


def test_the_trainer_drops_out_in_training_only_and_reproducibly(tmp_path, monkeypatch):
    """Every teacher-forced forward of training runs in training mode, also after a
    validation (whose greedy decoding runs in eval mode); two runs with the same seed end
    with the same weights, and dropout 0 with other weights."""
    corpus = write_toy_corpus(tmp_path / "toy", n_train=60, n_dev=5)
    modes: dict[str, list[bool]] = {"forward": [], "decode_step": []}
    forward, decode_step = FastSeq2Seq.forward, Seq2Seq.decode_step
    monkeypatch.setattr(FastSeq2Seq, "forward", lambda self, *a, **k: (
        modes["forward"].append(self.training) or forward(self, *a, **k)))
    monkeypatch.setattr(Seq2Seq, "decode_step", lambda self, *a: (
        modes["decode_step"].append(self.training) or decode_step(self, *a)))

    def run(name: str, dropout: float) -> dict[str, torch.Tensor]:
        cfg = toy_config(corpus, max_steps=4, validate_every=2, checkpoint_every=100)
        cfg = dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, dropout=dropout))
        train(cfg, tmp_path / name, quiet=True)
        return checkpoint.load(tmp_path / name / "last.pt")["model"]

    first = run("first", 0.3)
    assert len(modes["forward"]) >= 4 and all(modes["forward"]), modes["forward"]
    assert modes["decode_step"] and not any(modes["decode_step"])
    again, none = run("again", 0.3), run("none", 0.0)
    assert all(torch.equal(first[k], again[k]) for k in first)
    assert not all(torch.equal(first[k], none[k]) for k in first)
