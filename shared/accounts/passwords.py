"""Passwords: argon2id hashes (argon2-cffi's RFC 9106 low-memory profile) and the password policy.

Hashing is deliberately slow and memory-hungry (64 MiB, ~0.1 s), so it runs in a thread, at most a few at a
time per process, and never on a path that an API key uses.
"""

from __future__ import annotations

import asyncio
import functools
import os
import weakref

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from shared.infra.errors import InvalidInput

MIN_LENGTH = 10
MAX_LENGTH = 256

_hasher = PasswordHasher()  # argon2id, t=3, m=64 MiB, p=4
_SLOTS = max(2, os.cpu_count() or 2)
_semaphores: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore] = weakref.WeakKeyDictionary()

# A short list of the passwords attackers try first (long enough to pass the length rule).
_COMMON = """
    1234567890 0123456789 12345678910 1111111111 0000000000 1234512345 1qaz2wsx3edc qwertyuiop
    qwertyuiop1 qwerty1234 qwerty12345 1q2w3e4r5t 1q2w3e4r5t6y q1w2e3r4t5 asdfghjkl1 zxcvbnm123
    password12 password123 password1234 password1! passw0rd123 p@ssw0rd12 p@ssword123 password2024
    password2025 password2026 iloveyou12 iloveyou123 sunshine12 princess12 football12 baseball12
    welcome123 welcome1234 letmein123 letmein1234 admin12345 administrator monkey1234 dragon1234
    master1234 superman12 trustno1234 abcdefghij abc1234567 abcd123456 123456789a a123456789
    123qweasdzxc qweasdzxc123 changeme123 changeme1234 secret1234 starwars12 whatever12 football123
    computer12 internet12 qwerty123456 1234567890a aa12345678 conduit123 conduit1234
"""
COMMON_PASSWORDS = frozenset(_COMMON.split())


def check_password_policy(password: str, *, email: str | None = None) -> None:
    """Raise ``InvalidInput`` (code ``weak_password``, param ``password``) with the reason, or return."""

    def refuse(reason: str) -> None:
        raise InvalidInput(f"password {reason}", code="weak_password", param="password")

    if not isinstance(password, str):
        refuse("must be a string")
    if len(password) < MIN_LENGTH:
        refuse(f"must be at least {MIN_LENGTH} characters long")
    if len(password) > MAX_LENGTH:
        refuse(f"must be at most {MAX_LENGTH} characters long")
    classes = {
        "lower" if c.islower() else "upper" if c.isupper() else "digit" if c.isdigit() else "other" for c in password
    }
    if len(classes) < 2:
        refuse("must mix at least two kinds of characters (lower case, upper case, digits, symbols)")
    lowered = password.lower()
    if email:
        local = email.lower().partition("@")[0]
        mostly_local = len(local) >= 4 and local in lowered and len(lowered) - len(local) < 4
        if lowered in (email.lower(), local) or mostly_local:
            refuse("must not be your email address")
    if lowered in COMMON_PASSWORDS:
        refuse("is too common; choose something harder to guess")
    if len(set(lowered)) < 4:
        refuse("repeats too few different characters; choose something harder to guess")


async def hash_password(password: str) -> str:
    async with _slots():
        return await asyncio.to_thread(_hasher.hash, password)


async def verify_password(password_hash: str | None, password: str) -> bool:
    """Constant work whether or not there is a hash (an unknown account costs the same as a wrong password)."""
    async with _slots():
        return await asyncio.to_thread(_verify, password_hash or _dummy_hash(), password, password_hash is not None)


def needs_rehash(password_hash: str) -> bool:
    return _hasher.check_needs_rehash(password_hash)


def _verify(password_hash: str, password: str, real: bool) -> bool:
    try:
        return _hasher.verify(password_hash, password) and real
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def _slots() -> asyncio.Semaphore:
    """Limits concurrent hashes per event loop (each needs 64 MiB and a core for ~0.1 s)."""
    loop = asyncio.get_running_loop()
    semaphore = _semaphores.get(loop)
    if semaphore is None:
        semaphore = _semaphores[loop] = asyncio.Semaphore(_SLOTS)
    return semaphore


@functools.cache
def _dummy_hash() -> str:
    """A hash of a random password, to spend the same time on "no such account" as on a wrong password."""
    return _hasher.hash(os.urandom(16).hex())
