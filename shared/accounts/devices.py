"""Device cookies: a browser that signed in with an address's password before keeps its own sign-in budget.

OWASP's defence against online guessing that cannot be turned into a lockout of the owner: a successful
password sign-in gives the browser a signed cookie naming a random device id for that address. Wrong passwords
from browsers without one (any attacker) share one budget per address; a browser that presents a valid
cookie for the address it signs in to draws on a budget of its own, so a flood of wrong passwords elsewhere
never stops it (``shared.ratelimits.signin_throttle``).

The cookie holds up to ``MAX_ENTRIES`` entries ``<device id>.<signature>`` (one per address signed in from this
browser, newest first), joined by ``~``. The signature is an HMAC of the address and the device id under a key
derived from ``SECRET_KEY``: the cookie does not reveal the address, and cannot be forged or moved to another
address. A sign-in gives the address a fresh entry (the old one's budget stays behind).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets

DEVICE_COOKIE = "conduit_device"
DEVICE_COOKIE_PATH = "/v1"  # sign-in, and the other routes that check a password (password change, deletion)
DEVICE_COOKIE_MAX_AGE_S = 180 * 24 * 3600
MAX_ENTRIES = 5
_ENTRY = re.compile(r"^([A-Za-z0-9_-]{22})\.([A-Za-z0-9_-]{24})$")
_MAX_COOKIE = (22 + 1 + 24 + 1) * MAX_ENTRIES  # entries and their separators


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


class DeviceCookies:
    def __init__(self, secret: bytes) -> None:
        self._key = hmac.new(secret, b"conduit sign-in device cookie", hashlib.sha256).digest()

    def _signature(self, email: str, device_id: str) -> str:
        return _b64(hmac.new(self._key, f"{email}\n{device_id}".encode(), hashlib.sha256).digest()[:18])

    def device_for(self, cookie: str | None, email: str) -> str | None:
        """The device id this browser holds for ``email`` (normalised), if its cookie has a valid entry."""
        for device_id, signature in _entries(cookie):
            if hmac.compare_digest(signature, self._signature(email, device_id)):
                return device_id
        return None

    def issue(self, cookie: str | None, email: str) -> str:
        """The cookie after a successful sign-in to ``email``: a fresh entry for it, then the browser's entries
        for other addresses."""
        device_id = _b64(secrets.token_bytes(16))
        fresh = f"{device_id}.{self._signature(email, device_id)}"
        others = [
            f"{other}.{signature}"
            for other, signature in _entries(cookie)
            if not hmac.compare_digest(signature, self._signature(email, other))
        ]
        return "~".join([fresh, *others][:MAX_ENTRIES])


def _entries(cookie: str | None) -> list[tuple[str, str]]:
    if not cookie or len(cookie) > _MAX_COOKIE:
        return []
    found = []
    for entry in cookie.split("~")[:MAX_ENTRIES]:
        match = _ENTRY.match(entry)
        if match:
            found.append((match.group(1), match.group(2)))
    return found
