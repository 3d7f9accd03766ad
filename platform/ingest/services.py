"""What ingest does with one MQTT message. The consumer only moves bytes and acknowledges."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass

from django.conf import settings
from django.db import transaction
from django.db.models import F

from archive.models import DecodedImage
from archive.services import ArchiveConflict, store_packet
from devices import topics
from fleet.models import Device
from fleet.services import mark_seen, set_online
from ingest.models import Rejection
from mcucoder import registry
from mcucoder.bitstream import PacketError, parse_packet

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


def record_rejection(device_id: str, reason: str, detail: str) -> None:
    """Count a refused message; log only the first of each (device, reason) at WARNING."""
    with transaction.atomic():
        row, created = Rejection.objects.get_or_create(device_id=device_id[:64], reason=reason)
        Rejection.objects.filter(pk=row.pk).update(count=F("count") + 1, last_detail=detail[:2000])
    level = logging.WARNING if created else logging.DEBUG
    log.log(level, "rejected message from %s (%s): %s", device_id, reason, detail)


def _active_device(device_id: str) -> Device:
    device = Device.objects.filter(device_id=device_id).first()
    if device is None:
        raise Rejected("unknown_device", f"no device {device_id!r} is provisioned")
    if not device.is_active:
        raise Rejected("inactive_device", f"device {device_id!r} is deactivated")
    return device


def ingest_frame(device_id: str, payload: bytes) -> FrameOutcome:
    """Parse, check and archive one frame packet, then queue it for decoding.

    Raises ``Rejected`` for packets that can never be archived; database errors propagate
    so that the message stays unacknowledged and the broker delivers it again.
    """
    if len(payload) > settings.STRATA_MAX_PACKET_BYTES:
        raise Rejected("oversized", f"{len(payload)} bytes > {settings.STRATA_MAX_PACKET_BYTES}")
    try:
        packet = parse_packet(payload, max_size=settings.STRATA_MAX_PACKET_BYTES)
    except PacketError as exc:
        raise Rejected(f"bad_packet:{type(exc).__name__}", str(exc)) from exc
    if packet.model_id not in registry.known_model_ids():
        raise Rejected("unknown_model", f"model id {packet.model_id:#010x} is not deployed here")
    device = _active_device(device_id)
    try:
        stored = store_packet(device, packet)
    except ArchiveConflict as exc:
        raise Rejected("conflict", str(exc)) from exc
    mark_seen(device)
    frame = stored.frame
    needs_decode = (
        stored.new_layers > 0
        or not DecodedImage.objects.filter(frame=frame, channels=frame.n_layers).exists()
    )
    if needs_decode:
        # Imported here: the task module pulls in Celery's app, not torch.
        from decoder_worker.tasks import decode_frames

        decode_frames.delay([frame.pk])
    return FrameOutcome(device_id, packet.seq, frame.pk, stored.new_layers, needs_decode)


def ingest_status(device_id: str, payload: bytes) -> None:
    """Apply a retained online/offline status message (the Last Will says offline)."""
    try:
        state = json.loads(payload.decode("utf-8"))["state"]
    except (ValueError, KeyError, TypeError, UnicodeDecodeError) as exc:
        raise Rejected("bad_status", f"{payload[:100]!r}: {exc}") from exc
    if state not in ("online", "offline"):
        raise Rejected("bad_status", f"unknown state {state!r}")
    set_online(device_id, state == "online")


def ingest_telemetry(device_id: str, payload: bytes) -> None:
    """A telemetry message is a heartbeat; its statistics feed the tier controller."""
    device = Device.objects.filter(device_id=device_id, is_active=True).first()
    if device is not None:
        mark_seen(device)


def handle_message(topic_name: str, payload: bytes) -> FrameOutcome | None:
    """Route one message by topic. Never raises for bad input: it is counted instead."""
    try:
        parsed = topics.parse(topic_name)
    except topics.TopicError as exc:
        record_rejection("?", "bad_topic", str(exc))
        return None
    try:
        if parsed.kind is topics.Kind.FRAME:
            return ingest_frame(parsed.device_id, payload)
        if parsed.kind is topics.Kind.STATUS:
            ingest_status(parsed.device_id, payload)
        elif parsed.kind is topics.Kind.TELEMETRY:
            ingest_telemetry(parsed.device_id, payload)
    except Rejected as exc:
        record_rejection(parsed.device_id, exc.reason, exc.detail)
    return None
