"""A camera sending predicted frames (issue 18, ``--key-interval``) against the real
Mosquitto: key frames at the interval and on a tier change, and a stream the platform's
decoder follows even when frames are dropped or trimmed on the way."""

from __future__ import annotations

import dataclasses
import time

import pytest

from devices.camera import Camera, PredictedStream
from devices.fleet import load_codec
from devices.scenes import SyntheticScene
from mcucoder import bitstream as bs
from mcucoder.predictive import MODE_INTRA, PredictiveDecoder
from protocol import topics
from tests.devices.conftest import Observer


@pytest.fixture(scope="module")
def codec():
    return load_codec()  # the fleet's shared, serialised codec


def frames(n: int) -> list:
    scene = SyntheticScene("barnyard", (96, 72))
    return [scene.next_frame() for _ in range(n)]


def decode_all(codec, packets: list[bs.Packet]) -> None:
    decoder = PredictiveDecoder(codec.tables)
    for packet in packets:
        assert decoder.decode(packet).shape[0] == packet.n_channels


def test_key_frames_at_the_interval_and_on_a_tier_change(
    broker_url: str, device_id: str, observer: Observer, codec
) -> None:
    camera = Camera(device_id, broker_url, encoder=codec, key_interval=3, session_expiry_s=60)
    camera.start()
    try:
        assert camera.wait_online(10)
        images = frames(6)
        for image in images[:4]:
            assert camera.send_frame(image) == "sent"
        camera.settings = dataclasses.replace(camera.settings, tier=6)
        for image in images[4:]:
            assert camera.send_frame(image) == "sent"
    finally:
        camera.stop()
    sent = [
        bs.parse_packet(m.payload) for m in observer.wait_count(device_id, topics.Kind.FRAME, 6)
    ]
    assert [p.frame_type for p in sent] == [0, 1, 1, 0, 0, 1]  # interval 3, then the tier
    assert [p.n_channels for p in sent] == [12] * 4 + [6] * 2
    assert [p.reference_seq for p in sent] == [None, 0, 1, None, None, 4]
    decode_all(codec.codec, sent)


def test_a_dropped_frame_is_taken_back_and_trimmed_channels_go_intra(codec) -> None:
    stream = PredictedStream(codec, key_interval=50)
    images = frames(4)
    first = bs.parse_packet(stream.encode(images[0], 12, 10, 0, 12))
    stream.sent(12)
    stream.encode(images[1], 12, 11, 1000, 12)
    stream.dropped()  # never left the camera
    trimmed = bs.parse_packet(stream.encode(images[2], 12, 12, 2000, 12)).with_channels(4)
    stream.sent(4)
    last = bs.parse_packet(stream.encode(images[3], 12, 13, 3000, 12))
    assert trimmed.reference_seq == 10  # not 11, which was dropped
    assert last.frame_type == bs.FRAME_PREDICTED and last.reference_seq == 12
    assert all(chunk[0] == MODE_INTRA for chunk in last.chunks[4:])  # no state for them
    decode_all(codec.codec, [first, trimmed, last])


def test_a_key_request_is_answered_once_and_a_tier_change_sends_a_key_frame(
    broker_url: str, device_id: str, observer: Observer, codec
) -> None:
    camera = Camera(device_id, broker_url, encoder=codec, key_interval=50, session_expiry_s=60)
    camera.start()
    images = frames(7)
    try:
        assert camera.wait_online(10)
        for image in images[:2]:
            camera.send_frame(image)
        observer.publish_json(device_id, topics.Kind.DESIRED, {"version": 1, "key_request": 1})
        observer.wait_for(device_id, topics.Kind.REPORTED, lambda p: p.get("key_request") == 1)
        camera.send_frame(images[2])  # the answer
        camera.send_frame(images[3])
        # a link that drops and comes back: the retained request is delivered again and
        # ignored (its version is applied), so it costs no second key frame
        camera._session.client.socket().close()
        deadline = time.monotonic() + 10
        while camera.stats.connects < 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert camera.wait_online(10) and camera.stats.connects >= 2
        observer.publish_json(device_id, topics.Kind.DESIRED, {"version": 2, "tier": 12})
        observer.wait_for(device_id, topics.Kind.REPORTED, lambda p: p.get("version") == 2)
        for image in images[4:6]:
            camera.send_frame(image)
        # the tier controller's change: the camera sends a key frame of its own accord
        observer.publish_json(device_id, topics.Kind.DESIRED, {"version": 3, "tier": 6})
        observer.wait_for(device_id, topics.Kind.REPORTED, lambda p: p.get("version") == 3)
        camera.send_frame(images[6])
    finally:
        camera.stop()
    received = observer.wait_count(device_id, topics.Kind.FRAME, 7)
    # QoS 1: frames in flight when the link dropped may come twice
    sent = list({p.seq: p for p in (bs.parse_packet(m.payload) for m in received)}.values())
    assert [p.seq for p in sent] == list(range(7))
    assert [p.frame_type for p in sent] == [0, 1, 0, 1, 1, 1, 0]
    assert sent[-1].n_channels == 6
    assert camera.settings.key_request == 1
    decode_all(codec.codec, sent)
