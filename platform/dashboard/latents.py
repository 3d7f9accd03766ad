"""The 12 latent channel maps of an archived frame, as one picture.

What only a layered codec can show: each channel is one layer of the frame, in importance
order; the maps show what each layer carries (channels not received are left dark). The
entropy decoding is the codec's own (``Codec.dequantise`` through the archive's cached
codec), so this view and the decoder never disagree.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageDraw

from archive.decoding import codec_for
from archive.models import Frame
from archive.references import decoder_input
from archive.services import archived_packet

COLUMNS = 4
SCALE = 4  # latent pixels are 8x8 image pixels; 4x keeps the maps legible and small
GAP = 6
LABEL = 14


def latent_maps(frame: Frame) -> np.ndarray:
    """(12, H/8, W/8) quantised latents of the frame's received layers, zeros for the rest."""
    return decoder_input(frame, archived_packet(frame), codec_for(frame.model_id))


def render_maps(maps: np.ndarray, received: int) -> bytes:
    """A grid PNG, each map scaled to its own symmetric range (mid-grey = 0)."""
    n, h, w = maps.shape
    rows = -(-n // COLUMNS)
    tile_w, tile_h = w * SCALE, h * SCALE
    sheet = Image.new(
        "RGB",
        (COLUMNS * (tile_w + GAP) + GAP, rows * (tile_h + GAP + LABEL) + GAP),
        (29, 36, 32),
    )
    draw = ImageDraw.Draw(sheet)
    for c in range(n):
        x = GAP + (c % COLUMNS) * (tile_w + GAP)
        y = GAP + (c // COLUMNS) * (tile_h + GAP + LABEL)
        if c < received:
            m = float(np.abs(maps[c]).max()) or 1.0
            grey = np.clip(128 + 127 * maps[c] / m, 0, 255).astype(np.uint8)
            tile = Image.fromarray(grey).resize((tile_w, tile_h), Image.Resampling.NEAREST)
            sheet.paste(tile.convert("RGB"), (x, y + LABEL))
            label = f"channel {c + 1}"
        else:
            draw.rectangle(
                [x, y + LABEL, x + tile_w - 1, y + LABEL + tile_h - 1], fill=(60, 60, 60)
            )
            label = f"channel {c + 1} (not received)"
        draw.text((x, y), label, fill=(230, 230, 230))
    buf = io.BytesIO()
    sheet.save(buf, format="PNG", optimize=True)
    return buf.getvalue()


def latent_sheet(frame: Frame) -> bytes:
    return render_maps(latent_maps(frame), frame.n_layers)
