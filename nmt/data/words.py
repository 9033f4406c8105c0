"""Subword pieces and the words of the original line: which word each piece belongs to.

A subword piece belongs to the word of its first non-'▁' character (a piece that is only
'▁' belongs to the word it precedes). Words are the whitespace-separated words of the
original (detokenized) line; recovering a different number of words than `line.split()` is
an `NmtError` naming the line. Used by alignment (subword attention merged into words) and by
UNK replacement.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from nmt.data.vocab import SubwordVocab
from nmt.errors import NmtError
from nmt.special import EOS_ID, UNK_ID

MARK = "\u2581"  # sentencepiece's word-start marker
UNK_SURFACE = f"{MARK}\u2047{MARK}"  # sentencepiece decodes UNK as " ⁇ ", a word of its own


@dataclass
class Segmented:
    """A line's words, its subword pieces (for display) and the word index of each piece."""

    words: list[str]
    pieces: list[str]
    piece_word: list[int]


def piece_words(pieces: Sequence[str]) -> tuple[list[int], int]:
    """Word index of each piece, from the '▁' markers; and the number of words.

    A piece belongs to the word of its first non-marker character; a piece with none (a bare
    '▁', or an empty surface) belongs to the next word, or to the last one if none follows.
    """
    index: list[int] = []
    pending: list[int] = []
    word, in_space = -1, True
    for piece in pieces:
        owner = None
        for ch in piece:
            if ch == MARK:
                in_space = True
                continue
            if in_space:
                word, in_space = word + 1, False
            if owner is None:
                owner = word
        if owner is None:
            pending.append(len(index))
            index.append(-1)
            continue
        for k in pending:
            index[k] = owner
        pending = []
        index.append(owner)
    for k in pending:
        index[k] = max(word, 0)
    return index, word + 1


def segment(text: str, pieces: list[str], where: str,
            surfaces: list[str] | None = None) -> Segmented:
    """Map `pieces` (or their `surfaces`, if they differ) onto the words of `text`."""
    words = text.split()
    index, n = piece_words(surfaces if surfaces is not None else pieces)
    if n != len(words):
        raise NmtError(f"{where}: the subword pieces give {n} words but the line has "
                       f"{len(words)} (pieces: {' '.join(pieces)[:200]})")
    return Segmented(words, pieces, index)


def encode_line(text: str, vocab: SubwordVocab, where: str) -> tuple[Segmented, list[int]]:
    """A line's word segmentation and its subword ids (what the model reads)."""
    pieces = vocab.encode_pieces(text)
    ids = vocab.encode([text])[0]
    if len(ids) != len(pieces):
        raise NmtError(f"{where}: sentencepiece gave {len(ids)} ids but {len(pieces)} pieces")
    return segment(text, pieces, where), ids


def hypothesis_segment(tokens: list[int], vocab: SubwordVocab, where: str) -> Segmented:
    """The words of a decoded hypothesis (as `vocab.decode` writes it) and its pieces."""
    pieces = [vocab.id_to_piece(t) for t in tokens]
    surfaces = [UNK_SURFACE if t == UNK_ID else ("" if t <= EOS_ID else p)
                for t, p in zip(tokens, pieces, strict=True)]
    return segment(vocab.decode([tokens])[0], pieces, where, surfaces)
