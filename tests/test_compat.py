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
    saved = torch.load(OLD / "best.pt", map_location="cpu", weights_only=True)["model"]
    assert cfg.model.cell == "lstm"  # the default for configs that predate the key
    assert set(model.state_dict()) == set(saved)
    for name, tensor in model.state_dict().items():
        assert torch.equal(tensor, saved[name]), name


class _Payload:
    """Unpickling this runs a command: what a malicious downloaded checkpoint would carry."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        import os

        return os.system, (f"touch {self.marker}",)


def test_a_checkpoint_carrying_code_is_refused_not_run(tmp_path, capsys):
    model_dir = tmp_path / "model"
    shutil.copytree(OLD, model_dir)
    marker = tmp_path / "ran"
    state = torch.load(OLD / "best.pt", map_location="cpu", weights_only=True)
    torch.save({**state, "extra": _Payload(marker)}, model_dir / "best.pt")
    assert translate(["--checkpoint", str(model_dir), "--input", str(OLD / "input.txt"),
                      "--output", str(tmp_path / "out.txt"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"error: {model_dir / 'best.pt'}: refused") and err.count("\n") == 1
    assert not marker.exists() and not (tmp_path / "out.txt").exists()
