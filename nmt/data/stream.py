"""Streaming training data: corpora read as `datasets.IterableDataset`, never loaded whole.

`data.streaming: true` reads the training split lazily: a hub id with `streaming=True`, or
local files through a generator. Per epoch, the pipeline is
    stream -> tokenize and filter (chunks) -> shuffle buffer -> windows -> token batches,
with every random choice drawn from one generator seeded by (seed, epoch). Memory holds at
most `shuffle_buffer` + `stream_window` examples, whatever the corpus size.

The batches of a window come from `nmt.data.corpus.window_batches`, the function in-memory
training uses on the whole (shuffled) corpus; and a shuffle buffer at least as large as the
corpus emits it in the same random order as in-memory training's permutation. So on a
corpus that fits both the buffer and one window, streaming and in-memory training see
exactly the same batches. Resuming inside an epoch regenerates the epoch's stream and skips
the batches already trained on (exact; it costs reading and tokenizing that part again).
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterable, Iterator
from pathlib import Path

import datasets
import numpy as np

from nmt.config import DataConfig
from nmt.data.batching import Batch, collate, window_batches
from nmt.data.vocab import SubwordVocab
from nmt.errors import NmtError
from nmt.io import open_text


def _decode(raw: bytes, name: str, line_no: int) -> str:
    try:
        return raw.rstrip(b"\n").removesuffix(b"\r").decode("utf-8")
    except UnicodeDecodeError as e:
        raise NmtError(f"{name}:{line_no}: invalid UTF-8 at byte {e.start}") from None


def _text_pairs(src_file: str, tgt_file: str) -> Iterator[dict]:
    with open_text(src_file) as fs, open_text(tgt_file) as ft:
        for n, (s, t) in enumerate(itertools.zip_longest(fs, ft), start=1):
            if s is None or t is None:
                longer, shorter = (src_file, tgt_file) if t is None else (tgt_file, src_file)
                raise NmtError(f"line counts differ: {shorter} ends after {n - 1} lines, "
                               f"{longer} goes on")
            yield {"src": _decode(s, src_file, n), "tgt": _decode(t, tgt_file, n)}


def _tsv_pairs(file: str) -> Iterator[dict]:
    with open_text(file) as f:
        for n, raw in enumerate(f, start=1):
            line = _decode(raw, file, n)
            fields = line.split("\t") if line else ["", ""]
            if len(fields) != 2:
                raise NmtError(f"{file}:{n}: expected 2 tab-separated fields, found {len(fields)}")
            yield {"src": fields[0], "tgt": fields[1]}


def _columns(example: dict, cfg: DataConfig, what: str) -> tuple[str, str]:
    if cfg.src_column in example and cfg.tgt_column in example:
        return example[cfg.src_column] or "", example[cfg.tgt_column] or ""
    pair = example.get("translation")
    if isinstance(pair, dict) and cfg.src_lang in pair and cfg.tgt_lang in pair:
        return pair[cfg.src_lang] or "", pair[cfg.tgt_lang] or ""
    raise NmtError(f"{what}: an example has neither columns {cfg.src_column}/{cfg.tgt_column} "
                   f"nor a translation with {cfg.src_lang}/{cfg.tgt_lang} (keys: "
                   f"{', '.join(example)})")


def stream_pairs(cfg: DataConfig, split: str) -> Iterator[tuple[str, str]]:
    """(source, target) strings of a split, in corpus order, read lazily."""
    from nmt.data.corpus import _find_file  # the same file lookup as in-memory loading

    base = Path(cfg.path)
    if cfg.format == "text":
        src = str(_find_file(base, f"{split}.{cfg.src_lang}"))
        tgt = str(_find_file(base, f"{split}.{cfg.tgt_lang}"))
        ds = datasets.IterableDataset.from_generator(_text_pairs, gen_kwargs={
            "src_file": src, "tgt_file": tgt})
        what = src
    elif cfg.format == "tsv":
        file = str(_find_file(base, f"{split}.tsv"))
        ds, what = datasets.IterableDataset.from_generator(_tsv_pairs, gen_kwargs={
            "file": file}), file
    else:
        path = "json" if cfg.format == "jsonl" else cfg.path
        files = str(_find_file(base, f"{split}.jsonl")) if cfg.format == "jsonl" else None
        what = files or f"dataset '{cfg.path}'"
        try:
            ds = datasets.load_dataset(path, None if files else cfg.hub_config, split=
                                       "train" if files else split, data_files=files,
                                       streaming=True)
        except Exception as e:  # datasets raises many types; one line for the user
            msg = str(e).splitlines()[0] if str(e) else type(e).__name__
            raise NmtError(f"could not stream {what} split '{split}': {msg}") from None
    local = cfg.format in ("text", "tsv")  # our own generators already say src/tgt
    try:
        for example in ds:
            yield (example["src"], example["tgt"]) if local else _columns(example, cfg, what)
    except json.JSONDecodeError as e:
        raise NmtError(f"{what}: invalid JSON ({e})") from None


def shuffle_buffer(items: Iterable, size: int, rng: np.random.Generator) -> Iterator:
    """Approximate shuffle in bounded memory: a buffer of `size`; each new item replaces a
    random one, which is emitted. When the stream ends the rest leaves in a random order,
    so a buffer at least as large as the stream yields items[rng.permutation(n)]."""
    buffer: list = []
    for item in items:
        if len(buffer) < size:
            buffer.append(item)
            continue
        j = int(rng.integers(size))
        yield buffer[j]
        buffer[j] = item
    for j in rng.permutation(len(buffer)):
        yield buffer[int(j)]


def chunks(items: Iterable, n: int) -> Iterator[list]:
    it = iter(items)
    while chunk := list(itertools.islice(it, n)):
        yield chunk


def training_examples(cfg: DataConfig, src_vocab: SubwordVocab, tgt_vocab: SubwordVocab
                      ) -> Iterator[tuple[list[int], list[int]]]:
    """Token ids of the streamed training pairs that pass cleaning and the length rules, in
    corpus order (at most `max_train_pairs` read)."""
    pairs = stream_pairs(cfg, cfg.train_split)
    if cfg.max_train_pairs is not None:
        pairs = itertools.islice(pairs, cfg.max_train_pairs)
    for chunk in chunks(pairs, 1000):
        chunk = [(s, t) for s, t in chunk if s.strip() and t.strip()]
        src = src_vocab.encode([s for s, _ in chunk])
        tgt = tgt_vocab.encode([t for _, t in chunk])
        for s, t in zip(src, tgt, strict=True):
            ratio = max(len(s), len(t)) / max(min(len(s), len(t)), 1)
            if len(s) <= cfg.max_src_len and len(t) <= cfg.max_tgt_len and (
                    cfg.max_len_ratio is None or ratio <= cfg.max_len_ratio):
                yield s, t


class StreamingBatches:
    """Token-bucketed batches of a streamed training split, epoch by epoch."""

    def __init__(self, cfg: DataConfig, src_vocab: SubwordVocab, tgt_vocab: SubwordVocab,
                 batch_tokens: int, seed: int):
        self.cfg, self.src_vocab, self.tgt_vocab = cfg, src_vocab, tgt_vocab
        self.batch_tokens, self.seed = batch_tokens, seed

    def examples(self) -> Iterator[tuple[list[int], list[int]]]:
        return training_examples(self.cfg, self.src_vocab, self.tgt_vocab)

    def epoch_len(self, epoch: int) -> None:
        return None  # unknown until the stream ends

    @staticmethod
    def batch(batch: Batch) -> Batch:
        return batch  # streamed batches are collated as they are made

    def epoch(self, epoch: int) -> Iterator[Batch]:
        rng = np.random.default_rng([self.seed, epoch])
        shuffled = shuffle_buffer(self.examples(), self.cfg.shuffle_buffer, rng)
        for window in chunks(shuffled, self.cfg.stream_window):
            src_lens = np.array([len(s) + 1 for s, _ in window])
            tgt_lens = np.array([len(t) + 1 for _, t in window])
            for b in window_batches(src_lens, tgt_lens, self.batch_tokens, rng):
                yield collate([window[i][0] for i in b], [window[i][1] for i in b], b)


def sample_texts(cfg: DataConfig, n: int) -> tuple[list[str], list[str]]:
    """The first `n` pairs of the training stream (for sentencepiece: a bounded sample)."""
    pairs = list(itertools.islice(stream_pairs(cfg, cfg.train_split), n))
    if not pairs:
        raise NmtError(f"{cfg.train_split}: the training stream is empty")
    return [s for s, _ in pairs], [t for _, t in pairs]
