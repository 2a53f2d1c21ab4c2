"""Where a browser may be sent after signing in: paths on this site only (an open redirect otherwise).

A ``next`` or ``redirect_to`` value passes when it begins with exactly one ``/`` and nothing in it can make a
browser read it as another origin. Browsers drop tabs and newlines anywhere in a URL and trim control
characters and spaces at its ends (``/<tab>/evil.example`` becomes ``//evil.example``), read ``\\`` as ``/``,
and take ``//host`` as another host. So a value with a control, format or separator character, a back slash,
or a leading ``//`` is refused, and so is one whose percent-decoded form (decoded until it no longer changes)
has any of those: a later decoding step must not be able to make one up.
"""

from __future__ import annotations

import unicodedata
from urllib.parse import unquote, urlsplit

MAX_LENGTH = 2000
_DECODING_ROUNDS = 4


def same_site_path(target: str | None) -> str | None:
    """``target`` if it is a path on this site (with its query and fragment), else None."""
    if not target or len(target) > MAX_LENGTH or has_unsafe_characters(target):
        return None
    decoded = _fully_decoded(target)
    if decoded is None or any(unicodedata.category(c) == "Cc" or c == "\\" for c in decoded):
        return None
    for form in (target, decoded):
        if not form.startswith("/") or form.startswith("//"):
            return None
    parts = urlsplit(target)
    if parts.scheme or parts.netloc:
        return None
    return target


def has_unsafe_characters(value: str) -> bool:
    """Whether ``value`` holds a back slash or a character that is not visible: control (tab, newline, …),
    format (zero-width, bidirectional marks), unassigned, or a space of any kind."""
    return any(c == "\\" or unicodedata.category(c)[0] in "CZ" for c in value)


def _fully_decoded(value: str) -> str | None:
    for _ in range(_DECODING_ROUNDS):
        decoded = unquote(value)
        if decoded == value:
            return value
        value = decoded
    return None  # still changing: nested encodings nobody needs
