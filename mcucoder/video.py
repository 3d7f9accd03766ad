"""Streams of frames with a model: images -> key and predicted packets and back
(``mcucoder.predictive`` does the symbol work; this adds the encoder and decoder nets)."""

from __future__ import annotations

import numpy as np

from . import bitstream as bs
from .codec import Codec
from .predictive import (
    BLOCK,
    DEAD_ZONE,
    KEY_INTERVAL,
    EncodedFrame,
    PredictiveEncoder,
    Reference,
    advance,
)


class VideoEncoder:
    """A camera's encoder: each frame a key frame or a predicted one (closed loop)."""

    def __init__(
        self,
        codec: Codec,
        key_interval: int = KEY_INTERVAL,
        block: int = BLOCK,
        dead_zone: int = DEAD_ZONE,
    ) -> None:
        self.codec = codec
        self.state = PredictiveEncoder(
            codec.tables, codec.model_id, codec.coding, key_interval, block, dead_zone
        )

    def request_key_frame(self) -> None:
        """The next frame is a key frame (after a lost packet, a live view opening...)."""
        self.state.request_key_frame()

    def encode(
        self,
        image: np.ndarray,
        channels: int | None = None,
        seq: int = 0,
        capture_time_ms: int = 0,
        key: bool = False,
    ) -> EncodedFrame:
        k = self.codec.n_channels if channels is None else channels
        if not 1 <= k <= self.codec.n_channels:
            raise ValueError(f"channels must be in 1..{self.codec.n_channels}, got {k}")
        h, w = np.asarray(image).shape[:2]
        q = self.codec.symbols(image)[:k]
        return self.state.encode(q, w, h, seq, capture_time_ms, key)


class VideoDecoder:
    """Decodes a stream in order, holding the reference; packets of a batch go through
    the decoder network together."""

    def __init__(self, codec: Codec) -> None:
        self.codec = codec
        self.reference: Reference | None = None

    def decode(
        self, packets: list[bytes | bs.Packet], channels: int | None = None
    ) -> list[np.ndarray]:
        """Images of ``packets`` (in stream order). A refused packet raises its
        :class:`~mcucoder.bitstream.PacketError` and leaves the reference as it was."""
        ys, sizes = [], []
        for packet in packets:
            p = packet if isinstance(packet, bs.Packet) else bs.parse_packet(packet)
            q = self.codec.symbols_of(p, channels, self.reference)
            self.reference = advance(self.reference, p, q)
            y = np.zeros((self.codec.n_channels, *q.shape[1:]), np.float32)
            y[: len(q)] = q
            ys.append(y)
            sizes.append((p.height, p.width))
        return self.codec.synthesise(ys, sizes)
