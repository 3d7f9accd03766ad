"""Ingest asks for a key frame when a camera's predicted stream breaks (issue 18): a lost
packet (a predicted frame whose reference is not archived, after a grace period) or a
refused one; never while the stream is whole, at most once while a request is outstanding.
Real PostgreSQL, and the request published to the real Mosquitto."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest

from fleet.models import Device
from fleet.services import provision_device
from fleet.tests.test_services import retained_desired
from ingest.key_frames import MAX_GRACE_S, KeyFrameWatch
from ingest.services import handle_batch
from mcucoder import bitstream as bs
from mcucoder import registry
from protocol import topics

pytestmark = pytest.mark.django_db


class Clock:
    """Monotonic time the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def watch(clock: Clock) -> KeyFrameWatch:
    return KeyFrameWatch(grace_s=0.3, clock=clock)


@pytest.fixture
def camera() -> Device:
    return provision_device(f"kf-{uuid.uuid4().hex[:8]}")


def frame(device: Device, seq: int, ref: int = 1) -> tuple[str, bytes]:
    """A version 2 packet: a key frame (``ref`` 0) or one predicted from ``seq - ref``."""
    key = ref == 0
    payload = bs.build_packet(
        model_id=registry.default_model_id(),
        width=64,
        height=48,
        seq=seq,
        capture_time_ms=1_764_000_000_000 + seq,
        frame_type=bs.FRAME_INTRA if key else bs.FRAME_PREDICTED,
        ref=ref,
        version=2,
        block=0 if key else 4,
        chunks=[bytes([1, 0, 0])] * 4,
    )
    return topics.topic(device.device_id, topics.Kind.FRAME), payload


def key_request(device: Device) -> int:
    return Device.objects.get(pk=device.pk).key_request


def test_a_lost_packet_asks_for_a_key_frame_after_the_grace_period(camera, watch, clock):
    handle_batch([frame(camera, 0, ref=0), frame(camera, 1), frame(camera, 3)], watch)
    assert watch.ask() == []  # frame 2 may still come through another ingest process
    clock.now += 0.5
    assert watch.ask() == [camera.device_id]
    assert key_request(camera) == 1
    assert retained_desired(camera.device_id)["key_request"] == 1
    # predicted frames after the break, while the request is outstanding: not asked again
    handle_batch([frame(camera, 4), frame(camera, 5)], watch)
    clock.now += 5
    assert watch.ask() == [] and key_request(camera) == 1


def test_a_reference_archived_late_by_another_process_is_not_a_loss(camera, watch, clock):
    handle_batch([frame(camera, 0, ref=0), frame(camera, 2)], watch)
    handle_batch([frame(camera, 1)])  # another ingest process took frame 1
    clock.now += 1
    assert watch.ask() == [] and key_request(camera) == 0


def test_a_loss_right_after_a_late_reference_is_still_a_loss(camera, watch, clock):
    handle_batch([frame(camera, 0, ref=0), frame(camera, 2)], watch)  # 1 is late...
    handle_batch([frame(camera, 1)])  # ...archived by another ingest process
    handle_batch([frame(camera, 4)], watch)  # and 3 is lost, within the same grace period
    clock.now += 0.5
    assert watch.ask() == [camera.device_id]


def test_the_grace_period_follows_the_time_a_batch_takes(camera, watch, clock):
    assert watch.grace == 0.3
    watch.batch_took(0.5)  # a loaded machine: another process may lag as much
    watch.batch_took(0.1)
    assert watch.grace == 0.5
    handle_batch([frame(camera, 0, ref=0), frame(camera, 2)], watch)
    clock.now += 0.4
    assert watch.ask() == []
    clock.now += 0.2
    assert watch.ask() == [camera.device_id]
    watch.batch_took(3.0)  # one slow batch does not put requests off past a second
    assert watch.grace == MAX_GRACE_S


def test_a_key_frame_after_the_break_heals_it(camera, watch, clock):
    handle_batch([frame(camera, 0, ref=0), frame(camera, 2), frame(camera, 3, ref=0)], watch)
    handle_batch([frame(camera, 5)], watch)  # broken again, then healed in the next batch
    handle_batch([frame(camera, 6, ref=0), frame(camera, 7)], watch)
    clock.now += 1
    assert watch.ask() == [] and key_request(camera) == 0


def test_a_break_stays_a_break_when_later_frames_reference_the_broken_one(camera, watch, clock):
    handle_batch([frame(camera, 0, ref=0), frame(camera, 2)], watch)
    handle_batch([frame(camera, 3), frame(camera, 4)], watch)  # whole from 2 on: still broken
    clock.now += 0.5
    assert watch.ask() == [camera.device_id]


def test_a_refused_packet_asks_at_once(camera, watch):
    topic, payload = frame(camera, 1)
    corrupt = payload[:-1] + bytes([payload[-1] ^ 0xFF])
    handle_batch([(topic, corrupt), frame(camera, 2)], watch)
    assert watch.ask() == [camera.device_id] and key_request(camera) == 1
    stranger = topics.topic("kf-nobody", topics.Kind.FRAME)
    handle_batch([(stranger, corrupt)], watch)  # no camera of ours: nobody to ask
    assert watch.ask() == []


def test_an_unanswered_request_is_asked_again_after_its_timeout(camera, watch, clock):
    handle_batch([frame(camera, 0, ref=0), frame(camera, 2)], watch)
    clock.now += 0.5
    assert watch.ask() == [camera.device_id]
    handle_batch([frame(camera, 3)], watch)
    assert watch.ask() == []  # outstanding
    asked_at = Device.objects.get(pk=camera.pk).key_requested_at
    Device.objects.filter(pk=camera.pk).update(key_requested_at=asked_at - timedelta(seconds=11))
    handle_batch([frame(camera, 4)], watch)  # the stream is still broken, the answer late
    assert watch.ask() == [camera.device_id] and key_request(camera) == 2
    handle_batch([frame(camera, 5, ref=0), frame(camera, 6)], watch)  # answered
    assert Device.objects.get(pk=camera.pk).key_requested_at is None
    handle_batch([frame(camera, 8)], watch)  # the next loss is asked for at once
    clock.now += 0.5
    assert watch.ask() == [camera.device_id] and key_request(camera) == 3


def test_intra_only_cameras_are_never_asked(camera, watch, clock):
    handle_batch([frame(camera, seq, ref=0) for seq in (0, 1, 5, 9)], watch)
    clock.now += 1
    assert watch.ask() == [] and key_request(camera) == 0
