"""Conduit API keys pasted where they do not belong are cut out before anything is stored.

Every text a customer writes that Conduit stores goes through ``redact_keys``: support tickets (subject,
messages, text attachments, attachment file names), task metadata (keys and values), webhook endpoint
descriptions, API key names and the user agent recorded with a session.

A key is ``cdt_`` + 40 base62 characters (``shared.accounts.keys``). The replacement keeps the key's visible
prefix (the same 12 characters ``GET /v1/keys`` lists), so the author can tell which key to rotate, and drops
the rest: what remains cannot be used.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from shared.accounts.keys import KEY_BODY_LENGTH, KEY_PREFIX, VISIBLE_PREFIX_LENGTH

# Not inside a longer run of letters and digits (that would not be a key we issued).
KEY_IN_TEXT = re.compile(rf"(?<![A-Za-z0-9]){KEY_PREFIX}[A-Za-z0-9]{{{KEY_BODY_LENGTH}}}(?![A-Za-z0-9])")


@dataclass(frozen=True, slots=True)
class Redacted:
    text: str
    keys: tuple[str, ...]  # the keys found, in order (each once)


def redact_keys(text: str) -> Redacted:
    found: dict[str, None] = {}

    def replace(match: re.Match[str]) -> str:
        key = match.group(0)
        found[key] = None
        return f"[redacted API key {key[:VISIBLE_PREFIX_LENGTH]}…]"

    return Redacted(KEY_IN_TEXT.sub(replace, text), tuple(found))


def without_keys(text: str) -> str:
    """``text`` with every key cut out (when nobody needs to be told which keys they were)."""
    return redact_keys(text).text
