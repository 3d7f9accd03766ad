"""MP4 exports of a time range at a chosen k: built with progress, scoped, kept until deleted."""

from __future__ import annotations

import io
from datetime import timedelta

import av
import pytest
from django.contrib.auth import get_user_model
from django.test import Client
from django.utils import timezone
from PIL import Image

from access.services import assign
from archive.exports import ExportError, build_export, request_export
from archive.models import Export
from archive.services import record_decoded, store_packet
from fleet.services import provision_device
from mcucoder.bitstream import parse_packet
from tests.support.packets import fake_packet

pytestmark = pytest.mark.django_db


def webp(shade: int) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", (64, 48), (shade, 80, 200 - shade)).save(buf, format="WEBP")
    return buf.getvalue()


@pytest.fixture
def camera():
    """Five frames with 6 layers, decoded at k=6 (k=12 exports use what each frame has)."""
    device = provision_device("export-cam", site="Yard")
    for seq in range(5):
        frame = store_packet(device, parse_packet(fake_packet(seq=seq, channels=6))).frame
        record_decoded(frame.pk, 6, webp(seq * 40), "image/webp", 1.0)
    return device


@pytest.fixture
def run_inline(monkeypatch):
    """The worker's part, run here: the task as the worker would run it."""
    from archive.jobs import EXPORT_VIDEO
    from decoder_worker.celery import app

    task = app.tasks[EXPORT_VIDEO]
    monkeypatch.setattr(task, "apply_async", lambda args, **options: task.run(*args))


def test_export_builds_an_mp4_of_the_range(camera, run_inline):
    user = get_user_model().objects.create_user("exporter", is_staff=True)
    now = timezone.now()
    export = request_export(user, camera, now - timedelta(hours=1), now + timedelta(minutes=1), 12)
    export.refresh_from_db()
    assert export.status == Export.Status.DONE and export.progress == 1.0
    assert export.frames == 5 and export.size == len(bytes(export.video))
    with av.open(io.BytesIO(bytes(export.video))) as container:
        frames = list(container.decode(video=0))
    assert len(frames) == 5 and (frames[0].width, frames[0].height) == (64, 48)
    assert build_export(export.pk).frames == 5  # a redelivered task changes nothing


def test_empty_or_too_long_ranges_are_refused(camera):
    user = get_user_model().objects.create_user("exporter2")
    now = timezone.now()
    with pytest.raises(ExportError, match="0 frames"):
        request_export(user, camera, now - timedelta(days=2), now - timedelta(days=1), 12)
    with pytest.raises(ExportError, match="at most"):
        request_export(user, camera, now - timedelta(days=3), now, 12)
    assert not Export.objects.exists()


def test_exports_follow_camera_scope(camera, run_inline):
    users = get_user_model()
    operator = users.objects.create_user("yard-op")
    assign(operator, site="Yard")
    stranger = users.objects.create_user("stranger")
    client = Client()
    client.force_login(operator)
    now = timezone.now()
    hour = now.replace(minute=0, second=0, microsecond=0)
    response = client.post(
        f"/devices/{camera.device_id}/exports",
        {"start": hour.isoformat(), "end": (hour + timedelta(hours=1)).isoformat(), "channels": 6},
        follow=True,
    )
    assert b"Export started" in response.content
    export = Export.objects.get()
    assert export.status == Export.Status.DONE and export.created_by == operator
    assert client.get(f"/exports/{export.pk}/video")["Content-Type"] == "video/mp4"
    other = Client()
    other.force_login(stranger)
    assert b"No export yet" in other.get("/exports/").content
    assert other.get(f"/exports/{export.pk}/video").status_code == 404
    assert other.post(f"/exports/{export.pk}/delete").status_code == 404
    client.post(f"/exports/{export.pk}/delete")
    assert not Export.objects.exists()
