"""Decoder runtimes (``mcucoder.runtime``) give the images float32 torch gives, within the
stated tolerance, on real packets decoded in batches."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from mcucoder import runtime
from mcucoder.codec import Codec


@pytest.fixture(scope="module")
def codec() -> Codec:
    torch.set_num_threads(1)
    return Codec.load(encoder="float")


@pytest.fixture(scope="module")
def packets(codec: Codec) -> list[bytes]:
    """Frames of two sizes and several k, as a worker's batch holds them."""
    rng = np.random.default_rng(3)
    y, x = np.mgrid[0:48, 0:64]
    base = np.stack([x * 4, y * 5, (x + y) * 2], axis=-1).astype(np.uint8)
    out = []
    for i, k in enumerate([12, 6, 3, 12]):
        img = np.clip(base + rng.integers(0, 40, base.shape), 0, 255).astype(np.uint8)
        if i == 3:
            img = img[:40, :56]  # another size: its own pass
        out.append(codec.encode(img, channels=k, seq=i))
    return out


def decoded_with(codec: Codec, name: str, packets: list[bytes]) -> list[np.ndarray]:
    return runtime.with_runtime(copy.copy(codec), name, threads=1).decode_batch(packets)


def test_half_precision_batch_matches_float_within_tolerance(codec, packets):
    """The GPU path (half precision, batched), run on CPU: each image within 4/255 of the
    float32 decoder at every pixel, and its PSNR against it far above the codec's own
    (about 30 dB), so half precision costs no visible quality."""
    reference = codec.decode_batch(packets)
    half = decoded_with(codec, "torch-half", packets)
    for ref, got in zip(reference, half, strict=True):
        assert ref.shape == got.shape
        diff = np.abs(ref.astype(int) - got.astype(int))
        assert diff.max() <= 4
        mse = float((diff.astype(float) ** 2).mean())
        assert mse == 0 or 10 * np.log10(255**2 / mse) > 45


def test_int8_dynamic_quantisation_leaves_a_convolutional_decoder_as_it_was(codec, packets):
    """torch's dynamic INT8 covers Linear and recurrent layers: the decoder is all
    convolutions, so the images are the float32 ones (why bench.decode shows no gain)."""
    reference = codec.decode_batch(packets)
    for ref, got in zip(reference, decoded_with(codec, "torch-int8", packets), strict=True):
        assert np.array_equal(ref, got)


def test_a_runtime_too_far_from_torch_is_refused(codec):
    class Off(torch.nn.Module):
        precision = "float32"

        def forward(self, y):
            return codec.decoder(y) + 0.01

    with pytest.raises(ValueError, match="differs from torch by 1.00e-02"):
        runtime.check_against_torch(codec.decoder, Off())


def test_an_unknown_runtime_says_which_exist(codec):
    with pytest.raises(ValueError, match="unknown decoder runtime 'tensorrt'; known: torch"):
        runtime.runtime_decoder(codec.decoder, "tensorrt")
