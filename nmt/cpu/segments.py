"""A bidirectional `nn.LSTM` over a padded batch, run one length segment at a time.

On the CPU, torch runs a packed sequence of unequal lengths through its per-step LSTM (two
`addmm`s per direction and time step, the input projection included), and only a batch
whose sentences all have the same length through oneDNN's LSTM layer, which projects the
inputs of all steps at once and runs the recurrence in one call. Training batches are
length-bucketed (sorted by target, then source length), so a batch holds few distinct
source lengths, and a few oneDNN calls cost much less than the per-step packed path
(BENCHMARKS.md).

`lstm_by_length` gives what the packed LSTM gives, with oneDNN-sized calls: rows sorted by
length (longest first), time cut at each distinct length; in each segment the rows still
running are a prefix of the batch, and one LSTM call over that prefix continues from their
states. A row's final state is the state of the segment where it ends. The reverse
direction reads each row reversed within its length (padding stays at the end), so it is
the same computation on other inputs. Outputs are zero at padding, as after
`pad_packed_sequence`. Same values as the packed LSTM up to float rounding (tested, with
gradients).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from nmt.cpu.dropout import dropout


def lstm_by_length(rnn: nn.LSTM, x: torch.Tensor, lengths: list[int]
                   ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """rnn (bidirectional, batch_first) over x (B, S, I) whose row b has lengths[b] >= 1
    real positions -> out (B, S, 2H) zero at padding, h_n and c_n (2L, B, H), as `rnn`
    gives them for the packed batch."""
    B, S, _ = x.shape
    order = sorted(range(B), key=lambda b: -lengths[b])  # longest first (stable)
    lens = [lengths[b] for b in order]
    index = torch.tensor(order, device=x.device)
    x = x.index_select(0, index)
    flip = _reversal(lens, S, x.device)
    hs, cs = [], []
    for layer in range(rnn.num_layers):
        outs = []
        for suffix in ("", "_reverse"):
            params = [getattr(rnn, f"{name}_l{layer}{suffix}")
                      for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh")]
            inp = x if not suffix else _take(x, flip)
            out, h, c = _segments(inp, lens, params, rnn.hidden_size, rnn.training)
            outs.append(out if not suffix else _take(out, flip))
            hs.append(h)
            cs.append(c)
        x = torch.cat(outs, dim=-1)  # (B, S, 2H)
        if layer < rnn.num_layers - 1:
            x = dropout(x, rnn.dropout, rnn.training)
    unsort = torch.argsort(index)
    return (x.index_select(0, unsort), torch.stack(hs).index_select(1, unsort),
            torch.stack(cs).index_select(1, unsort))


def _reversal(lens: list[int], S: int, device: torch.device) -> torch.Tensor:
    """Flat row indices (B*S,) reversing each row of a (B, S, ..) tensor within its length;
    padding positions map to themselves. Its own inverse."""
    t = torch.arange(S, device=device)
    n = torch.tensor(lens, device=device).unsqueeze(1)  # (B, 1)
    within = torch.where(t < n, n - 1 - t, t)  # (B, S)
    return (within + S * torch.arange(len(lens), device=device).unsqueeze(1)).view(-1)


def _take(x: torch.Tensor, flat: torch.Tensor) -> torch.Tensor:
    """x (B, S, D) with its B*S positions taken at `flat` (B*S,)."""
    B, S, D = x.shape
    return x.reshape(B * S, D).index_select(0, flat).view(B, S, D)


def _segments(x: torch.Tensor, lens: list[int], params: list[torch.Tensor], H: int,
              train: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One direction of one layer over x (B, S, I), rows sorted by length, longest first.

    Returns out (B, S, H) zero at padding and the final h, c (B, H) of each row.
    """
    B, S, _ = x.shape
    h = c = x.new_zeros(1, B, H)
    pieces, final_h, final_c, start = [], [], [], 0
    for end in sorted(set(lens)):
        running = sum(n >= end for n in lens)  # rows [0, running) cover [start, end)
        # the functional LSTM that nn.LSTM calls: one layer, one direction (dropout between
        # layers is applied by the caller)
        out, h, c = torch.lstm(x[:running, start:end], (h[:, :running], c[:, :running]),
                               params, has_biases=True, num_layers=1, dropout=0.0,
                               train=train, bidirectional=False, batch_first=True)
        pieces.append(F.pad(out, (0, 0, 0, 0, 0, B - running)))  # (B, end - start, H)
        going_on = sum(n > end for n in lens)  # rows [going_on, running) end here
        final_h.append(h[0, going_on:running])
        final_c.append(c[0, going_on:running])
        start = end
    if start < S:
        pieces.append(x.new_zeros(B, S - start, H))
    # rows end in the order last-to-first: the longest rows end in the last segment
    return (torch.cat(pieces, dim=1), torch.cat(final_h[::-1]), torch.cat(final_c[::-1]))
