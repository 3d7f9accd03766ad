"""Decode throughput against batch size: entropy decoding plus one decoder pass per batch,
frames/s at 224×224 and 768×512, on CPU and on a GPU when there is one.

    python -m bench.decode [--batches 1 4 16] [--seconds 5] [--decoder CKPT]

``--decoder``: a ``python -m mcucoder train-decoder`` checkpoint, measured in its base
model's codec (a candidate decoder before it is released).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

from bench._harness import machine, report
from mcucoder.codec import Codec


def test_image(width: int, height: int) -> np.ndarray:
    """A photo-like frame: matplotlib's bundled photograph, resized (no noise images)."""
    import matplotlib
    from PIL import Image

    path = Path(matplotlib.get_data_path()) / "sample_data" / "grace_hopper.jpg"
    return np.asarray(Image.open(path).convert("RGB").resize((width, height)))


def measure(codec: Codec, packets: list[bytes], batch: int, seconds: float) -> dict:
    """Decode batches for ``seconds`` and report frames/s, split into entropy and network."""
    work = (packets * (batch // len(packets) + 1))[:batch]
    codec.decode_batch(work)  # warm-up
    frames, started = 0, time.perf_counter()
    entropy_s = 0.0
    while time.perf_counter() - started < seconds:
        t = time.perf_counter()
        for p in work:
            codec.dequantise(p)
        entropy_s += time.perf_counter() - t
        codec.decode_batch(work)
        if codec.device.type == "cuda":
            torch.cuda.synchronize()
        frames += batch
    total = time.perf_counter() - started - entropy_s  # dequantise ran twice per batch
    return {
        "frames_per_s": round(frames / total, 1),
        "ms_per_frame": round(1000 * total / frames, 2),
        "entropy_ms_per_frame": round(1000 * entropy_s / frames, 2),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--sizes", nargs="+", default=["224x224", "768x512"])
    parser.add_argument("--decoder", help="a train-decoder checkpoint (candidate decoder)")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: default)")
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
        for size in args.sizes:
            w, h = (int(v) for v in size.split("x"))
            packets = [codec.encode(test_image(w, h), channels=12, seq=i) for i in range(4)]
            for batch in args.batches:
                figures = measure(codec, packets, batch, args.seconds)
                key = f"{device}/{size}/batch{batch}"
                results[key] = figures
                print(f"{key}: {figures}", file=sys.stderr, flush=True)
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
