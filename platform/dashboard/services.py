"""Dashboard-side actions that are more than a read: asking for a frame at another quality."""

from __future__ import annotations

import io

from django.core.cache import cache
from django.urls import reverse
from PIL import Image

from archive.models import DecodedImage, Frame

REQUEST_TTL_S = 60  # a pending re-decode is asked for once per minute, however often pages poll


def clamp_channels(frame: Frame, k: int) -> int:
    """A quality level the frame can be decoded at: 1 .. the layers received."""
    return max(1, min(k, frame.n_layers))


def _stored(frame: Frame, k: int) -> DecodedImage | None:
    return DecodedImage.objects.filter(frame=frame, channels=k).defer("image").first()


def decoded_at(frame: Frame, k: int) -> DecodedImage | None:
    """The frame decoded from its first ``k`` layers, or None while a worker decodes it.

    A missing image is requested once from the ``archive`` queue (so browsing never
    delays live decoding); the worker stores it, and later calls find it. With tasks run
    in-process (the embedded demo) it is decoded right here.
    """
    k = clamp_channels(frame, k)
    image = _stored(frame, k)
    if image is not None or frame.n_layers == 0:
        return image
    if cache.add(f"strata:redecode:{frame.pk}:{k}", 1, REQUEST_TTL_S):
        from decoder_worker.tasks import redecode  # imports Celery's app, not torch

        redecode.delay(frame.pk, k)
        return _stored(frame, k)  # decoded already when tasks run eagerly
    return None


def image_url(frame_id: int, k: int) -> str:
    """Where a page finds a frame decoded at k (the image endpoint)."""
    return f"{reverse('dashboard:frame-image', args=[frame_id])}?k={k}"


def as_png(decoded: DecodedImage) -> bytes:
    """A stored image (WebP) as PNG, for downloads people open anywhere."""
    buf = io.BytesIO()
    Image.open(io.BytesIO(bytes(decoded.image))).save(buf, format="PNG")
    return buf.getvalue()
