"""Parallel corpora through Hugging Face `datasets`: loading, cleaning, tokenizing.

Every loader returns a `datasets.Dataset` with two string columns, `src` and `tgt`, one row
per line/example, in corpus order. Tokenization is a batched `map` adding `src_ids` and
`tgt_ids` (subword ids, no BOS/EOS).
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import datasets
import numpy as np

from nmt.config import DataConfig
from nmt.data.vocab import SubwordVocab
from nmt.errors import NmtError
from nmt.io import open_text, read_lines

datasets.logging.set_verbosity_error()
datasets.disable_progress_bars()


# ---------------------------------------------------------------------------- loading


def _find_file(base: Path, name: str) -> Path:
    for cand in (base / name, base / f"{name}.gz"):
        if cand.is_file():
            return cand
    raise NmtError(f"no file for '{name}': looked for {base / name} and {base / name}.gz")


def _load_text(cfg: DataConfig, split: str) -> datasets.Dataset:
    base = Path(cfg.path)
    src_file = _find_file(base, f"{split}.{cfg.src_lang}")
    tgt_file = _find_file(base, f"{split}.{cfg.tgt_lang}")
    src, tgt = read_lines(src_file), read_lines(tgt_file)
    if len(src) != len(tgt):
        raise NmtError(f"line counts differ: {src_file} has {len(src)} lines, "
                       f"{tgt_file} has {len(tgt)}")
    return datasets.Dataset.from_dict({"src": src, "tgt": tgt})


def _load_tsv(cfg: DataConfig, split: str) -> datasets.Dataset:
    file = _find_file(Path(cfg.path), f"{split}.tsv")
    src, tgt = [], []
    for i, line in enumerate(read_lines(file), start=1):
        fields = line.split("\t") if line else ["", ""]  # a blank line is an empty pair
        if len(fields) != 2:
            raise NmtError(f"{file}:{i}: expected 2 tab-separated fields, found {len(fields)}")
        src.append(fields[0])
        tgt.append(fields[1])
    return datasets.Dataset.from_dict({"src": src, "tgt": tgt})


def _first_bad_json_line(file: Path) -> str:
    with open_text(file) as f:
        for i, raw in enumerate(f, start=1):
            try:
                if raw.strip():
                    json.loads(raw)
            except (json.JSONDecodeError, UnicodeDecodeError) as e:
                return f"{file}:{i}: invalid JSON ({e})"
    return f"{file}: could not be read as JSON lines"


def _load_jsonl(cfg: DataConfig, split: str) -> datasets.Dataset:
    file = _find_file(Path(cfg.path), f"{split}.jsonl")
    try:
        ds = datasets.load_dataset("json", data_files=str(file), split="train",
                                   cache_dir=cfg.cache_dir)
    except Exception:  # pyarrow reports no line numbers; find the bad line ourselves
        raise NmtError(_first_bad_json_line(file)) from None
    return _select_columns(ds, cfg, str(file))


def _load_hub(cfg: DataConfig, split: str) -> datasets.Dataset:
    what = f"dataset '{cfg.path}'" + (f" (config '{cfg.hub_config}')" if cfg.hub_config else "")
    try:
        ds = datasets.load_dataset(cfg.path, cfg.hub_config, split=split, cache_dir=cfg.cache_dir)
    except ValueError as e:
        if "split" in str(e).lower():
            raise NmtError(f"{what} has no split '{split}': {e}") from None
        raise NmtError(f"could not load {what}: {e}") from None
    except (FileNotFoundError, ConnectionError, OSError) as e:
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise NmtError(f"could not load {what} split '{split}' from the hub or disk: "
                       f"{msg}") from None
    except Exception as e:  # datasets raises many types (DatasetNotFoundError, ...)
        msg = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise NmtError(f"could not load {what} split '{split}': "
                       f"{type(e).__name__}: {msg}") from None
    return _select_columns(ds, cfg, what)


def _str(value: str | None) -> str:
    return "" if value is None else value


def _nulls_to_empty(ds: datasets.Dataset) -> datasets.Dataset:
    """A null side (JSON null, parquet null) becomes '', so both columns hold strings."""
    if not any(ds.data.column(c).null_count for c in ("src", "tgt")):
        return ds
    return ds.map(lambda b: {c: [_str(v) for v in b[c]] for c in ("src", "tgt")}, batched=True)


def _select_columns(ds: datasets.Dataset, cfg: DataConfig, what: str) -> datasets.Dataset:
    """Map both layouts in the wild (flat columns, or a `translation` dict) to src/tgt."""
    cols = ds.column_names
    if cfg.src_column in cols and cfg.tgt_column in cols:
        ds = ds.select_columns([cfg.src_column, cfg.tgt_column])
        return _nulls_to_empty(ds.rename_columns({cfg.src_column: "src", cfg.tgt_column: "tgt"}))
    if "translation" in cols and cfg.src_key is None and cfg.tgt_key is None:
        langs = ds.features["translation"]
        keys = list(getattr(langs, "languages", None) or getattr(langs, "keys", lambda: [])())
        if keys and (cfg.src_lang not in keys or cfg.tgt_lang not in keys):
            raise NmtError(f"{what}: 'translation' has languages {', '.join(keys)}, not "
                           f"{cfg.src_lang} and {cfg.tgt_lang}")

        def split_pair(batch: dict) -> dict:
            pairs = batch["translation"]
            return {"src": [_str(p[cfg.src_lang]) for p in pairs],
                    "tgt": [_str(p[cfg.tgt_lang]) for p in pairs]}

        try:
            return ds.map(split_pair, batched=True, remove_columns=cols)
        except KeyError as e:
            raise NmtError(f"{what}: an example's 'translation' lacks language {e}") from None
    missing = [c for c in (cfg.src_column, cfg.tgt_column) if c not in cols]
    raise NmtError(f"{what}: missing column(s) {', '.join(missing)} "
                   f"(available: {', '.join(cols)}; set data.src_key/data.tgt_key)")


LOADERS = {"text": _load_text, "tsv": _load_tsv, "jsonl": _load_jsonl, "hub": _load_hub}


def load_split(cfg: DataConfig, split: str, limit: int | None = None) -> datasets.Dataset:
    """Load one split as a Dataset with string columns `src` and `tgt` (None becomes '')."""
    if not cfg.path:
        raise NmtError("data.path: not set (a hub id or a local folder)")
    ds = LOADERS[cfg.format](cfg, split)
    if limit is not None and limit < len(ds):
        ds = ds.select(range(limit))
    return ds


# ---------------------------------------------------------------------------- cleaning


@dataclass
class FilterReport:
    """How many pairs each cleaning rule removed, in the order the rules ran."""

    split: str
    total: int
    removed: Counter

    @property
    def kept(self) -> int:
        return self.total - sum(self.removed.values())

    def __str__(self) -> str:
        rules = ", ".join(f"{n} {rule}" for rule, n in self.removed.items() if n) or "none removed"
        return f"{self.split}: {self.kept}/{self.total} pairs kept ({rules})"


def _drop(ds: datasets.Dataset, keep: list[bool], rule: str, report: FilterReport):
    report.removed[rule] += len(keep) - sum(keep)
    return ds.select(np.flatnonzero(keep)) if not all(keep) else ds


def tokenize(ds: datasets.Dataset, src_vocab: SubwordVocab, tgt_vocab: SubwordVocab):
    """Add `src_ids` and `tgt_ids` with one batched map."""

    def encode(batch: dict) -> dict:
        return {"src_ids": src_vocab.encode(batch["src"]),
                "tgt_ids": tgt_vocab.encode(batch["tgt"])}

    return ds.map(encode, batched=True, batch_size=10_000)


def clean(ds: datasets.Dataset, split: str) -> tuple[datasets.Dataset, FilterReport]:
    """Drop pairs with an empty (or whitespace-only) side."""
    report = FilterReport(split, len(ds), Counter())
    src, tgt = ds["src"], ds["tgt"]
    ds = _drop(ds, [bool(s and s.strip()) for s in src], "empty source", report)
    tgt = ds["tgt"] if len(ds) != len(tgt) else tgt
    ds = _drop(ds, [bool(t and t.strip()) for t in tgt], "empty target", report)
    return ds, report


def filter_lengths(ds: datasets.Dataset, cfg: DataConfig, report: FilterReport):
    """Length rules on subword counts (training data only)."""
    src_len = np.array([len(x) for x in ds["src_ids"]])
    tgt_len = np.array([len(x) for x in ds["tgt_ids"]])
    keep = np.ones(len(ds), dtype=bool)
    rules = [(src_len > cfg.max_src_len, f"source > {cfg.max_src_len} tokens"),
             (tgt_len > cfg.max_tgt_len, f"target > {cfg.max_tgt_len} tokens")]
    if cfg.max_len_ratio is not None:
        ratio = np.maximum(src_len, tgt_len) / np.maximum(np.minimum(src_len, tgt_len), 1)
        rules.append((ratio > cfg.max_len_ratio, f"length ratio > {cfg.max_len_ratio}"))
    for bad, rule in rules:
        report.removed[rule] += int((keep & bad).sum())
        keep &= ~bad
    return (ds.select(np.flatnonzero(keep)) if not keep.all() else ds), report


def prepare_split(cfg: DataConfig, split: str, src_vocab: SubwordVocab, tgt_vocab: SubwordVocab,
                  *, train: bool, limit: int | None = None):
    """Load, clean, tokenize (and for training, length-filter) one split."""
    ds, report = clean(load_split(cfg, split, limit), split)
    ds = tokenize(ds, src_vocab, tgt_vocab)
    if train:
        ds, report = filter_lengths(ds, cfg, report)
    if len(ds) == 0:
        raise NmtError(f"{split}: no pairs left after filtering ({report})")
    return ds, report
