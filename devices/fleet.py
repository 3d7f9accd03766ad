"""Many simulated cameras in one process: the demo's fleet and the load generator.

Each camera keeps its own MQTT client (its own id, session and Will) on paho's network
thread; one scheduler thread captures and encodes for all of them in turn, so the heavy
codec is loaded once and encodes never run concurrently on a 2-core machine.

    python -m devices.fleet --count 3 --broker mqtt://127.0.0.1:1883 --duration 60
"""

from __future__ import annotations

import argparse
import csv
import heapq
import json
import logging
import resource
import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from devices import traces
from devices.camera import Camera, Encoder, add_key_interval_argument
from devices.link import LinkEmulator
from devices.scenes import DEFAULT_SIZE, SCENE_NAMES, Size, make_source
from devices.sequence import default_state_dir
from devices.traces import Trace
from protocol.broker import BrokerURL
from protocol.payloads import CAPTURE_MODES, MAX_TIER

log = logging.getLogger(__name__)


class SerializedEncoder:
    """A codec shared between threads: one encode at a time (torch would oversubscribe)."""

    def __init__(self, codec: Encoder) -> None:
        self.codec = codec
        self._lock = threading.Lock()

    def encode(
        self, image: np.ndarray, channels: int = MAX_TIER, seq: int = 0, capture_time_ms: int = 0
    ) -> bytes:
        with self._lock:
            return self.codec.encode(
                image, channels=channels, seq=seq, capture_time_ms=capture_time_ms
            )

    def symbols(self, image: np.ndarray) -> np.ndarray:
        """The frame's latent symbols: what a camera sending predicted frames codes."""
        with self._lock:
            return self.codec.symbols(image)

    def __getattr__(self, name: str):
        return getattr(self.codec, name)  # tables, model_id, coding, n_channels


def load_codec(model: str | None = None) -> SerializedEncoder:
    """Load the shared codec once (imports torch: seconds, hence lazily). The INT8 encoder
    is the one MCUs run; without its .tflite the float encoder stands in, with a warning."""
    from mcucoder.codec import Codec
    from mcucoder.models import DOWNSCALE

    codec = Codec.load(model)
    if getattr(codec, "int8", None) is None:
        log.warning("codec %s has no INT8 encoder: cameras encode in float", codec.name)
    # the INT8 runtime sets up its kernels (and says so on stderr) at the first encode: do
    # it now, while the launcher starts, not in the middle of its quiet output
    codec.encode(np.zeros((DOWNSCALE, DOWNSCALE, 3), np.uint8))
    return SerializedEncoder(codec)


@dataclass(frozen=True)
class FleetStatus:
    devices: int
    online: int
    fps: float  # frames published per second, whole fleet
    kbps: float  # kbit/s published, whole fleet
    mean_tier: float
    backlog: int  # unacknowledged frames, whole fleet
    frames_sent: int
    frames_dropped: int

    def line(self) -> str:
        return (
            f"online {self.online}/{self.devices}  {self.fps:6.1f} frames/s  "
            f"{self.kbps:8.1f} kbit/s  tier {self.mean_tier:4.1f}  "
            f"backlog {self.backlog}  sent {self.frames_sent}  dropped {self.frames_dropped}"
        )


class Fleet:
    """N cameras sharing one codec and one capture thread; ``start()``/``stop()`` return at
    once and everything runs on background threads (for the demo launcher)."""

    def __init__(
        self,
        device_ids: Sequence[str],
        broker_url: str,
        *,
        fps: float = 1.0,
        deadline_ms: float | None = None,
        max_kbps: float | None = None,
        tier: int = MAX_TIER,
        mode: str = "periodic",
        source: str | Sequence[str] = "synthetic",
        size: Size = DEFAULT_SIZE,
        codec: Encoder | None = None,
        model: str | None = None,
        mqtt: str = "5",
        heartbeat_s: float = 10.0,
        max_backlog: int = 16,
        session_expiry_s: int = 3600,
        trace: str | Trace | None = None,
        latency_ms: float = 0.0,
        loss: float = 0.0,
        state_dir: Path | None = None,
        credentials: Callable[[str], tuple[str, str]] | None = None,
        key_interval: int = 0,
    ) -> None:
        if len(set(device_ids)) != len(device_ids):
            raise ValueError("device ids must be unique (they are MQTT client ids)")
        # one source spec for all (synthetic scenes then differ by camera) or one per camera
        sources = [source] * len(device_ids) if isinstance(source, str) else list(source)
        if len(sources) != len(device_ids):
            raise ValueError(f"{len(sources)} sources for {len(device_ids)} cameras")
        self.broker = BrokerURL.parse(broker_url)
        self.link: LinkEmulator | None = None
        device_broker = self.broker
        if trace is not None or latency_ms or loss:
            # every camera's connection gets its own emulated uplink, offset in the trace
            if self.broker.tls:
                raise ValueError("link emulation relays plain TCP: use mqtt://, not mqtts://")
            bandwidth = traces.parse(trace) if isinstance(trace, str) else trace
            self.link = LinkEmulator(
                (self.broker.host, self.broker.port),
                bandwidth=bandwidth,
                latency_ms=latency_ms,
                loss=loss,
                stagger_s=37.0,
            )
            device_broker = replace(self.broker, host=self.link.host, port=self.link.port)
        self._codec = codec
        self._model = model
        self.cameras = [
            Camera(
                device_id,
                device_broker,
                source=make_source(sources[i], size, index=i),
                tier=tier,
                fps=fps,
                deadline_ms=deadline_ms,
                max_kbps=max_kbps,
                mode=mode,
                heartbeat_s=heartbeat_s,
                max_backlog=max_backlog,
                session_expiry_s=session_expiry_s,
                protocol=mqtt,
                state_dir=default_state_dir() if state_dir is None else state_dir,
                key_interval=key_interval,
                **_credentials(credentials, device_id),
            )
            for i, device_id in enumerate(device_ids)
        ]
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._started_at = time.monotonic()
        self._last: tuple[float, int, int] = (self._started_at, 0, 0)

    def start(self) -> Fleet:
        """Load the codec (once), connect every camera and start capturing."""
        if self._thread is not None:
            return self
        encoder = self._codec or load_codec(self._model)
        if self.link is not None:
            self.link.start()
        for camera in self.cameras:
            camera.encoder = encoder
            camera.start()
        self._started_at = time.monotonic()
        self._last = (self._started_at, 0, 0)
        self._thread = threading.Thread(target=self._schedule, name="fleet-capture", daemon=True)
        self._thread.start()
        return self

    def _schedule(self) -> None:
        """Run every camera's ``tick`` when it is due, earliest first."""
        now = time.monotonic()
        # spread first captures over a second so the fleet does not pulse in step
        queue = [(now + i / max(1, len(self.cameras)), i) for i in range(len(self.cameras))]
        heapq.heapify(queue)
        while queue and not self._stop.is_set():
            due, i = queue[0]
            if self._stop.wait(max(0.0, due - time.monotonic())):
                break
            heapq.heappop(queue)
            camera = self.cameras[i]
            try:
                wake = camera.tick()
            except Exception:
                log.exception("%s: capture failed", camera.device_id)
                wake = time.monotonic() + 1.0
            heapq.heappush(queue, (wake, i))

    def stop(self, timeout_s: float = 5.0) -> None:
        """Stop capturing, then let every camera flush and say offline before disconnecting."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
        deadline = time.monotonic() + timeout_s
        while any(c.online and c.backlog for c in self.cameras) and time.monotonic() < deadline:
            time.sleep(0.05)  # let in-flight frames land before the goodbyes
        for camera in self.cameras:
            camera.stop(timeout_s=0.5)
        if self.link is not None:
            self.link.stop()

    def wait_online(self, timeout_s: float = 15.0) -> bool:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if all(c.online for c in self.cameras):
                return True
            time.sleep(0.05)
        return False

    def status(self, since_start: bool = False) -> FleetStatus:
        """Fleet totals; rates over the time since the previous call (or since start)."""
        now = time.monotonic()
        frames = sum(c.stats.frames_sent for c in self.cameras)
        sent = sum(c.stats.bytes_sent for c in self.cameras)
        if since_start:
            t0, frames0, sent0 = self._started_at, 0, 0
        else:
            (t0, frames0, sent0), self._last = self._last, (now, frames, sent)
        dt = max(now - t0, 1e-6)
        n = max(1, len(self.cameras))
        return FleetStatus(
            devices=len(self.cameras),
            online=sum(c.online for c in self.cameras),
            fps=(frames - frames0) / dt,
            kbps=(sent - sent0) * 8 / 1000 / dt,
            mean_tier=sum(c.settings.tier for c in self.cameras) / n,
            backlog=sum(c.backlog for c in self.cameras),
            frames_sent=frames,
            frames_dropped=sum(c.stats.frames_dropped for c in self.cameras),
        )

    def summary(self) -> dict[str, float | int]:
        """Figures of the whole run so far (for benchmarks: one JSON line)."""
        status = self.status(since_start=True)
        stats = [c.stats for c in self.cameras]
        latencies = [ms for c in self.cameras for ms in c.telemetry_latencies()]
        usage = resource.getrusage(resource.RUSAGE_SELF)
        elapsed = time.monotonic() - self._started_at
        return {
            **asdict(status),
            "target_fps": sum(c.settings.fps for c in self.cameras),
            "duration_s": round(elapsed, 2),
            "frames_acked": sum(s.frames_acked for s in stats),
            "frames_trimmed": sum(s.frames_trimmed for s in stats),
            "dropped_backlog": sum(s.dropped_backlog for s in stats),
            "dropped_rate": sum(s.dropped_rate for s in stats),
            "dropped_deadline": sum(s.dropped_deadline for s in stats),
            "puback_ms_mean": round(sum(latencies) / len(latencies), 2) if latencies else None,
            "cpu_s": round(usage.ru_utime + usage.ru_stime, 2),
            "max_rss_mb": round(usage.ru_maxrss / 1024, 1),
        }

    def __enter__(self) -> Fleet:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _credentials(
    credentials: Callable[[str], tuple[str, str]] | None, device_id: str
) -> dict[str, str]:
    if credentials is None:
        return {}
    username, password = credentials(device_id)
    return {"username": username, "password": password}


def load_credentials(path: Path) -> Callable[[str], tuple[str, str]]:
    """Per-device credentials from a CSV of ``device_id,password`` (the username is the
    device id, as the broker ACL expects) or ``device_id,username,password`` rows, or from
    the JSON lines that ``manage.py provision`` prints (``device_id``, ``username``,
    ``password``)."""
    table: dict[str, tuple[str, str]] = {}
    for line in path.read_text().splitlines():
        if line.lstrip().startswith("{"):
            issued = json.loads(line)
            table[issued["device_id"]] = (issued["username"], issued["password"])
            continue
        row = next(csv.reader([line]), [])
        if not row or row[0].startswith("#"):
            continue
        if len(row) == 2:
            table[row[0]] = (row[0], row[1])
        elif len(row) == 3:
            table[row[0]] = (row[1], row[2])
        else:
            raise ValueError(f"{path}: rows are device_id,password or device_id,username,password")

    def lookup(device_id: str) -> tuple[str, str]:
        if device_id not in table:
            raise KeyError(f"no credentials for {device_id} in {path}")
        return table[device_id]

    return lookup


def device_ids(count: int, prefix: str = "cam") -> list[str]:
    """``cam-000``, ``cam-001``, …: stable ids, so persistent sessions survive restarts."""
    width = max(3, len(str(count - 1)))
    return [f"{prefix}-{i:0{width}d}" for i in range(count)]


def frame_size(text: str) -> Size:
    """``WIDTHxHEIGHT`` as the command line gives it (argparse answers a bad one in a line)."""
    width, _, height = text.lower().partition("x")
    if not (width.isdigit() and height.isdigit() and int(width) > 0 and int(height) > 0):
        raise argparse.ArgumentTypeError(f"{text!r} is not WIDTHxHEIGHT, e.g. 320x240 or 640x480")
    return int(width), int(height)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run N simulated cameras against a broker.")
    parser.add_argument("--count", type=int, default=3)
    parser.add_argument("--broker", default="mqtt://127.0.0.1:1883")
    parser.add_argument(
        "--source",
        default="synthetic",
        help=f"synthetic (scenes {', '.join(SCENE_NAMES)} in turn), synthetic:SCENE, "
        "a folder of images or a video",
    )
    parser.add_argument("--fps", type=float, default=1.0)
    parser.add_argument(
        "--deadline", type=float, help="live deadline, ms: trim or skip frames that would be late"
    )
    parser.add_argument("--duration", type=float, help="seconds; default: until Ctrl-C")
    parser.add_argument("--tier", type=int, default=MAX_TIER, help=f"channels 1..{MAX_TIER}")
    parser.add_argument("--mode", choices=CAPTURE_MODES, default="periodic")
    parser.add_argument("--prefix", default="cam", help="device id prefix")
    parser.add_argument(
        "--size", type=frame_size, default=DEFAULT_SIZE, help="WIDTHxHEIGHT (default 320x240)"
    )
    parser.add_argument("--mqtt", choices=("5", "3.1.1"), default="5", help="protocol version")
    parser.add_argument("--model", help="codec model (default: the codec's own)")
    parser.add_argument(
        "--trace",
        help="emulated uplink per camera: kbit/s, steps:, walk:, nbiot, 3g, lte, or a file",
    )
    parser.add_argument("--latency", type=float, default=0.0, help="emulated latency, ms")
    parser.add_argument(
        "--loss", type=float, default=0.0, help="emulated segment loss probability (TCP resends)"
    )
    parser.add_argument(
        "--credentials",
        type=Path,
        help="CSV of device_id,password (or device_id,user,password), or the JSON lines of "
        "manage.py provision",
    )
    parser.add_argument("--heartbeat", type=float, default=10.0, help="telemetry period, s")
    add_key_interval_argument(parser)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(message)s")

    import torch

    # one scheduler thread encodes tiny convolutions: intra-op threads only contend (on two
    # cores a 224x224 encode takes ~2 ms with one thread and ~40 ms with two)
    torch.set_num_threads(1)
    try:
        fleet = Fleet(
            device_ids(args.count, args.prefix),
            args.broker,
            fps=args.fps,
            deadline_ms=args.deadline,
            tier=args.tier,
            mode=args.mode,
            source=args.source,
            size=args.size,
            model=args.model,
            mqtt=args.mqtt,
            heartbeat_s=args.heartbeat,
            trace=args.trace,
            latency_ms=args.latency,
            loss=args.loss,
            credentials=load_credentials(args.credentials) if args.credentials else None,
            key_interval=args.key_interval,
        )
    except (OSError, ValueError, KeyError) as exc:  # a missing or wrong credentials file, a bad URL
        reason = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        print(f"fleet: cannot start: {reason}", file=sys.stderr, flush=True)
        return 1
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    end = time.monotonic() + args.duration if args.duration else float("inf")
    live = sys.stdout.isatty()
    via = (
        f" through emulated links ({args.trace or 'unlimited'}, {args.latency:g} ms, "
        f"{args.loss:.1%} loss)"
        if fleet.link
        else ""
    )
    print(
        f"{args.count} cameras -> {fleet.broker}{via} (MQTT {args.mqtt}); Ctrl-C stops", flush=True
    )
    fleet.start()
    last_print = 0.0
    try:
        while not stop.wait(min(1.0, max(0.0, end - time.monotonic()))):
            if time.monotonic() >= end:
                break
            status = fleet.status()
            if live:
                print("\r" + status.line(), end="", flush=True)
            elif time.monotonic() - last_print >= 10:
                print(status.line(), flush=True)
                last_print = time.monotonic()
    except KeyboardInterrupt:
        pass
    finally:
        if live:
            print()
        summary = fleet.summary()
        fleet.stop()
    print(json.dumps(summary), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
