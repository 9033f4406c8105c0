"""Word alignments from attention: extraction, subword->word merging, hard links, dumps.

Extraction (`align_lines`) gives, per sentence, the attention of the decoder step the model
was trained with: either of the model's own translation (the chosen greedy or beam
hypothesis carries its own rows) or, given a target, of forced decoding (teacher forcing the
given translation through `model(src, src_lengths, tgt_in)`), which aligns any parallel
text. Subword-level attention is (T', S'): one row per target subword plus the row of the
step that emitted EOS (absent when a hypothesis was cut at its maximum length), one column
per source subword plus the source EOS. It is never transposed: rows are target positions.

Rules, applied by `merge_subwords` and `hard_links`:
- Words are the whitespace-separated words of the original (detokenized) lines; pieces are
  assigned to them as `nmt.data.words` says.
- W[j, i] = sum of A[t, s] over the pieces t of target word j and the pieces s of source word
  i. The target EOS row is dropped; the source EOS column is dropped and each target word's
  row is renormalised to sum to 1 over the source words. `eos_weight[j]` keeps the share of
  word j's attention mass that went to the source EOS. A row whose whole mass was on the EOS
  stays all zeros and gets no link.
- Hard alignment: each target word j is linked to its argmax source word (the first one on
  ties); with a threshold X, every (i, j) with W[j, i] >= X is added too.
- Pharaoh files and AER: `nmt.alignment.pharaoh`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from nmt.alignment.pharaoh import Link, format_pharaoh, write_pharaoh
from nmt.data.batching import collate
from nmt.data.vocab import Vocabs
from nmt.data.words import Segmented, encode_line, hypothesis_segment
from nmt.decoding.decode import Search, decode_ids
from nmt.decoding.search import Decodable, Hypothesis
from nmt.errors import NmtError
from nmt.io import atomic_open
from nmt.model.seq2seq import Seq2Seq

# ---------------------------------------------------------------------------------------------
# Subwords to words
# ---------------------------------------------------------------------------------------------

@dataclass
class WordAlignment:
    """matrix (T, S): target words x source words, rows sum to 1 (or are all zero);
    eos_weight (T,): each target word's share of attention on the source EOS."""

    matrix: np.ndarray
    eos_weight: np.ndarray


def merge_subwords(attn: np.ndarray, tgt_piece_word: list[int], n_tgt: int,
                   src_piece_word: list[int], n_src: int) -> WordAlignment:
    """Subword attention (T', S') -> word-level alignment (see the module docstring).

    attn has one row per target piece (plus an optional final EOS row) and one column per
    source piece plus the source EOS column.
    """
    Tp, Sp = len(tgt_piece_word), len(src_piece_word)
    attn = np.asarray(attn, dtype=np.float64)
    assert attn.shape[1] == Sp + 1 and attn.shape[0] in (Tp, Tp + 1), (attn.shape, Tp, Sp)
    rows = attn[:Tp]  # the target EOS row dropped
    to_tgt = np.zeros((n_tgt, Tp))
    to_tgt[tgt_piece_word, np.arange(Tp)] = 1.0
    to_src = np.zeros((Sp, n_src))
    to_src[np.arange(Sp), src_piece_word] = 1.0
    raw = to_tgt @ rows[:, :Sp] @ to_src  # (T, S)
    eos = to_tgt @ rows[:, Sp]  # (T,)
    mass = raw.sum(axis=1)
    matrix = np.divide(raw, mass[:, None], out=np.zeros_like(raw), where=mass[:, None] > 0)
    total = mass + eos
    eos_weight = np.divide(eos, total, out=np.zeros_like(eos), where=total > 0)
    return WordAlignment(matrix, eos_weight)


def hard_links(matrix: np.ndarray, threshold: float | None = None) -> list[Link]:
    """Argmax source word per target word, plus every link with weight >= threshold."""
    links = set()
    for j, row in enumerate(np.asarray(matrix)):
        if not row.size or row.sum() <= 0:
            continue
        links.add((int(row.argmax()), j))
        if threshold is not None:
            links.update((int(i), j) for i in np.flatnonzero(row >= threshold))
    return sorted(links)


# ---------------------------------------------------------------------------------------------
# Extraction
# ---------------------------------------------------------------------------------------------

@dataclass
class SentenceAlignment:
    """One input line: words and pieces of both sides, subword attention (T', S') as the
    model produced it, the model score (summed token log-probs, EOS included), word level."""

    line: int
    src: Segmented
    tgt: Segmented
    attention: np.ndarray
    score: float
    words: WordAlignment

    def links(self, threshold: float | None = None) -> list[Link]:
        return hard_links(self.words.matrix, threshold)


def empty_alignment(line: int, src: str = "", tgt: str = "") -> SentenceAlignment:
    """A line with an empty side: its words for display, no attention and no links."""
    S, T = len(src.split()), len(tgt.split())
    return SentenceAlignment(line, Segmented(src.split(), [], []), Segmented(tgt.split(), [], []),
                             np.zeros((0, 0)), 0.0, WordAlignment(np.zeros((T, S)), np.zeros(T)))


def _pair_batches(src_ids: list[list[int]], tgt_ids: list[list[int]], batch_size: int,
                  device: torch.device | str):
    """Batches of similar lengths, longest first: (input positions, src (B, S) on `device`,
    src_lengths (B,), tgt_in (B, T) = BOS + target, tgt_out (B, T) = target + EOS)."""
    order = sorted(range(len(src_ids)), key=lambda k: (len(src_ids[k]), len(tgt_ids[k])),
                   reverse=True)
    for start in range(0, len(order), batch_size):
        chunk = order[start: start + batch_size]
        b = collate([src_ids[k] for k in chunk], [tgt_ids[k] for k in chunk], chunk).to(device)
        yield chunk, b.src, b.src_lengths, b.tgt_in, b.tgt_out


@torch.inference_mode()
def forced_decode(model: Seq2Seq, src_ids: list[list[int]], tgt_ids: list[list[int]],
                  batch_size: int) -> list[Hypothesis]:
    """Teacher-force each given target; one finished Hypothesis per pair, in input order.

    Batches of similar source length go through `model(src, src_lengths, tgt_in)`; each
    hypothesis keeps its attention rows (T+1 incl. EOS) over its real source (S+1 incl. EOS)
    and the log-probs of the given tokens and EOS.
    """
    device = next(model.parameters()).device
    out: list[Hypothesis | None] = [None] * len(src_ids)
    for chunk, src, src_lengths, tgt_in, tgt_out in _pair_batches(src_ids, tgt_ids,
                                                                  batch_size, device):
        result = model(src, src_lengths, tgt_in)
        log_probs = F.log_softmax(result.logits.float(), dim=-1)
        token_lp = log_probs.gather(2, tgt_out.unsqueeze(-1)).squeeze(-1)  # (B, T)
        attn = result.attn.float().cpu()  # (B, T, S)
        for b, k in enumerate(chunk):
            T, S = len(tgt_ids[k]) + 1, int(src_lengths[b])
            scores = token_lp[b, :T].tolist()
            out[k] = Hypothesis(list(tgt_ids[k]), sum(scores), scores, attn[b, :T, :S], True)
    return out  # type: ignore[return-value]


@torch.inference_mode()
def forced_decode_steps(model: Decodable, src_ids: list[list[int]], tgt_ids: list[list[int]],
                        batch_size: int, device: torch.device | str = "cpu"
                        ) -> list[Hypothesis]:
    """`forced_decode` for anything search decodes with (an ensemble: its combined
    log-probs and mean attention), one `decode_step` per target position."""
    out: list[Hypothesis | None] = [None] * len(src_ids)
    for chunk, src, src_lengths, tgt_in, tgt_out in _pair_batches(src_ids, tgt_ids,
                                                                  batch_size, device):
        memory, state = model.encode(src, src_lengths)
        scores, rows = [], []
        for t in range(tgt_in.size(1)):
            step = model.decode_step(tgt_in[:, t], state, memory)
            scores.append(step.log_probs.gather(1, tgt_out[:, t: t + 1]).squeeze(1))  # (B,)
            rows.append(step.attn.float().cpu())  # (B, S)
            state = step.state
        token_lp = torch.stack(scores, 1)  # (B, T)
        attn = torch.stack(rows, 1)  # (B, T, S)
        for b, k in enumerate(chunk):
            T, S = len(tgt_ids[k]) + 1, int(src_lengths[b])
            lp = token_lp[b, :T].tolist()
            out[k] = Hypothesis(list(tgt_ids[k]), sum(lp), lp, attn[b, :T, :S], True)
    return out  # type: ignore[return-value]


def align_lines(model: Seq2Seq | Decodable, vocabs: Vocabs, src_lines: list[str],
                tgt_lines: list[str] | None = None, search: Search | None = None,
                batch_size: int = 64,
                names: tuple[str, str] = ("source", "target")) -> list[SentenceAlignment]:
    """Alignments of every line: forced decoding of `tgt_lines`, else of `search`'s output.

    `search` is a `nmt.decoding.decode.Search` (e.g. from `make_search`); the model should
    be in eval mode. `model` may also be an ensemble (`nmt.decoding.ensemble`): forced
    decoding then runs step by step and the attention is the members' mean. Lines with an
    empty side give an empty alignment. Lines are not chunked.
    """
    device = (next(model.parameters()).device if isinstance(model, Seq2Seq)
              else getattr(model, "device", "cpu"))
    if tgt_lines is not None and len(tgt_lines) != len(src_lines):
        raise NmtError(f"line count mismatch: {names[0]} has {len(src_lines)} lines, "
                       f"{names[1]} has {len(tgt_lines)}")
    keep = [n for n, line in enumerate(src_lines)
            if line.strip() and (tgt_lines is None or tgt_lines[n].strip())]
    src = [encode_line(src_lines[n], vocabs.src, f"{names[0]}:{n + 1}") for n in keep]
    src_ids = [ids for _, ids in src]
    if tgt_lines is not None:
        tgt = [encode_line(tgt_lines[n], vocabs.tgt, f"{names[1]}:{n + 1}") for n in keep]
        tgt_ids = [ids for _, ids in tgt]
        hyps = (forced_decode(model, src_ids, tgt_ids, batch_size) if isinstance(model, Seq2Seq)
                else forced_decode_steps(model, src_ids, tgt_ids, batch_size, device))
        tgt_segs = [seg for seg, _ in tgt]
    else:
        if search is None:
            raise ValueError("align_lines needs a search or target lines")
        hyps = decode_ids(model, src_ids, search, batch_size, device)
        tgt_segs = [hypothesis_segment(h.tokens, vocabs.tgt,
                                       f"translation of {names[0]}:{n + 1}")
                    for n, h in zip(keep, hyps, strict=True)]
    out = [empty_alignment(n, line, tgt_lines[n] if tgt_lines is not None else "")
           for n, line in enumerate(src_lines)]
    for n, (s, _), t, hyp in zip(keep, src, tgt_segs, hyps, strict=True):
        out[n] = _aligned(n, s, t, hyp)
    return out


def _aligned(n: int, src: Segmented, tgt: Segmented, hyp: Hypothesis) -> SentenceAlignment:
    attn = hyp.attention.float().numpy()
    words = merge_subwords(attn, tgt.piece_word, len(tgt.words), src.piece_word, len(src.words))
    return SentenceAlignment(n, src, tgt, attn, hyp.raw_score, words)


def hypothesis_alignment(n: int, src_line: str, hyp: Hypothesis, vocabs: Vocabs,
                         where: str = "input") -> SentenceAlignment:
    """The word alignment of a translation `hyp` of `src_line` (line `n`, 0-based) from its
    own attention; `hyp` must come from the whole line's subwords (not a chunk of it)."""
    if not src_line.strip() or not hyp.tokens:
        return empty_alignment(n, src_line, "")
    src, _ = encode_line(src_line, vocabs.src, f"{where}:{n + 1}")
    tgt = hypothesis_segment(hyp.tokens, vocabs.tgt, f"translation of {where}:{n + 1}")
    return _aligned(n, src, tgt, hyp)



# ---------------------------------------------------------------------------------------------
# Dumps: JSON lines, Pharaoh, npz
# ---------------------------------------------------------------------------------------------
def _rounded(matrix: np.ndarray, digits: int) -> list:
    return np.round(np.asarray(matrix, dtype=np.float64), digits).tolist()


def sentence_record(s: SentenceAlignment, threshold: float | None = None,
                    subword: bool = False, digits: int = 4) -> dict:
    """The JSON object of one line (see `write_dumps`)."""
    rec = {"line": s.line, "src": s.src.words, "tgt": s.tgt.words,
           "attention": _rounded(s.words.matrix, digits),
           "eos_weight": _rounded(s.words.eos_weight, digits),
           "alignment": format_pharaoh(s.links()), "score": round(s.score, 6)}
    if threshold is not None:
        rec["alignment_threshold"] = format_pharaoh(s.links(threshold))
    if subword:
        eos_row = s.attention.shape[0] > len(s.tgt.pieces)
        rec["subword"] = {"src": s.src.pieces + (["</s>"] if s.attention.size else []),
                          "tgt": s.tgt.pieces + (["</s>"] if eos_row else []),
                          "attention": _rounded(s.attention, digits)}
    return rec


def write_dumps(out_dir: str | Path, sentences: Sequence[SentenceAlignment],
                threshold: float | None = None, subword: bool = False) -> list[Path]:
    """alignments.jsonl, alignments.pharaoh (+ .threshold.pharaoh) and alignments.npz.

    The npz holds one (T, S) float32 array per line, keyed `s{line}` (0-based), plus
    `src_words` / `tgt_words`: per line, the word list as a JSON string.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    written = [out_dir / "alignments.jsonl", out_dir / "alignments.pharaoh"]
    with atomic_open(written[0]) as f:
        for s in sentences:
            f.write(json.dumps(sentence_record(s, threshold, subword), ensure_ascii=False) + "\n")
    write_pharaoh(written[1], [s.links() for s in sentences])
    if threshold is not None:
        written.append(out_dir / "alignments.threshold.pharaoh")
        write_pharaoh(written[-1], [s.links(threshold) for s in sentences])
    arrays = {f"s{s.line}": s.words.matrix.astype(np.float32) for s in sentences}
    arrays["src_words"] = np.array([json.dumps(s.src.words, ensure_ascii=False)
                                    for s in sentences], dtype=str)
    arrays["tgt_words"] = np.array([json.dumps(s.tgt.words, ensure_ascii=False)
                                    for s in sentences], dtype=str)
    written.append(out_dir / "alignments.npz")
    with atomic_open(written[-1], "wb") as f:
        np.savez_compressed(f, **arrays)
    return written
