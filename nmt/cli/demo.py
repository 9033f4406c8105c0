"""The quick-start demo behind `scripts/demo.py`: corpus -> training -> test BLEU -> sample."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from nmt.cli.guard import run_guarded
from nmt.config import load_config
from nmt.io import atomic_open, read_lines

CONFIG = Path(__file__).resolve().parents[2] / "data" / "configs" / "demo.yaml"
SAMPLE = 8


def run(args: argparse.Namespace) -> int:
    from nmt.checkpoint import load_model
    from nmt.cpu import accelerate
    from nmt.data.demo_corpus import write_corpus
    from nmt.decoding.translator import Translator
    from nmt.metrics import corpus_scores, format_score
    from nmt.training.run import train

    out = Path(args.out)
    data_dir, model_dir = out / "data", out / "model"
    if not (data_dir / "test.de").is_file():
        write_corpus(data_dir, seed=args.seed)
        print(f"corpus: generated in {data_dir}")
    cfg = load_config(args.config, [f"data.path={data_dir}"] + args.set)
    start = time.perf_counter()
    resume = (model_dir / "last.pt").is_file()
    state = train(None if resume else cfg, model_dir, resume=resume, quiet=args.quiet)
    print(f"training: {state.step} steps, {state.train_seconds:.0f} s in all "
          f"({time.perf_counter() - start:.0f} s now), best dev BLEU {state.best_bleu:.1f}")

    model, cfg, vocabs = load_model(model_dir)
    accelerate(model)  # the CPU kernels, as in training (no fused decoding step)
    translator = Translator(model, vocabs.src, vocabs.tgt, cfg.decode)
    for split in cfg.data.test_splits:
        src = read_lines(data_dir / f"{split}.{cfg.data.src_lang}")
        ref = read_lines(data_dir / f"{split}.{cfg.data.tgt_lang}")
        hyps = [t.text for t in translator.translate(src)]
        with atomic_open(out / f"{split}.hyp.{cfg.data.tgt_lang}") as f:
            f.write("".join(h + "\n" for h in hyps))
        search = f"beam {cfg.decode.beam_size}" if cfg.decode.beam_size > 1 else "greedy"
        for score in corpus_scores(hyps, [ref], metrics=("bleu", "chrf")):
            print(f"{split} ({search}): {format_score(score)}")

    sample_src = out / f"sample.{cfg.data.src_lang}"
    with atomic_open(sample_src) as f:
        f.write("".join(s + "\n" for s in read_lines(data_dir / "test.en")[:SAMPLE]))
    sample = read_lines(sample_src)
    print(f"\nsample translations ({sample_src}):")
    for line, t in zip(sample, translator.translate(sample), strict=True):
        print(f"  {line}\n    -> {t.text}")
    print(f"\nmodel directory: {model_dir}\ntranslate a file with:\n  .venv/bin/nmt translate "
          f"--model-dir {model_dir} --input {sample_src}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="demo", description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="runs/demo", help="output folder (default runs/demo)")
    parser.add_argument("--config", default=str(CONFIG), help="default data/configs/demo.yaml")
    parser.add_argument("--seed", type=int, default=1, help="corpus seed")
    parser.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE")
    parser.add_argument("--quiet", action="store_true")
    return run_guarded(run, parser.parse_args(argv))
