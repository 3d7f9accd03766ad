"""Latency from a device's capture to its decoded frame stored, p50 and p99 (ms), with a
simulated fleet, the real ingest process and a real Celery decode worker.

    python -m bench.latency [--devices 50 200] [--fps 0.2] [--duration 60]

Capture time is the device's clock in the packet; devices run on this machine, so it is the
same clock as the archive's ``decoded_at``.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
import uuid

import numpy as np

from bench._harness import (
    child,
    machine,
    mosquitto_broker,
    report,
    setup_django,
    wait_for_log,
)


def run_fleet(env: dict, broker: str, count: int, fps: float, duration: float, prefix: str) -> dict:
    from archive.models import DecodedImage, Frame
    from devices.fleet import device_ids
    from fleet.services import provision_device

    ids = device_ids(count, prefix)
    for d in ids:
        provision_device(d)
    fleet = subprocess.run(
        [
            sys.executable,
            "-m",
            "devices.fleet",
            "--count",
            str(count),
            "--broker",
            broker,
            "--fps",
            str(fps),
            "--duration",
            str(duration),
            "--prefix",
            prefix,
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=duration + 120,
    )
    if fleet.returncode != 0:
        raise RuntimeError(fleet.stderr[-2000:])
    frames = Frame.objects.filter(device__device_id__in=ids)
    sent = frames.count()
    deadline = time.monotonic() + 120  # let the decode queue drain
    while time.monotonic() < deadline:
        if DecodedImage.objects.filter(frame__in=frames).count() >= sent:
            break
        time.sleep(1)
    rows = DecodedImage.objects.filter(frame__in=frames).values_list(
        "frame__capture_time_ms", "decoded_at"
    )
    lat = np.array([d.timestamp() * 1000 - c for c, d in rows])
    return {
        "devices": count,
        "fps_per_device": fps,
        "frames_archived": sent,
        "frames_decoded": int(lat.size),
        "p50_ms": round(float(np.percentile(lat, 50)), 1) if lat.size else None,
        "p99_ms": round(float(np.percentile(lat, 99)), 1) if lat.size else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, nargs="+", default=[50, 200])
    parser.add_argument("--fps", type=float, default=0.2, help="frames per second per device")
    parser.add_argument("--duration", type=float, default=60)
    args = parser.parse_args()

    env = setup_django()
    run = uuid.uuid4().hex[:6]
    results = []
    import redis
    from django.conf import settings

    redis.Redis.from_url(settings.REDIS_URL).flushdb()  # the bench's own Redis database
    with mosquitto_broker() as broker:
        env["MQTT_URL"] = broker
        ingest = [
            sys.executable,
            "manage.py",
            "ingest",
            "--client-id",
            f"lat-{run}",
            "--session-expiry",
            "60",
        ]
        from decoder_worker.celery import worker_command

        worker = worker_command("live", name=f"lat-{run}@%h")
        with child(ingest, env, "lat-ingest"), child(worker, env, "lat-worker"):
            wait_for_log("lat-ingest", "connected to")
            wait_for_log("lat-worker", "ready.", 240)
            for count in args.devices:
                figures = run_fleet(
                    env, broker, count, args.fps, args.duration, f"lat{run}n{count}"
                )
                print(figures, file=sys.stderr, flush=True)
                results.append(figures)
    report(
        {
            "benchmark": "latency",
            "machine": machine(),
            "runs": results,
            "p50_ms": {r["devices"]: r["p50_ms"] for r in results},
            "p99_ms": {r["devices"]: r["p99_ms"] for r in results},
        }
    )


if __name__ == "__main__":
    main()
