"""One deciding controller at a time: a PostgreSQL advisory lock held by the leader.

Several ``manage.py control`` processes may run (for availability); if two decided, they
would publish competing desired states. The lock lives on its own database connection, so
Django's connection recycling never drops it, and PostgreSQL releases it when the leader's
process or connection dies: a follower takes over at its next round. On SQLite (the embedded
demo, one process) every controller leads.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from django.db import connection

log = logging.getLogger(__name__)

LOCK_KEY = 0x5354_4354  # "STCT": pg_try_advisory_lock's bigint key for the tier controller


class LeaderLock:
    """``acquire()`` is cheap to call every round: True while this process leads."""

    def __init__(self) -> None:
        self._conn: Any = None
        self.leading = False

    def acquire(self) -> bool:
        if connection.vendor != "postgresql":
            self.leading = True
            return True
        try:
            if self._conn is None or self._conn.closed:
                self._conn, self.leading = self._connect(), False
            if not self.leading:
                row = self._conn.execute("select pg_try_advisory_lock(%s)", (LOCK_KEY,))
                self.leading = bool(row.fetchone()[0])
                if self.leading:
                    log.info("controller: leading (advisory lock %#x)", LOCK_KEY)
            else:
                self._conn.execute("select 1")  # still connected, so still holding it
        except Exception as exc:  # the database restarted: the lock went with the connection
            log.warning("controller: leader lock lost (%s)", exc)
            self.release()
        return self.leading

    def release(self) -> None:
        if self._conn is not None and not self._conn.closed:
            if self.leading:  # at once; closing the session would too, a moment later
                with contextlib.suppress(Exception):
                    self._conn.execute("select pg_advisory_unlock(%s)", (LOCK_KEY,))
            self._conn.close()
        self._conn, self.leading = None, False

    @staticmethod
    def _connect() -> Any:
        import psycopg

        params = connection.get_connection_params()
        params.pop("cursor_factory", None)
        params.pop("context", None)
        return psycopg.connect(**params, autocommit=True)


@contextmanager
def leader_lock() -> Iterator[LeaderLock]:
    lock = LeaderLock()
    try:
        yield lock
    finally:
        lock.release()
