"""Previews from the latent (``mcucoder.preview``) with the committed weights."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from mcucoder import preview
from mcucoder.codec import Codec


@pytest.fixture(scope="module")
def codec() -> Codec:
    torch.set_num_threads(1)
    return Codec.load(encoder="float")


def scene(width: int, height: int) -> np.ndarray:
    """Colour regions and gradients: a preview must get the colours where they are."""
    y, x = np.mgrid[0:height, 0:width]
    img = np.stack([x * 255 / width, y * 255 / height, np.full_like(x, 60.0)], axis=-1)
    img[: height // 2, : width // 3] = (30, 160, 40)  # a green field, top left
    img[(x - 2 * width / 3) ** 2 + (y - height / 2) ** 2 < (height / 5) ** 2] = (230, 40, 30)
    return img.astype(np.uint8)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    return float(10 * np.log10(1 / np.mean((a - b) ** 2)))


def test_a_preview_is_a_quarter_size_colour_picture_of_the_frame(codec):
    img = scene(160, 120)
    thumb = preview.preview(codec, codec.encode(img, channels=12))
    assert thumb.shape == (30, 40, 3) and thumb.dtype == np.uint8
    target = preview.area_downscale(img[None])[0]
    assert psnr(thumb / 255, target) > 18  # far from a grey or wrong-coloured image (~10 dB)
    assert thumb[5, 5, 1] > thumb[5, 5, 0] + 40  # the green field is green
    assert thumb[15, 26, 0] > thumb[15, 26, 2] + 60  # the red disc is red


def test_a_packet_of_one_channel_still_previews(codec):
    img = scene(64, 48)
    one = preview.preview(codec, codec.encode(img, channels=1))
    assert one.shape == (12, 16, 3)
    target = preview.area_downscale(img[None])[0]
    grey = np.full_like(target, target.mean())  # what knowing nothing but the mean gives
    assert psnr(one / 255, target) > psnr(grey, target)


def test_odd_sizes_are_cropped_to_their_quarter(codec):
    thumb = preview.preview(codec, codec.encode(scene(70, 50), channels=3))
    assert thumb.shape == (13, 18, 3)  # ceil(50/4), ceil(70/4)


def test_weights_of_another_model_are_refused(codec, monkeypatch):
    net, model_id = preview.load()
    monkeypatch.setattr(preview, "_loaded", lambda: (net, model_id ^ 1))
    with pytest.raises(ValueError, match="preview map was trained for model"):
        preview.preview(codec, codec.encode(scene(64, 48)))
