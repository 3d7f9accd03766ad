"""How soon the platform asks for a key frame after a camera's predicted stream breaks
(issue 18: "a lost packet costs at most the frames up to the next key frame, and the
platform asks for one within a second").

Runs ``manage.py ingest`` processes against a private Mosquitto and the bench PostgreSQL,
and streams version 2 packets (a key frame, then predicted frames, each from the frame
before) from ``--cameras`` simulated cameras at ``--fps``. A third of them lose one packet
(never published), a third have one refused (a corrupt CRC), a third stay whole. A
subscriber on every desired topic times, per camera, from the publish of the packet that
shows the break to ingest (the frame after the gap; the refused packet itself) to the
desired state with ``key_request`` raised: the platform's whole reaction, both broker hops
included. The cameras answer a new ``key_request`` with their next frame as a key frame,
as the simulator does, which gives what a break costs: the frames from the lost or refused
one up to that key frame, which cannot be decoded. With ``--no-answer`` they never answer:
the run then shows that nobody is asked twice within the request timeout
(``fleet.services.key_request_timeout``; after it, asking again is by design: the answer
may have been lost). Whole streams must never be asked.

    python -m bench.key_requests [--cameras 30] [--fps 5] [--ingest 1] [--seconds 12]
"""

from __future__ import annotations

import argparse
import heapq
import json
import os
import random
import statistics
import sys
import time
import uuid
from itertools import pairwise

from bench._harness import child, machine, mosquitto_broker, report, setup_django, wait_for_log


def _log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def _packet(seq: int, key: bool) -> bytes:
    from mcucoder import bitstream as bs
    from mcucoder import registry

    return bs.build_packet(
        model_id=registry.default_model_id(),
        width=320,
        height=240,
        seq=seq,
        capture_time_ms=int(time.time() * 1000),
        frame_type=bs.FRAME_INTRA if key else bs.FRAME_PREDICTED,
        ref=0 if key else 1,
        version=2,
        block=0 if key else 4,
        chunks=[bytes([1, 0, 0]) + bytes(40)] * 12,
    )


def _stats(values: list[float]) -> dict[str, float | int | None]:
    if not values:
        return {"n": 0, "p50_ms": None, "p95_ms": None, "max_ms": None}
    ordered = sorted(values)
    return {
        "n": len(values),
        "p50_ms": round(statistics.median(ordered) * 1000, 1),
        "p95_ms": round(ordered[int(0.95 * (len(ordered) - 1))] * 1000, 1),
        "max_ms": round(ordered[-1] * 1000, 1),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cameras", type=int, default=30)
    parser.add_argument("--fps", type=float, default=5.0)
    parser.add_argument("--ingest", type=int, default=1, help="ingest processes sharing frames")
    parser.add_argument("--seconds", type=float, default=12.0, help="length of each stream")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--answer",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="cameras answer a request with a key frame (--no-answer: never)",
    )
    args = parser.parse_args(argv)

    env = setup_django()
    import paho.mqtt.client as mqtt

    from fleet.services import key_request_timeout, provision_device
    from protocol import topics

    run = uuid.uuid4().hex[:6]
    kinds = ("lost", "refused", "whole")
    cameras = {f"bench-kr-{run}-{i}": kinds[i % 3] for i in range(args.cameras)}
    timeout_s = min(
        key_request_timeout(provision_device(device_id)).total_seconds() for device_id in cameras
    )
    rng = random.Random(args.seed)
    period = 1 / args.fps
    frames = int(args.seconds * args.fps)
    # the break falls between 2 s in and 4 s before the end, so the request has time
    breaks = {d: rng.randint(int(2 * args.fps), frames - int(4 * args.fps)) for d in cameras}

    broker_cm = mosquitto_broker()
    env["MQTT_URL"] = broker_url = broker_cm.__enter__()
    host, port = broker_url.rsplit("//", 1)[1].split(":")
    requests: dict[str, list[tuple[float, int]]] = {d: [] for d in cameras}
    shown_at: dict[str, float] = {}
    answered: dict[str, int] = dict.fromkeys(cameras, 0)  # the key_request each answered
    healed_at: dict[str, int] = {}  # the seq of the first key frame after the break
    procs = []
    try:
        for i in range(args.ingest):
            args_i = ["--client-id", f"bench-kr-{run}-{i}", "--share-group", f"bench-kr-{run}"]
            cm = child([sys.executable, "manage.py", "ingest", *args_i], env, f"kr-ingest-{i}")
            procs.append((cm, cm.__enter__()))
        for i in range(args.ingest):
            wait_for_log(f"kr-ingest-{i}", "connected to")

        def on_message(_client, _userdata, message: mqtt.MQTTMessage) -> None:
            at = time.monotonic()
            device_id = topics.parse(message.topic).device_id
            if device_id in requests and message.payload:
                key = json.loads(message.payload).get("key_request", 0)
                if key:
                    requests[device_id].append((at, key))

        watcher = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        watcher.on_message = on_message
        watcher.connect(host, int(port))
        watcher.subscribe(topics.subscription(topics.Kind.DESIRED), qos=1)
        watcher.loop_start()
        sender = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        sender.max_inflight_messages_set(1000)
        sender.connect(host, int(port))
        sender.loop_start()
        time.sleep(0.5)

        started = time.monotonic()
        phase = {d: rng.random() * period for d in cameras}
        queue = [(started + phase[d], 0, d) for d in cameras]
        heapq.heapify(queue)
        _log(f"{len(cameras)} cameras x {frames} frames at {args.fps:g} fps")
        while queue:
            due, seq, device_id = heapq.heappop(queue)
            time.sleep(max(0.0, due - time.monotonic()))
            kind, at = cameras[device_id], breaks[device_id]
            asked = max((key for _, key in requests[device_id]), default=0)
            key = seq == 0 or (args.answer and asked > answered[device_id])
            answered[device_id] = asked if key else answered[device_id]
            if key and seq > at:
                healed_at.setdefault(device_id, seq)
            payload = _packet(seq, key=key)
            topic = topics.topic(device_id, topics.Kind.FRAME)
            if kind == "lost" and seq == at:
                payload = b""  # lost on the way: never published
            elif kind == "refused" and seq == at:
                payload = payload[:-1] + bytes([payload[-1] ^ 0xFF])  # the CRC fails
            if payload:
                shows_break = (kind == "lost" and seq == at + 1) or (
                    kind == "refused" and seq == at
                )
                if shows_break:
                    shown_at[device_id] = time.monotonic()
                sender.publish(topic, payload, qos=1)
            if seq + 1 < frames:
                heapq.heappush(queue, (due + period, seq + 1, device_id))
        time.sleep(2.0)
        watcher.loop_stop()
        sender.loop_stop()
    finally:
        for cm, _ in procs:
            cm.__exit__(None, None, None)
        broker_cm.__exit__(None, None, None)

    latency = {kind: [] for kind in kinds[:2]}
    asked_twice = asked_after_timeout = 0
    for device_id, kind in cameras.items():
        if kind == "whole" or device_id not in shown_at:
            continue
        seen = requests[device_id]
        if seen:
            latency[kind].append(seen[0][0] - shown_at[device_id])
        firsts = {}  # each key_request value: when it was first seen
        for at, key in seen:
            firsts.setdefault(key, at)
        gaps = [b - a for a, b in pairwise(sorted(firsts.values()))]
        asked_twice += any(gap < timeout_s for gap in gaps)
        asked_after_timeout += any(gap >= timeout_s for gap in gaps)
    cost = [healed_at[d] - breaks[d] for d, k in cameras.items() if k != "whole" and d in healed_at]
    unanswered = sum(1 for d, k in cameras.items() if k != "whole" and not requests[d])
    spurious = sum(1 for d, k in cameras.items() if k == "whole" and requests[d])
    figures = {
        "bench": "key_requests",
        "machine": machine(),
        "load_1min": round(os.getloadavg()[0], 2),
        "cameras": args.cameras,
        "fps": args.fps,
        "ingest_processes": args.ingest,
        "cameras_answer": args.answer,
        # frames from the lost or refused one to the key frame that answered, undecodable
        "frames_lost_per_break": {
            "n": len(cost),
            "p50": statistics.median(cost) if cost else None,
            "max": max(cost, default=None),
        },
        "lost": _stats(latency["lost"]),
        "refused": _stats(latency["refused"]),
        "broken_not_asked": unanswered,
        "asked_twice_within_timeout": asked_twice,
        "asked_again_after_timeout": asked_after_timeout,
        "request_timeout_s": timeout_s,
        "whole_streams_asked": spurious,
    }
    _log(json.dumps(figures, indent=1))
    report(figures)


if __name__ == "__main__":
    main()
