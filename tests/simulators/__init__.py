"""Provider simulators: small HTTP servers speaking each provider's real wire format (see base.py).

``Simulators`` runs one of each for the test session; the test catalog (tests/fixtures/catalog.toml)
declares providers ``sim-openai``, ``sim-openai-backup``, ``sim-openai-badkey``, ``sim-replicate``,
``sim-fal`` and ``sim-nokey`` whose base URLs and keys ``env()`` provides.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from tests.harness import Started
from tests.simulators.fal import FalSimulator
from tests.simulators.openai import OpenAISimulator
from tests.simulators.replicate import ReplicateSimulator


@dataclass
class Simulators(Started):
    openai: OpenAISimulator
    openai_backup: OpenAISimulator
    replicate: ReplicateSimulator
    fal: FalSimulator

    @classmethod
    def create(cls) -> Simulators:
        return cls(
            openai=OpenAISimulator("sk-sim-openai"),
            openai_backup=OpenAISimulator("sk-sim-backup"),
            replicate=ReplicateSimulator("r8_sim"),
            fal=FalSimulator("fal-sim-key"),
        )

    @property
    def all(self) -> tuple[OpenAISimulator, OpenAISimulator, ReplicateSimulator, FalSimulator]:
        return (self.openai, self.openai_backup, self.replicate, self.fal)

    def env(self) -> dict[str, str]:
        return {
            "SIM_OPENAI_BASE_URL": self.openai.base_url,
            "SIM_OPENAI_API_KEY": self.openai.key,
            "SIM_OPENAI_BACKUP_BASE_URL": self.openai_backup.base_url,
            "SIM_OPENAI_BACKUP_API_KEY": self.openai_backup.key,
            "SIM_OPENAI_BADKEY_BASE_URL": self.openai.base_url,
            "SIM_OPENAI_BADKEY_API_KEY": "sk-wrong",
            "SIM_REPLICATE_BASE_URL": self.replicate.base_url,
            "SIM_REPLICATE_API_TOKEN": self.replicate.key,
            "SIM_FAL_BASE_URL": self.fal.base_url,
            "SIM_FAL_KEY": self.fal.key,
            # Fast polling and short retry waits keep the suite quick.
            "UPSTREAM_POLL_MIN_S": "0.2",
            "UPSTREAM_POLL_MAX_S": "0.5",
            "PROVIDER_MAX_ATTEMPTS": "3",
        }

    async def start(self) -> None:
        await asyncio.gather(*(sim.start() for sim in self.all))

    async def stop(self) -> None:
        await asyncio.gather(*(sim.stop() for sim in self.all))

    def reset(self) -> None:
        for sim in self.all:
            sim.reset()
