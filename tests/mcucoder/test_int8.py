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


def test_int8_output_is_the_symbol(int8_codecs, photo):
    # The output tensor is quantised at scale 1, zero point 0: TFLite's requantisation of
    # the last convolution rounds to the symbol, the lookup only clamps to the table.
    from mcucoder.codec import pad_to_multiple

    for c in int8_codecs:
        v, scale, zp = c.int8.int8_latent(pad_to_multiple(photo))
        assert (scale, zp) == (1.0, 0)
        lo, hi = c._lo.reshape(-1), c._hi.reshape(-1)
        assert np.array_equal(np.clip(v, lo, hi).transpose(2, 0, 1), c.symbols(photo))


def test_int8_agrees_with_float_within_one_step(codec, int8_codecs, photo):
    # Symbols: at most one step from the float encoder's (the old calibrated output scale,
    # 0.64 of a step, gave two). The int8 latent is the rounded latent, so its distance to
    # the float latent is the output's own rounding (<= 0.5) plus the int8 arithmetic's
    # error (bias-corrected at export; up to about 0.9 of a step in channel 2): max 1.14
    # on this photo, one value of 9,408 above 1.0.
    for c in int8_codecs:
        assert c.int8 is not None
        assert np.abs(c.symbols(photo) - codec.symbols(photo)).max() <= 1
        err = np.abs(c.latent(photo) - codec.latent(photo))
        assert err.max() <= 1.5 + 1e-5 and err.mean() < 0.3 and (err > 1.0).mean() < 1e-3


def test_int8_packets_decode_with_the_same_model(codec, int8_codecs, photo):
    data = int8_codecs[1].encode(photo[:50, :70])
    assert codec.decode(data).shape == (50, 70, 3)
    assert int8_codecs[1].encode(photo[:50, :70]) == data  # deterministic


def test_firmware_lookup_gives_the_codec_symbols(int8_codecs, photo):
    from mcucoder.codec import pad_to_multiple
    from mcucoder.firmware_tables import c_header, symbol_luts

    c = int8_codecs[1]
    v, scale, zp = c.int8.int8_latent(pad_to_multiple(photo[:40, :64]))
    lut = symbol_luts(c.tables, scale, zp)
    mcu = np.stack([lut[ch][v[..., ch].astype(np.int64) + 128] for ch in range(12)])
    assert np.array_equal(mcu, c.symbols(photo[:40, :64]))
    header = c_header(c.model_id, c.tables, scale, zp)
    assert f"0x{c.model_id:08x}u" in header and "mcucoder_symbol[12][256]" in header
