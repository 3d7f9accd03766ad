"""Time partitions of the layer table (PostgreSQL native partitioning), and retention.

Layers are most of the archive's bytes. On PostgreSQL ``archive_layer`` is partitioned by
the day a layer arrived (``received_on``, UTC), one partition a day plus a default one, so
that retention drops whole days (``DROP TABLE``: instant, no bloat, no vacuum) instead of
deleting billions of rows. Other databases (SQLite in the demo) keep one plain table.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date, timedelta

from django.db import connection, transaction
from django.utils import timezone

from archive.models import Frame, Layer

log = logging.getLogger(__name__)

DAYS_AHEAD = 3
_ensured_through: date | None = None


def partitioned() -> bool:
    return connection.vendor == "postgresql"


def partition_name(day: date) -> str:
    return f"{Layer._meta.db_table}_p{day:%Y%m%d}"


def ensure_layer_partitions(today: date | None = None, days_ahead: int = DAYS_AHEAD) -> list[str]:
    """Create the daily partitions from ``today`` to ``days_ahead`` days on, if missing.

    Cheap to call often: once a day's partitions exist, it returns without a query.
    A day whose rows already went to the default partition keeps them there.
    """
    global _ensured_through
    if not partitioned():
        return []
    today = today or timezone.now().date()
    last = today + timedelta(days=days_ahead)
    if _ensured_through is not None and _ensured_through >= last:
        return []
    table = Layer._meta.db_table
    created = []
    with connection.cursor() as cursor:
        for offset in range(days_ahead + 1):
            day = today + timedelta(days=offset)
            name = partition_name(day)
            cursor.execute("select to_regclass(%s)", [name])
            if cursor.fetchone()[0] is not None:
                continue
            cursor.execute(
                f"select exists (select 1 from {table}_default "
                "where received_on >= %s and received_on < %s)",
                [day, day + timedelta(days=1)],
            )
            if cursor.fetchone()[0]:
                continue  # those rows stay in the default partition
            cursor.execute(
                f'create table if not exists "{name}" partition of "{table}" '
                "for values from (%s) to (%s)",
                [day, day + timedelta(days=1)],
            )
            created.append(name)
    _ensured_through = last
    if created:
        log.info("created layer partitions %s", ", ".join(created))
    return created


def layer_partitions() -> list[tuple[str, date | None]]:
    """(name, day) of every partition of the layer table; day None for the default one."""
    if not partitioned():
        return []
    with connection.cursor() as cursor:
        cursor.execute(
            "select c.relname from pg_inherits i join pg_class c on c.oid = i.inhrelid "
            "where i.inhparent = %s::regclass order by c.relname",
            [Layer._meta.db_table],
        )
        names = [row[0] for row in cursor.fetchall()]
    prefix = f"{Layer._meta.db_table}_p"
    return [
        (n, date(int(n[-8:-4]), int(n[-4:-2]), int(n[-2:])) if n.startswith(prefix) else None)
        for n in names
    ]


@dataclass(frozen=True)
class RetentionResult:
    partitions_dropped: list[str]
    rows_deleted: int


@transaction.atomic
def apply_retention(keep_days: int, today: date | None = None) -> RetentionResult:
    """Delete the archive older than ``keep_days`` days: whole layer partitions first, then
    the frames (and their decoded images) received before the cutoff."""
    if keep_days < 1:
        raise ValueError("keep_days must be at least 1")
    today = today or timezone.now().date()
    cutoff = today - timedelta(days=keep_days)
    dropped = []
    with connection.cursor() as cursor:
        if partitioned():
            # Deferred foreign-key checks of rows written earlier in this transaction
            # would otherwise forbid dropping their table.
            cursor.execute("set constraints all immediate")
        for name, day in layer_partitions():
            if day is not None and day < cutoff:
                cursor.execute(f'drop table "{name}"')
                dropped.append(name)
    deleted, _ = Frame.objects.filter(received_at__date__lt=cutoff).delete()
    log.info("retention %d days: dropped %s, deleted %d rows", keep_days, dropped, deleted)
    return RetentionResult(dropped, deleted)
