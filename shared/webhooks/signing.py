"""Standard Webhooks signatures (https://www.standardwebhooks.com).

Secrets are ``whsec_`` + base64 of 32 random bytes; the HMAC key is the decoded bytes. A message is signed
as ``v1,<base64 HMAC-SHA256 of "<webhook-id>.<webhook-timestamp>.<body>">``; while a rotated-out secret is
still in its grace period the header carries one signature per secret, separated by spaces, and a
receiver accepts the message if any of them verifies with the secret it knows.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import hashlib
import hmac
import os
from collections.abc import Sequence
from dataclasses import dataclass

from shared.infra.errors import InvalidInput

SECRET_PREFIX = "whsec_"
SECRET_BYTES = 32
DEFAULT_GRACE_S = 24 * 3600
MAX_GRACE_S = 7 * 24 * 3600


def generate_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(os.urandom(SECRET_BYTES)).decode()


def secret_key(secret: str) -> bytes:
    body = secret.removeprefix(SECRET_PREFIX)
    try:
        return base64.b64decode(body + "=" * (-len(body) % 4), validate=True)
    except binascii.Error as exc:  # pragma: no cover - we generate every secret ourselves
        raise ValueError("not a whsec_ secret") from exc


def signature(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    mac = hmac.new(secret_key(secret), f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode()


def signed_headers(secrets: Sequence[str], msg_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    """The three Standard Webhooks headers for one request."""
    if not secrets:
        raise ValueError("at least one secret is needed to sign a webhook")
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": " ".join(signature(s, msg_id, timestamp, body) for s in secrets),
    }


@dataclass(frozen=True, slots=True)
class SecretSet:
    """The current secret and, during a rotation's grace period, the previous one."""

    current: str
    previous: str | None = None
    previous_expires_at: dt.datetime | None = None

    def signing(self, now: dt.datetime) -> list[str]:
        """Secrets to sign with at ``now``: the current one first."""
        secrets = [self.current]
        if self.previous and self.previous_expires_at is not None and self.previous_expires_at > now:
            secrets.append(self.previous)
        return secrets


def check_grace(grace_s: int | None) -> int:
    if grace_s is None:
        return DEFAULT_GRACE_S
    if not 0 <= grace_s <= MAX_GRACE_S:
        raise InvalidInput(f"grace_period_s must be between 0 and {MAX_GRACE_S}", param="grace_period_s")
    return grace_s
