"""The answers of /v1/auth."""

from __future__ import annotations

from typing import Literal

import msgspec

from shared.accounts.service import Account
from shared.accounts.sessions import SessionInfo

PENDING_MESSAGE = "if the address can receive it, a mail is on its way; check your inbox (and spam folder)"


class AuthRequest(msgspec.Struct):
    """A request that mails its owner (sign-up, resent verification, password reset): accepted, whether or not
    the address has an account."""

    object: Literal["auth_request"]
    status: Literal["accepted"]
    message: str
    email: str


def pending(email: str) -> AuthRequest:
    return AuthRequest(object="auth_request", status="accepted", message=PENDING_MESSAGE, email=email)


class EmailVerification(msgspec.Struct):
    object: Literal["email_verification"]
    verified: bool
    account_id: str
    email: str


class SignedIn(msgspec.Struct):
    """An open session: the account, the session, and the CSRF token to send in ``X-CSRF-Token`` with it."""

    object: Literal["signed_in"]
    account: Account
    session: SessionInfo
    csrf_token: str


class PasswordReset(msgspec.Struct):
    object: Literal["password_reset"]
    reset: bool
    message: str


class OAuthSignedIn(SignedIn):
    """A sign-in with Google or GitHub; ``account_created``: this sign-in created the account."""

    account_created: bool
