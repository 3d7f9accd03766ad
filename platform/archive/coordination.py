"""State the decode processes share in Redis: who is watching, which workers exist, which
(frame, k) a worker is decoding, which live decodes are queued, counters.

Every key starts with ``STRATA_KEY_PREFIX`` (a test run has its own). Without Redis (the
embedded demo: one process, tasks run in-process) the same calls work on process memory.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable, Sequence
from functools import cache

import redis
from django.conf import settings

WATCHED = "watched"  # sorted set: "device id|viewer" -> watched until (unix s)
WORKERS = "workers"  # sorted set: "name|device" -> alive until (unix s)
STATS = "decode-stats"  # hash of counters (frames decoded, passes)


def key(*parts: object) -> str:
    return settings.STRATA_KEY_PREFIX + ":".join(str(p) for p in parts)


@cache
def _client(url: str) -> redis.Redis:
    return redis.Redis.from_url(url, socket_connect_timeout=5, socket_timeout=10)


def client() -> redis.Redis | None:
    """The shared Redis, or None where there is none (everything runs in this process)."""
    return _client(settings.REDIS_URL) if settings.REDIS_URL else None


class _Local:
    """What Redis holds, for a single process: sorted sets, flags with expiry, counters."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.zsets: dict[str, dict[str, float]] = {}
        self.flags: dict[str, tuple[str, float]] = {}
        self.counters: dict[str, int] = {}


_local = _Local()


# -- sorted sets of members that expire (watched cameras, live workers) ----------------------


def refresh_members(name: str, members: Iterable[str], ttl_s: float) -> None:
    """Keep ``members`` of set ``name`` alive for ``ttl_s`` more seconds."""
    until = time.time() + ttl_s
    mapping = {m: until for m in members}
    if not mapping:
        return
    r = client()
    if r is None:
        with _local.lock:
            zset = _local.zsets.setdefault(name, {})
            for m in mapping:
                zset[m] = max(zset.get(m, 0.0), until)
        return
    with r.pipeline() as pipe:
        pipe.zadd(key(name), mapping, gt=True)
        pipe.zremrangebyscore(key(name), "-inf", time.time())
        pipe.execute()


def drop_members(name: str, members: Iterable[str]) -> None:
    members = list(members)
    if not members:
        return
    r = client()
    if r is None:
        with _local.lock:
            for m in members:
                _local.zsets.get(name, {}).pop(m, None)
        return
    r.zrem(key(name), *members)


def live_members(name: str) -> set[str]:
    """The members of ``name`` whose time has not run out."""
    now = time.time()
    r = client()
    if r is None:
        with _local.lock:
            return {m for m, until in _local.zsets.get(name, {}).items() if until > now}
    return {m.decode() for m in r.zrangebyscore(key(name), now, "+inf")}


# -- flags and claims: set once, by one owner, until they expire -----------------------------


def claim(names: Sequence[str], owner: str, ttl_s: float) -> list[bool]:
    """Take each flag in ``names`` for ``owner`` unless someone else holds it; True where
    ``owner`` holds it now (taken, or already its own: a redelivered task has the same id)."""
    if not names:
        return []
    r = client()
    if r is None:
        now = time.monotonic()
        taken = []
        with _local.lock:
            for name in names:
                held = _local.flags.get(name)
                if held is None or held[1] < now or held[0] == owner:
                    _local.flags[name] = (owner, now + ttl_s)
                    taken.append(True)
                else:
                    taken.append(False)
        return taken
    with r.pipeline(transaction=False) as pipe:
        for name in names:
            pipe.set(key(name), owner, nx=True, ex=max(1, int(ttl_s)))
        got = pipe.execute()
    holders = (
        r.mget([key(n) for n, ok in zip(names, got, strict=True) if not ok]) if not all(got) else []
    )
    holders_iter = iter(holders)
    return [bool(ok) or next(holders_iter) == owner.encode() for ok in got]


def release(names: Sequence[str]) -> None:
    if not names:
        return
    r = client()
    if r is None:
        with _local.lock:
            for name in names:
                _local.flags.pop(name, None)
        return
    r.delete(*[key(n) for n in names])


# -- counters ----------------------------------------------------------------------------------


def count(field: str, n: int = 1) -> None:
    r = client()
    if r is None:
        with _local.lock:
            _local.counters[field] = _local.counters.get(field, 0) + n
        return
    r.hincrby(key(STATS), field, n)


def counters() -> dict[str, int]:
    r = client()
    if r is None:
        with _local.lock:
            return dict(_local.counters)
    return {k.decode(): int(v) for k, v in r.hgetall(key(STATS)).items()}
