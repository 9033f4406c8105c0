"""Batched beam search over anything `Decodable` (see `nmt.decoding.search`), returning
n-best lists of typed hypotheses. How a step is taken and when a sentence stops is told in the
comment below; the scoring pieces live in `nmt.decoding.processors`."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from nmt.decoding.processors import (
    LengthPenalty,
    LogProbProcessor,
    Prefixes,
    apply_processors,
    build_processors,
    force_tokens,
)
from nmt.decoding.processors import coverage_penalty as coverage_term
from nmt.decoding.search import DEFAULT_LENGTH_PENALTY, Decodable, Hypothesis, max_lengths
from nmt.model.decoder import DecoderState, Memory
from nmt.special import BOS_ID, EOS_ID

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
                 processors: list[LogProbProcessor], prefixes: Prefixes):
        self.model, self.K, self.n_best, self.limits = model, K, n_best, limits
        self.penalty, self.beta, self.processors = penalty, beta, processors
        self.prefixes = prefixes
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
            forced = self.prefixes.forced(t, self.active, self.tokens.device, self.K)
            log_probs = force_tokens(log_probs, step.log_probs, forced, step.vocab)
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
                coverage_penalty: float = 0.0, ban_unk: bool = False,
                prefix: Sequence[Sequence[int]] | None = None) -> list[list[Hypothesis]]:
    """Batched beam search: per sentence, up to n_best hypotheses, best first.

    Shapes: src (B, S), src_lengths (B,). beam_size K >= n_best. Each sentence emits at most
    ceil(max_len_ratio * S) + max_len_offset tokens (EOS included) and at least `min_len`
    before EOS. length_penalty: "none" | "average" | "gnmt:<alpha>" (or a LengthPenalty);
    coverage_penalty: GNMT's beta >= 0; ban_unk: never emit UNK. A hypothesis' score is
    normalise(sum of token log-probs, tokens emitted incl. EOS) + beta * coverage (see
    `nmt.decoding.processors`); finished sentences leave the batch. Fewer than n_best
    hypotheses come back only when fewer than n_best have a finite score (tiny vocabularies,
    banned tokens).

    prefix: per sentence, target ids every hypothesis starts with (see `Prefixes`): while
    a sentence's prefix lasts, its beam holds one hypothesis (the prefix so far), and the
    beam opens from where the prefix ends; the maximum length is raised to fit the prefix
    and one more token.
    """
    check_beam_options(beam_size, n_best, min_len, coverage_penalty)
    penalty = LengthPenalty.parse(length_penalty)
    prefixes = Prefixes.of(prefix, src.size(0))
    limits = prefixes.limits(max_lengths(src_lengths, max_len_ratio, max_len_offset).tolist())
    search = _BeamSearch(model, src, src_lengths, beam_size, n_best, limits, penalty,
                         coverage_penalty, build_processors(min_len, ban_unk), prefixes)
    endings = search.run()
    return search.history.hypotheses(endings, src_lengths.tolist())
