"""Thumbnails straight from the latent, without the decoder (``mcucoder.preview``): what
the overview and the timeline show while browsing, a quarter of the frame's size."""

from __future__ import annotations

from dataclasses import replace

from archive import references
from archive.decoding import codec_for, encode_image
from archive.models import Frame
from archive.services import archived_packet
from mcucoder import bitstream as bs
from mcucoder.predictive import encode_intra_channel


def as_key_frame(frame: Frame, packet: bs.Packet, codec) -> bs.Packet:
    """``packet`` (the first layers of ``frame``) as a key frame would carry them: a
    predicted frame's symbols, decoded against its reference (``archive.references``),
    coded intra, for what reads a packet on its own (the preview map)."""
    if packet.frame_type == bs.FRAME_INTRA:
        return packet
    symbols = references.decoder_input(frame, packet, codec)[: packet.n_channels]
    chunks = tuple(
        encode_intra_channel(symbols[c].astype("int64"), codec.tables[c], packet.coding)
        for c in range(packet.n_channels)
    )
    return replace(packet, frame_type=bs.FRAME_INTRA, ref=0, block=0, chunks=chunks)


def preview_image(frame: Frame) -> tuple[bytes, str]:
    """The frame's preview, encoded as decoded images are (WebP), and its content type.
    Reads only its first layers (a predicted frame: and its reference). Raises ValueError
    for a frame without layers, whose layers make no packet or whose reference is missing."""
    from mcucoder.preview import PREVIEW_CHANNELS, preview  # torch: only where previews are made

    if frame.n_layers == 0:
        raise ValueError(f"frame {frame.pk} has no layers")
    codec = codec_for(frame.model_id)
    packet = as_key_frame(frame, archived_packet(frame, PREVIEW_CHANNELS), codec)
    return encode_image(preview(codec, packet))
