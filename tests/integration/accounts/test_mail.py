"""Outgoing mail: through SMTP when configured, into the outbox folder otherwise."""

from __future__ import annotations

import email
import email.policy
import logging
from pathlib import Path

import pytest

from shared.infra.background import BackgroundTasks
from shared.infra.mail import Mail, Mailer
from shared.settings import MailSettings, Settings
from tests.integration.accounts.mailbox import Mailbox


async def test_without_smtp_mails_land_in_the_outbox_and_the_log_says_where(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = Settings.from_env({"CONDUIT_DATA_DIR": str(tmp_path)})
    assert settings.mail.smtp_host is None
    with caplog.at_level(logging.INFO, logger="shared.infra.mail"):
        mailer = Mailer(settings.mail, BackgroundTasks())
        path = await mailer.send(Mail(to="dev@example.com", subject="Hello", text="Body text\n"))
    assert path is not None and path.parent == tmp_path / "outbox" and path.suffix == ".eml"
    message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
    assert (message["To"], message["Subject"]) == ("dev@example.com", "Hello")
    assert str(tmp_path / "outbox") in caplog.text
    assert str(path) in caplog.text


async def test_smtp_delivery_and_background_dispatch(mailbox: Mailbox) -> None:
    settings = MailSettings(smtp_host="127.0.0.1", smtp_port=mailbox.port, smtp_tls="none", sender="Ops <ops@x.test>")
    background = BackgroundTasks()
    mailer = Mailer(settings, background)
    assert await mailer.send(Mail(to="now@example.com", subject="Direct", text="one")) is None
    assert (await mailbox.wait("now@example.com", "Direct")).message["From"] == "Ops <ops@x.test>"
    mailer.dispatch(Mail(to="later@example.com", subject="Background", text="two"))
    await background.drain(timeout_s=30)
    assert (await mailbox.wait("later@example.com", "Background", timeout=1)).text.strip() == "two"


async def test_a_dead_smtp_server_is_retried_then_logged_not_raised(
    mailbox: Mailbox, caplog: pytest.LogCaptureFixture
) -> None:
    from tests.harness import free_port

    settings = MailSettings(smtp_host="127.0.0.1", smtp_port=free_port(), smtp_tls="none", smtp_timeout_s=2)
    background = BackgroundTasks()
    mailer = Mailer(settings, background, attempts=2)
    with pytest.raises(ConnectionRefusedError):
        await mailer.send(Mail(to="x@example.com", subject="Lost", text="x"))
    mailer.dispatch(Mail(to="x@example.com", subject="Lost", text="x"))
    await background.drain(timeout_s=30)
    assert "could not send mail 'Lost' to x@example.com" in caplog.text
