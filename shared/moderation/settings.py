"""The moderation settings (``Settings.moderation``), read from the environment with the rest in ``shared.settings``."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from pathlib import Path

from shared.infra.env import env_int
from shared.moderation.policy import DEFAULT_POLICY


@dataclasses.dataclass(frozen=True, slots=True)
class ModerationSettings:
    """Moderation: the policy files layered over the shipped one, how long evidence is kept, and the strikes
    (blocks within a window) that suspend an account (0: never automatically)."""

    policy_paths: tuple[Path, ...] = (DEFAULT_POLICY,)
    evidence_retention_s: int = 30 * 24 * 3600
    strikes_to_suspend: int = 5
    strike_window_s: int = 24 * 3600

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> ModerationSettings:
        layered = [Path(p) for p in (env.get("MODERATION_POLICY_PATH") or "").split(os.pathsep) if p]
        return cls(
            policy_paths=(DEFAULT_POLICY, *(p for p in layered if p.resolve() != DEFAULT_POLICY)),
            evidence_retention_s=env_int(env, "MODERATION_EVIDENCE_RETENTION_S", 30 * 24 * 3600, minimum=60),
            strikes_to_suspend=env_int(env, "MODERATION_STRIKES_TO_SUSPEND", 5, minimum=0),
            strike_window_s=env_int(env, "MODERATION_STRIKE_WINDOW_S", 24 * 3600, minimum=60),
        )
