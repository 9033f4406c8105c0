"""The BLEU benchmark writes rescorable hypotheses and a JSON record with signatures."""

from __future__ import annotations

import json

import pytest
import sacrebleu
import torch

from nmt.cli.benchmark import main
from nmt.config import dump_yaml
from tests.helpers import toy_config, write_toy_corpus


def test_benchmark_record_and_hypothesis_files(tmp_path, capsys):
    corpus = write_toy_corpus(tmp_path / "toy", n_train=200, n_dev=20)
    for side in ("xx", "yy"):  # a test split: the dev files under another name
        (corpus / f"test.{side}").write_bytes((corpus / f"dev.{side}").read_bytes())
    cfg_file = tmp_path / "toy.yaml"
    cfg_file.write_text(dump_yaml(toy_config(corpus, max_steps=6)).replace(
        "test_splits: []", "test_splits:\n  - test"), encoding="utf-8")
    out = tmp_path / "bench"
    assert main(["--config", str(cfg_file), "--model-dir", str(tmp_path / "model"), "--name",
                 "toy-xx-yy", "--out", str(out), "--beams", "2,3", "--length-penalties",
                 "none,gnmt:1.0", "--quiet"]) == 0
    record = json.loads((out / "toy-xx-yy.json").read_text(encoding="utf-8"))
    assert record["train"]["steps"] == 6
    tuning = record["dev_tuning"]
    assert set(tuning["bleu"]) == {f"beam {k}, {lp}" for k in (2, 3) for lp in ("none", "gnmt:1.0")}
    assert tuning["bleu"][f"beam {tuning['beam']}, {tuning['length_penalty']}"] == max(
        tuning["bleu"].values())
    assert record["decode"]["beam"]["beam_size"] == tuning["beam"]
    test = record["test"]["test"]
    assert test["n"] == 20
    refs = (corpus / "test.yy").read_text(encoding="utf-8").splitlines()
    for mode in ("greedy", "beam"):
        hyps = (out / f"toy-xx-yy.test.{mode}.txt").read_text(encoding="utf-8").splitlines()
        assert len(hyps) == 20
        assert test[mode]["bleu"]["value"] == sacrebleu.corpus_bleu(hyps, [refs]).score
        assert "case:lc" in test[mode]["bleu_lc"]["signature"]
        assert test[mode]["chrf"]["signature"].startswith("nrefs:1|case:mixed")
        assert test[mode]["speed"]["sents_per_s"] > 0
    assert "| test | beam |" in capsys.readouterr().out


def _trained(tmp_path, **train):
    from nmt.training.run import train as run_train

    corpus = write_toy_corpus(tmp_path / "toy", n_train=120, n_dev=10)
    model_dir = tmp_path / "model"
    run_train(toy_config(corpus, **train), model_dir, quiet=True)
    return model_dir


def test_select_weights_averages_last_n_and_picks_by_dev_bleu(tmp_path, monkeypatch):
    import torch

    from nmt import checkpoint
    from nmt.bench import bleu as benchmark

    model_dir = _trained(tmp_path, max_steps=8, validate_every=2, keep_checkpoints=3)
    files = checkpoint.numbered(model_dir)
    assert [f.name for f in files] == ["step4.pt", "step6.pt", "step8.pt"]
    scripted = {"best.pt": 30.0, "averaged.pt": 31.0}
    monkeypatch.setattr(benchmark, "dev_bleu", lambda path: scripted[path.name])
    monkeypatch.setattr(benchmark.checkpoint, "numbered_around_best", lambda d, n: files[-n:])
    chosen, info = benchmark.select_weights(model_dir, last=2, log=lambda *_: None)
    assert chosen == model_dir / "averaged.pt"
    assert info["averaged"] == {"averaged.pt": ["step6.pt", "step8.pt"]}  # one window
    avg = checkpoint.load(chosen)["model"]
    a, b = (checkpoint.load(f)["model"] for f in files[1:])
    for k in avg:
        torch.testing.assert_close(avg[k], (a[k] + b[k]) / 2)
    scripted["averaged.pt"] = 30.0  # a tie keeps best.pt
    chosen, info = benchmark.select_weights(model_dir, last=2, log=lambda *_: None)
    assert chosen == model_dir / "best.pt" and info["candidates"]["averaged.pt"] == 30.0


def test_select_weights_without_numbered_checkpoints_uses_best(tmp_path):
    from nmt.bench import bleu as benchmark

    model_dir = _trained(tmp_path, max_steps=4, validate_every=2)
    chosen, info = benchmark.select_weights(model_dir, last=5, log=lambda *_: None)
    assert chosen == model_dir / "best.pt" and not (model_dir / "averaged.pt").exists()


def test_bad_search_options_fail_before_training(tmp_path, capsys):
    model_dir = tmp_path / "model"
    for flags, said in ((["--length-penalties", "gnmt:0.6,gnmt:x"], "gnmt:x"),
                        (["--beams", "5,0"], "--beams"), (["--average", "-1"], "--average"),
                        (["--num-threads", "0"], "--num-threads")):
        assert main(["--config", "does-not-matter.yaml", "--model-dir", str(model_dir),
                     "--name", "x", *flags]) == 2
        err = capsys.readouterr().err.strip()
        assert err.startswith("error:") and said in err and len(err.splitlines()) == 1
    assert not model_dir.exists()  # nothing was trained


def test_resumed_benchmark_applies_train_overrides_and_rejects_others(tmp_path, capsys):
    corpus = write_toy_corpus(tmp_path / "toy", n_train=100, n_dev=10)
    cfg_file = tmp_path / "toy.yaml"
    cfg_file.write_text(dump_yaml(toy_config(corpus, max_steps=2)), encoding="utf-8")
    model_dir, out = tmp_path / "model", tmp_path / "bench"
    base = ["--config", str(cfg_file), "--model-dir", str(model_dir), "--name", "toy",
            "--out", str(out), "--beams", "2", "--length-penalties", "none", "--quiet"]
    assert main(base) == 0
    assert main([*base, "--set", "model.emb_size=8"]) == 2
    assert "only train.* keys" in capsys.readouterr().err
    assert main([*base, "--set", "train.max_steps=4"]) == 0
    assert json.loads((out / "toy.json").read_text(encoding="utf-8"))["train"]["steps"] == 4


def test_ensemble_benchmark_records_members_and_their_minutes(tmp_path, capsys):
    corpus = write_toy_corpus(tmp_path / "toy", n_train=120, n_dev=10)
    for side in ("xx", "yy"):
        (corpus / f"test.{side}").write_bytes((corpus / f"dev.{side}").read_bytes())
    cfg_file = tmp_path / "toy.yaml"
    cfg_file.write_text(dump_yaml(toy_config(corpus, max_steps=4)).replace(
        "test_splits: []", "test_splits:\n  - test"), encoding="utf-8")
    dirs = [tmp_path / f"m{seed}" for seed in (3, 4)]
    for seed, d in zip((3, 4), dirs, strict=True):
        assert main(["--config", str(cfg_file), "--model-dir", str(d), "--name", f"m{seed}",
                     "--out", str(tmp_path / "single"), "--set", f"train.seed={seed}",
                     "--quiet"]) == 0
    out = tmp_path / "bench"
    threads = torch.get_num_threads()
    try:
        assert main(["--ensemble", *map(str, dirs), "--name", "ens", "--out", str(out),
                     "--beams", "2", "--length-penalties", "none", "--quiet",
                     "--num-threads", "2"]) == 0
        assert torch.get_num_threads() == 2  # the evaluation ran on the threads asked for
        # (tests run on one thread: tests/conftest.py)
    finally:
        torch.set_num_threads(threads)
    record = json.loads((out / "ens.json").read_text(encoding="utf-8"))
    assert [m["model_dir"] for m in record["members"]] == [str(d) for d in dirs]
    seconds = [m["train"]["wall_seconds"] for m in record["members"]]
    assert record["train_minutes_total"] == round(sum(seconds) / 60, 1)
    for m, seed in zip(record["members"], (3, 4), strict=True):
        single = json.loads((tmp_path / "single" / f"m{seed}.json").read_text())
        # a member alone, decoded as the ensemble's beam, scores as its own benchmark did
        assert set(m["beam"]) == {"dev", "test"}
        assert m["beam"]["test"]["bleu"]["signature"] == single["test"]["test"]["beam"][
            "bleu"]["signature"]
    hyps = (out / "ens.test.beam.txt").read_text(encoding="utf-8").splitlines()
    assert len(hyps) == 10
    assert "minutes in all" in capsys.readouterr().out
    assert main(["--ensemble", str(tmp_path / "nope"), "--name", "x", "--out", str(out)]) == 2
    assert main(["--ensemble", *map(str, dirs), "--model-dir", str(dirs[0]), "--name", "x"]) == 2


def test_select_weights_tries_the_window_around_the_best_validation(tmp_path, monkeypatch):
    """Averaging the validations around the best one is a candidate of its own."""
    import torch

    from nmt import checkpoint
    from nmt.bench import bleu as benchmark

    model_dir = _trained(tmp_path, max_steps=8, validate_every=2, keep_checkpoints=2)
    last = checkpoint.load(model_dir / "last.pt")
    steps = [h["step"] for h in last["train_state"]["history"]]
    assert steps == [2, 4, 6, 8]
    # make step 4 the best validation: its window is steps 4 and 6 (one more after the best)
    for h in last["train_state"]["history"]:
        h["dev_bleu"] = {2: 1.0, 4: 9.0, 6: 3.0, 8: 2.0}[h["step"]]
    checkpoint.save(last, model_dir / "last.pt")
    for step in (4, 6):  # what training kept (see test_numbered_checkpoints_keep_the_best)
        weights = {k: v + step for k, v in last["model"].items()}
        checkpoint.save({"model": weights, "config": last["config"]}, model_dir / f"step{step}.pt")
    assert [f.name for f in checkpoint.numbered_around_best(model_dir, 2)] == \
        ["step4.pt", "step6.pt"]
    scripted = {"best.pt": 30.0, "averaged.pt": 31.0, "averaged_best.pt": 32.0}
    monkeypatch.setattr(benchmark, "dev_bleu", lambda path: scripted[path.name])
    chosen, info = benchmark.select_weights(model_dir, last=2, log=lambda *_: None)
    assert chosen == model_dir / "averaged_best.pt"
    assert info["averaged"] == {"averaged.pt": ["step6.pt", "step8.pt"],
                                "averaged_best.pt": ["step4.pt", "step6.pt"]}
    avg = checkpoint.load(chosen)["model"]
    for k in avg:
        torch.testing.assert_close(avg[k], last["model"][k] + 5)


@pytest.mark.parametrize("steps, best, n, window", [
    ([1, 2, 3, 4, 5, 6, 7, 8], 3, 2, [3, 4]),
    ([1, 2, 3, 4, 5, 6, 7, 8], 3, 3, [2, 3, 4]),
    ([1, 2, 3, 4, 5, 6, 7, 8], 3, 5, [1, 2, 3, 4, 5]),
    ([1, 2, 3, 4, 5, 6, 7, 8], 1, 3, [1, 2, 3]),
    ([1, 2, 3, 4, 5, 6, 7, 8], 8, 3, [6, 7, 8]),
    ([1, 2, 3], 2, 5, [1, 2, 3]),
])
def test_window_around_the_best(steps, best, n, window):
    from nmt.checkpoint import around

    assert around(steps, best, n) == window
