"""Packets for tests that need well-formed bytes without running the codec."""

from __future__ import annotations

from mcucoder import registry
from mcucoder.bitstream import build_packet


def fake_packet(
    seq: int = 1, channels: int = 12, width: int = 64, height: int = 48, model_id: int | None = None
) -> bytes:
    """A structurally valid packet whose chunks are recognisable per channel."""
    return build_packet(
        model_id=registry.default_model_id() if model_id is None else model_id,
        width=width,
        height=height,
        seq=seq,
        capture_time_ms=1_700_000_000_000 + seq,
        chunks=[bytes([i + 1]) * (3 + i) for i in range(channels)],
    )
