"""Predicted frames end to end (issue 18): a camera process sending key and predicted
frames → Mosquitto → ingest process → PostgreSQL, decoded by the archive into the images
mcucoder decodes from the same stream."""

from __future__ import annotations

import io
import uuid

import numpy as np
import paho.mqtt.client as mqtt
import pytest
from PIL import Image

from archive import references
from archive.decoding import encode_image, redecode
from archive.images import as_rgb
from archive.models import Frame
from devices.scenes import ImageFolder
from fleet.services import provision_device
from ingest.models import Rejection
from mcucoder import bitstream as bs
from mcucoder.codec import Codec
from mcucoder.predictive import PredictiveDecoder
from mcucoder.video import VideoEncoder
from protocol import topics
from protocol.broker import BrokerURL
from tests.support.packets import fake_packet
from tests.support.processes import camera_args
from tests.support.waiting import wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]

N = 5


def write_scenes(folder) -> None:
    """A still scene with a square walking across it, one image per frame."""
    y, x = np.mgrid[0:72, 0:96]
    still = np.stack([x * 255 / 96, y * 255 / 72, np.full_like(x, 90)], axis=-1)
    for i in range(N):
        img = still.copy()
        img[20:40, 8 + 12 * i : 28 + 12 * i] = 240
        Image.fromarray(img.astype(np.uint8)).save(folder / f"{i:02d}.png")


def test_a_camera_streams_predicted_frames_to_decoded_images(
    ingest_process, service_env, spawn, tmp_path
):
    device_id = f"e2e-p-{uuid.uuid4().hex[:8]}"
    device = provision_device(device_id)
    scenes = tmp_path / "scenes"
    scenes.mkdir()
    write_scenes(scenes)
    options = ["--size", "96x72", "--source", str(scenes), "--fps", "4", "--frames", str(N)]
    options += ["--key-interval", "3", "--state-dir", str(tmp_path / "state")]
    camera = spawn("camera", camera_args(device_id, service_env["MQTT_URL"], *options), service_env)
    camera.popen.wait(120)
    assert camera.popen.returncode == 0, camera.output()

    def archived() -> list[Frame] | None:
        found = list(Frame.objects.filter(device=device).order_by("seq"))
        return found if len(found) == N else None

    frames = wait_until(
        archived, 60, f"{N} frames archived (ingest:\n{ingest_process.output()[-3000:]})"
    )
    assert [f.frame_type for f in frames] == [0, 1, 1, 0, 1]

    # what the camera should have sent, and what mcucoder decodes from it
    codec = Codec.load()
    encoder = VideoEncoder(codec, key_interval=3)
    source = ImageFolder(scenes, (96, 72))
    decoder = PredictiveDecoder(codec.tables)
    want = {}
    for frame in frames:
        sent = bs.parse_packet(encoder.encode(source.next_frame(), 12, frame.seq).packet)
        layers = frame.layers.order_by("index").values_list("data", flat=True)
        assert [bytes(d) for d in layers] == list(sent.chunks)  # stored as sent
        reference = decoder.reference
        decoder.decode(sent)
        data, _ = encode_image(codec.decode(sent, None, reference))
        want[frame.seq] = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))

    for frame in reversed(frames):  # newest first: each walks back through the archive
        references.forget()
        decoded = redecode(frame.pk, 12)
        assert decoded is not None, frame.decode_failures.first()
        assert np.array_equal(as_rgb(decoded), want[frame.seq])


def test_a_refused_packet_gets_a_key_frame_from_the_camera(
    ingest_process, service_env, spawn, tmp_path
):
    """The whole loop: ingest refuses a packet on the camera's topic (corrupted on the
    way), asks for a key frame, the camera process sends one, and the request is closed."""
    device_id = f"e2e-k-{uuid.uuid4().hex[:8]}"
    device = provision_device(device_id)
    frames_n = 16
    options = ["--size", "96x72", "--source", "synthetic:barnyard", "--fps", "4"]
    options += ["--frames", str(frames_n), "--key-interval", "50"]
    options += ["--state-dir", str(tmp_path / "state")]
    camera = spawn("camera", camera_args(device_id, service_env["MQTT_URL"], *options), service_env)
    wait_until(lambda: Frame.objects.filter(device=device).count() >= 2, 60, "two frames")
    corrupt = bytearray(fake_packet(seq=9_999))
    corrupt[-1] ^= 0xFF
    publish_frame(service_env["MQTT_URL"], device_id, bytes(corrupt))
    camera.popen.wait(120)
    assert camera.popen.returncode == 0, camera.output()

    def all_archived() -> list[Frame] | None:
        found = list(Frame.objects.filter(device=device).order_by("seq"))
        return found if len(found) == frames_n else None

    frames = wait_until(all_archived, 60, f"{frames_n} frames archived")
    types = [f.frame_type for f in frames]
    assert types[0] == 0 and types.count(0) == 2, types  # the first, and the one asked for
    device.refresh_from_db()
    assert device.key_request == 1 and device.key_requested_at is None  # answered
    assert Rejection.objects.get(device_id=device_id).reason == "bad_packet:ChecksumMismatch"


def publish_frame(broker_url: str, device_id: str, payload: bytes) -> None:
    broker = BrokerURL.parse(broker_url)
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    broker.configure(client)
    client.connect(broker.host, broker.port)
    client.loop_start()
    try:
        client.publish(topics.topic(device_id, topics.Kind.FRAME), payload, qos=1).wait_for_publish(
            10
        )
    finally:
        client.disconnect()
        client.loop_stop()
