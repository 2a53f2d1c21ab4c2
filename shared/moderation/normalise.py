"""Text as the operator's rules see it: compatibility forms folded (full-width and mathematical letters,
ligatures), accents, zero-width and other invisible format characters dropped, look-alike letters from other
scripts (Unicode's confusables table, ``confusable-homoglyphs``) replaced by the ASCII letter they imitate,
case folded and runs of white space made one space. Spaced-out letters ("k i l l", "k.i.l.l") are the rules'
business (``shared.moderation.rules`` lets up to three separators stand between the letters of a word).
"""

from __future__ import annotations

import re
import sys
import unicodedata
from functools import cache

_SPACES = re.compile(r"\s+")
_DROPPED_CATEGORIES = frozenset({"Cf", "Mn", "Me"})  # format (zero-width, bidi, soft hyphen), combining marks


@cache
def fold_table() -> dict[int, str | None]:
    """``str.translate`` table: invisible characters and combining marks to nothing, non-ASCII look-alikes to
    their ASCII letter or digit. Built once per process (``warm_up``), about half a second."""
    from confusable_homoglyphs.confusables import confusables_data  # loads its JSON table on import

    table: dict[int, str | None] = {}
    for char, homoglyphs in confusables_data.items():
        if len(char) != 1 or char.isascii():
            continue  # ASCII stays itself: "1" is not folded to "l", nor "0" to "O"
        targets = [h.get("c", "") for h in homoglyphs]
        targets = [t for t in targets if len(t) == 1 and t.isascii() and t.isalnum()]
        if targets:  # the look-alike of the same case first (Greek capital iota is "I", not "l"), letters first
            targets.sort(key=lambda t: (t.isupper() != char.isupper(), t.isdigit()))
            table[ord(char)] = targets[0].lower()
    for code in range(0x80, sys.maxunicode + 1):
        char = chr(code)
        if unicodedata.category(char) in _DROPPED_CATEGORIES:
            table[code] = None
        elif code not in table and char.isalpha():  # a small letter whose capital is a look-alike (Cyrillic к)
            capital = char.upper()
            if len(capital) == 1 and table.get(ord(capital)):
                table[code] = table[ord(capital)]
    return table


def warm_up() -> None:
    fold_table()


def normalise(text: str) -> str:
    """The form rules are matched against (see the module's docstring)."""
    if not text.isascii():
        text = unicodedata.normalize("NFKD", text).translate(fold_table())
    return _SPACES.sub(" ", text.casefold())
