"""The simulator's scenes read as a fixed camera's: mostly still, events now and then."""

from __future__ import annotations

import json

import numpy as np
import pytest

from bench.scene_motion import main, motion_shares
from devices.scenes import SyntheticScene
from mcucoder.codec import Codec


@pytest.fixture(scope="module")
def codec() -> Codec:
    return Codec.load()


def test_sensor_noise_alone_is_no_event(codec: Codec) -> None:
    scene = SyntheticScene("carpark")
    scene._sprites = []
    shares = motion_shares([scene.next_frame() for _ in range(40)], codec)
    assert len(shares) == 39 and np.median(shares) <= 3 and shares.max() < 20


def test_a_farm_scene_is_mostly_quiet_with_events_now_and_then(codec: Codec) -> None:
    scene = SyntheticScene("barnyard")  # the pickup passes from 60 s to 72 s
    shares = motion_shares([scene.next_frame() for _ in range(150)], codec)
    assert np.mean(shares >= 20) < 0.25, "most frames would be events"
    assert np.mean(shares <= 3) > 0.4, "no quiet spells"
    assert shares[55:75].max() >= 20, "the pickup passing is no event"


def test_the_benchmark_prints_each_scene(capsys) -> None:
    main(["--frames", "12", "--still"])
    result = json.loads(capsys.readouterr().out.splitlines()[-1])
    assert set(result["scenes"]) == {"paddock", "barnyard", "carpark"}  # footage: no still
    assert all(s["frames"] == 11 and s["events_pct"] == 0 for s in result["scenes"].values())
