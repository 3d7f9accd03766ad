"""MP4 exports play in real time (capture times, not a fixed rate) with a CCTV overlay."""

from __future__ import annotations

import io
from datetime import timedelta

import av
import numpy as np
import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone
from PIL import Image

from archive.exports import build_export, caption, presentation_times_ms
from archive.models import Export, Frame
from archive.services import record_decoded, store_packet
from fleet.services import provision_device
from mcucoder import registry
from mcucoder.bitstream import build_packet, parse_packet

pytestmark = pytest.mark.django_db

GREY = (120, 120, 120)
START_MS = 1_764_600_000_000  # 2025-12-01 14:40:00 UTC


def png(width: int = 320, height: int = 240) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (width, height), GREY).save(buf, format="PNG")
    return buf.getvalue()


def archive_frames(device, capture_offsets_ms: list[int]) -> list[Frame]:
    """Frames of ``device`` captured at START_MS + each offset, decoded at k=4."""
    frames = []
    for seq, offset in enumerate(capture_offsets_ms):
        packet = build_packet(
            model_id=registry.default_model_id(),
            width=320,
            height=240,
            seq=seq,
            capture_time_ms=START_MS + offset,
            chunks=[bytes([i + 1]) * 4 for i in range(4)],
        )
        frame = store_packet(device, parse_packet(packet)).frame
        record_decoded(frame.pk, 4, png(), "image/png", 1.0)
        frames.append(frame)
    return frames


def export_of(device) -> Export:
    user = get_user_model().objects.create_user("exporter", is_staff=True)
    now = timezone.now()
    return Export.objects.create(
        device=device,
        created_by=user,
        start=now - timedelta(hours=1),
        end=now + timedelta(minutes=1),
        channels=4,
    )


def test_export_plays_in_real_time_with_time_and_camera_burned_in() -> None:
    device = provision_device("gate-cam", site="North farm")
    device.name = "Paddock gate"
    device.save()
    offsets = [0, 2000, 4000, 6000, 8000, 9000]  # a frame every 2 s, then one a second later
    archive_frames(device, offsets)
    export = build_export(export_of(device).pk)
    assert export.status == Export.Status.DONE and export.frames == 6

    with av.open(io.BytesIO(bytes(export.video))) as container:
        stream = container.streams.video[0]
        pictures = [(f.time, f.to_ndarray(format="rgb24")) for f in container.decode(stream)]
        duration_s = container.duration / 1_000_000
    # each frame shows at its capture time, whatever the export's nominal rate (5 fps)
    assert [round(t, 3) for t, _ in pictures] == [o / 1000 for o in offsets]
    # the whole video lasts the span of the capture times and one usual interval (2 s)
    assert duration_s == pytest.approx(9.0 + 2.0, abs=0.05)

    for _, rgb in pictures:
        corner, clear = rgb[:14, :200].astype(int), rgb[120:, :].astype(int)
        assert (corner.min(axis=2) > 200).mean() > 0.04, "no white overlay text"
        assert (corner.max(axis=2) < 70).mean() > 0.3, "no dark band behind the text"
        assert np.abs(clear - GREY).max() < 12, "the picture itself is untouched"


def test_caption_names_the_camera_and_its_capture_time() -> None:
    frame = Frame(capture_time_ms=START_MS + 1500)
    assert caption(frame, "Barn yard") == "Barn yard  2025-12-01 14:40:01 UTC"


def test_presentation_times_follow_capture_times_and_survive_clock_resets() -> None:
    t0 = timezone.now()
    frames = [
        Frame(capture_time_ms=START_MS, received_at=t0),
        Frame(capture_time_ms=START_MS + 1000, received_at=t0 + timedelta(seconds=1)),
        # the device rebooted and its clock restarted at 0: the arrival gap (3 s) stands in
        Frame(capture_time_ms=5_000, received_at=t0 + timedelta(seconds=4)),
        Frame(capture_time_ms=5_500, received_at=t0 + timedelta(seconds=4.6)),
        Frame(capture_time_ms=5_500, received_at=t0 + timedelta(seconds=4.6)),  # same instant
    ]
    assert presentation_times_ms(frames) == [0, 1000, 4000, 4500, 4501]
