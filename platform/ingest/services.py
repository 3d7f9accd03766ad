"""What ingest does with one MQTT message. The consumer only moves bytes and acknowledges."""

from __future__ import annotations

import logging
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from archive.images import frames_needing_decode
from archive.jobs import DECODE_FRAMES, queue_job
from archive.partitions import ensure_layer_partitions
from archive.services import store_packets
from control.services import record_telemetry
from fleet.models import Device
from fleet.services import mark_seen, record_reported, set_online
from ingest.models import Rejection
from mcucoder import registry
from mcucoder.bitstream import Packet, PacketError, parse_packet
from protocol import topics
from protocol.payloads import PayloadError, Reported, Status

log = logging.getLogger(__name__)


class Rejected(Exception):
    """A message that will never be accepted: count it, log it, acknowledge it, move on."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason, self.detail = reason, detail


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


def record_rejections(rejections: Sequence[tuple[str, Rejected]]) -> None:
    """Count refused messages per (device, reason); log the first of each at WARNING."""
    grouped: dict[tuple[str, str], list[Rejected]] = defaultdict(list)
    for device_id, rejection in rejections:
        grouped[(device_id[:64], rejection.reason)].append(rejection)
    for (device_id, reason), items in grouped.items():
        row, created = Rejection.objects.get_or_create(device_id=device_id, reason=reason)
        Rejection.objects.filter(pk=row.pk).update(
            count=F("count") + len(items), last_detail=items[-1].detail[:2000]
        )
        level = logging.WARNING if created else logging.DEBUG
        log.log(level, "rejected message from %s (%s): %s", device_id, reason, items[-1].detail)


def record_rejection(device_id: str, reason: str, detail: str) -> None:
    record_rejections([(device_id, Rejected(reason, detail))])


def parse_frame(payload: bytes) -> Packet:
    """Parse and check a frame packet on its own (no database), or raise ``Rejected``."""
    if len(payload) > settings.STRATA_MAX_PACKET_BYTES:
        raise Rejected("oversized", f"{len(payload)} bytes > {settings.STRATA_MAX_PACKET_BYTES}")
    try:
        packet = parse_packet(payload, max_size=settings.STRATA_MAX_PACKET_BYTES)
    except PacketError as exc:
        raise Rejected(f"bad_packet:{type(exc).__name__}", str(exc)) from exc
    if packet.model_id not in registry.known_model_ids():
        raise Rejected("unknown_model", f"model id {packet.model_id:#010x} is not deployed here")
    return packet


def _active_devices(device_ids: set[str]) -> dict[str, Device]:
    return {d.device_id: d for d in Device.objects.filter(device_id__in=device_ids)}


def _device_rejection(device_id: str, device: Device | None) -> Rejected | None:
    if device is None:
        return Rejected("unknown_device", f"no device {device_id!r} is provisioned")
    if not device.is_active:
        return Rejected("inactive_device", f"device {device_id!r} is deactivated")
    return None


def ingest_frames(frames: Sequence[tuple[str, bytes]]) -> BatchOutcome:
    """Parse, check and archive a batch of frame packets in one transaction, then queue
    the frames that need it for decoding, as one batched task.

    Packets that can never be archived are counted per device and reason and dropped.
    Database and Celery broker errors propagate, so that the caller leaves the messages
    unacknowledged and the MQTT broker delivers them again.
    """
    outcome = BatchOutcome()
    rejected: list[tuple[str, Rejected]] = []
    parsed: list[tuple[str, Packet]] = []
    for device_id, payload in frames:
        try:
            parsed.append((device_id, parse_frame(payload)))
        except Rejected as exc:
            rejected.append((device_id, exc))
    devices = _active_devices({device_id for device_id, _ in parsed})
    items: list[tuple[Device, Packet]] = []
    for device_id, packet in parsed:
        device = devices.get(device_id)
        if (problem := _device_rejection(device_id, device)) is not None:
            rejected.append((device_id, problem))
        else:
            items.append((device, packet))

    ensure_layer_partitions()
    with transaction.atomic():
        result = store_packets(items)
        rejected.extend(
            (d.device_id, Rejected("conflict", str(exc))) for d, _, exc in result.conflicts
        )
        if rejected:
            record_rejections(rejected)
        seen = {s.frame.device_id for s in result.stored}
        if seen:
            Device.objects.filter(pk__in=seen).update(online=True, last_seen_at=timezone.now())

    to_decode = [f.pk for f in frames_needing_decode([s.frame.pk for s in result.stored])]
    if to_decode:
        queue_job(DECODE_FRAMES, to_decode, queue="live")
    queued = set(to_decode)
    outcome.frames = [
        FrameOutcome(
            s.frame.device.device_id, s.frame.seq, s.frame.pk, s.new_layers, s.frame.pk in queued
        )
        for s in result.stored
    ]
    outcome.rejected.update((d, r.reason) for d, r in rejected)
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


def handle_batch(messages: Sequence[tuple[str, bytes]]) -> BatchOutcome:
    """Route a batch of messages by topic; frames are archived together.

    Never raises for bad input (it is counted); raises only when a service we depend on
    fails, in which case nothing of the batch may be acknowledged.
    """
    frames: list[tuple[str, bytes]] = []
    rejected: list[tuple[str, Rejected]] = []
    for topic_name, payload in messages:
        try:
            parsed = topics.parse(topic_name)
        except topics.TopicError as exc:
            rejected.append(("?", Rejected("bad_topic", str(exc))))
            continue
        try:
            if parsed.kind is topics.Kind.FRAME:
                frames.append((parsed.device_id, payload))
            elif parsed.kind is topics.Kind.STATUS:
                ingest_status(parsed.device_id, payload)
            elif parsed.kind is topics.Kind.TELEMETRY:
                ingest_telemetry(parsed.device_id, payload)
            elif parsed.kind is topics.Kind.REPORTED:
                ingest_reported(parsed.device_id, payload)
        except Rejected as exc:
            rejected.append((parsed.device_id, exc))
    if rejected:
        record_rejections(rejected)
    outcome = ingest_frames(frames) if frames else BatchOutcome()
    outcome.rejected.update((d, r.reason) for d, r in rejected)
    return outcome


def handle_message(topic_name: str, payload: bytes) -> FrameOutcome | None:
    """One message on its own (see ``handle_batch``): the frame it archived, if any."""
    outcome = handle_batch([(topic_name, payload)])
    return outcome.frames[0] if outcome.frames else None
