"""Target-vocabulary shortlists: score only the target ids a batch's source words suggest.

The output projection over the full target vocabulary is the largest single cost of a CPU
decoding step. A lexical shortlist (as in Marian's `--shortlist`) restricts it per batch to:
the `frequent` most frequent target ids of the training corpus, the `per_source` target ids
most associated with each source id present in the batch, and UNK and EOS.

Association is counted on the model's training pairs, by sentence: c(s) and c(t) are the
number of pairs whose source holds s / whose target holds t, c(s, t) the number holding both;
pairs with c(s, t) >= `min_count` are ranked by Dice, 2 c(s, t) / (c(s) + c(t)) (ties: the
smaller target id first). Counting and ranking are vectorised over pairs (numpy), not a
Python loop over tokens.

`ShortlistModel` wraps a `Seq2Seq` so that search code, which only calls `encode`,
`decode_step` and `reorder_state`, decodes under the shortlist: `encode` gathers the output
layer's rows of the batch's candidates once, and `decode_step` scores only them, (B, V')
log-probs whose columns are the ids `StepResult.vocab`. Search picks among the V'
columns (the softmax, the beam's top-k and its score sums all shrink from V to V') and maps
them back to ids.
"""

from __future__ import annotations

import itertools
import pickle
import warnings
import zipfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from nmt.data.batching import encode_sources
from nmt.data.vocab import Vocabs
from nmt.errors import NmtError, first_line
from nmt.io import atomic_open
from nmt.model.decoder import DecoderState, Memory
from nmt.model.seq2seq import Seq2Seq, StepResult
from nmt.special import EOS_ID, UNK_ID

SHORTLIST_FILE = "shortlist.pt"
DEFAULT_FREQUENT = 1000
DEFAULT_PER_SOURCE = 20
DEFAULT_MIN_COUNT = 1
ALWAYS = (UNK_ID, EOS_ID)  # target ids every candidate set holds
_CHUNK = 4096  # sentence pairs whose co-occurrences are expanded at once (bounds memory)
_MERGE = 1 << 22  # new (id pair, count) entries that trigger a merge of the partial tables


@dataclass
class Shortlist:
    """frequent (N,): target ids, most frequent first; per_source (Vs, k): for each source
    id, its k best target ids, best first, padded with -1 where it has fewer."""

    frequent: torch.Tensor
    per_source: torch.Tensor

    def candidates(self, src: torch.Tensor, src_lengths: torch.Tensor) -> torch.Tensor:
        """src (B, S), src_lengths (B,) -> (V',) sorted unique target ids the batch may emit.

        The union over the batch of the real (non-pad) source positions' lists, `frequent`
        and UNK, EOS; on the device of `src`.
        """
        S = src.size(1)
        mask = torch.arange(S, device=src.device) < src_lengths.to(src.device).unsqueeze(1)
        ids = src[mask].to(self.per_source.device)  # (N,) real source tokens
        rows = self.per_source.index_select(0, ids).reshape(-1)  # (N*k,)
        always = torch.tensor(ALWAYS, dtype=torch.long, device=rows.device)
        vocab = torch.cat([always, self.frequent, rows[rows >= 0]]).unique(sorted=True)
        return vocab.to(src.device)

    def restrict(self, model: Seq2Seq) -> ShortlistModel:
        return ShortlistModel(model, self)

    def save(self, path: str | Path) -> None:
        """Written atomically (`nmt.io.atomic_open`)."""
        with atomic_open(path, "wb") as f:
            torch.save({"kind": "shortlist", "frequent": self.frequent.cpu(),
                        "per_source": self.per_source.cpu()}, f)

    @classmethod
    def load(cls, path: str | Path, src_vocab_size: int | None = None,
             tgt_vocab_size: int | None = None) -> Shortlist:
        """Read `path`; with vocabulary sizes, check that it was built for them."""
        path = Path(path)
        if not path.is_file():
            raise NmtError(f"{path}: not found; build it with "
                           f"`nmt shortlist --model-dir {path.parent}`")
        try:
            obj = torch.load(path, map_location="cpu", weights_only=True)
        except (RuntimeError, EOFError, pickle.UnpicklingError, zipfile.BadZipFile,
                OSError) as e:
            reason = first_line(e)
            raise NmtError(f"{path}: corrupt or unreadable shortlist ({reason})") from None
        if not isinstance(obj, dict) or obj.get("kind") != "shortlist":
            raise NmtError(f"{path}: not an nmt shortlist")
        shortlist = cls(obj["frequent"], obj["per_source"])
        if src_vocab_size is not None and tgt_vocab_size is not None:
            shortlist.check(src_vocab_size, tgt_vocab_size, path)
        return shortlist

    @classmethod
    def beside(cls, model_dir: str | Path, vocabs: Vocabs) -> Shortlist:
        """The shortlist of the model directory `model_dir`, checked against its
        vocabularies."""
        return cls.load(Path(model_dir) / SHORTLIST_FILE, len(vocabs.src), len(vocabs.tgt))

    def check(self, src_vocab_size: int, tgt_vocab_size: int, where: str | Path) -> None:
        top = max([-1] + [int(t.max()) for t in (self.frequent, self.per_source) if t.numel()])
        if self.per_source.size(0) != src_vocab_size or top >= tgt_vocab_size:
            raise NmtError(f"{where}: built for other vocabularies ({self.per_source.size(0)} "
                           f"source ids, target ids up to {top}; the model has "
                           f"{src_vocab_size} and {tgt_vocab_size}); rebuild it")


@dataclass
class ShortlistMemory(Memory):
    """A batch's memory under a shortlist: vocab (V',) the target ids the batch may emit and
    output, the output layer restricted to them, (.., A) -> (.., V'); both belong to the
    batch, not to a row, so `select`/`expand` keep them."""

    vocab: torch.Tensor | None = None
    output: nn.Module | None = None


class ShortlistModel:
    """A `Seq2Seq` that, batch by batch, scores only its shortlist's candidates.

    It offers what search calls (`encode`, `decode_step`, `reorder_state`); log-probs are
    (B, V') over the batch's candidates, their ids in `StepResult.vocab`. The model's decoder
    step is its own (`Seq2Seq.decoder_output`); only the output layer is restricted.
    """

    def __init__(self, model: Seq2Seq, shortlist: Shortlist):
        self.model, self.shortlist = model, shortlist
        self._int8_rows: torch.Tensor | None = None  # an int8 output layer's weight, as fp32

    def encode(self, src: torch.Tensor, src_lengths: torch.Tensor
               ) -> tuple[ShortlistMemory, DecoderState]:
        return self.encode_over(src, src_lengths, self.shortlist.candidates(src, src_lengths))

    def encode_over(self, src: torch.Tensor, src_lengths: torch.Tensor, vocab: torch.Tensor
                    ) -> tuple[ShortlistMemory, DecoderState]:
        """`encode` with the batch's candidate target ids given (V',), sorted: an ensemble
        passes the union of its members' candidates."""
        output = self.restricted_output(vocab)  # the batch's rows, gathered once
        memory, state = self.model.encode(src, src_lengths)
        return ShortlistMemory(memory.states, memory.keys, memory.mask, memory.beam, vocab,
                               output), state

    def decode_step(self, tokens: torch.Tensor, state: DecoderState, memory: ShortlistMemory
                    ) -> StepResult:
        step = self.model.decoder_output(tokens, state, memory)
        logits = memory.output(step.out)  # (B, V')
        return StepResult(F.log_softmax(logits.float(), dim=-1), step.state, step.attn,
                          memory.vocab)

    def reorder_state(self, state: DecoderState, index: torch.Tensor) -> DecoderState:
        return self.model.reorder_state(state, index)

    def restricted_output(self, vocab: torch.Tensor) -> nn.Module:
        """The model's output layer for target ids `vocab` (V',) only: (.., A) -> (.., V').

        An int8 dynamic-quantized output layer gives an int8 one (its rows requantized with
        one symmetric scale); otherwise a linear layer of the output layer's own class
        holding the rows.
        """
        generator = self.model.generator
        weight = generator.weight
        if not callable(weight):
            layer = nn.Linear(weight.size(1), len(vocab), bias=False, device=weight.device)
            layer.__class__ = type(generator)  # the same kind of layer, kernels included
            layer.weight = nn.Parameter(weight.detach().index_select(0, vocab),
                                        requires_grad=False)
            return layer
        from torch.ao.nn.quantized.dynamic import Linear as Int8Linear

        if self._int8_rows is None:  # unpacked once, not per batch
            self._int8_rows = weight().dequantize()  # (V, A)
        rows = self._int8_rows.index_select(0, vocab)  # (V', A)
        scale = max(float(rows.abs().max()), 1e-8) / 127.0
        layer = Int8Linear(rows.size(1), rows.size(0), bias_=False, dtype=torch.qint8)
        with warnings.catch_warnings():  # torch's deprecation notice for quantized tensors
            warnings.simplefilter("ignore")
            layer.set_weight_bias(torch.quantize_per_tensor(rows, scale, 0, torch.qint8), None)
        return layer


# ---------------------------------------------------------------------------- building


def _distinct(seqs: Sequence[Sequence[int]], vocab_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Each sentence's distinct ids: (ids (N,), sentence (N,)), sorted by sentence then id."""
    lengths = np.fromiter((len(s) for s in seqs), dtype=np.int64, count=len(seqs))
    ids = np.fromiter(itertools.chain.from_iterable(seqs), dtype=np.int64,
                      count=int(lengths.sum()))
    sentence = np.repeat(np.arange(len(seqs), dtype=np.int64), lengths)
    keys = np.unique(sentence * vocab_size + ids)
    return keys % vocab_size, keys // vocab_size


def _cross(src: np.ndarray, src_sent: np.ndarray, tgt: np.ndarray, tgt_sent: np.ndarray,
           n: int) -> tuple[np.ndarray, np.ndarray]:
    """All (source id, target id) pairs within each of n sentences; inputs sorted by sentence.

    Every source entry is repeated once per target entry of its sentence: (P,), (P,).
    """
    n_tgt = np.bincount(tgt_sent, minlength=n)
    tgt_start = np.cumsum(n_tgt) - n_tgt
    reps = n_tgt[src_sent]  # (Ns,) targets each source entry meets
    block = np.cumsum(reps) - reps
    offset = np.arange(int(reps.sum())) - np.repeat(block, reps)
    return np.repeat(src, reps), tgt[np.repeat(tgt_start[src_sent], reps) + offset]


@dataclass
class Counts:
    """Sentence-level counts of a parallel corpus (see `count_pairs`).

    src, tgt, both (P,): every (source id, target id) that co-occurs in at least one
    sentence pair, sorted by (src, tgt), and the number of pairs holding both; c_src (Vs,),
    c_tgt (Vt,): the number of pairs holding each id; tokens (Vt,): occurrences of each
    target id; pairs: sentence pairs read.
    """

    src: np.ndarray
    tgt: np.ndarray
    both: np.ndarray
    c_src: np.ndarray
    c_tgt: np.ndarray
    tokens: np.ndarray
    pairs: int


def _merge(keys: list[np.ndarray], counts: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Partial (key, count) tables summed into one, sorted by key."""
    key, inverse = np.unique(np.concatenate(keys), return_inverse=True)
    return key, np.bincount(inverse, weights=np.concatenate(counts)).astype(np.int64)


def count_pairs(pairs: Iterable[tuple[Sequence[int], Sequence[int]]], src_vocab_size: int,
                tgt_vocab_size: int) -> Counts:
    """Counts over aligned (source ids, target ids) pairs, read once, `_CHUNK` at a time.

    A stream works: memory grows with the number of distinct co-occurring id pairs, not
    with the corpus (partial tables are merged whenever the new entries outgrow the merged
    table and `_MERGE`).
    """
    keys: list[np.ndarray] = []
    counts: list[np.ndarray] = []
    merged = pending = n = 0
    c_src = np.zeros(src_vocab_size, dtype=np.int64)
    c_tgt = np.zeros(tgt_vocab_size, dtype=np.int64)
    tokens = np.zeros(tgt_vocab_size, dtype=np.int64)
    it = iter(pairs)
    while chunk := list(itertools.islice(it, _CHUNK)):
        src_ids, tgt_ids = [x for x, _ in chunk], [y for _, y in chunk]
        s, s_sent = _distinct(src_ids, src_vocab_size)
        t, t_sent = _distinct(tgt_ids, tgt_vocab_size)
        c_src += np.bincount(s, minlength=src_vocab_size)
        c_tgt += np.bincount(t, minlength=tgt_vocab_size)
        tokens += np.bincount(np.fromiter(itertools.chain.from_iterable(tgt_ids),
                                          dtype=np.int64), minlength=tgt_vocab_size)
        ps, pt = _cross(s, s_sent, t, t_sent, len(chunk))
        k, c = np.unique(ps * tgt_vocab_size + pt, return_counts=True)
        keys.append(k)
        counts.append(c)
        pending, n = pending + len(k), n + len(chunk)
        if pending > max(merged, _MERGE):
            key, both = _merge(keys, counts)
            keys, counts, merged, pending = [key], [both], len(key), 0
    if keys:
        key, both = _merge(keys, counts)
    else:
        key = both = np.zeros(0, dtype=np.int64)
    return Counts(key // tgt_vocab_size, key % tgt_vocab_size, both, c_src, c_tgt, tokens, n)


def _top_per_source(src: np.ndarray, tgt: np.ndarray, score: np.ndarray, n_src: int,
                    k: int) -> torch.Tensor:
    """The k best-scoring targets of each source id: (n_src, k), -1 pads.

    Entries come sorted by (src, tgt), as `count_pairs` gives them; scores lie in [0, 1].
    One stable sort on src + (1 - score) / 2 orders each source's entries by score, keeping
    equal scores (to float precision) in target-id order.
    """
    order = np.argsort(src + (1.0 - score) / 2, kind="stable")
    src, tgt = src[order], tgt[order]
    rank = np.arange(len(src)) - np.searchsorted(src, src)  # position within its source
    keep = rank < k
    table = np.full((n_src, k), -1, dtype=np.int64)
    table[src[keep], rank[keep]] = tgt[keep]
    return torch.from_numpy(table)


def _check_options(frequent: int, per_source: int, min_count: int) -> None:
    if frequent < 0 or per_source < 0 or min_count < 1:
        raise ValueError("frequent and per_source must be >= 0, min_count >= 1")


def build_shortlist(src_ids: Sequence[Sequence[int]], tgt_ids: Sequence[Sequence[int]],
                    src_vocab_size: int, tgt_vocab_size: int, *,
                    frequent: int = DEFAULT_FREQUENT, per_source: int = DEFAULT_PER_SOURCE,
                    min_count: int = DEFAULT_MIN_COUNT) -> Shortlist:
    """A shortlist from aligned source/target id lists (training pairs, no BOS/EOS)."""
    if len(src_ids) != len(tgt_ids):
        raise ValueError(f"{len(src_ids)} source and {len(tgt_ids)} target sentences")
    _check_options(frequent, per_source, min_count)
    counts = count_pairs(zip(src_ids, tgt_ids, strict=True), src_vocab_size, tgt_vocab_size)
    return shortlist_from_counts(counts, frequent=frequent, per_source=per_source,
                                 min_count=min_count)


def shortlist_from_counts(counts: Counts, *, frequent: int = DEFAULT_FREQUENT,
                          per_source: int = DEFAULT_PER_SOURCE,
                          min_count: int = DEFAULT_MIN_COUNT) -> Shortlist:
    """The shortlist `counts` give: per source id its `per_source` best targets by Dice
    among pairs seen `min_count` times or more, and the `frequent` most frequent targets."""
    _check_options(frequent, per_source, min_count)
    ok = counts.both >= min_count
    src, tgt, both = counts.src[ok], counts.tgt[ok], counts.both[ok]
    dice = 2.0 * both / (counts.c_src[src] + counts.c_tgt[tgt])
    table = _top_per_source(src, tgt, dice, len(counts.c_src), per_source)
    by_count = np.argsort(-counts.tokens, kind="stable")  # most frequent first, ties: smaller id
    top = by_count[: min(frequent, int((counts.tokens > 0).sum()))]
    return Shortlist(torch.from_numpy(top.copy()), table)


# ---------------------------------------------------------------------------- coverage


@dataclass
class Coverage:
    """How well a shortlist covers references (EOS not counted: it is always allowed).

    sentence: share of reference tokens inside their own sentence's candidates;
    batch: inside their batch's candidates (what decoding uses); mean sizes of both sets.
    """

    sentences: int
    tokens: int
    sentence: float
    batch: float
    mean_sentence_size: float
    mean_batch_size: float


def coverage(shortlist: Shortlist, src_ids: Sequence[Sequence[int]],
             tgt_ids: Sequence[Sequence[int]], batch_size: int = 100) -> Coverage:
    """Coverage of `tgt_ids` (references) by the candidates of `src_ids`, in corpus order,
    batches of `batch_size` sentences."""
    hits_sent = hits_batch = tokens = 0
    sizes_sent, sizes_batch = [], []
    for start in range(0, len(src_ids), batch_size):
        src, lengths = encode_sources(src_ids[start: start + batch_size])  # (b, S), (b,)
        refs = [torch.tensor(t, dtype=torch.long) for t in tgt_ids[start: start + batch_size]]
        vocab = shortlist.candidates(src, lengths)
        sizes_batch.append(vocab.numel())
        hits_batch += sum(int(torch.isin(r, vocab).sum()) for r in refs)
        for i, ref in enumerate(refs):
            own = shortlist.candidates(src[i: i + 1], lengths[i: i + 1])
            sizes_sent.append(own.numel())
            hits_sent += int(torch.isin(ref, own).sum())
            tokens += ref.numel()
    return Coverage(len(src_ids), tokens, hits_sent / max(tokens, 1), hits_batch / max(tokens, 1),
                    float(np.mean(sizes_sent)) if sizes_sent else 0.0,
                    float(np.mean(sizes_batch)) if sizes_batch else 0.0)
