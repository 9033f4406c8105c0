"""The Python API: load a model (or an ensemble) once, translate lists of lines.

`Translator.load(model_dir)` then `translate([...], beam=5, nbest=1, alignments=False,
prefix=None)` (or `sample=True, ...`) returns typed `Result`s; `load` is the loader below
it that the command line and the benchmarks share (one model or an ensemble, int8 weights
and shortlists as asked).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nmt.alignment.extract import hypothesis_alignment
from nmt.checkpoint import checkpoint_path, load_for_inference, load_model
from nmt.config import Config, DecodeConfig, check_value
from nmt.cpu import accelerate
from nmt.data.vocab import Vocabs
from nmt.decoding.decode import make_search
from nmt.decoding.ensemble import Ensemble, check_members
from nmt.decoding.sampling import Sampling
from nmt.decoding.search import Decodable, Hypothesis
from nmt.decoding.shortlist import Shortlist
from nmt.decoding.translator import Translator as DecodingTranslator
from nmt.errors import NmtError
from nmt.model.seq2seq import Seq2Seq
from nmt.training.device import resolve_device


@dataclass
class Loaded:
    """decodable: what search runs (the model, under its shortlist, or the ensemble);
    models: the members' plain models; cfg, vocabs: member 0's (the source side read,
    the decoding defaults) with the target vocabulary all members share."""

    decodable: Decodable
    models: list[Seq2Seq]
    cfg: Config
    vocabs: Vocabs
    names: list[str]
    has_shortlist: bool = False

    @property
    def is_ensemble(self) -> bool:
        return len(self.models) > 1


def load(checkpoints: str | Path | Sequence[str | Path], *, quantize: bool = False,
         shortlist: bool = False, weights: Sequence[float] | None = None,
         combine: str = "prob", fused: bool = True) -> Loaded:
    """Model directories (or .pt files in them) ready to decode: one model, or with several
    an `Ensemble` (`weights`, `combine`: see `nmt.decoding.ensemble`). `shortlist` uses each
    directory's shortlist.pt (merged per batch in an ensemble). `fused=False` attaches the
    training kernels only (no fused decoding step: what alignment uses)."""
    paths = [checkpoints] if isinstance(checkpoints, (str, Path)) else list(checkpoints)
    names = [str(p) for p in paths]
    members = [load_for_inference(p, quantize=quantize) if fused else _load_plain(p)
               for p in paths]
    models = [m for m, _, _ in members]
    vocabs = [v for _, _, v in members]
    check_members([v.tgt for v in vocabs], names)
    decodables = []
    for path, model, vocab in zip(paths, models, vocabs, strict=True):
        if shortlist:
            decodables.append(Shortlist.beside(checkpoint_path(path).parent, vocab)
                              .restrict(model))
        else:
            decodables.append(model)
    if len(paths) == 1 and weights is None:
        decodable = decodables[0]
    else:
        decodable = Ensemble(decodables, [v.src for v in vocabs], weights, combine)
    return Loaded(decodable, models, members[0][1], vocabs[0], names, shortlist)


def _load_plain(path: str | Path) -> tuple[Seq2Seq, Config, Vocabs]:
    model, cfg, vocabs = load_model(path)
    return accelerate(model), cfg, vocabs  # the CPU kernels, as in training


# ---------------------------------------------------------------------------- the Python API

@dataclass(frozen=True)
class Alignment:
    """Word-level attention of one translation: `matrix[j][i]` is target word j's weight on
    source word i (rows sum to 1, or are all 0); `links` the hard alignment (i, j) pairs,
    argmax source word per target word (Pharaoh order: source, target)."""

    src_words: list[str]
    tgt_words: list[str]
    matrix: list[list[float]]
    links: list[tuple[int, int]]


@dataclass(frozen=True)
class Candidate:
    """One translation: detokenized `text`, its `score` (what search ranked by), the target
    subword `tokens`, and with `alignments=True` its `alignment`."""

    text: str
    score: float
    tokens: list[str]
    alignment: Alignment | None = None


@dataclass(frozen=True)
class Result:
    """The translation(s) of one input line: `candidates` best first (`nbest` of them; an
    empty line has empty candidates). `text`, `score`, `tokens`, `alignment`: the best's."""

    source: str
    candidates: list[Candidate]

    @property
    def best(self) -> Candidate:
        return self.candidates[0]

    @property
    def text(self) -> str:
        return self.best.text

    @property
    def score(self) -> float:
        return self.best.score

    @property
    def tokens(self) -> list[str]:
        return self.best.tokens

    @property
    def alignment(self) -> Alignment | None:
        return self.best.alignment


class Translator:
    """A model (or an ensemble) loaded once, translating lists of lines.

    >>> from nmt import Translator
    >>> tr = Translator.load("runs/demo/model")
    >>> tr.translate(["a man rides a horse."], beam=5)[0].text

    Every call decodes as `nmt translate` does with the same options (same output); the
    object holds no global state, so several translators (other models) live side by side.
    """

    def __init__(self, loaded: Loaded, device: str = "cpu"):
        self.loaded, self.device = loaded, device

    @classmethod
    def load(cls, model_dir: str | Path | Sequence[str | Path], *, quantize: bool = False,
             shortlist: bool = False, device: str = "auto",
             weights: Sequence[float] | None = None, combine: str = "prob") -> Translator:
        """A model directory (or several: an ensemble). `device`: "auto" (CUDA if there is
        one), "cpu", "cuda" or "cuda:N"; `quantize` and `shortlist` as `nmt translate`'s."""
        device = resolve_device(device, "device")
        if device.type != "cpu" and quantize:
            raise NmtError("quantize=True is for CPU decoding (int8 dynamic quantization)")
        loaded = load(model_dir, quantize=quantize, shortlist=shortlist, weights=weights,
                      combine=combine)
        for model in loaded.models:
            model.to(device)
        return cls(loaded, str(device))

    @property
    def config(self) -> Config:
        return self.loaded.cfg

    def decode_config(self, **options: Any) -> DecodeConfig:
        """The model's decoding defaults with `options` (decode.* keys, e.g. beam_size)
        replacing them, each checked against its range."""
        cfg = self.loaded.cfg.decode
        unknown = set(options) - {f.name for f in dataclasses.fields(cfg)}
        if unknown:
            raise NmtError(f"unknown decoding option(s): {', '.join(sorted(unknown))}")
        for key, value in options.items():
            check_value(f"decode.{key}", value, key)
        return dataclasses.replace(cfg, **options)

    def translate(self, texts: Sequence[str], *, beam: int | None = None, nbest: int = 1,
                  alignments: bool = False, prefix: Sequence[str | None] | None = None,
                  sample: bool = False, temperature: float | None = None,
                  top_k: int | None = None, top_p: float | None = None,
                  samples: int | None = None, seed: int | None = None,
                  **options: Any) -> list[Result]:
        """Translate `texts` (one sentence each); result N belongs to text N.

        beam: beam size (1 = greedy; default the model's); nbest: candidates per line
        (<= beam); alignments: word-level attention and hard links for every candidate
        (lines are then translated whole, as `nmt align` does, not in chunks); prefix: one
        target prefix per text ("" or None: none), encoded with the target subword model,
        which every candidate starts with (search goes on after it); options: other decode.*
        keys (length_penalty, coverage_penalty, ban_unk, max_len_ratio, ...).

        sample=True draws each token from the model's distribution instead of searching
        (back-translation): temperature (> 0, default 1), top_k (>= 1, default no cut),
        top_p (in (0, 1], default 1: no cut), samples (candidates per text, in the order
        drawn, default 1), seed (the same seed repeats the call; default a fresh one).
        Beam search's options (beam > 1, nbest, length and coverage penalties) are refused.
        """
        if isinstance(texts, str):
            raise NmtError("translate takes a list of lines, not one string")
        lines = list(texts)
        if prefix is not None:
            if isinstance(prefix, str):
                raise NmtError("prefix takes a list with one prefix per line, not one string")
            if len(prefix) != len(lines):
                raise NmtError(f"prefix: {len(prefix)} prefixes for {len(lines)} lines")
        sampling = _sampling(sample, beam, nbest, options, temperature=temperature,
                             top_k=top_k, top_p=top_p, samples=samples, seed=seed)
        if beam is not None:
            options["beam_size"] = beam
        if alignments:
            options.setdefault("max_input_tokens", 10**9)  # whole lines: one attention each
        decode = self.decode_config(**options)
        if sampling is None and (nbest < 1 or nbest > max(decode.beam_size, 1)):
            raise NmtError(f"nbest {nbest}: must be between 1 and the beam size "
                           f"({decode.beam_size})")
        n_out = sampling.samples if sampling is not None else nbest
        if prefix is not None and self.loaded.has_shortlist and any(p for p in prefix):
            raise NmtError("prefix: not with a shortlist (a prefix's subwords may lie "
                           "outside it); load without shortlist=True")
        translator = DecodingTranslator(self.loaded.decodable, self.loaded.vocabs.src,
                                        self.loaded.vocabs.tgt, decode,
                                        search=make_search(decode, nbest, sampling),
                                        device=self.device, sampling=sampling)
        out = []
        translated = translator.translate(lines, prefixes=prefix)
        for n, (line, tr) in enumerate(zip(lines, translated, strict=True)):
            if not tr.hyps:  # an empty line: n_out empty candidates, as `nmt translate`
                out.append(Result(line, [Candidate("", 0.0, [])] * n_out))
                continue
            out.append(Result(line, [self._candidate(n, line, chosen, translator, alignments)
                                     for chosen in translator.nbest_hyps(tr, n_out)]))
        return out

    def _candidate(self, n: int, line: str, hyps: list[Hypothesis],
                   translator: DecodingTranslator, alignments: bool) -> Candidate:
        """One n-best entry: the hypotheses of the line's chunks (one unless it was split)."""
        vocabs = self.loaded.vocabs
        tokens = [vocabs.tgt.id_to_piece(t) for h in hyps for t in h.tokens]
        alignment = None
        if alignments and len(hyps) == 1:
            aligned = hypothesis_alignment(n, line, hyps[0], vocabs)
            alignment = Alignment(list(aligned.src.words), list(aligned.tgt.words),
                                  aligned.words.matrix.round(6).tolist(),
                                  [(int(i), int(j)) for i, j in aligned.links()])
        return Candidate(translator.detok(hyps), sum(h.score for h in hyps), tokens, alignment)


SAMPLING_ONLY = ("temperature", "top_k", "top_p", "samples", "seed")
BEAM_ONLY = ("length_penalty", "coverage_penalty")


def _sampling(sample: bool, beam: int | None, nbest: int, options: dict[str, Any],
              **values: Any) -> Sampling | None:
    """The sampling options of a `translate` call (None without sample=True), each checked;
    options that belong to the other kind of decoding are one error naming them."""
    given = [k for k in SAMPLING_ONLY if values[k] is not None]
    if not sample:
        if given:
            raise NmtError(f"{given[0]}: only with sample=True")
        return None
    if beam is not None and beam > 1:
        raise NmtError(f"beam {beam}: sampling draws one path per sample; drop beam (or use "
                       f"samples=N for N outputs)")
    if nbest != 1:
        raise NmtError("nbest: sampling gives samples=N outputs per line; drop nbest")
    beam_only = [k for k in BEAM_ONLY if k in options]
    if beam_only:
        raise NmtError(f"{beam_only[0]}: ranks beam-search hypotheses; not with sample=True")
    sampling = Sampling(**{k: v for k, v in values.items() if v is not None})
    try:
        sampling.check()
    except ValueError as e:
        raise NmtError(str(e)) from None
    return sampling
