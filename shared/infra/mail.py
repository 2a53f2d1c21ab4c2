"""Outgoing mail: SMTP in production, a local outbox folder in development.

``Mailer.send`` delivers one message (retrying transient SMTP failures a few times). ``Mailer.dispatch``
sends it in the background (the process's ``BackgroundTasks``, drained at shutdown) and returns at once, so a
response never waits for, or reveals anything through, mail delivery. With no ``SMTP_HOST``, each message is
written as an ``.eml`` file under ``<data dir>/outbox`` and the log says where.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import smtplib
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid, parseaddr
from pathlib import Path

from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt, wait_exponential

from shared.infra.background import BackgroundTasks
from shared.infra.env import SettingsError, env_float, env_int, env_str
from shared.infra.ids import uuid7

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class MailSettings:
    """SMTP delivery. With no ``smtp_host`` (development), mails are written to ``outbox_dir`` instead."""

    smtp_host: str | None = None
    smtp_port: int = 587
    smtp_tls: str = "starttls"  # starttls | tls (implicit, usually port 465) | none
    smtp_user: str | None = None
    smtp_password: str | None = None
    smtp_timeout_s: float = 15.0
    sender: str = "Conduit <no-reply@localhost>"
    outbox_dir: Path = Path(".conduit/dev/outbox")

    @classmethod
    def from_env(cls, env: Mapping[str, str], data_dir: Path) -> MailSettings:
        tls = (env.get("SMTP_TLS") or "starttls").strip().lower()
        if tls not in ("starttls", "tls", "none"):
            raise SettingsError(f"SMTP_TLS must be starttls, tls or none, got {tls!r}")
        return cls(
            smtp_host=env_str(env, "SMTP_HOST"),
            smtp_port=env_int(env, "SMTP_PORT", 465 if tls == "tls" else 587, minimum=1),
            smtp_tls=tls,
            smtp_user=env_str(env, "SMTP_USER"),
            smtp_password=env_str(env, "SMTP_PASSWORD"),
            smtp_timeout_s=env_float(env, "SMTP_TIMEOUT_S", 15.0),
            sender=env.get("MAIL_FROM") or "Conduit <no-reply@localhost>",
            outbox_dir=data_dir / "outbox",
        )


@dataclass(frozen=True, slots=True)
class Mail:
    to: str
    subject: str
    text: str


class MailError(RuntimeError):
    pass


def _transient(exc: BaseException) -> bool:
    if isinstance(exc, smtplib.SMTPResponseException):
        return 400 <= exc.smtp_code < 500
    return isinstance(exc, smtplib.SMTPServerDisconnected | smtplib.SMTPConnectError | OSError)


class Mailer:
    def __init__(self, settings: MailSettings, background: BackgroundTasks, *, attempts: int = 3) -> None:
        self.settings = settings
        self.background = background
        self.attempts = attempts
        if not settings.smtp_host:
            log.info("no SMTP_HOST set: outgoing mail is written to %s", settings.outbox_dir)

    def build(self, mail: Mail) -> EmailMessage:
        message = EmailMessage()
        message["From"] = self.settings.sender
        message["To"] = mail.to
        message["Subject"] = mail.subject
        message["Date"] = format_datetime(dt.datetime.now(dt.UTC))
        domain = parseaddr(self.settings.sender)[1].partition("@")[2] or "localhost"
        message["Message-ID"] = make_msgid(domain=domain)
        # Plain ASCII stays readable as is (links intact in the outbox files); anything else is encoded.
        readable = mail.text.isascii() and all(len(line) < 990 for line in mail.text.splitlines())
        message.set_content(mail.text, cte="7bit" if readable else "quoted-printable")
        return message

    async def send(self, mail: Mail) -> Path | None:
        """Deliver now. Returns the outbox file when there is no SMTP server configured."""
        message = self.build(mail)
        if not self.settings.smtp_host:
            path = await asyncio.to_thread(self._write_outbox, message)
            log.info("mail to %s (%r) written to %s", mail.to, mail.subject, path)
            return path
        async for attempt in AsyncRetrying(
            stop=stop_after_attempt(self.attempts),
            wait=wait_exponential(multiplier=0.5, max=5),
            retry=retry_if_exception(_transient),
            reraise=True,
        ):
            with attempt:
                await asyncio.to_thread(self._send_smtp, message)
        return None

    def dispatch(self, mail: Mail) -> None:
        """Send in the background; failures are logged (the person can ask for the mail again)."""

        async def run() -> None:
            try:
                await self.send(mail)
            except Exception as exc:
                log.error("could not send mail %r to %s: %s", mail.subject, mail.to, exc)

        self.background.spawn(run(), name="mail")

    def _send_smtp(self, message: EmailMessage) -> None:
        s = self.settings
        assert s.smtp_host is not None
        context = ssl.create_default_context()
        smtp: smtplib.SMTP
        if s.smtp_tls == "tls":
            smtp = smtplib.SMTP_SSL(s.smtp_host, s.smtp_port, timeout=s.smtp_timeout_s, context=context)
        else:
            smtp = smtplib.SMTP(s.smtp_host, s.smtp_port, timeout=s.smtp_timeout_s)
        with smtp:
            if s.smtp_tls == "starttls":
                smtp.starttls(context=context)
            if s.smtp_user:
                smtp.login(s.smtp_user, s.smtp_password or "")
            smtp.send_message(message)

    def _write_outbox(self, message: EmailMessage) -> Path:
        folder = self.settings.outbox_dir
        folder.mkdir(parents=True, exist_ok=True)
        stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S")
        path = folder / f"{stamp}-{uuid7()}.eml"
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(message.as_bytes())
        tmp.rename(path)
        return path
