"""The tier controller's decision loop alone, against the real database and a real broker.

    python -m bench.control [--cameras 1000] [--active 200] [--cycles 30]

Provisions ``--cameras`` cameras in a database of its own (dropped at the end), of which
``--active`` send frames and a telemetry message before every cycle (as a heartbeat would);
the rest never send, as most cameras of a real fleet at any moment. Then runs
``control.services.control_round`` cycle after cycle and prints, last, one JSON line:
``cycle_ms_p50`` / ``cycle_ms_p95`` (wall time of a cycle, publishes included),
``queries_per_cycle`` (mean; the reads are set-based, the writes one per decided camera),
``decided_per_cycle`` and ``published_per_cycle``.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import time

RUN_DB = f"strata_bench_control_{os.getpid()}"
os.environ.setdefault("BENCH_DATABASE_URL", f"postgres://postgres@127.0.0.1:5432/{RUN_DB}")

from bench._harness import BENCH_ENV, machine, mosquitto_broker, report, setup_django  # noqa: E402


def populate(cameras: int, active: int, frames: int) -> list[int]:
    """Provision the fleet; the active cameras get ``frames`` archived frames each (their
    scene's sizes). Returns the active cameras' primary keys."""
    from archive.services import store_packets
    from fleet.models import Device
    from mcucoder import registry
    from mcucoder.bitstream import build_packet, parse_packet

    Device.objects.bulk_create(
        [Device(device_id=f"bench-ctl-{i:04d}", site=f"site-{i % 20}") for i in range(cameras)]
    )
    devices = list(Device.objects.order_by("device_id")[:active])
    model_id = registry.default_model_id()
    rng = random.Random(7)
    items = []
    for device in devices:
        base = rng.randint(200, 900)  # bytes of channel 1; later channels are smaller
        for seq in range(frames):
            chunks = [bytes(max(8, int(base * 0.8**c))) for c in range(12)]
            packet = build_packet(
                model_id=model_id,
                width=224,
                height=224,
                seq=seq,
                capture_time_ms=1_764_000_000_000 + seq * 1000,
                chunks=chunks,
            )
            items.append((device, parse_packet(packet)))
    for i in range(0, len(items), 2000):
        store_packets(items[i : i + 2000])
    return [d.pk for d in devices]


def heartbeats(active: list[int], rng: random.Random) -> None:
    """One telemetry message per active camera: a link that wanders around 30-120 kbit/s."""
    from control.services import record_telemetry
    from fleet.models import Device

    for device in Device.objects.filter(pk__in=active):
        kbps = rng.uniform(30, 120)
        record_telemetry(
            device,
            {"throughput_kbps": kbps * 0.7, "link_kbps": kbps, "backlog": rng.randint(0, 3)},
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cameras", type=int, default=1000)
    parser.add_argument("--active", type=int, default=200)
    parser.add_argument("--cycles", type=int, default=30)
    parser.add_argument("--frames", type=int, default=20, help="archived frames per active camera")
    args = parser.parse_args(argv)

    setup_django()
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from control.services import control_round
    from fleet.services import publisher

    try:
        started = time.monotonic()
        active = populate(args.cameras, args.active, args.frames)
        print(f"provisioned {args.cameras} cameras, {len(active)} active", file=sys.stderr)
        rng = random.Random(11)
        cycle_ms: list[float] = []
        queries: list[int] = []
        decided: list[int] = []
        published: list[int] = []
        controllers: dict = {}
        with mosquitto_broker() as broker:
            publisher.use(broker)
            control_round(None, controllers, everyone=True)  # a controller's first round
            for cycle in range(args.cycles):
                heartbeats(active, rng)
                with CaptureQueriesContext(connection) as captured:
                    t0 = time.perf_counter()
                    done = control_round(None, controllers)
                    cycle_ms.append((time.perf_counter() - t0) * 1000)
                queries.append(len(captured.captured_queries))
                decided.append(done.decided)
                published.append(done.published)
                print(
                    f"cycle {cycle + 1}/{args.cycles}: {cycle_ms[-1]:.0f} ms, "
                    f"{done.decided} decided, {done.published} published",
                    file=sys.stderr,
                )
        cycle_ms.sort()
        report(
            {
                "benchmark": "control",
                "cameras": args.cameras,
                "active": len(active),
                "cycles": args.cycles,
                "cycle_ms_p50": round(statistics.median(cycle_ms), 1),
                "cycle_ms_p95": round(cycle_ms[int(0.95 * (len(cycle_ms) - 1))], 1),
                "queries_per_cycle": round(statistics.mean(queries), 1),
                "decided_per_cycle": round(statistics.mean(decided), 1),
                "published_per_cycle": round(statistics.mean(published), 1),
                "setup_s": round(time.monotonic() - started - sum(cycle_ms) / 1000, 1),
                "machine": machine(),
            }
        )
    finally:
        drop_database()
    return 0


def drop_database() -> None:
    """The run's database goes with it: no benchmark leaves cameras behind."""
    import psycopg
    from django.db import connections

    connections.close_all()
    url = BENCH_ENV["DATABASE_URL"]
    with psycopg.connect(url.rsplit("/", 1)[0] + "/postgres", autocommit=True) as conn:
        conn.execute(f'drop database if exists "{url.rsplit("/", 1)[1]}" with (force)')


if __name__ == "__main__":
    sys.exit(main())
