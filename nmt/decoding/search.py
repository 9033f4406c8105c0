"""Decoding: batched greedy and beam search, returning typed hypotheses.

Search talks to the model only through `encode`, `decode_step` and `reorder_state` (and the
public `Memory.select`); it never touches the LSTM state itself. Under a shortlist a step's
log-probs cover only the batch's candidate ids (`StepResult.vocab`): search picks among those
columns and maps them to target ids with `StepResult.token_ids`. The scoring pieces of beam
search (length penalty, coverage penalty, min length, UNK ban) live in `nmt.decoding.processors`.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import torch

from nmt.decoding.processors import (
    LengthPenalty,
    LogProbProcessor,
    apply_processors,
    build_processors,
)
from nmt.decoding.processors import coverage_penalty as coverage_term
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


@torch.inference_mode()
def greedy(model: Decodable, src: torch.Tensor, src_lengths: torch.Tensor, *,
           max_len_ratio: float = 2.0, max_len_offset: int = 10, min_len: int = 0,
           ban_unk: bool = False) -> list[Hypothesis]:
    """Batched greedy decoding; each sentence stops at its EOS or its maximum length.

    Shapes: src (B, S), src_lengths (B,). Finished sentences leave the batch, so the work
    shrinks as sentences end. min_len: no EOS before that many tokens; ban_unk: never emit
    UNK. These are beam search's log-prob processors (`nmt.decoding.processors`), applied
    to each step's log-probs before the argmax, so beam size 1 picks the same tokens. The
    length and coverage penalties only rank ended hypotheses and cannot change an argmax,
    so greedy has none. token_scores are the model's log-probs of the chosen tokens.
    """
    if min_len < 0:
        raise ValueError(f"min_len must be >= 0, got {min_len}")
    processors = build_processors(min_len, ban_unk)
    B = src.size(0)
    memory, state = model.encode(src, src_lengths)
    limits = max_lengths(src_lengths, max_len_ratio, max_len_offset).tolist()
    src_len = src_lengths.tolist()
    tokens: list[list[int]] = [[] for _ in range(B)]
    scores: list[list[float]] = [[] for _ in range(B)]
    attns: list[list[torch.Tensor]] = [[] for _ in range(B)]
    finished = [False] * B
    active = list(range(B))  # batch row r of the shrinking batch is sentence active[r]
    prev = torch.full((B,), BOS_ID, dtype=torch.long, device=src.device)
    t = 0
    while active:
        step = model.decode_step(prev, state, memory)
        # every live sentence has emitted t tokens; under a shortlist the processors map
        # the columns to target ids with step.vocab (they only set log-probs to -inf, so the
        # chosen token's value is still the model's log-prob)
        log_probs = apply_processors(processors, step.log_probs, t, step.vocab)
        best_lp, best = log_probs.max(dim=-1)  # (B',)
        best = step.token_ids(best)
        best_l, lp_l = best.tolist(), best_lp.tolist()
        attn = step.attn.cpu()
        keep = []
        for r, i in enumerate(active):
            attns[i].append(attn[r, : src_len[i]])
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


# ---------------------------------------------------------------------------------------------
# Beam search
#
# All sentences decode together, K rows each, flattened as (B'*K, ...) where B' counts the
# sentences still searching. Each step takes the 2K best expansions of every sentence's beam
# (topk over (B', K*V)); an EOS among the first K of them ends a hypothesis (it is kept with its
# sentence), and the first K non-EOS ones form the next beam (there are always K: each beam
# row offers at most one EOS). Live hypotheses of a sentence all have the same length, so the
# beam is pruned on raw summed log-probs; length and coverage penalties rank ended hypotheses.
#
# Stop rule, per sentence, checked after every step (t = tokens emitted by live hypotheses):
#   1. t reached its maximum length: the live hypotheses end as unfinished; or
#   2. K hypotheses have finished; or
#   3. at least n_best have finished and the n_best-th best finished score is >= an upper
#      bound on the score of anything a live hypothesis can still become:
#      LengthPenalty.best_possible(best live raw, t + 1, max length). The raw score only
#      decreases; with alpha > 0 the length penalty grows, so the bound takes the largest
#      denominator the remaining lengths allow; the coverage penalty is <= 0 (beta >= 0).
#      Rule 3 never changes the n-best list, only saves steps; rule 2 is the usual
#      (fairseq-style) heuristic and can, with length normalisation, stop before a longer
#      hypothesis would have overtaken.
# A sentence's n-best list: finished hypotheses by score, then (only if fewer than n_best
# finished) the unfinished ones by score.
# ---------------------------------------------------------------------------------------------


def check_beam_options(beam_size: int, n_best: int, min_len: int = 0,
                       coverage: float = 0.0) -> None:
    if beam_size < 1:
        raise ValueError(f"beam_size must be >= 1, got {beam_size}")
    if not 1 <= n_best <= beam_size:
        raise ValueError(f"n_best must be between 1 and beam_size={beam_size}, got {n_best}")
    if min_len < 0:
        raise ValueError(f"min_len must be >= 0, got {min_len}")
    if coverage < 0:
        raise ValueError(f"coverage_penalty (beta) must be >= 0, got {coverage}")


@dataclass
class _Candidates:
    """Expansions of each sentence's beam, best first. All (B', C): summed log-prob, the beam
    row (0..B'*K-1) each extends, the token, and that token's log-prob."""

    scores: torch.Tensor
    rows: torch.Tensor
    tokens: torch.Tensor
    log_probs: torch.Tensor

    def first(self, k: int) -> _Candidates:
        return _Candidates(*(x[:, :k] for x in
                             (self.scores, self.rows, self.tokens, self.log_probs)))

    def take(self, index: torch.Tensor) -> _Candidates:
        """Columns `index` (B', C') of each sentence."""
        return _Candidates(*(x.gather(1, index) for x in
                             (self.scores, self.rows, self.tokens, self.log_probs)))

    def sentences(self, index: torch.Tensor) -> _Candidates:
        """Sentences `index` (B'',)."""
        return _Candidates(*(x.index_select(0, index) for x in
                             (self.scores, self.rows, self.tokens, self.log_probs)))


def top_candidates(beam_scores: torch.Tensor, log_probs: torch.Tensor, n: int,
                   token_ids: Callable[[torch.Tensor], torch.Tensor] = lambda c: c
                   ) -> _Candidates:
    """The n best one-token expansions per sentence. beam_scores (B', K), log_probs (B'*K, V');
    token_ids maps log_probs columns to target ids (`StepResult.token_ids`)."""
    Bp, K = beam_scores.shape
    V = log_probs.size(1)
    total = (beam_scores.view(-1, 1) + log_probs).view(Bp, K * V)
    scores, flat = total.topk(min(n, K * V), dim=1)  # (B', n)
    rows = flat // V + torch.arange(Bp, device=flat.device).unsqueeze(1) * K
    columns = flat % V
    return _Candidates(scores, rows, token_ids(columns), log_probs.take(rows * V + columns))


def live_candidates(cands: _Candidates, K: int) -> _Candidates:
    """The first K non-EOS candidates of each sentence, in rank order: (B', K)."""
    n = cands.tokens.size(1)
    rank = torch.arange(n, device=cands.tokens.device)
    key = (cands.tokens == EOS_ID).long() * n + rank  # non-EOS first, ties broken by rank
    return cands.take(key.topk(K, dim=1, largest=False).indices)


@dataclass
class _Ending:
    """A hypothesis that left the beam, with EOS (finished) or cut at the maximum length.

    row: global history row it extends; token, log_prob: its last token (EOS if finished)."""

    score: float
    finished: bool
    row: int
    token: int
    log_prob: float


class _History:
    """Back-pointers of every beam row of every step, kept as tensors, followed once at the end.

    Rows are numbered globally, step after step. Row r holds the last token of its hypothesis
    (BOS at step 0), that token's log-prob, its parent row (-1 at step 0) and the attention of
    the decoder step run from it.
    """

    def __init__(self, n: int, device: torch.device):
        self.parents = [torch.full((n,), -1, dtype=torch.long, device=device)]
        self.tokens = [torch.full((n,), BOS_ID, dtype=torch.long, device=device)]
        self.log_probs = [torch.zeros(n, device=device)]
        self.attn: list[torch.Tensor] = []
        self.start, self.size = 0, n  # global rows of the current step: start .. size-1

    def add_step(self, parents: torch.Tensor, tokens: torch.Tensor, log_probs: torch.Tensor):
        """The next step's rows: parents (N,) are rows of the current step."""
        self.parents.append(parents + self.start)
        self.tokens.append(tokens)
        self.log_probs.append(log_probs)
        self.start, self.size = self.size, self.size + tokens.size(0)

    def hypotheses(self, endings: list[list[_Ending]], src_lengths: list[int]):
        parents = torch.cat(self.parents).tolist()
        tokens = torch.cat(self.tokens).tolist()
        log_probs = torch.cat(self.log_probs).tolist()
        attn = torch.cat(self.attn).float().cpu()  # (rows, S)
        out = []
        for ends, n in zip(endings, src_lengths, strict=True):
            hyps = []
            for end in ends:
                chain = [end.row]
                while parents[chain[-1]] >= 0:
                    chain.append(parents[chain[-1]])
                chain.reverse()  # step 0 .. last step
                emitted = [tokens[r] for r in chain[1:]] + [end.token]
                scores = [log_probs[r] for r in chain[1:]] + [end.log_prob]
                hyps.append(Hypothesis(emitted[:-1] if end.finished else emitted, end.score,
                                       scores, attn[chain, :n], end.finished))
            out.append(hyps)
        return out


class _BeamSearch:
    """The mutable state of one batched beam search; `beam_search` is the public entry."""

    def __init__(self, model: Decodable, src: torch.Tensor, src_lengths: torch.Tensor, K: int,
                 n_best: int, limits: list[int], penalty: LengthPenalty, beta: float,
                 processors: list[LogProbProcessor]):
        self.model, self.K, self.n_best, self.limits = model, K, n_best, limits
        self.penalty, self.beta, self.processors = penalty, beta, processors
        B, device = src.size(0), src.device
        memory, state = model.encode(src, src_lengths)
        expand = torch.arange(B, device=device).repeat_interleave(K)  # (B*K,)
        self.memory: Memory = memory.expand(K)  # B rows serving B*K state rows
        self.mask = self.memory.row_mask()  # (B'*K, S), for the coverage penalty
        self.state: DecoderState = model.reorder_state(state, expand)
        # step 0: one live row per sentence, so the beam does not fill with copies of it
        self.scores = torch.full((B, K), -math.inf, device=device)  # (B', K) raw sums
        self.scores[:, 0] = 0.0
        self.tokens = torch.full((B * K,), BOS_ID, dtype=torch.long, device=device)
        self.coverage = self.memory.states.new_zeros(self.mask.shape)  # (B'*K, S)
        self.active = list(range(B))  # beam block b' belongs to sentence active[b']
        self.history = _History(B * K, device)
        self.endings: list[list[_Ending]] = [[] for _ in range(B)]

    def run(self) -> list[list[_Ending]]:
        t = 0
        while self.active:
            step = self.model.decode_step(self.tokens, self.state, self.memory)
            self.history.attn.append(step.attn)
            coverage = self.coverage + step.attn  # includes this step's row
            log_probs = apply_processors(self.processors, step.log_probs, t, step.vocab)
            cands = top_candidates(self.scores, log_probs, 2 * self.K, step.token_ids)
            self._finish(cands, coverage, t + 1)
            live = live_candidates(cands, self.K)
            keep = self._survivors(live, coverage, t + 1)
            if keep:
                self._advance(live, keep, step.state, coverage)
            else:
                self.active = []
            t += 1
        return [sorted(ends, key=lambda e: (e.finished, e.score), reverse=True)[: self.n_best]
                for ends in self.endings]

    def _end(self, scores: torch.Tensor, rows: torch.Tensor, coverage: torch.Tensor,
             length: int) -> list[float]:
        """Ranking scores (as a list) of hypotheses ending with `length` tokens."""
        cover = coverage_term(coverage.index_select(0, rows),
                                 self.mask.index_select(0, rows), self.beta)
        return (self.penalty.normalise(scores, length) + cover).tolist()

    def _finish(self, cands: _Candidates, coverage: torch.Tensor, length: int) -> None:
        """Keep the EOS candidates among each sentence's first K as finished hypotheses."""
        top = cands.first(self.K)
        where = ((top.tokens == EOS_ID) & (top.scores > -math.inf)).nonzero()  # (F, 2)
        if where.numel() == 0:
            return
        b, k = where.unbind(1)
        rows, lps = top.rows[b, k], top.log_probs[b, k]
        ranked = self._end(top.scores[b, k], rows, coverage, length)
        rows_g = (rows + self.history.start).tolist()
        for b_, s, r, lp in zip(b.tolist(), ranked, rows_g, lps.tolist(), strict=True):
            self.endings[self.active[b_]].append(_Ending(s, True, r, EOS_ID, lp))

    def _survivors(self, live: _Candidates, coverage: torch.Tensor, length: int) -> list[int]:
        """Positions b' of the sentences that go on; the others end here (see the stop rule)."""
        best_live = live.scores[:, 0].tolist()
        keep, at_max = [], []
        for b_, i in enumerate(self.active):
            if length >= self.limits[i]:
                at_max.append(b_)
            elif not self._done(i, best_live[b_], length):
                keep.append(b_)
        if at_max:
            self._cut(live.sentences(torch.tensor(at_max, device=live.rows.device)),
                      [self.active[b_] for b_ in at_max], coverage, length)
        return keep

    def _done(self, i: int, best_live: float, length: int) -> bool:
        done = sorted((e.score for e in self.endings[i] if e.finished), reverse=True)
        if len(done) >= self.K:
            return True
        return (len(done) >= self.n_best and done[self.n_best - 1]
                >= self.penalty.best_possible(best_live, length + 1, self.limits[i]))

    def _cut(self, live: _Candidates, sentences: list[int], coverage: torch.Tensor,
             length: int) -> None:
        """The live hypotheses of `sentences` (at their maximum length) end unfinished."""
        rows = live.rows.reshape(-1)
        ranked = self._end(live.scores.reshape(-1), rows, coverage, length)
        finite = (live.scores.reshape(-1) > -math.inf).tolist()
        rows_g = (rows + self.history.start).tolist()
        for n, (s, r, tok, lp) in enumerate(zip(ranked, rows_g, live.tokens.reshape(-1).tolist(),
                                                live.log_probs.reshape(-1).tolist(), strict=True)):
            if finite[n]:
                self.endings[sentences[n // self.K]].append(_Ending(s, False, r, tok, lp))

    def _advance(self, live: _Candidates, keep: list[int], state: DecoderState,
                 coverage: torch.Tensor) -> None:
        """Move to the next step with the live hypotheses of the sentences at `keep`."""
        if len(keep) < len(self.active):
            index = torch.tensor(keep, device=live.rows.device)
            live = live.sentences(index)
            rows = (index.unsqueeze(1) * self.K + torch.arange(self.K, device=index.device))
            self.memory = self.memory.select(index)
            self.mask = self.mask.index_select(0, rows.view(-1))
            self.active = [self.active[b_] for b_ in keep]
        parents = live.rows.reshape(-1)  # (B''*K,) rows of this step
        self.state = self.model.reorder_state(state, parents)
        self.coverage = coverage.index_select(0, parents)
        self.scores = live.scores
        self.tokens = live.tokens.reshape(-1)
        self.history.add_step(parents, self.tokens, live.log_probs.reshape(-1))


@torch.inference_mode()
def beam_search(model: Decodable, src: torch.Tensor, src_lengths: torch.Tensor, *, beam_size: int,
                n_best: int = 1, max_len_ratio: float = 2.0, max_len_offset: int = 10,
                min_len: int = 0, length_penalty: LengthPenalty | str = DEFAULT_LENGTH_PENALTY,
                coverage_penalty: float = 0.0, ban_unk: bool = False) -> list[list[Hypothesis]]:
    """Batched beam search: per sentence, up to n_best hypotheses, best first.

    Shapes: src (B, S), src_lengths (B,). beam_size K >= n_best. Each sentence emits at most
    ceil(max_len_ratio * S) + max_len_offset tokens (EOS included) and at least `min_len`
    before EOS. length_penalty: "none" | "average" | "gnmt:<alpha>" (or a LengthPenalty);
    coverage_penalty: GNMT's beta >= 0; ban_unk: never emit UNK. A hypothesis' score is
    normalise(sum of token log-probs, tokens emitted incl. EOS) + beta * coverage (see
    `nmt.decoding.processors`); finished sentences leave the batch. Fewer than n_best
    hypotheses come back only when fewer than n_best have a finite score (tiny vocabularies,
    banned tokens).
    """
    check_beam_options(beam_size, n_best, min_len, coverage_penalty)
    penalty = LengthPenalty.parse(length_penalty)
    limits = max_lengths(src_lengths, max_len_ratio, max_len_offset).tolist()
    search = _BeamSearch(model, src, src_lengths, beam_size, n_best, limits, penalty,
                         coverage_penalty, build_processors(min_len, ban_unk))
    endings = search.run()
    return search.history.hypotheses(endings, src_lengths.tolist())
