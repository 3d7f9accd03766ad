"""Read-side queries the dashboard pages share. Scoping is the caller's: pass visible devices."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta

from django.db.models import (
    Avg,
    Case,
    Count,
    Func,
    IntegerField,
    Max,
    Min,
    OuterRef,
    QuerySet,
    Subquery,
    Sum,
    Value,
    When,
)
from django.db.models.fields.json import KeyTextTransform
from django.db.models.functions import Cast, Length, NullIf, TruncDate, TruncHour, TruncMinute
from django.utils import timezone

from access.models import Assignment
from archive.images import latest_decoded
from archive.models import DecodedImage, Frame, Layer
from archive.policy import event_frames
from control.models import LinkSample, SitePolicy, TierChange
from control.policies import plain_words
from control.services import effective_policy, switch_rates
from fleet.models import ConnectionChange, Device
from fleet.services import Applied, Health, applied, effective_tier, health
from mcucoder.bitstream import CRC_SIZE, HEADER_SIZE, MOTION_UNKNOWN
from protocol.payloads import CAP_WINDOW_S


@dataclass(frozen=True)
class CameraTile:
    device: Device
    latest: DecodedImage | None
    health: Health
    tier: int  # the tier it is asked to send
    applied: Applied
    activity: Activity
    switches_per_min: float  # tier changes the controller made, last 10 minutes
    rate: RecentRate  # the last minute's bitrate, and its busiest cap window

    @property
    def over_cap(self) -> bool:
        """Over a cap the camera has applied (one on its way holds nothing yet)."""
        return not self.applied.pending and self.rate.over(self.device.max_kbps)


def camera_tile(
    device: Device,
    now: datetime | None = None,
    recent: Activity | None = None,
    switches: float | None = None,
    rate: RecentRate | None = None,
) -> CameraTile:
    return CameraTile(
        device,
        latest_decoded(device),
        health(device, now),
        effective_tier(device),
        applied(device),
        recent or activity(device, now=now),
        switch_rates([device.pk], now)[device.pk] if switches is None else switches,
        rate or recent_rates([device], now=now)[device.pk],
    )


@dataclass(frozen=True)
class TierControl:
    """The camera page's tier section: who decides, why the last decision, how calm."""

    policy: str
    chosen_by: str  # "camera", "site" or "default"
    tier: int  # the tier the camera is asked to send now (what "Why tier N?" names)
    why: str  # why that tier, in plain words
    switches_per_min: float
    changes: list[TierChange]  # the latest, newest first


def why_tier(device: Device) -> str:
    """Why the camera is asked for the tier it is (``effective_tier``), in plain words: the
    admin's fixed tier or limits where they decide, else the controller's last decision. The
    answer always names the tier in force, never a decision the limits overruled."""
    tier = effective_tier(device)
    if device.tier_override:
        return f"An admin fixed the tier at {device.tier_override}: the controller does not choose."
    decided = device.tier_reason.get("tier") if device.tier_reason else None
    if decided is None:
        return (
            f"The controller has not decided yet; tier {tier} is the highest the admin's"
            " limits allow."
        )
    if decided > tier:
        return f"The admin's maximum tier is {tier}; the controller chose {decided}."
    if decided < tier:
        return f"The admin's minimum tier is {tier}; the controller chose {decided}."
    return plain_words(device.tier_reason)


def tier_control(device: Device, now: datetime | None = None, changes: int = 5) -> TierControl:
    policy = effective_policy(device)
    site_policy = getattr(device, "site_policy", None)
    chosen_by = "camera" if device.tier_policy else "site" if site_policy else "default"
    return TierControl(
        policy,
        chosen_by,
        effective_tier(device),
        why_tier(device),
        switch_rates([device.pk], now)[device.pk],
        list(TierChange.objects.filter(device=device).order_by("-at")[:changes]),
    )


@dataclass(frozen=True)
class Filters:
    site: str = ""
    health: str = ""
    q: str = ""


def camera_tiles(devices: QuerySet[Device], filters: Filters = Filters()) -> list[CameraTile]:
    """Tiles of the given cameras, filtered; health is computed, so it filters in Python."""
    if filters.site:
        devices = devices.filter(site=filters.site)
    if filters.q:
        devices = devices.filter(device_id__icontains=filters.q) | devices.filter(
            name__icontains=filters.q
        )
    now = timezone.now()
    cameras = list(devices.order_by("site", "device_id"))
    recent = activities(cameras, now=now)
    switches = switch_rates([d.pk for d in cameras], now)
    rates = recent_rates(cameras, now=now)
    tiles = [camera_tile(d, now, recent[d.pk], switches[d.pk], rates[d.pk]) for d in cameras]
    if filters.health:
        tiles = [t for t in tiles if t.health == filters.health]
    return tiles


def group_by_site(tiles: list[CameraTile]) -> list[tuple[str, list[CameraTile]]]:
    groups: dict[str, list[CameraTile]] = {}
    for tile in tiles:
        groups.setdefault(tile.device.site, []).append(tile)
    return list(groups.items())


def recent_frames(device: Device, limit: int = 24) -> QuerySet[Frame]:
    return Frame.objects.filter(device=device).order_by("-seq")[:limit]


@dataclass(frozen=True)
class Storage:
    frames: int
    layer_bytes: int
    first_at: datetime | None
    last_at: datetime | None


def storage(device: Device) -> Storage:
    """What the archive holds for a camera, from the database (no disk scan)."""
    frames = Frame.objects.filter(device=device).aggregate(
        n=Count("id"), first=Min("received_at"), last=Max("received_at")
    )
    size = Layer.objects.filter(frame__device=device).aggregate(b=Sum(Length("data")))["b"]
    return Storage(frames["n"], size or 0, frames["first"], frames["last"])


# --- archive timeline: day → hour → frames --------------------------------------------------


@dataclass(frozen=True)
class Bucket:
    start: datetime
    frames: int
    share: float  # of the busiest bucket, for the density bar
    offline: float = 0.0  # share of the bucket the camera was offline (its status said so)
    motion: int | None = None  # the most blocks changed in one frame, %; None: no figure


def motion_share() -> Func:
    """A frame's motion share (the packet's percentage of blocks that changed, issue 18)
    as an integer expression; NULL where the packet carries none: a key frame with no
    reference to compare with, or a version 1 packet (intra-only cameras)."""
    return NullIf(Cast(KeyTextTransform("motion", "header"), IntegerField()), Value(MOTION_UNKNOWN))


def has_motion_data(buckets: list[Bucket]) -> bool | None:
    """Whether any frame of these buckets carries a motion figure: without one the page
    says "no motion data" instead of drawing zeros that pretend to be data. None: there is
    no frame to say it of."""
    if not any(b.frames for b in buckets):
        return None
    return any(b.motion is not None for b in buckets)


def offline_spans(
    device: Device, start: datetime, end: datetime
) -> list[tuple[datetime, datetime]]:
    """The periods within [start, end) that the camera's status said it was offline."""
    before = ConnectionChange.objects.filter(device=device, at__lt=start).order_by("-at").first()
    offline_since = start if before is not None and not before.online else None
    spans = []
    for change in ConnectionChange.objects.filter(
        device=device, at__gte=start, at__lt=end
    ).order_by("at"):
        if change.online and offline_since is not None:
            spans.append((offline_since, change.at))
            offline_since = None
        elif not change.online and offline_since is None:
            offline_since = change.at
    if offline_since is not None:
        spans.append((offline_since, min(end, timezone.now())))
    return spans


def _offline_share(
    spans: list[tuple[datetime, datetime]], start: datetime, length: timedelta
) -> float:
    end = start + length
    overlap = sum(
        ((min(e, end) - max(s, start)) for s, e in spans if s < end and e > start), timedelta()
    )
    return overlap / length


def _buckets(rows: dict[datetime, dict], starts: list[datetime]) -> list[Bucket]:
    """Buckets at ``starts`` from the rows of a grouped query (``n`` frames, ``motion``)."""
    busiest = max((r["n"] for r in rows.values()), default=0) or 1
    empty = {"n": 0, "motion": None}
    return [
        Bucket(s, row["n"], row["n"] / busiest, motion=row["motion"])
        for s, row in ((s, rows.get(s, empty)) for s in starts)
    ]


def archive_days(device: Device, limit: int = 31) -> list[tuple[date, int]]:
    """The most recent days with frames, newest first, with their frame counts."""
    rows = (
        Frame.objects.filter(device=device)
        .annotate(day=TruncDate("received_at"))
        .values("day")
        .annotate(n=Count("id"))
        .order_by("-day")[:limit]
    )
    return [(r["day"], r["n"]) for r in rows]


def day_hours(device: Device, day: date) -> list[Bucket]:
    """24 hourly buckets of one day; empty ones are gaps (the camera was off or asleep)."""
    start = datetime.combine(day, datetime.min.time(), tzinfo=timezone.get_current_timezone())
    rows = (
        Frame.objects.filter(
            device=device, received_at__gte=start, received_at__lt=start + timedelta(days=1)
        )
        .annotate(hour=TruncHour("received_at"))
        .values("hour")
        .annotate(n=Count("id"), motion=Max(motion_share()))
    )
    buckets = _buckets(
        {r["hour"]: r for r in rows}, [start + timedelta(hours=h) for h in range(24)]
    )
    spans = offline_spans(device, start, start + timedelta(days=1))
    hour = timedelta(hours=1)
    return [replace(b, offline=_offline_share(spans, b.start, hour)) for b in buckets]


def with_best_image(frames: QuerySet[Frame]) -> QuerySet[Frame]:
    """``frames`` marked with their best decoded image, the one the image endpoint serves
    without a k: its ``image_k`` (None: no image to show yet) and ``image_decoder``, for
    its versioned URL (``services.image_url``); and their ``motion`` share."""
    best = DecodedImage.objects.filter(frame=OuterRef("pk")).order_by("-channels")
    return frames.annotate(
        image_k=Subquery(best.values("channels")[:1]),
        image_decoder=Subquery(best.values("decoder")[:1]),
        motion=motion_share(),
    )


def hour_frames(device: Device, hour_start: datetime) -> QuerySet[Frame]:
    """The frames of one hour, newest first (what a person looks for), each with its best
    image (``with_best_image``). The caller pages it: an hour holds up to 3,600 frames at
    1 frame/s."""
    return with_best_image(
        Frame.objects.filter(
            device=device,
            received_at__gte=hour_start,
            received_at__lt=hour_start + timedelta(hours=1),
        )
    ).order_by("-received_at", "-seq")


def motion_frames(device: Device, day: date, threshold: int | None = None) -> QuerySet[Frame]:
    """Event search: the day's event frames (``archive.policy.event_frames``: at least
    ``threshold`` % of the blocks changed, ``STRATA_EVENT_MOTION`` unless given), newest
    first, marked as ``hour_frames`` marks them. Frames without a motion figure never
    match. The caller pages it."""
    start = datetime.combine(day, datetime.min.time(), tzinfo=timezone.get_current_timezone())
    day_frames = Frame.objects.filter(
        device=device, received_at__gte=start, received_at__lt=start + timedelta(days=1)
    )
    return with_best_image(day_frames.filter(event_frames(threshold))).order_by(
        "-received_at", "-seq"
    )


def hour_minutes(device: Device, hour_start: datetime) -> list[Bucket]:
    """60 minute buckets of an hour's frames, with the most motion of a frame in each: the
    density and activity strips above the frame list, from one grouped query (the page
    shows only some of the hour's frames)."""
    rows = (
        Frame.objects.filter(
            device=device,
            received_at__gte=hour_start,
            received_at__lt=hour_start + timedelta(hours=1),
        )
        .annotate(minute=TruncMinute("received_at"))
        .values("minute")
        .annotate(n=Count("id"), motion=Max(motion_share()))
    )
    counts = {r["minute"]: r for r in rows}
    return _buckets(counts, [hour_start + timedelta(minutes=m) for m in range(60)])


def minute_pages(minutes: list[Bucket], per_page: int) -> list[int]:
    """For each minute bucket of an hour, the page of the hour's frame list (newest
    first, ``per_page`` a page) that shows its newest frame: where a click on a busy
    minute jumps. From the buckets' counts, without another query."""
    pages, newer = [], sum(b.frames for b in minutes)
    for bucket in minutes:
        newer -= bucket.frames
        pages.append(newer // per_page + 1)
    return pages


def neighbours(frame: Frame) -> tuple[Frame | None, Frame | None]:
    """The previous and next archived frames of the same camera."""
    same = Frame.objects.filter(device_id=frame.device_id).only("id", "seq")
    before = same.filter(seq__lt=frame.seq).order_by("-seq").first()
    after = same.filter(seq__gt=frame.seq).order_by("seq").first()
    return before, after


# --- recent activity, per minute, from the archive (what the camera delivered) ------------


@dataclass(frozen=True)
class Activity:
    """The last ``len(frames)`` minutes of a camera, oldest first; None where nothing came."""

    frames: list[int]
    tier: list[float | None]  # mean layers per frame: the tier that really arrived
    kbps: list[float]  # archived bytes per minute as kbit/s
    link_kbps: list[float | None]  # the device's own throughput measurement (telemetry)
    puback_ms: list[float | None]  # the device's publish->PUBACK latency (telemetry)

    @property
    def mean_kbps(self) -> float:
        busy = [v for v in self.kbps if v]
        return sum(busy) / len(busy) if busy else 0.0


def activities(
    devices: list[Device], minutes: int = 60, now: datetime | None = None
) -> dict[int, Activity]:
    """Per camera (by pk), its last ``minutes``: three queries for the whole page."""
    end = (now or timezone.now()).replace(second=0, microsecond=0) + timedelta(minutes=1)
    start = end - timedelta(minutes=minutes)
    frames = (
        Frame.objects.filter(device__in=devices, received_at__gte=start, received_at__lt=end)
        .annotate(minute=TruncMinute("received_at"))
        .values("device_id", "minute")
        .annotate(n=Count("id"), tier=Avg("n_layers"))
    )
    sizes = (
        Layer.objects.filter(
            frame__device__in=devices, frame__received_at__gte=start, frame__received_at__lt=end
        )
        .annotate(minute=TruncMinute("frame__received_at"))
        .values("frame__device_id", "minute")
        .annotate(b=Sum(Length("data")))
    )
    link = (
        LinkSample.objects.filter(device__in=devices, at__gte=start, at__lt=end)
        .annotate(minute=TruncMinute("at"))
        .values("device_id", "minute")
        .annotate(kbps=Avg("throughput_kbps"), puback=Avg("puback_ms"))
    )
    counts = {(r["device_id"], r["minute"]): r for r in frames}
    links = {(r["device_id"], r["minute"]): r for r in link}
    size = {(r["frame__device_id"], r["minute"]): r["b"] or 0 for r in sizes}
    slots = [start + timedelta(minutes=m) for m in range(minutes)]

    def one(pk: int) -> Activity:
        rows = [counts.get((pk, m)) for m in slots]
        return Activity(
            frames=[r["n"] if r else 0 for r in rows],
            tier=[r["tier"] if r else None for r in rows],
            kbps=[size.get((pk, m), 0) * 8 / 60 / 1000 for m in slots],
            link_kbps=[(links.get((pk, m)) or {}).get("kbps") for m in slots],
            puback_ms=[(links.get((pk, m)) or {}).get("puback") for m in slots],
        )

    return {d.pk: one(d.pk) for d in devices}


def activity(device: Device, minutes: int = 60, now: datetime | None = None) -> Activity:
    return activities([device], minutes, now)[device.pk]


# --- the bitrate a camera's cap is held to -----------------------------------------------


@dataclass(frozen=True)
class RecentRate:
    """A camera's last minute of frames, as packet bytes by capture time: the mean rate, and
    the busiest ``CAP_WINDOW_S`` window, the window its ``max_kbps`` cap holds over (the
    camera enforces it there; ``docs/control.md``). An hour's mean beside a cap reads as a
    violation when it is none."""

    kbps: float  # mean over the minute
    peak_kbps: float  # the busiest cap window of the minute

    def over(self, cap: float | None) -> bool:
        return cap is not None and self.peak_kbps > cap


def _packet_bytes(layer_bytes: int, layers: int, long_chunks: int) -> int:
    """A frame's packet size from what the archive keeps (``mcucoder.bitstream.packet_size``
    without reading each layer): header, CRC, the chunks, and their lengths as varints, one
    byte each below 128 bytes, one more for each longer chunk (chunks stay below 16 KiB)."""
    return HEADER_SIZE + CRC_SIZE + layer_bytes + layers + long_chunks


def recent_rates(
    devices: list[Device], seconds: int = 60, now: datetime | None = None
) -> dict[int, RecentRate]:
    """Per camera (by pk), its ``RecentRate`` over the frames received in the last
    ``seconds``: one query for the whole page. The peak counts only frames received since
    the camera last reported applying its settings (``reported_at``): frames sent before
    a new cap reached it are not held to it."""
    since = (now or timezone.now()) - timedelta(seconds=seconds)
    rows = (
        Layer.objects.filter(frame__device__in=devices, frame__received_at__gte=since)
        .annotate(size=Length("data"))
        .values("frame_id", "frame__device_id", "frame__capture_time_ms", "frame__received_at")
        .annotate(
            total=Sum("size"),
            n=Count("id"),
            long=Sum(Case(When(size__gte=128, then=Value(1)), default=Value(0))),
        )
    )
    frames: dict[int, list[tuple[int, int, datetime]]] = {d.pk: [] for d in devices}
    for r in rows:
        size = _packet_bytes(r["total"] or 0, r["n"], r["long"] or 0)
        sent = (r["frame__capture_time_ms"], size, r["frame__received_at"])
        frames[r["frame__device_id"]].append(sent)
    applied_at = {d.pk: d.reported_at for d in devices}

    def rate(pk: int) -> RecentRate:
        sent = sorted(frames[pk])
        held = [(at, size) for at, size, received in sent if _after(received, applied_at[pk])]
        return RecentRate(_mean(sent, seconds), _peak(held))

    return {d.pk: rate(d.pk) for d in devices}


def _after(received: datetime, applied: datetime | None) -> bool:
    return applied is None or received >= applied


def _mean(sent: list[tuple[int, int, datetime]], seconds: int) -> float:
    return sum(size for _, size, _ in sent) * 8 / 1000 / seconds


def _peak(sent: list[tuple[int, int]]) -> float:
    """The busiest ``CAP_WINDOW_S`` window of (capture ms, bytes) pairs in capture order,
    as kbit/s: each window ending at a frame, (at - window, at]."""
    window_ms = CAP_WINDOW_S * 1000
    peak, start, inside = 0, 0, 0
    for at, size in sent:
        inside += size
        while sent[start][0] <= at - window_ms:
            inside -= sent[start][1]
            start += 1
        peak = max(peak, inside)
    return peak * 8 / 1000 / CAP_WINDOW_S


# --- the admin area -----------------------------------------------------------------------


@dataclass(frozen=True)
class Site:
    """A site as the admin area lists it: cameras on it, its tier policy, who sees it."""

    name: str
    cameras: int
    policy: str  # "" for the default
    operators: int  # accounts assigned the whole site


def sites() -> list[Site]:
    """Every site a camera names or a policy was set for, by name: three queries."""
    cameras = dict(
        Device.objects.exclude(site="")
        .values("site")
        .annotate(n=Count("id"))
        .values_list("site", "n")
    )
    policies = dict(SitePolicy.objects.values_list("site", "policy"))
    operators = dict(
        Assignment.objects.exclude(site="")
        .values("site")
        .annotate(n=Count("user", distinct=True))
        .values_list("site", "n")
    )
    names = sorted(cameras.keys() | policies.keys(), key=str.lower)
    return [Site(n, cameras.get(n, 0), policies.get(n, ""), operators.get(n, 0)) for n in names]
