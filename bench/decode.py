"""Decode throughput against batch size and decoder runtime: entropy decoding plus one
decoder pass per batch, frames/s at each size, on CPU and on a GPU when there is one.

    python -m bench.decode [--batches 1 4 16] [--seconds 5] [--decoder CKPT]
    python -m bench.decode --threads 1 --runtimes torch onnxruntime openvino \
        --sizes 224x224 320x240 640x480 --batches 1 8     # frames/s per core, per runtime

``--decoder``: a ``python -m mcucoder train-decoder`` checkpoint, measured in its base
model's codec (a candidate decoder before it is released). ``--runtimes``: the decoder run
by each of ``mcucoder.runtime.RUNTIMES`` (checked against torch first); on CUDA only the
torch runtimes are measured. Figures are from the median batch time (the machine is shared).
The CPU runtimes are not platform dependencies; to measure them, first
``.venv/bin/pip install onnxruntime==1.30.0 onnx==1.23.1 openvino==2026.4.1``
(the versions in BENCHMARKS.md).
"""

from __future__ import annotations

import argparse
import copy
import sys
import time
from pathlib import Path

import numpy as np
import torch

from bench._harness import machine, report
from mcucoder.codec import Codec
from mcucoder.runtime import RUNTIMES, with_runtime


def test_image(width: int, height: int) -> np.ndarray:
    """A photo-like frame: matplotlib's bundled photograph, resized (no noise images)."""
    import matplotlib
    from PIL import Image

    path = Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"
    return np.asarray(Image.open(path).convert("RGB").resize((width, height)))


def measure(
    codecs: dict[str, Codec], packets: list[bytes], batch: int, seconds: float
) -> dict[str, dict]:
    """Decode batches with each codec in turn (interleaved, so that the load of a shared
    machine falls on all alike) for about ``seconds`` each; frames/s from the median batch,
    and the entropy decoding's share."""
    work = (packets * (batch // len(packets) + 1))[:batch]
    for codec in codecs.values():
        codec.decode_batch(work)  # warm-up
    first = next(iter(codecs.values()))
    entropy: list[float] = []
    times: dict[str, list[float]] = {name: [] for name in codecs}
    started = time.perf_counter()
    while time.perf_counter() - started < seconds * len(codecs) or len(entropy) < 3:
        t = time.perf_counter()
        for p in work:
            first.dequantise(p)
        entropy.append(time.perf_counter() - t)
        for name, codec in codecs.items():
            t = time.perf_counter()
            codec.decode_batch(work)
            if codec.device.type == "cuda":
                torch.cuda.synchronize()
            times[name].append(time.perf_counter() - t)
    entropy_ms = round(1000 * float(np.median(entropy)) / batch, 2)
    out = {}
    for name, batches in times.items():
        per_frame = float(np.median(batches)) / batch
        out[name] = {
            "frames_per_s": round(1 / per_frame, 1),
            "ms_per_frame": round(1000 * per_frame, 2),
            "entropy_ms_per_frame": entropy_ms,
            "batches": len(batches),
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--sizes", nargs="+", default=["224x224", "768x512"])
    parser.add_argument("--decoder", help="a train-decoder checkpoint (candidate decoder)")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
    parser.add_argument("--runtimes", nargs="+", default=["torch"], choices=RUNTIMES)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)

    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    results = {}
    for device in devices:
        codec = Codec.load(device=device, encoder="float")
        if args.decoder:
            from mcucoder.train_decoder import candidate_codec

            codec = candidate_codec(args.decoder, encoder="float")
            codec.decoder.to(device)
            codec.device = torch.device(device)
        runtimes: dict[str, Codec] = {}
        setup_s: dict[str, float] = {}
        for name in args.runtimes:
            if device == "cuda" and name in ("onnxruntime", "openvino"):
                continue  # CPU runtimes
            started = time.perf_counter()
            runtimes[name] = with_runtime(copy.copy(codec), name, args.threads or None)
            setup_s[name] = round(time.perf_counter() - started, 1)
            print(f"{device}/{name}: ready in {setup_s[name]} s", file=sys.stderr, flush=True)
        for size in args.sizes:
            w, h = (int(v) for v in size.split("x"))
            packets = [codec.encode(test_image(w, h), channels=12, seq=i) for i in range(4)]
            for batch in args.batches:
                for name, figures in measure(runtimes, packets, batch, args.seconds).items():
                    key = f"{device}/{name}/{size}/batch{batch}"
                    if args.runtimes == ["torch"]:
                        key = f"{device}/{size}/batch{batch}"  # the keys before runtimes
                    results[key] = {**figures, "setup_s": setup_s[name]}
                    print(f"{key}: {results[key]}", file=sys.stderr, flush=True)
    report(
        {
            "benchmark": "decode",
            "machine": machine(),
            "torch_threads": torch.get_num_threads(),
            "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
            "decoder": args.decoder or "registered",
            "frames_per_s": {k: v["frames_per_s"] for k, v in results.items()},
            "detail": results,
        }
    )


if __name__ == "__main__":
    main()
