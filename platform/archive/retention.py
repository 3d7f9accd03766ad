"""Retention that understands layers: what the archive holds, by table and by layer band.

Layers are ordered by importance, so an old frame can give up its upper layers (keep the
first k: still decodable at k) long before it goes as a whole.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta

from django.db import connection, transaction
from django.db.models import Count, Exists, Min, OuterRef, Q, Subquery, Sum
from django.db.models.functions import Length, TruncDate
from django.utils import timezone

from archive.models import (
    DecodedImage,
    DecodeFailure,
    EventMark,
    Export,
    Frame,
    Layer,
    RetentionPolicy,
)
from archive.policy import event_frames
from fleet.models import Device
from mcucoder.bitstream import FRAME_INTRA, FRAME_PREDICTED
from observability import metrics

log = logging.getLogger(__name__)

# Layer bands (by layer index, 0 first): what a frame decodes at if it keeps that much.
BANDS: tuple[tuple[str, int, int], ...] = (("k1-3", 0, 3), ("k4-6", 3, 6), ("k7-12", 6, 12))
EXACT_SCAN_BYTES = 64 << 20  # below this the layer table is summed exactly, above sampled
# A frame delivered this long after its camera's first frame past a cutoff, with a lower seq
# (out of order: another ingest process, a resend), still counts as the first one kept.
LATE_WINDOW = timedelta(hours=1)


def _band_case() -> str:
    whens = " ".join(f"when \"index\" < {hi} then '{name}'" for name, _, hi in BANDS)
    return f"case {whens} else '{BANDS[-1][0]}' end"


def table_bytes() -> dict[str, int]:
    """Bytes on disk of each archive table, with its indexes, TOAST and partitions
    (PostgreSQL); elsewhere the bytes of the stored values."""
    tables = {
        "frame": Frame._meta.db_table,
        "layer": Layer._meta.db_table,
        "decoded": DecodedImage._meta.db_table,
        "export": Export._meta.db_table,
    }
    out = {}
    with connection.cursor() as cursor:
        for name, table in tables.items():
            if connection.vendor == "postgresql":
                cursor.execute(
                    "select coalesce(sum(pg_total_relation_size(relid)), 0) "
                    "from pg_partition_tree(%s::regclass)",
                    [table],
                )
            else:
                column = {"layer": "data", "decoded": "image", "export": "video"}.get(name)
                size = f"sum(length({column}))" if column else "count(*) * 64"
                cursor.execute(f'select coalesce({size}, 0) from "{table}"')
            out[name] = int(cursor.fetchone()[0])
    return out


def layer_bytes_by_band(total_layer_bytes: int | None = None) -> dict[str, int]:
    """On-disk bytes of the layer table split by band. A table over ``EXACT_SCAN_BYTES`` is
    sampled (``TABLESAMPLE SYSTEM``, about 16 MB of pages) and its total split in the
    sample's proportions, so a scrape never reads the whole archive."""
    table = Layer._meta.db_table
    total = table_bytes()["layer"] if total_layer_bytes is None else total_layer_bytes
    length = "octet_length(data)" if connection.vendor == "postgresql" else "length(data)"
    sample = ""
    if connection.vendor == "postgresql" and total > EXACT_SCAN_BYTES:
        sample = f" tablesample system ({max(0.01, 100 * (16 << 20) / total):.4f})"
    with connection.cursor() as cursor:
        cursor.execute(
            f"select {_band_case()} as band, coalesce(sum({length}), 0) "
            f'from "{table}"{sample} group by band'
        )
        raw = {band: int(size) for band, size in cursor.fetchall()}
    measured = sum(raw.values())
    if not measured:
        return {name: 0 for name, _, _ in BANDS}
    return {name: round(total * raw.get(name, 0) / measured) for name, _, _ in BANDS}


# --- policies ---------------------------------------------------------------------------


@dataclass
class Step:
    """One thing a policy does: thin (frames keep their first ``keep_layers``) or delete
    frames received before ``before`` (of the scope's cameras, protected ones excepted)."""

    action: str  # "thin" or "delete"
    why: str  # "age" or "budget"
    before: datetime
    keep_layers: int
    frames: int = 0
    bytes: int = 0


@dataclass
class Plan:
    """What one policy did (or, in a dry run, would do) now: its cameras, their layer bytes
    before, the steps, and the budget's use after them."""

    policy: RetentionPolicy
    device_pks: list[int]
    used_bytes: int
    steps: list[Step] = field(default_factory=list)

    @property
    def freed_bytes(self) -> int:
        return sum(s.bytes for s in self.steps)

    @property
    def budget_use(self) -> float | None:
        """Share of the budget used after the run (None: no budget)."""
        budget = self.policy.budget_bytes
        return None if not budget else (self.used_bytes - self.freed_bytes) / budget

    @property
    def warning(self) -> str | None:
        """Said before the budget is reached: at ``warn_ratio`` of it, or over it after
        everything retention may do (what is left is protected or today's)."""
        use = self.budget_use
        if use is None or use < self.policy.warn_ratio:
            return None
        over = "over its budget even after retention" if use > 1 else "near its budget"
        return (
            f"{self.policy}: {over}: {use:.0%} of {self.policy.budget_bytes:,} bytes "
            f"({len(self.device_pks)} cameras)"
        )


def governed_devices() -> dict[int, list[int]]:
    """Policy id -> the active and inactive cameras it governs: a camera's own policy,
    else its site's, else the default."""
    policies = list(RetentionPolicy.objects.all())
    own = {p.device_id: p.pk for p in policies if p.device_id}
    by_site = {p.site: p.pk for p in policies if not p.device_id}
    out: dict[int, list[int]] = {p.pk: [] for p in policies}
    for pk, site in Device.objects.values_list("pk", "site"):
        chosen = own.get(pk) or by_site.get(site) or by_site.get("")
        if chosen:
            out[chosen].append(pk)
    return out


def protected_frames(device_pks: Sequence[int]):
    """Frames of these cameras that are events — inside an event mark, or with the motion
    share that makes an event frame (``archive.policy.is_event``) — or inside an export:
    never thinned or deleted."""
    in_event = EventMark.objects.filter(
        device=OuterRef("device"),
        start__lte=OuterRef("received_at"),
        end__gte=OuterRef("received_at"),
    )
    in_export = Export.objects.filter(
        device=OuterRef("device"),
        start__lte=OuterRef("received_at"),
        end__gt=OuterRef("received_at"),
    )
    return Frame.objects.filter(device__in=device_pks).filter(
        Exists(in_event) | Exists(in_export) | event_frames()
    )


def chains_needed(device_pks: Sequence[int], before: datetime) -> Q | None:
    """Frames received before ``before`` that a kept predicted frame needs to decode (issue
    18): for the first frame each camera keeps after ``before`` and for every protected
    one, if predicted, the frames from its key frame up to it, by ``seq``. They keep every
    layer (the kept frame may use them all). None: no kept frame needs an older one."""
    heads = Q(pk__in=protected_frames(device_pks).values("pk")) | _first_kept(device_pks, before)
    return _chains(device_pks, heads)


def chains_into(before: datetime) -> Q | None:
    """Frames of any camera received before ``before`` that the first frame each camera
    keeps from ``before`` on needs, if it is predicted: what the whole-day path
    (``archive.partitions.apply_retention``) keeps when everything older goes. None: no
    kept frame needs an older one."""
    device_pks = list(Device.objects.values_list("pk", flat=True))
    return _chains(device_pks, _first_kept(device_pks, before))


def _first_kept(device_pks: Sequence[int], before: datetime) -> Q:
    """Each camera's first frame (lowest ``seq``) received at or after ``before``, among
    those received within ``LATE_WINDOW`` of its earliest one there: an index probe per
    camera and that window, never a scan of everything kept (a month of a fleet)."""
    earliest = (
        Frame.objects.filter(device=OuterRef("pk"), received_at__gte=before)
        .order_by("received_at")
        .values("received_at")[:1]
    )
    starts = (
        Device.objects.filter(pk__in=device_pks)
        .annotate(at=Subquery(earliest))
        .exclude(at=None)
        .values_list("pk", "at")
    )
    window = Q(pk__in=[])
    for device_pk, at in starts:
        window |= Q(device=device_pk, received_at__gte=before, received_at__lt=at + LATE_WINDOW)
    firsts = (
        Frame.objects.filter(window)
        .values("device")
        .annotate(first=Min("seq"))
        .values_list("device", "first")
    )
    heads = Q(pk__in=[])
    for device_pk, seq in firsts:
        heads |= Q(device=device_pk, seq=seq)
    return heads


def _chains(device_pks: Sequence[int], heads: Q) -> Q | None:
    """The frames that the predicted frames among ``heads`` decode from: from each one's
    key frame (the latest intra frame at or below its ``seq``) up to it, itself excluded."""
    key = Frame.objects.filter(
        device=OuterRef("device"), frame_type=FRAME_INTRA, seq__lte=OuterRef("seq")
    ).order_by("-seq")
    found = (
        Frame.objects.filter(device__in=device_pks, frame_type=FRAME_PREDICTED)
        .filter(heads)
        .annotate(key=Subquery(key.values("seq")[:1]))
        .exclude(key=None)
        .values_list("device", "key", "seq")
        .order_by("device", "key", "seq")
    )
    spans: dict[tuple[int, int], int] = {}  # (camera, key seq) -> the latest seq needing it
    for device_pk, key_seq, seq in found:
        spans[(device_pk, key_seq)] = max(seq, spans.get((device_pk, key_seq), seq))
    if not spans:
        return None
    needed = Q()
    for (device_pk, key_seq), seq in spans.items():
        needed |= Q(device=device_pk, seq__gte=key_seq, seq__lt=seq)
    return needed


def _frames(device_pks: Sequence[int], before: datetime):
    """The scope's frames before ``before`` that retention may thin or delete: neither
    protected nor needed by a kept predicted frame (``chains_needed``)."""
    frames = Frame.objects.filter(device__in=device_pks, received_at__lt=before).exclude(
        pk__in=protected_frames(device_pks).values("pk")
    )
    needed = chains_needed(device_pks, before)
    return frames if needed is None else frames.exclude(needed)


def _layers(step: Step, device_pks: Sequence[int]):
    layers = Layer.objects.filter(frame__in=_frames(device_pks, step.before).values("pk"))
    return layers.filter(index__gte=step.keep_layers) if step.action == "thin" else layers


def _measure(step: Step, device_pks: Sequence[int]) -> Step:
    found = _layers(step, device_pks).aggregate(
        frames=Count("frame", distinct=True), bytes=Sum(Length("data"))
    )
    step.frames, step.bytes = found["frames"] or 0, found["bytes"] or 0
    return step


def _days(device_pks: Sequence[int], keep_layers: int, before: datetime) -> list[tuple]:
    """(day, upper-layer bytes, all bytes) of the scope's unprotected frames before
    ``before``, oldest first."""
    rows = (
        Layer.objects.filter(frame__in=_frames(device_pks, before).values("pk"))
        .annotate(day=TruncDate("frame__received_at", tzinfo=UTC))
        .values("day")
        .annotate(
            upper=Sum(Length("data"), filter=Q(index__gte=keep_layers), default=0),
            total=Sum(Length("data")),
        )
        .order_by("day")
    )
    return [(r["day"], r["upper"], r["total"]) for r in rows]


def _day_start(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=UTC)


def _used(device_pks: Sequence[int]) -> int:
    layers = Layer.objects.filter(frame__device__in=device_pks)
    return layers.aggregate(b=Sum(Length("data")))["b"] or 0


def _do(step: Step, device_pks: Sequence[int]) -> None:
    """Thin (delete upper layers, lower ``n_layers``) or delete frames with their layers
    and decoded images. A thinned frame's decoded images above k stay (a cache with its own
    retention, ``images.prune_decoded``)."""
    if step.action == "thin":
        _layers(step, device_pks).delete()
        _frames(device_pks, step.before).filter(n_layers__gt=step.keep_layers).update(
            n_layers=step.keep_layers
        )
        return
    frames = _frames(device_pks, step.before).values("pk")
    for model in (Layer, DecodedImage, DecodeFailure):
        model.objects.filter(frame__in=frames).delete()
    _frames(device_pks, step.before).delete()


def _step(result: Plan, step: Step) -> None:
    _measure(step, result.device_pks)
    if step.frames:
        _do(step, result.device_pks)
        result.steps.append(step)


def _through(days: list[tuple], excess: int, column: int) -> date | None:
    """The last of the oldest days whose bytes (``column``) make up ``excess``."""
    last = None
    for row in days:
        if excess <= 0:
            break
        excess -= row[column]
        last = row[0]
    return last


def run_policy(
    policy: RetentionPolicy,
    device_pks: Sequence[int],
    now: datetime | None = None,
    dry_run: bool = False,
) -> Plan:
    """Apply ``policy`` to its cameras, measuring each step just before doing it; a dry run
    does the same in a transaction it rolls back, so its figures are exactly what a real
    run would free. By age: frames older than ``full_days`` keep their first
    ``keep_layers``, older than ``keep_days`` go. Then, while over the budget, oldest days
    first: frames lose their upper layers, and only then do whole days go. Today's frames
    are never touched by the budget; protected ones (events, exports) never at all."""
    now = now or timezone.now()
    k = policy.keep_layers
    with transaction.atomic():
        result = Plan(policy, list(device_pks), _used(device_pks))
        if device_pks:
            if policy.full_days:
                _step(result, Step("thin", "age", now - timedelta(days=policy.full_days), k))
            if policy.keep_days:
                _step(result, Step("delete", "age", now - timedelta(days=policy.keep_days), k))
            budget = policy.budget_bytes
            today = _day_start(now.astimezone(UTC).date())
            for action, column in (("thin", 1), ("delete", 2)):
                excess = result.used_bytes - result.freed_bytes - (budget or 0)
                if not budget or excess <= 0:
                    break
                last = _through(_days(device_pks, k, today), excess, column)
                if last is not None:
                    _step(result, Step(action, "budget", _day_start(last) + timedelta(days=1), k))
        if dry_run:
            transaction.set_rollback(True)
    if not dry_run:
        for step in result.steps:
            metrics.RETENTION_FREED.labels(step.action).inc(step.bytes)
            log.info("retention %s: %s %d frames before %s (%s): %d bytes", policy,
                     step.action, step.frames, step.before, step.why, step.bytes)  # fmt: skip
    return result


def run_all(now: datetime | None = None, dry_run: bool = False) -> list[Plan]:
    """Every policy on its cameras (``run_policy``), in one go."""
    governed = governed_devices()
    return [
        run_policy(p, governed.get(p.pk, []), now, dry_run)
        for p in RetentionPolicy.objects.select_related("device").order_by("pk")
    ]


def budget_use() -> list[tuple[str, float]]:
    """(policy, share of its budget used now) of every policy with a budget."""
    governed = governed_devices()
    out = []
    for policy in RetentionPolicy.objects.filter(budget_bytes__gt=0).select_related("device"):
        out.append((str(policy), _used(governed.get(policy.pk, [])) / policy.budget_bytes))
    return out
