"""Retention on a year of one camera's archive: bytes per camera per day at each tier, and
the time to apply a layer-aware policy (dry run, then for real) on PostgreSQL.

Archives ``--days`` days of one camera at one frame every ``--every`` seconds (real 224×224
packets of all 12 layers, encoded once by the codec, re-sequenced and spread over the year),
measures the archive's bytes on disk per frame at k = 12 and after thinning to k = 3, then
applies ``--full-days 30 --keep-layers 3 --keep-days 180`` and a disk budget.

    python -m bench.retention [--days 365] [--every 300]
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
import uuid

from bench._harness import report, setup_django


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--every", type=float, default=300.0, help="seconds between frames")
    parser.add_argument("--fps", type=float, default=1.0, help="camera rate for bytes per day")
    args = parser.parse_args()

    setup_django()
    import numpy as np
    import torch
    from django.db import connection

    from archive.models import Frame, RetentionPolicy
    from archive.partitions import ensure_layer_partitions
    from archive.retention import run_policy, table_bytes
    from archive.services import store_packets
    from fleet.services import provision_device
    from mcucoder.bitstream import parse_packet
    from mcucoder.codec import Codec

    torch.set_num_threads(1)
    codec = Codec.load()
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:224, 0:224]
    image = np.clip(np.stack([x, y, (x + y) / 2], -1) + rng.normal(0, 8, (224, 224, 3)), 0, 255)
    packet = parse_packet(codec.encode(image.astype(np.uint8), channels=12))
    chunk_bytes = [len(c) for c in packet.chunks]
    header = len(codec.encode(image.astype(np.uint8), channels=1)) - chunk_bytes[0]
    per_day = 86400 * args.fps
    sent_per_day = {k: round((header + sum(chunk_bytes[:k])) * per_day) for k in range(1, 13)}

    ensure_layer_partitions()
    device = provision_device(f"bench-ret-{uuid.uuid4().hex[:6]}")
    n = int(args.days * 86400 / args.every)
    before = table_bytes()
    started = time.perf_counter()
    batch = 2000
    for first in range(0, n, batch):
        items = [
            (device, dataclasses.replace(packet, seq=seq))
            for seq in range(first, min(n, first + batch))
        ]
        store_packets(items)
        print(f"\r{min(n, first + batch)}/{n} frames archived", end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)
    load_s = time.perf_counter() - started
    with connection.cursor() as cur:  # spread the frames over the year, newest now
        cur.execute(
            "update archive_frame set received_at = now() - make_interval(secs => (%s - seq) * %s)"
            " where device_id = %s",
            [n - 1, args.every, device.pk],
        )
        cur.execute("vacuum analyze archive_frame")
        cur.execute("vacuum analyze archive_layer")
    full = table_bytes()
    disk_per_frame_k12 = (full["frame"] + full["layer"] - before["frame"] - before["layer"]) / n

    policy = RetentionPolicy.objects.create(
        device=device, full_days=30, keep_layers=3, keep_days=180
    )
    t0 = time.perf_counter()
    dry = run_policy(policy, [device.pk], dry_run=True)
    dry_s = time.perf_counter() - t0
    print(f"dry run {dry_s:.1f} s: would free {dry.freed_bytes:,} bytes", file=sys.stderr)
    t0 = time.perf_counter()
    done = run_policy(policy, [device.pk])
    apply_s = time.perf_counter() - t0
    print(f"applied in {apply_s:.1f} s: freed {done.freed_bytes:,} bytes", file=sys.stderr)
    with connection.cursor() as cur:
        cur.execute("vacuum archive_layer")
    left = Frame.objects.filter(device=device)
    thinned = left.filter(n_layers=3).count()

    # a budget of half what is left: oldest days thinned first (none left), then deleted
    policy.full_days = policy.keep_days = None
    policy.budget_bytes = done.used_bytes - done.freed_bytes
    policy.budget_bytes //= 2
    policy.save()
    t0 = time.perf_counter()
    budget = run_policy(policy, [device.pk])
    budget_s = time.perf_counter() - t0
    print(f"budget applied in {budget_s:.1f} s", file=sys.stderr)

    Frame.objects.filter(device=device).delete()
    report(
        {
            "benchmark": "retention",
            "frames": n,
            "days": args.days,
            "every_s": args.every,
            "packet_bytes_k12": header + sum(chunk_bytes),
            "sent_bytes_per_camera_day_at_k": sent_per_day,
            "camera_fps_for_per_day": args.fps,
            "archive_disk_bytes_per_frame_k12": round(disk_per_frame_k12),
            "load_s": round(load_s, 1),
            "policy": "full 30 days, then k=3, delete after 180 days",
            "dry_run_s": round(dry_s, 2),
            "apply_s": round(apply_s, 2),
            "frames_thinned": dry.steps[0].frames if dry.steps else 0,
            "frames_deleted": sum(s.frames for s in done.steps if s.action == "delete"),
            "frames_left_at_k3": thinned,
            "freed_bytes": done.freed_bytes,
            "dry_run_matches": [(s.frames, s.bytes) for s in dry.steps]
            == [(s.frames, s.bytes) for s in done.steps],
            "budget_apply_s": round(budget_s, 2),
            "budget_steps": [(s.action, s.frames, s.bytes) for s in budget.steps],
        }
    )


if __name__ == "__main__":
    main()
