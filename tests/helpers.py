"""Small generated corpora and configs shared by the training and translation tests."""

from __future__ import annotations

import random
from pathlib import Path

from nmt.config import Config, from_dict

WORDS = ["ka", "lo", "mi", "ne", "su", "ta", "ri", "po", "ve", "zu", "an", "el"]


def write_toy_corpus(path: Path, n_train: int = 300, n_dev: int = 30, seed: int = 0) -> Path:
    """A reversal task over made-up words: target = source words reversed, upper-cased."""
    rng = random.Random(seed)
    path.mkdir(parents=True, exist_ok=True)
    for split, n in (("train", n_train), ("dev", n_dev)):
        src, tgt = [], []
        for _ in range(n):
            words = [rng.choice(WORDS) for _ in range(rng.randint(2, 6))]
            src.append(" ".join(words))
            tgt.append(" ".join(w.upper() for w in reversed(words)))
        (path / f"{split}.xx").write_text("\n".join(src) + "\n", encoding="utf-8")
        (path / f"{split}.yy").write_text("\n".join(tgt) + "\n", encoding="utf-8")
    return path


def toy_config(data_dir: Path, **train: object) -> Config:
    train_section = dict(seed=3, batch_tokens=120, max_epochs=100, max_steps=14, lr=3e-3,
                         validate_every=5, checkpoint_every=4, log_every=2, num_threads=1,
                         lr_patience=0, patience=50)
    train_section.update(train)
    return from_dict({
        "data": {"path": str(data_dir), "format": "text", "src_lang": "xx", "tgt_lang": "yy",
                 "dev_split": "dev"},
        "vocab": {"vocab_size": 60, "joint": False},
        "model": {"emb_size": 16, "enc_hidden": 16, "dec_hidden": 32, "dropout": 0.1,
                  "attention": "bahdanau"},
        "train": train_section,
        "decode": {"batch_size": 16},
    })


def train_toy_model(tmp_path_factory, **train_options: object) -> Path:
    """A small model trained on a fresh toy corpus (for module-scoped fixtures)."""
    from nmt.training.run import train

    corpus = write_toy_corpus(tmp_path_factory.mktemp("toy"))
    out = tmp_path_factory.mktemp("run") / "model"
    train(toy_config(corpus, **({"max_steps": 8} | train_options)), out, quiet=True)
    return out


def set_switch(monkeypatch, name: str, value: str | None) -> None:
    """Set (or with None, unset) an `NMT_*` kernel switch for the rest of the test: the
    variable, and `nmt.cpu.switches` made to read the environment again."""
    from nmt.cpu import switches

    if value is None:
        monkeypatch.delenv(name, raising=False)
    else:
        monkeypatch.setenv(name, value)
    switches.reset()


def fast_linear(layer):
    """`layer` (an `nn.Linear`) with the CPU kernel attached, as `nmt.cpu.accelerate` does."""
    from nmt.cpu.matmul import FastLinear

    layer.__class__ = FastLinear
    return layer


class EditedSteps:
    """A decodable model whose every step's log-probs (a copy) pass through `edit` first;
    encoding and beam reordering are the wrapped model's."""

    def __init__(self, model):
        self.model = model

    def edit(self, log_probs):  # (B, V), changed in place
        raise NotImplementedError

    def encode(self, src, src_lengths):
        return self.model.encode(src, src_lengths)

    def decode_step(self, tokens, state, memory):
        step = self.model.decode_step(tokens, state, memory)
        step.log_probs = step.log_probs.clone()
        self.edit(step.log_probs)
        return step

    def reorder_state(self, state, index):
        return self.model.reorder_state(state, index)
