"""Words and subword pieces agree for every space, control and format character.

Against a real sentencepiece model (nmt_nfkc normalization) trained on the demo corpus plus
lines holding each odd character, so the characters that survive normalization are pieces
of the vocabulary (as they would be after training on a corpus that has them).
"""

from __future__ import annotations

import unicodedata

import pytest
import torch

from nmt.config import VocabConfig
from nmt.data.demo_corpus import generate_pairs
from nmt.data.vocab import train_vocabs
from nmt.data.words import MARK, encode_line, hypothesis_segment
from nmt.decoding.search import Hypothesis
from nmt.decoding.translator import split_long
from nmt.decoding.unk import replace_unks
from nmt.special import UNK_ID


def odd_characters() -> list[str]:
    """Every character of Unicode categories Zs, Zl, Zp, Cf and Cc, and whatever else
    Python counts as whitespace."""
    return [chr(c) for c in range(0x110000)
            if unicodedata.category(chr(c)) in ("Zs", "Zl", "Zp", "Cf", "Cc")
            or chr(c).isspace()]


def texts_with(ch: str) -> list[str]:
    return [f"a{ch}man saw the dog.", f"{ch}a man", f"the man{ch}", f"a {ch} man",
            f"{ch}{ch}dog{ch}{ch}cat", f"zakolimu{ch}petravoz."]


@pytest.fixture(scope="module")
def vocab(tmp_path_factory):
    pairs = generate_pairs(1500, seed=1)
    odd = [f"a{ch}man{ch}saw the dog." for ch in odd_characters() for _ in range(2)]
    texts = [p.src for p in pairs] + odd
    out = tmp_path_factory.mktemp("spm")
    return train_vocabs(texts, [p.tgt for p in pairs], out, VocabConfig(vocab_size=400)).src


def test_the_odd_characters_are_the_ones_that_broke_word_splitting():
    chars = odd_characters()
    assert {"\u200b", "\u00a0", "\u3000", "\u2028", "\x1c", "\x85", "\ufeff", "\t"} <= set(chars)
    assert len(chars) > 200


def test_every_piece_maps_onto_a_word_of_the_line(vocab):
    """encode_line cuts words where sentencepiece does (U+200B is a word break for it, U+001C
    is removed, U+0085 is kept inside a word), never failing; each word is a stretch of the
    line, and UNK replacement picks the word an attention row points at."""
    for ch in odd_characters():
        for text in texts_with(ch):
            seg, ids = encode_line(text, vocab, "t")
            assert len(seg.piece_word) == len(ids) == len(seg.pieces)
            assert all(w and w in text for w in seg.words), (hex(ord(ch)), text, seg.words)
            assert sorted(set(seg.piece_word)) == list(range(len(seg.words)))
            k = len(ids) - 1  # an UNK whose attention row points at the last piece
            attention = torch.zeros(2, len(ids) + 1)
            attention[0, k] = 1.0
            hyp = Hypothesis([UNK_ID], 0.0, [0.0, 0.0], attention, True)
            assert replace_unks(text, [hyp], vocab, vocab) == seg.words[seg.piece_word[k]]


def test_zero_width_space_is_a_word_break_as_for_sentencepiece(vocab):
    seg, _ = encode_line("a\u200bman saw the dog.", vocab, "t")
    assert seg.words == ["a", "man", "saw", "the", "dog."]
    seg, _ = encode_line("a\x1cman\u00a0saw", vocab, "t")  # U+001C removed, NBSP a space
    assert seg.words == ["a\x1cman", "saw"]


def test_long_lines_are_chunked_into_the_lines_own_subwords(vocab):
    """split_long cuts the line's own ids between words, so replace-unk and alignment see
    the same subwords as the whole line, whatever characters separate the words."""
    for ch in odd_characters():
        text = " ".join(f"the{ch}dog saw" for _ in range(12))
        ids = vocab.encode([text])[0]
        chunks = split_long(text, vocab, 9)
        assert sum(chunks, []) == ids, hex(ord(ch))
        assert all(0 < len(c) <= 9 for c in chunks)
        starts = {i for i, p in enumerate(vocab.encode_pieces(text)) if p.startswith(MARK)}
        assert {len(sum(chunks[:n], [])) for n in range(1, len(chunks))} <= starts


def test_hypothesis_words_follow_the_pieces(vocab):
    """A decoded hypothesis holding a character that survives normalization (U+0085, which
    str.split() treats as a line break) still maps onto its words."""
    for ch in odd_characters():
        tokens = vocab.encode([f"a{ch}man{ch}saw the dog."])[0]
        seg = hypothesis_segment(tokens, vocab, "hyp")
        assert len(seg.piece_word) == len(tokens), hex(ord(ch))
        text = vocab.decode([tokens])[0]
        assert seg.words == [w for w in text.split(" ") if w]
