"""Rate limits of the API: requests per minute and in-flight tasks, per API key and per account.

Which limits apply to a caller comes from its ``Principal`` (cached per API process, invalidated over Redis
pub/sub when a key or account changes): the key's and the account's own values when set, the defaults from
``RateLimitSettings`` otherwise (0 in the settings: no such limit). A session has no key: only the account's
limits apply.

* Requests per minute: a GCRA rate per key and per account (``RPM`` per 60 s, bursts up to ``RPM``).
* In-flight tasks: a slot per submitted task, per key and per account, from the submit until the task ends.

Every request checks all of its limits in one Redis script call (``RateLimiter.admit``), all or nothing, so
the limits hold exactly across any number of API processes. A submit's slots are taken for the new task id
before the task exists; the caller gives them back if the submit does not create the task.

Releasing a slot when a task ends is ``TaskSlots.release`` (called after the terminal transaction commits).
A release can be lost (a process dies between the commit and the call, Redis is unreachable, Redis restarts
empty), so the database — which knows the active tasks — repairs the slots:

* when a submit is refused for want of a slot, the refusing sets are checked against the database at once
  (``TaskSlots.purge_finished``) and the submit is retried once: a lost release never refuses a submit;
* the periodic sweep (``TaskSlots.repair``) adds the slots of active tasks that are missing (after a Redis
  restart) and removes those of tasks that have ended;
* every slot also expires on its own after the longest task lifetime, as a last resort.
"""

from __future__ import annotations

import logging
import math
import time
import uuid
from dataclasses import dataclass

from shared.accounts.keys import Principal
from shared.db import Database
from shared.errors import RateLimited
from shared.ids import parse_uuid
from shared.ratelimit import Admission, Decision, Rate, RateLimiter, Slot
from shared.settings import RateLimitSettings
from shared.tasks import ACTIVE

log = logging.getLogger(__name__)

PERIOD_S = 60.0
# A slot whose member is younger than this is never repaired away: its task may not be committed yet.
SLOT_GRACE_S = 60.0


@dataclass(frozen=True, slots=True)
class Limit:
    """One limit in force for a request, as the headers describe it."""

    name: str  # "key" / "account" requests per minute, "key_tasks" / "account_tasks" in flight
    decision: Decision


@dataclass(frozen=True, slots=True)
class LimitCheck:
    """What a request's limit check found: the limit that refused it, or the one closest to running out."""

    allowed: bool
    binding: Limit | None  # None when no limit applies or Redis could not be asked (failing open)
    concurrency: Limit | None = None  # on submits: the in-flight limit closest to running out
    slot_taken: bool = False


def _rate_key(scope: str, ident: uuid.UUID) -> str:
    return f"rpm:{scope}:{ident}"


def _slot_key(scope: str, ident: uuid.UUID) -> str:
    return f"tasks:{scope}:{ident}"


def _effective(override: int | None, default: int) -> int | None:
    """A limit in force: the override, else the default; None when there is none (a default of 0)."""
    value = override if override is not None else default
    return value if value > 0 else None


class RequestLimits:
    def __init__(self, limiter: RateLimiter, settings: RateLimitSettings, *, slot_ttl_s: float) -> None:
        self.limiter = limiter
        self.settings = settings
        self.slot_ttl_s = slot_ttl_s
        self.slots = TaskSlots(limiter)

    def rates_for(self, principal: Principal) -> list[tuple[str, str, int]]:
        """(name, redis key, requests per minute) of every rate in force for the caller."""
        out = []
        if principal.api_key_id is not None:
            rpm = _effective(principal.key_rpm, self.settings.rpm_per_key)
            if rpm:
                out.append(("key", _rate_key("key", principal.api_key_id), rpm))
        rpm = _effective(principal.account_rpm, self.settings.rpm_per_account)
        if rpm:
            out.append(("account", _rate_key("account", principal.account_id), rpm))
        return out

    def slots_for(self, principal: Principal) -> list[tuple[str, Slot]]:
        out = []
        if principal.api_key_id is not None:
            cap = _effective(principal.key_max_inflight, self.settings.inflight_per_key)
            if cap:
                out.append(("key_tasks", Slot(_slot_key("key", principal.api_key_id), cap)))
        cap = _effective(principal.account_max_inflight, self.settings.inflight_per_account)
        if cap:
            out.append(("account_tasks", Slot(_slot_key("account", principal.account_id), cap)))
        return out

    async def check(
        self, principal: Principal, *, db: Database | None = None, task_id: uuid.UUID | None = None
    ) -> LimitCheck:
        """Count one request; with ``task_id`` (a submit) also take its in-flight slots. Raises ``LimitExceeded``
        (a ``RateLimited``) when a limit refuses, ``ServiceUnavailable`` when Redis is unreachable and the
        limiter fails closed. ``db`` lets a refusal for want of a slot check for lost releases first."""
        rates = self.rates_for(principal)
        slots = self.slots_for(principal) if task_id is not None else []
        if not rates and not slots:
            return LimitCheck(allowed=True, binding=None)
        member = str(task_id) if task_id is not None else ""
        admission = await self._admit(rates, slots, member)
        if not admission.allowed and db is not None and self._refused_by_slots(admission):
            # Maybe a release was lost: check the refusing sets against the database, then try once more.
            refusing = [slot for (_, slot), d in zip(slots, admission.slots, strict=True) if not d.allowed]
            if await self.slots.purge_finished(db, [slot.key for slot in refusing]):
                admission = await self._admit(rates, slots, member)
        result = self._outcome(rates, slots, admission)
        if not result.allowed:
            raise LimitExceeded(result)
        return result

    async def _admit(self, rates: list[tuple[str, str, int]], slots: list[tuple[str, Slot]], member: str) -> Admission:
        return await self.limiter.admit(
            [(key, Rate(rpm, PERIOD_S)) for _, key, rpm in rates],
            [slot for _, slot in slots],
            member=member,
            ttl_s=self.slot_ttl_s,
        )

    @staticmethod
    def _refused_by_slots(admission: Admission) -> bool:
        return all(d.allowed for d in admission.rates) and not all(d.allowed for d in admission.slots)

    @staticmethod
    def _outcome(rates: list[tuple[str, str, int]], slots: list[tuple[str, Slot]], admission: Admission) -> LimitCheck:
        if admission.degraded:
            return LimitCheck(allowed=True, binding=None)
        rate_limits = [Limit(name, d) for (name, _, _), d in zip(rates, admission.rates, strict=True)]
        slot_limits = [Limit(name, d) for (name, _), d in zip(slots, admission.slots, strict=True)]
        concurrency = min(slot_limits, key=lambda lim: lim.decision.remaining, default=None)
        if not admission.allowed:
            refused = [lim for lim in rate_limits + slot_limits if not lim.decision.allowed]
            # The refusal that lasts longest is the one to report (an unknown wait counts as a second).
            binding = max(refused, key=lambda lim: _wait(lim.decision))
            return LimitCheck(allowed=False, binding=binding, concurrency=concurrency)
        binding = min(rate_limits, key=lambda lim: lim.decision.remaining, default=None)
        return LimitCheck(allowed=True, binding=binding, concurrency=concurrency, slot_taken=bool(slots))


def _wait(decision: Decision) -> float:
    return decision.retry_after_s if math.isfinite(decision.retry_after_s) else 1.0


_MESSAGES = {
    "key": "this API key's rate limit ({limit} requests per minute) is reached; slow down",
    "account": "this account's rate limit ({limit} requests per minute) is reached; slow down",
    "key_tasks": "this API key already has {limit} tasks in flight (queued or running); wait for one to finish",
    "account_tasks": "this account already has {limit} tasks in flight (queued or running); wait for one to finish",
}


class LimitExceeded(RateLimited):
    """A request refused by an API rate limit; ``check`` tells which (for the rate-limit headers of the 429)."""

    def __init__(self, check: LimitCheck) -> None:
        assert check.binding is not None
        name, decision = check.binding.name, check.binding.decision
        super().__init__(
            _MESSAGES[name].format(limit=decision.limit),
            retry_after_s=max(1.0, _wait(decision)),
            code="too_many_concurrent_tasks" if name.endswith("_tasks") else "rate_limited",
        )
        self.check = check


class TaskSlots:
    """The in-flight slots of tasks: released at terminal transitions, repaired from the database."""

    def __init__(self, limiter: RateLimiter) -> None:
        self.limiter = limiter

    @staticmethod
    def keys(account_id: uuid.UUID, api_key_id: uuid.UUID | None) -> list[str]:
        keys = [_slot_key("account", account_id)]
        if api_key_id is not None:
            keys.append(_slot_key("key", api_key_id))
        return keys

    async def release(self, account_id: uuid.UUID, api_key_id: uuid.UUID | None, task_id: uuid.UUID) -> None:
        """Give back a task's slots (after its terminal transition committed). Never raises: a release that
        fails is repaired later."""
        try:
            await self.limiter.release(self.keys(account_id, api_key_id), str(task_id))
        except Exception as exc:
            log.warning("could not release the in-flight slots of task %s (the sweep will): %s", task_id, exc)

    async def purge_finished(self, db: Database, slot_keys: list[str]) -> int:
        """Remove, from these slot sets, the members whose task is no longer active. Returns how many."""
        redis = self.limiter.redis
        prefix = self.limiter.prefix
        members: dict[str, list[str]] = {}
        for key in slot_keys:
            raw = await redis.zrange(prefix + key, 0, -1)
            members[key] = [m.decode() if isinstance(m, bytes) else str(m) for m in raw]
        ids = {parse_uuid(m) for ms in members.values() for m in ms} - {None}
        if not ids:
            return 0
        rows = await db.fetch("SELECT id, status FROM tasks WHERE id = ANY($1::uuid[])", list(ids))
        status = {str(row["id"]): row["status"] for row in rows}
        removed = 0
        for key, ms in members.items():
            # finished, or never created (a submit that died before its insert committed)
            stale = [m for m in ms if status.get(m) not in ACTIVE and (m in status or _older_than_grace(m))]
            if stale:
                removed += int(await redis.zrem(prefix + key, *stale))
        return removed

    async def repair(self, db: Database) -> dict[str, int]:
        """The sweep: every active task holds its slots; no finished task does."""
        redis = self.limiter.redis
        prefix = self.limiter.prefix
        rows = await db.fetch(
            """
            SELECT id, account_id, api_key_id, EXTRACT(EPOCH FROM deadline_at) * 1000 AS deadline_ms
            FROM tasks WHERE status IN ('queued', 'running')
            """
        )
        active = {str(row["id"]) for row in rows}
        added = 0
        if rows:
            async with redis.pipeline(transaction=False) as pipe:
                for row in rows:
                    for key in self.keys(row["account_id"], row["api_key_id"]):
                        # NX: an existing slot keeps its score; the expiry backstop is the task's deadline
                        pipe.zadd(prefix + key, {str(row["id"]): float(row["deadline_ms"]) + 60_000}, nx=True)
                        pipe.sadd(self.limiter.slot_index, prefix + key)
                results = await pipe.execute()
            added = sum(int(r) for r in results[0::2])
        removed = 0
        for raw_key in await redis.smembers(self.limiter.slot_index):
            key = raw_key.decode() if isinstance(raw_key, bytes) else str(raw_key)
            members = [m.decode() if isinstance(m, bytes) else str(m) for m in await redis.zrange(key, 0, -1)]
            stale = [m for m in members if m not in active and _older_than_grace(m)]
            if stale:
                removed += int(await redis.zrem(key, *stale))
            if not members or len(stale) == len(members):
                # Forget an empty set (a slot taken meanwhile re-adds it to the index).
                await redis.srem(self.limiter.slot_index, key)
                if await redis.zcard(key):
                    await redis.sadd(self.limiter.slot_index, key)
        if added or removed:
            log.info(
                "in-flight slots repaired: %d added for active tasks, %d removed for finished ones", added, removed
            )
        return {"slots_added": added, "slots_removed": removed}


def _older_than_grace(member: str) -> bool:
    """Task ids are UUIDv7: their first 48 bits are the creation time in milliseconds."""
    parsed = parse_uuid(member)
    if parsed is None or parsed.version != 7:
        return True
    created_ms = parsed.int >> 80
    return created_ms < (time.time() - SLOT_GRACE_S) * 1000
