"""Typed experiment configuration: the one copy of every default.

A config is four frozen dataclasses (`data`, `vocab`, `model`, `train`) plus `decode`, read
from YAML. Unknown keys are an error that names the key and lists the valid ones; values are
checked against the field types; `--set section.key=value` overrides are parsed with the
field's type. The resolved config is saved as `config.yaml` in every model directory, so
translating needs only that directory.
"""

from __future__ import annotations

import dataclasses
import re
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from nmt.errors import NmtError, first_line

ATTENTION_TYPES = ("bahdanau", "dot", "general", "concat")
CELL_TYPES = ("lstm", "gru")
AMP_MODES = ("auto", "none", "bf16", "fp16")
# A float in exponent form without a dot (`1e-3`): YAML 1.1, so PyYAML, reads it as a string.
_EXP_FLOAT = re.compile(r"[-+]?(\d+\.?\d*|\.\d+)[eE][-+]?\d+")


@dataclass(frozen=True)
class Range:
    """Allowed values of a numeric key: low <= v (low < v when `open_low`), v < high (v <= high
    when `closed_high`); None is unbounded. A key left at None (unset) is not checked."""

    low: float | None = None
    high: float | None = None
    open_low: bool = False
    closed_high: bool = False

    def holds(self, v: float) -> bool:
        above = self.low is None or (v > self.low if self.open_low else v >= self.low)
        below = self.high is None or (v <= self.high if self.closed_high else v < self.high)
        return above and below

    def describe(self) -> str:
        if self.high is None:
            return f"must be {'>' if self.open_low else '>='} {self.low:g}"
        left = "(" if self.open_low else "["
        right = "]" if self.closed_high else ")"
        return f"is not in {left}{self.low:g}, {self.high:g}{right}"


AT_LEAST_1, AT_LEAST_0, POSITIVE = Range(1), Range(0), Range(0, open_low=True)
# every numeric key and its range, checked by `validate` before any data is read
RANGES: dict[str, Range] = {
    "data.max_src_len": AT_LEAST_1, "data.max_tgt_len": AT_LEAST_1,
    "data.max_len_ratio": Range(1),  # the longer side over the shorter one
    "data.max_train_pairs": AT_LEAST_1, "data.max_dev_pairs": AT_LEAST_1,
    "data.shuffle_buffer": AT_LEAST_1, "data.stream_window": AT_LEAST_1,
    "vocab.vocab_size": Range(5),  # above the four special tokens
    "vocab.character_coverage": Range(0, 1, open_low=True, closed_high=True),
    "vocab.max_sentences": AT_LEAST_1,
    "model.emb_size": AT_LEAST_1, "model.enc_hidden": AT_LEAST_1,
    "model.enc_layers": AT_LEAST_1, "model.dec_hidden": AT_LEAST_1,
    "model.dec_layers": AT_LEAST_1, "model.attn_hidden": AT_LEAST_1,
    "model.out_size": AT_LEAST_1, "model.dropout": Range(0, 1),
    "train.seed": AT_LEAST_0, "train.batch_tokens": AT_LEAST_1, "train.max_epochs": AT_LEAST_1,
    "train.max_steps": AT_LEAST_1, "train.max_time": POSITIVE, "train.lr": POSITIVE,
    "train.clip_norm": AT_LEAST_0, "train.label_smoothing": Range(0, 1),
    "train.word_dropout": Range(0, 1),
    "train.weight_decay": AT_LEAST_0, "train.lr_decay": Range(0, 1, open_low=True,
                                                             closed_high=True),
    "train.lr_patience": AT_LEAST_0, "train.min_lr": AT_LEAST_0, "train.patience": AT_LEAST_1,
    "train.validate_every": AT_LEAST_1, "train.checkpoint_every": AT_LEAST_1,
    "train.keep_checkpoints": AT_LEAST_0, "train.log_every": AT_LEAST_1,
    "train.num_threads": AT_LEAST_1, "train.update_freq": AT_LEAST_1,
    "decode.batch_size": AT_LEAST_1, "decode.beam_size": AT_LEAST_1,
    "decode.coverage_penalty": AT_LEAST_0, "decode.max_len_ratio": POSITIVE,
    "decode.max_len_offset": AT_LEAST_0, "decode.max_input_tokens": AT_LEAST_1,
}


@dataclass(frozen=True)
class DataConfig:
    """Where the parallel corpus comes from and how it is cleaned.

    format: "hub" (a Hugging Face hub id or a local dataset folder, loaded with
    `datasets.load_dataset(path, hub_config)`), "text" (`{path}/{split}.{lang}`, optionally
    `.gz`), "tsv" (`{path}/{split}.tsv[.gz]`, `src<TAB>tgt` per line, no header) or "jsonl"
    (`{path}/{split}.jsonl[.gz]`, one object per line).
    For "hub" and "jsonl", each example holds the two sides either as flat columns
    (`src_key`/`tgt_key`, defaulting to the language codes) or as a `translation` dict
    keyed by language code.
    """

    path: str = ""
    format: str = "text"
    hub_config: str | None = None
    src_lang: str = "de"
    tgt_lang: str = "en"
    src_key: str | None = None
    tgt_key: str | None = None
    train_split: str = "train"
    dev_split: str = "validation"
    test_splits: tuple[str, ...] = ()
    max_src_len: int = 100  # subword tokens, training pairs only
    max_tgt_len: int = 100
    max_len_ratio: float | None = None  # drop pairs whose token-length ratio exceeds this
    max_train_pairs: int | None = None  # keep only the first N training pairs (quick runs)
    max_dev_pairs: int | None = None
    streaming: bool = False  # read the training split lazily (see nmt/stream.py)
    shuffle_buffer: int = 100_000  # examples, streaming only
    stream_window: int = 10_000  # examples sorted into token batches together, streaming only
    cache_dir: str | None = None

    @property
    def src_column(self) -> str:
        return self.src_key or self.src_lang

    @property
    def tgt_column(self) -> str:
        return self.tgt_key or self.tgt_lang


@dataclass(frozen=True)
class VocabConfig:
    """Sentencepiece subwords trained on the training split."""

    joint: bool = True
    vocab_size: int = 8000
    model_type: str = "unigram"  # or "bpe"
    character_coverage: float = 1.0
    max_sentences: int = 2_000_000  # sample bound for sentencepiece training


@dataclass(frozen=True)
class ModelConfig:
    """BiLSTM encoder, attention decoder with an LSTM or GRU cell (see docs/model.md).

    attention: "bahdanau" = additive score in the Bahdanau scheme (attend with s_{t-1}, feed
    c_t into the LSTM); "dot", "general", "concat" = Luong scheme (step, then attend).
    input_feeding applies to the Luong scheme; the Bahdanau scheme always feeds c_t.
    """

    emb_size: int = 256
    enc_hidden: int = 256  # per direction
    enc_layers: int = 1
    dec_hidden: int = 512
    dec_layers: int = 1
    cell: str = "lstm"  # the decoder's recurrent cell: lstm or gru
    attention: str = "bahdanau"
    attn_hidden: int | None = None  # additive/concat energy size; default dec_hidden
    input_feeding: bool = True
    bridge: bool = True  # decoder init from the encoder's final states; False: zeros
    tie_embeddings: bool = False  # tie target embeddings and output projection
    out_size: int | None = None  # size of the attentional vector; default dec_hidden
    dropout: float = 0.3

    @property
    def scheme(self) -> str:
        return "bahdanau" if self.attention == "bahdanau" else "luong"

    @property
    def attn_vector_size(self) -> int:
        if self.out_size is not None:
            return self.out_size
        return self.emb_size if self.tie_embeddings else self.dec_hidden


@dataclass(frozen=True)
class TrainConfig:
    seed: int = 1
    batch_tokens: int = 2048  # padded tokens per batch, on the longer side
    max_epochs: int = 30
    max_steps: int | None = None
    max_time: float | None = None  # wall seconds of the whole run, across resumes (see README)
    lr: float = 1e-3
    clip_norm: float = 1.0
    label_smoothing: float = 0.1
    word_dropout: float = 0.0  # source and decoder-input tokens replaced by UNK (word_dropout.py)
    weight_decay: float = 0.0
    lr_schedule: str = "plateau"  # plateau: lr_decay on dev-BLEU plateaus; linear: to the budget
    lr_decay: float = 0.5  # factor on dev-BLEU plateau
    lr_patience: int = 2  # validations without improvement before decaying
    min_lr: float = 1e-5
    patience: int = 6  # early stopping: validations without dev-BLEU improvement
    validate_every: int = 500  # steps; validation also runs at each epoch end
    checkpoint_every: int = 100  # steps between `last.pt` saves (resume points)
    keep_checkpoints: int = 0  # keep the weights of the last N validations and N around the best
    log_every: int = 50
    num_threads: int | None = None  # torch intra-op threads; None: torch default
    update_freq: int = 1  # batches whose gradients are summed into one update
    device: str = "auto"  # auto (cuda if available), cpu, cuda, cuda:N
    amp: str = "auto"  # auto (bf16/fp16 on CUDA, fp32 on CPU), none, bf16, fp16
    tensorboard: bool = False  # also log the curves of metrics.jsonl to TensorBoard (runs/)


@dataclass(frozen=True)
class DecodeConfig:
    """Decoding for translation (validation during training is always greedy, with
    `ban_unk` as set here).

    beam_size 1 is greedy search. length_penalty: "none", "average" or "gnmt:<alpha>";
    coverage_penalty: GNMT's beta (0 = off).
    """

    batch_size: int = 64  # sentences
    beam_size: int = 5
    length_penalty: str = "gnmt:0.6"
    coverage_penalty: float = 0.0
    ban_unk: bool = False
    max_len_ratio: float = 2.0  # max output tokens = ratio * source tokens + max_len_offset
    max_len_offset: int = 10
    max_input_tokens: int = 200  # longer source lines are split into chunks (see translate)


@dataclass(frozen=True)
class Config:
    data: DataConfig = field(default_factory=DataConfig)
    vocab: VocabConfig = field(default_factory=VocabConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    decode: DecodeConfig = field(default_factory=DecodeConfig)

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["data"]["test_splits"] = list(self.data.test_splits)
        return out


def _exp_float(value: Any) -> Any:
    """'1e-3' -> 0.001 (PyYAML leaves it a string); anything else unchanged."""
    if isinstance(value, str) and _EXP_FLOAT.fullmatch(value.strip()):
        return float(value)
    return value


def _check_type(value: Any, tp: Any, where: str) -> Any:
    """Return `value` converted to `tp` where that is lossless; raise NmtError otherwise."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _check_type(value, inner[0], where)
    if origin is tuple:
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, (list, tuple)):
            raise NmtError(f"{where}: expected a list, got {value!r}")
        (item,) = {a for a in typing.get_args(tp) if a is not Ellipsis}
        return tuple(_check_type(v, item, where) for v in value)
    if tp is bool:
        if isinstance(value, bool):
            return value
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif tp is float:
        value = _exp_float(value)
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif tp is str:
        if isinstance(value, str):
            return value
    raise NmtError(f"{where}: expected {getattr(tp, '__name__', tp)}, got {value!r}")


def _build(cls: type, values: dict[str, Any], where: str) -> Any:
    if not isinstance(values, dict):
        raise NmtError(f"{where}: expected a mapping, got {values!r}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    kwargs = {}
    for key, value in values.items():
        if key not in names:
            prefix = f"{where}: " if where else ""
            raise NmtError(f"{prefix}unknown key '{key}' (valid: {', '.join(names)})")
        sub = f"{where}.{key}" if where else key
        if dataclasses.is_dataclass(hints[key]):
            kwargs[key] = _build(hints[key], value or {}, sub)
        else:
            kwargs[key] = _check_type(value, hints[key], sub)
    return cls(**kwargs)


def validate(cfg: Config) -> Config:
    """Every numeric key in its range (`RANGES`), then cross-field checks; each failure is
    one line that names the keys involved."""
    check_ranges(cfg)
    _validate_model(cfg.model)
    check_value("decode.length_penalty", cfg.decode.length_penalty)
    if cfg.vocab.model_type not in ("unigram", "bpe"):
        raise NmtError(f"vocab.model_type: '{cfg.vocab.model_type}' is not unigram or bpe")
    if cfg.data.format not in ("hub", "text", "tsv", "jsonl"):
        raise NmtError(f"data.format: '{cfg.data.format}' is not one of hub, text, tsv, jsonl")
    if cfg.train.lr_schedule not in ("plateau", "linear"):
        raise NmtError(f"train.lr_schedule: '{cfg.train.lr_schedule}' is not plateau or linear")
    if (cfg.train.lr_schedule == "linear" and cfg.data.streaming
            and cfg.train.max_steps is None and cfg.train.max_time is None):
        raise NmtError("train.lr_schedule: linear decays to the end of the budget, and a "
                       "streamed corpus has no epoch length: set train.max_steps or "
                       "train.max_time")
    if cfg.train.amp not in AMP_MODES:
        raise NmtError(f"train.amp: '{cfg.train.amp}' is not one of auto, none, bf16, fp16")
    return cfg


def check_ranges(cfg: Config) -> None:
    """Each key of `RANGES` that is set, in its range; else one line naming the key."""
    for key in RANGES:
        section, name = key.split(".")
        check_value(key, getattr(getattr(cfg, section), name))


def check_value(key: str, value: Any, name: str | None = None) -> None:
    """`value` allowed for `key` ("section.key"): in its range (`RANGES`), and for
    decode.length_penalty of the right form. Else one line naming `name` (what the user
    typed: a CLI flag such as `--beam`, or `--set decode.beam_size`), by default the key."""
    if value is None:  # unset: nothing to check
        return
    name = name or key
    allowed = RANGES.get(key)
    if allowed is not None and not allowed.holds(value):
        raise NmtError(f"{name}: {value!r} {allowed.describe()}" if allowed.high is not None
                       else f"{name}: {allowed.describe()} (got {value!r})")
    if key == "decode.length_penalty" and not _is_length_penalty(value):
        raise NmtError(f"{name}: '{value}' is not none, average or gnmt:<alpha>")


def _validate_model(m: ModelConfig) -> None:
    if m.cell not in CELL_TYPES:
        raise NmtError(f"model.cell: '{m.cell}' is not one of {', '.join(CELL_TYPES)}")
    if m.attention not in ATTENTION_TYPES:
        raise NmtError(f"model.attention: '{m.attention}' is not one of "
                       f"{', '.join(ATTENTION_TYPES)}")
    if m.scheme == "bahdanau" and not m.input_feeding:
        raise NmtError("model.input_feeding: the Bahdanau scheme always feeds the context c_t "
                       "into the LSTM; set it to true or use a Luong attention")
    if m.attention == "dot" and m.dec_hidden != 2 * m.enc_hidden:
        raise NmtError(f"model.attention: dot needs model.dec_hidden ({m.dec_hidden}) == "
                       f"2 * model.enc_hidden ({2 * m.enc_hidden}); use 'general' otherwise")
    if m.tie_embeddings and m.attn_vector_size != m.emb_size:
        raise NmtError(f"model.tie_embeddings: needs model.out_size ({m.out_size}) == "
                       f"model.emb_size ({m.emb_size}); leave out_size unset")


def _is_length_penalty(text: str) -> bool:
    """"none", "average" or "gnmt:<alpha>"."""
    lp = text.split(":")
    return (lp[0] in ("none", "average") and len(lp) == 1
            or lp[0] == "gnmt" and len(lp) == 2 and _is_float(lp[1]))


def _is_float(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def from_dict(values: dict[str, Any]) -> Config:
    return validate(_build(Config, values or {}, ""))


def parse_override(text: str) -> tuple[list[str], Any]:
    """`model.hidden=256` -> (['model', 'hidden'], 256), the value parsed as YAML."""
    if "=" not in text:
        raise NmtError(f"--set {text}: expected section.key=value")
    key, raw = text.split("=", 1)
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError as e:
        raise NmtError(f"--set {key.strip()}: {raw.strip()!r} is not a valid YAML value "
                       f"({getattr(e, 'problem', None) or first_line(e)})") from None
    return key.strip().split("."), value


def _is_str_field(section: str, key: str) -> bool:
    """Whether `section.key` is declared `str` or `str | None`."""
    cls = typing.get_type_hints(Config).get(section)
    tp = typing.get_type_hints(cls).get(key) if dataclasses.is_dataclass(cls) else None
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        return str in typing.get_args(tp)
    return tp is str


def apply_overrides(values: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """`values` (a config file's sections) with each `--set section.key=value` applied.

    Each override is checked on its own, so an error names `--set section.key` (not the
    config file): an unknown section or key (with the valid ones), a value of the wrong type
    or out of its range.
    """
    values = {k: dict(v) if isinstance(v, dict) else v for k, v in (values or {}).items()}
    sections = typing.get_type_hints(Config)  # section name -> its dataclass
    for text in overrides:
        keys, value = parse_override(text)
        if len(keys) != 2 or not all(keys):
            raise NmtError(f"--set {text}: expected section.key=value")
        section_name, key = keys
        name = f"--set {section_name}.{key}"
        if section_name not in sections:
            raise NmtError(f"{name}: unknown section '{section_name}' (valid: "
                           f"{', '.join(sections)})")
        hints = typing.get_type_hints(sections[section_name])
        fields = [f.name for f in dataclasses.fields(sections[section_name])]
        if key not in fields:
            raise NmtError(f"{name}: unknown key '{key}' in section {section_name} (valid: "
                           f"{', '.join(fields)})")
        if (value is not None and not isinstance(value, (str, list, dict))
                and _is_str_field(section_name, key)):
            value = text.split("=", 1)[1].strip()  # `no`, `2014` are strings here, not YAML's
        value = _check_type(value, hints[key], name)
        check_value(f"{section_name}.{key}", value, name)
        if values.get(section_name) is None:
            values[section_name] = {}
        if not isinstance(values[section_name], dict):
            raise NmtError(f"{name}: section '{section_name}' of the config file is not a "
                           "mapping")
        values[section_name][key] = value
    return values


def load_yaml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise NmtError(f"{path}: config file not found")
    try:
        values = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        line = f":{mark.line + 1}" if mark is not None else ""
        raise NmtError(f"{path}{line}: invalid YAML ({getattr(e, 'problem', e)})") from None
    if values is not None and not isinstance(values, dict):
        raise NmtError(f"{path}: expected a mapping of sections at top level")
    return values or {}


def load_config(path: str | Path | None = None, overrides: list[str] | None = None) -> Config:
    values = apply_overrides(load_yaml(path) if path else {}, overrides or [])
    try:
        return from_dict(values)
    except NmtError as e:
        raise NmtError(f"{path}: {e}" if path else str(e)) from None


def dump_yaml(cfg: Config) -> str:
    return yaml.safe_dump(cfg.to_dict(), sort_keys=False)


def resume_overrides(texts: list[str]) -> dict[str, Any]:
    """`--set` values for a resumed run: train.* keys only, type-checked -> {field: value}."""
    values = {}
    valid = set(TrainConfig.__dataclass_fields__)
    for text in texts:
        keys, value = parse_override(text)
        if len(keys) != 2 or keys[0] != "train" or keys[1] not in valid:
            raise NmtError(f"--set {text}: on resume only train.* keys can change "
                           f"(valid: {', '.join(sorted(valid))})")
        values[keys[1]] = value
    checked = load_config(None, [f"train.{k}={v}" for k, v in values.items()]).train
    return {k: getattr(checked, k) for k in values}
