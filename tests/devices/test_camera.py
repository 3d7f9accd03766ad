"""A camera against the real Mosquitto: status and Will, desired/reported, link statistics,
local fallback under a slow link, and frames that parse."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from devices.camera import Camera
from devices.link import LinkEmulator, constant
from devices.scenes import SyntheticScene
from protocol import topics
from protocol.broker import BrokerURL
from tests.devices.conftest import Observer, connect_observer
from tests.devices.packets import SizedPacketEncoder

ROOT = Path(__file__).resolve().parents[2]
K = topics.Kind


def make_camera(device_id: str, broker_url: str, **kwargs) -> Camera:
    kwargs.setdefault("session_expiry_s", 60)
    camera = Camera(device_id, broker_url, **kwargs)
    camera.start()
    assert camera.wait_online(10), "camera did not connect"
    return camera


@pytest.mark.parametrize("protocol", ["5", "3.1.1"])
def test_status_desired_reported_and_clean_shutdown(
    broker_url: str, device_id: str, observer: Observer, protocol: str
) -> None:
    # desired state set while the device is offline is applied when it connects
    observer.publish_json(device_id, K.DESIRED, {"version": 3, "tier": 5, "fps": 2.5})
    camera = make_camera(device_id, broker_url, protocol=protocol)
    try:
        online = observer.wait_for(device_id, K.STATUS, lambda p: p["state"] == "online")
        assert online["device"] == device_id and online["mqtt"] == protocol
        reported = observer.wait_for(device_id, K.REPORTED, lambda p: p["version"] == 3)
        assert (reported["tier"], reported["fps"], reported["max_kbps"]) == (5, 2.5, None)
        assert (camera.settings.tier, camera.settings.fps) == (5, 2.5)

        # the reported state is retained: a platform that starts later still sees it
        late = connect_observer(broker_url, device_id)
        try:
            retained = late.wait_for(device_id, K.REPORTED)
            assert retained["version"] == 3
            assert [m.retain for m in late.of(device_id, K.STATUS)] == [True]
        finally:
            late.client.disconnect()
            late.client.loop_stop()

        # a newer version changes only what it names; stale and invalid ones change nothing
        observer.publish_json(device_id, K.DESIRED, {"version": 4, "max_kbps": 64})
        observer.wait_for(
            device_id, K.REPORTED, lambda p: p["version"] == 4 and p["max_kbps"] == 64
        )
        assert camera.settings.tier == 5 and camera.settings.deadline_ms is None
        observer.publish_json(device_id, K.DESIRED, {"version": 2, "tier": 1})
        observer.publish_json(device_id, K.DESIRED, {"version": 5, "tier": 13})
        rejected = observer.wait_for(device_id, K.REPORTED, lambda p: "error" in p)
        assert rejected["version"] == 4 and rejected["tier"] == 5
        observer.publish_json(device_id, K.DESIRED, {"version": 6, "deadline_ms": 5})
        refused = observer.wait_for(
            device_id, K.REPORTED, lambda p: "deadline_ms" in p.get("error", "")
        )
        assert refused["deadline_ms"] is None
        assert camera.settings.tier == 5 and camera.settings.version == 4

        camera.publish_telemetry()
        telemetry = observer.wait_for(device_id, K.TELEMETRY, lambda p: p["version"] == 4)
        assert {"frames_sent", "bytes_sent", "backlog", "frames_dropped", "puback_ms"} <= set(
            telemetry
        )
        assert {"throughput_kbps", "link_kbps", "tier", "fps", "uptime_s"} <= set(telemetry)
    finally:
        camera.stop()
    offline = observer.wait_for(device_id, K.STATUS, lambda p: p["state"] == "offline")
    assert offline["reason"] == "shutdown"


def test_last_will_marks_a_killed_device_offline(
    broker_url: str, device_id: str, observer: Observer, tmp_path: Path
) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "devices.camera", "--device-id", device_id, "--broker", broker_url,
         "--no-codec", "--fps", "0", "--state-dir", str(tmp_path)],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        seen = []
        while (line := proc.stdout.readline()) and len(seen) < 50:  # log lines may come first
            seen.append(line)
            if f"{device_id}: online" in line:
                break
        assert seen and f"{device_id}: online" in seen[-1], f"camera did not come online: {seen}"
        observer.wait_for(device_id, K.STATUS, lambda p: p["state"] == "online")
    finally:
        proc.kill()  # SIGKILL: no DISCONNECT, the broker must publish the Will
        proc.wait(10)
    will = observer.wait_for(device_id, K.STATUS, lambda p: p["state"] == "offline")
    assert will == {"state": "offline", "device": device_id, "reason": "connection-lost"}
    late = connect_observer(broker_url, device_id)
    try:
        assert late.wait_for(device_id, K.STATUS)["state"] == "offline"  # retained
    finally:
        late.client.disconnect()
        late.client.loop_stop()


def test_backlog_bound_trims_then_drops_and_accounts_for_it(
    broker_url: str, device_id: str, observer: Observer
) -> None:
    broker = BrokerURL.parse(broker_url)
    with LinkEmulator((broker.host, broker.port), bandwidth=8.0) as link:  # 8 kbit/s uplink
        camera = make_camera(
            device_id, link.url, encoder=SizedPacketEncoder(170), max_backlog=4, heartbeat_s=60
        )
        try:
            frame = SyntheticScene("barnyard", (64, 48)).next_frame()
            outcomes = [camera.send_frame(frame) for _ in range(10)]
            assert outcomes == ["sent"] * 2 + ["trimmed"] * 2 + ["dropped-backlog"] * 6
            stats = camera.stats
            assert (stats.frames_captured, stats.frames_sent, stats.frames_dropped) == (10, 4, 6)
            assert (stats.dropped_backlog, stats.frames_trimmed, camera.seq) == (6, 2, 10)
            assert camera.backlog == 4
            camera.publish_telemetry()

            time.sleep(1.2)
            link.bandwidth = constant(None)  # a better link: everything drains
            deadline = time.monotonic() + 15
            while camera.backlog and time.monotonic() < deadline:
                time.sleep(0.05)
            assert camera.backlog == 0
            telemetry = camera.telemetry()
            assert telemetry["frames_acked"] == 4 and telemetry["dropped_backlog"] == 6
            assert telemetry["puback_ms"]["samples"] == 4
            assert telemetry["puback_ms"]["mean"] > 300  # the slow link shows in the latency
        finally:
            camera.stop()
    assert len(observer.wait_count(device_id, K.FRAME, 4)) == 4  # dropped ones never left
    sent = observer.wait_for(device_id, K.TELEMETRY)
    assert sent["dropped_backlog"] == 6 and sent["backlog"] == 4


def test_rate_cap_drops_trailing_channels_first(
    broker_url: str, device_id: str, observer: Observer
) -> None:
    from mcucoder.bitstream import parse_packet

    camera = make_camera(device_id, broker_url, encoder=SizedPacketEncoder(170), max_kbps=4.0)
    try:
        frame = SyntheticScene("paddock", (64, 48)).next_frame()
        # 4 kbit/s: 1,000 B per 2 s window, a frame's share 500 B (1 frame/s): two channels
        # (375 B) twice, then one (204 B) in what the window has left, then nothing fits
        outcomes = [camera.send_frame(frame) for _ in range(4)]
        assert outcomes == ["trimmed"] * 3 + ["dropped-rate"]
        assert camera.stats.dropped_rate >= 1
        packets = []
        deadline = time.monotonic() + 5
        while len(packets) < outcomes.count("trimmed") and time.monotonic() < deadline:
            packets = [parse_packet(m.payload) for m in observer.of(device_id, K.FRAME)]
            time.sleep(0.05)
        assert packets and all(1 <= p.n_channels < 12 for p in packets)
        assert sum(len(p.to_bytes()) for p in packets) <= 1000
    finally:
        camera.stop()


def test_deadline_guard_trims_frames_to_arrive_in_time_and_skips_on_a_stalled_link(
    broker_url: str, device_id: str, observer: Observer
) -> None:
    from mcucoder.bitstream import parse_packet

    broker = BrokerURL.parse(broker_url)
    # 12 channels are 2,085 B: 1.04 s at 16 kbit/s, late before the broker even has them
    with LinkEmulator((broker.host, broker.port), bandwidth=16.0) as link:
        camera = make_camera(
            device_id,
            link.url,
            encoder=SizedPacketEncoder(170),
            deadline_ms=1000,
            heartbeat_s=60,
        )
        try:
            frame = SyntheticScene("barnyard", (64, 48)).next_frame()
            outcomes = []
            for _ in range(6):
                outcomes.append(camera.send_frame(frame))
                seen = len(observer.of(device_id, K.FRAME))
                while len(observer.of(device_id, K.FRAME)) == seen:
                    time.sleep(0.005)
                arrived_ms = time.time() * 1000
                packet = parse_packet(observer.of(device_id, K.FRAME)[-1].payload)
                assert arrived_ms - packet.capture_time_ms <= 1000, outcomes
                time.sleep(0.3)
            assert outcomes == ["trimmed"] * 6
            channels = [parse_packet(m.payload).n_channels for m in observer.of(device_id, K.FRAME)]
            assert channels[0] == 1  # nothing measured yet: a small first frame
            assert max(channels) > 1  # then as much as fits, from its own measurements
            assert camera.telemetry()["link_kbps"] == pytest.approx(16.0, rel=0.5)

            link.pause()  # coverage lost: the next frame is stuck, the ones after it wait
            outcomes = [camera.send_frame(frame)]
            time.sleep(1.0)
            outcomes += [camera.send_frame(frame), camera.send_frame(frame)]
            # each waits on the camera for the link (worth_holding); a newer one replaces it
            assert outcomes[1:] == ["held"] * 2
            assert camera.stats.dropped_deadline == 1 and camera.seq == 9
            time.sleep(1.0)
            camera.tick()  # the held frame could no longer be on time: skipped
            assert camera.stats.dropped_deadline == 2
            link.resume()
            deadline = time.monotonic() + 10
            while camera.backlog and time.monotonic() < deadline:
                time.sleep(0.05)
            assert camera.send_frame(frame) in ("sent", "trimmed")  # back once it drained
        finally:
            camera.stop()


def test_a_frame_taken_in_an_outage_waits_and_goes_when_the_link_is_back(
    broker_url: str, device_id: str, observer: Observer
) -> None:
    """The camera learns that the link is back only from the PUBACK of the frame the outage
    caught: a frame captured before that PUBACK is held on the camera, not skipped, and
    sent the moment it can still arrive in time."""
    from mcucoder.bitstream import parse_packet

    broker = BrokerURL.parse(broker_url)
    with LinkEmulator((broker.host, broker.port), bandwidth=64.0) as link:
        camera = make_camera(
            device_id, link.url, encoder=SizedPacketEncoder(170), deadline_ms=1000, heartbeat_s=60
        )
        try:
            frame = SyntheticScene("barnyard", (64, 48)).next_frame()
            camera.tick()  # the heartbeat now, not during the outage
            for _ in range(3):  # the link measured
                camera.send_frame(frame)
                observer.wait_count(device_id, K.FRAME, camera.stats.frames_sent)
                while camera._pending:
                    time.sleep(0.01)
            link.pause()
            assert camera.send_frame(frame) in ("sent", "trimmed")  # caught by the outage
            time.sleep(1.5)  # a stall the estimate cannot explain: an outage
            held_seq = camera.seq
            assert camera.send_frame(frame) == "held"
            assert camera.stats.dropped_deadline == 0
            link.resume()

            def arrived() -> list:
                frames = [parse_packet(m.payload) for m in observer.of(device_id, K.FRAME)]
                return [f for f in frames if f.seq == held_seq]

            deadline = time.monotonic() + 3
            while not arrived() and time.monotonic() < deadline:
                camera.tick()  # the fleet's scheduler calls it every HOLD_POLL_S meanwhile
                time.sleep(0.01)
            arrived_ms = time.time() * 1000
            (packet,) = arrived()
            assert arrived_ms - packet.capture_time_ms <= 1000
            assert camera._held is None and camera.stats.dropped_deadline == 0
        finally:
            camera.stop()


def test_lossy_link_delays_frames_but_loses_none(
    broker_url: str, device_id: str, observer: Observer
) -> None:
    broker = BrokerURL.parse(broker_url)
    with LinkEmulator((broker.host, broker.port), loss=0.3, rto_ms=150, seed=7) as link:
        camera = make_camera(device_id, link.url, encoder=SizedPacketEncoder(3000), heartbeat_s=60)
        try:
            frame = SyntheticScene("paddock", (32, 32)).next_frame()
            for _ in range(6):
                assert camera.send_frame(frame) == "sent"
            assert len(observer.wait_count(device_id, K.FRAME, 6)) == 6  # TCP resends them all
            deadline = time.monotonic() + 5
            while camera.backlog and time.monotonic() < deadline:
                time.sleep(0.02)
            assert camera.stats.frames_acked == 6
            assert link.segments_lost > 0
            assert max(camera.stats.puback_ms) >= 150  # a resend is in the latency
        finally:
            camera.stop()


def test_outage_holds_frames_in_the_backlog_until_coverage_returns(
    broker_url: str, device_id: str, observer: Observer
) -> None:
    broker = BrokerURL.parse(broker_url)
    with LinkEmulator((broker.host, broker.port), latency_ms=20) as link:
        camera = make_camera(device_id, link.url, encoder=SizedPacketEncoder(30), heartbeat_s=60)
        try:
            frame = SyntheticScene("paddock", (32, 32)).next_frame()
            link.pause()
            assert [camera.send_frame(frame) for _ in range(3)] == ["sent"] * 3
            time.sleep(0.5)
            assert camera.backlog == 3 and camera.stats.frames_acked == 0
            link.resume()
            assert len(observer.wait_count(device_id, K.FRAME, 3)) == 3
            deadline = time.monotonic() + 5
            while camera.backlog and time.monotonic() < deadline:
                time.sleep(0.02)
            assert camera.stats.frames_acked == 3
            assert min(camera.stats.puback_ms) > 400  # the outage is in the latency
        finally:
            camera.stop()


def test_reconnects_after_the_link_drops_and_delivers_what_was_queued(
    broker_url: str, device_id: str, observer: Observer
) -> None:
    broker = BrokerURL.parse(broker_url)
    upstream = (broker.host, broker.port)
    link = LinkEmulator(upstream).start()
    camera = make_camera(device_id, link.url, encoder=SizedPacketEncoder(30), heartbeat_s=60)
    try:
        frame = SyntheticScene("barnyard", (32, 32)).next_frame()
        assert camera.send_frame(frame) == "sent"
        link.stop()  # the radio link drops: no DISCONNECT reaches the broker
        will = observer.wait_for(device_id, K.STATUS, lambda p: p["state"] == "offline")
        assert will["reason"] == "connection-lost"
        assert [camera.send_frame(frame) for _ in range(2)] == ["sent", "sent"]  # queued
        link = LinkEmulator(upstream, port=link.port).start()
        observer.wait_count(device_id, K.FRAME, 3, timeout_s=15)
        assert (camera.stats.connects, camera.stats.disconnects) == (2, 1)
        statuses = [m.payload for m in observer.wait_count(device_id, K.STATUS, 3)]
        assert b'"online"' in statuses[2]  # back online after the Will
    finally:
        camera.stop()
        link.stop()
