"""Tests for nmt.data.demo_corpus and scripts/make_demo_data.py."""

from __future__ import annotations

import importlib.util
import logging
import re
from pathlib import Path

import pytest

from nmt.data.demo_corpus import (
    NOUNS,
    TIMES,
    VERBS,
    DemoPair,
    date_to_english,
    date_to_german,
    format_pharaoh,
    generate_pairs,
    noun_phrase,
    number_to_english,
    number_to_german,
    parse_pharaoh,
    write_corpus,
)

REPO = Path(__file__).resolve().parents[1]
SAMPLE = generate_pairs(3000, seed=5)


def links_of(pair: DemoPair) -> dict[int, set[int]]:
    """Source index → aligned target indices."""
    out: dict[int, set[int]] = {}
    for i, j in pair.alignment:
        out.setdefault(i, set()).add(j)
    return out


def test_deterministic_for_a_seed():
    assert generate_pairs(200, seed=3) == generate_pairs(200, seed=3)
    assert generate_pairs(200, seed=3) != generate_pairs(200, seed=4)
    assert generate_pairs(50, seed=3) == generate_pairs(200, seed=3)[:50]
    assert generate_pairs(0, seed=3) == []


def test_alignment_in_range_and_covers_every_word():
    for pair in SAMPLE:
        src, tgt = pair.src.split(), pair.tgt.split()
        assert 4 <= len(src) <= 16 and 4 <= len(tgt) <= 16
        assert list(pair.alignment) == sorted(set(pair.alignment))
        assert all(0 <= i < len(src) and 0 <= j < len(tgt) for i, j in pair.alignment)
        assert {i for i, _ in pair.alignment} == set(range(len(src))), pair
        assert {j for _, j in pair.alignment} == set(range(len(tgt))), pair


def test_only_german_nouns_are_capitalised():
    nouns = {n.de for n in NOUNS} | {n.de_pl for n in NOUNS} | {"Tag", "Woche", "Morgen", "Abend"}
    nouns |= {date_to_german(m, 1).split()[-1] for m in range(1, 13)}
    for pair in SAMPLE:
        assert pair.src == pair.src.lower()
        assert pair.src.split() == pair.src.split(" ") and pair.tgt.split() == pair.tgt.split(" ")
        for w in pair.tgt.split():
            w = w.rstrip(".?,")  # punctuation is attached to the word before it
            assert w == w.lower() or w in nouns, pair


@pytest.mark.parametrize(("n", "en", "de"), [
    (1, "one", "eins"), (7, "seven", "sieben"), (11, "eleven", "elf"), (12, "twelve", "zwölf"),
    (16, "sixteen", "sechzehn"), (17, "seventeen", "siebzehn"), (20, "twenty", "zwanzig"),
    (21, "twenty-one", "einundzwanzig"), (30, "thirty", "dreißig"),
    (42, "forty-two", "zweiundvierzig"), (66, "sixty-six", "sechsundsechzig"),
    (77, "seventy-seven", "siebenundsiebzig"), (99, "ninety-nine", "neunundneunzig"),
])
def test_numbers(n, en, de):
    assert number_to_english(n) == en
    assert number_to_german(n) == de


@pytest.mark.parametrize("n", [0, 100, -3])
def test_numbers_out_of_range(n):
    with pytest.raises(ValueError):
        number_to_german(n)
    with pytest.raises(ValueError):
        number_to_english(n)


def test_numbers_are_one_word_and_aligned_one_to_one():
    words = {number_to_english(n): number_to_german(n) for n in range(2, 100)}
    seen = 0
    for pair in SAMPLE:
        src, tgt = pair.src.split(), pair.tgt.split()
        for i, w in enumerate(src):
            if w in words:
                assert [tgt[j] for j in links_of(pair)[i]] == [words[w]], pair
                seen += 1
    assert seen > 100


@pytest.mark.parametrize(("noun", "det", "kw", "en", "de"), [
    ("apple", "a", {"adj": "red", "case": "acc"}, "a red apple", "einen roten Apfel"),
    ("apple", "a", {"adj": "old"}, "an old apple", "ein alter Apfel"),
    ("dog", "the", {"adj": "big", "case": "acc"}, "the big dog", "den großen Hund"),
    ("cat", "the", {"adj": "small", "case": "acc"}, "the small cat", "die kleine Katze"),
    ("child", "the", {"case": "acc"}, "the child", "das Kind"),
    ("book", 1, {"adj": "new", "case": "acc"}, "one new book", "ein neues Buch"),
    ("apple", 42, {"adj": "red"}, "forty-two red apples", "zweiundvierzig rote Äpfel"),
    ("flower", "my", {"plural": True, "adj": "red"}, "my red flowers", "meine roten Blumen"),
    ("car", "your", {"adj": "cheap"}, "your cheap car", "dein billiges Auto"),
    ("teacher", "", {"plural": True}, "teachers", "Lehrer"),
    ("man", "the", {"plural": True, "case": "acc"}, "the men", "die Männer"),
])
def test_noun_phrase_agreement(noun, det, kw, en, de):
    assert noun_phrase(noun, det, **kw) == (en, de)


@pytest.mark.parametrize(("det", "plural"), [("an", False), ("a", True), ("", False), (100, True)])
def test_noun_phrase_rejects_bad_determiners(det, plural):
    with pytest.raises(ValueError):
        noun_phrase("apple", det, plural=plural)


def test_dates():
    assert date_to_english(3, 3) == "on march 3"
    assert date_to_german(3, 3) == "am 3. März"
    assert date_to_german(12, 24) == "am 24. Dezember"
    with pytest.raises(ValueError):
        date_to_german(13, 1)
    months = {date_to_english(m, 1).split()[1]: m for m in range(1, 13)}
    seen = 0
    for pair in SAMPLE:
        src = [w.rstrip(".?,") for w in pair.src.split()]
        tgt = [w.rstrip("?,") for w in pair.tgt.split()]  # not ".": "3." is a German date
        for i in range(len(src) - 2):
            if src[i] == "on" and src[i + 1] in months:
                links = links_of(pair)
                (j,) = links[i]
                assert tgt[j:j + 3] == date_to_german(months[src[i + 1]], int(src[i + 2])).split()
                assert links[i + 1] == {j + 2} and links[i + 2] == {j + 1}, pair  # on-am 3-3. M-M
                seen += 1
    assert seen > 20


def test_fronted_time_puts_the_verb_second():
    past = {v.past[i] for v in VERBS for i in range(4)}
    finite = {f for v in VERBS for f in v.pres + v.past} | {"werde", "wirst", "wird", "werden"}
    one_word = {en: de for en, de, _, _ in TIMES if " " not in en}
    seen = 0
    for pair in SAMPLE:
        src, tgt = pair.src.split(), pair.tgt.split()
        if src[0] == "yesterday":
            assert tgt[0] == "gestern", pair
            assert tgt[1] in past, pair
            verb_src = [i for i, js in links_of(pair).items() if 1 in js]
            assert len(verb_src) == 1 and verb_src[0] > 1, pair  # after the English subject
            seen += 1
        elif src[0] in one_word:
            assert tgt[0] == one_word[src[0]]
            assert tgt[1] in finite, pair
    assert seen > 10


def test_subordinate_clause_is_verb_final():
    finite = {f for v in VERBS for f in v.pres + v.past}
    finite |= {"habe", "hast", "hat", "haben", "werde", "wirst", "wird", "werden"}
    seen = 0
    for pair in SAMPLE:
        tgt = pair.tgt.split()
        for conj in ("dass", "weil"):
            if conj in tgt:
                assert tgt[tgt.index(conj) - 1].endswith(",")
                assert tgt[-1].endswith(".") and tgt[-1][:-1] in finite, pair
                seen += 1
    assert seen > 500


def test_text_is_detokenized_so_sacrebleu_does_not_warn(caplog):
    """Punctuation is attached to the word before it, as in Multi30k ("a man rides a
    horse."); scored as it is, the corpus makes sacreBLEU print no warning (a tokenized
    corpus makes it warn that one "forgot to detokenize")."""
    from nmt.metrics import corpus_scores

    for pair in SAMPLE:
        for text in (pair.src, pair.tgt):
            assert not re.search(r"(^| )[.?,]", text) and text[-1] in ".?", pair
    assert any(", dass " in pair.tgt for pair in SAMPLE)
    refs = [pair.tgt for pair in SAMPLE[:500]]
    with caplog.at_level(logging.WARNING):
        corpus_scores(refs, [refs], metrics=("bleu", "chrf"))
    assert not caplog.records, [r.getMessage() for r in caplog.records]


def test_pharaoh_round_trip():
    assert format_pharaoh([(2, 1), (0, 0), (1, 3)]) == "0-0 1-3 2-1"
    assert format_pharaoh([]) == ""
    assert parse_pharaoh("0-0 1-3 2-1") == ((0, 0), (1, 3), (2, 1))


def test_unique_pairs():
    pairs = generate_pairs(2000, seed=2, unique=True)
    assert len({p.src for p in pairs}) == 2000


def test_write_corpus(tmp_path):
    written = write_corpus(tmp_path / "demo", seed=7, n_train=1500, n_dev=100, n_test=120)
    names = {f"{s}.{e}" for s in ("train", "dev", "test") for e in ("en", "de", "align")}
    assert set(written) == names
    lines = {name: path.read_text(encoding="utf-8").splitlines() for name, path in written.items()}
    for split, n in (("train", 1500), ("dev", 100), ("test", 120)):
        assert len(lines[f"{split}.en"]) == len(lines[f"{split}.de"]) == n
        assert len(lines[f"{split}.align"]) == n
        for en, de, al in zip(lines[f"{split}.en"], lines[f"{split}.de"],
                              lines[f"{split}.align"], strict=True):
            assert re.fullmatch(r"\d+-\d+( \d+-\d+)*", al)
            links = parse_pharaoh(al)
            assert max(i for i, _ in links) == len(en.split()) - 1
            assert max(j for _, j in links) == len(de.split()) - 1
    train = set(lines["train.en"])
    assert len(train) == 1500
    assert not train & set(lines["dev.en"]) and not train & set(lines["test.en"])
    assert not set(lines["dev.en"]) & set(lines["test.en"])
    # dev and test do not depend on the training size
    again = write_corpus(tmp_path / "again", seed=7, n_train=10, n_dev=100, n_test=120)
    assert again["test.en"].read_text(encoding="utf-8") == "\n".join(lines["test.en"]) + "\n"
    assert again["dev.de"].read_text(encoding="utf-8") == "\n".join(lines["dev.de"]) + "\n"


def test_script(tmp_path, capsys):
    spec = importlib.util.spec_from_file_location("make_demo_data",
                                                  REPO / "scripts" / "make_demo_data.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    out = tmp_path / "d"
    assert module.main(["--out", str(out), "--train", "30", "--dev", "5", "--test", "5"]) == 0
    assert "train.en" in capsys.readouterr().out
    assert len((out / "dev.align").read_text(encoding="utf-8").splitlines()) == 5
    assert module.main(["--out", str(out), "--train", "-1"]) == 2
