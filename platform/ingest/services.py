"""What ingest does with one MQTT message. The consumer only moves bytes and acknowledges.

Every message ends in one of two places: stored, or set aside (counted in ``Rejection``,
logged once, kept in ``DeadLetter`` with its bytes). Only a service we depend on failing
(the database connection, the Celery broker) raises, so that the batch is delivered again;
content never does, or one poison message would be delivered again for ever.
"""

from __future__ import annotations

import logging
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from django.conf import settings
from django.db import DataError, IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from archive.partitions import ensure_layer_partitions
from archive.policy import queue_decodes
from archive.services import StoredFrame, store_packets
from control.services import record_telemetry
from fleet.models import Device
from fleet.services import mark_seen, record_reported, set_online
from ingest.key_frames import KeyFrameWatch
from ingest.models import DeadLetter, Rejection
from mcucoder import registry
from mcucoder.bitstream import Packet, PacketError, parse_packet
from observability import metrics
from protocol import topics
from protocol.payloads import MAX_TIER, PayloadError, Reported, Status

log = logging.getLogger(__name__)

# Errors that one message's content can cause while it is stored. Anything else (a lost
# database connection: OperationalError, InterfaceError; the Celery broker) is a failing
# service, and the batch must be delivered again.
CONTENT_ERRORS = (DataError, IntegrityError, ValueError, TypeError, ArithmeticError)

# The newest capture time ingest accepts: the end of year 9999, which both a Python datetime
# (the pages) and a 64-bit integer column (the archive) can hold. The packet allows 2^64-1.
MAX_CAPTURE_TIME_MS = 253_402_300_799_999


class Rejected(Exception):
    """A message that will never be accepted: count it, log it, acknowledge it, move on."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason, self.detail = reason, detail


@dataclass(frozen=True)
class SetAside:
    """A refused message with what it was: where it came from, its bytes, and why."""

    topic: str
    device_id: str
    payload: bytes
    rejection: Rejected


@dataclass(frozen=True)
class FrameOutcome:
    device_id: str
    seq: int
    frame_id: int
    new_layers: int
    enqueued: bool


@dataclass
class BatchOutcome:
    frames: list[FrameOutcome] = field(default_factory=list)
    rejected: Counter = field(default_factory=Counter)  # (device_id, reason) -> messages


def _text(value: str, limit: int) -> str:
    """Text that PostgreSQL stores whatever a device put in it: no NUL, valid UTF-8."""
    value = value.replace("\x00", "\\x00")[:limit]
    return value.encode("utf-8", "backslashreplace").decode("utf-8")


def record_rejections(items: Sequence[SetAside]) -> None:
    """Count refused messages per (device, reason), log the first of each at WARNING, and
    keep each as a dead letter, so that someone can see what was sent. Bounded: per
    (device, reason) the newest ``DeadLetter.KEEP_PER_REASON``, in all ``KEEP_TOTAL``."""
    grouped: dict[tuple[str, str], list[SetAside]] = defaultdict(list)
    metrics.count_rejected([item.rejection.reason for item in items])
    for item in items:
        grouped[(_text(item.device_id, 64), _text(item.rejection.reason, 64))].append(item)
    for (device_id, reason), group in sorted(grouped.items()):  # one lock order: no deadlocks
        detail = _text(group[-1].rejection.detail, 2000)
        row, created = Rejection.objects.get_or_create(device_id=device_id, reason=reason)
        Rejection.objects.filter(pk=row.pk).update(
            count=F("count") + len(group), last_detail=detail
        )
        level = logging.WARNING if created else logging.DEBUG
        log.log(level, "rejected message from %s (%s): %s", device_id, reason, detail)
    DeadLetter.objects.bulk_create(
        DeadLetter(
            topic=_text(item.topic, 256),
            device_id=device_id,
            reason=reason,
            detail=_text(item.rejection.detail, 2000),
            payload=bytes(item.payload[: DeadLetter.PAYLOAD_LIMIT]),
            size=len(item.payload),
        )
        for (device_id, reason), group in grouped.items()
        for item in group[-DeadLetter.KEEP_PER_REASON :]
    )
    _prune_dead_letters(grouped)


def _prune_dead_letters(keys: Sequence[tuple[str, str]]) -> None:
    for device_id, reason in keys:
        stale = list(
            DeadLetter.objects.filter(device_id=device_id, reason=reason)
            .order_by("-id")
            .values_list("pk", flat=True)[DeadLetter.KEEP_PER_REASON :]
        )
        if stale:
            DeadLetter.objects.filter(pk__in=stale).delete()
    total = DeadLetter.KEEP_TOTAL
    oldest_kept = list(
        DeadLetter.objects.order_by("-id").values_list("pk", flat=True)[total - 1 : total]
    )
    if oldest_kept:
        DeadLetter.objects.filter(pk__lt=oldest_kept[0]).delete()


def record_rejection(
    device_id: str, reason: str, detail: str, topic: str = "", payload: bytes = b""
) -> None:
    """Set aside one message (see ``record_rejections``)."""
    record_rejections([SetAside(topic, device_id, payload, Rejected(reason, detail))])


def parse_frame(payload: bytes) -> Packet:
    """Parse and check a frame packet on its own (no database), or raise ``Rejected``.

    Beyond the packet format: a deployed model, at most the codec's channels, a capture time
    a datetime can hold, and at most ``STRATA_MAX_FRAME_PIXELS`` pixels, which bounds what a
    decode worker holds per frame.
    """
    if len(payload) > settings.STRATA_MAX_PACKET_BYTES:
        raise Rejected("oversized", f"{len(payload)} bytes > {settings.STRATA_MAX_PACKET_BYTES}")
    try:
        packet = parse_packet(payload, max_size=settings.STRATA_MAX_PACKET_BYTES)
    except PacketError as exc:
        raise Rejected(f"bad_packet:{type(exc).__name__}", str(exc)) from exc
    if packet.model_id not in registry.known_model_ids():
        raise Rejected("unknown_model", f"model id {packet.model_id:#010x} is not deployed here")
    if packet.n_channels > MAX_TIER:
        raise Rejected(
            "out_of_range:channels", f"{packet.n_channels} channels, the codec has {MAX_TIER}"
        )
    if packet.capture_time_ms > MAX_CAPTURE_TIME_MS:
        raise Rejected(
            "out_of_range:capture_time_ms",
            f"capture_time_ms {packet.capture_time_ms} is after the year 9999",
        )
    pixels, limit = packet.width * packet.height, settings.STRATA_MAX_FRAME_PIXELS
    if pixels > limit:
        raise Rejected(
            "out_of_range:pixels",
            f"{packet.width}x{packet.height} is {pixels} pixels, more than {limit}",
        )
    return packet


def _frame_topic(device_id: str) -> str:
    try:
        return topics.topic(device_id, topics.Kind.FRAME)
    except topics.TopicError:
        return f"{topics.ROOT}/{device_id}/{topics.Kind.FRAME.value}"


def _active_devices(device_ids: set[str]) -> dict[str, Device]:
    return {d.device_id: d for d in Device.objects.filter(device_id__in=device_ids)}


def _device_rejection(device_id: str, device: Device | None) -> Rejected | None:
    if device is None:
        return Rejected("unknown_device", f"no device {device_id!r} is provisioned")
    if not device.is_active:
        return Rejected("inactive_device", f"device {device_id!r} is deactivated")
    return None


@dataclass(frozen=True)
class _Item:
    device: Device
    packet: Packet
    payload: bytes


def _store(items: Sequence[_Item]) -> tuple[list[StoredFrame], list[SetAside]]:
    """Archive the items in one transaction; conflicting packets are set aside."""
    with transaction.atomic():
        result = store_packets([(i.device, i.packet) for i in items])
        seen = {s.frame.device_id for s in result.stored}
        if seen:
            Device.objects.filter(pk__in=seen).update(online=True, last_seen_at=timezone.now())
    payloads = {id(i.packet): i.payload for i in items}
    conflicts = [
        SetAside(
            _frame_topic(d.device_id), d.device_id, payloads[id(p)], Rejected("conflict", str(e))
        )
        for d, p, e in result.conflicts
    ]
    return result.stored, conflicts


def _unstorable(topic: str, device_id: str, payload: bytes, exc: Exception) -> SetAside:
    return SetAside(
        topic, device_id, payload, Rejected("unstorable", f"{type(exc).__name__}: {exc}")
    )


def _store_isolating_content_errors(
    items: Sequence[_Item],
) -> tuple[list[StoredFrame], list[SetAside]]:
    """Archive the batch in one transaction; if the database refuses its content, archive
    each frame on its own, so that only the frames it refuses are set aside."""
    try:
        return _store(items)
    except CONTENT_ERRORS as exc:
        if len(items) == 1:
            item = items[0]
            return [], [
                _unstorable(
                    _frame_topic(item.device.device_id), item.device.device_id, item.payload, exc
                )
            ]
        log.warning("a batch of %d frames was refused (%s); storing each alone", len(items), exc)
    stored: list[StoredFrame] = []
    set_aside: list[SetAside] = []
    for item in items:
        more_stored, more_set_aside = _store_isolating_content_errors([item])
        stored += more_stored
        set_aside += more_set_aside
    return stored, set_aside


# Refusals that say nothing of a camera's stream: no camera of ours sent it
NOT_A_CAMERAS_FRAME = ("unknown_device", "inactive_device")


def ingest_frames(
    frames: Sequence[tuple[str, bytes]], key_frames: KeyFrameWatch | None = None
) -> BatchOutcome:
    """Parse, check and archive a batch of frame packets in one transaction, then queue
    the frames the decode policy decodes now (``archive.policy.queue_decodes``), and tell
    ``key_frames`` what was archived and refused (a broken predicted stream asks for a key
    frame: ``ingest.key_frames``).

    Packets that can never be archived are set aside (``record_rejections``); so is a packet
    whose content the database refuses, alone: the rest of its batch is archived.
    Database connection and Celery broker errors propagate, so that the caller leaves the
    messages unacknowledged and the MQTT broker delivers them again.
    """
    outcome = BatchOutcome()
    set_aside: list[SetAside] = []
    parsed: list[tuple[str, bytes, Packet]] = []
    for device_id, payload in frames:
        try:
            parsed.append((device_id, payload, parse_frame(payload)))
        except Rejected as exc:
            set_aside.append(SetAside(_frame_topic(device_id), device_id, payload, exc))
    devices = _active_devices({device_id for device_id, _, _ in parsed})
    items: list[_Item] = []
    for device_id, payload, packet in parsed:
        device = devices.get(device_id)
        if (problem := _device_rejection(device_id, device)) is not None:
            set_aside.append(SetAside(_frame_topic(device_id), device_id, payload, problem))
        else:
            items.append(_Item(device, packet, payload))

    stored: list[StoredFrame] = []
    if items:
        ensure_layer_partitions()
        stored, refused = _store_isolating_content_errors(items)
        metrics.count_archived([(s.frame.capture_time_ms, s.new_layers) for s in stored])
        set_aside += refused
    if set_aside:
        record_rejections(set_aside)

    if key_frames is not None:
        packets = {(i.device.pk, i.packet.seq): i.packet for i in items}
        key_frames.observe(
            [(s.frame.device, packets[(s.frame.device_id, s.frame.seq)]) for s in stored],
            {a.device_id for a in set_aside if a.rejection.reason not in NOT_A_CAMERAS_FRAME},
        )
    queued = queue_decodes([s.frame.pk for s in stored])  # as the decode policy says
    outcome.frames = [
        FrameOutcome(
            s.frame.device.device_id, s.frame.seq, s.frame.pk, s.new_layers, s.frame.pk in queued
        )
        for s in stored
    ]
    outcome.rejected.update((a.device_id, a.rejection.reason) for a in set_aside)
    return outcome


def ingest_status(device_id: str, payload: bytes) -> None:
    """Apply a retained online/offline status message (the Last Will says offline).

    An empty payload is MQTT's way of deleting a retained message, not a status.
    """
    if not payload:
        return
    try:
        status = Status.parse(payload)
    except PayloadError as exc:
        raise Rejected("bad_status", f"{payload[:100]!r}: {exc}") from exc
    set_online(device_id, status.state == "online")


def ingest_reported(device_id: str, payload: bytes) -> None:
    """Store what a device says it applied of its desired state (retained, versioned)."""
    if not payload:
        return  # a deleted retained message
    try:
        record_reported(device_id, Reported.parse(payload))
    except PayloadError as exc:
        raise Rejected("bad_reported", f"{payload[:100]!r}: {exc}") from exc


def ingest_telemetry(device_id: str, payload: bytes) -> None:
    """A telemetry message is a heartbeat, and a link sample for the tier controller."""
    device = Device.objects.filter(device_id=device_id, is_active=True).first()
    if device is None:
        return
    mark_seen(device)
    try:
        record_telemetry(device, payload)
    except PayloadError as exc:
        raise Rejected("bad_telemetry", f"{payload[:100]!r}: {exc}") from exc


_HANDLERS: dict[topics.Kind, Callable[[str, bytes], None]] = {
    topics.Kind.STATUS: ingest_status,
    topics.Kind.TELEMETRY: ingest_telemetry,
    topics.Kind.REPORTED: ingest_reported,
}


def _apply(kind: topics.Kind, device_id: str, payload: bytes) -> Rejected | None:
    """Apply one status, telemetry or reported message in a transaction of its own: a
    refusal keeps what was done (a heartbeat is still a heartbeat), content the database
    refuses undoes it and sets the message aside."""
    handler = _HANDLERS.get(kind)
    if handler is None:
        return Rejected("bad_topic", f"ingest does not take {kind.value} messages")
    try:
        with transaction.atomic():
            try:
                handler(device_id, payload)
            except Rejected as exc:
                return exc
    except CONTENT_ERRORS as exc:
        return Rejected("unstorable", f"{type(exc).__name__}: {exc}")
    return None


def handle_batch(
    messages: Sequence[tuple[str, bytes]], key_frames: KeyFrameWatch | None = None
) -> BatchOutcome:
    """Route a batch of messages by topic; frames are archived together (``key_frames``:
    see ``ingest_frames``).

    Never raises for bad input (it is set aside); raises only when a service we depend on
    fails, in which case nothing of the batch may be acknowledged.
    """
    frames: list[tuple[str, bytes]] = []
    set_aside: list[SetAside] = []
    for topic_name, payload in messages:
        try:
            parsed = topics.parse(topic_name)
        except topics.TopicError as exc:
            set_aside.append(SetAside(topic_name, "?", payload, Rejected("bad_topic", str(exc))))
            continue
        if parsed.kind is topics.Kind.FRAME:
            frames.append((parsed.device_id, payload))
        elif (problem := _apply(parsed.kind, parsed.device_id, payload)) is not None:
            set_aside.append(SetAside(topic_name, parsed.device_id, payload, problem))
    if set_aside:
        record_rejections(set_aside)
    outcome = ingest_frames(frames, key_frames) if frames else BatchOutcome()
    outcome.rejected.update((a.device_id, a.rejection.reason) for a in set_aside)
    return outcome


def handle_message(topic_name: str, payload: bytes) -> FrameOutcome | None:
    """One message on its own (see ``handle_batch``): the frame it archived, if any."""
    outcome = handle_batch([(topic_name, payload)])
    return outcome.frames[0] if outcome.frames else None
