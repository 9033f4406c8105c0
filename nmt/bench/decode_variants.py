"""Decoding speed and quality of the inference levers, side by side on one test split.

Variants (comma-separated in `bench_speed --variants`):
- `plain`: the model as trained (unfused decoder step);
- `fused`: `prepare_for_inference` (what `translate` runs by default);
- `int8`: fused, with int8 dynamic quantization (`translate --quantize`);
- `shortlist`, `int8+shortlist`: the above scoring only each batch's shortlist candidates
  (`translate --shortlist`; needs DIR/shortlist.pt from `nmt shortlist`).
For each, greedy and beam-5 decoding are timed and scored (cased sacreBLEU against the split's
references), and compared with `plain`: the share of output lines that are identical.
"""

from __future__ import annotations

import dataclasses

from nmt.config import Config
from nmt.errors import NmtError

VARIANTS = ("plain", "fused", "int8", "shortlist", "int8+shortlist")


def parse_variants(text: str) -> list[str]:
    names = [v.strip() for v in text.split(",") if v.strip()]
    unknown = [v for v in names if v not in VARIANTS]
    if unknown or not names:
        raise NmtError(f"--variants {text!r}: choose from {', '.join(VARIANTS)}")
    return names


def variant_model(checkpoint: str, name: str):
    """(model, config, vocabularies, shortlist or None) of variant `name`."""
    from nmt.checkpoint import checkpoint_path, load_for_inference, load_model
    from nmt.cpu import accelerate
    from nmt.decoding.shortlist import Shortlist

    if name == "plain":  # the kernels, without the decoding preparation (fused step, packing)
        model, cfg, vocabs = load_model(checkpoint)
        accelerate(model).eval()
    else:
        model, cfg, vocabs = load_for_inference(checkpoint, quantize=name.startswith("int8"))
    shortlist = (Shortlist.beside(checkpoint_path(checkpoint).parent, vocabs)
                 if "shortlist" in name else None)
    return model, cfg, vocabs, shortlist


def variants_phase(cfg: Config, checkpoint: str, split: str, names: list[str]) -> dict:
    """`decode_variants`: {variant: {mode: speed, BLEU, share identical to plain}}."""
    from nmt.bench.bleu import decode_split, load_pairs
    from nmt.decoding.translator import Translator
    from nmt.metrics import corpus_scores

    src = refs = None
    results: dict[str, dict] = {}
    reference: dict[str, list[str]] = {}
    for name in ["plain", *[n for n in names if n != "plain"]]:  # plain first: the reference
        model, model_cfg, vocabs, shortlist = variant_model(checkpoint, name)
        if src is None:
            src, refs = load_pairs(dataclasses.replace(model_cfg, data=cfg.data), split)
        results[name] = {}
        for mode, beam in (("greedy", 1), ("beam5", 5)):
            decode = dataclasses.replace(model_cfg.decode, beam_size=beam)
            translator = Translator(model, vocabs.src, vocabs.tgt, decode, shortlist=shortlist)
            decode_split(translator, src[:8])  # warm-up
            hyps, speed = decode_split(translator, src)
            bleu = corpus_scores(hyps, [refs], metrics=("bleu",))[0]
            reference.setdefault(mode, hyps)
            same = sum(a == b for a, b in zip(hyps, reference[mode], strict=True))
            results[name][mode] = {
                "sents_per_s": speed["sents_per_s"], "tokens_per_s": speed["tgt_tokens_per_s"],
                "seconds": speed["seconds"], "bleu": round(bleu.value, 2),
                "bleu_signature": bleu.signature, "same_as_plain": round(same / len(src), 4)}
    if "plain" not in names:
        results.pop("plain")
    return {"decode_variants": results}


def format_variants(variants: dict) -> list[str]:
    """Markdown rows: variant, greedy and beam-5 sents/s, BLEU, share identical to plain."""
    rows = ["| variant | greedy sents/s | greedy BLEU | beam5 sents/s | beam5 BLEU | "
            "beam5 same as plain |", "|---|---|---|---|---|---|"]
    for name, r in variants.items():
        g, b = r["greedy"], r["beam5"]
        rows.append(f"| {name} | {g['sents_per_s']} | {g['bleu']:.2f} | {b['sents_per_s']} | "
                    f"{b['bleu']:.2f} | {b['same_as_plain']:.1%} |")
    return rows
