"""Streaming training data: corpora read as `datasets.IterableDataset`, never loaded whole.

`data.streaming: true` reads the training split lazily: a hub id with `streaming=True`, a
folder saved from one `Dataset` memory-mapped (`nmt.data.corpus.load_saved_split`), or
local files through a generator. Per epoch, the pipeline is
    stream -> tokenize and filter (chunks) -> shuffle buffer -> windows -> token batches,
with every random choice drawn from one generator seeded by (seed, epoch). Memory holds at
most `shuffle_buffer` + `stream_window` examples, whatever the corpus size.

The files, columns, cleaning and length rules are in-memory loading's own (`split_file`,
`pair_columns`, `has_text`, `length_filter` of `nmt.data.corpus`), and the batches of a
window come from `nmt.data.batching.window_batches`, the function in-memory training uses on
the whole (shuffled) corpus; and a shuffle buffer at least as large as the corpus emits it
in the same random order as in-memory training's permutation. So on a corpus that fits both
the buffer and one window, streaming and in-memory training see exactly the same batches.
Resuming inside an epoch regenerates the epoch's stream and skips the batches already
trained on (exact; it costs reading and tokenizing that part again).
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterable, Iterator

import datasets
import numpy as np

from nmt.config import DataConfig
from nmt.data.batching import Batch, collate, window_batches
from nmt.data.corpus import (
    check_data_path,
    has_text,
    length_filter,
    load_saved_split,
    pair_columns,
    saved_dataset,
    split_file,
    tsv_pair,
)
from nmt.data.vocab import SubwordVocab
from nmt.errors import NmtError, first_line
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
            src, tgt = tsv_pair(_decode(raw, file, n), f"{file}:{n}")
            yield {"src": src, "tgt": tgt}


def _translation_keys(example: dict) -> list[str] | None:
    pair = example.get("translation")
    return list(pair) if isinstance(pair, dict) else None


def stream_pairs(cfg: DataConfig, split: str) -> Iterator[tuple[str, str]]:
    """(source, target) strings of a split, in corpus order, read lazily: the files and
    columns in-memory loading (`nmt.data.corpus`) would read."""
    check_data_path(cfg)
    if cfg.format == "text":
        src = str(split_file(cfg, split, cfg.src_lang))
        tgt = str(split_file(cfg, split, cfg.tgt_lang))
        ds = datasets.IterableDataset.from_generator(_text_pairs, gen_kwargs={
            "src_file": src, "tgt_file": tgt})
        what = src
    elif cfg.format == "tsv":
        file = str(split_file(cfg, split, "tsv"))
        ds, what = datasets.IterableDataset.from_generator(_tsv_pairs, gen_kwargs={
            "file": file}), file
    elif saved_dataset(cfg) is not None:  # one Dataset saved to disk: memory-mapped
        ds, what = load_saved_split(cfg, split).to_iterable_dataset(), f"dataset '{cfg.path}'"
    else:
        path = "json" if cfg.format == "jsonl" else cfg.path
        files = str(split_file(cfg, split, "jsonl")) if cfg.format == "jsonl" else None
        what = files or f"dataset '{cfg.path}'"
        try:
            ds = datasets.load_dataset(path, None if files else cfg.hub_config, split=
                                       "train" if files else split, data_files=files,
                                       streaming=True)
        except Exception as e:  # datasets raises many types; one line for the user
            msg = first_line(e)
            raise NmtError(f"could not stream {what} split '{split}': {msg}") from None
    local = cfg.format in ("text", "tsv")  # our own generators already say src/tgt
    columns = None  # chosen from the first example's keys, as loading chooses from the columns
    try:
        for example in ds:
            if local:
                yield example["src"], example["tgt"]
                continue
            if columns is None:
                columns = pair_columns(list(example), cfg, what, _translation_keys(example))
            yield columns.pair(example)
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
    """Token ids of the streamed training pairs that pass cleaning and the length rules (the
    rules of in-memory loading: `has_text`, `length_filter`), in corpus order (at most
    `max_train_pairs` read)."""
    pairs = stream_pairs(cfg, cfg.train_split)
    if cfg.max_train_pairs is not None:
        pairs = itertools.islice(pairs, cfg.max_train_pairs)
    for chunk in chunks(pairs, 1000):
        chunk = [(s, t) for s, t in chunk if has_text(s) and has_text(t)]
        src = src_vocab.encode([s for s, _ in chunk])
        tgt = tgt_vocab.encode([t for _, t in chunk])
        keep, _ = length_filter(src, tgt, cfg)
        for s, t, kept in zip(src, tgt, keep, strict=True):
            if kept:
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
