"""What gets decoded, and when: the deployment's decode policy and the routing of new frames.

The archive keeps every layer of every frame; a decoded image is a cache. Policies:

- ``eager``: every frame at its full k as it arrives (GPU workers keep up): the watched
  cameras' newest frames on the live queue, every frame on the archive queue at backfill
  priority;
- ``watched``: the newest frame of each camera someone views live, at once; event frames
  (motion, ``is_event``) soon after; the rest when workers are idle (``BACKFILL``, newest
  first, a frame at a time). Event frames go the backfill way too, ahead of it (one task
  queued at a time at ``Priority.EVENT``): a busy scene's events never pile up as tasks;
- ``on-demand``: only what a viewer (live or browsing), an export or an API call asks for.

``auto`` (the default, ``STRATA_DECODE_POLICY``) is ``eager`` when a worker with a GPU is
alive (workers announce themselves: ``announce_worker``), else ``watched``.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterable, Sequence
from datetime import timedelta
from enum import StrEnum

from django.conf import settings
from django.db.models import Exists, OuterRef, Q
from django.utils import timezone

from archive import coordination
from archive.images import frames_needing_decode
from archive.jobs import (
    ARCHIVE_QUEUE,
    BACKFILL,
    DECODE_FRAMES,
    DECODE_LIVE,
    LIVE_QUEUE,
    JobQueueUnavailable,
    Priority,
    queue_job,
    tasks_run_here,
)
from archive.models import DecodedImage, DecodeFailure, Frame
from mcucoder.bitstream import MOTION_UNKNOWN

WORKER_TTL_S = 30  # a worker that has not announced itself for this long is gone
PENDING_TTL_S = 120  # a live decode or backfill marked queued is assumed lost after this
EAGER_CHUNK = 64  # frames per eager decode task (a GPU batch)
_CACHE_S = 2.0


class Policy(StrEnum):
    EAGER = "eager"
    WATCHED = "watched"
    ON_DEMAND = "on-demand"


class _Cached:
    """A value recomputed at most every ``_CACHE_S``: ingest asks every batch (50 ms)."""

    def __init__(self) -> None:
        self.at = -1e9
        self.value: object = None

    def get(self, compute):
        now = time.monotonic()
        if now - self.at > _CACHE_S:
            self.value, self.at = compute(), now
        return self.value

    def clear(self) -> None:
        self.at = -1e9


_policy_cache, _watched_cache = _Cached(), _Cached()


def configured_policy() -> Policy | None:
    """The policy the settings name, or None for ``auto``; a bad name says so in one line."""
    choice = settings.STRATA_DECODE_POLICY
    if choice == "auto":
        return None
    try:
        return Policy(choice)
    except ValueError:
        names = ", ".join(["auto", *Policy])
        raise ValueError(f"STRATA_DECODE_POLICY={choice!r}: choose one of {names}") from None


def policy_for_workers(devices: Iterable[str]) -> Policy:
    """``eager`` when one of the workers decodes on a GPU, else ``watched``."""
    return Policy.EAGER if any(d.startswith("cuda") for d in devices) else Policy.WATCHED


def decode_policy() -> Policy:
    """The policy in force: the setting, or picked from the workers alive."""
    configured = configured_policy()
    if configured is not None:
        return configured
    return _policy_cache.get(lambda: policy_for_workers(worker_devices().values()))


# -- workers ------------------------------------------------------------------------------


def announce_worker(name: str, device: str) -> None:
    """A decode worker says it is alive and what it decodes on (every few seconds)."""
    coordination.refresh_members(coordination.WORKERS, [f"{name}|{device}"], WORKER_TTL_S)


def retire_worker(name: str, device: str) -> None:
    coordination.drop_members(coordination.WORKERS, [f"{name}|{device}"])


def worker_devices() -> dict[str, str]:
    """The workers alive: name -> device ("cpu", "cuda", "cuda:1")."""
    members = coordination.live_members(coordination.WORKERS)
    return dict(m.rsplit("|", 1) for m in members)


# -- watched cameras --------------------------------------------------------------------------


def _watch_marks(device_ids: Iterable[str], viewer: str) -> list[str]:
    return [f"{d}|{viewer}" for d in device_ids]


def watch(device_ids: Iterable[str], viewer: str = "") -> None:
    """Someone views these cameras live: keep them watched for ``STRATA_WATCH_TTL_S``
    (live views refresh this while they are open). Each ``viewer`` (a live socket) keeps
    marks of its own, so that it can take them back (``unwatch``) when its page stops
    showing a camera without un-watching one another page still shows."""
    coordination.refresh_members(
        coordination.WATCHED, _watch_marks(device_ids, viewer), settings.STRATA_WATCH_TTL_S
    )
    _watched_cache.clear()


def unwatch(device_ids: Iterable[str], viewer: str = "") -> None:
    """``viewer`` no longer shows these cameras (scrolled away, tab hidden, page closed)."""
    coordination.drop_members(coordination.WATCHED, _watch_marks(device_ids, viewer))
    _watched_cache.clear()


def watched_device_ids() -> set[str]:
    """The cameras some live view shows now (cached for ``_CACHE_S``)."""
    return _watched_cache.get(
        lambda: {m.rsplit("|", 1)[0] for m in coordination.live_members(coordination.WATCHED)}
    )


# -- routing new frames -------------------------------------------------------------------------


def _live_pending(device_pk: int) -> str:
    return f"live-pending:{device_pk}"


BACKFILL_PENDING = "backfill-pending"
EVENTS_PENDING = "events-pending"


def newest_per_device(frames: Iterable[Frame]) -> list[Frame]:
    newest: dict[int, Frame] = {}
    for f in frames:
        seen = newest.get(f.device_id)
        if seen is None or (f.capture_time_ms, f.seq) > (seen.capture_time_ms, seen.seq):
            newest[f.device_id] = f
    return list(newest.values())


def queue_decodes(frame_ids: Sequence[int]) -> set[int]:
    """New frames were archived: queue what the policy decodes now. Returns the frames
    queued for decoding (a live decode already queued for the camera counts: it will take
    the newest frame). Raises ``JobQueueUnavailable`` when nothing could be queued.

    Live decodes are coalesced: one task queued per camera at a time, and it decodes that
    camera's newest frame when it runs, not every frame that arrived meanwhile. A task per
    camera, so that each viewer waits for its own camera's decode only, and the workers
    free at the time (the live one, an idle archive one) share them.
    """
    frames = sorted(frames_needing_decode(frame_ids), key=lambda f: f.pk)  # oldest first
    if not frames:
        return set()
    if tasks_run_here():
        # One process (the demo): decode now, inline, each camera's newest frame of the
        # batch. Every frame would fall behind when decoding is slower than the cameras
        # (320x240 on two cores): ingest's batches, and its stop, would wait on the torch
        # backlog. The others decode when someone looks at them.
        ids = [f.pk for f in newest_per_device(frames)]
        queue_job(DECODE_FRAMES, ids, queue=LIVE_QUEUE)
        return set(ids)
    policy = decode_policy()
    watched = watched_device_ids()
    live = newest_per_device(f for f in frames if f.device.device_id in watched)
    queued = {f.pk for f in frames if f.device.device_id in watched}
    flags = [_live_pending(f.device_id) for f in live]
    fresh = [
        f
        for f, ok in zip(
            live, coordination.claim(flags, uuid.uuid4().hex, PENDING_TTL_S), strict=True
        )
        if ok
    ]
    for i, frame in enumerate(fresh):  # a task per camera: live workers share them
        try:
            queue_job(DECODE_LIVE, [frame.pk], queue=LIVE_QUEUE)
        except JobQueueUnavailable:
            coordination.release([_live_pending(f.device_id) for f in fresh[i:]])
            raise
    if policy is Policy.EAGER:
        ids = [f.pk for f in frames]
        for start in range(0, len(ids), EAGER_CHUNK):
            chunk = ids[start : start + EAGER_CHUNK]
            queue_job(DECODE_FRAMES, chunk, False, queue=ARCHIVE_QUEUE, priority=Priority.BACKFILL)
        queued |= set(ids)
    elif policy is Policy.WATCHED:
        events = [f.pk for f in frames if f.pk not in queued and is_event(f)]
        if events:
            request_backfill(events=True)
            queued |= set(events)
        request_backfill()
    return queued


def is_event(frame: Frame) -> bool:
    """A frame whose camera saw at least ``STRATA_EVENT_MOTION`` % of its blocks change
    (the packet's motion share, version 2; unknown in version 1 packets)."""
    motion = frame.header.get("motion", MOTION_UNKNOWN)
    return motion != MOTION_UNKNOWN and motion >= settings.STRATA_EVENT_MOTION


def event_frames(motion: int | None = None) -> Q:
    """The query form of ``is_event``: the one definition of an event frame, for what
    decodes them first (``backfill_candidates``), what keeps them (``archive.retention``)
    and what finds them (the archive page's event search, ``dashboard.queries``, which may
    ask for another ``motion`` share than ``STRATA_EVENT_MOTION``)."""
    threshold = settings.STRATA_EVENT_MOTION if motion is None else motion
    return Q(header__motion__gte=threshold) & ~Q(header__motion=MOTION_UNKNOWN)


def backfill_pending(events: bool = False) -> str:
    """The flag of the queued backfill task (of event frames only, with ``events``)."""
    return EVENTS_PENDING if events else BACKFILL_PENDING


def request_backfill(events: bool = False) -> bool:
    """Queue one backfill task (``events``: of event frames, at ``Priority.EVENT``) unless
    one is queued already; True if this call queued it."""
    flag = backfill_pending(events)
    if not coordination.claim([flag], uuid.uuid4().hex, PENDING_TTL_S)[0]:
        return False
    priority = Priority.EVENT if events else Priority.BACKFILL
    try:
        queue_job(BACKFILL, events, queue=ARCHIVE_QUEUE, priority=priority)
    except JobQueueUnavailable:
        coordination.release([flag])
        raise
    return True


def live_decode_started(frames: Iterable[Frame]) -> None:
    """A live decode runs: frames arriving from now on need a live decode of their own."""
    coordination.release([_live_pending(pk) for pk in {f.device_id for f in frames}])


def backfill_candidates(limit: int, events: bool = False) -> list[Frame]:
    """Frames not decoded at their full k yet (nor marked undecodable), newest first,
    within ``STRATA_BACKFILL_WINDOW_S``; with ``events`` only event frames."""
    cutoff = timezone.now() - timedelta(seconds=settings.STRATA_BACKFILL_WINDOW_S)
    done = DecodedImage.objects.filter(frame=OuterRef("pk"), channels=OuterRef("n_layers"))
    failed = DecodeFailure.objects.filter(frame=OuterRef("pk"), channels=OuterRef("n_layers"))
    frames = Frame.objects.filter(received_at__gte=cutoff, n_layers__gt=0)
    return list(
        (frames.filter(event_frames()) if events else frames)
        .exclude(Exists(done))
        .exclude(Exists(failed))
        .select_related("device")
        .order_by("-received_at", "-pk")[:limit]
    )
