"""Unknown-word replacement (Luong et al., 2015): each UNK of a translation becomes the source
word its attention row weighs most."""

from __future__ import annotations

import numpy as np

from nmt.data.vocab import SubwordVocab
from nmt.data.words import encode_line
from nmt.decoding.search import Hypothesis
from nmt.errors import NmtError
from nmt.special import UNK_ID


def replace_unks(line: str, hyps: list[Hypothesis], src_vocab: SubwordVocab,
                 tgt_vocab: SubwordVocab) -> str:
    """The translation of `line` (one hypothesis per chunk) with each UNK replaced by the
    source word its attention row weighs most (the row summed over each word's subwords)."""
    if not hyps:
        return ""
    src, _ = encode_line(line, src_vocab, "--replace-unk")
    sizes = [h.attention.size(1) - 1 for h in hyps]  # each chunk's source subwords, no EOS
    if sum(sizes) != len(src.pieces):
        raise NmtError(f"--replace-unk: the chunks hold {sum(sizes)} subwords but the line "
                       f"has {len(src.pieces)}")
    parts, offset = [], 0
    for hyp, n in zip(hyps, sizes, strict=True):
        piece_word = src.piece_word[offset: offset + n]
        offset += n
        run: list[int] = []
        for t, token in enumerate(hyp.tokens):
            if token != UNK_ID:
                run.append(token)
                continue
            parts.append(tgt_vocab.decode([run])[0])
            run = []
            weights = np.bincount(piece_word, weights=hyp.attention[t, :n].double().numpy(),
                                  minlength=len(src.words))
            parts.append(src.words[int(weights.argmax())])
        parts.append(tgt_vocab.decode([run])[0])
    return " ".join(p for p in parts if p)
