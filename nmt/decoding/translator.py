"""Text in, text out: batching by length, long-line chunking, decoding, detokenizing.

Output line N always belongs to input line N: empty or whitespace-only lines (and lines of
nothing but characters sentencepiece's normalization removes, such as U+200B) give empty
output without touching the model, and a line longer than `max_input_tokens` subwords is
split at word boundaries into chunks that are translated separately and joined with a space
on the same output line (nothing is truncated or dropped).

A target prefix per line (`translate(lines, prefixes=...)`) is encoded with the target
subword model and forced on the line's first chunk: the translation starts with it and
search goes on from there; an empty (or whitespace-only, or None) prefix changes nothing,
and an empty input line stays empty, prefix or not. With `sampling`, each chunk's seed is
drawn in input order from one generator seeded per call, so a line's samples do not depend
on the batches it is decoded in.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from nmt.config import DecodeConfig
from nmt.data.vocab import SubwordVocab
from nmt.data.words import MARK, piece_words
from nmt.decoding.decode import Search, decode_ids, make_search
from nmt.decoding.sampling import Sampling
from nmt.decoding.search import Decodable, Hypothesis
from nmt.decoding.shortlist import Shortlist
from nmt.decoding.unk import replace_unks
from nmt.model.seq2seq import Seq2Seq
from nmt.special import EOS_ID


def split_long(text: str, vocab: SubwordVocab, max_tokens: int) -> list[list[int]]:
    """Subword ids of `text` in chunks of at most `max_tokens` (EOS excluded), cut between words.

    The chunks are the line's own ids (`vocab.encode`) cut where a new word starts (the words
    sentencepiece sees, `nmt.data.words.piece_words`), so they join back to exactly those ids
    and each chunk's subwords map onto the line's words. A single word longer than the limit
    is cut inside the word.
    """
    ids = vocab.encode([text])[0]
    if len(ids) <= max_tokens:
        return [ids]
    pieces = vocab.encode_pieces(text)
    if len(pieces) != len(ids):  # never seen; cutting between any two subwords is still safe
        pieces = [MARK] * len(ids)
    owner, n_words = piece_words(pieces)
    words: list[list[int]] = [[] for _ in range(n_words)]
    for token, w in zip(ids, owner, strict=True):
        words[w].append(token)
    chunks: list[list[int]] = [[]]
    for word_ids in words:
        while word_ids:
            room = max_tokens - len(chunks[-1])
            if room < len(word_ids) and chunks[-1]:
                chunks.append([])
                continue
            chunks[-1].extend(word_ids[:max_tokens])
            word_ids = word_ids[max_tokens:]
    return [c for c in chunks if c]


@dataclass
class Translation:
    """One input line's translation; hyps holds one hypothesis per chunk (none if empty)."""

    text: str
    hyps: list[Hypothesis]


class Translator:
    """Translates lines with `search` (default: what `cfg` and `sampling` ask for). `model`
    is a `Seq2Seq` or anything search can decode with (an `nmt.decoding.ensemble.Ensemble`,
    a model under its shortlist). With a `shortlist`, each batch scores only its candidate
    target ids (see `nmt.decoding.shortlist`). With `sampling`, the search samples and every
    call draws each chunk's seed (see the module docstring)."""

    def __init__(self, model: Seq2Seq | Decodable, src_vocab: SubwordVocab,
                 tgt_vocab: SubwordVocab,
                 cfg: DecodeConfig, search: Search | None = None, device: str = "cpu",
                 shortlist: Shortlist | None = None, sampling: Sampling | None = None):
        self.model, self.src_vocab, self.tgt_vocab = model, src_vocab, tgt_vocab
        self.cfg, self.device, self.sampling = cfg, device, sampling
        self.search = search or make_search(cfg, sampling=sampling)
        self.shortlist = shortlist
        # what search decodes with: the model, or the model under the shortlist (built once:
        # it keeps an int8 output layer's unpacked weight between calls)
        self.decodable = model if shortlist is None else shortlist.restrict(model)

    def translate(self, lines: list[str], progress: bool = False,
                  on_split: Callable[[int, int], None] | None = None,
                  prefixes: Sequence[str | None] | None = None) -> list[Translation]:
        """Translate lines; `on_split(line_no, n_chunks)` reports lines that were chunked.
        prefixes: one target prefix per line (None or "" for none)."""
        if prefixes is not None and len(prefixes) != len(lines):
            raise ValueError(f"prefixes: {len(prefixes)} prefixes for {len(lines)} lines")
        prefix_ids = self.encode_prefixes(prefixes) if prefixes is not None else None
        chunks: list[list[int]] = []
        owner: list[int] = []
        chunk_prefix: list[list[int]] = []
        for n, line in enumerate(lines):
            if not line.strip():
                continue
            parts = split_long(line, self.src_vocab, self.cfg.max_input_tokens)
            if not parts[0]:  # nothing but characters that sentencepiece removes
                continue
            if len(parts) > 1 and on_split is not None:
                on_split(n + 1, len(parts))
            chunks.extend(parts)
            owner.extend([n] * len(parts))
            if prefix_ids is not None:  # the line's prefix starts its first chunk
                chunk_prefix.extend([prefix_ids[n]] + [[]] * (len(parts) - 1))
        per_sentence: dict[str, Sequence[Any]] = {}
        if prefix_ids is not None and any(chunk_prefix):
            per_sentence["prefix"] = chunk_prefix
        if self.sampling is not None:
            per_sentence["seeds"] = self.sampling.seeds(len(chunks))
        hyps = decode_ids(self.decodable, chunks, self.search, self.cfg.batch_size, self.device,
                          progress, per_sentence)
        per_line: list[list[Hypothesis]] = [[] for _ in lines]
        for n, hyp in zip(owner, hyps, strict=True):
            per_line[n].append(hyp)
        return [Translation(self.detok(h), h) for h in per_line]

    def encode_prefixes(self, prefixes: Sequence[str | None]) -> list[list[int]]:
        """Target subword ids of each prefix (None, "" or whitespace: [])."""
        texts = [p if p and p.strip() else "" for p in prefixes]
        return [ids if text else [] for text, ids in
                zip(texts, self.tgt_vocab.encode(texts), strict=True)]

    def nbest(self, translation: Translation, n: int) -> list[tuple[str, float]]:
        """(text, score) of the n-best list, best first, at most `n` entries (needs a search
        made with n_best = n > 1); an empty line's list is `n` empty entries scored 0.

        A line translated in several chunks gets, as its k-th entry, the k-th entries of its
        chunks joined (a chunk's best when it has fewer), scored by their sum.
        """
        if not translation.hyps:
            return [("", 0.0)] * n
        return [(self.detok(chosen), sum(h.score for h in chosen))
                for chosen in self.nbest_hyps(translation, n)]

    @staticmethod
    def nbest_hyps(translation: Translation, n: int) -> list[list[Hypothesis]]:
        """The hypotheses behind each of the (at most `n`) n-best entries: one per chunk."""
        lists = [[h] + h.alternatives for h in translation.hyps]
        if not lists:
            return []
        return [[x[min(k, len(x) - 1)] for x in lists]
                for k in range(min(n, max(len(x) for x in lists)))]

    def replace_unk(self, line: str, translation: Translation) -> str:
        """`translation.text` with each UNK replaced by the source word of `line` that the
        UNK's attention row weighs most (Luong et al., 2015; see `nmt.alignment.extract`)."""
        return replace_unks(line, translation.hyps, self.src_vocab, self.tgt_vocab)

    def detok(self, hyps: list[Hypothesis]) -> str:
        texts = self.tgt_vocab.decode([[t for t in h.tokens if t != EOS_ID] for h in hyps])
        return " ".join(t for t in texts if t)
