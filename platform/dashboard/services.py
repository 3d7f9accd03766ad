"""Where pages find things: URLs of the dashboard's image endpoints."""

from __future__ import annotations

from django.urls import reverse


def image_url(frame_id: int, k: int) -> str:
    """Where a page finds a frame decoded at k (the image endpoint)."""
    return f"{reverse('dashboard:frame-image', args=[frame_id])}?k={k}"


def frame_url(frame_id: int) -> str:
    return reverse("dashboard:frame", args=[frame_id])
