"""Decoded images: the one place that finds them, and asks for the missing ones.

The archive keeps every layer; a decoded image is a cache of one (frame, k), stored once by
``archive.decoding`` with the decoder revision that made it. Pages, exports and the live view
read them through these functions. After a release of a better decoder (a new revision of
the same model, ``mcucoder.decoders``) the images of the older one are *stale*: shown where
any image will do (the overview, the live view, ``best_decoded``), and decoded again when a
particular (frame, k) is asked for (the frame page, the slider, an export), not all at once.
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
from mcucoder.decoders import BASE, revision_of

REQUEST_TTL_S = 60  # a pending re-decode is asked for once per minute, however often pages poll


def clamp_channels(frame: Frame, k: int) -> int:
    """A quality level the frame can be decoded at: 1 .. the layers received."""
    return max(1, min(k, frame.n_layers))


def current_decoder(model_id: int) -> str:
    """The decoder revision frames of ``model_id`` are decoded with now: the model's
    released one (``mcucoder.decoders``)."""
    try:
        return revision_of(model_id)
    except KeyError:  # a model this platform does not know: nothing decodes it
        return BASE


def is_current(decoded: DecodedImage, model_id: int) -> bool:
    """Made by the decoder revision frames of ``model_id`` decode with now (else stale)."""
    return decoded.decoder == current_decoder(model_id)


def decoded_image(frame_id: int, channels: int, *, with_image: bool = True) -> DecodedImage | None:
    """The stored image of a frame at exactly ``channels``, if the current decoder revision
    made it (None: not decoded yet, or stale)."""
    found = DecodedImage.objects.filter(frame_id=frame_id, channels=channels).select_related(
        "frame"
    )
    image = (found if with_image else found.defer("image")).first()
    return image if image is not None and is_current(image, image.frame.model_id) else None


def best_decoded(frame: Frame, channels: int | None = None) -> DecodedImage | None:
    """The image of a frame at exactly ``channels``, or (None) the best one decoded so far."""
    found = DecodedImage.objects.filter(frame=frame)
    if channels is not None:
        found = found.filter(channels=channels)
    return found.order_by("-channels").first()


def decoded_images(
    frames: Iterable[Frame], channels: Iterable[int]
) -> dict[tuple[int, int], DecodedImage]:
    """The current stored images of ``frames`` at any of ``channels``, by (frame id, k)."""
    model_of = {f.pk: f.model_id for f in frames}
    found = DecodedImage.objects.filter(frame_id__in=list(model_of), channels__in=set(channels))
    return {(d.frame_id, d.channels): d for d in found if is_current(d, model_of[d.frame_id])}


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
    """The (frame id, k) among ``requests`` that have a current stored image."""
    model_of = {f.pk: f.model_id for f, _ in requests}
    found = DecodedImage.objects.filter(frame_id__in=list(model_of))
    wanted = {(f.pk, k) for f, k in requests}
    return {
        (frame_id, k)
        for frame_id, k, decoder in found.values_list("frame_id", "channels", "decoder")
        if decoder == current_decoder(model_of[frame_id])
    } & wanted


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
