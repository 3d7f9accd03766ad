"""Live latency at fleet scale: simulated cameras, the real ingest, decode workers and
dashboard server, and signed-in live viewers on real WebSockets.

    python -m bench.latency --devices 200 --fps 1 --duration 60 --watched 10

Each of ``--watched`` viewers is an operator signed in (a session cookie) with one camera,
whose live socket names that camera (``{"watch": [id]}``, as ``live.js`` does for the cameras
on screen) and so marks it watched (``archive.policy``). Decode workers: a host's layout
(``--layout host``, the default: a worker reserved for ``live`` beside one for
``live,archive``, ``decoder_worker.celery.host_workers``), or ``single``: one worker
``-Q live,archive`` with torch's default threads (the layout before). Reports, JSON last line:

- ``p50_ms_watched`` / ``p99_ms_watched``: capture to the decoded image reaching the viewer
  (the live event, then the image fetched over HTTP), for the frames its viewer was shown;
  ``..._after_first``: the same without each camera's first frame (the fleet starts every
  camera in the same second, so the viewers' first frames come in one burst);
  ``shown_watched``: the share of the watched cameras' frames shown (coalescing skips
  frames a viewer would only see go by);
- ``p99_ms_archived``: capture to the frame committed in the archive, every frame;
- ``lost``: frames acknowledged to a camera (PUBACK) but not in the archive;
- ``backlog``: every second, the tasks waiting per class (live, interactive, export,
  backfill) and the frames not decoded yet; ``backlog_max``; ``decoded``: frames decoded
  (live, backfill); ``decode_ms_p50``: the decoder's time per frame in the worker.

Capture time is the device's clock in the packet; the cameras run on this machine, so it is
the clock of the viewers and of the archive's ``received_at``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from contextlib import ExitStack

import numpy as np

from bench._harness import (
    BENCH_ENV,
    child,
    machine,
    mosquitto_broker,
    report,
    setup_django,
    wait_for_log,
)

# Redis lists of the Celery queues (kombu: priority n of a queue is "queue\x06\x16n").
QUEUE_KEYS = {
    "live": ["live"],
    "interactive": ["archive"],
    "export": ["archive\x06\x163"],
    "backfill": ["archive\x06\x166", "archive\x06\x169"],
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def listening(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) == 0


def signed_in_cookie(user) -> str:
    """A session for ``user`` as signing in makes it (the bench skips the form)."""
    from django.conf import settings
    from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
    from django.contrib.sessions.backends.db import SessionStore

    session = SessionStore()
    session[SESSION_KEY] = str(user.pk)
    session[BACKEND_SESSION_KEY] = settings.AUTHENTICATION_BACKENDS[0]
    session[HASH_SESSION_KEY] = user.get_session_auth_hash()
    session.save()
    return f"{settings.SESSION_COOKIE_NAME}={session.session_key}"


class Viewers:
    """Live pages, one per watched camera: a thread with an asyncio loop of WebSockets."""

    def __init__(self, base: str, cookies: dict[str, str]) -> None:
        self.base = base
        self.cookies = cookies  # device id -> cookie of its operator
        self.shown: list[dict] = []  # one per image shown
        self.connected = threading.Event()
        self.stop = threading.Event()
        self.errors: list[str] = []
        self.thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True)

    def _fetch(self, url: str, cookie: str) -> int:
        req = urllib.request.Request(self.base + url, headers={"Cookie": cookie})
        with urllib.request.urlopen(req, timeout=30) as resp:
            return len(resp.read())

    async def _view(self, device_id: str, cookie: str, ready: list) -> None:
        from websockets.asyncio.client import connect

        url = self.base.replace("http://", "ws://") + "/ws/live/"
        headers = {"Cookie": cookie, "Origin": self.base}
        async with connect(url, additional_headers=headers, open_timeout=60) as ws:
            await ws.send(json.dumps({"watch": [device_id]}))
            ready.append(device_id)
            if len(ready) == len(self.cookies):
                self.connected.set()
            while not self.stop.is_set():
                try:
                    message = await asyncio.wait_for(ws.recv(), 0.5)
                except TimeoutError:
                    continue
                received_ms = time.time() * 1000
                event = json.loads(message)
                if event.get("type") != "frame" or event.get("device_id") != device_id:
                    continue
                size = await asyncio.to_thread(self._fetch, event["image_url"], cookie)
                self.shown.append(
                    {
                        "device_id": device_id,
                        "frame_id": event["frame_id"],
                        "capture_ms": event["capture_time_ms"],
                        "event_ms": received_ms,
                        "image_ms": time.time() * 1000,
                        "bytes": size,
                    }
                )

    async def _run(self) -> None:
        ready: list[str] = []
        tasks = [self._view(d, c, ready) for d, c in self.cookies.items()]
        for result in await asyncio.gather(*tasks, return_exceptions=True):
            if isinstance(result, BaseException):
                self.errors.append(f"{type(result).__name__}: {result}")
                self.connected.set()

    def start(self) -> None:
        self.thread.start()

    def close(self) -> None:
        self.stop.set()
        self.thread.join(30)


class Backlog:
    """Every second: tasks waiting per class, and frames archived but not decoded yet."""

    def __init__(self, device_ids: list[str]) -> None:
        self.device_ids = device_ids
        self.samples: list[dict] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        import redis
        from django.conf import settings
        from django.db import connection

        from archive.models import DecodedImage, Frame

        r = redis.Redis.from_url(settings.REDIS_URL)
        started = time.monotonic()
        try:
            while not self.stop.wait(1.0):
                sample = {"t": round(time.monotonic() - started, 1)}
                for name, keys in QUEUE_KEYS.items():
                    sample[name] = sum(r.llen(k) for k in keys)
                frames = Frame.objects.filter(device__device_id__in=self.device_ids)
                decoded = DecodedImage.objects.filter(frame__in=frames).values("frame").distinct()
                sample["undecoded"] = frames.count() - decoded.count()
                self.samples.append(sample)
        finally:
            connection.close()

    def start(self) -> None:
        self.thread.start()

    def close(self) -> None:
        self.stop.set()
        self.thread.join(10)


def percentile(values: list[float], q: float) -> float | None:
    return round(float(np.percentile(values, q)), 1) if values else None


def run_fleet(env: dict, broker: str, args, prefix: str) -> dict:
    fleet = subprocess.run(
        [sys.executable, "-m", "devices.fleet", "--count", str(args.devices), "--broker", broker]
        + ["--fps", str(args.fps), "--duration", str(args.duration), "--prefix", prefix],
        env=env,
        capture_output=True,
        text=True,
        timeout=args.duration + 180,
    )
    if fleet.returncode != 0:
        raise RuntimeError(fleet.stderr[-2000:])
    return json.loads(fleet.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=200)
    parser.add_argument("--fps", type=float, default=1.0, help="frames per second per device")
    parser.add_argument("--duration", type=float, default=60)
    parser.add_argument("--watched", type=int, default=10, help="cameras with a live viewer")
    parser.add_argument(
        "--layout",
        choices=["host", "single"],
        default="host",
        help="decode workers: a live worker beside an archive one (host), or one for both",
    )
    parser.add_argument("--policy", default="auto", help="STRATA_DECODE_POLICY of the run")
    parser.add_argument("--drain", type=float, default=15, help="seconds to wait after")
    args = parser.parse_args()

    # A database and Redis database of its own: its workers backfill whatever frames the
    # database holds (not other benchmarks' frames), and it empties its Redis at the start.
    BENCH_ENV["DATABASE_URL"] = os.environ.get(
        "BENCH_LATENCY_DATABASE_URL",
        BENCH_ENV["DATABASE_URL"].rsplit("/", 1)[0] + "/strata_bench_latency",
    )
    BENCH_ENV["REDIS_URL"] = os.environ.get(
        "BENCH_LATENCY_REDIS_URL", BENCH_ENV["REDIS_URL"].rsplit("/", 1)[0] + "/13"
    )
    env = setup_django()
    env["STRATA_DECODE_POLICY"] = args.policy
    import redis
    from django.conf import settings
    from django.contrib.auth import get_user_model

    from access.services import assign
    from archive import coordination, policy
    from archive.models import DecodedImage, Frame
    from devices.fleet import device_ids
    from fleet.services import provision_device

    redis.Redis.from_url(settings.REDIS_URL).flushdb()  # the bench's own Redis database
    run = uuid.uuid4().hex[:6]
    prefix = f"lat{run}-"
    ids = device_ids(args.devices, prefix)
    devices = [provision_device(d) for d in ids]
    users = get_user_model()
    cookies = {}
    for device in devices[: args.watched]:
        operator = users.objects.create_user(f"viewer-{device.device_id}")
        assign(operator, device=device)
        cookies[device.device_id] = signed_in_cookie(operator)

    port = free_port()
    base = f"http://127.0.0.1:{port}"
    from decoder_worker.celery import host_workers, worker_command

    if args.layout == "host":
        workers = [
            (w.role.name, w.args, w.env) for w in host_workers(f"lat-{run}", loglevel="WARNING")
        ]
    else:
        workers = [("single", worker_command(name=f"single-lat-{run}@%h", loglevel="WARNING"), {})]
    with ExitStack() as stack, mosquitto_broker() as broker:
        env["MQTT_URL"] = broker
        ingest = [sys.executable, "manage.py", "ingest", "--client-id", f"lat-{run}"]
        stack.enter_context(child(ingest + ["--session-expiry", "60"], env, "lat-ingest"))
        for role, cmd, worker_env in workers:
            stack.enter_context(child(cmd, env | worker_env, f"lat-worker-{role}"))
        daphne = [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port)]
        stack.enter_context(child(daphne + ["strata.asgi:application"], env, "lat-daphne"))
        wait_for_log("lat-ingest", "connected to", 240)
        deadline = time.monotonic() + 240
        while not listening(port):
            if time.monotonic() > deadline:
                raise TimeoutError("daphne did not listen: see /tmp/strata-bench-lat-daphne.log")
            time.sleep(0.3)
        while len(coordination.live_members(coordination.WORKERS)) < len(workers):
            if time.monotonic() > deadline:
                raise TimeoutError("decode workers did not start: see /tmp/strata-bench-*.log")
            time.sleep(0.5)

        viewers = Viewers(base, cookies)
        viewers.start()
        viewers.connected.wait(120)
        if viewers.errors:
            raise RuntimeError(f"viewers could not connect: {viewers.errors[:3]}")
        while len(policy.watched_device_ids() & set(cookies)) < len(cookies):
            time.sleep(0.2)
        backlog = Backlog(ids)
        backlog.start()
        print(f"{args.devices} cameras, {len(cookies)} watched: running", file=sys.stderr)
        fleet = run_fleet(env, broker, args, prefix)
        time.sleep(args.drain)
        backlog.close()
        viewers.close()
        policy = coordination.counters()

    frames = Frame.objects.filter(device__device_id__in=ids)
    decode_ms = list(
        DecodedImage.objects.filter(frame__in=frames).values_list("decode_ms", flat=True)
    )
    rows = list(frames.values_list("capture_time_ms", "received_at"))
    archived_ms = [r.timestamp() * 1000 - c for c, r in rows]
    watched_frames = frames.filter(device__device_id__in=list(cookies)).count()
    first = {}
    for s in viewers.shown:
        first.setdefault(s["frame_id"], s)  # one viewer per camera: the first time shown
    shown = list(first.values())
    watched_ms = [s["image_ms"] - s["capture_ms"] for s in shown]
    # Past each camera's first frame shown: the fleet starts its cameras in the same second,
    # so every viewer's first frame arrives in one burst (and with ingest's start-up).
    first_shown: dict[str, int] = {}
    for s in sorted(shown, key=lambda s: s["capture_ms"]):
        first_shown.setdefault(s["device_id"], s["frame_id"])
    steady_ms = [
        s["image_ms"] - s["capture_ms"]
        for s in shown
        if s["frame_id"] != first_shown[s["device_id"]]
    ]
    event_ms = [s["event_ms"] - s["capture_ms"] for s in shown]
    samples = backlog.samples
    queued = [sum(s[k] for k in QUEUE_KEYS) for s in samples]
    report(
        {
            "benchmark": "latency",
            "machine": machine(),
            "devices": args.devices,
            "fps_per_device": args.fps,
            "duration_s": args.duration,
            "watched": len(cookies),
            "layout": args.layout,
            "workers": {role: " ".join(cmd[cmd.index("-Q") :][:2]) for role, cmd, _ in workers},
            "threads": {
                role: worker_env.get("STRATA_DECODE_THREADS", "default")
                for role, _, worker_env in workers
            },
            "policy": args.policy,
            "frames_sent": fleet.get("frames_sent"),
            "frames_acked": fleet.get("frames_acked"),
            "frames_archived": len(rows),
            "lost": max(0, int(fleet.get("frames_acked", 0)) - len(rows)),
            "p50_ms_archived": percentile(archived_ms, 50),
            "p99_ms_archived": percentile(archived_ms, 99),
            "p50_ms_watched": percentile(watched_ms, 50),
            "p99_ms_watched": percentile(watched_ms, 99),
            "p50_ms_watched_after_first": percentile(steady_ms, 50),
            "p99_ms_watched_after_first": percentile(steady_ms, 99),
            "p99_ms_watched_event": percentile(event_ms, 99),
            "shown_watched": round(len(shown) / watched_frames, 3) if watched_frames else None,
            "decoded": policy,
            "decode_ms_p50": percentile(decode_ms, 50),  # the decoder's time per frame
            "backlog_max": max(queued, default=0),
            "undecoded_end": samples[-1]["undecoded"] if samples else None,
            "backlog": samples,
        }
    )


if __name__ == "__main__":
    main()
