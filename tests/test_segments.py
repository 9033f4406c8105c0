"""nmt.cpu.segments: the length-segmented bidirectional LSTM equals torch's packed LSTM."""

import pytest
import torch
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence
from torch.profiler import ProfilerActivity, profile

from nmt.cpu.segments import lstm_by_length


def packed(rnn, x, lengths):
    p = pack_padded_sequence(x, torch.tensor(lengths), batch_first=True, enforce_sorted=False)
    out, (h, c) = rnn(p)
    return pad_packed_sequence(out, batch_first=True, total_length=x.size(1))[0], h, c


@pytest.mark.parametrize("layers", [1, 2])
@pytest.mark.parametrize("lengths", [[5, 3, 7, 3, 1, 7], [4, 4, 4], [6], [2, 9, 9, 1, 5]])
def test_equals_the_packed_lstm_with_gradients(layers, lengths):
    torch.manual_seed(len(lengths) + layers)
    rnn = torch.nn.LSTM(12, 8, layers, batch_first=True, bidirectional=True)
    x = torch.randn(len(lengths), max(lengths) + 2, 12, requires_grad=True)  # extra padding
    params = [x, *rnn.parameters()]

    def run(fn):
        out, h, c = fn(rnn, x, lengths)
        loss = out.sin().sum() + (h * c.cos()).sum()
        return (out, h, c), torch.autograd.grad(loss, params)

    (out, h, c), grads = run(lstm_by_length)
    (out_p, h_p, c_p), grads_p = run(packed)
    assert out.shape == out_p.shape and h.shape == h_p.shape == c.shape
    for got, want in zip((out, h, c, *grads), (out_p, h_p, c_p, *grads_p), strict=True):
        torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
    for b, n in enumerate(lengths):
        assert torch.all(out[b, n:] == 0)  # padding


@pytest.mark.skipif(not torch.backends.mkldnn.is_available(), reason="torch without oneDNN")
def test_runs_as_one_onednn_call_per_segment_and_direction():
    rnn = torch.nn.LSTM(12, 8, batch_first=True, bidirectional=True)
    x = torch.randn(5, 7, 12)
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        lstm_by_length(rnn, x, [7, 7, 5, 5, 5])  # two segments: [0, 5) and [5, 7)
    counts = {e.key: e.count for e in prof.key_averages()}
    assert counts.get("aten::mkldnn_rnn_layer") == 4
    assert "aten::addmm" not in counts  # not torch's per-step path
