"""A real SMTP server (aiosmtpd) that keeps what it receives, for tests that read the mails people get."""

from __future__ import annotations

import email
import email.policy
import re
import threading
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any

from aiosmtpd.controller import Controller

from tests.harness import free_port, wait_for


@dataclass(frozen=True)
class Received:
    sender: str
    recipients: list[str]
    message: EmailMessage

    @property
    def subject(self) -> str:
        return str(self.message["Subject"])

    @property
    def text(self) -> str:
        body = self.message.get_body(preferencelist=("plain",))
        assert body is not None
        return str(body.get_content())

    def link(self) -> str:
        found = re.search(r"https?://\S+", self.text)
        assert found, f"no link in mail {self.subject!r}"
        return found.group(0)

    def token(self) -> str:
        found = re.search(r"[?&]token=([A-Za-z0-9_-]+)", self.text)
        assert found, f"no token in mail {self.subject!r}"
        return found.group(1)


class _Handler:
    def __init__(self, box: Mailbox) -> None:
        self.box = box

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        with self.box.lock:
            self.box.messages.append(Received(envelope.mail_from, list(envelope.rcpt_tos), message))
        return "250 Message accepted for delivery"


class Mailbox:
    def __init__(self) -> None:
        self.port = free_port()
        self.messages: list[Received] = []
        self.lock = threading.Lock()
        self.controller = Controller(_Handler(self), hostname="127.0.0.1", port=self.port)

    def start(self) -> None:
        self.controller.start()

    def stop(self) -> None:
        self.controller.stop()

    def env(self) -> dict[str, str]:
        return {
            "SMTP_HOST": "127.0.0.1",
            "SMTP_PORT": str(self.port),
            "SMTP_TLS": "none",
            "MAIL_FROM": "Conduit <no-reply@conduit.test>",
        }

    def to(self, address: str) -> list[Received]:
        with self.lock:
            return [m for m in self.messages if address in m.recipients]

    async def wait(self, address: str, subject: str, *, count: int = 1, timeout: float = 20) -> Received:
        """The ``count``-th mail to ``address`` whose subject contains ``subject``."""

        async def arrived() -> Received | None:
            matching = [m for m in self.to(address) if subject in m.subject]
            return matching[count - 1] if len(matching) >= count else None

        received: Received = await wait_for(arrived, timeout=timeout, what=f"mail {subject!r} to {address}")
        return received
