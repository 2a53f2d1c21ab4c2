"""Time-ordered UUIDs (version 7, RFC 9562): ids sort by creation time, which keeps indexes compact and
makes an id usable as a pagination cursor. Within a process, ids are strictly increasing (the 12-bit
``rand_a`` field is a counter within the millisecond, RFC 9562 section 6.2 method 1)."""

from __future__ import annotations

import os
import threading
import time
import uuid

_lock = threading.Lock()
_last_ms = 0
_counter = 0
_pool = b""
_offset = 0


def _random_62_bits() -> int:
    """62 bits from the OS's generator, read 4 KiB at a time (a system call per id costs more than the rest of
    ``uuid7``); callers hold ``_lock``."""
    global _pool, _offset
    if _offset >= len(_pool):
        _pool, _offset = os.urandom(4096), 0
    chunk = _pool[_offset : _offset + 8]
    _offset += 8
    return int.from_bytes(chunk, "big") & ((1 << 62) - 1)


def _forget_pool() -> None:
    global _pool, _offset
    _pool, _offset = b"", 0


os.register_at_fork(after_in_child=_forget_pool)  # a forked child must not reuse its parent's random bytes


def uuid7() -> uuid.UUID:
    global _last_ms, _counter
    with _lock:
        ms = time.time_ns() // 1_000_000
        if ms > _last_ms:
            _last_ms, _counter = ms, _random_62_bits() & 0xFF  # random start leaves room to count
        else:
            _counter += 1
            if _counter > 0xFFF:  # counter exhausted: borrow the next millisecond
                _last_ms, _counter = _last_ms + 1, 0
        ms, counter = _last_ms, _counter
        rand_b = _random_62_bits()
    value = (ms & ((1 << 48) - 1)) << 80 | 0x7 << 76 | counter << 64 | 0b10 << 62 | rand_b
    return uuid.UUID(int=value)


def parse_uuid(value: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(value)
    except (ValueError, AttributeError, TypeError):
        return None
