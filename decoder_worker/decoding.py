"""Decode archived frames in batches: one codec per process, one forward pass per size."""

from __future__ import annotations

import io
import logging
import time
from collections import defaultdict
from functools import cache

import numpy as np
from django.conf import settings
from PIL import Image

from archive.models import DecodedImage, Frame
from archive.services import archived_packet, frames_needing_decode, record_decoded

log = logging.getLogger(__name__)


def torch_device() -> str:
    choice = settings.STRATA_DECODE_DEVICE
    if choice != "auto":
        return choice
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


@cache
def codec_for(model_id: int):
    """Load the decoder for ``model_id`` once per worker process."""
    from mcucoder.codec import Codec

    return Codec.load(model_id, device=torch_device(), encoder="float")


def encode_image(rgb: np.ndarray) -> tuple[bytes, str]:
    fmt = settings.STRATA_DECODED_FORMAT
    buf = io.BytesIO()
    Image.fromarray(rgb).save(buf, format=fmt, quality=settings.STRATA_DECODED_QUALITY)
    return buf.getvalue(), f"image/{fmt.lower()}"


def decode_frames(frame_ids: list[int]) -> list[DecodedImage]:
    """Decode the given frames at all the layers they have, skipping those already decoded.

    Returns the images newly stored (a redelivered task stores nothing twice).
    """
    frames = frames_needing_decode(frame_ids)
    by_model: dict[int, list[Frame]] = defaultdict(list)
    for frame in frames:
        by_model[frame.model_id].append(frame)
    stored: list[DecodedImage] = []
    for model_id, group in by_model.items():
        codec = codec_for(model_id)
        packets = [archived_packet(f) for f in group]
        started = time.perf_counter()
        images = codec.decode_batch(packets)
        per_frame_ms = (time.perf_counter() - started) * 1000 / len(group)
        for frame, packet, rgb in zip(group, packets, images, strict=True):
            data, content_type = encode_image(rgb)
            decoded, created = record_decoded(
                frame.pk, packet.n_channels, data, content_type, per_frame_ms
            )
            if created:
                stored.append(decoded)
    log.info("decoded %d of %d frames", len(stored), len(frame_ids))
    return stored
