"""Frame sequences for the predicted-frame tests: what a still camera sees (a still photo,
a moving patch, sensor noise), a scene change, a forced key frame, channel-count and size
changes; and the stream both the C firmware and the Python PredictiveEncoder code."""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tests.firmware.images import resized, write_ppm


@dataclass(frozen=True)
class Frame:
    image: np.ndarray
    channels: int
    seq: int
    key: bool = False  # a key frame requested before this frame


def still_scene(hopper, width: int, height: int, n: int, seed: int = 0) -> list[np.ndarray]:
    """The photo with a bright patch moving a few pixels a frame and per-frame noise."""
    rng = np.random.default_rng(seed)
    base = resized(hopper, width, height).astype(np.int16)
    side = max(8, min(width, height) // 4)
    frames = []
    for i in range(n):
        img = base + rng.normal(0, 2.0, base.shape).round().astype(np.int16)
        y0 = (height - side) * i // max(1, n - 1)
        x0 = (5 * i) % max(1, width - side)
        img[y0 : y0 + side, x0 : x0 + side] = (230, 40, 60)
        frames.append(np.clip(img, 0, 255).astype(np.uint8))
    return frames


def noise(width: int, height: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def c_stream(tool: Path, frames: list[Frame], tmp: Path, *options: str, run=None) -> list[bytes]:
    """The firmware's packets: strata-encode --stream (through ``run`` on a board)."""
    lines = []
    for i, f in enumerate(frames):
        ppm = write_ppm(tmp / f"f{i}.ppm", f.image)
        lines.append(f"{ppm} {f.channels} {f.seq} {int(f.key)}\n")
    (tmp / "list.txt").write_text("".join(lines))
    out = tmp / "stream.bin"
    args = ["--stream", str(tmp / "list.txt"), str(out), *options]
    res = run(*args)
    assert res.returncode == 0, res.stdout + res.stderr
    data, packets = out.read_bytes(), []
    while data:
        (n,) = struct.unpack_from("<I", data)
        packets.append(data[4 : 4 + n])
        data = data[4 + n :]
    return packets


def python_stream(codec, frames: list[Frame], key_interval: int, block: int, dead_zone: int):
    """The Python codec's packets for the same frames and settings."""
    from mcucoder.video import VideoEncoder

    enc = VideoEncoder(codec, key_interval, block, dead_zone)
    out = []
    for f in frames:
        if f.key:
            enc.request_key_frame()
        out.append(enc.encode(f.image, f.channels, f.seq).packet)
    return out
