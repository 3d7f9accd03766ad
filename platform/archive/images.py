"""Decoded images: the one place that finds them, and asks for the missing ones.

The archive keeps every layer; a decoded image is a cache of one (frame, k), stored once by
``archive.decoding``. Pages, exports and the live view read them through these functions.
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Sequence
from datetime import timedelta

import numpy as np
from django.core.cache import cache
from django.utils import timezone
from PIL import Image

from archive.jobs import ARCHIVE_QUEUE, REDECODE, JobQueueUnavailable, queue_job
from archive.models import DecodedImage, Frame
from fleet.models import Device

REQUEST_TTL_S = 60  # a pending re-decode is asked for once per minute, however often pages poll


def clamp_channels(frame: Frame, k: int) -> int:
    """A quality level the frame can be decoded at: 1 .. the layers received."""
    return max(1, min(k, frame.n_layers))


def decoded_image(frame_id: int, channels: int, *, with_image: bool = True) -> DecodedImage | None:
    """The stored image of a frame at exactly ``channels``, if it has been decoded."""
    found = DecodedImage.objects.filter(frame_id=frame_id, channels=channels)
    return (found if with_image else found.defer("image")).first()


def best_decoded(frame: Frame, channels: int | None = None) -> DecodedImage | None:
    """The image of a frame at exactly ``channels``, or (None) the best one decoded so far."""
    found = DecodedImage.objects.filter(frame=frame)
    if channels is not None:
        found = found.filter(channels=channels)
    return found.order_by("-channels").first()


def decoded_images(
    frames: Iterable[Frame], channels: Iterable[int]
) -> dict[tuple[int, int], DecodedImage]:
    """The stored images of ``frames`` at any of ``channels``, by (frame id, k)."""
    return {
        (d.frame_id, d.channels): d
        for d in DecodedImage.objects.filter(frame__in=list(frames), channels__in=set(channels))
    }


def decoded_channels(frame: Frame) -> list[int]:
    """The k at which the frame has been decoded so far."""
    return list(
        DecodedImage.objects.filter(frame=frame)
        .order_by("channels")
        .values_list("channels", flat=True)
    )


def latest_decoded(device: Device) -> DecodedImage | None:
    """The newest decoded image of the device's most recent decoded frame."""
    return (
        DecodedImage.objects.filter(frame__device=device)
        .select_related("frame")
        .defer("image")
        .order_by("-frame__capture_time_ms", "-frame__seq", "-channels")
        .first()
    )


def decoded_pairs(requests: Sequence[tuple[Frame, int]]) -> set[tuple[int, int]]:
    """The (frame id, k) among ``requests`` that have a stored image."""
    found = DecodedImage.objects.filter(frame_id__in={f.pk for f, _ in requests})
    wanted = {(f.pk, k) for f, k in requests}
    return set(found.values_list("frame_id", "channels")) & wanted


def frames_needing_decode(frame_ids: Sequence[int]) -> list[Frame]:
    """The frames among ``frame_ids`` that have no decoded image at their full layer count."""
    frames = list(Frame.objects.filter(pk__in=frame_ids).select_related("device"))
    done = set(
        DecodedImage.objects.filter(frame_id__in=[f.pk for f in frames]).values_list(
            "frame_id", "channels"
        )
    )
    return [f for f in frames if f.n_layers > 0 and (f.pk, f.n_layers) not in done]


def decoded_at(frame: Frame, k: int) -> DecodedImage | None:
    """The frame decoded from its first ``k`` layers, or None while a worker decodes it.

    A missing image is requested once from the ``archive`` queue (so browsing never
    delays live decoding); the worker stores it, and later calls find it. With tasks run
    in-process (the embedded demo) it is decoded right here. Raises
    ``JobQueueUnavailable`` when it cannot be requested.
    """
    k = clamp_channels(frame, k)
    image = decoded_image(frame.pk, k, with_image=False)
    if image is not None or frame.n_layers == 0:
        return image
    requested = f"strata:redecode:{frame.pk}:{k}"
    if cache.add(requested, 1, REQUEST_TTL_S):
        try:
            queue_job(REDECODE, frame.pk, k, queue=ARCHIVE_QUEUE)  # Priority.INTERACTIVE
        except JobQueueUnavailable:
            cache.delete(requested)  # not requested after all: the next call tries again
            raise
        return decoded_image(frame.pk, k, with_image=False)  # done already when run in-process
    return None


def prune_decoded(keep_days: int) -> int:
    """Drop decoded images made more than ``keep_days`` ago: a cache with its own retention
    (the layers stay, and any k decodes again on demand). Returns the images dropped."""
    cutoff = timezone.now() - timedelta(days=keep_days)
    deleted, _ = DecodedImage.objects.filter(decoded_at__lt=cutoff).delete()
    return deleted


def as_png(decoded: DecodedImage) -> bytes:
    """A stored image (WebP) as PNG, for downloads people open anywhere."""
    buf = io.BytesIO()
    Image.open(io.BytesIO(bytes(decoded.image))).save(buf, format="PNG")
    return buf.getvalue()


def as_rgb(decoded: DecodedImage) -> np.ndarray:
    """A stored image as an (H, W, 3) uint8 array."""
    return np.asarray(Image.open(io.BytesIO(bytes(decoded.image))).convert("RGB"))
