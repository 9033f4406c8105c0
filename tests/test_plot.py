"""`nmt plot`: training curves from metrics.jsonl, as a self-contained HTML page and a PNG."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from nmt.cli import main as nmt_main
from nmt.errors import NmtError
from nmt.training.curves import MetricsLog, read_metrics
from nmt.training.plot import PANELS, _ticks, load_runs, render_html


def fake_run(path: Path, bleus: list[float], minutes_per_step: float) -> Path:
    path.mkdir(parents=True)
    log = MetricsLog(path)
    for step in range(1, 11):
        log.write("train", step=step, epoch=step / 10, minutes=step * minutes_per_step,
                  lr=1e-3, loss=5.0 / step, tokens_per_s=1000.0)
        if step % 5 == 0:
            log.write("validation", step=step, epoch=step / 10,
                      minutes=step * minutes_per_step, lr=1e-3, dev_bleu=bleus[step // 5 - 1],
                      best=True)
    log.write("stop", step=10, epoch=1.0, minutes=10 * minutes_per_step, lr=1e-3,
              dev_bleu=bleus[-1] + 1)
    return path


def test_html_page_draws_every_run_in_every_panel(tmp_path):
    runs = load_runs([fake_run(tmp_path / "a" / "model", [10.0, 20.0], 0.5),
                      fake_run(tmp_path / "b" / "model", [12.0, 15.0], 1.0)])
    assert [r.name for r in runs] == ["model", "b/model"]  # made unique
    page = render_html(runs)
    assert page.count("<svg") == len(PANELS) == 4
    for i in range(2):  # one line per run per panel
        assert page.count(f'class="run{i}"') == 4
    # the loss line of run a against updates: 10 points, the last at the lowest loss
    line = re.search(r'class="run0"[^>]*points="([^"]+)"', page).group(1).split()
    assert len(line) == 10
    ys = [float(p.split(",")[1]) for p in line]
    assert ys == sorted(ys)  # SVG y grows downwards: falling loss = rising y
    # validations as dots with their value; the stop as a hollow dot; the best in the table
    assert "model: 5, 10.00" in page and "(stop): 10, 21.00" in page
    assert "<td>21.00 (update 10)</td>" in page
    # self-contained: no script, no URL of any kind
    assert "<script" not in page and "http" not in page and "//" not in page


def test_cli_writes_html_and_png(tmp_path, capsys):
    a = fake_run(tmp_path / "a", [1.0, 2.0], 0.1)
    out, png = tmp_path / "curves.html", tmp_path / "curves.png"
    assert nmt_main(["plot", str(a), "--out", str(out), "--png", str(png)]) == 0
    assert out.read_text().startswith("<!DOCTYPE html>")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert nmt_main(["plot", str(tmp_path / "nope")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error: ") and "nope/metrics.jsonl: not found" in err[-1]


def test_malformed_metrics_line_is_named(tmp_path):
    d = fake_run(tmp_path / "a", [1.0, 2.0], 0.1)
    with open(d / "metrics.jsonl", "a", encoding="utf-8") as f:
        f.write('{"event": "train", "step": "x"}\n')
    n = len((d / "metrics.jsonl").read_text().splitlines())
    with pytest.raises(NmtError, match=rf"metrics\.jsonl:{n}: a record needs an integer 'step'"):
        read_metrics(d)


def test_truncate_after_drops_the_lost_records(tmp_path):
    d = fake_run(tmp_path / "a", [1.0, 2.0], 0.1)
    MetricsLog(d).truncate_after(6)
    records = read_metrics(d)
    assert max(r["step"] for r in records) == 6
    assert [r["event"] for r in records if r["step"] == 5] == ["train", "validation"]
    assert json.loads((d / "metrics.jsonl").read_text().splitlines()[0])["step"] == 1


def test_ticks_are_round_and_cover_the_range():
    assert _ticks(0, 10) == [0, 2, 4, 6, 8, 10]
    assert _ticks(0.3, 0.92) == pytest.approx([0.4, 0.6, 0.8])
    assert _ticks(5, 5) == [5]


def test_tensorboard_option_names_its_install_command(tmp_path, monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_tensorboard(name, *args, **kwargs):
        if name.startswith("torch.utils.tensorboard"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_tensorboard)
    with pytest.raises(NmtError, match=r"train\.tensorboard: true needs the tensorboard "
                                       r"package: .*pip install -e '\.\[tensorboard\]'"):
        MetricsLog(tmp_path, tensorboard=True)


def test_training_writes_tensorboard_scalars_when_asked(tmp_path):
    pytest.importorskip("tensorboard")  # in the test extra; optional for users
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from nmt.training.run import train
    from tests.helpers import toy_config, write_toy_corpus

    out = tmp_path / "model"
    train(toy_config(write_toy_corpus(tmp_path / "toy"), max_steps=6, tensorboard=True), out,
          quiet=True)
    events = EventAccumulator(str(out / "runs"))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    assert {"train/loss", "train/tokens_per_s", "validation/dev_bleu", "stop/dev_bleu"} <= tags
    losses = [(e.step, e.value) for e in events.Scalars("train/loss")]
    expected = [(r["step"], r["loss"]) for r in read_metrics(out) if r["event"] == "train"]
    assert [s for s, _ in losses] == [s for s, _ in expected]
    assert [v for _, v in losses] == pytest.approx([v for _, v in expected], rel=1e-6)
