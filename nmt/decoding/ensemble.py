"""Ensembles: several models decoding as one, their next-token distributions combined at
every step, so greedy and beam search run over the combination unchanged (`Ensemble` offers
the three calls of `nmt.decoding.search.Decodable`).

How the members' log-probabilities log p_k(y) combine (weights w_k >= 0, summing to 1):
- `"prob"` (default): log sum_k w_k p_k(y), the log of the weighted mean of probabilities
  (linear interpolation, fairseq's ensemble). The result is again a distribution over the
  target vocabulary, so scores, length penalties, n-best lists and UNK bans mean what they
  mean for one model; a member that is confidently wrong is outvoted rather than vetoing.
- `"logprob"`: log_softmax(sum_k w_k log p_k(y)), the renormalised weighted mean of
  log-probabilities (a product of experts, as Marian combines its scorers). Sharper: a token
  that any member finds unlikely is held back.

Members must share the target vocabulary (checked by `check_members`). Each keeps its own
source vocabulary and encoder: a batch comes in as member 0's source ids, and a member with
another source vocabulary reads the same sentences re-encoded from member 0's text (decode
and encode: exact for every character member 0's vocabulary spells; one it maps to UNK reaches
the others as UNK). The attention handed to search (coverage penalty, alignments, UNK
replacement) is the weighted mean over the members that read member 0's source pieces;
members with other source vocabularies attend over other positions and are left out of it.
With shortlists (`ShortlistModel` members), a batch's candidate target ids are the union of
the members' candidates, and every member scores those columns.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from nmt.data.batching import encode_sources
from nmt.data.vocab import SubwordVocab
from nmt.decoding.shortlist import ShortlistModel
from nmt.errors import NmtError
from nmt.model.decoder import Memory
from nmt.model.seq2seq import Seq2Seq, StepResult
from nmt.special import EOS_ID, PAD_ID

COMBINE = ("prob", "logprob")


@dataclass
class EnsembleMemory(Memory):
    """Member 0's memory (what search reads: the mask and shapes) and every member's own;
    `vocab` (V',) the batch's merged shortlist candidates, or None."""

    members: tuple[Memory, ...] = ()
    vocab: torch.Tensor | None = None

    def select(self, index: torch.Tensor) -> EnsembleMemory:
        return dataclasses.replace(super().select(index),
                                   members=tuple(m.select(index) for m in self.members))

    def expand(self, k: int) -> EnsembleMemory:
        return dataclasses.replace(super().expand(k),
                                   members=tuple(m.expand(k) for m in self.members))


class EnsembleState(tuple):
    """The members' decoder states, in member order."""


class Ensemble:
    """Decodable members (`Seq2Seq`, or `ShortlistModel` for all of them) as one model.

    src_vocabs: each member's source vocabulary (member 0's ids come in); weights: one per
    member (default equal), normalised to sum to 1; combine: "prob" or "logprob".
    """

    def __init__(self, members: Sequence[Seq2Seq | ShortlistModel],
                 src_vocabs: Sequence[SubwordVocab], weights: Sequence[float] | None = None,
                 combine: str = "prob"):
        if not members:
            raise NmtError("an ensemble needs at least one member")
        if len(src_vocabs) != len(members):
            raise ValueError("one source vocabulary per member")
        shortlisted = [isinstance(m, ShortlistModel) for m in members]
        if any(shortlisted) and not all(shortlisted):
            raise NmtError("--shortlist: every member of an ensemble needs its shortlist")
        self.members, self.src_vocabs = list(members), list(src_vocabs)
        self.weights = normalise_weights(weights, len(members))
        if combine not in COMBINE:
            raise NmtError(f"--ensemble-combine: '{combine}' is not one of {', '.join(COMBINE)}")
        self.combine = combine
        self.shortlisted = all(shortlisted)
        proto = src_vocabs[0].sp.serialized_model_proto()
        # members reading member 0's source pieces: the attention handed to search is theirs
        self.same_source = [v.sp.serialized_model_proto() == proto for v in src_vocabs]
        attending = [w for w, same in zip(self.weights, self.same_source, strict=True) if same]
        self.attn_weights = [w / sum(attending) if same else 0.0
                             for w, same in zip(self.weights, self.same_source, strict=True)]
        self.log_weights = torch.tensor([math.log(w) if w > 0 else -math.inf
                                         for w in self.weights])

    @property
    def device(self) -> torch.device:
        first = self.members[0]
        model = first.model if isinstance(first, ShortlistModel) else first
        return next(model.parameters()).device

    def sources(self, src: torch.Tensor, src_lengths: torch.Tensor
                ) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Each member's source batch: member 0's, or the same text in its own pieces."""
        texts = None
        out = []
        for same, vocab in zip(self.same_source, self.src_vocabs, strict=True):
            if same:
                out.append((src, src_lengths))
                continue
            if texts is None:
                rows = [[t for t in row[: int(n)] if t not in (EOS_ID, PAD_ID)]
                        for row, n in zip(src.tolist(), src_lengths.tolist(), strict=True)]
                texts = self.src_vocabs[0].decode(rows)
            ids, lengths = encode_sources(vocab.encode(texts))
            out.append((ids.to(src.device), lengths))
        return out

    def encode(self, src: torch.Tensor, src_lengths: torch.Tensor
               ) -> tuple[EnsembleMemory, EnsembleState]:
        sources = self.sources(src, src_lengths)
        vocab = None
        if self.shortlisted:  # the union of the members' candidates, sorted
            vocab = torch.cat([m.shortlist.candidates(s, n) for m, (s, n)
                               in zip(self.members, sources, strict=True)]).unique(sorted=True)
        memories, states = [], []
        for member, (s, n) in zip(self.members, sources, strict=True):
            memory, state = (member.encode_over(s, n, vocab) if vocab is not None
                             else member.encode(s, n))
            memories.append(memory)
            states.append(state)
        first = memories[0]
        return (EnsembleMemory(first.states, first.keys, first.mask, first.beam,
                               tuple(memories), vocab), EnsembleState(states))

    def decode_step(self, tokens: torch.Tensor, state: EnsembleState, memory: EnsembleMemory
                    ) -> StepResult:
        """tokens (B,) -> combined log-probs (B, V) (or (B, V') over `memory.vocab`), the
        members' states, and the attention (B, S) of the members reading member 0's source."""
        steps = [m.decode_step(tokens, s, mem) for m, s, mem
                 in zip(self.members, state, memory.members, strict=True)]
        if len(steps) == 1:
            log_probs = steps[0].log_probs
        else:
            stacked = torch.stack([s.log_probs for s in steps])  # (N, B, V)
            w = self.log_weights.to(stacked.device).view(-1, 1, 1)
            if self.combine == "prob":
                log_probs = torch.logsumexp(stacked + w, dim=0)
            else:
                log_probs = F.log_softmax((stacked * w.exp()).sum(0), dim=-1)
        attn = sum(w * s.attn for w, s in zip(self.attn_weights, steps, strict=True) if w > 0)
        return StepResult(log_probs, EnsembleState(s.state for s in steps), attn, memory.vocab)

    def reorder_state(self, state: EnsembleState, index: torch.Tensor) -> EnsembleState:
        return EnsembleState(m.reorder_state(s, index)
                             for m, s in zip(self.members, state, strict=True))


def normalise_weights(weights: Sequence[float] | None, n: int) -> list[float]:
    """`weights` (default equal) scaled to sum to 1; one line on a wrong count or sign."""
    if weights is None:
        return [1.0 / n] * n
    if len(weights) != n:
        raise NmtError(f"--ensemble-weights: {len(weights)} weight(s) for {n} member(s)")
    if any(not math.isfinite(w) or w < 0 for w in weights) or sum(weights) <= 0:
        raise NmtError("--ensemble-weights: weights must be >= 0 and not all 0")
    total = sum(weights)
    return [w / total for w in weights]


def check_members(tgt_vocabs: Sequence[SubwordVocab], names: Sequence[str]) -> None:
    """Members must share the target vocabulary: one line naming the first that differs."""
    proto = tgt_vocabs[0].sp.serialized_model_proto()
    for vocab, name in zip(tgt_vocabs[1:], names[1:], strict=True):
        if vocab.sp.serialized_model_proto() != proto:
            raise NmtError(f"--model-dir {name}: its target vocabulary ({vocab.path}) differs "
                           f"from {names[0]}'s; the members of an ensemble must share it")

