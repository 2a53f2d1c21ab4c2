"""The password policy and argon2id hashing."""

from __future__ import annotations

import pytest

from shared.accounts.passwords import check_password_policy, hash_password, needs_rehash, verify_password
from shared.infra.errors import InvalidInput


@pytest.mark.parametrize(
    ("password", "reason"),
    [
        ("Short1!", "at least 10"),
        ("x" * 257 + "A1", "at most 256"),
        ("onlylowercaseletters", "two kinds"),
        ("ONLYUPPERCASE", "two kinds"),
        ("12345678901234", "two kinds"),
        ("password123", "too common"),
        ("Password123", "too common"),
        ("abababababab1", "too few different"),
        ("alice.smith@example.com", "email"),
        ("Alice.Smith", "email"),
        ("alice.smith12", "email"),
    ],
)
def test_weak_passwords_are_refused_with_the_reason(password: str, reason: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        check_password_policy(password, email="alice.smith@example.com")
    assert refused.value.code == "weak_password"
    assert refused.value.param == "password"
    assert reason in refused.value.message


@pytest.mark.parametrize("password", ["correct horse 42", "Tr0ub4dor&3x", "ünïcödé-pass-7", "alice.smith+work!"])
def test_reasonable_passwords_pass(password: str) -> None:
    check_password_policy(password, email="alice.smith@example.com")


async def test_argon2id_hashes_verify_and_wrong_passwords_do_not() -> None:
    hashed = await hash_password("correct horse 42")
    assert hashed.startswith("$argon2id$")
    assert "correct horse" not in hashed
    assert hashed != await hash_password("correct horse 42")  # salted
    assert await verify_password(hashed, "correct horse 42")
    assert not await verify_password(hashed, "correct horse 43")
    assert not await verify_password(None, "correct horse 42")  # no account: same work, always false
    assert not await verify_password("not a hash", "correct horse 42")
    assert not needs_rehash(hashed)
    assert needs_rehash("$argon2id$v=19$m=1024,t=1,p=1$c29tZXNhbHQ$RdescudvJCsgt3ub+b+dWRWJTmaaJObG")
