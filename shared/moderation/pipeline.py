"""The moderation pipeline: the checks a request's content goes through, in order, and the policy's decision.

Checks (each fills the per-text results):

* ``RulesCheck``: the operator's word lists and patterns (``shared.moderation.rules``), in process, always;
* ``ModelCheck``: a moderation model through a provider (``shared.providers.moderation``), when the policy names
  one; when it fails or times out, each category with ``on_model_error = "closed"`` is a hit (``model_error``)
  and the others are let through.

``Content`` holds what is checked: the request's texts. A check of input images joins the list as one more
``Check`` reading ``Content.images``.
"""

from __future__ import annotations

import base64
import dataclasses
import logging
import time
import uuid
from collections.abc import Awaitable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from redis.asyncio import Redis

from shared.accounts.keys import Principal
from shared.catalog import Catalog
from shared.infra import tracing
from shared.infra.background import BackgroundTasks
from shared.infra.db import Database
from shared.moderation.categories import ALLOW, MODEL, MODEL_ERROR, RULES
from shared.moderation.decisions import ContentPolicyViolation, Decision, Hit, TextResult
from shared.moderation.events import StrikePolicy, Subject, record_block, record_flags
from shared.moderation.normalise import warm_up
from shared.moderation.policy import Policy, PolicyError
from shared.moderation.rules import RuleSet
from shared.moderation.texts import request_texts
from shared.providers.base import Output, ProviderError
from shared.providers.moderation import ModelVerdict, ModerationModel
from shared.providers.upstream_client import UpstreamClient
from shared.settings import Settings

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Content:
    """What a request carries that is moderated: its texts (an image check would add the input images here)."""

    texts: tuple[str, ...]
    images: tuple[bytes, ...] = ()


class Check(Protocol):
    async def check(self, content: Content, results: list[TextResult]) -> None: ...


class RulesCheck:
    def __init__(self, policy: Policy) -> None:
        self.rules = RuleSet(policy)

    async def check(self, content: Content, results: list[TextResult]) -> None:
        if not self.rules:
            return
        for match in self.rules.match(content.texts):
            results[match.text_index].add(Hit(match.category, RULES, match.text_index))


class ModelCheck:
    def __init__(self, policy: Policy, model: ModerationModel) -> None:
        self.model = model
        self.images = policy.model is not None and policy.model.images
        self.fail_closed = [name for name, c in policy.categories.items() if c.fail_closed and c.action != ALLOW]

    async def check(self, content: Content, results: list[TextResult]) -> None:
        if content.texts:
            await self._judge(self.model.classify(list(content.texts)), results)

    async def check_images(self, urls: Sequence[str], results: list[TextResult]) -> None:
        if urls:
            await self._judge(self.model.classify_images(list(urls)), results)

    async def _judge(self, verdicts_of: Awaitable[list[ModelVerdict]], results: list[TextResult]) -> None:
        try:
            with tracing.span("moderation.model", provider=self.model.name, model=self.model.model):
                verdicts = await verdicts_of
        except ProviderError as exc:
            log.warning("moderation model %s failed (%s): %s", self.model.name, exc.code, exc.message)
            for category in self.fail_closed:
                results[0].add(Hit(category, MODEL_ERROR, 0))
            return
        for index, verdict in enumerate(verdicts):
            results[index].scores.update(verdict.scores)
            for category in verdict.categories:
                results[index].add(Hit(category, MODEL, index))


class Moderator:
    """The process's moderation: its policy, its checks, where events go."""

    def __init__(
        self,
        policy: Policy,
        checks: Sequence[Check],
        *,
        db: Database,
        redis: Redis,
        background: BackgroundTasks,
        strikes: StrikePolicy,
    ) -> None:
        self.policy = policy
        self.checks = list(checks)
        self.db = db
        self.redis = redis
        self.background = background
        self.strikes = strikes
        # the model check that judges images (``[model] images = true``); None: images are not checked
        self.images = next((c for c in self.checks if isinstance(c, ModelCheck) and c.images), None)

    @classmethod
    def build(
        cls,
        policy: Policy,
        settings: Settings,
        catalog: Catalog,
        *,
        http: UpstreamClient,
        db: Database,
        redis: Redis,
        background: BackgroundTasks,
    ) -> Moderator:
        """Set up the policy's checks (``PolicyError`` for a model on a provider that cannot serve it)."""
        checks: list[Check] = [RulesCheck(policy)]
        if policy.model is not None:
            spec = catalog.providers.get(policy.model.provider)
            if spec is None or spec.protocol not in ("openai", "local"):
                raise PolicyError(f"{policy.source}: model.provider must be an OpenAI-compatible provider of the "
                                  f"catalog (or local), got {policy.model.provider!r}")  # fmt: skip
            if spec.protocol == "openai":  # local: the rules only, offline
                resolved = spec.resolve(settings.provider_env)
                if not resolved.configured:
                    log.warning("moderation model provider %s is not configured: its categories fail as set "
                                "(on_model_error)", spec.name)  # fmt: skip
                model = ModerationModel(resolved, http, protocol=policy.model.protocol, model=policy.model.model,
                                        timeout_s=policy.model.timeout_s)  # fmt: skip
                checks.append(ModelCheck(policy, model))
        warm_up()
        strikes = StrikePolicy(settings.moderation.strikes_to_suspend, settings.moderation.strike_window_s)
        return cls(policy, checks, db=db, redis=redis, background=background, strikes=strikes)

    def moderates_outputs(self, model_id: str) -> bool:
        return model_id in self.policy.output_models

    async def check_request(
        self,
        principal: Principal,
        params: Mapping[str, Any],
        *,
        source: str,
        model: str,
        kind: str,
        task_id: uuid.UUID | None = None,
        request_id: uuid.UUID | None = None,
    ) -> None:
        """The step every route runs before it holds credits: the texts of ``params`` (``request_texts``). A
        flagged request's events name its task or its (synchronous) request, whose usage record shows them."""
        subject = Subject.of(principal, source, model, kind, task_id=task_id, request_id=request_id)
        await self.moderate(request_texts(params), subject)

    async def check_outputs(self, subject: Subject, outputs: Sequence[Output]) -> None:
        """The generated text of a model whose outputs the policy moderates (``outputs.models``); raises
        ``ContentPolicyViolation`` when it is blocked. (Generated images: an image check's business.)"""
        await self.check_output_texts(subject, [output.text for output in outputs if output.text])
        if self.moderates_outputs(subject.model):
            images = [image for output in outputs if (image := output_image(output)) is not None]
            await self.check_images(dataclasses.replace(subject, stage="output"), images)

    async def check_images(self, subject: Subject, urls: Sequence[str]) -> None:
        """Images (``data:`` URIs or URLs) judged by the moderation model when the policy says so (``[model]
        images = true``); with the rules only, images are not checked. Blocks and flags as ``moderate`` does."""
        if self.images is None or not urls:
            return
        started = time.monotonic()
        results = [TextResult() for _ in urls]
        with tracing.span("moderation.images", source=subject.source, stage=subject.stage):
            await self.images.check_images(urls, results)
        labels = [f"[image {index + 1} of {len(urls)}]" for index in range(len(urls))]
        await self._decided(Decision.of(self.policy, results), labels, subject, started)

    async def check_output_texts(self, subject: Subject, texts: Sequence[str]) -> None:
        """Generated text (a task's outputs, a chat completion's choices, a stream's accumulated choices) of a
        model whose outputs the policy moderates; raises ``ContentPolicyViolation`` when it is blocked."""
        texts = [text for text in texts if text]
        if texts and self.moderates_outputs(subject.model):
            await self.moderate(texts, dataclasses.replace(subject, stage="output"))

    async def classify(self, texts: Sequence[str]) -> list[TextResult]:
        """Each text's categories, by every check (``POST /v1/moderations`` answers these)."""
        content = Content(tuple(texts))
        results = [TextResult() for _ in content.texts] or [TextResult()]
        for check in self.checks:
            await check.check(content, results)
        return results[: len(content.texts)]

    async def moderate(self, texts: Sequence[str], subject: Subject) -> Decision:
        """The moderation step of a request (or of an output): raises ``ContentPolicyViolation`` naming the
        category when the policy blocks it (after recording the block); a flagged request is recorded (in the
        background) and goes on."""
        started = time.monotonic()
        with tracing.span("moderation", source=subject.source, stage=subject.stage):
            decision = Decision.of(self.policy, await self.classify(texts))
        return await self._decided(decision, texts, subject, started)

    async def _decided(self, decision: Decision, texts: Sequence[str], subject: Subject, started: float) -> Decision:
        """Record a block (and raise) or the flags of ``decision``; ``texts`` are the excerpts' sources."""
        if decision.blocked is not None:
            latency_ms = int((time.monotonic() - started) * 1000)
            await record_block(self.db, self.redis, self.strikes, subject, decision, texts, self.policy.version,
                               latency_ms)  # fmt: skip
            raise ContentPolicyViolation(decision.blocked.category, output=subject.stage == "output")
        if decision.flagged:
            self.background.spawn(record_flags(self.db, subject, decision, texts, self.policy.version),
                                  name="moderation flags")  # fmt: skip
        return decision


def output_image(output: Output) -> str | None:
    """A generated image as the moderation model takes it: its bytes as a ``data:`` URI, or its URL."""
    if output.type != "image":
        return None
    if output.data is not None:
        return f"data:{output.content_type or 'image/png'};base64,{base64.b64encode(output.data).decode()}"
    return output.url


__all__ = ["Check", "Content", "Moderator", "Subject"]
