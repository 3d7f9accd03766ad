"""Decoding archived frames with the real codec (CPU torch)."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from archive.decoding import codec_for, decode_frames, redecode
from archive.models import DecodedImage
from archive.services import store_packet
from fleet.services import provision_device
from mcucoder import registry
from mcucoder.bitstream import parse_packet

pytestmark = pytest.mark.django_db


def scene(width: int = 96, height: int = 72) -> np.ndarray:
    """A smooth real-looking test picture: gradients and a bright disc."""
    y, x = np.mgrid[0:height, 0:width]
    img = np.stack([x * 255 / width, y * 255 / height, np.full_like(x, 90)], axis=-1)
    img[(x - width / 2) ** 2 + (y - height / 2) ** 2 < (height / 4) ** 2] = 240
    return img.astype(np.uint8)


@pytest.fixture
def frame():
    codec = codec_for(registry.default_model_id())
    packet = parse_packet(codec.encode(scene(), channels=12, seq=1))
    return store_packet(provision_device("cam-decode"), packet).frame


def pixels(decoded: DecodedImage) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(bytes(decoded.image))).convert("RGB"), dtype=float)


def test_live_decode_stores_each_frame_once(frame):
    stored = decode_frames([frame.pk])
    assert [d.channels for d in stored] == [12]
    assert pixels(stored[0]).shape == (72, 96, 3)
    assert decode_frames([frame.pk]) == []  # a redelivered task decodes nothing twice
    assert DecodedImage.objects.filter(frame=frame).count() == 1


def test_redecode_at_lower_quality_is_cached(frame):
    full = redecode(frame.pk, 12)
    low = redecode(frame.pk, 2)
    assert (full.channels, low.channels) == (12, 2)
    assert not np.array_equal(pixels(full), pixels(low))
    assert redecode(frame.pk, 2).pk == low.pk
    assert redecode(frame.pk, 99).channels == 12  # capped at the layers received
    assert redecode(123456789, 3) is None
