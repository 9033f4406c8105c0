"""Decoding: what search needs of a model (`Decodable`), typed hypotheses, and batched
greedy search (beam search: `nmt.decoding.beam`).

Search talks to the model only through `encode`, `decode_step` and `reorder_state` (and the
public `Memory.select`); it never touches the LSTM state itself. Under a shortlist a step's
log-probs cover only the batch's candidate ids (`StepResult.vocab`): search picks among those
columns and maps them to target ids with `StepResult.token_ids`. The scoring pieces of beam
search (length penalty, coverage penalty, min length, UNK ban, target prefixes) live in
`nmt.decoding.processors`; sampling (`nmt.decoding.sampling`) walks the paths greedy walks.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import torch

from nmt.decoding.processors import (
    LogProbProcessor,
    Prefixes,
    apply_processors,
    build_processors,
    force_tokens,
)
from nmt.model.decoder import DecoderState, Memory
from nmt.model.seq2seq import StepResult
from nmt.special import BOS_ID, EOS_ID

DEFAULT_LENGTH_PENALTY = "gnmt:0.6"


class Decodable(Protocol):
    """What search needs of a model, and all it uses: a `Seq2Seq`, or a wrapper of one
    (a shortlist) that offers the same three calls."""

    def encode(self, src: torch.Tensor, src_lengths: torch.Tensor
               ) -> tuple[Memory, DecoderState]: ...

    def decode_step(self, tokens: torch.Tensor, state: DecoderState, memory: Memory
                    ) -> StepResult: ...

    def reorder_state(self, state: DecoderState, index: torch.Tensor) -> DecoderState: ...


@dataclass
class Hypothesis:
    """One output sentence.

    tokens: target ids without BOS/EOS; token_scores: log-probability of each emitted token,
    EOS included when it was emitted (so len(token_scores) == len(tokens) + finished);
    attention (T', S) with one row per emitted token (EOS row included), over the real
    source tokens (the source's EOS included); finished: False when cut at the maximum length.
    score: what the search ranked by. Greedy: the raw sum of token_scores. Beam search: that
    sum length-normalised plus the coverage penalty (see `nmt.decoding.processors`); `raw_score` is
    always the plain sum. alternatives: the runners-up of the same sentence, best first, when
    an n-best search hands back only its best (`translator.beam_search_fn`); else empty.
    """

    tokens: list[int]
    score: float
    token_scores: list[float]
    attention: torch.Tensor
    finished: bool
    alternatives: list[Hypothesis] = field(default_factory=list)

    @property
    def raw_score(self) -> float:
        """Summed log-probability of the emitted tokens."""
        return math.fsum(self.token_scores)


def max_lengths(src_lengths: torch.Tensor, ratio: float, offset: int) -> torch.Tensor:
    """Most target tokens (EOS included) each sentence may emit: ceil(ratio * S) + offset."""
    return torch.ceil(src_lengths.float() * ratio).long() + offset


# A column chooser: (log_probs (N, V'), the rows' path numbers (N of them), t) -> columns (N,)
Choose = Callable[[torch.Tensor, list[int], int], torch.Tensor]


def walk(model: Decodable, memory: Memory, state: DecoderState, sentences: list[int],
         src_lengths: list[int], limits: list[int], processors: list[LogProbProcessor],
         prefixes: Prefixes, choose: Choose) -> list[Hypothesis]:
    """Paths of one token per step, one per memory row (greedy search, sampling).

    Row p of `memory`/`state` is path p, which decodes sentence `sentences[p]` (of
    `src_lengths`, `limits` and `prefixes`, indexed by sentence). Each step applies the
    processors, then the prefix (`force_tokens`), and lets `choose` pick a column per row;
    a path stops at its EOS or its maximum length, and leaves the batch, so the work
    shrinks as paths end. token_scores are the log-probs of the chosen tokens after the
    processors (the model's own, as a processor only sets -inf; a prefix token's is the
    model's).
    """
    P = len(sentences)
    device = memory.mask.device
    tokens: list[list[int]] = [[] for _ in range(P)]
    scores: list[list[float]] = [[] for _ in range(P)]
    attns: list[list[torch.Tensor]] = [[] for _ in range(P)]
    finished = [False] * P
    active = list(range(P))  # batch row r of the shrinking batch is path active[r]
    prev = torch.full((P,), BOS_ID, dtype=torch.long, device=device)
    t = 0
    while active:
        step = model.decode_step(prev, state, memory)
        # every live path has emitted t tokens; under a shortlist the processors map the
        # columns to target ids with step.vocab
        log_probs = apply_processors(processors, step.log_probs, t, step.vocab)
        forced = (prefixes.forced(t, [sentences[p] for p in active], device)
                  if t < prefixes.longest else None)  # no per-step list once prefixes end
        log_probs = force_tokens(log_probs, step.log_probs, forced, step.vocab)
        columns = choose(log_probs, active, t)  # (B',)
        best_lp = log_probs.gather(1, columns.unsqueeze(1)).squeeze(1)
        best = step.token_ids(columns)
        best_l, lp_l = best.tolist(), best_lp.tolist()
        attn = step.attn.cpu()
        keep = []
        for r, p in enumerate(active):
            attns[p].append(attn[r, : src_lengths[sentences[p]]])
            scores[p].append(lp_l[r])
            if best_l[r] == EOS_ID:
                finished[p] = True
            else:
                tokens[p].append(best_l[r])
                if t + 1 < limits[sentences[p]]:
                    keep.append(r)
        t += 1
        if len(keep) < len(active):
            if not keep:
                break
            index = torch.tensor(keep, device=device)
            state, memory = model.reorder_state(step.state, index), memory.select(index)
            best = best.index_select(0, index)
            active = [active[r] for r in keep]
        else:
            state = step.state
        prev = best
    return [Hypothesis(tokens[p], math.fsum(scores[p]), scores[p], torch.stack(attns[p]),
                       finished[p]) for p in range(P)]


def _argmax(log_probs: torch.Tensor, paths: list[int], t: int) -> torch.Tensor:
    return log_probs.max(dim=-1).indices


@torch.inference_mode()
def greedy(model: Decodable, src: torch.Tensor, src_lengths: torch.Tensor, *,
           max_len_ratio: float = 2.0, max_len_offset: int = 10, min_len: int = 0,
           ban_unk: bool = False, prefix: Sequence[Sequence[int]] | None = None
           ) -> list[Hypothesis]:
    """Batched greedy decoding; each sentence stops at its EOS or its maximum length.

    Shapes: src (B, S), src_lengths (B,). Finished sentences leave the batch, so the work
    shrinks as sentences end. min_len: no EOS before that many tokens; ban_unk: never emit
    UNK. These are beam search's log-prob processors (`nmt.decoding.processors`), applied
    to each step's log-probs before the argmax, so beam size 1 picks the same tokens. The
    length and coverage penalties only rank ended hypotheses and cannot change an argmax,
    so greedy has none. token_scores are the model's log-probs of the chosen tokens.
    prefix: per sentence, target ids its output starts with (see `Prefixes`; the maximum
    length is raised to fit the prefix and one more token).
    """
    if min_len < 0:
        raise ValueError(f"min_len must be >= 0, got {min_len}")
    B = src.size(0)
    prefixes = Prefixes.of(prefix, B)
    memory, state = model.encode(src, src_lengths)
    limits = prefixes.limits(max_lengths(src_lengths, max_len_ratio, max_len_offset).tolist())
    return walk(model, memory, state, list(range(B)), src_lengths.tolist(), limits,
                build_processors(min_len, ban_unk), prefixes, _argmax)
