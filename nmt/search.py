"""Decoding: batched greedy search, returning typed hypotheses.

Search talks to the model only through `encode`, `decode_step` and `reorder_state` (and the
public `Memory.select`); it never touches the LSTM state itself.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from nmt.model import Seq2Seq
from nmt.vocab import BOS_ID, EOS_ID


@dataclass
class Hypothesis:
    """One output sentence.

    tokens: target ids without BOS/EOS; token_scores: log-probability of each emitted token,
    EOS included when it was emitted (so len(token_scores) == len(tokens) + finished);
    score: their sum; attention (T', S) with one row per emitted token (EOS row included),
    over the real source tokens (the source's EOS included).
    """

    tokens: list[int]
    score: float
    token_scores: list[float]
    attention: torch.Tensor
    finished: bool


def max_lengths(src_lengths: torch.Tensor, ratio: float, offset: int) -> torch.Tensor:
    """Most target tokens (EOS included) each sentence may emit: ceil(ratio * S) + offset."""
    return torch.ceil(src_lengths.float() * ratio).long() + offset


@torch.inference_mode()
def greedy(model: Seq2Seq, src: torch.Tensor, src_lengths: torch.Tensor, *,
           max_len_ratio: float = 2.0, max_len_offset: int = 10) -> list[Hypothesis]:
    """Batched greedy decoding; each sentence stops at its EOS or its maximum length.

    Shapes: src (B, S), src_lengths (B,). Finished sentences leave the batch, so the work
    shrinks as sentences end.
    """
    B = src.size(0)
    memory, state = model.encode(src, src_lengths)
    limits = max_lengths(src_lengths, max_len_ratio, max_len_offset).tolist()
    tokens: list[list[int]] = [[] for _ in range(B)]
    scores: list[list[float]] = [[] for _ in range(B)]
    attns: list[list[torch.Tensor]] = [[] for _ in range(B)]
    finished = [False] * B
    active = list(range(B))  # batch row r of the shrinking batch is sentence active[r]
    prev = torch.full((B,), BOS_ID, dtype=torch.long, device=src.device)
    t = 0
    while active:
        step = model.decode_step(prev, state, memory)
        best_lp, best = step.log_probs.max(dim=-1)  # (B',)
        best_l, lp_l = best.tolist(), best_lp.tolist()
        attn = step.attn.cpu()
        keep = []
        for r, i in enumerate(active):
            attns[i].append(attn[r, : int(src_lengths[i])])
            scores[i].append(lp_l[r])
            if best_l[r] == EOS_ID:
                finished[i] = True
            else:
                tokens[i].append(best_l[r])
                if t + 1 < limits[i]:
                    keep.append(r)
        t += 1
        if len(keep) < len(active):
            if not keep:
                break
            index = torch.tensor(keep, device=src.device)
            state, memory = model.reorder_state(step.state, index), memory.select(index)
            best = best.index_select(0, index)
            active = [active[r] for r in keep]
        else:
            state = step.state
        prev = best
    return [Hypothesis(tokens[i], math.fsum(scores[i]), scores[i], torch.stack(attns[i]),
                       finished[i]) for i in range(B)]
