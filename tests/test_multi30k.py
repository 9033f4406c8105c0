"""Slow checks on the real Multi30k corpus in ../shared (run with `pytest -m slow`)."""

from __future__ import annotations

from pathlib import Path

import pytest

from nmt.config import load_config
from nmt.data.corpus import load_split
from nmt.training.run import train

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data" / "multi30k"
pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not DATA.is_dir(), reason="../shared/data/multi30k missing")]


@pytest.mark.parametrize("src,tgt", [("de", "en"), ("en", "de"), ("fr", "en")])
def test_every_split_loads_line_aligned(src, tgt):
    cfg = load_config(ROOT / "data" / "configs" / f"multi30k_{src}_{tgt}.yaml",
                      [f"data.path={DATA}"])
    sizes = {"train": 29000, "val": 1014, "test_2016_flickr": 1000, "test_2017_flickr": 1000,
             "test_2017_mscoco": 461}
    for split, n in sizes.items():
        ds = load_split(cfg.data, split)
        assert len(ds) == n
        assert ds[0]["src"] and ds[0]["tgt"]


def test_short_training_learns(tmp_path):
    cfg = load_config(ROOT / "data" / "configs" / "multi30k_de_en.yaml",
                      [f"data.path={DATA}", "data.max_dev_pairs=200", "train.max_steps=300",
                       "train.validate_every=300"])
    state = train(cfg, tmp_path / "model", quiet=True)
    assert state.best_bleu > 5.0, state.history
    assert state.step == 300
