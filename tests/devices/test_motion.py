"""Motion-triggered capture: frames go out when something moves, and a keyframe now and then."""

from __future__ import annotations

import time

import numpy as np
import pytest

from devices.camera import Camera
from devices.motion import MotionDetector
from devices.scenes import SCENE_NAMES, SyntheticScene
from mcucoder.bitstream import parse_packet
from protocol import topics
from tests.devices.conftest import Observer
from tests.devices.packets import SizedPacketEncoder

K = topics.Kind


@pytest.mark.parametrize("scene", SCENE_NAMES)
def test_motion_triggers_on_moving_objects_not_on_sensor_noise(scene: str) -> None:
    source = SyntheticScene(scene, (224, 224))
    detector = MotionDetector(keyframe_s=60)
    assert detector.triggered(source.frame_at(10.0), now=0.0)  # first frame: nothing to compare
    assert not detector.triggered(source.frame_at(10.0), now=1.0)  # same scene, new noise
    assert detector.triggered(source.frame_at(12.0), now=2.0)  # the object moved
    assert not detector.triggered(source.frame_at(12.0), now=3.0)
    assert detector.triggered(source.frame_at(12.0), now=62.5)  # keyframe of a still scene


def test_camera_in_motion_mode_sends_only_moving_frames(
    broker_url: str, device_id: str, observer: Observer
) -> None:
    class StillThenMoving:
        """The yard with nobody, nobody, nobody, then someone walking in."""

        size = (64, 48)

        def __init__(self) -> None:
            self.scene, self.times = SyntheticScene("barnyard", self.size), iter([10, 10, 10, 14])

        def next_frame(self) -> np.ndarray:
            return self.scene.frame_at(next(self.times))

    camera = Camera(
        device_id, broker_url, source=StillThenMoving(), encoder=SizedPacketEncoder(20),
        mode="motion", fps=10, heartbeat_s=60, session_expiry_s=60,
    )  # fmt: skip
    camera.start()
    try:
        assert camera.wait_online(10)
        start = time.monotonic()
        for i in range(4):
            camera.tick(now=start + i)
        packets = [parse_packet(m.payload) for m in observer.wait_count(device_id, K.FRAME, 2)]
    finally:
        camera.stop()
    assert camera.stats.frames_still == 2
    assert [p.seq for p in packets] == [0, 1]  # still frames are not captures: no seq gap
    assert camera.telemetry()["mode"] == "motion"
