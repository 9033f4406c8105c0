"""Tests for nmt.config: strict YAML loading, typed overrides, cross-field validation."""

from __future__ import annotations

import dataclasses
import typing
from pathlib import Path

import pytest
import yaml

from nmt.config import (
    RANGES,
    Config,
    DataConfig,
    ModelConfig,
    TrainConfig,
    dump_yaml,
    from_dict,
    load_config,
)
from nmt.errors import NmtError


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "exp.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_defaults_without_a_file():
    assert load_config() == Config()
    assert load_config(None, []) == Config()


def test_yaml_file_sets_fields(tmp_path):
    path = write(tmp_path, """
data:
  path: corpus
  format: tsv
  test_splits: [newstest2013, newstest2014]
  max_len_ratio: 3
model:
  attention: general
  dec_hidden: 128
train:
  lr: 0.0005
  max_steps: null
""")
    cfg = load_config(path)
    assert cfg.data == DataConfig(path="corpus", format="tsv", max_len_ratio=3.0,
                                  test_splits=("newstest2013", "newstest2014"))
    assert cfg.model == ModelConfig(attention="general", dec_hidden=128)
    assert cfg.train.lr == 0.0005 and cfg.train.max_steps is None
    assert cfg.vocab == Config().vocab


def test_empty_file_and_empty_section_give_defaults(tmp_path):
    assert load_config(write(tmp_path, "")) == Config()
    assert load_config(write(tmp_path, "model:\n")) == Config()


@pytest.mark.parametrize("text, key, valid", [
    ("modle:\n  emb_size: 8\n", "modle", "data, vocab, model, train, decode"),
    ("model:\n  hidden_size: 8\n", "hidden_size", "emb_size, enc_hidden, enc_layers"),
    ("train:\n  batch_size: 8\n", "batch_size", "seed, batch_tokens"),
])
def test_unknown_key_names_it_and_the_valid_ones(tmp_path, text, key, valid):
    path = write(tmp_path, text)
    with pytest.raises(NmtError) as e:
        load_config(path)
    msg = str(e.value)
    assert f"unknown key '{key}'" in msg
    assert f"valid: {valid}" in msg
    assert msg.startswith(f"{path}: ")
    assert ": :" not in msg  # no empty location before the message


@pytest.mark.parametrize("section, key, value, expected", [
    ("model", "dec_hidden", "'128'", "int"),  # string for int
    ("model", "dec_hidden", "128.0", "int"),  # float for int
    ("model", "dec_hidden", "true", "int"),  # bool for int
    ("model", "bridge", "1", "bool"),  # int for bool
    ("model", "bridge", "'yes'", "bool"),
    ("train", "lr", "'fast'", "float"),
    ("train", "lr", "true", "float"),
    ("data", "path", "5", "str"),
    ("data", "test_splits", "{a: 1}", "a list"),
    ("data", "test_splits", "[a, 5]", "str"),
    ("train", "max_steps", "'10'", "int"),  # optional int: still an int or null
])
def test_wrong_type_names_the_dotted_key(tmp_path, section, key, value, expected):
    with pytest.raises(NmtError, match=f"{section}.{key}: expected {expected}"):
        load_config(write(tmp_path, f"{section}:\n  {key}: {value}\n"))


def test_section_that_is_not_a_mapping(tmp_path):
    with pytest.raises(NmtError, match="model: expected a mapping"):
        load_config(write(tmp_path, "model: 5\n"))
    with pytest.raises(NmtError, match="mapping of sections"):
        load_config(write(tmp_path, "- a\n- b\n"))


def test_ints_are_accepted_for_float_fields(tmp_path):
    cfg = load_config(write(tmp_path, "train:\n  lr: 1\n  max_time: 60\nmodel:\n  dropout: 0\n"))
    assert cfg.train.lr == 1.0 and isinstance(cfg.train.lr, float)
    assert cfg.train.max_time == 60.0 and isinstance(cfg.train.max_time, float)
    assert cfg.model.dropout == 0.0 and isinstance(cfg.model.dropout, float)


def test_exponent_floats_without_a_dot(tmp_path):
    """PyYAML (YAML 1.1) reads `1e-3` as a string; a float field still takes it as 0.001."""
    cfg = load_config(write(tmp_path, "train:\n  lr: 1e-3\n  min_lr: 5E-6\n"),
                      ["train.weight_decay=1e-5"])
    assert (cfg.train.lr, cfg.train.min_lr, cfg.train.weight_decay) == (1e-3, 5e-6, 1e-5)
    # a value printed by Python and read back through --set (as `train --resume` does)
    assert load_config(None, [f"train.min_lr={1e-05}"]).train.min_lr == 1e-05
    with pytest.raises(NmtError, match="train.seed: expected int"):
        load_config(None, ["train.seed=1e3"])


def test_overrides_are_parsed_with_the_field_types(tmp_path):
    path = write(tmp_path, "model:\n  dec_hidden: 64\n  attention: general\n")
    cfg = load_config(path, ["model.dec_hidden=128", "data.test_splits=[a, b]",
                             "train.lr=0.5", "train.max_steps=null", "model.bridge=false",
                             "data.max_len_ratio=2"])
    assert cfg.model.dec_hidden == 128
    assert cfg.model.attention == "general"  # from the file, untouched
    assert cfg.data.test_splits == ("a", "b")
    assert cfg.train.lr == 0.5 and cfg.train.max_steps is None
    assert cfg.model.bridge is False
    assert cfg.data.max_len_ratio == 2.0
    assert load_config(None, ["data.test_splits=newstest2014"]).data.test_splits == (
        "newstest2014",)
    # the last of several overrides of one key wins
    assert load_config(None, ["train.seed=3", "train.seed=4"]).train.seed == 4


def test_string_overrides_stay_strings():
    """`--set data.src_lang=no` is Norwegian, not YAML's False; `2014` is a split name."""
    cfg = load_config(None, ["data.src_lang=no", "data.tgt_lang=on", "data.dev_split=2014",
                             "data.path=1.5", "data.hub_config=de-en"])
    assert (cfg.data.src_lang, cfg.data.tgt_lang) == ("no", "on")
    assert cfg.data.dev_split == "2014" and cfg.data.path == "1.5"
    assert cfg.data.hub_config == "de-en"
    assert load_config(None, ["data.hub_config=null"]).data.hub_config is None


@pytest.mark.parametrize("override, match", [
    ("model.dec_hidden=big", "model.dec_hidden: expected int"),
    ("model.dec_hidden=1.5", "model.dec_hidden: expected int"),
    ("model.tie_embeddings=1", "model.tie_embeddings: expected bool"),
    ("model.hidden=5", "unknown key 'hidden'"),
    ("nosection.key=5", "unknown section 'nosection'"),
    ("dec_hidden=5", "expected section.key=value"),
    ("model.enc.hidden=5", "expected section.key=value"),
    ("model.dec_hidden", "expected section.key=value"),
    ("seed.x=1", "unknown section 'seed'"),
])
def test_bad_overrides(override, match):
    with pytest.raises(NmtError, match=match):
        load_config(None, [override])


def test_bad_override_names_set_not_the_config_file(tmp_path):
    path = write(tmp_path, "model:\n  dec_hidden: 64\n")
    with pytest.raises(NmtError) as e:
        load_config(path, ["model.dec_hidden=x"])
    assert str(e.value) == "--set model.dec_hidden: expected int, got 'x'"


@pytest.mark.parametrize("override, message", [
    ("train.lr_decy=0.3", "--set train.lr_decy: unknown key 'lr_decy' in section train (valid: "
                          "seed, batch_tokens, "),
    ("trian.lr=0.3", "--set trian.lr: unknown section 'trian' (valid: data, vocab, model, "
                     "train, decode)"),
    ("train.lr=-1", "--set train.lr: must be > 0 (got -1.0)"),
    ("decode.max_len_ratio=0", "--set decode.max_len_ratio: must be > 0 (got 0.0)"),
    ("model.dropout=1", "--set model.dropout: 1.0 is not in [0, 1)"),
    ("decode.length_penalty=gnmt", "--set decode.length_penalty: 'gnmt' is not none, average "
                                   "or gnmt:<alpha>"),
    ("data.test_splits=[a", "--set data.test_splits: '[a' is not a valid YAML value"),
])
def test_bad_set_is_one_line_naming_set(tmp_path, override, message):
    """A --set typo is the --set's fault, not the YAML file's (which is fine)."""
    path = write(tmp_path, "train:\n  lr: 0.01\n")
    with pytest.raises(NmtError) as e:
        load_config(path, [override])
    assert str(e.value).startswith(message) and "\n" not in str(e.value)
    assert str(path) not in str(e.value)
    if "lr_decy" in override:
        assert "lr_decay" in str(e.value)


def test_set_into_an_empty_section_of_the_file(tmp_path):
    path = write(tmp_path, "model:\ntrain:\n  lr: 0.01\n")
    cfg = load_config(path, ["model.dec_hidden=128"])
    assert cfg.model.dec_hidden == 128 and cfg.train.lr == 0.01


def test_file_errors_still_name_the_file(tmp_path):
    path = write(tmp_path, "train:\n  lr_decy: 0.3\n")
    with pytest.raises(NmtError, match=f"^{path}: train: unknown key 'lr_decy'"):
        load_config(path, ["train.lr=0.5"])


def test_invalid_yaml_names_file_and_line(tmp_path):
    path = write(tmp_path, "model:\n  emb_size: 8\n  dec_hidden: [1, 2\ntrain:\n  lr: 1\n")
    with pytest.raises(NmtError, match="invalid YAML") as e:
        load_config(path)
    assert str(e.value).startswith(f"{path}:")
    line = int(str(e.value)[len(str(path)) + 1:].split(":")[0])
    assert 3 <= line <= 4  # the unclosed list opens on line 3; PyYAML notices on line 4
    path = write(tmp_path, "model:\n  emb_size: 8\n bad: indentation\n")
    with pytest.raises(NmtError, match=f"^{path}:3: invalid YAML"):
        load_config(path)


def test_missing_config_file(tmp_path):
    with pytest.raises(NmtError, match="config file not found"):
        load_config(tmp_path / "nope.yaml")


@pytest.mark.parametrize("model, match", [
    (dict(attention="dot", enc_hidden=64, dec_hidden=100), r"dot needs model.dec_hidden \(100\)"),
    (dict(attention="bahdanau", input_feeding=False), "model.input_feeding"),
    (dict(attention="general", tie_embeddings=True, emb_size=32, out_size=64),
     r"model.tie_embeddings: needs model.out_size \(64\) == model.emb_size \(32\)"),
    (dict(attention="luong"), "model.attention: 'luong' is not one of bahdanau, dot"),
    (dict(dropout=1.0), "model.dropout"),
    (dict(dec_layers=0), "model.dec_layers: must be >= 1"),
])
def test_cross_field_validation(model, match):
    with pytest.raises(NmtError, match=match):
        from_dict({"model": model})


@pytest.mark.parametrize("model", [
    dict(attention="dot", enc_hidden=64, dec_hidden=128),
    dict(attention="dot", input_feeding=False, enc_hidden=32, dec_hidden=64),
    dict(attention="general", input_feeding=False),
    dict(attention="concat", tie_embeddings=True, emb_size=32),  # out_size follows emb_size
    dict(attention="bahdanau", tie_embeddings=True, emb_size=32, out_size=32),
])
def test_valid_model_combinations(model):
    cfg = from_dict({"model": model})
    if cfg.model.tie_embeddings:
        assert cfg.model.attn_vector_size == cfg.model.emb_size


@pytest.mark.parametrize("values, match", [
    ({"vocab": {"model_type": "word"}}, "vocab.model_type"),
    ({"data": {"format": "csv"}}, "data.format: 'csv'"),
    ({"train": {"batch_tokens": 0}}, "train.batch_tokens"),
])
def test_other_sections_are_validated(values, match):
    with pytest.raises(NmtError, match=match):
        from_dict(values)


def test_round_trip_through_yaml():
    cfg = from_dict({
        "data": {"path": "wmt14", "format": "hub", "hub_config": "de-en", "src_key": "de",
                 "test_splits": ["test", "newstest2015"], "max_len_ratio": 2.5,
                 "max_train_pairs": 1000},
        "vocab": {"joint": False, "vocab_size": 500, "model_type": "bpe",
                  "character_coverage": 0.9995},
        "model": {"attention": "dot", "enc_hidden": 64, "dec_hidden": 128, "input_feeding": False,
                  "tie_embeddings": True, "emb_size": 96, "dropout": 0.1},
        "train": {"lr": 1e-4, "min_lr": 1e-7, "max_time": 3600, "num_threads": 2},
        "decode": {"max_len_ratio": 1.5},
    })
    assert from_dict(yaml.safe_load(dump_yaml(cfg))) == cfg
    assert from_dict(yaml.safe_load(dump_yaml(Config()))) == Config()
    # every field is written out, so a saved config does not depend on later defaults
    dumped = yaml.safe_load(dump_yaml(cfg))
    for section in dataclasses.fields(Config):
        names = [f.name for f in dataclasses.fields(getattr(cfg, section.name))]
        assert list(dumped[section.name]) == names


def test_configs_are_frozen():
    cfg = Config()
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.train.lr = 0.1  # type: ignore[misc]
    assert TrainConfig().batch_tokens == cfg.train.batch_tokens


def _bad_values(rng):
    """Values just outside a `Range` (below the low end; above the high end)."""
    out = []
    if rng.low is not None:
        out.append(rng.low if rng.open_low else rng.low - 1)
    if rng.high is not None:
        out.append(rng.high + 1 if rng.closed_high else rng.high)
    return out


@pytest.mark.parametrize("key", sorted(RANGES))
def test_every_numeric_key_is_range_checked(key):
    """Table-driven: each numeric key given a value outside its range is refused with one
    line naming the key, when the config is built (before any data is read)."""
    section, name = key.split(".")
    field_type = {f.name: f.type for f in dataclasses.fields(type(getattr(Config(), section)))}
    assert "int" in str(field_type[name]) or "float" in str(field_type[name]), key
    bad = _bad_values(RANGES[key])
    assert bad, key
    for value in bad:
        if "int" in str(field_type[name]):
            value = int(value) if float(value).is_integer() else int(value) + 1
        with pytest.raises(NmtError) as e:
            from_dict({section: {name: value}})
        message = str(e.value)
        assert message.startswith(f"{key}: ") and "\n" not in message, message


def test_every_numeric_key_has_a_range():
    """A new numeric config key must get its range in RANGES (else it is never checked)."""
    numeric = {f"{section}.{name}"
               for section, cls in typing.get_type_hints(Config).items()
               for name, hint in typing.get_type_hints(cls).items()
               if {int, float} & ({hint} | set(typing.get_args(hint)))}
    assert numeric == set(RANGES)


def test_zero_intervals_no_longer_reach_training():
    for key in ("validate_every", "checkpoint_every", "log_every"):
        with pytest.raises(NmtError, match=f"train.{key}: must be >= 1"):
            from_dict({"train": {key: 0}})
