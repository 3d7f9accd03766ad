"""Test images and the PPM files the host tool reads."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def resized(hopper, width: int, height: int) -> np.ndarray:
    from PIL import Image

    return np.asarray(hopper.resize((width, height), Image.Resampling.BOX))


def write_ppm(path: Path, image: np.ndarray) -> Path:
    h, w, _ = image.shape
    path.write_bytes(b"P6\n# strata test\n%d %d\n255\n" % (w, h) + image.tobytes())
    return path


def through_rgb565(image: np.ndarray) -> np.ndarray:
    """What an RGB565 sensor delivers of ``image``, widened back to 8 bits per channel by
    bit replication (the firmware's and the usual sensor-driver rule)."""
    out = image.astype(np.uint16)
    for c, bits in enumerate((5, 6, 5)):
        v = out[..., c] >> (8 - bits)
        out[..., c] = (v << (8 - bits)) | (v >> (2 * bits - 8))
    return out.astype(np.uint8)
