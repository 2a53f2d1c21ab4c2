"""The mails people receive about their account. Plain text, one function per message."""

from __future__ import annotations

from shared.accounts.settings import AuthSettings
from shared.infra.mail import Mail


def _link(template: str, token: str) -> str:
    return template.replace("{token}", token)


def _hours(seconds: int) -> str:
    hours = seconds / 3600
    return f"{hours:g} hour" + ("" if hours == 1 else "s")


def verify_email(settings: AuthSettings, email: str, token: str) -> Mail:
    return Mail(
        to=email,
        subject="Confirm your email address for Conduit",
        text=f"""Hello,

Someone (hopefully you) signed up for Conduit with this email address. To confirm it, open this link:

{_link(settings.verify_email_url, token)}

The link works once and expires in {_hours(settings.verify_token_ttl_s)}. If you did not sign up, ignore this
mail: no account will be usable without this confirmation.
""",
    )


def account_exists(settings: AuthSettings, email: str, token: str) -> Mail:
    return Mail(
        to=email,
        subject="You already have a Conduit account",
        text=f"""Hello,

Someone (hopefully you) tried to sign up for Conduit with this email address, but it already has an account.
Sign in with your password, or Google or GitHub if you used them. If you forgot your password, set a new one
with this link:

{_link(settings.reset_password_url, token)}

The link works once and expires in {_hours(settings.reset_token_ttl_s)}. If it was not you, ignore this mail:
nothing has changed.
""",
    )


def reset_password(settings: AuthSettings, email: str, token: str) -> Mail:
    return Mail(
        to=email,
        subject="Reset your Conduit password",
        text=f"""Hello,

Someone (hopefully you) asked to reset the password of the Conduit account for this email address. To choose
a new password, open this link:

{_link(settings.reset_password_url, token)}

The link works once and expires in {_hours(settings.reset_token_ttl_s)}. If it was not you, ignore this mail:
your password has not changed.
""",
    )


def password_changed(email: str) -> Mail:
    return Mail(
        to=email,
        subject="Your Conduit password was changed",
        text="""Hello,

The password of your Conduit account was just changed, and every other signed-in session was ended.
If this was not you, reset your password at once and contact support.
""",
    )


def account_deleted(email: str) -> Mail:
    return Mail(
        to=email,
        subject="Your Conduit account was deleted",
        text="""Hello,

Your Conduit account was deleted as you asked: its API keys were revoked, its sessions ended and your
personal data erased. Billing and usage records are kept without anything that identifies you.

This is the last mail we send to this address.
""",
    )
