"""The operator's word lists and regular expressions, compiled once per policy, matched on normalised text
(``shared.moderation.normalise``).

Words and phrases are matched on the text's tokens (runs of letters and digits), not with one regular expression
per word: a set lookup per token costs the same for ten words as for ten thousand. A word matches a whole token
(``kill`` does not match ``skill``), a phrase consecutive tokens (``make a bomb`` matches ``make-a-bomb``). Both
sides are compared in a canonical form where the usual stand-ins are one letter (``1``, ``l`` and ``i``; ``0`` and
``o``; ``3`` and ``e``; ``4`` and ``a``; ``5`` and ``s``; ``7`` and ``t``), so ``k1ll`` and ``b0mb`` match.
Spaced-out letters are glued back: consecutive tokens of one or two characters, with one to three separators
between them, are also looked up joined (``k i l l``, ``k.i.l.l``, ``k i ll``). Patterns are the operator's
regular expressions, searched in the normalised text as written.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from shared.moderation.categories import ALLOW, CATEGORIES
from shared.moderation.normalise import normalise
from shared.moderation.policy import Policy

_TOKEN = re.compile(r"[a-z0-9]+")
_CANONICAL = str.maketrans({"l": "i", "1": "i", "0": "o", "3": "e", "4": "a", "5": "s", "7": "t"})
GLUED_TOKEN_MAX = 2  # tokens this short may be spaced-out letters
GLUE_GAP_MAX = 3  # separators allowed between spaced-out letters
GLUED_WORD_MAX = 24  # the longest glued word looked up, in tokens


def tokens(normalised: str) -> list[str]:
    """The canonical tokens of normalised text."""
    return _TOKEN.findall(normalised.translate(_CANONICAL))


# runs of two or more short tokens with one to three separators between them
_SPACED_RUN = re.compile(
    rf"(?<![a-z0-9])[a-z0-9]{{1,{GLUED_TOKEN_MAX}}}"
    rf"(?:[^a-z0-9]{{1,{GLUE_GAP_MAX}}}[a-z0-9]{{1,{GLUED_TOKEN_MAX}}}(?![a-z0-9]))+"
)


def _glued(normalised: str) -> Iterable[str]:
    """Every join of two or more consecutive short tokens that stand close together (spaced-out letters)."""
    for run in _SPACED_RUN.findall(normalised):
        yield from _joins(_TOKEN.findall(run))


def _joins(run: list[str]) -> Iterable[str]:
    for start in range(len(run) - 1):
        joined = run[start]
        for token in run[start + 1 : start + GLUED_WORD_MAX]:
            joined += token
            yield joined.translate(_CANONICAL)


@dataclass(frozen=True, slots=True)
class RuleMatch:
    category: str
    text_index: int  # which of the checked texts matched


class RuleSet:
    """The compiled rules of a policy's categories that are not ``allow``."""

    def __init__(self, policy: Policy) -> None:
        self._words: dict[str, list[str]] = {}  # canonical token -> categories
        self._phrases: dict[tuple[str, ...], list[str]] = {}  # canonical tokens -> categories
        self._patterns: list[tuple[str, re.Pattern[str]]] = []
        for category in CATEGORIES:
            rules = policy.categories.get(category)
            if rules is None or rules.action == ALLOW:
                continue
            for word in rules.words:
                parts = tuple(tokens(normalise(word)))
                if len(parts) == 1:
                    self._words.setdefault(parts[0], []).append(category)
                elif parts:
                    self._phrases.setdefault(parts, []).append(category)
            if rules.patterns:
                self._patterns.append((category, re.compile("|".join(f"(?:{p})" for p in rules.patterns))))
        self._phrase_lengths = sorted({len(phrase) for phrase in self._phrases})

    def __bool__(self) -> bool:
        return bool(self._words or self._phrases or self._patterns)

    def _categories(self, normalised: str) -> set[str]:
        found: set[str] = set()
        words, phrases = self._words, self._phrases
        parts = tokens(normalised)
        for part in parts:
            if part in words:
                found.update(words[part])
        for length in self._phrase_lengths:
            for start in range(len(parts) - length + 1):
                hit = phrases.get(tuple(parts[start : start + length]))
                if hit:
                    found.update(hit)
        if words:
            for joined in _glued(normalised):
                if joined in words:
                    found.update(words[joined])
        for category, expression in self._patterns:
            if category not in found and expression.search(normalised):
                found.add(category)
        return found

    def match(self, texts: Iterable[str]) -> list[RuleMatch]:
        """Every category that matches, with the first text it matched in (categories in catalogue order)."""
        first: dict[str, RuleMatch] = {}
        for index, text in enumerate(texts):
            for category in self._categories(normalise(text)):
                first.setdefault(category, RuleMatch(category, index))
        return sorted(first.values(), key=lambda m: CATEGORIES.index(m.category))
