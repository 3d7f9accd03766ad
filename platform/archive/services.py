"""Writes to the archive. Idempotent, because MQTT (QoS 1) and Celery both redeliver."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields

from django.db import connection, transaction
from django.utils import timezone

from archive.images import current_decoder
from archive.models import DecodedImage, DecodeFailure, Frame, Layer, utc_today
from fleet.models import Device
from mcucoder.bitstream import Packet
from observability import metrics


class ArchiveConflict(ValueError):
    """A packet for an archived (device, seq) that does not match the archived frame."""


@dataclass(frozen=True)
class StoredFrame:
    frame: Frame
    created: bool
    new_layers: int


@dataclass(frozen=True)
class BatchResult:
    """What a batch did: one entry per distinct (device, seq), and the refused packets."""

    stored: list[StoredFrame]
    conflicts: list[tuple[Device, Packet, ArchiveConflict]]


# What makes a redelivery the same frame. A device that reuses a sequence number for a new
# capture (a counter reset) must not have its layers merged into the old frame.
_IDENTITY = ("capture_time_ms", "model_id", "width", "height", "frame_type")


def _frame_fields(packet: Packet) -> dict:
    return {
        "capture_time_ms": packet.capture_time_ms,
        "model_id": packet.model_id,
        "frame_type": packet.frame_type,
        "width": packet.width,
        "height": packet.height,
        "header": packet.header_fields(),
    }


def _conflict(device: Device, packet: Packet, frame: Frame | Packet) -> ArchiveConflict | None:
    for name in _IDENTITY:
        if getattr(frame, name) != getattr(packet, name):
            return ArchiveConflict(
                f"frame {device.device_id}#{packet.seq} archived with {name}="
                f"{getattr(frame, name)}, packet says {getattr(packet, name)}"
            )
    return None


@transaction.atomic
def store_packets(items: Sequence[tuple[Device, Packet]]) -> BatchResult:
    """Archive many packets in a few statements: frames, then every layer not archived yet.

    Idempotent on (device, seq): a redelivered packet adds nothing, a later packet of the
    same frame with more channels adds the missing layers. A packet whose header
    contradicts the archived frame (another model or size under the same sequence number)
    is returned in ``conflicts`` and writes nothing.
    """
    # Merge packets of the same frame within the batch: the one with most channels wins.
    merged: dict[tuple[int, int], tuple[Device, Packet]] = {}
    conflicts: list[tuple[Device, Packet, ArchiveConflict]] = []
    for device, packet in items:
        key = (device.pk, packet.seq)
        if key in merged:
            _, seen = merged[key]
            if (problem := _conflict(device, packet, seen)) is not None:
                conflicts.append((device, packet, problem))
                continue
            if packet.n_channels <= seen.n_channels:
                continue
        merged[key] = (device, packet)
    if not merged:
        return BatchResult([], conflicts)

    Frame.objects.bulk_create(
        [Frame(device=d, seq=p.seq, **_frame_fields(p)) for d, p in merged.values()],
        ignore_conflicts=True,
    )
    device_ids = {k[0] for k in merged}
    seqs = {k[1] for k in merged}
    frames = {
        (f.device_id, f.seq): f
        for f in Frame.objects.select_for_update()
        .filter(device_id__in=device_ids, seq__in=seqs)
        .defer("header")
        if (f.device_id, f.seq) in merged
    }
    have: dict[int, set[int]] = {}
    for frame_id, index in Layer.objects.filter(
        frame_id__in=[f.pk for f in frames.values()]
    ).values_list("frame_id", "index"):
        have.setdefault(frame_id, set()).add(index)

    stored: list[StoredFrame] = []
    layers: list[tuple[int, int, bytes]] = []  # (frame id, index, chunk)
    grown: dict[int, list[int]] = {}  # new n_layers -> frame ids
    for key, (device, packet) in merged.items():
        frame = frames[key]
        if (problem := _conflict(device, packet, frame)) is not None:
            conflicts.append((device, packet, problem))
            continue
        existing = have.get(frame.pk, set())
        new = [(frame.pk, i, chunk) for i, chunk in enumerate(packet.chunks) if i not in existing]
        layers.extend(new)
        if packet.n_channels > frame.n_layers:
            grown.setdefault(packet.n_channels, []).append(frame.pk)
            frame.n_layers = packet.n_channels
        frame.device = device
        stored.append(StoredFrame(frame=frame, created=not existing, new_layers=len(new)))
    _insert_layers(layers)
    for n_layers, frame_ids in grown.items():
        Frame.objects.filter(pk__in=frame_ids, n_layers__lt=n_layers).update(n_layers=n_layers)
    if arrived := {s.frame.device_id for s in stored if s.created}:
        # a predicted frame decoded before its reference arrived (another ingest process
        # took it) is tried again when asked: the frame it missed may be this one
        DecodeFailure.objects.filter(
            frame__device_id__in=arrived, error__startswith="MissingReference"
        ).delete()
    return BatchResult(stored, conflicts)


def _insert_layers(layers: list[tuple[int, int, bytes]]) -> None:
    """Insert (frame id, index, chunk) rows known to be new (the caller locked their frames).

    On PostgreSQL through COPY, several times faster than INSERT for thousands of rows;
    plain tuples, because building model instances cost as much as the database's work.
    """
    if not layers:
        return
    today = utc_today()
    if connection.vendor != "postgresql":
        Layer.objects.bulk_create(
            [Layer(frame_id=f, index=i, data=d, received_on=today) for f, i, d in layers],
            ignore_conflicts=True,
            batch_size=2000,
        )
        return
    table = Layer._meta.db_table
    with connection.cursor() as cursor:
        raw = cursor.cursor  # psycopg's own cursor, in this transaction
        columns = "frame_id, index, data, received_on"
        with raw.copy(f'COPY "{table}" ({columns}) FROM STDIN') as copy:
            for frame_id, index, data in layers:
                copy.write_row((frame_id, index, data, today))


def store_packet(device: Device, packet: Packet) -> StoredFrame:
    """Archive one packet (see ``store_packets``); raises ``ArchiveConflict`` on a mismatch."""
    result = store_packets([(device, packet)])
    if result.conflicts:
        raise result.conflicts[0][2]
    return result.stored[0]


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
    # a version 1 header has no block or motion: the packet takes their defaults
    known = {name: frame.header[name] for name in names if name in frame.header}
    return Packet(**known, chunks=tuple(chunks))


def record_decoded(
    frame_id: int,
    channels: int,
    image: bytes,
    content_type: str,
    decode_ms: float,
    decoder: str | None = None,
) -> tuple[DecodedImage, bool]:
    """Store a decoded image once per (frame, channels), with the decoder revision that made
    it (``None``: the one the frame's model decodes with now). A second decode is dropped,
    unless the stored image is stale (another revision than the current one) and this one
    is not: a release's decoder re-decoding an older one's cache replaces it, and a worker
    still on the older revision during a rolling upgrade never replaces a current one.
    True when stored."""
    model_id = Frame.objects.values_list("model_id", flat=True).get(pk=frame_id)
    current = current_decoder(model_id)
    decoder = current if decoder is None else decoder
    made = {"image": image, "content_type": content_type, "decode_ms": decode_ms}
    decoded, created = DecodedImage.objects.get_or_create(
        frame_id=frame_id, channels=channels, defaults={**made, "decoder": decoder}
    )
    if not created and decoder == current and decoded.decoder != current:
        stale = DecodedImage.objects.filter(pk=decoded.pk).exclude(decoder=current)
        created = bool(stale.update(**made, decoder=decoder, decoded_at=timezone.now()))
        decoded.refresh_from_db()
    if created:
        metrics.DECODE_SECONDS.observe(decode_ms / 1000)
    return decoded, created
