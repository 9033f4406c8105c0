"""A small model must actually learn the generated demo task (reordering included), and its
training curves are recorded and drawn."""

from __future__ import annotations

import re

import pytest

from nmt.checkpoint import load_model
from nmt.cli import main as nmt_main
from nmt.config import from_dict
from nmt.data.demo_corpus import write_corpus
from nmt.decoding.translator import Translator
from nmt.io import read_lines
from nmt.metrics import corpus_bleu
from nmt.training.curves import read_metrics
from nmt.training.run import train


@pytest.mark.parametrize("attention", ["general"])
def test_small_model_learns_demo_task(tmp_path, attention):
    data = tmp_path / "data"
    write_corpus(data, seed=7, n_train=4000, n_dev=100, n_test=150)
    cfg = from_dict({
        "data": {"path": str(data), "src_lang": "en", "tgt_lang": "de", "dev_split": "dev"},
        "vocab": {"vocab_size": 600},
        "model": {"emb_size": 64, "enc_hidden": 64, "dec_hidden": 128, "attention": attention,
                  "dropout": 0.0, "tie_embeddings": True},
        "train": {"seed": 1, "batch_tokens": 800, "max_steps": 450, "lr": 0.005,
                  "validate_every": 150, "checkpoint_every": 150, "label_smoothing": 0.0},
    })
    state = train(cfg, tmp_path / "model", quiet=True)
    model, cfg, vocabs = load_model(tmp_path / "model")
    src, ref = read_lines(data / "test.en"), read_lines(data / "test.de")
    hyps = [t.text for t in Translator(model, vocabs.src, vocabs.tgt, cfg.decode).translate(src)]
    bleu = corpus_bleu(hyps, ref).value
    assert bleu > 60, (bleu, state.history)
    # the reordering itself is learned: units before tens in German numbers
    compound = re.compile(r"\w+und\w+(zig|ßig)")  # einundzwanzig ... neunundneunzig
    pairs = zip(hyps, ref, strict=True)
    numbers = [(h, ws) for h, r in pairs if (ws := [w for w in r.split() if compound.fullmatch(w)])]
    correct = sum(all(w in h.split() for w in ws) for h, ws in numbers)
    assert numbers and correct / len(numbers) > 0.5, numbers[:5]
    # this demo run's curves: metrics.jsonl as the run went, and `nmt plot` over it
    records = read_metrics(tmp_path / "model")
    losses = [r["loss"] for r in records if r["event"] == "train"]
    assert len(losses) == 450 // cfg.train.log_every and losses[0] > 2 * losses[-1]
    bleus = [r["dev_bleu"] for r in records if r["event"] in ("validation", "stop")]
    assert bleus == pytest.approx([h["dev_bleu"] for h in state.history])
    page = tmp_path / "curves.html"
    assert nmt_main(["plot", str(tmp_path / "model"), "--out", str(page)]) == 0
    assert f"<td>{max(bleus):.2f} (update " in page.read_text(encoding="utf-8")
