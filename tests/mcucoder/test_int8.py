from __future__ import annotations

import numpy as np
import pytest

from mcucoder.registry import WEIGHTS_DIR, model_entry

_, ENTRY = model_entry(None)
pytestmark = pytest.mark.skipif(
    not ENTRY.get("tflite") or not (WEIGHTS_DIR / ENTRY["tflite"]).exists(),
    reason="default model has no INT8 encoder",
)


@pytest.fixture(scope="module")
def int8_codecs():
    from mcucoder.codec import Codec

    return Codec.load(encoder="int8"), Codec.load(encoder="int8", reference_kernels=True)


def test_int8_agrees_with_float_within_one_step(codec, int8_codecs, photo):
    for c in int8_codecs:
        assert c.int8 is not None
        assert np.abs(c.latent(photo) - codec.latent(photo)).max() <= 1.0
        assert np.abs(c.symbols(photo) - codec.symbols(photo)).max() <= 1


def test_int8_packets_decode_with_the_same_model(codec, int8_codecs, photo):
    data = int8_codecs[1].encode(photo[:50, :70])
    assert codec.decode(data).shape == (50, 70, 3)
    assert int8_codecs[1].encode(photo[:50, :70]) == data  # deterministic
