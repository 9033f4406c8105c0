"""Subword pieces and the words of the original line: which word each piece belongs to.

A subword piece belongs to the word of its first non-'▁' character (a piece that is only
'▁' belongs to the word it precedes). The words of a source line are the words that
sentencepiece sees: its normalized text (`SubwordVocab.normalize`, e.g. NFKC with U+200B
and U+3000 turned into word breaks and U+001C removed) cut at '▁', each word written as the
stretch of the original line it came from. So the pieces and the words agree for every
space, control and format character, where `str.split()` would not (it splits at U+001C,
keeps U+200B inside a word). The words of a decoded hypothesis are its detokenized text cut
at spaces. Used by alignment (subword attention merged into words) and by UNK replacement.
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
            surfaces: list[str] | None = None, words: list[str] | None = None) -> Segmented:
    """Map `pieces` (or their `surfaces`, if they differ) onto `words` (default
    `text.split()`); a different number of words is an NmtError naming `where`."""
    words = text.split() if words is None else words
    index, n = piece_words(surfaces if surfaces is not None else pieces)
    if n != len(words):
        raise NmtError(f"{where}: the subword pieces give {n} words but the line has "
                       f"{len(words)} (pieces: {' '.join(pieces)[:200]})")
    return Segmented(words, pieces, index)


def line_words(text: str, vocab: SubwordVocab) -> list[str]:
    """The words of `text` as sentencepiece cuts them (its normalized text split at '▁'),
    each as the stretch of `text` it comes from, without surrounding whitespace (or, if that
    stretch is only whitespace, the normalized word)."""
    normalized, offsets = vocab.normalize(text)  # offsets[i]: where normalized[i] starts
    words: list[str] = []
    start = None
    for i, ch in enumerate(normalized + MARK):
        if ch != MARK:
            start = i if start is None else start
            continue
        if start is not None:
            words.append(text[offsets[start]: offsets[i]].strip() or normalized[start:i])
            start = None
    return words


def encode_line(text: str, vocab: SubwordVocab, where: str) -> tuple[Segmented, list[int]]:
    """A line's word segmentation (`line_words`) and its subword ids (what the model reads)."""
    pieces = vocab.encode_pieces(text)
    ids = vocab.encode([text])[0]
    if len(ids) != len(pieces):
        raise NmtError(f"{where}: sentencepiece gave {len(ids)} ids but {len(pieces)} pieces")
    return segment(text, pieces, where, words=line_words(text, vocab)), ids


def hypothesis_segment(tokens: list[int], vocab: SubwordVocab, where: str) -> Segmented:
    """The words of a decoded hypothesis (as `vocab.decode` writes it, cut at spaces: '▁' is
    the only thing decoding turns into one) and its pieces."""
    pieces = [vocab.id_to_piece(t) for t in tokens]
    surfaces = [UNK_SURFACE if t == UNK_ID else ("" if t <= EOS_ID else p)
                for t, p in zip(tokens, pieces, strict=True)]
    text = vocab.decode([tokens])[0]
    return segment(text, pieces, where, surfaces, words=[w for w in text.split(" ") if w])
