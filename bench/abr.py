"""Tier policies compared on the repository's bandwidth traces, with the real device code,
link emulator, broker, ingest and controller.

    python -m bench.abr [--traces nbiot 3g] [--policies fixed-12 ... robust robust+guard]
                        [--devices 3] [--duration 60] [--cap KBPS] [--plot docs/img/abr.png]
                        [--runs N] [--idle-cameras M]

For each trace and policy: simulated cameras stream through emulated uplinks (each camera
sees the trace from another offset), ingest archives what arrives, and the controller
runs the policy every 2 s. Reported per run: mean delivered MS-SSIM (the codec's measured
MS-SSIM at the k each archived frame carries, 224×224 dev set), share of frames late
(> 1 s from capture to archive) or dropped, over all frame slots and over the slots whose
link had any capacity (an outage slot cannot be on time), tier switches per minute, cap
violations (any 2 s window of a camera's real packet bytes over the cap), and robustMPC's QoE =
quality per slot − late_or_dropped − mean |quality change| between a camera's frames. The oracle knows each camera's future
bandwidth: every frame gets the highest k (of its scene's real sizes) whose bytes the link
carries in the frame's own share of time, 1/fps from capture (and that fits the cap).
A ``+guard`` variant also sets the cameras' 1 s live deadline (``docs/control.md``).

The oracle is no policy's target: it knows the future. Beside it, the *causal reference*
(``causal_reference``) says what a camera could do that knows the link exactly up to the
frame's capture and nothing after: the true rate at capture and its own true send queue
(bytes ahead of the frame, draining at the trace's rate, first in first out as TCP), and
picks the highest k that would arrive within the deadline if that rate held, times a
``safety`` factor for more than one channel; each safety in ``CAUSAL_SAFETY`` is reported, a trade-off of quality
against lateness that any causal rule of this kind faces. Like the oracle it has no fixed
latency (broker, ingest). ``late_or_dropped_servable`` counts only the slots whose link was
up at the capture instant (and carried a channel in the slot): a frame captured in an
outage that ends within the second is counted by ``late_or_dropped_covered`` but no causal
camera can know that the link will be back.

``--runs N`` repeats each (trace, policy) N times, run i seeing the trace from i × 97 s later
and other scenes (camera seeds), and adds the mean and spread (sample standard deviation,
min, max) of every figure to the JSON. ``--idle-cameras M`` provisions M more cameras that
never send, as most of a real fleet: the controller must not care. Every run uses a
database of its own (a copy of a migrated template), dropped after the run: no run leaves
cameras behind.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import statistics
import sys
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

TEMPLATE_DB = f"strata_bench_abr_{os.getpid()}"
os.environ.setdefault("BENCH_DATABASE_URL", f"postgres://postgres@127.0.0.1:5432/{TEMPLATE_DB}")

from bench._harness import BENCH_ENV, machine, mosquitto_broker, report, setup_django  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SETTINGS = {  # per trace: frame size and rate such that all 12 channels need ~1.5x the mean;
    # heartbeats (~750 B of JSON) every 10 s on NB-IoT (the device default: every 2 s would
    # take a fifth of the link), every 2 s elsewhere
    "nbiot": {"size": (224, 224), "fps": 1.0, "heartbeat_s": 10.0},
    "3g": {"size": (320, 240), "fps": 8.0, "heartbeat_s": 2.0},
    "lte": {"size": (320, 240), "fps": 8.0, "heartbeat_s": 2.0},
}


def quality_table() -> dict[int, float]:
    report_path = ROOT / "mcucoder" / "weights" / "reports" / "dev-224.json"
    curve = json.loads(report_path.read_text())["curves"]["mcucoder-int8"]
    return {row["k"]: row["ms_ssim"] for row in curve}


GUARD_DEADLINE_MS = 1000  # "+guard" runs: the camera's live deadline (= the lateness bound)
DEADLINE_S = 1.0  # a frame archived later than this after capture is late
CAP_WINDOW_S = 2.0  # devices.camera.CAP_WINDOW_S: the cap holds over every such window
RUN_SHIFT_S = 97.0  # run i sees the trace from i * RUN_SHIFT_S later (the traces loop)
CAUSAL_SAFETY = (1.0, 0.8, 0.6, 0.4)  # causal reference: share of the rate at capture planned on


def _admin_sql(*statements: str) -> None:
    import psycopg

    url = BENCH_ENV["DATABASE_URL"].rsplit("/", 1)[0] + "/postgres"
    with psycopg.connect(url, autocommit=True) as conn:
        for statement in statements:
            conn.execute(statement)


@contextmanager
def own_database(name: str) -> Iterator[None]:
    """Point Django at a fresh copy of the migrated template for one run; drop it after.
    (The settings dict is shared by every thread's connection: ingest and the controller
    connect to the run's database too.)"""
    from django.db import connections

    connections.close_all()
    _admin_sql(f'create database "{name}" template "{TEMPLATE_DB}"')
    settings = connections["default"].settings_dict
    settings["NAME"] = name
    try:
        yield
    finally:
        connections.close_all()
        settings["NAME"] = TEMPLATE_DB
        _admin_sql(f'drop database if exists "{name}" with (force)')


def shifted(trace, offset_s: float):
    """The trace seen from ``offset_s`` later (it loops): a run of its own."""
    from devices.traces import Trace

    offset = offset_s % trace.period_s
    starts = sorted({0.0, *((t - offset) % trace.period_s for t in trace.times)})
    return Trace(
        f"{trace.name}+{offset:g}s",
        tuple(starts),
        tuple(trace(t + offset) for t in starts),
        trace.period_s,
    )


def scene_sizes(camera, frames: int = 4) -> dict[int, float]:
    """The camera's packet bytes at every k for its scene (the oracle's knowledge: the
    archive only holds the channels that were sent)."""
    from mcucoder.bitstream import packet_size, parse_packet

    chunks = [
        [len(c) for c in parse_packet(camera.encoder.encode(camera.source.next_frame())).chunks]
        for _ in range(frames)
    ]
    return {k: sum(packet_size(c[:k]) for c in chunks) / frames for k in range(1, 13)}


def carried_kbit(trace_fn, start_s: float, seconds: float, steps: int = 20) -> float:
    """kbit the trace carries from ``start_s`` for ``seconds``."""
    dt = seconds / steps
    return sum(trace_fn(start_s + (i + 0.5) * dt) for i in range(steps)) * dt


def causal_reference(
    trace_fn: Callable[[float], float],
    times: Sequence[float],
    sizes: dict[int, float],
    deadline_s: float,
    *,
    safety: float = 1.0,
    max_bytes: float = math.inf,
    step_s: float = 0.01,
) -> list[tuple[int, float | None]]:
    """What a camera that knows its link exactly up to now could send: for each slot
    (``times``: its capture instants in the trace, increasing) the highest k of ``sizes``
    (bytes at k, at most ``max_bytes``, the cap's share) that would be acknowledged within
    ``deadline_s`` if ``safety`` × the rate at capture held (one channel: the whole rate,
    as the camera's guard lets one channel use the whole deadline), behind the bytes queued
    (true, from the past rates; a late frame stays queued, as on TCP). Nothing when the link
    is down at capture or no k fits. Returns (k or 0, seconds from capture to arrival or
    None) per slot; the arrivals use the true rates (a fluid queue, ``step_s`` steps)."""
    queue: deque[list] = deque()  # [slot, kbit left]
    out: list[tuple[int, float | None]] = [(0, None)] * len(times)
    clock = times[0] if times else 0.0

    def advance(to: float) -> None:
        nonlocal clock
        while queue and clock < to:
            dt = min(step_s, to - clock)
            capacity = trace_fn(clock + dt / 2) * dt  # kbit this step carries
            used = 0.0
            while queue and capacity - used > 1e-12:
                head = queue[0]
                take = min(head[1], capacity - used)
                head[1] -= take
                used += take
                if head[1] <= 1e-9:
                    done = clock + dt * used / capacity
                    out[head[0]] = (out[head[0]][0], done - times[head[0]])
                    queue.popleft()
            clock += dt
        clock = max(clock, to)

    for slot, at in enumerate(times):
        advance(at)
        rate = trace_fn(at)
        ahead = sum(kbit for _, kbit in queue)
        fitting = [  # one channel plans on the whole rate, more channels on ``safety`` of it
            k
            for k, size in sizes.items()
            if size <= max_bytes
            and rate > 0
            and (ahead + size * 8 / 1000) / (rate * (safety if k > 1 else 1.0)) <= deadline_s
        ]
        if fitting:
            k = max(fitting)
            out[slot] = (k, None)
            queue.append([slot, sizes[k] * 8 / 1000])
    if times:
        advance(times[-1] + 60.0)  # what is still queued arrives (late), or never
    return out


def run(
    trace: str,
    variant: str,
    devices: int,
    duration: float,
    cap_kbps: float | None,
    slots_out: list[dict] | None = None,
    run_index: int = 0,
    idle: int = 0,
) -> dict:
    """One run. ``variant`` is a policy name, with ``+guard`` for cameras that have the live
    deadline set (they trim or skip frames that their own PUBACK timing says would be late).
    ``run_index``: the run's trace offset and scene seeds; ``idle``: cameras that never send."""
    name = f"{TEMPLATE_DB}_{uuid.uuid4().hex[:6]}"
    with own_database(name):
        return _run(trace, variant, devices, duration, cap_kbps, slots_out, run_index, idle)


def _run(
    trace: str,
    variant: str,
    devices: int,
    duration: float,
    cap_kbps: float | None,
    slots_out: list[dict] | None,
    run_index: int,
    idle: int,
) -> dict:
    from archive.models import Layer
    from control.services import run_controller
    from devices import traces
    from devices.fleet import Fleet, device_ids
    from devices.scenes import make_source
    from fleet.models import Device
    from fleet.services import provision_device, publisher
    from ingest.consumer import IngestConsumer
    from mcucoder.bitstream import packet_size
    from protocol.broker import BrokerURL

    policy, _, guard = variant.partition("+")
    setting = SETTINGS[trace]
    fps = setting["fps"]
    run_id = uuid.uuid4().hex[:5]
    ids = device_ids(devices, f"abr{run_id}")
    for device_id in ids:
        provision_device(device_id)
    Device.objects.filter(device_id__in=ids).update(
        fps=fps, max_kbps=cap_kbps, deadline_ms=GUARD_DEADLINE_MS if guard else None
    )
    Device.objects.bulk_create(  # provisioned, never heard from
        [Device(device_id=f"idle{run_id}-{i:04d}", site=f"idle-{i % 20}") for i in range(idle)]
    )
    trace_fn = shifted(traces.parse(trace), run_index * RUN_SHIFT_S)
    with mosquitto_broker() as broker:
        publisher.use(broker, mqtt5=True)
        consumer = IngestConsumer(
            BrokerURL.parse(broker),
            client_id=f"abr-{run_id}",
            share_group=f"abr-{run_id}",
            session_expiry_s=60,
        )
        consumer.start()
        consumer.connected.wait(10)
        stop = threading.Event()
        control = threading.Thread(target=run_controller, args=(policy, 2.0, stop), daemon=True)
        control.start()
        fleet = Fleet(
            ids,
            broker,
            fps=fps,
            deadline_ms=GUARD_DEADLINE_MS if guard else None,  # as stored on the device
            max_kbps=cap_kbps,
            size=setting["size"],
            trace=trace_fn,
            heartbeat_s=setting["heartbeat_s"],
            session_expiry_s=60,
        )
        for i, camera in enumerate(fleet.cameras):  # the run's own scenes (camera seeds)
            camera.source = make_source("synthetic", setting["size"], index=i + run_index * devices)
        fleet.start()
        time.sleep(duration)
        summary = fleet.summary()
        captured = {c.device_id: c.seq for c in fleet.cameras}
        links = {c.device_id: c.local_address for c in fleet.cameras}
        stop.set()
        control.join(10)
        fleet.stop()
        # after the stop: a camera's source (a video clip) is read by its own thread till then
        scene = {c.device_id: scene_sizes(c) for c in fleet.cameras}
        time.sleep(2)  # let ingest commit what is in flight
        consumer.stop()
    link = fleet.link
    wall_to_mono = time.monotonic() - time.time()

    quality = quality_table()
    rows = Layer.objects.filter(frame__device__device_id__in=ids).values_list(
        "frame__device__device_id",
        "frame__seq",
        "frame__capture_time_ms",
        "frame__received_at",
        "index",
        "data",
    )
    frames: dict[tuple[str, int], dict] = {}
    for device_id, seq, c_ms, received, index, data in rows:
        f = frames.setdefault((device_id, seq), {"c": c_ms / 1000, "r": received, "chunks": {}})
        f["chunks"][index] = len(data)

    slots = []  # one per captured frame: delivered (k, late) or dropped, and the link then
    for device_id in ids:
        mine = sorted((seq, f) for (d, seq), f in frames.items() if d == device_id)
        if not mine:
            continue
        seq0, c0 = mine[0][0], mine[0][1]["c"]
        sizes = scene[device_id]
        for seq in range(seq0, captured[device_id]):
            f = frames.get((device_id, seq))
            c = f["c"] if f else c0 + (seq - seq0) / fps
            t = link.trace_time(links[device_id], c + wall_to_mono)
            # kbit this frame may use: what the link carries in its share of time
            budget = carried_kbit(trace_fn, t, 1 / fps) if t is not None else None
            if budget is not None and cap_kbps:
                budget = min(budget, cap_kbps / fps)
            fitting = [k for k, b in sizes.items() if budget and b * 8 / 1000 <= budget]
            slot = {
                "device": device_id,
                "c": c,
                "trace_s": t,
                "link_kbps": trace_fn(t) if t is not None else None,
                "oracle": quality[max(fitting)] if fitting else 0,
            }
            if f:
                k = len(f["chunks"])
                sent = packet_size([f["chunks"][i] for i in range(k)])
                delay = f["r"].timestamp() - c
                slot |= {"k": k, "bytes": sent, "delay_s": delay, "late": delay > DEADLINE_S}
            slots.append(slot)

    causal = causal_figures(slots, scene, trace_fn, quality, fps, cap_kbps)
    if slots_out is not None:
        slots_out.extend({"trace": trace, "policy": variant, **s} for s in slots)
    delivered = [s for s in slots if "k" in s]
    missed = [s for s in slots if "k" not in s or s["late"]]
    covered = [s for s in slots if s["oracle"] > 0]  # the link could carry something then
    covered_missed = [s for s in covered if "k" not in s or s["late"]]
    servable = [s for s in covered if s["link_kbps"]]  # and was up when the frame was taken
    servable_missed = [s for s in servable if "k" not in s or s["late"]]
    on_time_q = sum(quality[s["k"]] for s in delivered if not s["late"]) / max(1, len(slots))
    oracle_q = sum(s["oracle"] for s in slots) / max(1, len(slots))
    switches = sum(
        1
        for a, b in zip(delivered, delivered[1:], strict=False)
        if a["device"] == b["device"] and a["k"] != b["k"]
    )
    minutes = duration / 60 * devices
    violations = 0
    if cap_kbps:  # every window of CAP_WINDOW_S capture time, starting at each frame
        for device_id in ids:
            mine = [s for s in delivered if s["device"] == device_id]
            for s in mine:
                kbit = sum(o["bytes"] for o in mine if s["c"] <= o["c"] < s["c"] + CAP_WINDOW_S)
                violations += kbit * 8 / 1000 > cap_kbps * CAP_WINDOW_S
    late_or_dropped = len(missed) / max(1, len(slots))
    # robustMPC's smoothness term: the mean quality change between a camera's frames
    changes = [
        abs(quality[a["k"]] - quality[b["k"]])
        for a, b in zip(delivered, delivered[1:], strict=False)
        if a["device"] == b["device"]
    ]
    smoothness = sum(changes) / max(1, len(changes))
    per_min = switches / max(1e-9, minutes)
    return {
        "trace": trace,
        "policy": variant,
        "run": run_index,
        "idle_cameras": idle,
        "frames": len(slots),
        "mean_ms_ssim": round(sum(quality[s["k"]] for s in delivered) / max(1, len(delivered)), 4),
        "quality_per_slot": round(on_time_q, 4),
        "oracle_ms_ssim": round(oracle_q, 4),
        "of_oracle": round(on_time_q / oracle_q, 4) if oracle_q else None,
        "late_or_dropped": round(late_or_dropped, 4),
        "late_or_dropped_covered": round(len(covered_missed) / max(1, len(covered)), 4),
        "late_or_dropped_servable": round(len(servable_missed) / max(1, len(servable)), 4),
        "outage_slots": len(slots) - len(covered),
        "unservable_covered_slots": len(covered) - len(servable),
        "dropped_on_device": summary.get("frames_dropped", 0),
        "dropped_backlog": summary.get("dropped_backlog", 0),
        "dropped_deadline": summary.get("dropped_deadline", 0),
        "trimmed_on_device": summary.get("frames_trimmed", 0),
        "switches_per_min": round(per_min, 2),
        "cap_violations": violations,
        "qoe": round(on_time_q - late_or_dropped - smoothness, 4),
        "mean_tier": round(sum(s["k"] for s in delivered) / max(1, len(delivered)), 2),
        **causal,
        **{
            name.replace("_quality_per_slot", "").replace("causal", "of_causal"): (
                round(on_time_q / q, 4) if q else None
            )
            for name, q in causal.items()
            if name.endswith("_quality_per_slot")
        },
    }


def causal_figures(
    slots: list[dict],
    scene: dict[str, dict[int, float]],
    trace_fn: Callable[[float], float],
    quality: dict[int, float],
    fps: float,
    cap_kbps: float | None,
) -> dict[str, float]:
    """The causal reference (``causal_reference``) on the run's own slots, cameras and
    scenes, at each of ``CAUSAL_SAFETY``: its quality per slot and its late-or-dropped
    shares, over the covered and the servable slots (as the policy's). Each slot gets
    ``causal`` = {safety: k sent on time, or 0}."""
    cap_bytes = cap_kbps * 1000 / 8 / fps if cap_kbps else math.inf
    for slot in slots:
        slot["causal"] = {}
    for device in dict.fromkeys(s["device"] for s in slots):
        mine = [s for s in slots if s["device"] == device and s["trace_s"] is not None]
        for safety in CAUSAL_SAFETY:
            picks = causal_reference(
                trace_fn,
                [s["trace_s"] for s in mine],
                scene[device],
                DEADLINE_S,
                safety=safety,
                max_bytes=cap_bytes,
            )
            for s, (k, delay) in zip(mine, picks, strict=True):
                s["causal"][safety] = k if delay is not None and delay <= DEADLINE_S else 0
    out: dict[str, float] = {}
    covered = [s for s in slots if s["oracle"] > 0]
    servable = [s for s in covered if s["link_kbps"]]
    for safety in CAUSAL_SAFETY:
        name = f"causal{round(safety * 100)}"
        got = [s["causal"].get(safety, 0) for s in slots]
        out[f"{name}_quality_per_slot"] = round(
            sum(quality[k] for k in got if k) / max(1, len(slots)), 4
        )
        for label, group in (("covered", covered), ("servable", servable)):
            missed = sum(1 for s in group if not s["causal"].get(safety))
            out[f"{name}_late_or_dropped_{label}"] = round(missed / max(1, len(group)), 4)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--traces", nargs="+", default=["nbiot", "3g"])
    parser.add_argument(
        "--policies",
        nargs="+",
        default=[
            "fixed-12",
            "fixed-6",
            "throughput",
            "buffer",
            "robust",
            "robust+guard",
            "fixed-12+guard",
        ],
        help="policy names; '+guard' also sets the cameras' 1 s live deadline",
    )
    parser.add_argument("--devices", type=int, default=3)
    parser.add_argument("--duration", type=float, default=60)
    parser.add_argument(
        "--cap", type=float, default=None, help="bitrate cap for every camera, kbit/s"
    )
    parser.add_argument("--runs", type=int, default=1, help="runs per trace and policy")
    parser.add_argument(
        "--idle-cameras", type=int, default=0, help="provisioned cameras that never send"
    )
    parser.add_argument("--plot", type=Path, help="write a bar chart of the results here")
    parser.add_argument("--slots", type=Path, help="write every frame slot here (JSON lines)")
    args = parser.parse_args()

    results, slots = [], []
    try:
        setup_django()  # creates the template database: dropped below even if this fails
        import torch

        torch.set_num_threads(1)
        for trace in args.traces:
            for policy in args.policies:
                for index in range(args.runs):
                    figures = run(
                        trace,
                        policy,
                        args.devices,
                        args.duration,
                        args.cap,
                        slots,
                        run_index=index,
                        idle=args.idle_cameras,
                    )
                    print(json.dumps(figures), file=sys.stderr, flush=True)
                    results.append(figures)
    finally:
        from django.db import connections

        with contextlib.suppress(Exception):  # Django may not have been set up
            connections.close_all()
        _admin_sql(f'drop database if exists "{TEMPLATE_DB}" with (force)')
    summary = summarise(results)
    if args.plot:
        plot(summary, args.plot)
    if args.slots:
        args.slots.write_text("".join(json.dumps(s, default=str) + "\n" for s in slots))
    report(
        {
            "benchmark": "abr",
            "machine": machine(),
            "devices": args.devices,
            "duration_s": args.duration,
            "cap_kbps": args.cap,
            "runs_per_policy": args.runs,
            "idle_cameras": args.idle_cameras,
            "summary": summary,
            "runs": results,
        }
    )


def summarise(results: list[dict]) -> list[dict]:
    """Per trace and policy: the mean of every figure over the runs, and its spread
    (``sd``: sample standard deviation, 0 for one run; ``min``, ``max``)."""
    out = []
    for key in dict.fromkeys((r["trace"], r["policy"]) for r in results):
        rows = [r for r in results if (r["trace"], r["policy"]) == key]
        row: dict = {"trace": key[0], "policy": key[1], "runs": len(rows)}
        for name, value in rows[0].items():
            if name in ("trace", "policy", "run") or not isinstance(value, int | float):
                continue
            values = [r[name] for r in rows if r[name] is not None]
            if not values:
                continue
            row[name] = round(statistics.mean(values), 4)
            row[f"{name}_sd"] = round(statistics.stdev(values), 4) if len(values) > 1 else 0.0
            row[f"{name}_min"], row[f"{name}_max"] = min(values), max(values)
        out.append(row)
    return out


def plot(results: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    traces = sorted({r["trace"] for r in results})
    fig, axes = plt.subplots(1, len(traces), figsize=(7 * len(traces), 4.5), squeeze=False)
    for ax, trace in zip(axes[0], traces, strict=True):
        rows = [r for r in results if r["trace"] == trace]
        names = [r["policy"] for r in rows]
        ax.bar(
            names,
            [r["quality_per_slot"] for r in rows],
            label="MS-SSIM per frame slot (late/dropped = 0)",
        )
        ax.plot(names, [r["oracle_ms_ssim"] for r in rows], "k_", markersize=30, label="oracle")
        for i, r in enumerate(rows):
            ax.text(
                i,
                0.02,
                f"{r['late_or_dropped_covered']:.1%}\nlate\n{r['switches_per_min']:.0f}\nsw/min",
                ha="center",
                fontsize=8,
                color="white",
            )
        ax.set_title(
            f"{trace}: MS-SSIM per frame slot (late or dropped = 0);\n"
            "in bars: late or dropped while the link had capacity, switches per minute",
            fontsize=9,
        )
        ax.set_ylim(0, 1.1)
        ax.tick_params(axis="x", rotation=30)
    axes[0][0].legend(loc="upper left", fontsize=8, ncols=2)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    main()
