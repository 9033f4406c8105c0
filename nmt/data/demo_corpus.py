"""A generated English→German demo corpus with gold word alignments, all from a seeded grammar.

It covers numbers 1..99 (German puts units before tens), dates ("on march 3" → "am 3. März"),
verb-second after a fronted time phrase, verb-final subordinate clauses, clause-final
participles and infinitives, yes/no questions, and German article and adjective endings.
All words are lower case except German nouns. The text is detokenized like real corpora
(Multi30k, WMT): punctuation is attached to the word before it ("a man rides a horse."), so
sacreBLEU scores it as it scores real test sets. Alignments are (English, German) indices of
the whitespace-separated words; a word with punctuation attached keeps the word's links.
"""

from __future__ import annotations

import os
import random
from dataclasses import dataclass
from pathlib import Path

from nmt.errors import NmtError
from nmt.io import atomic_open

Tok = tuple[str, int]  # a word and a concept key; words that share a key are aligned
PUNCTUATION = (".", "?", ",")  # written attached to the word before, as in real corpora
Alignment = tuple[tuple[int, int], ...]

_UNITS_EN = ("one two three four five six seven eight nine ten eleven twelve thirteen fourteen "
             "fifteen sixteen seventeen eighteen nineteen").split()
_TENS_EN = "twenty thirty forty fifty sixty seventy eighty ninety".split()
_UNITS_DE = ("eins zwei drei vier fünf sechs sieben acht neun zehn elf zwölf dreizehn vierzehn "
             "fünfzehn sechzehn siebzehn achtzehn neunzehn").split()
_TENS_DE = "zwanzig dreißig vierzig fünfzig sechzig siebzig achtzig neunzig".split()
_MONTHS_EN = ("january february march april may june july august september october november "
              "december").split()
_MONTHS_DE = ("Januar Februar März April Mai Juni Juli August September Oktober November "
              "Dezember").split()


@dataclass(frozen=True)
class DemoPair:
    """One sentence pair: English source, German target, sorted (src, tgt) word links."""

    src: str
    tgt: str
    alignment: Alignment


@dataclass(frozen=True)
class Noun:
    """English singular/plural, gender ("m", "f", "n"), German singular/plural, kind."""

    en: str
    en_pl: str
    gender: str
    de: str
    de_pl: str
    kind: str  # "h" human, "a" animal, "t" thing, "b" big thing


@dataclass(frozen=True)
class Verb:
    """English (base, 3sg, past[, participle]); German present and past (1sg, 2sg, 3sg, pl)."""

    en: tuple[str, ...]
    pres: tuple[str, ...]
    past: tuple[str, ...]
    pp: str = ""
    subj: str = "h"  # "h": human subjects only; "a": humans or animals
    obj: str = "*"  # "*": any object; "t": no humans; "s": no big things


def _verbs(table: str) -> tuple[Verb, ...]:
    out = []
    for line in table.strip().splitlines():
        en, pres, past, *rest = line.split("|")
        pp, flags = rest if rest else ("", "h*")
        out.append(Verb(tuple(en.split()), tuple(pres.split()), tuple(past.split()), pp, *flags))
    return tuple(out)


NOUNS = tuple(Noun(*n.split()) for n in """
teacher teachers m Lehrer Lehrer h | child children n Kind Kinder h
woman women f Frau Frauen h | man men m Mann Männer h
girl girls n Mädchen Mädchen h | friend friends m Freund Freunde h
sister sisters f Schwester Schwestern h | dog dogs m Hund Hunde a
cat cats f Katze Katzen a | horse horses n Pferd Pferde a
bird birds m Vogel Vögel a | apple apples m Apfel Äpfel t
book books n Buch Bücher t | car cars n Auto Autos b
flower flowers f Blume Blumen t | table tables m Tisch Tische t
house houses n Haus Häuser b | picture pictures n Bild Bilder t
bag bags f Tasche Taschen t | ball balls m Ball Bälle t
""".replace("\n", "|").strip("|").split("|"))
VERBS = _verbs("""
buy buys bought bought|kaufe kaufst kauft kaufen|kaufte kauftest kaufte kauften|gekauft|ht
see sees saw seen|sehe siehst sieht sehen|sah sahst sah sahen|gesehen|a*
find finds found found|finde findest findet finden|fand fandest fand fanden|gefunden|a*
need needs needed needed|brauche brauchst braucht brauchen|brauchte brauchtest brauchte brauchten|gebraucht|a*
carry carries carried carried|trage trägst trägt tragen|trug trugst trug trugen|getragen|hs
paint paints painted painted|male malst malt malen|malte maltest malte malten|gemalt|h*
sell sells sold sold|verkaufe verkaufst verkauft verkaufen|verkaufte verkauftest verkaufte verkauften|verkauft|ht
like likes liked liked|mag magst mag mögen|mochte mochtest mochte mochten|gemocht|a*
hold holds held held|halte hältst hält halten|hielt hieltest hielt hielten|gehalten|hs
wash washes washed washed|wasche wäschst wäscht waschen|wusch wuschest wusch wuschen|gewaschen|h*
count counts counted counted|zähle zählst zählt zählen|zählte zähltest zählte zählten|gezählt|h*
""")  # noqa: E501
SAY_VERBS = _verbs("""
know knows knew|weiß weißt weiß wissen|wusste wusstest wusste wussten
believe believes believed|glaube glaubst glaubt glauben|glaubte glaubtest glaubte glaubten
say says said|sage sagst sagt sagen|sagte sagtest sagte sagten
hope hopes hoped|hoffe hoffst hofft hoffen|hoffte hofftest hoffte hofften
""")
# English, German, the noun kinds it may describe.
ADJECTIVES = tuple(tuple(a.split(":")) for a in (
    "red:rot:tb green:grün:tb cheap:billig:tb big:groß:hatb small:klein:hatb old:alt:hatb "
    "new:neu:hatb beautiful:schön:hatb").split())
# English, German, person: 0=1sg 1=2sg 2=3sg 3=1pl 4=3pl ("you" is always singular "du").
PRONOUNS = (("i", "ich", 0), ("you", "du", 1), ("he", "er", 2), ("she", "sie", 2),
            ("we", "wir", 3), ("they", "sie", 4))
_ADJ_DE = {a[0]: a[1] for a in ADJECTIVES}
_HABEN = ("habe", "hast", "hat", "haben")
_WERDEN = ("werde", "wirst", "wird", "werden")
_DEF = {"nom": {"m": "der", "f": "die", "n": "das", "pl": "die"},
        "acc": {"m": "den", "f": "die", "n": "das", "pl": "die"}}
_EIN_END = {"nom": {"m": "", "f": "e", "n": "", "pl": "e"},
            "acc": {"m": "en", "f": "e", "n": "", "pl": "e"}}
_MIXED_ADJ = {"nom": {"m": "er", "f": "e", "n": "es"}, "acc": {"m": "en", "f": "e", "n": "es"}}
# English, German, Pharaoh links inside the phrase, the tenses it goes with (dates: see time()).
TIMES = (
    ("yesterday", "gestern", "0-0", "past"), ("last week", "letzte Woche", "0-0 1-1", "past"),
    ("today", "heute", "0-0", "present"), ("every day", "jeden Tag", "0-0 1-1", "present"),
    ("in the morning", "am Morgen", "0-0 1-0 2-1", "present past"),
    ("in the evening", "am Abend", "0-0 1-0 2-1", "present past"),
    ("tomorrow", "morgen", "0-0", "future"), ("next week", "nächste Woche", "0-0 1-1", "future"),
)


def number_to_english(n: int) -> str:
    """Spell 1..99 in English as one word: 42 → "forty-two"."""
    if not 1 <= n <= 99:
        raise ValueError(f"number out of range 1..99: {n}")
    if n < 20:
        return _UNITS_EN[n - 1]
    tens, unit = divmod(n, 10)
    return f"{_TENS_EN[tens - 2]}-{_UNITS_EN[unit - 1]}" if unit else _TENS_EN[tens - 2]


def number_to_german(n: int) -> str:
    """Spell 1..99 in German, units before tens: 42 → "zweiundvierzig", 1 → "eins"."""
    if not 1 <= n <= 99:
        raise ValueError(f"number out of range 1..99: {n}")
    if n < 20:
        return _UNITS_DE[n - 1]
    tens, unit = divmod(n, 10)
    if not unit:
        return _TENS_DE[tens - 2]
    return f"{'ein' if unit == 1 else _UNITS_DE[unit - 1]}und{_TENS_DE[tens - 2]}"


def date_to_english(month: int, day: int) -> str:
    """The English date phrase: (3, 3) → "on march 3"."""
    _check_date(month, day)
    return f"on {_MONTHS_EN[month - 1]} {day}"


def date_to_german(month: int, day: int) -> str:
    """The German date phrase, day before month: (3, 3) → "am 3. März"."""
    _check_date(month, day)
    return f"am {day}. {_MONTHS_DE[month - 1]}"


def _check_date(month: int, day: int) -> None:
    if not (1 <= month <= 12 and 1 <= day <= 31):
        raise ValueError(f"bad date: month {month}, day {day}")


def format_pharaoh(alignment: Alignment | list[tuple[int, int]]) -> str:
    """Sorted space-separated "i-j" links; the empty string for no links."""
    return " ".join(f"{i}-{j}" for i, j in sorted(alignment))


def parse_pharaoh(line: str) -> Alignment:
    """Parse "i-j i-j ..." into a tuple of (i, j) pairs."""
    return tuple((int(i), int(j)) for i, j in (p.split("-") for p in line.split()))


class _Grammar:
    """Draws one sentence at a time from a seeded rng as two token lists with shared keys."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.next_key = 0

    def key(self) -> int:
        self.next_key += 1
        return self.next_key

    def linked(self, en: list[str], de: list[str], links: str) -> tuple[list[Tok], list[Tok]]:
        """Tokens for a fixed phrase; links maps each English word to one German word."""
        keys = [self.key() for _ in de]
        de_of = dict(parse_pharaoh(links))
        return [(w, keys[de_of[i]]) for i, w in enumerate(en)], list(zip(de, keys, strict=True))

    def noun_phrase(self, noun: Noun, det: str | int, plural: bool, adj: str | None,
                    case: str) -> tuple[list[Tok], list[Tok]]:
        """det is "the", "a", "my", "your", "" (bare plural) or a number (1 = singular)."""
        if isinstance(det, int):
            plural = det > 1
        slot = "pl" if plural else noun.gender
        if det == "the":
            de_det = _DEF[case][slot]
            adj_end = "en" if plural or (case == "acc" and slot == "m") else "e"
        elif det in ("a", "my", "your") or det == 1:
            stem = {"my": "mein", "your": "dein"}.get(str(det), "ein")
            de_det = stem + _EIN_END[case][slot]
            adj_end = "en" if plural else _MIXED_ADJ[case][slot]
        else:
            de_det, adj_end = (number_to_german(det) if isinstance(det, int) else ""), "e"
        en_det = number_to_english(det) if isinstance(det, int) else det
        words = [(en_det, de_det)] if de_det else []
        if adj is not None:
            words.append((adj, _ADJ_DE[adj] + adj_end))
        words.append((noun.en_pl, noun.de_pl) if plural else (noun.en, noun.de))
        if det == "a" and words[1][0][0] in "aeiou":
            words[0] = ("an", de_det)
        keys = [self.key() for _ in words]
        return ([(e, k) for (e, _), k in zip(words, keys, strict=True)],
                [(d, k) for (_, d), k in zip(words, keys, strict=True)])

    def random_np(self, kinds: str, case: str) -> tuple[list[Tok], list[Tok], int]:
        rng = self.rng
        noun = rng.choice([n for n in NOUNS if n.kind in kinds])
        det: str | int = rng.choices(["the", "a", "my", "your", "", 0], [8, 4, 2, 2, 2, 6])[0]
        if det == 0:
            det = rng.randint(1, 99)
        plural = det == "" or (isinstance(det, int) and det > 1)
        plural = plural or (det in ("the", "my", "your") and rng.random() < 0.4)
        adjs = [a[0] for a in ADJECTIVES if noun.kind in a[2]]
        adj = rng.choice(adjs) if rng.random() < 0.4 else None
        en, de = self.noun_phrase(noun, det, plural, adj, case)
        return en, de, 4 if plural else 2

    def subject(self, kinds: str) -> tuple[list[Tok], list[Tok], int]:
        if self.rng.random() < 0.3:
            en_w, de_w, person = self.rng.choice(PRONOUNS)
            k = self.key()
            return [(en_w, k)], [(de_w, k)], person
        return self.random_np(kinds, "nom")

    def verb(self, v: Verb, tense: str, person: int, question: bool
             ) -> tuple[list[Tok], list[Tok], list[Tok], list[Tok]]:
        """(English aux, English main verb, German finite verb, German clause-final verb)."""
        i, third = min(person, 3), person == 2
        k, k2 = self.key(), self.key()
        if tense == "perfect":
            return ([("has" if third else "have", k)], [(v.en[3], k2)], [(_HABEN[i], k)],
                    [(v.pp, k2)])
        if tense == "future":
            return [("will", k)], [(v.en[0], k2)], [(_WERDEN[i], k)], [(v.pres[3], k2)]
        fin = [(v.pres[i] if tense == "present" else v.past[i], k)]
        if question:
            do = "did" if tense == "past" else "does" if third else "do"
            return [(do, k)], [(v.en[0], k)], fin, []
        en_w = v.en[2] if tense == "past" else v.en[1] if third else v.en[0]
        return [], [(en_w, k)], fin, []

    def time(self) -> tuple[list[Tok], list[Tok], list[str]]:
        if self.rng.random() < 0.3:
            month, day = self.rng.randint(1, 12), self.rng.randint(1, 28)
            en, de = date_to_english(month, day).split(), date_to_german(month, day).split()
            return *self.linked(en, de, "0-0 1-2 2-1"), ["past", "future"]
        en_s, de_s, links, tenses = self.rng.choice(TIMES)
        return *self.linked(en_s.split(), de_s.split(), links), tenses.split()

    def clause(self, tenses: list[str], question: bool = False,
               t_de: list[Tok] | None = None) -> dict[str, list[Tok]]:
        """One clause in each word order it is used in; t_de goes in the German middle field."""
        v = self.rng.choice(VERBS)
        s_en, s_de, person = self.subject("ha" if v.subj == "a" else "h")
        o_en, o_de, _ = self.random_np({"*": "hatb", "t": "atb", "s": "hat"}[v.obj], "acc")
        aux, main, fin, rest = self.verb(v, self.rng.choice(tenses), person, question)
        t_de = t_de or []
        return {"en": s_en + aux + main + o_en, "de": s_de + fin + t_de + o_de + rest,
                "en_q": aux + s_en + main + o_en, "de_q": fin + s_de + o_de + rest,
                "de_v2": t_de + fin + s_de + o_de + rest, "de_sub": s_de + o_de + rest + fin}

    def sentence(self) -> tuple[list[Tok], list[Tok]]:
        rng, k = self.rng, self.key()
        dot = [(".", k)]
        kind = rng.choices(["main", "question", "that", "because"], [9, 3, 4, 4])[0]
        tenses = ["present", "past", "perfect", "future"]
        if kind == "question":
            c = self.clause(tenses, question=True)
            return c["en_q"] + [("?", k)], c["de_q"] + [("?", k)]
        if kind == "main" and rng.random() < 0.4:
            c = self.clause(tenses)
            return c["en"] + dot, c["de"] + dot
        if kind == "main":
            t_en, t_de, tenses = self.time()
            c = self.clause(tenses, t_de=t_de)
            if rng.random() < 0.5:  # fronted time: German verb-second
                return t_en + c["en"] + dot, c["de_v2"] + dot
            return c["en"] + t_en + dot, c["de"] + dot
        sub, kc = self.clause(tenses), self.key()
        if kind == "that":
            s_en, s_de, person = self.subject("h")
            say = rng.choice(SAY_VERBS)
            _, main, fin, _ = self.verb(say, rng.choice(["present", "past"]), person, False)
            return (s_en + main + [("that", kc)] + sub["en"] + dot,
                    s_de + fin + [(",", kc), ("dass", kc)] + sub["de_sub"] + dot)
        c = self.clause(tenses)
        return (c["en"] + [("because", kc)] + sub["en"] + dot,
                c["de"] + [(",", kc), ("weil", kc)] + sub["de_sub"] + dot)


def _attach_punctuation(toks: list[Tok]) -> list[Tok]:
    """Detokenized words: each punctuation mark joined to the word before it ("horse ." ->
    "horse."), keeping that word's key, so the mark adds no alignment link of its own."""
    out: list[Tok] = []
    for word, key in toks:
        if word in PUNCTUATION and out:
            out[-1] = (out[-1][0] + word, out[-1][1])
        else:
            out.append((word, key))
    return out


def _to_pair(en: list[Tok], de: list[Tok]) -> DemoPair:
    en, de = _attach_punctuation(en), _attach_punctuation(de)
    where: dict[int, list[int]] = {}
    for j, (_, k) in enumerate(de):
        where.setdefault(k, []).append(j)
    links = tuple(sorted((i, j) for i, (_, k) in enumerate(en) for j in where.get(k, ())))
    return DemoPair(_text(en), _text(de), links)


def _text(toks: list[Tok]) -> str:
    return " ".join(w for w, _ in toks)


def noun_phrase(noun: str, det: str | int = "the", *, plural: bool = False,
                adj: str | None = None, case: str = "nom") -> tuple[str, str]:
    """One English and German noun phrase, e.g. ("apple", "a", adj="red", case="acc") →
    ("a red apple", "einen roten Apfel"); det is "the", "a", "my", "your", "" or a number."""
    found = [n for n in NOUNS if n.en == noun]
    if not found or case not in _DEF or (adj is not None and adj not in _ADJ_DE):
        raise ValueError(f"unknown noun, adjective or case: {noun!r}, {adj!r}, {case!r}")
    if det not in ("the", "a", "my", "your", "") and not isinstance(det, int):
        raise ValueError(f"unknown determiner: {det!r}")
    if (det == "a" and plural) or (det == "" and not plural):
        raise ValueError(f"determiner {det!r} does not go with plural={plural}")
    en, de = _Grammar(random.Random(0)).noun_phrase(found[0], det, plural, adj, case)
    return _text(en), _text(de)


def generate_pairs(n: int, seed: int, *, unique: bool = False) -> list[DemoPair]:
    """n pairs drawn from random.Random(seed), 4..16 words a side; unique=True: no repeated src."""
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    grammar = _Grammar(random.Random(seed))
    out: list[DemoPair] = []
    seen: set[str] = set()
    for _ in range(50 * n + 1000):
        if len(out) == n:
            return out
        grammar.next_key = 0
        pair = _to_pair(*grammar.sentence())
        n_src, n_tgt = len(pair.src.split()), len(pair.tgt.split())
        if 4 <= n_src <= 16 and 4 <= n_tgt <= 16 and not (unique and pair.src in seen):
            seen.add(pair.src)
            out.append(pair)
    raise ValueError(f"could not draw {n} sentences")


def write_corpus(out_dir: str | os.PathLike, seed: int = 1, n_train: int = 20000,
                 n_dev: int = 500, n_test: int = 500) -> dict[str, Path]:
    """Write {train,dev,test}.{en,de,align} under out_dir; no source sentence is in two splits.

    Test is drawn first, then dev, then train, so dev and test do not depend on n_train.
    Returns a map from file name (e.g. "train.en") to its path.
    """
    if min(n_train, n_dev, n_test) < 0:
        raise NmtError(f"split sizes must be >= 0, got {n_train}, {n_dev}, {n_test}")
    pairs = generate_pairs(n_test + n_dev + n_train, seed, unique=True)
    splits = {"test": pairs[:n_test], "dev": pairs[n_test:n_test + n_dev],
              "train": pairs[n_test + n_dev:]}
    out = Path(out_dir)
    written: dict[str, Path] = {}
    for split in ("train", "dev", "test"):
        columns = {"en": [p.src for p in splits[split]], "de": [p.tgt for p in splits[split]],
                   "align": [format_pharaoh(p.alignment) for p in splits[split]]}
        for ext, lines in columns.items():
            path = out / f"{split}.{ext}"
            with atomic_open(path) as f:
                f.write("".join(line + "\n" for line in lines))
            written[path.name] = path
    return written
