"""The decoder's recurrent cells: a stacked LSTM or GRU that can take one time step.

Each is the `torch.nn` layer itself (so its weights keep torch's names, `weight_ih_l0`, ...,
and a whole sequence runs in one call where the decoder allows it) plus `step`, one time
step over all layers written from the equations. The decoder sees only this interface:

    state = cell.initial_state(h0)        # h0 (L, B, H) -> the cell's state
    state = cell.step(x, state)           # x (B, I): one step over the L layers
    out, state = cell.sequence(xs, state) # xs (B, T, I): all T steps (top layer's outputs)
    cell.top(state)                       # s_t (B, H), the top layer's output
    cell.select(state, index)             # the rows `index` of a state (beam search)

States are tuples of (L, B, H) tensors: (h, c) for the LSTM, (h,) for the GRU. Dropout
between layers, as in `nn.LSTM(dropout=...)`, applies to each lower layer's output.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

CellState = tuple[torch.Tensor, ...]


class StackedCell:
    """What both cells share: batch-first torch layers, dropout between layers only, and the
    state's top layer and rows."""

    def __init__(self, input_size: int, hidden_size: int, num_layers: int, dropout: float):
        super().__init__(input_size, hidden_size, num_layers, batch_first=True,
                         dropout=dropout if num_layers > 1 else 0.0)

    @staticmethod
    def top(state: CellState) -> torch.Tensor:
        return state[0][-1]

    @staticmethod
    def select(state: CellState, index: torch.Tensor) -> CellState:
        return tuple(s.index_select(1, index) for s in state)


class LSTM(StackedCell, nn.LSTM):
    """i, f, g, o = split(W_ih x + b_ih + W_hh h + b_hh); c' = sig(f) c + sig(i) tanh(g);
    h' = sig(o) tanh(c') (torch's gate order and equations)."""

    def initial_state(self, h: torch.Tensor, c: torch.Tensor | None = None) -> CellState:
        return h, torch.zeros_like(h) if c is None else c

    def step(self, x: torch.Tensor, state: CellState) -> CellState:
        h, c = state  # (L, B, H)
        hs, cs = [], []
        for k in range(self.num_layers):
            if k > 0:
                x = F.dropout(x, self.dropout, self.training)
            gates = (F.linear(x, getattr(self, f"weight_ih_l{k}"), getattr(self, f"bias_ih_l{k}"))
                     + F.linear(h[k], getattr(self, f"weight_hh_l{k}"),
                                getattr(self, f"bias_hh_l{k}")))  # (B, 4H)
            i, f, g, o = gates.chunk(4, dim=-1)
            c_k = torch.sigmoid(f) * c[k] + torch.sigmoid(i) * torch.tanh(g)
            x = torch.sigmoid(o) * torch.tanh(c_k)
            hs.append(x)
            cs.append(c_k)
        return torch.stack(hs), torch.stack(cs)

    def sequence(self, xs: torch.Tensor, state: CellState) -> tuple[torch.Tensor, CellState]:
        out, (h, c) = self(xs, state)
        return out, (h, c)


class GRU(StackedCell, nn.GRU):
    """r, z, n from W_ih x + b_ih and W_hh h + b_hh: r = sig(.), z = sig(.),
    n = tanh(W_in x + b_in + r * (W_hn h + b_hn)); h' = (1 - z) n + z h (torch's equations)."""

    def initial_state(self, h: torch.Tensor, c: torch.Tensor | None = None) -> CellState:
        return (h,)

    def step(self, x: torch.Tensor, state: CellState) -> CellState:
        (h,) = state  # (L, B, H)
        hs = []
        for k in range(self.num_layers):
            if k > 0:
                x = F.dropout(x, self.dropout, self.training)
            x_r, x_z, x_n = F.linear(x, getattr(self, f"weight_ih_l{k}"),
                                     getattr(self, f"bias_ih_l{k}")).chunk(3, dim=-1)
            h_r, h_z, h_n = F.linear(h[k], getattr(self, f"weight_hh_l{k}"),
                                     getattr(self, f"bias_hh_l{k}")).chunk(3, dim=-1)
            r, z = torch.sigmoid(x_r + h_r), torch.sigmoid(x_z + h_z)
            n = torch.tanh(x_n + r * h_n)
            x = (1 - z) * n + z * h[k]
            hs.append(x)
        return (torch.stack(hs),)

    def sequence(self, xs: torch.Tensor, state: CellState) -> tuple[torch.Tensor, CellState]:
        out, h = self(xs, state[0])
        return out, (h,)


CELLS = {"lstm": LSTM, "gru": GRU}


def build_cell(kind: str, input_size: int, hidden_size: int, num_layers: int,
               dropout: float) -> LSTM | GRU:
    return CELLS[kind](input_size, hidden_size, num_layers, dropout)
