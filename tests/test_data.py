"""Tests for nmt.data.corpus: every corpus format, cleaning, tokenization and batching.

Corpora are written into `tmp_path` in each supported layout; the "hub" format is given a
local folder, which goes through the same `datasets.load_dataset(path, config, split=...)`
call a hub id takes. Nothing touches the network (see conftest.py).
"""

from __future__ import annotations

import dataclasses
import gzip
import json
import random
import time
from collections import Counter
from pathlib import Path

import datasets
import numpy as np
import pytest
import torch

from nmt.config import DataConfig, VocabConfig
from nmt.data.batching import BatchIterator, collate, token_batches
from nmt.data.corpus import FilterReport, clean, filter_lengths, load_split, prepare_split
from nmt.data.vocab import train_vocabs
from nmt.errors import NmtError
from nmt.special import BOS_ID, EOS_ID, PAD_ID

TRAIN = [
    ("Guten Morgen .", "Good morning ."),
    ("Die Straße ist nass .", "The street is wet ."),
    ('Er sagt "hallo" \\ tschüss', 'He says "hello" \\ bye'),
    ("Ölpreis: 5 € – 日本", "oil price: 5 € – Japan 🙂"),
    ("eins", "one"),
]
DEV = [("zwei", "two"), ("drei Bäume", "three trees")]
SPLITS = {"train": TRAIN, "validation": DEV}


def as_columns(pairs: list[tuple[str, str]]) -> dict[str, list[str]]:
    return {"src": [s for s, _ in pairs], "tgt": [t for _, t in pairs]}


def write_bytes(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".gz":
        data = gzip.compress(data)
    path.write_bytes(data)
    return path


def write_lines(path: Path, lines: list[str]) -> Path:
    return write_bytes(path, "".join(line + "\n" for line in lines).encode("utf-8"))


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    text = "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
    return write_bytes(path, text.encode("utf-8"))


def data_cfg(tmp_path: Path, path: Path, fmt: str, **kw) -> DataConfig:
    return DataConfig(path=str(path), format=fmt, cache_dir=str(tmp_path / "hf-cache"), **kw)


def flat_rows(pairs, src="de", tgt="en") -> list[dict]:
    return [{"id": i, src: s, tgt: t} for i, (s, t) in enumerate(pairs)]


def translation_rows(pairs) -> list[dict]:
    return [{"translation": {"de": s, "en": t}} for s, t in pairs]


def make_corpus(layout: str, root: Path) -> tuple[Path, str]:
    """Write TRAIN and DEV in `layout`; return (data.path, data.format)."""
    for split, pairs in SPLITS.items():
        if layout in ("text", "text-gz"):
            write_lines(root / f"{split}.de", [s for s, _ in pairs])
            gz = ".gz" if layout == "text-gz" else ""  # one side gzipped, the other plain
            write_lines(root / f"{split}.en{gz}", [t for _, t in pairs])
        elif layout in ("tsv", "tsv-gz"):
            gz = ".gz" if layout == "tsv-gz" else ""
            write_lines(root / f"{split}.tsv{gz}", [f"{s}\t{t}" for s, t in pairs])
        elif layout.startswith(("jsonl", "hub-jsonl")):
            rows = translation_rows(pairs) if layout.endswith("translation") else flat_rows(pairs)
            gz = ".gz" if layout == "jsonl-gz" else ""
            write_jsonl(root / f"{split}.jsonl{gz}", rows)
        elif layout.startswith("hub-parquet"):
            rows = translation_rows(pairs) if layout.endswith("translation") else flat_rows(pairs)
            root.mkdir(parents=True, exist_ok=True)
            datasets.Dataset.from_list(rows).to_parquet(str(root / f"{split}.parquet"))
        else:
            raise AssertionError(layout)
    return root, layout.split("-")[0]


LAYOUTS = ["text", "text-gz", "tsv", "tsv-gz", "jsonl", "jsonl-gz", "jsonl-translation",
           "hub-jsonl", "hub-jsonl-translation", "hub-parquet", "hub-parquet-translation"]


# ---------------------------------------------------------------------------- loading


@pytest.mark.parametrize("layout", LAYOUTS)
def test_every_format_loads_the_same_pairs_in_order(tmp_path, layout):
    path, fmt = make_corpus(layout, tmp_path / "corpus")
    cfg = data_cfg(tmp_path, path, fmt)
    for split, pairs in SPLITS.items():
        ds = load_split(cfg, split)
        assert ds.column_names == ["src", "tgt"]
        assert ds[:] == as_columns(pairs)
    assert load_split(cfg, "train", limit=2)[:] == as_columns(TRAIN[:2])


@pytest.mark.parametrize("layout", ["jsonl-translation", "hub-parquet-translation", "tsv"])
def test_reverse_direction_swaps_sides(tmp_path, layout):
    path, fmt = make_corpus(layout, tmp_path / "corpus")
    if fmt == "tsv":  # tsv is always src<TAB>tgt; the language codes do not matter
        expected = as_columns(TRAIN)
    else:
        expected = as_columns([(t, s) for s, t in TRAIN])
    cfg = data_cfg(tmp_path, path, fmt, src_lang="en", tgt_lang="de")
    assert load_split(cfg, "train")[:] == expected


@pytest.mark.parametrize("fmt", ["jsonl", "hub"])
def test_src_key_and_tgt_key_select_other_columns(tmp_path, fmt):
    rows = [{"de": "falsch", "source": s, "target": t, "en": "wrong"} for s, t in TRAIN]
    write_jsonl(tmp_path / "c" / "train.jsonl", rows)
    cfg = data_cfg(tmp_path, tmp_path / "c", fmt, src_key="source", tgt_key="target")
    assert load_split(cfg, "train")[:] == as_columns(TRAIN)
    # columns literally named src/tgt, used the other way round
    rows = [{"src": t, "tgt": s} for s, t in TRAIN]
    write_jsonl(tmp_path / "d" / "train.jsonl", rows)
    cfg = data_cfg(tmp_path, tmp_path / "d", fmt, src_key="tgt", tgt_key="src")
    assert load_split(cfg, "train")[:] == as_columns(TRAIN)


@pytest.mark.parametrize("layout", ["jsonl", "jsonl-translation", "hub-parquet"])
def test_missing_values_become_empty_strings(tmp_path, layout):
    """load_split promises string columns: a null side is '', not None."""
    rows = [("a", "b"), (None, "d"), ("e", None)]
    root = tmp_path / "c"
    if layout == "jsonl":
        write_jsonl(root / "train.jsonl", [{"de": s, "en": t} for s, t in rows])
    elif layout == "jsonl-translation":
        write_jsonl(root / "train.jsonl", [{"translation": {"de": s, "en": t}} for s, t in rows])
    else:
        root.mkdir()
        datasets.Dataset.from_dict({"de": [s for s, _ in rows], "en": [t for _, t in rows]}
                                   ).to_parquet(str(root / "train.parquet"))
    cfg = data_cfg(tmp_path, root, "hub" if layout.startswith("hub") else "jsonl")
    assert load_split(cfg, "train")[:] == {"src": ["a", "", "e"], "tgt": ["b", "d", ""]}


# Characters that str.splitlines() (and so many readers) treat as line breaks.
ODD = ["\u2028", "\u2029", "\x85", "\x0c", "\x0b", "\x1c", "\x1d", "\x1e", "\r"]


def odd_pairs() -> list[tuple[str, str]]:
    pairs = []
    for i, ch in enumerate(ODD):
        pairs.append((f"s{i} a{ch}b", f"t{i}"))
        pairs.append(("", f"t{i} empty source"))  # empty lines stay in place
        # not at the very end: a final \r is read as part of a CRLF line ending
        pairs.append((f"s{i} x", f"{ch}t{i} y{ch}z"))
    pairs.append((f"last{ODD[0]}", ""))
    return pairs


@pytest.mark.parametrize("fmt", ["text", "tsv", "jsonl"])
def test_empty_lines_and_unicode_line_separators_stay_in_place(tmp_path, fmt):
    pairs = odd_pairs()
    root = tmp_path / "c"
    if fmt == "text":
        write_lines(root / "train.de", [s for s, _ in pairs])
        write_lines(root / "train.en.gz", [t for _, t in pairs])
    elif fmt == "tsv":
        write_lines(root / "train.tsv", [f"{s}\t{t}" for s, t in pairs])
    else:
        write_jsonl(root / "train.jsonl", flat_rows(pairs))
    ds = load_split(data_cfg(tmp_path, root, fmt), "train")
    assert len(ds) == len(pairs)
    for i, (src, tgt) in enumerate(pairs):
        assert (ds[i]["src"], ds[i]["tgt"]) == (src, tgt), f"row {i}"


def test_text_line_endings(tmp_path):
    # CRLF endings, a missing final newline, and a trailing empty line all count right
    write_bytes(tmp_path / "train.de", b"a\r\nb\r\n\r\n")
    write_bytes(tmp_path / "train.en", b"x\ny\nz")
    ds = load_split(data_cfg(tmp_path, tmp_path, "text"), "train")
    assert ds[:] == {"src": ["a", "b", ""], "tgt": ["x", "y", "z"]}


# ---------------------------------------------------------------------------- load errors


def test_text_line_count_mismatch_names_both_files_and_counts(tmp_path):
    src = write_lines(tmp_path / "train.de", ["a", "b", "c"])
    tgt = write_lines(tmp_path / "train.en.gz", ["x", "y"])
    with pytest.raises(NmtError) as e:
        load_split(data_cfg(tmp_path, tmp_path, "text"), "train")
    msg = str(e.value)
    assert str(src) in msg and str(tgt) in msg
    assert "3" in msg and "2" in msg


@pytest.mark.parametrize("fmt, present, missing", [
    ("text", "train.de", "train.en"),
    ("tsv", "dev.tsv", "train.tsv"),
    ("jsonl", "dev.jsonl", "train.jsonl"),
])
def test_missing_file_names_the_path(tmp_path, fmt, present, missing):
    write_lines(tmp_path / present, ["a"])
    with pytest.raises(NmtError, match="looked for") as e:
        load_split(data_cfg(tmp_path, tmp_path, fmt), "train")
    assert str(tmp_path / missing) in str(e.value)


@pytest.mark.parametrize("fmt", ["jsonl", "hub"])
def test_missing_column_lists_the_available_ones(tmp_path, fmt):
    write_jsonl(tmp_path / "c" / "train.jsonl", [{"de": "a", "fr": "b", "meta": 1}])
    with pytest.raises(NmtError) as e:
        load_split(data_cfg(tmp_path, tmp_path / "c", fmt), "train")
    msg = str(e.value)
    assert "missing column(s) en" in msg
    assert "available: de, fr, meta" in msg
    with pytest.raises(NmtError, match="missing column.*target"):
        load_split(data_cfg(tmp_path, tmp_path / "c", fmt, src_key="de", tgt_key="target"),
                   "train")


@pytest.mark.parametrize("fmt", ["jsonl", "hub"])
def test_translation_without_the_language(tmp_path, fmt):
    write_jsonl(tmp_path / "c" / "train.jsonl", [{"translation": {"de": "a", "fr": "b"}}])
    with pytest.raises(NmtError) as e:
        load_split(data_cfg(tmp_path, tmp_path / "c", fmt), "train")
    msg = str(e.value)
    assert "translation" in msg and "de, fr" in msg and "en" in msg


def test_tsv_with_three_fields_names_file_and_line(tmp_path):
    file = write_lines(tmp_path / "train.tsv", ["a\tb", "c\td", "e\tf\tg", "h\ti"])
    with pytest.raises(NmtError, match="found 3") as e:
        load_split(data_cfg(tmp_path, tmp_path, "tsv"), "train")
    assert f"{file}:3:" in str(e.value)


@pytest.mark.parametrize("gz", ["", ".gz"])
def test_jsonl_with_a_malformed_line_names_file_and_line(tmp_path, gz):
    good = json.dumps({"de": "a", "en": "b"})
    text = "\n".join([good, "", good, '{"de": "a", "en": ', good]) + "\n"
    file = write_bytes(tmp_path / f"train.jsonl{gz}", text.encode())
    with pytest.raises(NmtError, match="invalid JSON") as e:
        load_split(data_cfg(tmp_path, tmp_path, "jsonl"), "train")
    assert f"{file}:4:" in str(e.value)


@pytest.mark.parametrize("fmt, name", [("text", "train.en"), ("tsv", "train.tsv")])
def test_invalid_utf8_names_file_and_line(tmp_path, fmt, name):
    write_lines(tmp_path / "train.de", ["a", "b", "c"])
    file = write_bytes(tmp_path / name, b"x\ty\nok\tfine\n\xff\xfe\tz\n")
    with pytest.raises(NmtError, match="UTF-8") as e:
        load_split(data_cfg(tmp_path, tmp_path, fmt), "train")
    assert f"{file}:3:" in str(e.value)


@pytest.mark.parametrize("hub_id", ["nobody-nmt-test/no-such-dataset", "no_such_local_folder"])
def test_unknown_hub_id_fails_fast_offline(tmp_path, hub_id, monkeypatch):
    monkeypatch.chdir(tmp_path)  # a relative id must not resolve to a folder by accident
    start = time.monotonic()
    with pytest.raises(NmtError) as e:
        load_split(data_cfg(tmp_path, Path(hub_id), "hub"), "train")
    assert time.monotonic() - start < 10
    assert hub_id in str(e.value)


def test_hub_folder_that_does_not_exist(tmp_path):
    missing = tmp_path / "nowhere"
    with pytest.raises(NmtError) as e:
        load_split(data_cfg(tmp_path, missing, "hub"), "train")
    assert str(missing) in str(e.value)


@pytest.mark.parametrize("path", ["./corpus_typo", "../corpus_typo", "data/multi30k_typo",
                                  "ABS/corpus_typo", "~/corpus_typo", "a/b/c"])
@pytest.mark.parametrize("fmt", ["hub", "text"])
def test_mistyped_local_folder_is_no_such_folder(tmp_path, monkeypatch, path, fmt):
    """A data.path that looks like a local path (./ ../ / ~, more than owner/name, or a first
    part that exists here) and is not there: "no such folder", not the hub's complaint
    about repo ids; in-memory and streaming alike."""
    from nmt.data.stream import stream_pairs

    work = tmp_path / "work"
    (work / "data").mkdir(parents=True)
    monkeypatch.chdir(work)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    path = path.replace("ABS", str(tmp_path))
    cfg = data_cfg(tmp_path, path, fmt)
    with pytest.raises(NmtError) as e:
        load_split(cfg, "train")
    assert str(e.value) == f"data.path: no such folder: {path}"
    with pytest.raises(NmtError) as e:
        next(stream_pairs(cfg, "train"))
    assert str(e.value) == f"data.path: no such folder: {path}"


def test_a_hub_id_still_goes_to_the_hub(tmp_path, monkeypatch):
    """`bentrevett/multi30k` (no such local folder here) is passed on to `datasets`."""
    calls = []

    def load_dataset(path, name=None, **kwargs):
        calls.append((path, name, kwargs.get("split")))
        return datasets.Dataset.from_dict({"de": ["ein Hund"], "en": ["a dog"]})

    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(datasets, "load_dataset", load_dataset)
    ds = load_split(data_cfg(tmp_path, "bentrevett/multi30k", "hub"), "train")
    assert calls == [("bentrevett/multi30k", None, "train")]
    assert ds["src"] == ["ein Hund"] and ds["tgt"] == ["a dog"]


def test_unknown_split(tmp_path):
    path, _ = make_corpus("hub-jsonl", tmp_path / "c")
    with pytest.raises(NmtError, match="no split 'val'") as e:
        load_split(data_cfg(tmp_path, path, "hub"), "val")
    assert "validation" in str(e.value)  # lists the splits there are
    path, _ = make_corpus("text", tmp_path / "t")
    with pytest.raises(NmtError, match="val.de"):
        load_split(data_cfg(tmp_path, path, "text"), "val")


def test_unknown_hub_config_names_it(tmp_path):
    path, _ = make_corpus("hub-jsonl", tmp_path / "c")
    with pytest.raises(NmtError, match="config 'de-xx'"):
        load_split(data_cfg(tmp_path, path, "hub", hub_config="de-xx"), "train")


@pytest.mark.parametrize("rows", [flat_rows, translation_rows], ids=["flat", "translation"])
def test_a_saved_dataset_is_the_train_split_and_its_slices(tmp_path, rows):
    """A folder written by `Dataset.save_to_disk` (one Dataset, no split names) loads as
    the split 'train'; slices of it serve as other splits; streaming reads the same."""
    from nmt.data.stream import stream_pairs

    folder = tmp_path / "saved"
    datasets.Dataset.from_list(rows(TRAIN + DEV)).save_to_disk(str(folder))
    cfg = data_cfg(tmp_path, folder, "hub")
    for split, pairs in [("train", TRAIN + DEV), ("train[:5]", TRAIN), ("train[5:]", DEV),
                         ("train[-2:]", DEV), ("train[:1]+train[-1:]", [TRAIN[0], DEV[-1]])]:
        assert load_split(cfg, split)[:] == as_columns(pairs), split
        assert list(stream_pairs(cfg, split)) == pairs, split
    assert load_split(cfg, "train", limit=2)[:] == as_columns(TRAIN[:2])
    reverse = dataclasses.replace(cfg, src_lang="en", tgt_lang="de")
    assert load_split(reverse, "train[5:]")[:] == as_columns([(t, s) for s, t in DEV])


def test_a_saved_dataset_has_no_other_split(tmp_path):
    from nmt.data.stream import stream_pairs

    folder = tmp_path / "saved"
    datasets.Dataset.from_list(flat_rows(TRAIN)).save_to_disk(str(folder))
    cfg = data_cfg(tmp_path, folder, "hub")
    message = (f"data.path {folder} holds one Dataset (saved with Dataset.save_to_disk), read "
               f"as the split 'train'; there is no split 'validation': use 'train' or a slice "
               f"of it such as 'train[:95%]' / 'train[95%:]', or save a DatasetDict")
    with pytest.raises(NmtError) as e:
        load_split(cfg, "validation")
    assert str(e.value) == message
    with pytest.raises(NmtError) as e:
        next(stream_pairs(cfg, "validation"))
    assert str(e.value) == message


def test_a_saved_dataset_dict_loads_by_split_name(tmp_path):
    folder = tmp_path / "saved"
    datasets.DatasetDict({split: datasets.Dataset.from_list(flat_rows(pairs))
                          for split, pairs in SPLITS.items()}).save_to_disk(str(folder))
    cfg = data_cfg(tmp_path, folder, "hub")
    for split, pairs in SPLITS.items():
        assert load_split(cfg, split)[:] == as_columns(pairs)


def test_path_not_set():
    with pytest.raises(NmtError, match="data.path"):
        load_split(DataConfig(path=""), "train")


# ---------------------------------------------------------------------------- cleaning


def test_clean_counts_each_rule():
    pairs = [("a", "b"), ("", "b"), ("  \t", "b"), ("a", ""), ("a", " \u3000"),
             ("", ""), ("\u00a0", "x"), ("c", "d"), (None, "e"), ("f", None)]
    ds, report = clean(datasets.Dataset.from_dict(as_columns(pairs)), "train")
    assert ds[:] == {"src": ["a", "c"], "tgt": ["b", "d"]}
    assert report.total == 10 and report.kept == 2
    # a pair empty on both sides counts once, under the first rule
    assert report.removed == Counter({"empty source": 5, "empty target": 3})
    assert str(report) == "train: 2/10 pairs kept (5 empty source, 3 empty target)"


def test_clean_keeps_everything_when_nothing_is_empty():
    ds, report = clean(datasets.Dataset.from_dict(as_columns(TRAIN)), "dev")
    assert ds[:] == as_columns(TRAIN)
    assert report.kept == len(TRAIN)
    assert str(report) == f"dev: {len(TRAIN)}/{len(TRAIN)} pairs kept (none removed)"


def ids_dataset(lengths: list[tuple[int, int]]) -> datasets.Dataset:
    return datasets.Dataset.from_dict({
        "src": [f"s{i}" for i in range(len(lengths))],
        "tgt": [f"t{i}" for i in range(len(lengths))],
        "src_ids": [[10 + i] * s for i, (s, _) in enumerate(lengths)],
        "tgt_ids": [[10 + i] * t for i, (_, t) in enumerate(lengths)],
    })


def test_filter_lengths_by_hand():
    lengths = [(3, 3), (6, 3), (6, 6), (2, 5), (1, 3), (2, 4), (5, 4), (4, 1), (5, 3)]
    #          keep    src>5   src>5   tgt>4   ratio3  ratio2  edges   ratio4  keep
    cfg = DataConfig(max_src_len=5, max_tgt_len=4, max_len_ratio=2.0)
    report = FilterReport("train", 20, Counter({"empty source": 11}))
    ds, report = filter_lengths(ids_dataset(lengths), cfg, report)
    assert ds["src"][:] == ["s0", "s5", "s6", "s8"]
    assert report.removed == Counter({"empty source": 11, "source > 5 tokens": 2,
                                      "target > 4 tokens": 1, "length ratio > 2.0": 2})
    assert report.kept == 4

    cfg = DataConfig(max_src_len=5, max_tgt_len=4, max_len_ratio=None)
    ds, report = filter_lengths(ids_dataset(lengths), cfg, FilterReport("train", 9, Counter()))
    assert ds["src"][:] == ["s0", "s4", "s5", "s6", "s7", "s8"]
    assert report.kept == 6


# ---------------------------------------------------------------------------- tokenization

WORDS = ("haus katze hund baum auto stadt wasser feuer himmel erde licht nacht tag see berg "
         "wald fluss weg zug brot").split()


def generated_pairs(n: int, seed: int) -> list[tuple[str, str]]:
    rng = random.Random(seed)
    pairs = []
    for _ in range(n):
        words = rng.choices(WORDS, k=rng.randint(1, 8))
        pairs.append((" ".join(words), " ".join(w.upper() for w in reversed(words))))
    return pairs


@pytest.fixture(scope="module")
def vocabs(tmp_path_factory):
    pairs = generated_pairs(300, seed=0)
    model_dir = tmp_path_factory.mktemp("spm")
    return train_vocabs([s for s, _ in pairs], [t for _, t in pairs], model_dir,
                        VocabConfig(vocab_size=60, joint=True), seed=1)


def test_prepare_split_adds_ids_that_decode_back(tmp_path, vocabs):
    pairs = generated_pairs(40, seed=1) + [("", "LEER"), ("haus", " ")]
    write_lines(tmp_path / "train.de", [s for s, _ in pairs])
    write_lines(tmp_path / "train.en", [t for _, t in pairs])
    cfg = data_cfg(tmp_path, tmp_path, "text", max_src_len=1000, max_tgt_len=1000)
    ds, report = prepare_split(cfg, "train", vocabs.src, vocabs.tgt, train=True)
    assert report.removed == Counter({"empty source": 1, "empty target": 1})
    assert len(ds) == 40
    assert ds["src"][:] == [s for s, _ in pairs[:40]]
    assert vocabs.src.decode(ds["src_ids"][:]) == ds["src"][:]
    assert vocabs.tgt.decode(ds["tgt_ids"][:]) == ds["tgt"][:]
    for ids in ds["src_ids"][:] + ds["tgt_ids"][:]:  # subwords only: no BOS/EOS/PAD here
        assert ids and min(ids) > EOS_ID


def test_prepare_split_length_filter_only_for_training(tmp_path, vocabs):
    pairs = generated_pairs(60, seed=2)
    write_lines(tmp_path / "dev.de", [s for s, _ in pairs])
    write_lines(tmp_path / "dev.en", [t for _, t in pairs])
    cfg = data_cfg(tmp_path, tmp_path, "text", max_src_len=6, max_tgt_len=1000)
    n_long = sum(len(x) > 6 for x in vocabs.src.encode([s for s, _ in pairs]))
    assert 0 < n_long < len(pairs)
    dev, _ = prepare_split(cfg, "dev", vocabs.src, vocabs.tgt, train=False)
    assert len(dev) == len(pairs)
    train, report = prepare_split(cfg, "dev", vocabs.src, vocabs.tgt, train=True)
    assert len(train) == len(pairs) - n_long
    assert report.removed["source > 6 tokens"] == n_long
    limited, _ = prepare_split(cfg, "dev", vocabs.src, vocabs.tgt, train=False, limit=7)
    assert limited["src"][:] == [s for s, _ in pairs[:7]]


def test_prepare_split_fails_when_nothing_is_left(tmp_path, vocabs):
    write_lines(tmp_path / "train.de", ["haus", "", "baum"])
    write_lines(tmp_path / "train.en", ["", "HAUS", "  "])
    with pytest.raises(NmtError, match="train: no pairs left") as e:
        prepare_split(data_cfg(tmp_path, tmp_path, "text"), "train", vocabs.src, vocabs.tgt,
                      train=False)
    assert "0/3 pairs kept" in str(e.value)
    write_lines(tmp_path / "long.de", ["haus katze hund baum"])
    write_lines(tmp_path / "long.en", ["HAUS"])
    cfg = data_cfg(tmp_path, tmp_path, "text", max_src_len=2)
    with pytest.raises(NmtError, match="long: no pairs left"):
        prepare_split(cfg, "long", vocabs.src, vocabs.tgt, train=True)


# ---------------------------------------------------------------------------- batching


def random_lengths(n: int, seed: int, low: int = 5, high: int = 40):
    rng = np.random.default_rng(seed)
    tgt = rng.integers(low, high + 1, n)
    src = np.clip(tgt + rng.integers(-3, 4, n), 1, None)  # source length follows target
    return src, tgt


def test_token_batches_cover_every_index_once_within_budget():
    src, tgt = random_lengths(2000, seed=0)
    src[7], tgt[11] = 3000, 2500  # longer than a whole batch: each gets a batch of its own
    for epoch in range(3):
        batches = token_batches(src, tgt, 1000, seed=1, epoch=epoch)
        flat = [i for b in batches for i in b]
        assert sorted(flat) == list(range(2000))
        assert all(isinstance(i, int) for i in flat)
        for b in batches:
            longest = max(max(src[i], tgt[i]) for i in b)
            assert longest * len(b) <= 1000 or len(b) == 1
        assert [7] in batches and [11] in batches


def test_token_batches_deterministic_per_seed_and_epoch():
    src, tgt = random_lengths(500, seed=1)
    a = token_batches(src, tgt, 300, seed=3, epoch=2)
    assert token_batches(src, tgt, 300, seed=3, epoch=2) == a
    assert token_batches(src, tgt, 300, seed=3, epoch=3) != a
    assert token_batches(src, tgt, 300, seed=4, epoch=2) != a
    longest = [max(tgt[b]) for b in a]
    assert longest != sorted(longest)  # batches come shuffled, not short to long


def test_token_batches_pad_little_and_fill_the_budget():
    src, tgt = random_lengths(2000, seed=2)
    batches = token_batches(src, tgt, 1000, seed=1, epoch=0)
    padded = sum(max(tgt[b]) * len(b) for b in batches)
    assert 1 - tgt.sum() / padded < 0.10  # share of padded target tokens
    # batches are not needlessly small: on average at least 80% of the budget is used
    assert padded / len(batches) > 800


def test_collate_by_hand():
    b = collate([[5, 6, 7], [8]], [[9], [10, 11, 12]], indices=[4, 2])
    P, B, E = PAD_ID, BOS_ID, EOS_ID
    assert b.src.tolist() == [[5, 6, 7, E], [8, E, P, P]]
    assert b.src_lengths.tolist() == [4, 2]
    assert b.tgt_in.tolist() == [[B, 9, P, P], [B, 10, 11, 12]]
    assert b.tgt_out.tolist() == [[9, E, P, P], [10, 11, 12, E]]
    assert b.src.dtype == b.tgt_in.dtype == b.tgt_out.dtype == torch.long
    assert b.indices == [4, 2]
    assert b.n_tokens == 6


@pytest.mark.parametrize("shift", [-3, 3])  # target-driven and source-driven lengths
def test_batch_iterator_returns_the_right_rows_within_budget(shift):
    _, tgt = random_lengths(300, seed=3, low=1, high=30)
    src = np.clip(tgt + shift, 1, None)
    ds = ids_dataset(list(zip(src.tolist(), tgt.tolist(), strict=True)))
    it = BatchIterator(ds, batch_tokens=200, seed=5)
    batches = it.epoch_batches(0)
    assert it.epoch_batches(0) == batches
    assert sorted(i for b in batches for i in b) == list(range(300))
    for indices in batches:
        batch = it.batch(indices)
        assert batch.indices == indices
        # padded tensors, EOS/BOS included, stay within the token budget
        assert batch.tgt_out.numel() <= 200 and batch.src.numel() <= 200 or len(indices) == 1
        for row, i in enumerate(indices):
            n_src, n_tgt = int(src[i]), int(tgt[i])
            assert batch.src[row, :n_src].tolist() == [10 + i] * n_src
            assert batch.src[row, n_src] == EOS_ID
            assert batch.src_lengths[row] == n_src + 1
            assert batch.tgt_out[row, :n_tgt + 1].tolist() == [10 + i] * n_tgt + [EOS_ID]
            assert batch.tgt_in[row, :n_tgt + 1].tolist() == [BOS_ID] + [10 + i] * n_tgt
            assert (batch.tgt_out[row, n_tgt + 1:] == PAD_ID).all()
