"""Streaming corpora: same batches as in-memory loading, exact resume, bounded buffers."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
import torch

from nmt import checkpoint
from nmt.config import DataConfig
from nmt.data.corpus import load_split, prepare_split
from nmt.data.stream import (
    StreamingBatches,
    shuffle_buffer,
    stream_pairs,
    training_examples,
)
from nmt.errors import NmtError
from nmt.training.run import train
from nmt.training.trainer import Trainer, prepare_model_dir
from tests.helpers import toy_config, write_toy_corpus


def test_shuffle_buffer_as_large_as_the_stream_is_a_permutation():
    items = list(range(50))
    out = list(shuffle_buffer(iter(items), 64, np.random.default_rng(3)))
    assert out == [items[i] for i in np.random.default_rng(3).permutation(50)]
    small = list(shuffle_buffer(iter(items), 8, np.random.default_rng(3)))
    assert sorted(small) == items and small != items


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return write_toy_corpus(tmp_path_factory.mktemp("toy"))


def with_data(cfg, **data):
    return dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, **data))


def test_streaming_and_in_memory_make_the_same_batches(corpus, tmp_path):
    cfg = with_data(toy_config(corpus), max_src_len=6)  # a length rule that removes pairs
    vocabs = prepare_model_dir(cfg, tmp_path, quiet=True)
    memory = Trainer(cfg, tmp_path, vocabs, quiet=True).batches
    stream = StreamingBatches(with_data(cfg, streaming=True).data, vocabs.src, vocabs.tgt,
                              cfg.train.batch_tokens, cfg.train.seed)
    for epoch in (0, 1):
        expected = [memory.batch(b) for b in memory.epoch(epoch)]
        got = list(stream.epoch(epoch))
        assert len(got) == len(expected) > 5
        for a, b in zip(expected, got, strict=True):
            assert torch.equal(a.src, b.src) and torch.equal(a.tgt_out, b.tgt_out)


def test_small_windows_still_cover_every_example(corpus, tmp_path):
    cfg = with_data(toy_config(corpus), streaming=True, shuffle_buffer=16, stream_window=40)
    vocabs = prepare_model_dir(cfg, tmp_path, quiet=True)
    stream = StreamingBatches(cfg.data, vocabs.src, vocabs.tgt, 120, 1)
    tokens = sum(int((b.tgt_out != 0).sum()) for b in stream.epoch(0))
    expected = sum(len(t) + 1 for _, t in stream.examples())
    assert tokens == expected
    assert all(b.n_tokens <= 120 for b in stream.epoch(0))


def test_streaming_resume_equals_uninterrupted(corpus, tmp_path):
    cfg = with_data(toy_config(corpus), streaming=True, shuffle_buffer=64, stream_window=50)
    train(cfg, tmp_path / "a", quiet=True)
    train(cfg, tmp_path / "b", quiet=True, stop_at_step=9)  # killed; last.pt is at step 8
    assert checkpoint.load(tmp_path / "b" / "last.pt")["train_state"]["batch_in_epoch"] == 8
    train(None, tmp_path / "b", resume=True, quiet=True)
    a, b = (checkpoint.load(tmp_path / d / "last.pt")["model"] for d in ("a", "b"))
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_stream_reads_every_format_like_in_memory_loading(corpus, tmp_path):
    text = DataConfig(path=str(corpus), src_lang="xx", tgt_lang="yy", dev_split="dev")
    pairs = list(stream_pairs(text, "train"))
    ds = load_split(text, "train")
    assert pairs == list(zip(ds["src"], ds["tgt"], strict=True))
    rows = [{"translation": {"xx": s, "yy": t}} for s, t in pairs]
    (tmp_path / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    jsonl = dataclasses.replace(text, path=str(tmp_path), format="jsonl")
    assert list(stream_pairs(jsonl, "train")) == pairs
    hub = dataclasses.replace(text, path=str(tmp_path), format="hub")  # a local dataset folder
    assert list(stream_pairs(hub, "train")) == pairs


def test_stream_errors_name_the_file(tmp_path):
    (tmp_path / "train.xx").write_text("a\nb\nc\n", encoding="utf-8")
    (tmp_path / "train.yy").write_text("A\nB\n", encoding="utf-8")
    cfg = DataConfig(path=str(tmp_path), src_lang="xx", tgt_lang="yy")
    with pytest.raises(NmtError, match=r"train\.yy ends after 2 lines, .*train\.xx goes on"):
        list(stream_pairs(cfg, "train"))
    (tmp_path / "train.yy").write_bytes(b"A\nB\xff\nC\n")
    with pytest.raises(NmtError, match=r"train\.yy:2: invalid UTF-8"):
        list(stream_pairs(cfg, "train"))


def test_streamed_training_examples_pass_the_in_memory_filters(corpus, tmp_path):
    """Cleaning and every length rule (source, target, ratio) keep the same pairs."""
    lines = {side: (corpus / f"train.{side}").read_text(encoding="utf-8").splitlines()
             for side in ("xx", "yy")}
    lines["xx"][3], lines["yy"][7] = " ", ""  # one empty side of each kind
    for i, (n_src, n_tgt) in zip((5, 9, 11), ((14, 14), (10, 10), (3, 9)), strict=True):
        lines["xx"][i], lines["yy"][i] = "ka " * n_src, "KA " * n_tgt  # one rule each
    for side, text in lines.items():
        (tmp_path / f"train.{side}").write_text("\n".join(text) + "\n", encoding="utf-8")
        (tmp_path / f"dev.{side}").write_bytes((corpus / f"dev.{side}").read_bytes())
    cfg = with_data(toy_config(tmp_path), path=str(tmp_path), max_src_len=12, max_tgt_len=9,
                    max_len_ratio=2.0)
    vocabs = prepare_model_dir(cfg, tmp_path / "model", quiet=True)
    ds, report = prepare_split(cfg.data, "train", vocabs.src, vocabs.tgt, train=True)
    assert all(report.removed[rule] > 0 for rule in (
        "empty source", "empty target", "source > 12 tokens", "target > 9 tokens",
        "length ratio > 2.0"))
    streamed = list(training_examples(cfg.data, vocabs.src, vocabs.tgt))
    assert streamed == list(zip(ds["src_ids"], ds["tgt_ids"], strict=True))


@pytest.mark.parametrize("fmt", ["jsonl", "hub"])
def test_stream_column_errors_are_in_memory_loading_errors(tmp_path, fmt):
    cfg = DataConfig(path=str(tmp_path), format=fmt, src_lang="de", tgt_lang="en")
    for rows in ([{"de": "a", "fr": "b", "meta": 1}],  # no column en
                 [{"translation": {"de": "a", "fr": "b"}}]):  # no language en
        (tmp_path / "train.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        with pytest.raises(NmtError) as loading:
            load_split(cfg, "train")
        with pytest.raises(NmtError) as streaming:
            list(stream_pairs(cfg, "train"))
        assert str(streaming.value) == str(loading.value)
        assert "en" in str(streaming.value) and "de, fr" in str(streaming.value)
