"""The speed benchmark runs its phases and reports every figure the issue names."""

from __future__ import annotations

import json

from nmt.commands.speed import main
from nmt.config import dump_yaml
from nmt.train import train
from tests.helpers import toy_config, write_toy_corpus


def test_bench_speed_reports_all_keys(tmp_path, capsys):
    corpus = write_toy_corpus(tmp_path / "toy", n_train=300, n_dev=20)
    for side in ("xx", "yy"):
        (corpus / f"test.{side}").write_bytes((corpus / f"dev.{side}").read_bytes())
    cfg = toy_config(corpus, max_steps=4)
    cfg_file = tmp_path / "toy.yaml"
    cfg_file.write_text(dump_yaml(cfg), encoding="utf-8")
    train(cfg, tmp_path / "model", quiet=True)
    out = tmp_path / "speed.json"
    assert main(["--config", str(cfg_file), "--json", str(out), "--steps", "3", "--warmup", "1",
                 "--threads", "1", "--checkpoint", str(tmp_path / "model"), "--split",
                 "test"]) == 0
    result = json.loads(out.read_text(encoding="utf-8"))
    for key in ("matmul_peak_gflops", "train_tokens_per_s", "train_flops_per_token",
                "train_gflops", "train_peak_share", "train_peak_rss_mib",
                "decode_greedy_sents_per_s", "decode_beam5_sents_per_s", "decode_peak_rss_mib"):
        assert result[key] > 0, key
    # counted FLOPs per token are at least the output projection's forward + backward
    assert result["train_flops_per_token"] > 3 * 2 * 32 * 30
    assert result["train_peak_share"] == result["train_gflops"] / result["matmul_peak_gflops"]
    assert "train_tokens_per_s" in capsys.readouterr().out
