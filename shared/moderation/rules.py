"""The operator's word lists and regular expressions, compiled once per policy into one expression per category
and searched in normalised text (``shared.moderation.normalise``).

A word (or phrase) matches whole, with up to three separators between its letters ("k i l l", "k.i.l.l",
"k_-_ill") and the usual ASCII stand-ins for a letter ("k1ll", "b0mb"); it does not match inside another word
("skill"). Patterns are the operator's regular expressions, searched as written.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from shared.moderation.categories import ALLOW, CATEGORIES
from shared.moderation.normalise import normalise
from shared.moderation.policy import Policy

_SEPARATORS = "[^a-z0-9]{0,3}"
_STAND_INS = {"i": "[il1!|]", "l": "[il1|]", "o": "[o0]", "e": "[e3]", "a": "[a4@]", "s": "[s5$]", "t": "[t7]"}


def word_expression(word: str) -> str:
    """The expression of one listed word or phrase (normalised like the text it is searched in)."""
    letters = [char for char in normalise(word) if not char.isspace()]
    body = _SEPARATORS.join(_STAND_INS.get(char, re.escape(char)) for char in letters)
    return f"(?<![a-z0-9]){body}(?![a-z0-9])"


@dataclass(frozen=True, slots=True)
class RuleMatch:
    category: str
    text_index: int  # which of the checked texts matched


class RuleSet:
    """The compiled rules of a policy's categories that are not ``allow``."""

    def __init__(self, policy: Policy) -> None:
        self._expressions: list[tuple[str, re.Pattern[str]]] = []
        for category in CATEGORIES:
            rules = policy.categories.get(category)
            if rules is None or rules.action == ALLOW or not (rules.words or rules.patterns):
                continue
            alternatives = [word_expression(word) for word in rules.words] + [f"(?:{p})" for p in rules.patterns]
            self._expressions.append((category, re.compile("|".join(alternatives))))

    def __bool__(self) -> bool:
        return bool(self._expressions)

    def match(self, texts: Iterable[str]) -> list[RuleMatch]:
        """Every category that matches, with the first text it matched in (categories in catalogue order)."""
        found: dict[str, RuleMatch] = {}
        for index, text in enumerate(texts):
            normalised = normalise(text)
            for category, expression in self._expressions:
                if category not in found and expression.search(normalised):
                    found[category] = RuleMatch(category, index)
        return sorted(found.values(), key=lambda m: CATEGORIES.index(m.category))
