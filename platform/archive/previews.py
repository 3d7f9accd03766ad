"""Thumbnails straight from the latent, without the decoder (``mcucoder.preview``): what
the overview and the timeline show while browsing, a quarter of the frame's size."""

from __future__ import annotations

from archive.decoding import codec_for, encode_image
from archive.models import Frame
from archive.services import archived_packet


def preview_image(frame: Frame) -> tuple[bytes, str]:
    """The frame's preview, encoded as decoded images are (WebP), and its content type.
    Reads only its first layers. Raises ValueError for a frame without layers or whose
    layers make no packet."""
    from mcucoder.preview import PREVIEW_CHANNELS, preview  # torch: only where previews are made

    if frame.n_layers == 0:
        raise ValueError(f"frame {frame.pk} has no layers")
    packet = archived_packet(frame, PREVIEW_CHANNELS)
    return encode_image(preview(codec_for(frame.model_id), packet))
