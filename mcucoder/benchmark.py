"""Decoder throughput (frames/s), entropy decoding included, at the sizes the issue asks."""

from __future__ import annotations

import time

import numpy as np
import torch

from .codec import Codec

SIZES = ((224, 224), (512, 768))
BATCHES = (1, 16)


def _frame(h: int, w: int) -> np.ndarray:
    """A smooth synthetic frame with edges (content barely changes decoder time)."""
    y, x = np.mgrid[0:h, 0:w]
    img = np.stack([(x * 255 // w), (y * 255 // h), ((x // 16 + y // 16) % 2) * 200], axis=-1)
    return img.astype(np.uint8)


def throughput(codec: Codec, min_seconds: float = 2.0) -> list[dict]:
    rows = []
    for h, w in SIZES:
        packet = codec.encode(_frame(h, w))
        for batch in BATCHES:
            codec.decode_batch([packet] * batch)  # warm-up
            n, t0 = 0, time.perf_counter()
            while True:
                codec.decode_batch([packet] * batch)
                n += batch
                dt = time.perf_counter() - t0
                if dt >= min_seconds:
                    break
            rows.append(
                {
                    "size": f"{w}x{h}",
                    "batch": batch,
                    "frames_per_s": round(n / dt, 2),
                    "device": str(codec.device),
                    "threads": torch.get_num_threads(),
                }
            )
    return rows
