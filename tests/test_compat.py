"""Model directories written before the package redesign still load and translate the same.

`tests/data/old_model_dir` was trained and its expected outputs written by the code at
2f01669 (its README says how); `translate` must give the same bytes today.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from nmt.checkpoint import load_model
from nmt.cli.translate import main as translate

OLD = Path(__file__).parent / "data" / "old_model_dir"


@pytest.mark.parametrize("beam,expected", [(5, "expected.beam5.txt"), (1, "expected.greedy.txt")])
def test_old_model_directory_translates_byte_identically(tmp_path, beam, expected):
    model_dir = tmp_path / "model"
    shutil.copytree(OLD, model_dir)
    out = tmp_path / "out.txt"
    assert translate(["--checkpoint", str(model_dir), "--input", str(OLD / "input.txt"),
                      "--output", str(out), "--beam", str(beam), "--quiet"]) == 0
    assert out.read_bytes() == (OLD / expected).read_bytes()


def test_old_weights_load_into_the_plain_model_with_every_key():
    model, cfg, _ = load_model(OLD)
    saved = torch.load(OLD / "best.pt", map_location="cpu", weights_only=False)["model"]
    assert cfg.model.cell == "lstm"  # the default for configs that predate the key
    assert set(model.state_dict()) == set(saved)
    for name, tensor in model.state_dict().items():
        assert torch.equal(tensor, saved[name]), name
