"""Ingest throughput: 12-layer frames from MQTT into PostgreSQL, sustained, frames/s.

Starts ``manage.py ingest`` processes against the real Mosquitto, PostgreSQL and Redis,
publishes real 224×224 packets (encoded once by the codec, re-sequenced) from a publisher
process, and measures the rate at which frames and all their layers are committed.

    python -m bench.ingest [--frames 20000] [--ingest 1] [--devices 200]
"""

from __future__ import annotations

import argparse
import dataclasses
import multiprocessing as mp
import sys
import time
import uuid

from bench._harness import (
    child,
    mosquitto_broker,
    report,
    setup_django,
    wait_for_log,
)


def publish(device_ids: list[str], packet: bytes, frames: int, port: int) -> None:
    """Publisher process: QoS 1, round-robin over devices, seq increasing per device."""
    import paho.mqtt.client as mqtt

    from mcucoder.bitstream import parse_packet
    from protocol import topics

    base = parse_packet(packet)
    client = mqtt.Client(
        mqtt.CallbackAPIVersion.VERSION2, client_id=f"bench-pub-{uuid.uuid4().hex[:6]}"
    )
    client.max_inflight_messages_set(1000)
    client.max_queued_messages_set(0)
    client.connect("127.0.0.1", port)
    client.loop_start()
    infos = []
    for i in range(frames):
        device = device_ids[i % len(device_ids)]
        body = dataclasses.replace(base, seq=i // len(device_ids)).to_bytes()
        infos.append(client.publish(topics.topic(device, topics.Kind.FRAME), body, qos=1))
    for info in infos:
        info.wait_for_publish(60)
    print(f"publisher: {frames} frames acknowledged by the broker", file=sys.stderr, flush=True)
    client.loop_stop()
    client.disconnect()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=20000)
    parser.add_argument(
        "--ingest", type=int, default=1, help="ingest processes (shared subscription)"
    )
    parser.add_argument("--devices", type=int, default=200)
    parser.add_argument("--timeout", type=float, default=300, help="give up after this many s")
    args = parser.parse_args()

    env = setup_django()
    import numpy as np
    from django.db import connection

    from archive.models import Frame
    from fleet.models import Device
    from fleet.services import provision_device
    from mcucoder.codec import Codec

    run = uuid.uuid4().hex[:6]
    device_ids = [f"bench-{run}-{i}" for i in range(args.devices)]
    for d in device_ids:
        provision_device(d)
    codec = Codec.load()
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:224, 0:224]
    image = np.clip(np.stack([x, y, (x + y) / 2], -1) + rng.normal(0, 8, (224, 224, 3)), 0, 255)
    packet = codec.encode(image.astype(np.uint8), channels=12)
    devices = Device.objects.filter(device_id__in=device_ids)

    group = f"bench-{run}"
    procs = []
    broker = mosquitto_broker()
    env["MQTT_URL"] = broker_url = broker.__enter__()
    port = int(broker_url.rsplit(":", 1)[1])
    try:
        for i in range(args.ingest):
            cm = child(
                [
                    sys.executable,
                    "manage.py",
                    "ingest",
                    "--client-id",
                    f"bench-ingest-{run}-{i}",
                    "--share-group",
                    group,
                    "--session-expiry",
                    "60",
                ],
                env,
                f"ingest-{i}",
            )
            procs.append((cm, cm.__enter__()))
        for i in range(args.ingest):
            wait_for_log(f"ingest-{i}", "connected to")
        publisher = mp.get_context("spawn").Process(
            target=publish, args=(device_ids, packet, args.frames, port)
        )
        started = time.monotonic()
        publisher.start()
        samples = []
        first_at = None
        last_change = (time.monotonic(), 0)
        while time.monotonic() - started < args.timeout:
            count = Frame.objects.filter(device__in=devices).count()
            now = time.monotonic()
            if count and first_at is None:
                first_at, first_count = now, count
            samples.append((now, count))
            print(f"\r{count}/{args.frames} frames archived", end="", file=sys.stderr, flush=True)
            if count != last_change[1]:
                last_change = (now, count)
            if count >= args.frames or now - last_change[0] > 30:
                break
            time.sleep(0.5)
        publisher.join(60)
        done_at, done = last_change
    finally:
        for cm, _ in procs:
            cm.__exit__(None, None, None)
        broker.__exit__(None, None, None)

    with connection.cursor() as cur:
        cur.execute(
            "select (select sum(pg_total_relation_size(relid)) from pg_partition_tree('archive_layer'))"
            " + pg_total_relation_size('archive_frame')"
        )
        total_bytes = cur.fetchone()[0]
        all_frames = Frame.objects.count()
    rate = (done - first_count) / max(1e-9, done_at - first_at)
    report(
        {
            "benchmark": "ingest",
            "frames": done,
            "ingest_processes": args.ingest,
            "devices": args.devices,
            "packet_bytes": len(packet),
            "frames_per_s": round(rate, 1),
            "archive_bytes_per_frame": round(total_bytes / max(1, all_frames)),
            "lost": args.frames - done,
        }
    )


if __name__ == "__main__":
    main()
