"""Parallel corpora through Hugging Face `datasets`: loading, cleaning, tokenizing.

Every loader returns a `datasets.Dataset` with two string columns, `src` and `tgt`, one row
per line/example, in corpus order. Tokenization is a batched `map` adding `src_ids` and
`tgt_ids` (subword ids, no BOS/EOS).

The rules that streaming (`nmt.data.stream`) applies too are public here, written once:
which file holds a split (`split_file`), how a tsv line splits (`tsv_pair`), which columns
hold the two sides (`pair_columns`), and which pairs cleaning (`has_text`) and the length
rules (`length_filter`) keep.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import datasets
import numpy as np

from nmt.config import DataConfig
from nmt.data.vocab import SubwordVocab
from nmt.errors import NmtError, first_line
from nmt.io import open_text, read_lines

datasets.logging.set_verbosity_error()
datasets.disable_progress_bars()


# ---------------------------------------------------------------------------- loading


def looks_local(path: str) -> bool:
    """Whether `path` names a local folder rather than a hub id (`name` or `owner/name`):
    it starts with ./ ../ / or ~, has more parts than a hub id, or its first part exists
    here (`data/multi30k_typo` when there is a `data` folder)."""
    path = path.replace(os.sep, "/")
    if path in (".", "..") or path.startswith(("./", "../", "/", "~")):
        return True
    parts = [p for p in path.split("/") if p]
    return len(parts) > 2 or (len(parts) == 2 and Path(parts[0]).exists())


def check_data_path(cfg: DataConfig) -> None:
    """data.path is set, and names an existing folder where it must be local: always for
    the text, tsv and jsonl formats, and for the hub format when it looks like a path
    (`looks_local`). Else one line naming it. A hub id is left to `datasets`."""
    if not cfg.path:
        raise NmtError("data.path: not set (a hub id or a local folder)")
    path = Path(cfg.path).expanduser()
    if cfg.format == "hub":
        if looks_local(cfg.path) and not path.exists():
            raise NmtError(f"data.path: no such folder: {cfg.path}")
    elif not path.is_dir():
        raise NmtError(f"data.path: {cfg.path} is a file, not a folder" if path.exists()
                       else f"data.path: no such folder: {cfg.path}")


def split_file(cfg: DataConfig, split: str, ext: str) -> Path:
    """The file of `split` with extension `ext` in the corpus folder: `{path}/{split}.{ext}`,
    else its gzipped `.gz`; an error naming both if neither exists (`ext` is a language code
    for text corpora, else `tsv` or `jsonl`)."""
    file = Path(cfg.path) / f"{split}.{ext}"
    for cand in (file, file.with_name(f"{file.name}.gz")):
        if cand.is_file():
            return cand
    raise NmtError(f"no file for '{file.name}': looked for {file} and {file}.gz")


def tsv_pair(line: str, where: str) -> tuple[str, str]:
    """The two tab-separated fields of a tsv line (a blank line is an empty pair); `where`
    (file:line) names the line in the error."""
    fields = line.split("\t") if line else ["", ""]
    if len(fields) != 2:
        raise NmtError(f"{where}: expected 2 tab-separated fields, found {len(fields)}")
    return fields[0], fields[1]


def _load_text(cfg: DataConfig, split: str) -> datasets.Dataset:
    src_file = split_file(cfg, split, cfg.src_lang)
    tgt_file = split_file(cfg, split, cfg.tgt_lang)
    src, tgt = read_lines(src_file), read_lines(tgt_file)
    if len(src) != len(tgt):
        raise NmtError(f"line counts differ: {src_file} has {len(src)} lines, "
                       f"{tgt_file} has {len(tgt)}")
    return datasets.Dataset.from_dict({"src": src, "tgt": tgt})


def _load_tsv(cfg: DataConfig, split: str) -> datasets.Dataset:
    file = split_file(cfg, split, "tsv")
    pairs = [tsv_pair(line, f"{file}:{i}") for i, line in enumerate(read_lines(file), start=1)]
    return datasets.Dataset.from_dict({"src": [s for s, _ in pairs], "tgt": [t for _, t in pairs]})


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
    file = split_file(cfg, split, "jsonl")
    try:
        ds = datasets.load_dataset("json", data_files=str(file), split="train",
                                   cache_dir=cfg.cache_dir)
    except Exception:  # pyarrow reports no line numbers; find the bad line ourselves
        raise NmtError(_first_bad_json_line(file)) from None
    return _select_columns(ds, cfg, str(file))


SAVED_SPLIT = "train"  # the split name a folder saved from one `Dataset` answers to


def saved_dataset(cfg: DataConfig) -> Path | None:
    """The folder of data.path if `Dataset.save_to_disk` wrote it (one Dataset: a state.json
    and no dataset_dict.json), else None. A `DatasetDict.save_to_disk` folder is not one:
    `datasets.load_dataset` reads its splits like a hub dataset's."""
    if cfg.format != "hub" or not cfg.path:
        return None
    path = Path(cfg.path).expanduser()
    if (path / datasets.config.DATASET_STATE_JSON_FILENAME).is_file() and not (
            path / datasets.config.DATASETDICT_JSON_FILENAME).is_file():
        return path
    return None


def load_saved_split(cfg: DataConfig, split: str) -> datasets.Dataset:
    """A split of a folder written by `Dataset.save_to_disk` (see `saved_dataset`), columns
    as the file still holds them.

    One saved Dataset has no split names of its own: it is the split "train", and a split
    may be "train" or a slice of it in `datasets`' split syntax ("train[:95%]",
    "train[-500:]", "train[:1000]+train[2000:]"), so one saved Dataset can serve both
    data.train_split and data.dev_split. Any other name is one error saying so.
    """
    path = saved_dataset(cfg)
    assert path is not None
    ds = datasets.load_from_disk(str(path))  # memory-mapped, nothing read yet
    try:
        ranges = datasets.ReadInstruction.from_spec(split).to_absolute({SAVED_SPLIT: len(ds)})
    except ValueError:
        raise NmtError(f"data.path {cfg.path} holds one Dataset (saved with "
                       f"Dataset.save_to_disk), read as the split '{SAVED_SPLIT}'; there is no "
                       f"split '{split}': use '{SAVED_SPLIT}' or a slice of it such as "
                       f"'{SAVED_SPLIT}[:95%]' / '{SAVED_SPLIT}[95%:]', or save a DatasetDict"
                       ) from None
    parts = [ds.select(range(r.from_, r.to)) for r in ranges]
    return parts[0] if len(parts) == 1 else datasets.concatenate_datasets(parts)


def _load_hub(cfg: DataConfig, split: str) -> datasets.Dataset:
    what = f"dataset '{cfg.path}'" + (f" (config '{cfg.hub_config}')" if cfg.hub_config else "")
    if saved_dataset(cfg) is not None:
        return _select_columns(load_saved_split(cfg, split), cfg, what)
    try:
        ds = datasets.load_dataset(cfg.path, cfg.hub_config, split=split, cache_dir=cfg.cache_dir)
    except ValueError as e:
        if "split" in str(e).lower():
            raise NmtError(f"{what} has no split '{split}': {e}") from None
        raise NmtError(f"could not load {what}: {e}") from None
    except (FileNotFoundError, ConnectionError, OSError) as e:
        msg = first_line(e)
        raise NmtError(f"could not load {what} split '{split}' from the hub or disk: "
                       f"{msg}") from None
    except Exception as e:  # datasets raises many types (DatasetNotFoundError, ...)
        msg = first_line(e)
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


@dataclass(frozen=True)
class PairColumns:
    """Where a split's examples hold their two sides: flat columns (`example[src]`), or the
    language keys of a `translation` dict (`example["translation"][src]`)."""

    src: str
    tgt: str
    translation: bool
    what: str  # the split's name in errors

    def pair(self, example: Mapping) -> tuple[str, str]:
        """An example's (source, target) strings (a null side is ''); an example without
        one of the keys is an error naming it."""
        sides = example["translation"] if self.translation else example
        try:
            return _str(sides[self.src]), _str(sides[self.tgt])
        except KeyError as e:
            lacks = "'s 'translation' lacks language" if self.translation else " lacks column"
            raise NmtError(f"{self.what}: an example{lacks} {e}") from None


def pair_columns(columns: Sequence[str], cfg: DataConfig, what: str,
                 languages: Sequence[str] | None = None) -> PairColumns:
    """Which columns of a split (named `what` in errors) hold the source and target text.

    The flat columns `cfg.src_column`/`cfg.tgt_column` (data.src_key/tgt_key, else the
    language codes) if both are there; else, with data.src_key/tgt_key unset, a
    `translation` dict keyed by language code, whose `languages` (where known) must include
    both codes; else a one-line error naming the missing column(s) and listing `columns`.
    Used by in-memory loading (the dataset's columns) and by streaming (the first example's).
    """
    if cfg.src_column in columns and cfg.tgt_column in columns:
        return PairColumns(cfg.src_column, cfg.tgt_column, False, what)
    if "translation" in columns and cfg.src_key is None and cfg.tgt_key is None:
        if languages and (cfg.src_lang not in languages or cfg.tgt_lang not in languages):
            raise NmtError(f"{what}: 'translation' has languages {', '.join(languages)}, not "
                           f"{cfg.src_lang} and {cfg.tgt_lang}")
        return PairColumns(cfg.src_lang, cfg.tgt_lang, True, what)
    missing = [c for c in (cfg.src_column, cfg.tgt_column) if c not in columns]
    raise NmtError(f"{what}: missing column(s) {', '.join(missing)} "
                   f"(available: {', '.join(columns)}; set data.src_key/data.tgt_key)")


def _translation_languages(features: datasets.Features) -> list[str]:
    """The language keys of a `translation` feature (a `Translation` or a struct), if any."""
    langs = features.get("translation")
    return list(getattr(langs, "languages", None) or getattr(langs, "keys", lambda: [])())


def _select_columns(ds: datasets.Dataset, cfg: DataConfig, what: str) -> datasets.Dataset:
    """Map both layouts in the wild (flat columns, or a `translation` dict) to src/tgt."""
    cols = pair_columns(ds.column_names, cfg, what, _translation_languages(ds.features))
    if not cols.translation:  # columnar: select and rename, no Python per row
        ds = ds.select_columns([cols.src, cols.tgt])
        return _nulls_to_empty(ds.rename_columns({cols.src: "src", cols.tgt: "tgt"}))

    def split_pairs(batch: dict) -> dict:
        pairs = [cols.pair({"translation": p}) for p in batch["translation"]]
        return {"src": [s for s, _ in pairs], "tgt": [t for _, t in pairs]}

    return ds.map(split_pairs, batched=True, remove_columns=ds.column_names)


LOADERS = {"text": _load_text, "tsv": _load_tsv, "jsonl": _load_jsonl, "hub": _load_hub}


def load_split(cfg: DataConfig, split: str, limit: int | None = None) -> datasets.Dataset:
    """Load one split as a Dataset with string columns `src` and `tgt` (None becomes '')."""
    check_data_path(cfg)
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


def has_text(text: str | None) -> bool:
    """The cleaning rule: a side is kept if it has a character other than whitespace."""
    return bool(text and text.strip())


def length_filter(src_ids: Sequence[Sequence[int]], tgt_ids: Sequence[Sequence[int]],
                  cfg: DataConfig) -> tuple[np.ndarray, dict[str, int]]:
    """The length rules on subword ids (no BOS/EOS), for training data: which pairs pass (a
    bool array) and how many pairs each rule removed, a pair counting under the first rule
    it breaks. The rules, in order: source longer than `max_src_len`, target longer than
    `max_tgt_len`, and (if `max_len_ratio` is set) the longer side more than `max_len_ratio`
    times the shorter (an empty side counts as 1 token)."""
    src_len = np.array([len(x) for x in src_ids], dtype=np.int64)
    tgt_len = np.array([len(x) for x in tgt_ids], dtype=np.int64)
    rules = [(src_len > cfg.max_src_len, f"source > {cfg.max_src_len} tokens"),
             (tgt_len > cfg.max_tgt_len, f"target > {cfg.max_tgt_len} tokens")]
    if cfg.max_len_ratio is not None:
        ratio = np.maximum(src_len, tgt_len) / np.maximum(np.minimum(src_len, tgt_len), 1)
        rules.append((ratio > cfg.max_len_ratio, f"length ratio > {cfg.max_len_ratio}"))
    keep = np.ones(len(src_len), dtype=bool)
    removed = {}
    for bad, rule in rules:
        removed[rule] = int((keep & bad).sum())
        keep &= ~bad
    return keep, removed


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
    ds = _drop(ds, [has_text(s) for s in src], "empty source", report)
    tgt = ds["tgt"] if len(ds) != len(tgt) else tgt
    ds = _drop(ds, [has_text(t) for t in tgt], "empty target", report)
    return ds, report


def filter_lengths(ds: datasets.Dataset, cfg: DataConfig, report: FilterReport):
    """The length rules (`length_filter`) on a tokenized split (training data only)."""
    keep, removed = length_filter(ds["src_ids"], ds["tgt_ids"], cfg)
    for rule, n in removed.items():
        report.removed[rule] += n
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
