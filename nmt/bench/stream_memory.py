"""Peak resident memory of reading a generated corpus: streaming vs in memory.

For each corpus size (generated with the demo generator into --work, not committed) one
child process makes one full epoch of training batches (tokenize, filter, shuffle, batch)
with the streaming pipeline, and, for sizes up to --max-in-memory, another with in-memory
loading; then a child that trains a small model for --train-steps steps on the streamed
corpus (validation and checkpoints included). Each child's peak RSS comes from the kernel
(os.wait4). Usage:

    python scripts/bench_stream_memory.py --sizes 100000 1000000 5000000 --work runs/streammem
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from nmt.errors import NmtError

CHILD = """
import sys, time
from nmt.config import from_dict
from nmt.data.vocab import load_vocabs
from nmt.data.batching import BatchIterator
from nmt.data.corpus import prepare_split
from nmt.data.stream import StreamingBatches
data, model_dir, mode = sys.argv[1:4]
cfg = from_dict({"data": {"path": data, "src_lang": "en", "tgt_lang": "de", "dev_split": "dev",
                          "streaming": mode == "stream"}})
v = load_vocabs(model_dir, True)
start, n = time.perf_counter(), 0
if mode == "stream":
    for b in StreamingBatches(cfg.data, v.src, v.tgt, 2048, 1).epoch(0):
        n += b.n_tokens
else:
    ds, _ = prepare_split(cfg.data, "train", v.src, v.tgt, train=True)
    it = BatchIterator(ds, 2048, 1)
    for b in it.epoch(0):
        n += it.batch(b).n_tokens
print(n, time.perf_counter() - start)
"""

TRAIN_CHILD = """
import sys, time
from nmt.config import from_dict
from nmt.checkpoint import load
from nmt.training.run import train
data, out, steps = sys.argv[1], sys.argv[2], int(sys.argv[3])
cfg = from_dict({"data": {"path": data, "src_lang": "en", "tgt_lang": "de", "dev_split": "dev",
                          "streaming": True},
                 "vocab": {"vocab_size": 1000, "max_sentences": 100_000},
                 "model": {"emb_size": 64, "enc_hidden": 64, "dec_hidden": 128},
                 "train": {"batch_tokens": 2048, "max_steps": steps, "validate_every": steps,
                           "checkpoint_every": steps, "num_threads": 1}})
start = time.perf_counter()
train(cfg, out, quiet=True)
print(load(out + "/last.pt")["train_state"]["target_tokens"], time.perf_counter() - start)
"""


def run_child(args: list[str]) -> tuple[str, float]:
    """(stdout, peak RSS in MiB) of a child Python process."""
    proc = subprocess.Popen([sys.executable, *args], stdout=subprocess.PIPE, text=True)
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    if os.waitstatus_to_exitcode(status) != 0:
        raise NmtError(f"child failed: {args[:3]}")
    return out.strip(), usage.ru_maxrss / 1024


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000, 5_000_000])
    parser.add_argument("--work", default="runs/streammem")
    parser.add_argument("--max-in-memory", type=int, default=1_000_000)
    parser.add_argument("--train-steps", type=int, default=100,
                        help="steps of the streaming training run per size (0: none)")
    parser.add_argument("--json", default=None, help="write the results here")
    args = parser.parse_args(argv)
    from nmt.config import from_dict
    from nmt.data.demo_corpus import write_corpus
    from nmt.training.trainer import prepare_model_dir

    work = Path(args.work)
    model_dir = work / "vocab"
    results = []
    for size in args.sizes:
        data = work / f"corpus_{size}"
        if not (data / "train.de").is_file():
            t0 = time.perf_counter()
            write_corpus(data, seed=1, n_train=size, n_dev=200, n_test=200)
            print(f"generated {size:,} pairs in {time.perf_counter() - t0:.0f} s", flush=True)
        if not (model_dir / "spm.model").is_file():
            cfg = from_dict({"data": {"path": str(data), "src_lang": "en", "tgt_lang": "de",
                                      "dev_split": "dev", "streaming": True},
                             "vocab": {"vocab_size": 1000, "max_sentences": 100_000}})
            prepare_model_dir(cfg, model_dir, quiet=True)
        row = {"pairs": size}
        modes = ["stream"] + (["memory"] if size <= args.max_in_memory else [])
        modes += ["train"] if args.train_steps > 0 else []
        for mode in modes:
            if mode == "train":
                out_dir = work / f"train_{size}"
                shutil.rmtree(out_dir, ignore_errors=True)
                child = ["-c", TRAIN_CHILD, str(data), str(out_dir), str(args.train_steps)]
            else:
                child = ["-c", CHILD, str(data), str(model_dir), mode]
            out, rss = run_child(child)
            tokens, seconds = out.split()
            row[mode] = {"peak_rss_mib": round(rss, 1), "target_tokens": int(tokens),
                         "seconds": round(float(seconds), 1)}
            print(f"{size:,} pairs, {mode}: peak RSS {rss:.0f} MiB, {int(tokens):,} target "
                  f"tokens in {float(seconds):.0f} s", flush=True)
        results.append(row)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
