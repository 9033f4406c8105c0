"""BLEU benchmark: (train,) tune decoding on the dev set, decode every test set, score, record.

For a config naming a corpus and a direction it
- trains into the model directory (or resumes / reuses what is there);
- picks the beam size and length penalty on the dev split only (cased BLEU);
- decodes each test split with greedy search and with beam search, timing both;
- scores each with sacreBLEU: BLEU cased, BLEU lowercased, chrF, every value with its
  signature;
- writes `{name}.json` and the detokenized hypotheses `{name}.{split}.{greedy,beam}.txt`
  into the output folder, so anyone can rescore them with the `sacrebleu` command line.

With several weights files it evaluates their ensemble (`nmt.decoding.ensemble`) the same
way, and records each member: its training (minutes summed against a budget), and its own
dev and test scores with the ensemble's chosen beam settings.
"""

from __future__ import annotations

import dataclasses
import json
import platform
import subprocess
import time
from pathlib import Path

import torch

from nmt import api, checkpoint
from nmt.checkpoint import load_for_inference
from nmt.config import Config, DecodeConfig
from nmt.data.corpus import clean, load_split
from nmt.decoding.decode import make_search
from nmt.decoding.translator import Translator
from nmt.io import atomic_open
from nmt.metrics import corpus_scores


def git_commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True,
                             text=True, timeout=10, cwd=Path(__file__).parent)
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def machine_info() -> dict:
    return {"platform": platform.platform(), "processor": platform.processor() or "unknown",
            "cpu_count": torch.get_num_threads(), "torch": torch.__version__}


def load_pairs(cfg: Config, split: str) -> tuple[list[str], list[str]]:
    """Raw source and reference lines of a split, pairs with an empty side removed."""
    ds, _ = clean(load_split(cfg.data, split), split)
    return ds["src"], ds["tgt"]


def decode_split(translator: Translator, src: list[str]) -> tuple[list[str], dict]:
    start = time.perf_counter()
    results = translator.translate(src)
    seconds = time.perf_counter() - start
    hyps = [r.text for r in results]
    n_tokens = sum(len(h.tokens) + 1 for r in results for h in r.hyps)  # EOS included
    return hyps, {"seconds": round(seconds, 2), "sents_per_s": round(len(src) / seconds, 1),
                  "tgt_tokens_per_s": round(n_tokens / seconds, 1)}


def score_all(hyps: list[str], refs: list[str]) -> dict:
    cased = corpus_scores(hyps, [refs], metrics=("bleu", "chrf"))
    lower = corpus_scores(hyps, [refs], lowercase=True, metrics=("bleu",))
    return {"bleu": cased[0].to_dict(), "bleu_lc": lower[0].to_dict(), "chrf": cased[1].to_dict()}


def dev_score(model, vocabs, cfg: Config, decode: DecodeConfig) -> float:
    """Cased BLEU on the config's dev split, decoding as `decode` says."""
    src, refs = load_pairs(cfg, cfg.data.dev_split)
    translator = Translator(model, vocabs.src, vocabs.tgt, decode, make_search(decode))
    hyps, _ = decode_split(translator, src)
    return corpus_scores(hyps, [refs], metrics=("bleu",))[0].value


def tune_decoding(model, vocabs, cfg: Config, beams: list[int], penalties: list[str]):
    """The (beam size, length penalty) with the best cased dev BLEU (ties: the earlier one).

    Returns the chosen pair and every grid point's dev BLEU, keyed "beam K, LP".
    """
    results = {(beam, lp): dev_score(model, vocabs, cfg, dataclasses.replace(
        cfg.decode, beam_size=beam, length_penalty=lp)) for beam in beams for lp in penalties}
    best = max(results, key=lambda k: results[k])
    return best, {f"beam {k}, {lp}": v for (k, lp), v in results.items()}


def dev_bleu(weights: Path) -> float:
    """Cased dev BLEU of a weights file with greedy search (its config's dev split)."""
    model, cfg, vocabs = load_for_inference(weights)
    return dev_score(model, vocabs, cfg, dataclasses.replace(cfg.decode, beam_size=1))


def select_weights(model_dir: Path, last: int, log=print) -> tuple[Path, dict]:
    """best.pt, the average of the last `last` validations' weights, or the average of as
    many around the best validation, whichever has the highest dev BLEU (ties: the earlier
    of that order). Model selection on the dev split only; returns the chosen file and
    what was compared."""
    best = model_dir / "best.pt"
    windows = {}
    if last > 0:
        windows["averaged.pt"] = checkpoint.numbered(model_dir)[-last:]
        around = checkpoint.numbered_around_best(model_dir, last)
        if around != windows["averaged.pt"]:
            windows["averaged_best.pt"] = around
    windows = {name: files for name, files in windows.items() if len(files) >= 2}
    if not windows:
        return best, {"chosen": best.name, "candidates": {best.name: None},
                      "note": "fewer than 2 numbered checkpoints: nothing to average"}
    scores = {best.name: dev_bleu(best)}
    for name, files in windows.items():
        checkpoint.write_average(model_dir, files, model_dir / name)
        scores[name] = dev_bleu(model_dir / name)
    chosen = model_dir / max(scores, key=lambda k: scores[k])  # the first of equal scores
    log(f"dev BLEU (greedy): {scores}; evaluating {chosen.name}")
    return chosen, {"chosen": chosen.name, "candidates": scores,
                    "averaged": {name: [f.name for f in files] for name, files in windows.items()}}


def train_info(model_dir: Path) -> dict:
    """What the model directory's last checkpoint says about its training."""
    st = checkpoint.load(model_dir / "last.pt")["train_state"]
    return {"steps": st["step"], "epochs_done": st["epoch"],
            "wall_seconds": round(st["train_seconds"], 1), "best_dev_bleu": st["best_bleu"],
            "best_step": st["best_step"], "stopped": st["stopped"]}


def run_benchmark(weights: Path | list[Path], out_dir: Path, name: str, beams: list[int],
                  length_penalties: list[str], train_info: dict, log=print,
                  selection: dict | None = None, members: list[dict] | None = None) -> dict:
    """Evaluate `weights` (a .pt file inside a model directory), or the ensemble of several
    (`members`: each one's training and selection, recorded with its own scores)."""
    loaded = api.load(weights)  # what `translate` runs
    model, cfg, vocabs = loaded.decodable, loaded.cfg, loaded.vocabs
    (beam, lp), dev_bleu = tune_decoding(model, vocabs, cfg, beams, length_penalties)
    log(f"dev BLEU by beam size and length penalty: {dev_bleu}; chosen beam {beam}, {lp}")
    modes = {"greedy": dataclasses.replace(cfg.decode, beam_size=1),
             "beam": dataclasses.replace(cfg.decode, beam_size=beam, length_penalty=lp)}
    record = {"name": name, "weights": str(weights), "commit": git_commit(),
              "date": time.strftime("%Y-%m-%d"), "machine": machine_info(),
              "data": {"path": cfg.data.path, "src": cfg.data.src_lang, "tgt": cfg.data.tgt_lang},
              "train": train_info, "selection": selection,
              "decode": {m: dataclasses.asdict(d) for m, d in modes.items()},
              "dev_tuning": {"bleu": dev_bleu, "beam": beam, "length_penalty": lp},
              "test": {}}
    if members is not None:
        record["members"] = member_scores(loaded, members, modes["beam"], cfg, log)
        record["train_minutes_total"] = round(
            sum(m["train"]["wall_seconds"] for m in members) / 60, 1)
    for split in cfg.data.test_splits:
        src, refs = load_pairs(cfg, split)
        record["test"][split] = {"n": len(src)}
        for mode, decode in modes.items():
            translator = Translator(model, vocabs.src, vocabs.tgt, decode, make_search(decode))
            hyps, speed = decode_split(translator, src)
            with atomic_open(out_dir / f"{name}.{split}.{mode}.txt") as f:
                f.write("".join(h + "\n" for h in hyps))
            entry = {**score_all(hyps, refs), "speed": speed}
            record["test"][split][mode] = entry
            log(f"{split} {mode}: BLEU {entry['bleu']['value']:.2f} "
                f"(lc {entry['bleu_lc']['value']:.2f}) chrF {entry['chrf']['value']:.2f} "
                f"{speed['sents_per_s']} sents/s")
    with atomic_open(out_dir / f"{name}.json") as f:
        json.dump(record, f, indent=1, ensure_ascii=False)
        f.write("\n")
    return record


def member_scores(loaded: api.Loaded, members: list[dict], decode: DecodeConfig, cfg: Config,
                  log=print) -> list[dict]:
    """Each member alone, decoding as the ensemble's beam does: dev and test BLEU/chrF."""
    out = []
    for info, path in zip(members, loaded.names, strict=True):
        model, _, vocabs = load_for_inference(path)
        translator = Translator(model, vocabs.src, vocabs.tgt, decode, make_search(decode))
        scores = {}
        for split in [cfg.data.dev_split, *cfg.data.test_splits]:
            src, refs = load_pairs(cfg, split)
            hyps, _ = decode_split(translator, src)
            scores[split] = score_all(hyps, refs)
            log(f"member {path} {split}: BLEU {scores[split]['bleu']['value']:.2f}")
        out.append({**info, "weights": path, "beam": scores})
    return out


def summary_rows(record: dict) -> list[str]:
    """Markdown table rows: split, mode, BLEU, BLEU lc, chrF, sents/s."""
    rows = []
    for split, res in record["test"].items():
        for mode in ("greedy", "beam"):
            r = res[mode]
            rows.append(f"| {split} | {mode} | {r['bleu']['value']:.2f} | "
                        f"{r['bleu_lc']['value']:.2f} | {r['chrf']['value']:.2f} | "
                        f"{r['speed']['sents_per_s']} |")
    return rows
