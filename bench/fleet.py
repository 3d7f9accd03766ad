"""Fleet scale: N simulated cameras in one process (`devices.fleet`) against a real broker,
with a subscriber counting what actually arrives.

    python -m bench.fleet [--count 200] [--fps 1] [--duration 60]

Prints, last, one JSON line: the fleet's own summary plus frames/s received by the broker's
subscriber, the fleet process's CPU share and peak memory.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import threading
import time
import uuid

import paho.mqtt.client as mqtt

from bench._harness import ROOT, machine, mosquitto_broker, report
from protocol import topics


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument("--fps", type=float, default=1.0)
    parser.add_argument("--duration", type=float, default=60)
    args = parser.parse_args()

    received = 0
    lock = threading.Lock()

    def on_message(client, userdata, message) -> None:
        nonlocal received
        with lock:
            received += 1

    with mosquitto_broker() as broker:
        port = int(broker.rsplit(":", 1)[1])
        sub = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2, client_id=f"bench-sub-{uuid.uuid4().hex[:6]}"
        )
        sub.on_message = on_message
        sub.connect("127.0.0.1", port)
        sub.subscribe(topics.subscription(topics.Kind.FRAME), qos=0)
        sub.loop_start()
        started = time.monotonic()
        fleet = subprocess.run(
            [
                sys.executable,
                "-m",
                "devices.fleet",
                "--count",
                str(args.count),
                "--broker",
                broker,
                "--fps",
                str(args.fps),
                "--duration",
                str(args.duration),
                "--prefix",
                f"bf{uuid.uuid4().hex[:4]}",
            ],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=args.duration + 300,
        )
        wall = time.monotonic() - started
        time.sleep(1)
        sub.loop_stop()
    if fleet.returncode != 0:
        raise SystemExit(fleet.stderr[-3000:])
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    summary = json.loads(fleet.stdout.strip().splitlines()[-1])
    report(
        {
            "benchmark": "fleet",
            "machine": machine(),
            "devices": args.count,
            "fps_per_device": args.fps,
            "duration_s": args.duration,
            "received_frames_per_s": round(received / args.duration, 1),
            "target_frames_per_s": args.count * args.fps,
            "fleet_cpu_share": round((usage.ru_utime + usage.ru_stime) / wall, 2),
            "fleet_peak_rss_mb": round(usage.ru_maxrss / 1024),
            "fleet_summary": summary,
        }
    )


if __name__ == "__main__":
    main()
