"""Time partitions of the layer table (PostgreSQL native partitioning), and retention.

Layers are most of the archive's bytes. On PostgreSQL ``archive_layer`` is partitioned by
the day a layer arrived (``received_on``, UTC), one partition a day plus a default one, so
that retention drops whole days (``DROP TABLE``: instant, no bloat, no vacuum) instead of
deleting billions of rows. Other databases (SQLite in the demo) keep one plain table.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from django.db import connection, transaction
from django.db.models import QuerySet
from django.utils import timezone

from archive.models import Frame, Layer
from archive.retention import chains_into

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
    chain_frames: int = 0  # older frames kept: a kept predicted frame decodes from them


@dataclass(frozen=True)
class WholeDays:
    """What ``--days`` takes: frames received before the start of the ``cutoff`` day, less
    the ``chain`` that the first kept frame of a camera decodes from (a predicted frame's
    frames back to its key frame, ``archive.retention.chains_into``)."""

    cutoff: date
    older: QuerySet[Frame]
    chain: QuerySet[Frame]

    @property
    def doomed(self) -> QuerySet[Frame]:
        return self.older.exclude(pk__in=self.chain.values("pk"))

    @property
    def kept(self) -> QuerySet[Frame]:
        return self.older.filter(pk__in=self.chain.values("pk"))


def whole_days(keep_days: int, today: date | None = None) -> WholeDays:
    """The frames ``apply_retention(keep_days)`` deletes and keeps (a dry run counts them)."""
    if keep_days < 1:
        raise ValueError("keep_days must be at least 1")
    cutoff = (today or timezone.now().date()) - timedelta(days=keep_days)
    start = datetime.combine(cutoff, time.min, tzinfo=timezone.get_current_timezone())
    needed = chains_into(start)
    chain = Frame.objects.none() if needed is None else Frame.objects.filter(needed)
    return WholeDays(cutoff, Frame.objects.filter(received_at__lt=start), chain)


@transaction.atomic
def apply_retention(keep_days: int, today: date | None = None) -> RetentionResult:
    """Delete the archive older than ``keep_days`` days: whole layer partitions first, then
    the frames (and their decoded images) received before the cutoff. Older frames that a
    kept predicted frame decodes from (``WholeDays.chain``) stay whole: their layers move to
    the cutoff's day before the partitions go, so the next run weighs them again."""
    plan = whole_days(keep_days, today)
    dropped = []
    with connection.cursor() as cursor:
        if partitioned():
            # Deferred foreign-key checks of rows written earlier in this transaction
            # would otherwise forbid dropping their table.
            cursor.execute("set constraints all immediate")
        Layer.objects.filter(frame__in=plan.chain.values("pk"), received_on__lt=plan.cutoff).update(
            received_on=plan.cutoff
        )  # PostgreSQL moves them to that day's partition
        for name, day in layer_partitions():
            if day is not None and day < plan.cutoff:
                cursor.execute(f'drop table "{name}"')
                dropped.append(name)
    kept = plan.kept.count()
    deleted, _ = plan.doomed.delete()
    log.info("retention %d days: dropped %s, deleted %d rows, kept %d frames of chains",
             keep_days, dropped, deleted, kept)  # fmt: skip
    return RetentionResult(dropped, deleted, kept)
