"""Sentencepiece subword vocabularies, trained with the special-token ids of `nmt.special`."""

from __future__ import annotations

import io
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import sentencepiece as spm

from nmt.config import VocabConfig
from nmt.errors import NmtError
from nmt.special import BOS_ID, EOS_ID, PAD_ID, UNK_ID


class SubwordVocab:
    """One sentencepiece model: text <-> ids (no BOS/EOS added here)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        if not self.path.is_file():
            raise NmtError(f"{self.path}: sentencepiece model not found")
        try:
            self.sp = spm.SentencePieceProcessor(model_file=str(self.path))
        except (OSError, RuntimeError) as e:
            raise NmtError(f"{self.path}: not a sentencepiece model ({e})") from None
        if (self.sp.pad_id(), self.sp.unk_id(), self.sp.bos_id(), self.sp.eos_id()) != (
            PAD_ID, UNK_ID, BOS_ID, EOS_ID
        ):
            raise NmtError(f"{self.path}: special-token ids differ from nmt's (pad/unk/bos/eos "
                           f"= {PAD_ID}/{UNK_ID}/{BOS_ID}/{EOS_ID})")

    def __len__(self) -> int:
        return self.sp.get_piece_size()

    def encode(self, texts: Sequence[str]) -> list[list[int]]:
        return self.sp.encode(list(texts), out_type=int)

    def encode_pieces(self, text: str) -> list[str]:
        return self.sp.encode(text, out_type=str)

    def normalize(self, text: str) -> tuple[str, list[int]]:
        """`text` as sentencepiece normalizes it before encoding (spaces as '▁'), and for
        each normalized character (and the end) its character offset in `text`."""
        normalized, offsets = self.sp.normalize(text, with_offsets=True)
        return normalized, list(offsets)

    def decode(self, ids: Sequence[Sequence[int]]) -> list[str]:
        return [self.sp.decode([i for i in seq if i > EOS_ID or i == UNK_ID]) for seq in ids]

    def id_to_piece(self, i: int) -> str:
        return self.sp.id_to_piece(i)


@dataclass
class Vocabs:
    src: SubwordVocab
    tgt: SubwordVocab

    @property
    def joint(self) -> bool:
        return self.src.path == self.tgt.path


def vocab_files(model_dir: str | Path, joint: bool) -> tuple[Path, Path]:
    model_dir = Path(model_dir)
    if joint:
        return model_dir / "spm.model", model_dir / "spm.model"
    return model_dir / "spm.src.model", model_dir / "spm.tgt.model"


def _train_one(texts: list[str], out: Path, cfg: VocabConfig, seed: int) -> None:
    if len(texts) > cfg.max_sentences:
        texts = random.Random(seed).sample(texts, cfg.max_sentences)
    texts = [t for t in texts if t.strip()]
    if not texts:
        raise NmtError(f"{out}: no non-empty training text for sentencepiece")
    model = io.BytesIO()
    try:
        spm.SentencePieceTrainer.train(
            sentence_iterator=iter(texts), model_writer=model, vocab_size=cfg.vocab_size,
            model_type=cfg.model_type, character_coverage=cfg.character_coverage,
            pad_id=PAD_ID, unk_id=UNK_ID, bos_id=BOS_ID, eos_id=EOS_ID, hard_vocab_limit=False,
            input_sentence_size=0, num_threads=1, minloglevel=2,
        )
    except RuntimeError as e:
        raise NmtError(f"sentencepiece training for {out.name} failed: {e}") from None
    from nmt.io import atomic_open

    with atomic_open(out, "wb") as f:
        f.write(model.getvalue())


def train_vocabs(src_texts: list[str], tgt_texts: list[str], model_dir: str | Path,
                 cfg: VocabConfig, seed: int = 1) -> Vocabs:
    """Train the subword model(s) on the training split and save them in `model_dir`."""
    src_file, tgt_file = vocab_files(model_dir, cfg.joint)
    if cfg.joint:
        _train_one(list(src_texts) + list(tgt_texts), src_file, cfg, seed)
    else:
        _train_one(list(src_texts), src_file, cfg, seed)
        _train_one(list(tgt_texts), tgt_file, cfg, seed)
    return load_vocabs(model_dir, cfg.joint)


def load_vocabs(model_dir: str | Path, joint: bool) -> Vocabs:
    src_file, tgt_file = vocab_files(model_dir, joint)
    src = SubwordVocab(src_file)
    return Vocabs(src=src, tgt=src if joint else SubwordVocab(tgt_file))
