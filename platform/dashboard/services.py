"""Where pages find things: URLs of the dashboard's image endpoints."""

from __future__ import annotations

from urllib.parse import urlencode

from django.urls import reverse

from archive.models import DecodedImage


def image_url(frame_id: int, k: int, decoder: str) -> str:
    """Where a page finds a frame decoded at k (the image endpoint). ``v``, the decoder
    revision that made the image, is in the URL because the endpoint serves it as
    immutable: a re-decode by another revision must get a URL the browser has not cached."""
    query = urlencode({"k": k, "v": decoder})
    return f"{reverse('dashboard:frame-image', args=[frame_id])}?{query}"


def decoded_url(decoded: DecodedImage) -> str:
    """``image_url`` of a stored image."""
    return image_url(decoded.frame_id, decoded.channels, decoded.decoder)


def frame_url(frame_id: int) -> str:
    return reverse("dashboard:frame", args=[frame_id])
