"""The archive page's motion queries (issue 18) on a day of one camera at 1 frame/s, on
PostgreSQL: the hour and minute strips (frame counts with the busiest frame's motion share,
one grouped query each) against the counts alone, and event search (``?motion=N``: the
first page and its count).

Frame rows carry the headers of real predicted packets (the plaza clip, the real codec,
key frame every ``--key-interval``), repeated over the day; layers are not needed by these
queries and are not stored.

    python -m bench.archive_motion [--frames-per-day 86400] [--clip 120]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta

from bench._harness import machine, report, setup_django


def timed_ms(run: Callable[[], object], repeat: int) -> float:
    """Median wall time of ``run`` in ms (after one warm-up run)."""
    run()
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        run()
        times.append((time.perf_counter() - started) * 1000)
    return round(statistics.median(times), 1)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames-per-day", type=int, default=86_400)
    parser.add_argument("--clip", type=int, default=120, help="plaza frames encoded")
    parser.add_argument("--key-interval", type=int, default=50)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args(argv)

    setup_django()
    import torch
    from django.conf import settings
    from django.db import connection
    from django.db.models import Count
    from django.db.models.functions import TruncHour
    from django.utils import timezone

    from archive.decoding import codec_for
    from archive.models import Frame
    from bench.pframes import plaza
    from dashboard import queries
    from fleet.services import provision_device
    from mcucoder import bitstream as bs
    from mcucoder import registry
    from mcucoder.video import VideoEncoder

    torch.set_num_threads(1)
    codec = codec_for(registry.default_model_id())
    encoder = VideoEncoder(codec, key_interval=args.key_interval)
    headers = [
        bs.parse_packet(encoder.encode(img, 12, seq, seq * 1000).packet)
        for seq, img in enumerate(plaza(args.clip))
    ]
    device = provision_device(f"bench-motion-{uuid.uuid4().hex[:6]}")
    day = timezone.localdate() - timedelta(days=1)
    start = datetime.combine(day, datetime.min.time(), tzinfo=timezone.get_current_timezone())
    step = timedelta(seconds=86_400 / args.frames_per_day)
    rows = []
    for seq in range(args.frames_per_day):
        p = headers[seq % len(headers)]
        rows.append(
            Frame(
                device=device,
                seq=seq,
                capture_time_ms=seq * 1000,
                model_id=p.model_id,
                frame_type=p.frame_type,
                width=p.width,
                height=p.height,
                n_layers=12,
                header=p.header_fields(),
            )  # fmt: skip
        )
    Frame.objects.bulk_create(rows, batch_size=5000)
    with connection.cursor() as cur:  # spread over the day (auto_now_add set them to now)
        cur.execute(
            "update archive_frame set received_at = %s + seq * %s where device_id = %s",
            [start, step, device.pk],
        )
        cur.execute("vacuum analyze archive_frame")
    print(f"{args.frames_per_day} frames over {day}", file=sys.stderr)

    def counts_only() -> list:
        return list(
            Frame.objects.filter(device=device, received_at__gte=start,
                                 received_at__lt=start + timedelta(days=1))
            .annotate(hour=TruncHour("received_at")).values("hour").annotate(n=Count("id"))
        )  # fmt: skip

    busiest = start + timedelta(hours=12)
    threshold = settings.STRATA_EVENT_MOTION
    found = queries.motion_frames(device, day, threshold)
    shares = [p.motion for p in headers if p.motion != bs.MOTION_UNKNOWN]
    report(
        {
            "bench": "archive_motion",
            "machine": machine(),
            "frames": args.frames_per_day,
            "clip_frames_with_motion": len(shares),
            "clip_mean_motion_pct": round(statistics.mean(shares), 1) if shares else None,
            "day_hours_counts_only_ms": timed_ms(counts_only, args.repeat),
            "day_hours_with_motion_ms": timed_ms(
                lambda: queries.day_hours(device, day), args.repeat
            ),
            "hour_minutes_with_motion_ms": timed_ms(
                lambda: queries.hour_minutes(device, busiest), args.repeat
            ),
            "event_search_threshold_pct": threshold,
            "event_search_matches": found.count(),
            "event_search_count_ms": timed_ms(found.count, args.repeat),
            "event_search_first_page_ms": timed_ms(lambda: list(found[:60]), args.repeat),
        }
    )


if __name__ == "__main__":
    main()
