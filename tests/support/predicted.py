"""Packets of a camera sending predicted frames (issue 18), made by the real codec: for tests
of the archive, retention and the dashboard that need true P frames and motion figures."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from archive.decoding import codec_for
from mcucoder import bitstream as bs
from mcucoder import registry
from mcucoder.predictive import PredictiveEncoder


def scenes(
    n: int, width: int = 96, height: int = 72, moves: Sequence[bool] | None = None
) -> list[np.ndarray]:
    """A still scene (gradients) with a bright square walking across it: one step a frame,
    or only on the frames ``moves`` marks (the others repeat the last picture: no motion)."""
    y, x = np.mgrid[0:height, 0:width]
    still = np.stack([x * 255 / width, y * 255 / height, np.full_like(x, 90)], axis=-1)
    out, step = [], 0
    for i in range(n):
        if i and (moves is None or moves[i]):
            step += 1
        img = still.copy()
        img[20:40, 8 + 10 * step : 28 + 10 * step] = 240
        out.append(img.astype(np.uint8))
    return out


def p_stream(
    n: int, key_interval: int = 50, first_seq: int = 1, moves: Sequence[bool] | None = None
) -> list[bytes]:
    """Packets of a camera sending predicted frames (key frame first) of ``scenes``."""
    codec = codec_for(registry.default_model_id())
    encoder = PredictiveEncoder(codec.tables, codec.model_id, bs.CODING_RANS, key_interval)
    return [
        encoder.encode(
            codec.symbols(img), img.shape[1], img.shape[0], first_seq + i, 1000 * i
        ).packet
        for i, img in enumerate(scenes(n, moves=moves))
    ]
