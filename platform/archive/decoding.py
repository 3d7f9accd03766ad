"""Decode archived frames and store the images: one codec per process, one forward pass per
frame size. The decode workers' tasks call these; so does the embedded demo, in-process."""

from __future__ import annotations

import io
import logging
import time
from collections import defaultdict
from collections.abc import Sequence
from functools import cache

import numpy as np
from django.conf import settings
from PIL import Image

from archive import events
from archive.images import clamp_channels, decoded_image, frames_needing_decode
from archive.models import DecodedImage, Frame
from archive.services import archived_packet, record_decoded

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


def decode_and_store(requests: Sequence[tuple[Frame, int]]) -> list[DecodedImage]:
    """Decode each (frame, k) from its first k archived layers and store the image once.

    Frames are grouped by model, and the codec batches each group by size: one forward
    pass per size. Returns the images newly stored (a redelivered task stores nothing twice).
    """
    by_model: dict[int, list[tuple[Frame, int]]] = defaultdict(list)
    for frame, channels in requests:
        by_model[frame.model_id].append((frame, channels))
    stored: list[DecodedImage] = []
    for model_id, group in by_model.items():
        codec = codec_for(model_id)
        packets = [archived_packet(frame, channels) for frame, channels in group]
        started = time.perf_counter()
        images = codec.decode_batch(packets)
        per_frame_ms = (time.perf_counter() - started) * 1000 / len(group)
        for (frame, _), packet, rgb in zip(group, packets, images, strict=True):
            data, content_type = encode_image(rgb)
            decoded, created = record_decoded(
                frame.pk, packet.n_channels, data, content_type, per_frame_ms
            )
            if created:
                stored.append(decoded)
    return stored


def decode_frames(frame_ids: Sequence[int]) -> list[DecodedImage]:
    """Live decode: the given frames at all the layers they have, unless already done; each
    new image is announced to the live views (``archive.events``)."""
    stored = decode_and_store([(f, f.n_layers) for f in frames_needing_decode(frame_ids)])
    log.info("decoded %d of %d frames", len(stored), len(frame_ids))
    for decoded in stored:
        events.frame_decoded(decoded)
    return stored


def redecode(frame_id: int, channels: int) -> DecodedImage | None:
    """Archive view: the frame at ``channels`` (capped at the layers received), cached.

    Returns None for a frame that does not exist or has no layers.
    """
    frame = Frame.objects.filter(pk=frame_id).first()
    if frame is None or frame.n_layers == 0:
        return None
    channels = clamp_channels(frame, channels)
    cached = decoded_image(frame_id, channels)
    if cached is not None:
        return cached
    decode_and_store([(frame, channels)])
    return decoded_image(frame_id, channels)
