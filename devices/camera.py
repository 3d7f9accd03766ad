"""One simulated MCU camera: the MQTT behaviour of real firmware around the codec.

A camera captures from a frame source, encodes with the shared codec at its current tier
and publishes one packet per frame, over one MQTT session (``devices/session.py``: client
id = device id, QoS 1, persistent session, retained Last Will). It measures only what a
real device can measure on its side of the link (PUBACK latency, unacknowledged backlog,
acknowledged throughput) and falls back locally, dropping trailing channels or whole
frames, rather than queueing without limit (``devices/send_policy.py``: the bitrate cap
and, with ``deadline_ms`` set, the deadline guard of ``docs/control.md``). It obeys its
desired state as ``devices/desired.py`` says. This module is the capture loop that
composes them (when to capture, heartbeats, motion, sending a frame) and keeps the
``Camera`` API the fleet, the benchmarks and the tests use. Topics and payloads:
``docs/mqtt.md``.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
import time
from collections import deque
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import paho.mqtt.client as mqtt

from devices import desired
from devices.motion import MotionDetector
from devices.scenes import DEFAULT_SIZE, FrameSource, make_source
from devices.send_policy import (  # noqa: F401 (CAP_WINDOW_S, GUARD_MARGIN_S: re-exported)
    CAP_WINDOW_S,
    GUARD_MARGIN_S,
    HOLD_POLL_S,
    START_CHANNELS,
    SendPolicy,
    heartbeat_waits,
    trim_channels,
    worth_holding,
)
from devices.sequence import SequenceCounter, default_state_dir
from devices.session import QOS, LinkStats, Pending, Session  # noqa: F401 (QOS: re-exported)
from devices.uplink import UplinkEstimator
from mcucoder.predictive import KEY_INTERVAL
from protocol import topics
from protocol.broker import BrokerURL
from protocol.payloads import (
    CAPTURE_MODES,
    COUNTERS,
    MAX_TIER,
    PubackStats,
    Status,
    Telemetry,
)

log = logging.getLogger(__name__)

FIRMWARE = "strata-sim/0.1"
RECENT_ACKS = 8  # telemetry's PUBACK latency is over these: the link now, not its history

_Pending = Pending  # the name tests/firmware/test_tflm.py builds pending messages with


class Encoder(Protocol):
    """What a camera needs from ``mcucoder.codec.Codec``."""

    def encode(
        self, image: np.ndarray, channels: int = MAX_TIER, seq: int = 0, capture_time_ms: int = 0
    ) -> bytes: ...


class Camera:
    """A device that captures, encodes and publishes frames and obeys its desired state.

    Drive it either with ``tick()`` from a scheduler shared by many cameras (the fleet) or
    with ``run()`` on its own. ``start()`` connects in the background and keeps
    reconnecting; nothing is lost while offline up to ``max_backlog`` frames.

    It composes the MQTT session (``devices/session.py``), the desired-state rules
    (``devices/desired.py``) and the send policy (``devices/send_policy.py``); what stays
    here is the capture loop: when to capture, heartbeat and motion, and sending a frame.
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
        key_interval: int = 0,
    ) -> None:
        if not topics.valid_device_id(device_id):
            raise topics.TopicError(f"invalid device id {device_id!r}")
        if protocol not in ("5", "3.1.1"):
            raise ValueError("protocol must be '5' or '3.1.1'")
        if key_interval < 0:
            raise ValueError(f"key interval must be >= 0 (0: intra only), got {key_interval}")
        self.device_id = device_id
        self.broker = broker if isinstance(broker, BrokerURL) else BrokerURL.parse(broker)
        self.source = source
        self.encoder = encoder
        self.settings = desired.initial(
            tier=tier, fps=fps, max_kbps=max_kbps, mode=mode, deadline_ms=deadline_ms
        )
        self.motion = motion or MotionDetector()
        self.max_backlog = max_backlog
        self.heartbeat_s = heartbeat_s
        self.keepalive_s = keepalive_s
        self.session_expiry_s = session_expiry_s
        self.protocol = protocol
        self.key_interval = key_interval
        self._stream: PredictedStream | None = None
        self._seq = SequenceCounter(
            state_dir / f"{device_id}.seq" if state_dir else None, seq_start
        )
        self.stats = LinkStats()
        self.started_at = time.monotonic()
        self.uplink = UplinkEstimator()
        self._policy = SendPolicy()
        self._held: tuple[bytes, int, float, int, int] | None = None  # see worth_holding
        self._heartbeat_bytes = 0  # of the last heartbeat: what the next one will cost
        self._next_frame = time.monotonic()
        self._next_heartbeat = time.monotonic()
        self._session = Session(
            device_id,
            self.broker,
            stats=self.stats,
            uplink=self.uplink,
            on_online=self._on_online,
            on_desired=self._on_desired,
            max_backlog=max_backlog,
            keepalive_s=keepalive_s,
            session_expiry_s=session_expiry_s,
            protocol=protocol,
            username=username,
            password=password,
            ca_certs=ca_certs,
        )

    # --- the session (devices/session.py) ---------------------------------------------

    def start(self) -> None:
        """Connect in the background (paho's network thread reconnects on its own)."""
        self._session.start()

    def stop(self, timeout_s: float = 2.0) -> None:
        """Flush what is in flight (up to ``timeout_s``), say offline (retained), disconnect."""
        self._session.stop(timeout_s, lambda: self._publish_status("offline", reason="shutdown"))

    def kill(self) -> None:
        """Drop the connection without DISCONNECT, as a power cut would (the Will fires)."""
        self._session.kill()

    def wait_online(self, timeout_s: float = 10.0) -> bool:
        return self._session.wait_online(timeout_s)

    @property
    def online(self) -> bool:
        return self._session.online

    @property
    def local_address(self) -> tuple[str, int] | None:
        """The client socket's (host, port) once connected: which emulated link is ours."""
        return self._session.local_address

    @property
    def backlog(self) -> int:
        """Frames published but not yet acknowledged by the broker."""
        return self._session.backlog

    @property
    def _pending(self) -> dict[int, Pending]:
        """Messages published and not yet acknowledged, by mid."""
        return self._session.pending

    def _on_online(self) -> None:
        self._publish_status("online")
        self._next_heartbeat = time.monotonic()

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
        return self._session.publish(topics.Kind.STATUS, status.to_json(), retain=True)

    # --- telemetry ----------------------------------------------------------------------

    @property
    def seq(self) -> int:
        """The seq number the next captured frame gets."""
        return self._seq.next

    def telemetry_latencies(self) -> list[float]:
        """Recent publish-to-PUBACK latencies, ms (a copy: the network thread appends)."""
        with self._session.lock:
            return list(self.stats.puback_ms)

    def telemetry(self) -> dict[str, Any]:
        """The heartbeat payload: link statistics as the device itself measures them."""
        now = time.monotonic()
        stats = self.stats
        latencies = sorted(self.telemetry_latencies()[-RECENT_ACKS:])
        with self._session.lock:
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
        payload = json.dumps(self.telemetry()).encode()
        self._heartbeat_bytes = len(payload)
        self._session.publish(topics.Kind.TELEMETRY, payload)

    # --- desired / reported state (devices/desired.py) ----------------------------------

    def _on_desired(self, payload: bytes) -> None:
        applied = desired.apply(self.device_id, self.settings, payload)
        if applied is None:
            return
        if applied.settings.fps != self.settings.fps:
            self._next_frame = time.monotonic()
        if applied.settings.asks_key_frame(self.settings) and self._stream is not None:
            self._stream.request_key_frame()  # the platform lost a frame, or a viewer came
        self.settings = applied.settings
        self._session.publish(topics.Kind.REPORTED, applied.report.to_json(), retain=True)

    # --- the send policy (devices/send_policy.py) ---------------------------------------

    @property
    def _sent_window(self) -> deque[tuple[float, int]]:
        """(capture s, bytes) of the frames sent in the cap's window."""
        return self._policy.sent_window

    def _cap_allows(self, captured: float) -> float:
        """Bytes the ``max_kbps`` cap still allows for a frame captured at ``captured`` (s)."""
        return self._policy.cap_allows(self.settings, captured)

    def _fit(
        self, packet: bytes, channels: int, captured: float, capture_s: float
    ) -> tuple[bytes, int, str]:
        """Trim ``packet`` to the most channels that the cap and the deadline allow
        (``captured``: monotonic; ``capture_s``: the packet's own capture time)."""
        return self._policy.fit(
            packet,
            channels,
            self.settings,
            capture_s=capture_s,
            elapsed_s=time.monotonic() - captured,
            measured=self.uplink.kbps() is not None,
            arrival_s=lambda size: self._session.arrival_s(size, time.monotonic()),
            trim=trim_channels,
            idle=not self._pending,
        )

    # --- capture ------------------------------------------------------------------------

    def send_frame(self, frame: np.ndarray) -> str:
        """Encode and publish one captured frame. Returns what happened: ``sent``,
        ``trimmed`` (fewer channels), ``dropped-backlog``, ``dropped-rate``,
        ``dropped-deadline`` or ``held`` (waiting for the link: ``worth_holding``)."""
        if self.encoder is None:
            raise RuntimeError("this camera has no encoder")
        if self._held is not None:  # a newer frame replaces one still waiting for the link
            self._held = None
            self._stream_dropped()
            self._drop("deadline")
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
        stream = self._predicted()
        if stream is None:
            packet = self.encoder.encode(
                frame, channels=channels, seq=seq, capture_time_ms=capture_ms
            )
        else:
            packet = stream.encode(frame, channels, seq, capture_ms, tier)
        packet, channels, outcome = self._fit(packet, channels, captured, capture_ms / 1000)
        if outcome == "deadline" and self._worth_holding(packet, captured):
            self._held = (packet, channels, captured, capture_ms, tier)
            return "held"
        if outcome != "sent":
            self._stream_dropped()
            return self._drop(outcome)
        return self._publish_frame(packet, channels, capture_ms, tier)

    def _worth_holding(self, packet: bytes, captured: float) -> bool:
        with self._session.lock:
            alone = self.uplink.arrival_s(len(packet), 0)
        return worth_holding(self.settings, time.monotonic() - captured, alone)

    def _send_held(self) -> None:
        """Send the held frame if the link now carries it in time; drop it once it cannot."""
        assert self._held is not None
        packet, channels, captured, capture_ms, tier = self._held
        packet, channels, outcome = self._fit(packet, channels, captured, capture_ms / 1000)
        if outcome == "deadline" and self._worth_holding(packet, captured):
            return
        self._held = None
        if outcome == "sent":
            self._publish_frame(packet, channels, capture_ms, tier)
        else:
            self._stream_dropped()
            self._drop(outcome)

    def _stream_dropped(self) -> None:
        if self._stream is not None and self.key_interval:
            self._stream.dropped()

    def _publish_frame(self, packet: bytes, channels: int, capture_ms: int, tier: int) -> str:
        stream = self._predicted()
        if stream is not None:
            stream.sent(channels)
        self._policy.sent(capture_ms / 1000, len(packet), channels)
        self._session.publish(topics.Kind.FRAME, packet)
        self.stats.frames_sent += 1
        self.stats.bytes_sent += len(packet)
        if channels < tier:
            self.stats.frames_trimmed += 1
            return "trimmed"
        return "sent"

    def _predicted(self) -> PredictedStream | None:
        """This camera's predicted-frame state over its encoder (None: intra only)."""
        if not self.key_interval:
            return None
        if self._stream is None or self._stream.codec is not self.encoder:
            self._stream = PredictedStream(self.encoder, self.key_interval)
        return self._stream

    def _drop(self, reason: str) -> str:
        self.stats.frames_dropped += 1
        setattr(self.stats, f"dropped_{reason}", getattr(self.stats, f"dropped_{reason}") + 1)
        return f"dropped-{reason}"

    def tick(self, now: float | None = None) -> float:
        """Do whatever is due (a capture, a heartbeat); return when to call again."""
        now = time.monotonic() if now is None else now
        if self._held is not None:
            self._send_held()
        waiting = False  # a heartbeat due, waiting for a gap between frames
        if self.online and now >= self._next_heartbeat:
            # one heartbeat in flight at most: on a stalled link, queued heartbeats would
            # only delay the frames behind them (and report a link state long gone)
            if self._session.waiting(topics.Kind.TELEMETRY):
                self._next_heartbeat = now + self.heartbeat_s
            elif not (waiting := self._heartbeat_waits(now)):
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
        if waiting or self._held is not None:
            return min(self._next_frame, now + HOLD_POLL_S)
        return min(self._next_frame, self._next_heartbeat)

    def _heartbeat_waits(self, now: float) -> bool:
        """``send_policy.heartbeat_waits`` for the heartbeat due now, while capturing."""
        if self.settings.fps <= 0 or self.source is None or not self._heartbeat_bytes:
            return False
        with self._session.lock:
            alone = self.uplink.arrival_s(self._heartbeat_bytes, 0)
        return heartbeat_waits(
            self.settings,
            self._session.arrival_s(self._heartbeat_bytes, now),
            self._next_frame - now,
            now - self._next_heartbeat,
            self.heartbeat_s,
            alone,
        )

    def run(self, duration_s: float | None = None, frames: int | None = None) -> None:
        """Capture on this thread until ``duration_s`` passes or ``frames`` were captured."""
        stopped = self._session.stopped
        end = math.inf if duration_s is None else time.monotonic() + duration_s
        while not stopped.is_set() and time.monotonic() < end:
            if frames is not None and self.stats.frames_captured >= frames:
                break
            wake = self.tick()
            stopped.wait(max(0.0, min(wake, end) - time.monotonic()))


class PredictedStream:
    """One camera's predicted frames (issue 18, ``mcucoder.video.VideoEncoder``) over a
    codec the fleet may share. The reference must stay what the platform will hold: a frame
    dropped after encoding is taken back (the next predicts from the last one sent), and
    channels trimmed on the way are sent intra next time; a tier change, and the platform's
    request (``request_key_frame``, from the network thread), send a key frame."""

    def __init__(self, codec, key_interval: int) -> None:
        from mcucoder.video import VideoEncoder  # torch: only where frames are encoded

        self.codec = codec
        self.video = VideoEncoder(codec, key_interval)
        self._tier: int | None = None
        self._before = None  # the reference before the frame last encoded
        self._key = False
        self._asked = False  # the platform asked for a key frame: the next frame is one

    def request_key_frame(self) -> None:
        """The next frame encoded is a key frame. Safe from another thread: a request that
        arrives while a frame is being encoded goes to the frame after it."""
        self._asked = True

    def encode(
        self, image: np.ndarray, channels: int, seq: int, capture_time_ms: int, tier: int
    ) -> bytes:
        key = (self._tier is not None and tier != self._tier) or self._asked
        self._asked = False
        self._tier = tier
        self._before = self.video.state.reference
        encoded = self.video.encode(image, channels, seq, capture_time_ms, key=key)
        self._key = encoded.key
        return encoded.packet

    def dropped(self) -> None:
        """The frame just encoded was not sent: predict the next one from the last sent."""
        self.video.state.reference = self._before
        if self._key or self._before is None:
            self.video.request_key_frame()

    def sent(self, channels: int) -> None:
        """``channels`` of the frame just encoded went out: the platform holds no new state
        for the others, so they are coded intra when next sent."""
        from mcucoder.predictive import Reference

        ref = self.video.state.reference
        if ref is not None and channels < len(ref.channels):
            kept = ref.channels[:channels] + (None,) * (len(ref.channels) - channels)
            self.video.state.reference = Reference(ref.seq, ref.latent_size, kept)


def _now_ms() -> int:
    return int(time.time() * 1000)


def add_key_interval_argument(parser: argparse.ArgumentParser) -> None:
    """``--key-interval``, as every command that runs simulated cameras takes it: predicted
    frames by default (issue 18), a key frame every ``KEY_INTERVAL`` frames as the codec's
    own encoder, besides those the platform asks for; 0 sends intra frames only."""
    parser.add_argument(
        "--key-interval",
        type=int,
        default=KEY_INTERVAL,
        help="predicted frames, a key frame every N (default %(default)s; 0: intra only)",
    )


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
    add_key_interval_argument(parser)
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
        key_interval=args.key_interval,
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
