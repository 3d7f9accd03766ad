"""One real frame: device process → Mosquitto → ingest process → PostgreSQL → Celery worker
process (torch decode) → archive → dashboard over HTTP."""

from __future__ import annotations

import asyncio
import io
import urllib.request
import uuid

import pytest
from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from PIL import Image

from archive.events import FLEET_GROUP
from archive.models import DecodedImage, Frame, Layer
from fleet.services import provision_device
from tests.support.processes import camera_args
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def test_frame_travels_from_device_to_dashboard(
    ingest_process, decoder_worker_process, service_env, spawn, live_server, admin_client
):
    device_id = f"e2e-{uuid.uuid4().hex[:10]}"
    device = provision_device(device_id, name="E2E yard camera")
    # Listen on the real Redis channel layer, as an open dashboard page does.
    layer = get_channel_layer()
    listener = async_to_sync(layer.new_channel)()
    async_to_sync(layer.group_add)(FLEET_GROUP, listener)

    camera = spawn(
        "camera", camera_args(device_id, service_env["MQTT_URL"], "--frames", "1"), service_env
    )
    camera.popen.wait(120)
    assert camera.popen.returncode == 0, camera.output()

    frame = wait_until(
        lambda: Frame.objects.filter(device=device).first(),
        60,
        "the frame in the archive",
        every_s=0.3,
    )
    assert frame.width == 224 and frame.height == 224
    assert frame.n_layers == 12
    assert Layer.objects.filter(frame=frame).count() == 12
    assert all(len(bytes(layer.data)) > 0 for layer in Layer.objects.filter(frame=frame))

    decoded = wait_until(
        lambda: DecodedImage.objects.filter(frame=frame).first(),
        120,
        f"the decoded frame (worker log:\n{decoder_worker_process.output()[-3000:]})",
        every_s=0.3,
    )
    assert decoded.channels == 12
    assert Image.open(io.BytesIO(bytes(decoded.image))).size == (224, 224)

    async def next_event() -> dict:
        while True:  # other test runs on this Redis may announce their frames too
            message = await asyncio.wait_for(layer.receive(listener), timeout=30)
            if message["event"]["device_id"] == device_id:
                return message["event"]

    event = async_to_sync(next_event)()
    assert event["frame_id"] == frame.pk and event["channels"] == 12

    # The dashboard, over real HTTP with a signed-in session, lists the camera and serves it.
    cookie = f"sessionid={admin_client.cookies['sessionid'].value}"

    def get(path: str) -> tuple[str, bytes]:
        req = urllib.request.Request(live_server.url + path, headers={"Cookie": cookie})
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.headers["Content-Type"], resp.read()

    _, page = get("/")
    image_url = f"/frames/{frame.pk}/image?k=12"
    assert b"E2E yard camera" in page
    assert image_url.encode() in page.replace(b"&amp;", b"&")
    content_type, body = get(image_url)
    assert content_type == "image/webp"
    served = Image.open(io.BytesIO(body))
    assert served.size == (224, 224)
    assert body == bytes(decoded.image)
