"""The fleet: several cameras, one shared codec, real packets on the real broker."""

from __future__ import annotations

import time

import pytest

from devices.camera import Camera
from devices.fleet import Fleet, device_ids, load_credentials
from devices.scenes import make_source
from mcucoder.bitstream import parse_packet
from protocol import topics
from tests.devices.conftest import clear_retained, connect_observer

K = topics.Kind


def test_camera_publishes_packets_of_its_tier_with_increasing_seq(
    broker_url, device_id, observer, codec
) -> None:
    observer.publish_json(device_id, K.DESIRED, {"version": 1, "tier": 5})
    source = make_source("synthetic:barnyard")
    camera = Camera(
        device_id, broker_url, source=source, encoder=codec, fps=20, session_expiry_s=60
    )
    camera.start()
    try:
        assert camera.wait_online(10)
        observer.wait_for(device_id, K.REPORTED, lambda p: p["version"] == 1)
        camera.run(frames=3)
    finally:
        camera.stop()
    observer.wait_for(device_id, K.STATUS, lambda p: p["state"] == "offline")
    packets = [parse_packet(m.payload) for m in observer.wait_count(device_id, K.FRAME, 3)]
    assert [p.seq for p in packets] == [0, 1, 2]
    assert {(p.n_channels, p.width, p.height) for p in packets} == {(5, 320, 240)}
    assert all(p.capture_time_ms > 1_600_000_000_000 for p in packets)
    assert camera.stats.frames_acked == 3


def test_fleet_runs_cameras_in_the_background_and_stops_cleanly(
    broker_url, codec, tmp_path
) -> None:
    prefix = f"tf{time.time_ns() % 10**9}"
    ids = device_ids(3, prefix)
    observers = [connect_observer(broker_url, device_id) for device_id in ids]
    fleet = Fleet(
        ids,
        broker_url,
        fps=4,
        tier=3,
        size=(96, 64),
        codec=codec,
        heartbeat_s=1,
        session_expiry_s=60,
        state_dir=tmp_path,
    )
    try:
        fleet.start()
        assert fleet.wait_online(10)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and min(c.stats.frames_acked for c in fleet.cameras) < 2:
            time.sleep(0.1)
        status = fleet.status(since_start=True)
        assert status.online == 3 and status.mean_tier == 3
        assert status.frames_sent >= 6 and status.fps > 0 and status.kbps > 0
        assert "online 3/3" in status.line()
        summary = fleet.summary()
        assert summary["target_fps"] == 12 and summary["frames_acked"] >= 6
        assert summary["puback_ms_mean"] > 0 and summary["cpu_s"] > 0
    finally:
        fleet.stop()
    try:
        for device_id, obs in zip(ids, observers, strict=True):
            packets = [parse_packet(m.payload) for m in obs.of(device_id, K.FRAME)]
            assert len(packets) >= 2 and {(p.width, p.height, p.n_channels) for p in packets} == {
                (96, 64, 3)
            }
            assert [p.seq for p in packets] == list(range(len(packets)))
            assert obs.wait_for(device_id, K.TELEMETRY)["device"] == device_id
            obs.wait_for(device_id, K.STATUS, lambda p: p["state"] == "offline")
        assert fleet.status().online == 0
    finally:
        for device_id, obs in zip(ids, observers, strict=True):
            clear_retained(obs, device_id)
            obs.client.disconnect()
            obs.client.loop_stop()


def test_credentials_file(tmp_path) -> None:
    path = tmp_path / "creds.csv"
    path.write_text("# device,password\ncam-000,s3cret\ncam-001,ops,pa,ss\n")
    with pytest.raises(ValueError):
        load_credentials(path)
    path.write_text("# device,password\ncam-000,s3cret\ncam-001,ops,pass\n")
    lookup = load_credentials(path)
    assert lookup("cam-000") == ("cam-000", "s3cret")
    assert lookup("cam-001") == ("ops", "pass")
    with pytest.raises(KeyError):
        lookup("cam-002")
