"""nmt.cpu.dropout: the CPU mask keeps each element with the stated probability, independently,
scales by its inverse, and is reproducible; the model uses it everywhere."""

import pytest
import torch
from torch import nn

from nmt.config import ModelConfig
from nmt.cpu import accelerate
from nmt.cpu.dropout import Dropout, dropout, keep_mask, keep_probability
from nmt.model.seq2seq import build_model


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
