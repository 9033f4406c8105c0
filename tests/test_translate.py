"""translate: line N of the output belongs to line N of the input, whatever the input holds."""

from __future__ import annotations

import argparse
import io
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from nmt.checkpoint import load_model
from nmt.cli.translate import main
from nmt.config import DecodeConfig
from nmt.decoding.translator import Translator, split_long
from nmt.special import UNK_ID
from tests.helpers import WORDS, EditedSteps, train_toy_model

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    return train_toy_model(tmp_path_factory)


def tricky_lines() -> list[str]:
    long_line = " ".join(WORDS[i % len(WORDS)] for i in range(2000))
    return ["ka lo mi", "", "   ", "\t", long_line, "Привет мир 你好 世界 مرحبا", "su ta",
            "ne\u2028po", "ve\x0czu", "ka" * 300, "ri"]


def test_translate_keeps_every_line_in_order(model_dir, tmp_path, capsys):
    src = tmp_path / "in.txt"
    lines = tricky_lines()
    src.write_text("\n".join(lines) + "\n", encoding="utf-8")
    out = tmp_path / "out.txt"
    assert main(["--checkpoint", str(model_dir), "--input", str(src), "--output", str(out),
                 "--batch-size", "3", "--max-input-tokens", "50"]) == 0
    got = out.read_text(encoding="utf-8").split("\n")
    assert got[-1] == "" and len(got) - 1 == len(lines)
    # each output line is what that input line translates to on its own
    model, cfg, vocabs = load_model(model_dir)
    alone = Translator(model, vocabs.src, vocabs.tgt, replace(cfg.decode, max_input_tokens=50))
    for line, hyp in zip(lines, got, strict=False):
        if not line.strip():
            assert hyp == ""
        else:
            assert hyp == alone.translate([line])[0].text, line[:20]
    assert len({g for g in got if g}) >= 4  # distinct outputs, so a shift would show
    err = capsys.readouterr().err
    assert f"{src}:5: longer than 50 subwords" in err and f"{src}:10: longer" in err
    assert f"{src}:1:" not in err
    assert "\u2028" not in out.read_text(encoding="utf-8")


def test_batching_does_not_change_translations(model_dir):
    model, cfg, vocabs = load_model(model_dir)
    lines = ["ka lo mi ne", "su", "ta ri po ve zu an", "el el", "mi"] * 3
    one = Translator(model, vocabs.src, vocabs.tgt, DecodeConfig(batch_size=1)).translate(lines)
    many = Translator(model, vocabs.src, vocabs.tgt, DecodeConfig(batch_size=7)).translate(lines)
    assert [t.text for t in one] == [t.text for t in many]


def test_long_line_is_chunked_between_words(model_dir):
    _, _, vocabs = load_model(model_dir)
    text = " ".join(WORDS[i % len(WORDS)] for i in range(300))
    chunks = split_long(text, vocabs.src, 40)
    assert all(0 < len(c) <= 40 for c in chunks)
    assert sum(chunks, []) == [i for w in text.split() for i in vocabs.src.encode([w])[0]]
    assert vocabs.src.decode(chunks) and " ".join(vocabs.src.decode(chunks)) == text
    giant = "k" * 300  # one word longer than the limit is cut inside the word
    assert all(len(c) <= 40 for c in split_long(giant, vocabs.src, 40))


def test_stdin_stdout_and_errors(model_dir, tmp_path):
    script = [sys.executable, str(ROOT / "scripts" / "translate.py"), "--quiet"]
    res = subprocess.run(script + ["--checkpoint", str(model_dir)], input=b"ka lo\n\nmi",
                         capture_output=True, timeout=120)
    assert res.returncode == 0, res.stderr
    assert res.stdout.count(b"\n") == 3 and res.stdout.split(b"\n")[1] == b""
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"ka lo\nmi \xff\xfe ne\n")
    res = subprocess.run(script + ["--checkpoint", str(model_dir), "--input", str(bad)],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 2 and res.stderr == f"error: {bad}:2: invalid UTF-8 at byte 3\n"
    res = subprocess.run(script + ["--checkpoint", str(tmp_path / "missing")],
                         input="ka\n", capture_output=True, text=True, timeout=120)
    assert res.returncode == 2 and res.stderr.count("\n") == 1 and "missing" in res.stderr


def test_corrupt_checkpoint_is_one_clear_error(model_dir, tmp_path, capsys):
    broken = tmp_path / "broken"
    broken.mkdir()
    for f in model_dir.iterdir():
        (broken / f.name).write_bytes(f.read_bytes())
    (broken / "best.pt").write_bytes((model_dir / "best.pt").read_bytes()[:1000])
    src = tmp_path / "in.txt"
    src.write_text("ka\n", encoding="utf-8")
    out = tmp_path / "out.txt"
    out.write_text("previous\n", encoding="utf-8")
    assert main(["--checkpoint", str(broken), "--input", str(src), "--output", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "best.pt" in err and err.count("\n") == 1
    assert out.read_text(encoding="utf-8") == "previous\n"  # untouched on failure


def test_nbest_outputs_keep_line_ids(model_dir, tmp_path, capsys):
    import json

    src = tmp_path / "in.txt"
    src.write_text("ka lo mi\n\nsu ta ri\n", encoding="utf-8")
    args = ["--checkpoint", str(model_dir), "--input", str(src), "--quiet", "--beam", "4"]
    assert main(args + ["--nbest", "3"]) == 0
    rows = [line.split(" ||| ") for line in capsys.readouterr().out.splitlines()]
    # N lines for every input line, the empty one included (README: "N lines per input line")
    assert [int(r[0]) for r in rows] == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    scores = [float(r[2]) for r in rows if r[0] == "0"]
    assert scores == sorted(scores, reverse=True)
    assert [r[1:] for r in rows[3:6]] == [["", "0.000000"]] * 3
    assert main(args + ["--nbest", "2", "--format", "jsonl"]) == 0
    objs = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [o["line"] for o in objs] == [0, 1, 2]
    assert len(objs[0]["hyps"]) == 2 and objs[1]["hyps"] == [{"text": "", "score": 0.0}] * 2
    assert main(args + ["--nbest", "5"]) == 2
    assert capsys.readouterr().err == "error: --nbest 5: must be at most the beam size (--beam 4)\n"
    assert main(args + ["--length-penalty", "gnmt"]) == 2
    assert capsys.readouterr().err == ("error: --length-penalty: 'gnmt' is not none, average or "
                                       "gnmt:<alpha>\n")


@pytest.mark.parametrize("flags, message", [
    (["--beam", "0"], "--beam: must be >= 1 (got 0)"),
    (["--batch-size", "0"], "--batch-size: must be >= 1 (got 0)"),
    (["--max-len-ratio", "0"], "--max-len-ratio: must be > 0 (got 0.0)"),
    (["--max-len-ratio", "-1"], "--max-len-ratio: must be > 0 (got -1.0)"),
    (["--max-input-tokens", "0"], "--max-input-tokens: must be >= 1 (got 0)"),
    (["--coverage-penalty", "-0.5"], "--coverage-penalty: must be >= 0 (got -0.5)"),
    (["--nbest", "0"], "--nbest: must be >= 1 (got 0)"),
    (["--beam", "0", "--nbest", "1"], "--beam: must be >= 1 (got 0)"),
])
def test_a_bad_flag_is_named_as_typed_once(model_dir, tmp_path, capsys, flags, message):
    """One line naming the flag the user typed: not --nbest for --beam 0, not the config
    keys (decode.*) behind the flags."""
    src = tmp_path / "in.txt"
    src.write_text("ka lo\n", encoding="utf-8")
    out = tmp_path / "out.txt"
    assert main(["--checkpoint", str(model_dir), "--input", str(src), "--output", str(out),
                 "--quiet", *flags]) == 2
    assert capsys.readouterr().err == f"error: {message}\n"
    assert not out.exists()


def test_every_decode_flag_has_its_config_key_and_range():
    """The flags are checked with the ranges of their config keys (`nmt.config.RANGES`)."""
    from nmt.cli.translate import DECODE_FLAGS
    from nmt.config import RANGES

    for key in DECODE_FLAGS:
        assert key in DecodeConfig.__dataclass_fields__
        assert f"decode.{key}" in RANGES or key == "length_penalty", key


def test_input_or_output_that_is_a_directory(model_dir, tmp_path, capsys):
    src = tmp_path / "in.txt"
    src.write_text("ka lo\n", encoding="utf-8")
    folder = tmp_path / "folder"
    folder.mkdir()
    args = ["--checkpoint", str(model_dir), "--quiet"]
    assert main(args + ["--input", str(folder)]) == 2
    assert capsys.readouterr().err == f"error: --input {folder} is a directory, not a file\n"
    assert main(args + ["--input", str(src), "--output", str(folder)]) == 2
    assert capsys.readouterr().err == f"error: --output {folder} is a directory, not a file\n"
    assert main(args + ["--input", str(tmp_path / "none.txt")]) == 2
    assert capsys.readouterr().err == f"error: --input {tmp_path / 'none.txt'}: no such file\n"


def test_beam_one_is_greedy_and_beam_translates_every_line(model_dir, tmp_path, capsys):
    src = tmp_path / "in.txt"
    lines = ["ka lo mi", "su ta ri po", "", "ve"]
    src.write_text("\n".join(lines) + "\n", encoding="utf-8")
    outs = {}
    for beam in ("1", "5"):
        assert main(["--checkpoint", str(model_dir), "--input", str(src), "--quiet",
                     "--beam", beam]) == 0
        outs[beam] = capsys.readouterr().out.split("\n")
        assert len(outs[beam]) == len(lines) + 1 and outs[beam][2] == ""
    model, cfg, vocabs = load_model(model_dir)
    greedy = Translator(model, vocabs.src, vocabs.tgt, DecodeConfig(beam_size=1)).translate(lines)
    assert [t.text for t in greedy] == outs["1"][:-1]


class UnkFirst(EditedSteps):
    """A model whose every step makes UNK the most likely token (log-prob 0)."""

    def edit(self, log_probs):
        log_probs[:, UNK_ID] = 0.0


def test_beam_one_ban_unk_never_outputs_unk(model_dir, tmp_path, capsys, monkeypatch):
    import nmt.api
    import nmt.checkpoint

    load = nmt.checkpoint.load_for_inference

    def load_unk_first(*args, **kwargs):
        model, cfg, vocabs = load(*args, **kwargs)
        return UnkFirst(model), cfg, vocabs

    monkeypatch.setattr(nmt.api, "load_for_inference", load_unk_first)  # what translate loads
    src = tmp_path / "in.txt"
    lines = ["ka lo mi", "su ta ri po", "ve"]
    src.write_text("\n".join(lines) + "\n", encoding="utf-8")
    args = ["--checkpoint", str(model_dir), "--input", str(src), "--quiet", "--beam", "1"]
    assert main(args) == 0
    assert all("\u2047" in line for line in capsys.readouterr().out.splitlines())  # UNK
    assert main(args + ["--ban-unk"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert len(out) == len(lines) and not any("\u2047" in line for line in out)
    # UNK banned, the rest of each step is the trained model's: its greedy translation
    model, _, vocabs = load(model_dir)
    plain = Translator(model, vocabs.src, vocabs.tgt, DecodeConfig(beam_size=1, ban_unk=True))
    assert [t.text for t in plain.translate(lines)] == out


def unk_first(monkeypatch) -> None:
    """Make translate load models whose every step prefers UNK (see `UnkFirst`)."""
    import nmt.api
    import nmt.checkpoint

    load = nmt.checkpoint.load_for_inference

    def load_unk_first(*args, **kwargs):
        model, cfg, vocabs = load(*args, **kwargs)
        return UnkFirst(model), cfg, vocabs

    monkeypatch.setattr(nmt.api, "load_for_inference", load_unk_first)  # what translate loads


def test_replace_unk_with_unicode_spaces_and_format_characters(model_dir, tmp_path, capsys,
                                                              monkeypatch):
    """`a\\u200bman .` once failed the whole file: sentencepiece cuts a word at U+200B,
    str.split() does not. Now words are cut where sentencepiece cuts them."""
    unk_first(monkeypatch)
    lines = ["ka\u200blo mi", "su ta", "\u200b", "ne\u2060po\ufeff ve\x1czu", "ri\u3000el ."]
    src, out = tmp_path / "in.txt", tmp_path / "out.txt"
    src.write_text("\n".join(lines) + "\n", encoding="utf-8")
    assert main(["--checkpoint", str(model_dir), "--input", str(src), "--output", str(out),
                 "--beam", "1", "--replace-unk", "--max-len-ratio", "0.5"]) == 0
    got = out.read_text(encoding="utf-8").split("\n")
    assert len(got) == len(lines) + 1 and got[2] == ""  # U+200B alone: nothing to translate
    sources = [{"ka", "lo", "mi"}, {"su", "ta"}, set(),
               {"ne\u2060po", "ne\u2060po\ufeff", "ve\x1czu"}, {"ri", "el", "."}]
    for line, hyp, allowed in zip(lines, got, sources, strict=False):
        words = hyp.split(" ")  # not split(): U+001C is whitespace to Python
        assert set(words) <= allowed if allowed else hyp == "", (line, hyp)
    err = capsys.readouterr().err
    assert "error" not in err and "replace-unk" not in err
    # UnkFirst never ends a sentence: every translation stopped at the length limit, and
    # one warning says so instead of the cut going unnoticed
    assert err.count("\n") == 1
    assert f"warning: {src}: 4 of 5 translations stopped at the maximum length" in err


def test_replace_unk_falls_back_on_a_line_it_cannot_map(model_dir, tmp_path, capsys,
                                                        monkeypatch):
    """A line whose subwords cannot be matched to its words keeps its UNKs, and one warning
    names it; the other lines are still replaced and nothing else is lost."""
    import nmt.decoding.translator
    from nmt.errors import NmtError

    unk_first(monkeypatch)
    replace = nmt.decoding.translator.replace_unks

    def fails_on_su(line, *args):
        if "su" in line:
            raise NmtError("--replace-unk: the subword pieces give 3 words but the line has 2")
        return replace(line, *args)

    monkeypatch.setattr(nmt.decoding.translator, "replace_unks", fails_on_su)
    lines = ["ka lo", "su ta", "mi", "su"]
    src = tmp_path / "in.txt"
    src.write_text("\n".join(lines) + "\n", encoding="utf-8")
    assert main(["--checkpoint", str(model_dir), "--input", str(src), "--beam", "1",
                 "--replace-unk", "--max-len-ratio", "0.5"]) == 0
    captured = capsys.readouterr()
    got = captured.out.split("\n")
    assert len(got) == len(lines) + 1
    assert "\u2047" in got[1] and "\u2047" in got[3]  # UNKs left in place
    assert set(got[0].split()) <= {"ka", "lo"} and set(got[2].split()) == {"mi"}
    warnings = [w for w in captured.err.splitlines() if "replace-unk" in w]
    assert warnings == [f"warning: {src}:2: --replace-unk: the subword pieces give 3 words but "
                        "the line has 2; its UNKs are left in place (and in 1 more line)"]


def test_a_line_of_characters_sentencepiece_removes_translates_to_nothing(model_dir):
    model, cfg, vocabs = load_model(model_dir)
    lines = ["\u200b", "ka lo", "\u200b\ufeff\u200b"]
    got = Translator(model, vocabs.src, vocabs.tgt, cfg.decode).translate(lines)
    assert [t.text == "" for t in got] == [True, False, True] and not got[0].hyps


# ---------------------------------------------------------------------------------------------
# --prefix FILE


PREFIX_SRC = ["ka lo mi", "", "su ta ri po ne", "ve", "zu an el ka lo"]


def run_cli(capsys, model_dir, tmp_path, lines, *flags, prefixes=None) -> tuple[int, str, str]:
    src = tmp_path / "src.txt"
    src.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    args = ["--model-dir", str(model_dir), "--input", str(src), "--quiet", *flags]
    if prefixes is not None:
        pre = tmp_path / "prefix.txt"
        pre.write_text("".join(p + "\n" for p in prefixes), encoding="utf-8")
        args += ["--prefix", str(pre)]
    capsys.readouterr()
    code = main(args)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.mark.parametrize("flags", [["--beam", "1"], ["--beam", "3"]])
def test_each_translation_starts_with_its_prefix(model_dir, tmp_path, capsys, flags):
    prefixes = ["ZU", "SU", "", "AN EL", "KA LO MI"]
    code, out, _ = run_cli(capsys, model_dir, tmp_path, PREFIX_SRC, *flags, prefixes=prefixes)
    assert code == 0
    got = out.split("\n")[:-1]
    _, plain, _ = run_cli(capsys, model_dir, tmp_path, PREFIX_SRC, *flags)
    plain = plain.split("\n")[:-1]
    assert got[1] == "" and got[2] == plain[2]  # an empty input line; no prefix
    for n in (0, 3, 4):
        assert got[n].startswith(prefixes[n]) and got[n] != plain[n], (got[n], plain[n])


def test_every_nbest_entry_starts_with_the_prefix(model_dir, tmp_path, capsys):
    import json

    code, out, _ = run_cli(capsys, model_dir, tmp_path, PREFIX_SRC, "--beam", "4", "--nbest",
                           "3", "--format", "jsonl", prefixes=["NE NE", "", "", "VE", "TA"])
    assert code == 0
    rows = [json.loads(line) for line in out.splitlines()]
    for row, prefix in zip(rows, ["NE NE", "", "", "VE", "TA"], strict=True):
        assert len(row["hyps"]) == 3
        assert all(h["text"].startswith(prefix) for h in row["hyps"])


@pytest.mark.parametrize("flags", [["--beam", "1"], ["--beam", "3", "--nbest", "2",
                                                     "--format", "jsonl"]])
def test_empty_prefixes_change_nothing(model_dir, tmp_path, capsys, flags):
    _, plain, _ = run_cli(capsys, model_dir, tmp_path, PREFIX_SRC, *flags)
    code, out, _ = run_cli(capsys, model_dir, tmp_path, PREFIX_SRC, *flags,
                           prefixes=["", "", "  ", "", "\t"])
    assert code == 0 and out == plain


def test_a_prefix_file_of_another_length_is_one_error(model_dir, tmp_path, capsys):
    code, out, err = run_cli(capsys, model_dir, tmp_path, PREFIX_SRC, prefixes=["ZU", "SU"])
    assert code == 2 and out == ""
    assert err == (f"error: line count mismatch: {tmp_path / 'src.txt'} has 5 lines, "
                   f"{tmp_path / 'prefix.txt'} has 2 lines\n")
    code, _, err = run_cli(capsys, model_dir, tmp_path, PREFIX_SRC, "--shortlist",
                           prefixes=["ZU"] * 5)
    assert code == 2 and err.startswith("error: --prefix: not with --shortlist")


def test_a_long_line_gets_its_prefix_on_its_first_chunk(model_dir, tmp_path, capsys):
    long_line = " ".join(WORDS[i % len(WORDS)] for i in range(60))
    src = tmp_path / "src.txt"
    src.write_text(f"{long_line}\nka lo\n", encoding="utf-8")
    pre = tmp_path / "prefix.txt"
    pre.write_text("ZU ZU ZU\nAN\n", encoding="utf-8")
    assert main(["--model-dir", str(model_dir), "--input", str(src), "--prefix", str(pre),
                 "--max-input-tokens", "20", "--beam", "2"]) == 0
    captured = capsys.readouterr()
    first, second = captured.out.split("\n")[:2]
    assert f"{src}:1: longer than 20 subwords" in captured.err
    assert first.startswith("ZU ZU ZU") and second.startswith("AN")
    # the other chunks are translated as without a prefix
    _, plain, _ = run_cli(capsys, model_dir, tmp_path, [long_line], "--max-input-tokens", "20",
                          "--beam", "2")
    model, cfg, vocabs = load_model(model_dir)
    tr = Translator(model, vocabs.src, vocabs.tgt, replace(cfg.decode, max_input_tokens=20,
                                                           beam_size=2))
    chunks = tr.translate([long_line])[0].hyps
    with_prefix = tr.translate([long_line], prefixes=["ZU ZU ZU"])[0].hyps
    assert len(chunks) == len(with_prefix) >= 3
    assert [h.tokens for h in chunks[1:]] == [h.tokens for h in with_prefix[1:]]
    assert with_prefix[0].tokens[:3] == vocabs.tgt.encode(["ZU ZU ZU"])[0]


# ---------------------------------------------------------------------------------------------
# --sample


def test_sampling_writes_n_samples_per_line_and_repeats_with_its_seed(model_dir, tmp_path,
                                                                       capsys):
    flags = ["--sample", "--samples", "3"]
    code, first, _ = run_cli(capsys, model_dir, tmp_path, PREFIX_SRC, *flags, "--seed", "7")
    assert code == 0
    rows = [line.split(" ||| ") for line in first.splitlines()]
    assert [int(r[0]) for r in rows] == [0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3, 4, 4, 4]
    assert [r[1:] for r in rows[3:6]] == [["", "0.000000"]] * 3
    assert len({r[1] for r in rows}) > 5  # samples differ
    assert run_cli(capsys, model_dir, tmp_path, PREFIX_SRC, *flags, "--seed", "7")[1] == first
    assert run_cli(capsys, model_dir, tmp_path, PREFIX_SRC, *flags, "--seed", "8")[1] != first
    # top-k 1 is greedy search
    _, greedy_out, _ = run_cli(capsys, model_dir, tmp_path, PREFIX_SRC, "--beam", "1")
    _, top1, _ = run_cli(capsys, model_dir, tmp_path, PREFIX_SRC, "--sample", "--top-k", "1")
    assert top1 == greedy_out
    # with prefixes, each sample starts with its line's prefix
    code, out, _ = run_cli(capsys, model_dir, tmp_path, PREFIX_SRC, *flags, "--seed", "1",
                           prefixes=["ZU", "", "", "AN EL", ""])
    rows = [line.split(" ||| ") for line in out.splitlines()]
    assert all(r[1].startswith("ZU") for r in rows[:3])
    assert all(r[1].startswith("AN EL") for r in rows[9:12])


@pytest.mark.parametrize("flags, message", [
    (["--sample", "--temperature", "0"], "--temperature: must be > 0 (got 0.0)"),
    (["--sample", "--temperature", "-2"], "--temperature: must be > 0 (got -2.0)"),
    (["--sample", "--top-p", "0"], "--top-p: must be in (0, 1] (got 0.0)"),
    (["--sample", "--top-p", "1.5"], "--top-p: must be in (0, 1] (got 1.5)"),
    (["--sample", "--top-k", "0"], "--top-k: must be >= 1 (got 0)"),
    (["--sample", "--samples", "0"], "--samples: must be >= 1 (got 0)"),
    (["--top-k", "5"], "--top-k: only with --sample"),
    (["--seed", "1"], "--seed: only with --sample"),
    (["--sample", "--beam", "4"], "--beam 4 with --sample: sampling draws one path per "
     "sample; drop --beam (--samples N gives N outputs per line)"),
    (["--sample", "--nbest", "2"], "--nbest with --sample: use --samples N for N outputs "
     "per line"),
    (["--sample", "--length-penalty", "average"], "--length-penalty ranks beam-search "
     "hypotheses; not with --sample"),
    (["--sample", "--samples", "2", "--replace-unk"], "--replace-unk works on the 1-best "
     "output; drop --nbest/--samples"),
])
def test_bad_sampling_flags_are_one_line(model_dir, tmp_path, capsys, flags, message):
    code, out, err = run_cli(capsys, model_dir, tmp_path, ["ka lo"], *flags)
    assert (code, out, err) == (2, "", f"error: {message}\n")


# ---------------------------------------------------------------------------------------------
# A terminal on stdin: line by line


class FakeTerminal(io.BytesIO):
    def isatty(self) -> bool:
        return True


def test_stdin_is_interactive_only_from_a_terminal():
    from nmt.cli.translate import add_arguments, interactive

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    bare = parser.parse_args(["--model-dir", "m"])
    assert interactive(bare, FakeTerminal())
    assert not interactive(bare, io.BytesIO())  # a pipe or a file
    for flags in (["--input", "f"], ["--output", "f"], ["--prefix", "f"]):
        assert not interactive(parser.parse_args(["--model-dir", "m", *flags]), FakeTerminal())


def test_each_line_is_written_and_flushed_before_the_next_is_read():
    from nmt.cli.translate import translate_interactively

    events = []

    class Stdin(FakeTerminal):
        def readline(self, *args):
            events.append("read")
            return super().readline(*args)

    class Stdout(io.StringIO):
        def flush(self):
            events.append("flush")

    out = Stdout()
    stdin = Stdin(b"ka lo\n\nmi \xff\nsu\n")
    calls = []

    def translate(lines, start):
        calls.append((lines, start))
        return f"<{lines[0]}>\n"

    assert translate_interactively(translate, stdin, out) == 4
    assert calls == [(["ka lo"], 0), ([""], 1), ([""], 2), (["su"], 3)]  # bad UTF-8: ""
    assert out.getvalue() == "<ka lo>\n<>\n<>\n<su>\n"
    assert events == ["read", "flush"] * 4 + ["read"]


def test_a_terminal_gets_each_translation_as_its_line_is_entered(model_dir):
    """A real pseudo-terminal on stdin: the first translation arrives while the command
    still waits for the second line."""
    import os
    import pty
    import select

    master, slave = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "nmt", "translate", "--model-dir",
                             str(model_dir), "--beam", "1", "--quiet"], stdin=slave,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT)
    os.close(slave)

    def next_line() -> str:
        ready, _, _ = select.select([proc.stdout], [], [], 120)
        assert ready, "no translation before the next line was entered"
        return proc.stdout.readline().decode("utf-8")

    try:
        os.write(master, b"ka lo mi\n")
        first = next_line()
        os.write(master, b"su ta\n")
        second = next_line()
        os.write(master, b"\x04")  # Ctrl-D: end of input
        assert proc.wait(timeout=120) == 0, proc.stderr.read()
    finally:
        proc.kill()
        os.close(master)
    model, cfg, vocabs = load_model(model_dir)
    tr = Translator(model, vocabs.src, vocabs.tgt, replace(cfg.decode, beam_size=1))
    assert [first, second] == [t.text + "\n" for t in tr.translate(["ka lo mi", "su ta"])]
