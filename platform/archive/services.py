"""Writes to the archive. Idempotent, because MQTT (QoS 1) and Celery both redeliver."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields

from django.db import transaction

from archive.models import DecodedImage, Frame, Layer
from fleet.models import Device
from mcucoder.bitstream import Packet


class ArchiveConflict(ValueError):
    """A packet for an archived (device, seq) that does not match the archived frame."""


@dataclass(frozen=True)
class StoredFrame:
    frame: Frame
    created: bool
    new_layers: int


def _frame_fields(packet: Packet) -> dict:
    return {
        "capture_time_ms": packet.capture_time_ms,
        "model_id": packet.model_id,
        "frame_type": packet.frame_type,
        "width": packet.width,
        "height": packet.height,
        "header": packet.header_fields(),
    }


@transaction.atomic
def store_packet(device: Device, packet: Packet) -> StoredFrame:
    """Archive a frame and the layers it carries that are not archived yet.

    A redelivered packet adds nothing; a later packet of the same frame with more channels
    adds the missing layers. A packet whose header contradicts the archived frame (another
    model or size under the same sequence number) raises ``ArchiveConflict``.
    """
    fields = _frame_fields(packet)
    frame, created = Frame.objects.select_for_update().get_or_create(
        device=device, seq=packet.seq, defaults=fields
    )
    if not created:
        for name in ("model_id", "width", "height", "frame_type"):
            if getattr(frame, name) != fields[name]:
                raise ArchiveConflict(
                    f"frame {device.device_id}#{packet.seq} archived with {name}="
                    f"{getattr(frame, name)}, packet says {fields[name]}"
                )
    have = set(frame.layers.values_list("index", flat=True)) if not created else set()
    new = [
        Layer(frame=frame, index=i, data=chunk)
        for i, chunk in enumerate(packet.chunks)
        if i not in have
    ]
    if new:
        Layer.objects.bulk_create(new, ignore_conflicts=True)
        n_layers = max(frame.n_layers, packet.n_channels)
        Frame.objects.filter(pk=frame.pk).update(n_layers=n_layers)
        frame.n_layers = n_layers
    return StoredFrame(frame=frame, created=created, new_layers=len(new))


def archived_packet(frame: Frame, channels: int | None = None) -> Packet:
    """Rebuild the packet of ``frame`` from its first ``channels`` contiguous layers."""
    chunks: list[bytes] = []
    for index, data in frame.layers.order_by("index").values_list("index", "data"):
        if index != len(chunks):
            break  # a gap: only the contiguous prefix decodes
        chunks.append(bytes(data))
        if channels is not None and len(chunks) >= channels:
            break
    names = {f.name for f in fields(Packet)} - {"chunks"}
    return Packet(**{name: frame.header[name] for name in names}, chunks=tuple(chunks))


def record_decoded(
    frame_id: int, channels: int, image: bytes, content_type: str, decode_ms: float
) -> tuple[DecodedImage, bool]:
    """Store a decoded image once per (frame, channels); a second decode is dropped."""
    return DecodedImage.objects.get_or_create(
        frame_id=frame_id,
        channels=channels,
        defaults={"image": image, "content_type": content_type, "decode_ms": decode_ms},
    )


def decoded_image(frame_id: int, channels: int) -> DecodedImage | None:
    """The stored image of a frame at exactly ``channels``, if it has been decoded."""
    return DecodedImage.objects.filter(frame_id=frame_id, channels=channels).first()


def frames_needing_decode(frame_ids: Sequence[int]) -> list[Frame]:
    """The frames among ``frame_ids`` that have no decoded image at their full layer count."""
    frames = list(Frame.objects.filter(pk__in=frame_ids).select_related("device"))
    done = set(
        DecodedImage.objects.filter(frame_id__in=[f.pk for f in frames]).values_list(
            "frame_id", "channels"
        )
    )
    return [f for f in frames if f.n_layers > 0 and (f.pk, f.n_layers) not in done]
