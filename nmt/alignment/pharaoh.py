"""Pharaoh alignment files and alignment error rate.

Pharaoh `i-j` links are 0-based (source word i, target word j), sorted; gold files may mark
possible links `i?j` or `ipj`. AER follows Och and Ney (2003) with sure S and possible P (P
includes S): precision |A&P|/|A|, recall |A&S|/|S|, AER 1 - (|A&S| + |A&P|)/(|A| + |S|), all
counted over the whole corpus (0 where a denominator is 0).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from nmt.errors import NmtError
from nmt.io import atomic_open, read_lines

Link = tuple[int, int]  # (source word, target word), 0-based
LINK_RE = re.compile(r"(\d+)([-?p])(\d+)")


def format_pharaoh(links: Sequence[Link]) -> str:
    return " ".join(f"{i}-{j}" for i, j in sorted(links))


def parse_pharaoh(line: str, where: str) -> tuple[set[Link], set[Link]]:
    """`i-j` (sure), `i?j` / `ipj` (possible) links -> (sure, possible); possible includes sure."""
    sure, possible = set(), set()
    for item in line.split():
        m = LINK_RE.fullmatch(item)
        if m is None:
            raise NmtError(f"{where}: malformed link '{item[:40]}' (expected i-j, i?j or ipj)")
        link = (int(m.group(1)), int(m.group(3)))
        possible.add(link)
        if m.group(2) == "-":
            sure.add(link)
    return sure, possible


def read_pharaoh(path: str | Path) -> list[tuple[set[Link], set[Link]]]:
    return [parse_pharaoh(line, f"{path}:{n}") for n, line in enumerate(read_lines(path), 1)]


def write_pharaoh(path: str | Path, alignments: Sequence[Sequence[Link]]) -> None:
    with atomic_open(path) as f:
        f.writelines(format_pharaoh(links) + "\n" for links in alignments)


def check_ranges(alignments: Sequence[tuple[set[Link], set[Link]]], name: str,
                 src_lines: list[str], tgt_lines: list[str], src_name: str,
                 tgt_name: str) -> None:
    """Every link must point at a word of its sentence."""
    for n, ((_, links), s, t) in enumerate(zip(alignments, src_lines, tgt_lines, strict=True), 1):
        S, T = len(s.split()), len(t.split())
        for i, j in sorted(links):
            if i >= S:
                raise NmtError(f"{name}:{n}: source index {i} out of range ({src_name}:{n} "
                               f"has {S} words)")
            if j >= T:
                raise NmtError(f"{name}:{n}: target index {j} out of range ({tgt_name}:{n} "
                               f"has {T} words)")


@dataclass
class AlignmentScores:
    """Corpus-level precision, recall and AER, and the link counts they come from."""

    precision: float
    recall: float
    aer: float
    sentences: int
    predicted: int
    sure: int
    possible: int
    predicted_and_sure: int
    predicted_and_possible: int

    def to_dict(self) -> dict:
        return dict(self.__dict__)


def score_alignments(pred: Sequence[set[Link]],
                     gold: Sequence[tuple[set[Link], set[Link]]]) -> AlignmentScores:
    """Och and Ney's precision, recall and AER; gold is (sure, possible) per sentence."""
    a = s = p = a_s = a_p = 0
    for links, (sure, possible) in zip(pred, gold, strict=True):
        possible = possible | sure
        a, s, p = a + len(links), s + len(sure), p + len(possible)
        a_s, a_p = a_s + len(links & sure), a_p + len(links & possible)
    precision = a_p / a if a else 0.0
    recall = a_s / s if s else 0.0
    aer = 1.0 - (a_s + a_p) / (a + s) if a + s else 0.0
    return AlignmentScores(precision, recall, aer, len(gold), a, s, p, a_s, a_p)
