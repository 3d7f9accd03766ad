"""Tier policies compared on the repository's bandwidth traces, with the real device code,
link emulator, broker, ingest and controller.

    python bench/abr.py [--traces nbiot 3g] [--policies fixed-12 fixed-6 throughput buffer robust]
                        [--devices 3] [--duration 60] [--plot BENCHMARKS-abr.png]

For each trace and policy: simulated cameras stream through emulated uplinks (each camera
sees the trace from another offset), ingest archives what arrives, and the controller
runs the policy every 2 s. Reported per run: mean delivered MS-SSIM (the codec's measured
MS-SSIM at the k each archived frame carries, 224×224 dev set), share of frames late
(> 1 s from capture to archive) or dropped, tier switches per minute, cap violations, and
QoE = quality − 1·late_or_dropped − 0.01·switches/min. The oracle knows each camera's future
bandwidth: at every frame it takes the highest k whose bytes fit the second's capacity.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._harness import machine, mosquitto_broker, report, setup_django

ROOT = Path(__file__).resolve().parents[1]
SETTINGS = {  # per trace: frame size and rate such that all 12 channels need ~1.5x the mean
    "nbiot": {"size": (224, 224), "fps": 1.0},
    "3g": {"size": (320, 240), "fps": 8.0},
    "lte": {"size": (320, 240), "fps": 8.0},
}
STAGGER_S = 37.0  # devices.fleet gives camera i the trace from i * 37 s


def quality_table() -> dict[int, float]:
    report_path = ROOT / "mcucoder" / "weights" / "reports" / "dev-224.json"
    curve = json.loads(report_path.read_text())["curves"]["mcucoder-int8"]
    return {row["k"]: row["ms_ssim"] for row in curve}


def run(trace: str, policy: str, devices: int, duration: float, cap_kbps: float | None) -> dict:
    from archive.models import Frame
    from control.services import bytes_per_frame, run_controller
    from devices import traces
    from devices.fleet import Fleet, device_ids
    from devices.mqtt_url import BrokerURL
    from fleet.models import Device
    from fleet.services import provision_device, publisher
    from ingest.consumer import IngestConsumer

    setting = SETTINGS[trace]
    run_id = uuid.uuid4().hex[:5]
    ids = device_ids(devices, f"abr{run_id}")
    for device_id in ids:
        provision_device(device_id)
    Device.objects.filter(device_id__in=ids).update(fps=setting["fps"], max_kbps=cap_kbps)
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
            fps=setting["fps"],
            size=setting["size"],
            trace=trace,
            heartbeat_s=2.0,
            session_expiry_s=60,
        ).start()
        started_ms = time.time() * 1000
        time.sleep(duration)
        summary = fleet.summary()
        stop.set()
        control.join(10)
        fleet.stop()
        time.sleep(2)  # let ingest commit what is in flight
        consumer.stop()

    quality = quality_table()
    frames = list(
        Frame.objects.filter(device__device_id__in=ids)
        .order_by("device_id", "seq")
        .values_list("device__device_id", "capture_time_ms", "received_at", "n_layers")
    )
    late = sum(1 for _, c, r, _ in frames if r.timestamp() * 1000 - c > 1000)
    sent = summary["frames_sent"] if "frames_sent" in summary else len(frames)
    dropped = summary.get("frames_dropped", 0) + max(0, sent - len(frames))
    total = len(frames) + summary.get("frames_dropped", 0) + max(0, sent - len(frames))
    switches = sum(
        1 for a, b in zip(frames, frames[1:], strict=False) if a[0] == b[0] and a[3] != b[3]
    )
    minutes = duration / 60 * devices
    by_device: dict[str, list] = {}
    for d, c, _, k in frames:
        by_device.setdefault(d, []).append((c, k))
    violations = 0
    if cap_kbps:
        sizes = {d: bytes_per_frame(Device.objects.get(device_id=d)) for d in by_device}
        for d, rows in by_device.items():
            per_second: dict[int, float] = {}
            for c, k in rows:
                per_second[c // 1000] = per_second.get(c // 1000, 0) + sizes[d].get(k, 0) * 8 / 1000
            violations += sum(1 for kbit in per_second.values() if kbit > cap_kbps * 1.05)

    # The oracle: each frame slot at the highest k that the second's capacity carries.
    trace_fn = traces.parse(trace)
    oracle_q, oracle_slots = 0.0, 0
    for i, d in enumerate(ids):
        sizes = bytes_per_frame(Device.objects.get(device_id=d))
        if not sizes:
            continue
        slots = int(duration * setting["fps"])
        for n in range(slots):
            t = i * STAGGER_S + n / setting["fps"]
            budget = trace_fn(t) / setting["fps"]  # kbit this frame may use
            if cap_kbps:
                budget = min(budget, cap_kbps / setting["fps"])
            fitting = [k for k, b in sizes.items() if b * 8 / 1000 <= budget]
            oracle_q += quality[max(fitting)] if fitting else 0.0
            oracle_slots += 1
    delivered = [quality.get(k, 0.0) for _, _, _, k in frames]
    on_time = [quality.get(k, 0.0) for _, c, r, k in frames if r.timestamp() * 1000 - c <= 1000]
    on_time_q = sum(on_time) / max(1, total)  # late or dropped frames count as 0
    late_or_dropped = (late + dropped) / max(1, total)
    return {
        "trace": trace,
        "policy": policy,
        "frames": total,
        "mean_ms_ssim": round(sum(delivered) / max(1, len(delivered)), 4),
        "quality_per_slot": round(on_time_q, 4),
        "late_or_dropped": round(late_or_dropped, 4),
        "switches_per_min": round(switches / max(1e-9, minutes), 2),
        "cap_violations": violations,
        "qoe": round(on_time_q - late_or_dropped - 0.01 * switches / max(1e-9, minutes), 4),
        "oracle_ms_ssim": round(oracle_q / max(1, oracle_slots), 4),
        "mean_tier": round(sum(k for *_, k in frames) / max(1, len(frames)), 2),
        "started_ms": int(started_ms),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--traces", nargs="+", default=["nbiot", "3g"])
    parser.add_argument(
        "--policies", nargs="+", default=["fixed-12", "fixed-6", "throughput", "buffer", "robust"]
    )
    parser.add_argument("--devices", type=int, default=3)
    parser.add_argument("--duration", type=float, default=60)
    parser.add_argument(
        "--cap", type=float, default=None, help="bitrate cap for every camera, kbit/s"
    )
    parser.add_argument("--plot", type=Path, help="write a bar chart of the results here")
    args = parser.parse_args()

    setup_django()
    import torch

    torch.set_num_threads(1)
    results = []
    for trace in args.traces:
        for policy in args.policies:
            figures = run(trace, policy, args.devices, args.duration, args.cap)
            print(json.dumps(figures), file=sys.stderr, flush=True)
            results.append(figures)
    if args.plot:
        plot(results, args.plot)
    report(
        {
            "benchmark": "abr",
            "machine": machine(),
            "devices": args.devices,
            "duration_s": args.duration,
            "cap_kbps": args.cap,
            "runs": results,
        }
    )


def plot(results: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    traces = sorted({r["trace"] for r in results})
    fig, axes = plt.subplots(1, len(traces), figsize=(5 * len(traces), 4), squeeze=False)
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
                f"{r['late_or_dropped']:.0%} late/drop\n{r['switches_per_min']:.1f} sw/min",
                ha="center",
                fontsize=8,
                color="white",
            )
        ax.set_title(f"trace {trace}")
        ax.set_ylim(0, 1)
        ax.tick_params(axis="x", rotation=30)
    axes[0][0].legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    main()
