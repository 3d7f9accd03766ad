"""One simulated MCU camera: the MQTT behaviour of real firmware around the codec.

A camera owns one paho-mqtt client (client id = device id, QoS 1, persistent session,
retained Last Will), captures from a frame source, encodes with the shared codec at its
current tier and publishes one packet per frame. It measures only what a real device can
measure on its side of the link (PUBACK latency, unacknowledged backlog, acknowledged
throughput) and falls back locally, dropping trailing channels or whole frames, rather
than queueing without limit. With a deadline set (``deadline_ms`` in the desired state) it
predicts each frame's arrival from its own PUBACK timing and trims channels, or skips the
frame, so that what it sends is not late (``docs/control.md``). Topics and payloads:
``docs/mqtt.md``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import math
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from devices.motion import MotionDetector
from devices.scenes import DEFAULT_SIZE, FrameSource, make_source
from devices.sequence import SequenceCounter, default_state_dir
from devices.uplink import UplinkEstimator
from protocol import topics
from protocol.broker import BrokerURL
from protocol.payloads import (
    CAPTURE_MODES,
    COUNTERS,
    MAX_TIER,
    Desired,
    PayloadError,
    PubackStats,
    Reported,
    Status,
    Telemetry,
    load_object,
)

log = logging.getLogger(__name__)

FIRMWARE = "strata-sim/0.1"
QOS = 1
CAP_WINDOW_S = 2.0  # the bitrate cap holds over every window this long
GUARD_MARGIN_S = 0.5  # of the deadline, kept for the broker, ingest and a fading link
START_CHANNELS = 1  # deadline guard, nothing measured yet: a small first frame measures the link
RECENT_ACKS = 8  # telemetry's PUBACK latency is over these: the link now, not its history


class Encoder(Protocol):
    """What a camera needs from ``mcucoder.codec.Codec``."""

    def encode(
        self, image: np.ndarray, channels: int = MAX_TIER, seq: int = 0, capture_time_ms: int = 0
    ) -> bytes: ...


def trim_channels(packet: bytes, channels: int) -> bytes:
    """Keep the first ``channels`` latent channels of a packet (a valid lower tier)."""
    from mcucoder.bitstream import parse_packet

    return parse_packet(packet).with_channels(channels).to_bytes()


@dataclass
class LinkStats:
    """Counters a device keeps about its own uplink (published as telemetry)."""

    frames_captured: int = 0
    frames_sent: int = 0
    bytes_sent: int = 0
    frames_acked: int = 0
    bytes_acked: int = 0
    frames_dropped: int = 0  # not sent at all: backlog full, over the cap, or sure to be late
    dropped_backlog: int = 0
    dropped_rate: int = 0
    dropped_deadline: int = 0
    frames_trimmed: int = 0  # sent with fewer channels than the tier asked for
    frames_still: int = 0  # motion mode: looked at, nothing moved, not sent
    connects: int = 0
    disconnects: int = 0
    puback_ms: deque[float] = field(default_factory=lambda: deque(maxlen=256))
    acked: deque[tuple[float, int]] = field(default_factory=lambda: deque(maxlen=4096))

    def throughput_kbps(self, now: float, window_s: float = 10.0) -> float:
        """Acknowledged kbit/s over the last ``window_s``: what the link really carried."""
        recent = sum(n for t, n in self.acked if t >= now - window_s)
        return recent * 8 / 1000 / window_s


@dataclass
class _Pending:
    sent_at: float
    size: int
    kind: topics.Kind

    @property
    def is_frame(self) -> bool:
        return self.kind is topics.Kind.FRAME


class Camera:
    """A device that captures, encodes and publishes frames and obeys its desired state.

    Drive it either with ``tick()`` from a scheduler shared by many cameras (the fleet) or
    with ``run()`` on its own. ``start()`` connects in the background and keeps
    reconnecting; nothing is lost while offline up to ``max_backlog`` frames.
    """

    def __init__(
        self,
        device_id: str,
        broker: str | BrokerURL,
        *,
        source: FrameSource | None = None,
        encoder: Encoder | None = None,
        tier: int = MAX_TIER,
        fps: float = 1.0,
        max_kbps: float | None = None,
        deadline_ms: float | None = None,
        mode: str = "periodic",
        motion: MotionDetector | None = None,
        max_backlog: int = 16,
        heartbeat_s: float = 10.0,
        keepalive_s: int = 30,
        session_expiry_s: int = 3600,
        protocol: str = "5",
        username: str | None = None,
        password: str | None = None,
        ca_certs: str | None = None,
        seq_start: int = 0,
        state_dir: Path | None = None,
    ) -> None:
        if not topics.valid_device_id(device_id):
            raise topics.TopicError(f"invalid device id {device_id!r}")
        if protocol not in ("5", "3.1.1"):
            raise ValueError("protocol must be '5' or '3.1.1'")
        self.device_id = device_id
        self.broker = broker if isinstance(broker, BrokerURL) else BrokerURL.parse(broker)
        self.source = source
        self.encoder = encoder
        self.settings = Desired().merged(
            {
                "version": 0,
                "tier": tier,
                "fps": fps,
                "max_kbps": max_kbps,
                "mode": mode,
                "deadline_ms": deadline_ms,
            }
        )
        self.motion = motion or MotionDetector()
        self.max_backlog = max_backlog
        self.heartbeat_s = heartbeat_s
        self.keepalive_s = keepalive_s
        self.session_expiry_s = session_expiry_s
        self.protocol = protocol
        self._seq = SequenceCounter(
            state_dir / f"{device_id}.seq" if state_dir else None, seq_start
        )
        self.stats = LinkStats()
        self.online = False
        self.local_address: tuple[str, int] | None = None
        self.started_at = time.monotonic()

        self._topic = {kind: topics.topic(device_id, kind) for kind in topics.Kind}
        self._lock = threading.Lock()
        self._pending: dict[int, _Pending] = {}
        self._early_acks: dict[int, float] = {}  # PUBACKs that beat publish() returning
        self._sent_window: deque[tuple[float, int]] = deque()  # (capture s, bytes) for the cap
        self.uplink = UplinkEstimator()
        self._next_frame = time.monotonic()
        self._next_heartbeat = time.monotonic()
        self._stopped = threading.Event()
        self._client = self._make_client(username, password, ca_certs)

    # --- MQTT session ---------------------------------------------------------------

    def _make_client(
        self, username: str | None, password: str | None, ca_certs: str | None
    ) -> mqtt.Client:
        v5 = self.protocol == "5"
        client = mqtt.Client(
            CallbackAPIVersion.VERSION2,
            client_id=self.device_id,
            protocol=mqtt.MQTTv5 if v5 else mqtt.MQTTv311,
            clean_session=None if v5 else False,
        )
        self.broker.configure(client, username, password, ca_certs)
        will = Status.last_will(self.device_id).to_json()
        client.will_set(self._topic[topics.Kind.STATUS], will, qos=QOS, retain=True)
        # paho must not hold frames back on its own: the backlog bound below is the limit
        client.max_inflight_messages_set(self.max_backlog + 8)
        client.reconnect_delay_set(1, 30)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        client.on_message = self._on_message
        return client

    def start(self) -> None:
        """Connect in the background (paho's network thread reconnects on its own)."""
        properties = None
        if self.protocol == "5":
            properties = Properties(PacketTypes.CONNECT)
            properties.SessionExpiryInterval = self.session_expiry_s
        self._client.connect_async(
            self.broker.host,
            self.broker.port,
            keepalive=self.keepalive_s,
            clean_start=False if self.protocol == "5" else mqtt.MQTT_CLEAN_START_FIRST_ONLY,
            properties=properties,
        )
        self._client.loop_start()

    def stop(self, timeout_s: float = 2.0) -> None:
        """Flush what is in flight (up to ``timeout_s``), say offline (retained), disconnect."""
        if self._stopped.is_set():
            return
        self._stopped.set()
        if self.online:
            deadline = time.monotonic() + timeout_s
            while self.backlog and time.monotonic() < deadline:
                time.sleep(0.02)
            info = self._publish_status("offline", reason="shutdown")
            with contextlib.suppress(RuntimeError, ValueError):  # lost connection meanwhile
                info.wait_for_publish(timeout=max(0.1, deadline - time.monotonic()))
        self._client.disconnect()
        self._client.loop_stop()
        self.online = False

    def kill(self) -> None:
        """Drop the connection without DISCONNECT, as a power cut would (the Will fires)."""
        self._stopped.set()
        sock = self._client.socket()
        self._client.loop_stop()
        if sock is not None:
            sock.close()
        self.online = False

    def wait_online(self, timeout_s: float = 10.0) -> bool:
        deadline = time.monotonic() + timeout_s
        while not self.online and time.monotonic() < deadline:
            time.sleep(0.02)
        return self.online

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            log.warning("%s: connection refused: %s", self.device_id, reason_code)
            return
        self.stats.connects += 1
        self.online = True
        with contextlib.suppress(OSError, AttributeError):  # which link is ours (emulator)
            self.local_address = client.socket().getsockname()[:2]
        client.subscribe(self._topic[topics.Kind.DESIRED], qos=QOS)
        self._publish_status("online")
        self._next_heartbeat = time.monotonic()

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        if self.online and not self._stopped.is_set():
            self.stats.disconnects += 1  # links lost, not our own goodbye
        self.online = False
        if not self._stopped.is_set():
            log.info("%s: disconnected (%s), reconnecting", self.device_id, reason_code)

    def _publish_status(self, state: str, reason: str | None = None) -> mqtt.MQTTMessageInfo:
        status = Status(state, self.device_id, _now_ms(), reason)
        if state == "online":
            status = Status(
                state,
                self.device_id,
                status.ts,
                firmware=FIRMWARE,
                mqtt=self.protocol,
                resolution=self.source.size if self.source else DEFAULT_SIZE,
                applied=self.settings,
            )
        return self._publish(topics.Kind.STATUS, status.to_json(), retain=True)

    # --- publishing and link statistics -----------------------------------------------

    def _publish(
        self, kind: topics.Kind, payload: bytes, retain: bool = False
    ) -> mqtt.MQTTMessageInfo:
        sent_at = time.monotonic()
        info = self._client.publish(self._topic[kind], payload, qos=QOS, retain=retain)
        if info.rc not in (mqtt.MQTT_ERR_SUCCESS, mqtt.MQTT_ERR_NO_CONN):
            raise RuntimeError(f"publish failed: {mqtt.error_string(info.rc)}")
        pending = _Pending(sent_at, len(payload), kind)
        with self._lock:
            acked_at = self._early_acks.pop(info.mid, None)
            if acked_at is None:
                self._pending[info.mid] = pending
            else:
                self._acknowledged(pending, acked_at)
        return info

    def _on_publish(self, client, userdata, mid, reason_code, properties) -> None:
        now = time.monotonic()
        with self._lock:
            pending = self._pending.pop(mid, None)
            if pending is None:
                self._early_acks[mid] = now
            else:
                self._acknowledged(pending, now)

    def _acknowledged(self, pending: _Pending, acked_at: float) -> None:
        """Account for a PUBACK (the caller holds ``_lock``: telemetry reads these deques)."""
        if not pending.is_frame:
            return
        self.stats.frames_acked += 1
        self.stats.bytes_acked += pending.size
        self.stats.puback_ms.append((acked_at - pending.sent_at) * 1000)
        self.stats.acked.append((acked_at, pending.size))
        self.uplink.acknowledged(pending.sent_at, acked_at, pending.size)

    @property
    def seq(self) -> int:
        """The seq number the next captured frame gets."""
        return self._seq.next

    @property
    def backlog(self) -> int:
        """Frames published but not yet acknowledged by the broker."""
        with self._lock:
            return sum(p.is_frame for p in self._pending.values())

    def telemetry_latencies(self) -> list[float]:
        """Recent publish-to-PUBACK latencies, ms (a copy: the network thread appends)."""
        with self._lock:
            return list(self.stats.puback_ms)

    def telemetry(self) -> dict[str, Any]:
        """The heartbeat payload: link statistics as the device itself measures them."""
        now = time.monotonic()
        stats = self.stats
        latencies = sorted(self.telemetry_latencies()[-RECENT_ACKS:])
        with self._lock:
            throughput = stats.throughput_kbps(now)
            link = self.uplink.kbps()
        return Telemetry(
            device=self.device_id,
            ts=_now_ms(),
            uptime_s=round(now - self.started_at, 1),
            seq=self.seq,
            counters={name: getattr(stats, name) for name in COUNTERS},
            backlog=self.backlog,
            max_backlog=self.max_backlog,
            puback_ms=PubackStats(
                mean=round(sum(latencies) / len(latencies), 2) if latencies else None,
                p95=round(latencies[int(0.95 * (len(latencies) - 1))], 2) if latencies else None,
                samples=len(latencies),  # the last RECENT_ACKS frames
            ),
            throughput_kbps=round(throughput, 2),
            link_kbps=round(link, 2) if link is not None else None,
            applied=self.settings,
        ).to_dict()

    def publish_telemetry(self) -> None:
        self._publish(topics.Kind.TELEMETRY, json.dumps(self.telemetry()).encode())

    # --- desired / reported state -------------------------------------------------------

    def _on_message(self, client, userdata, message: mqtt.MQTTMessage) -> None:
        if message.topic != self._topic[topics.Kind.DESIRED]:
            return
        error = None
        try:
            desired = load_object(message.payload, "desired state")
            if desired.get("version", -1) == self.settings.version and self.settings.version:
                return  # redelivered (retained or QoS 1 duplicate): already applied
            settings = self.settings.merged(desired)
        except PayloadError as exc:
            log.warning("%s: rejected desired state: %s", self.device_id, exc)
            error = str(exc)
        else:
            if settings.version < self.settings.version:
                log.info("%s: ignored stale desired version %s", self.device_id, settings.version)
                return
            if settings.fps != self.settings.fps:
                self._next_frame = time.monotonic()
            self.settings = settings
        report = Reported(
            self.device_id,
            _now_ms(),
            self.settings,
            error,
            _jsonable(message.payload) if error else None,
        )
        self._publish(topics.Kind.REPORTED, report.to_json(), retain=True)

    # --- capture ------------------------------------------------------------------------

    def _cap_allows(self, captured: float) -> float:
        """Bytes the ``max_kbps`` cap still allows for a frame captured at ``captured`` (the
        packet's capture time, s): the cap holds over every ``CAP_WINDOW_S`` window of
        capture times, not just on average, as anyone can check from the packets."""
        cap = self.settings.max_kbps
        window = self._sent_window
        while window and window[0][0] <= captured - CAP_WINDOW_S:
            window.popleft()
        if cap is None:
            return math.inf
        return cap * 1000 / 8 * CAP_WINDOW_S - sum(n for _, n in window)

    def _cap_share(self) -> float:
        """A frame's fair share of the cap in bytes (cap / fps): a frame over it loses
        channels even while the window has room, so one big frame does not leave the next
        ones nothing; a single channel may still use what the window has left."""
        s = self.settings
        if s.max_kbps is None or s.fps <= 0:
            return math.inf
        return s.max_kbps * 1000 / 8 / s.fps

    def _arrival_s(self, size: int) -> float | None:
        """When a ``size``-byte frame sent now would be acknowledged (``UplinkEstimator``)."""
        now = time.monotonic()
        with self._lock:
            frames = [p for p in self._pending.values() if p.is_frame]
            queued = sum(p.size for p in self._pending.values())
            oldest = min(frames, key=lambda p: p.sent_at, default=None)
            stalled = None if oldest is None else (oldest.size, now - oldest.sent_at)
            return self.uplink.arrival_s(size, queued, stalled)

    def _fit(
        self, packet: bytes, channels: int, captured: float, capture_s: float
    ) -> tuple[bytes, int, str]:
        """Trim ``packet`` to the most channels that the cap and the deadline allow
        (``captured``: monotonic; ``capture_s``: the packet's own capture time)."""
        allowed, share = self._cap_allows(capture_s), self._cap_share()
        deadline = self.settings.deadline_ms
        left = None
        if deadline is not None:
            left = deadline / 1000 * (1 - GUARD_MARGIN_S) - (time.monotonic() - captured)
            if self.uplink.kbps() is None and channels > START_CHANNELS:
                channels = START_CHANNELS  # nothing measured yet: start small, like TCP
                packet = trim_channels(packet, channels)
        while True:
            over_cap = len(packet) > allowed or (channels > 1 and len(packet) > share)
            arrival = None if left is None or over_cap else self._arrival_s(len(packet))
            # the margin guards the estimate; one channel goes if it can still be in time
            margin = deadline / 1000 * GUARD_MARGIN_S if deadline and channels == 1 else 0.0
            late = arrival is not None and left is not None and arrival > left + margin
            if not over_cap and not late:
                return packet, channels, "sent"
            if channels == 1:
                return packet, channels, "rate" if over_cap else "deadline"
            # the next lower tier that could fit, by the size of the channels kept
            channels -= 1
            packet = trim_channels(packet, channels)

    def send_frame(self, frame: np.ndarray) -> str:
        """Encode and publish one captured frame. Returns what happened: ``sent``,
        ``trimmed`` (fewer channels), ``dropped-backlog``, ``dropped-rate`` or
        ``dropped-deadline``."""
        if self.encoder is None:
            raise RuntimeError("this camera has no encoder")
        captured = time.monotonic()
        capture_ms = _now_ms()  # the packet's capture time: the cap's windows use it too
        seq = self._seq.take()
        self.stats.frames_captured += 1
        backlog = self.backlog
        if backlog >= self.max_backlog:
            return self._drop("backlog")
        tier = self.settings.tier
        congested = backlog >= max(1, self.max_backlog // 2)
        channels = max(1, tier // 2) if congested else tier
        packet = self.encoder.encode(frame, channels=channels, seq=seq, capture_time_ms=capture_ms)
        packet, channels, outcome = self._fit(packet, channels, captured, capture_ms / 1000)
        if outcome != "sent":
            return self._drop(outcome)
        self._sent_window.append((capture_ms / 1000, len(packet)))
        self._publish(topics.Kind.FRAME, packet)
        self.stats.frames_sent += 1
        self.stats.bytes_sent += len(packet)
        if channels < tier:
            self.stats.frames_trimmed += 1
            return "trimmed"
        return "sent"

    def _drop(self, reason: str) -> str:
        self.stats.frames_dropped += 1
        setattr(self.stats, f"dropped_{reason}", getattr(self.stats, f"dropped_{reason}") + 1)
        return f"dropped-{reason}"

    def tick(self, now: float | None = None) -> float:
        """Do whatever is due (a capture, a heartbeat); return when to call again."""
        now = time.monotonic() if now is None else now
        if self.online and now >= self._next_heartbeat:
            # one heartbeat in flight at most: on a stalled link, queued heartbeats would
            # only delay the frames behind them (and report a link state long gone)
            with self._lock:
                waiting = any(p.kind is topics.Kind.TELEMETRY for p in self._pending.values())
            if not waiting:
                self.publish_telemetry()
            self._next_heartbeat = now + self.heartbeat_s
        fps = self.settings.fps
        if fps <= 0 or self.source is None or self.encoder is None:
            self._next_frame = now + 1.0
        elif now >= self._next_frame:
            frame = self.source.next_frame()
            if self.settings.mode == "motion" and not self.motion.triggered(frame, now):
                self.stats.frames_still += 1
            else:
                self.send_frame(frame)
            period = 1.0 / fps
            # keep the cadence; after a stall, resynchronise instead of bursting
            self._next_frame = max(self._next_frame + period, now + period / 2)
        return min(self._next_frame, self._next_heartbeat)

    def run(self, duration_s: float | None = None, frames: int | None = None) -> None:
        """Capture on this thread until ``duration_s`` passes or ``frames`` were captured."""
        end = math.inf if duration_s is None else time.monotonic() + duration_s
        while not self._stopped.is_set() and time.monotonic() < end:
            if frames is not None and self.stats.frames_captured >= frames:
                break
            wake = self.tick()
            self._stopped.wait(max(0.0, min(wake, end) - time.monotonic()))


def _now_ms() -> int:
    return int(time.time() * 1000)


def _jsonable(payload: bytes) -> str:
    return payload[:200].decode("utf-8", errors="replace")


def main(argv: list[str] | None = None) -> int:
    """``python -m devices.camera``: one camera in its own process (tests, end-to-end runs)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device-id", required=True)
    parser.add_argument("--broker", default="mqtt://127.0.0.1:1883")
    parser.add_argument(
        "--source", default="synthetic", help="synthetic[:SCENE], a folder or a video"
    )
    parser.add_argument("--fps", type=float, default=1.0)
    parser.add_argument("--tier", type=int, default=MAX_TIER)
    parser.add_argument("--mode", choices=CAPTURE_MODES, default="periodic")
    parser.add_argument("--frames", type=int, help="stop after this many frames")
    parser.add_argument("--duration", type=float, help="stop after this many seconds")
    parser.add_argument("--size", default="224x224", help="WIDTHxHEIGHT")
    parser.add_argument("--mqtt", choices=("5", "3.1.1"), default="5")
    parser.add_argument(
        "--state-dir", type=Path, default=default_state_dir(), help="where seq numbers persist"
    )
    parser.add_argument("--no-codec", action="store_true", help="status/telemetry only")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")

    width, height = (int(v) for v in args.size.lower().split("x"))
    encoder = None
    if not args.no_codec:
        from mcucoder.codec import Codec

        encoder = Codec.load()
    camera = Camera(
        args.device_id,
        args.broker,
        source=make_source(args.source, (width, height)),
        encoder=encoder,
        tier=args.tier,
        fps=args.fps,
        mode=args.mode,
        protocol=args.mqtt,
        state_dir=args.state_dir,
    )
    camera.start()
    if not camera.wait_online(15):
        print(f"{args.device_id}: broker {camera.broker} unreachable", file=sys.stderr)
        camera.stop()
        return 1
    print(f"{args.device_id}: online", flush=True)
    try:
        camera.run(duration_s=args.duration, frames=args.frames)
    except KeyboardInterrupt:
        pass
    finally:
        camera.stop(timeout_s=10.0)
    print(json.dumps(camera.telemetry()), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
