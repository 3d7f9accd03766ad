"""Well-formed packets of a chosen size without running the codec (for link tests)."""

from __future__ import annotations

import numpy as np

from mcucoder import registry
from mcucoder.bitstream import build_packet


class SizedPacketEncoder:
    """Builds real bitstream packets whose channel ``c`` carries ``bytes_per_channel`` bytes,
    so link behaviour (backlog, rate caps) can be tested with exact sizes."""

    def __init__(self, bytes_per_channel: int = 170) -> None:
        self.bytes_per_channel = bytes_per_channel
        self.model_id = registry.default_model_id()

    def encode(
        self, image: np.ndarray, channels: int = 12, seq: int = 0, capture_time_ms: int = 0
    ) -> bytes:
        height, width = image.shape[:2]
        return build_packet(
            model_id=self.model_id,
            width=width,
            height=height,
            seq=seq,
            capture_time_ms=capture_time_ms,
            chunks=[bytes([c + 1]) * self.bytes_per_channel for c in range(channels)],
        )
