"""Sessions for people (the dashboard), kept server-side in Redis.

The browser holds only a random token in an HttpOnly cookie. Redis keeps, under the SHA-256 of the token,
the session's account, timestamps, client and its CSRF token, with an idle expiry renewed on use (at most
once a minute) and never beyond the absolute lifetime. An index per account lets a person list and end
their sessions, and lets suspension, password reset and deletion end them all.

A session belongs to a person (their own account) and acts on one account they are a member of: their own
unless they switched (``acting_account_id``, set by ``switch_account``), or the account a request names in the
``X-Conduit-Account`` header. Each request on a session reads, in one query, the acting account's standing and
the person's membership in it from PostgreSQL, so a suspended account's sessions stop at once with
``account_suspended`` (and work again if it is reinstated), and a member removed from an account can no longer
act on it from the next request on.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import inspect
import secrets
import time
import uuid
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

import msgspec
from redis.asyncio import Redis

from shared.accounts.keys import Principal, account_suspended, member_budget
from shared.accounts.redaction import without_keys
from shared.accounts.settings import AuthSettings
from shared.infra.db import Database
from shared.infra.errors import NotFound, Unauthenticated
from shared.infra.ids import uuid7

T = TypeVar("T")
SESSION_KEY = "conduit:session:"
ACCOUNT_HEADER = "X-Conduit-Account"  # the account a request on a session acts on
INDEX_KEY = "conduit:account-sessions:"
TOUCH_INTERVAL_S = 60.0
MAX_USER_AGENT = 300
# Renew a session only if it still exists (a concurrent sign-out must not be undone by a touch).
_TOUCH = """
if redis.call('EXISTS', KEYS[1]) == 1 then
    redis.call('HSET', KEYS[1], 'last_seen_at', ARGV[1])
    redis.call('EXPIRE', KEYS[1], ARGV[2])
end
return 1
"""

# Change a field of a session only if it still exists.
_SET_FIELD = """
if redis.call('EXISTS', KEYS[1]) == 1 then redis.call('HSET', KEYS[1], ARGV[1], ARGV[2]) end
return 1
"""


class SessionInfo(msgspec.Struct):
    """A signed-in session as its owner sees it (``current``: the one making this request)."""

    id: str
    object: Literal["session"]
    created_at: str
    last_seen_at: str
    expires_at: str
    ip: str
    user_agent: str
    current: bool
    second_factor: bool
    account_id: str  # the account the session acts on


@dataclass(frozen=True, slots=True)
class Session:
    id: str
    account_id: uuid.UUID
    created_at: float
    last_seen_at: float
    expires_at: float  # absolute end
    ip: str
    user_agent: str
    csrf_token: str
    second_factor: bool = False  # signed in with a second factor, or enrolled one in this session
    acting_account_id: uuid.UUID | None = None  # the account the session acts on; None: the person's own

    @property
    def acting_on(self) -> uuid.UUID:
        return self.acting_account_id or self.account_id

    def public(self, *, current: bool = False) -> SessionInfo:
        return SessionInfo(
            id=self.id,
            object="session",
            created_at=_iso(self.created_at),
            last_seen_at=_iso(self.last_seen_at),
            expires_at=_iso(self.expires_at),
            ip=self.ip,
            user_agent=self.user_agent,
            current=current,
            second_factor=self.second_factor,
            account_id=str(self.acting_on),
        )


def _iso(ts: float) -> str:
    return dt.datetime.fromtimestamp(ts, dt.UTC).isoformat().replace("+00:00", "Z")


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


async def _wait(reply: Awaitable[T] | T) -> T:
    """redis-py types its commands as "awaitable or not" (sync and async clients share them)."""
    return await reply if inspect.isawaitable(reply) else reply


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _decode(raw: dict[Any, Any]) -> dict[str, str]:
    return {_text(k): _text(v) for k, v in raw.items()}


class SessionStore:
    def __init__(self, redis: Redis, settings: AuthSettings) -> None:
        self.redis = redis
        self.settings = settings
        self._touch = redis.register_script(_TOUCH)
        self._touch_field = redis.register_script(_SET_FIELD)

    async def create(
        self, account_id: uuid.UUID, *, ip: str, user_agent: str, second_factor: bool = False
    ) -> tuple[str, Session]:
        token = secrets.token_urlsafe(32)
        now = time.time()
        session = Session(
            id=uuid7().hex,
            account_id=account_id,
            created_at=now,
            last_seen_at=now,
            expires_at=now + self.settings.session_max_age_s,
            ip=ip,
            user_agent=without_keys(user_agent)[:MAX_USER_AGENT],
            csrf_token=secrets.token_urlsafe(24),
            second_factor=second_factor,
        )
        token_hash = _hash(token)
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.hset(
                SESSION_KEY + token_hash,
                mapping={
                    "id": session.id,
                    "account_id": str(account_id),
                    "created_at": repr(now),
                    "last_seen_at": repr(now),
                    "expires_at": repr(session.expires_at),
                    "ip": session.ip,
                    "user_agent": session.user_agent,
                    "csrf_token": session.csrf_token,
                    "second_factor": "1" if second_factor else "0",
                },
            )
            pipe.expire(SESSION_KEY + token_hash, self._ttl(now, session.expires_at))
            pipe.hset(INDEX_KEY + str(account_id), session.id, token_hash)
            pipe.expire(INDEX_KEY + str(account_id), self.settings.session_max_age_s)
            await pipe.execute()
        return token, session

    async def get(self, token: str) -> Session | None:
        """The live session for this cookie value, renewing its idle expiry when due."""
        if not token or len(token) > 100:
            return None
        key = SESSION_KEY + _hash(token)
        raw = _decode(await _wait(self.redis.hgetall(key)))
        if "csrf_token" not in raw:
            return None
        session = _parse(raw)
        now = time.time()
        if now >= session.expires_at:
            await self.redis.delete(key)
            return None
        if now - session.last_seen_at >= TOUCH_INTERVAL_S:
            await self._touch(keys=[key], args=[repr(now), self._ttl(now, session.expires_at)])
        return session

    async def mark_second_factor(self, token: str) -> None:
        """This session passed a second factor now (its person just enrolled one)."""
        await self._touch_field(keys=[SESSION_KEY + _hash(token)], args=["second_factor", "1"])

    async def switch_account(self, token: str, account_id: uuid.UUID) -> None:
        """Make the session act on ``account_id`` (the caller checked the person is a member)."""
        await self._touch_field(keys=[SESSION_KEY + _hash(token)], args=["acting_account_id", str(account_id)])

    async def end_on_account(self, person_id: uuid.UUID, account_id: uuid.UUID) -> int:
        """End the person's sessions that act on ``account_id`` (they were removed from it). Returns how many."""
        ended = 0
        for session in await self.list(person_id):
            if session.acting_account_id == account_id and await self.revoke(person_id, session.id):
                ended += 1
        return ended

    async def list(self, account_id: uuid.UUID) -> list[Session]:
        index = _decode(await _wait(self.redis.hgetall(INDEX_KEY + str(account_id))))
        if not index:
            return []
        async with self.redis.pipeline(transaction=False) as pipe:
            for token_hash in index.values():
                pipe.hgetall(SESSION_KEY + token_hash)
            results = await pipe.execute()
        sessions: list[Session] = []
        gone: list[str] = []
        now = time.time()
        for session_id, raw in zip(index, results, strict=True):
            data = _decode(raw)
            if "csrf_token" not in data or float(data["expires_at"]) <= now:
                gone.append(session_id)
                continue
            sessions.append(_parse(data))
        if gone:
            await _wait(self.redis.hdel(INDEX_KEY + str(account_id), *gone))
        return sorted(sessions, key=lambda s: s.created_at, reverse=True)

    async def revoke(self, account_id: uuid.UUID, session_id: str) -> bool:
        token_hash = await _wait(self.redis.hget(INDEX_KEY + str(account_id), session_id))
        if token_hash is None:
            return False
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.delete(SESSION_KEY + _text(token_hash))
            pipe.hdel(INDEX_KEY + str(account_id), session_id)
            deleted, _ = await pipe.execute()
        return bool(deleted)

    async def revoke_all(self, account_id: uuid.UUID, *, keep: str | None = None) -> int:
        """End every session of the account (but ``keep``, a session id). Returns how many ended."""
        index = _decode(await _wait(self.redis.hgetall(INDEX_KEY + str(account_id))))
        ending = {sid: token_hash for sid, token_hash in index.items() if sid != keep}
        if not ending:
            return 0
        async with self.redis.pipeline(transaction=True) as pipe:
            pipe.delete(*(SESSION_KEY + h for h in ending.values()))
            pipe.hdel(INDEX_KEY + str(account_id), *ending)
            deleted, _ = await pipe.execute()
        return int(deleted)

    async def prune_indexes(self, *, batch: int = 500) -> int:
        """Drop ended sessions from the per-account indexes (the sessions themselves expire in Redis by TTL).
        Safe to run from several processes at once: HDEL of an entry already gone is a no-op."""
        pruned = 0
        async for index_key in self.redis.scan_iter(match=INDEX_KEY + "*", count=batch):
            index = _decode(await _wait(self.redis.hgetall(index_key)))
            if not index:
                continue
            async with self.redis.pipeline(transaction=False) as pipe:
                for token_hash in index.values():
                    pipe.exists(SESSION_KEY + token_hash)
                alive = await pipe.execute()
            gone = [sid for sid, exists in zip(index, alive, strict=True) if not exists]
            if gone:
                pruned += int(await _wait(self.redis.hdel(index_key, *gone)))
        return pruned

    def _ttl(self, now: float, expires_at: float) -> int:
        return max(1, int(min(self.settings.session_ttl_s, expires_at - now)))


def _parse(raw: dict[str, str]) -> Session:
    return Session(
        id=raw["id"],
        account_id=uuid.UUID(raw["account_id"]),
        created_at=float(raw["created_at"]),
        last_seen_at=float(raw["last_seen_at"]),
        expires_at=float(raw["expires_at"]),
        ip=raw.get("ip", ""),
        user_agent=raw.get("user_agent", ""),
        csrf_token=raw["csrf_token"],
        second_factor=raw.get("second_factor") == "1",
        acting_account_id=uuid.UUID(raw["acting_account_id"]) if raw.get("acting_account_id") else None,
    )


async def session_principal(
    db: Database,
    store: SessionStore,
    token: str,
    account_id: uuid.UUID | None = None,
    *,
    allow_suspended: bool = False,
) -> tuple[Principal, Session]:
    """Resolve a session cookie to a principal acting on ``account_id`` (the ``X-Conduit-Account`` header) or on
    the session's acting account, or raise ``Unauthenticated`` / ``PermissionDenied`` / ``NotFound`` (an account
    the person is not a member of). ``allow_suspended``: a suspended account's session still resolves (the
    appeal of its suspension is the one thing it may do)."""
    session = await store.get(token)
    if session is None:
        raise Unauthenticated("your session has ended; sign in again", code="session_expired")
    acting = account_id or session.acting_on
    row = await db.fetchrow(
        """
        SELECT p.status AS person_status, p.role, a.status, a.suspension_reason, a.rate_limit_rpm,
               a.max_inflight_tasks, m.role AS member_role, m.person_id AS budget_member_id,
               m.budget AS member_budget, m.budget_period AS member_budget_period,
               m.budget_rolling AS member_budget_rolling, m.budget_anchor AS member_budget_anchor
        FROM accounts p
        LEFT JOIN accounts a ON a.id = $2
        LEFT JOIN account_members m ON m.account_id = a.id AND m.person_id = p.id
        WHERE p.id = $1
        """,
        session.account_id,
        acting,
    )
    if row is None or row["person_status"] == "deleted":
        raise Unauthenticated("your session has ended; sign in again", code="session_expired")
    if row["member_role"] is None or row["status"] == "deleted":
        if account_id is not None:  # a header naming an account the person is not a member of
            raise NotFound(f"no account {account_id} among yours", code="account_not_found", param=ACCOUNT_HEADER)
        raise Unauthenticated(
            "your session on this account has ended (you are no longer a member); sign in again",
            code="session_expired",
        )
    if row["status"] == "suspended" and not allow_suspended:
        raise account_suspended(row["suspension_reason"])
    if row["person_status"] == "suspended" and not allow_suspended:  # a suspended person acts on no other account
        raise account_suspended(None)
    principal = Principal(
        account_id=acting,
        api_key_id=None,
        role=row["role"],
        session_id=session.id,
        second_factor=session.second_factor,
        account_rpm=row["rate_limit_rpm"],
        account_max_inflight=row["max_inflight_tasks"],
        member_role=row["member_role"],
        person_id=session.account_id,
        **member_budget(row),
    )
    return principal, session


def csrf_matches(session: Session, header: str | None) -> bool:
    return bool(header) and hmac.compare_digest(session.csrf_token.encode(), (header or "").encode())
