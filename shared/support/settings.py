"""The support settings (``Settings.support``), read from the environment with the rest in ``shared.settings``."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

from shared.infra.env import env_int


@dataclasses.dataclass(frozen=True, slots=True)
class SupportSettings:
    """Support tickets: attachment caps (an image attachment is decoded only up to ``attachment_max_pixels``)."""

    attachment_max_bytes: int = 5 * 1024 * 1024
    attachments_per_message: int = 5
    attachments_per_ticket: int = 20
    attachment_max_pixels: int = 25_000_000

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> SupportSettings:
        return cls(
            attachment_max_bytes=env_int(env, "SUPPORT_ATTACHMENT_MAX_BYTES", 5 * 1024 * 1024, minimum=1024),
            attachments_per_message=env_int(env, "SUPPORT_ATTACHMENTS_PER_MESSAGE", 5, minimum=1),
            attachments_per_ticket=env_int(env, "SUPPORT_ATTACHMENTS_PER_TICKET", 20, minimum=1),
            attachment_max_pixels=env_int(env, "SUPPORT_ATTACHMENT_MAX_PIXELS", 25_000_000, minimum=1),
        )

    @property
    def max_request_bytes(self) -> int:
        """The largest multipart request a ticket route accepts: every attachment at its cap, plus the text."""
        return self.attachments_per_message * self.attachment_max_bytes + 256 * 1024
