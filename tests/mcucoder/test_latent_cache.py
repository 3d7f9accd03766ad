from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from mcucoder import bitstream as bs
from mcucoder.latent_cache import LatentCrops, encode_symbols, load_cache, write_cache
from mcucoder.models import N_CHANNELS, Decoder, grow_decoder


def test_cached_symbols_are_the_packets_symbols(tmp_path, codec, photo):
    """The cache holds exactly the integers a packet of the same crop carries."""
    crops = np.stack([photo[:64, :64], photo[64:128, 96:160]])
    symbols = encode_symbols(codec, crops)
    assert symbols.dtype == np.int8 and symbols.shape == (2, N_CHANNELS, 8, 8)
    meta = {"model": codec.name, "model_id": codec.model_id, "crop": 64}
    write_cache(tmp_path / "c", crops, symbols, meta)
    images, cached, meta2 = load_cache(tmp_path / "c")
    assert meta2 == meta
    np.testing.assert_array_equal(images, crops)
    np.testing.assert_array_equal(cached, symbols)
    for im, q in zip(crops, cached, strict=True):
        np.testing.assert_array_equal(codec.dequantise(codec.encode(im)), q.astype(np.float32))


def test_load_cache_rejects_mismatched_shapes(tmp_path):
    write_cache(tmp_path, np.zeros((2, 64, 64, 3), np.uint8), np.zeros((2, 12, 4, 4), np.int8), {})
    with pytest.raises(ValueError, match="disagree"):
        load_cache(tmp_path)


def test_latent_crops_windows_are_aligned():
    """Image window and latent window cover the same 8x8 blocks."""
    n, s = 3, 64
    rows = (np.arange(s) // 8).reshape(-1, 1)
    cols = (np.arange(s) // 8).reshape(1, -1)
    images = np.zeros((n, s, s, 3), np.uint8)
    images[..., 0] = rows * 10
    images[..., 1] = cols * 10
    images[..., 2] = np.arange(n).reshape(-1, 1, 1) * 50
    symbols = np.zeros((n, N_CHANNELS, 8, 8), np.int8)
    symbols[:, 0] = np.arange(8).reshape(-1, 1)
    symbols[:, 1] = np.arange(8).reshape(1, -1)
    symbols[:, 2] = np.arange(n).reshape(-1, 1, 1)
    x, y = LatentCrops(images, symbols, 24, seed=1).batch(16)
    assert x.shape == (16, 3, 24, 24) and y.shape == (16, N_CHANNELS, 3, 3)
    blocks = (x[:, :, ::8, ::8] * 255).round()
    torch.testing.assert_close(blocks[:, 0] / 10, y[:, 0])
    torch.testing.assert_close(blocks[:, 1] / 10, y[:, 1])
    torch.testing.assert_close(blocks[:, 2] / 50, y[:, 2])
    with pytest.raises(ValueError):
        LatentCrops(images, symbols, 20)


def test_grown_decoder_starts_as_the_old_one():
    torch.manual_seed(0)
    old = Decoder(32, 2).eval()
    new = grow_decoder(old, 5).eval()
    assert new.config == {"width": 32, "blocks": 5}
    y = torch.randn(2, N_CHANNELS, 4, 5) * 3
    with torch.no_grad():
        torch.testing.assert_close(new(y), old(y))
    with pytest.raises(ValueError):
        grow_decoder(new, 3)


def test_grown_decoder_decodes_every_k(codec, photo):
    """A grown decoder in the codec decodes packets of every k (same model_id, bytes)."""
    packet = codec.encode(photo[:64, :96])
    before = [codec.decode(packet, k) for k in range(1, N_CHANNELS + 1)]
    old = codec.decoder
    try:
        codec.decoder = grow_decoder(old, old.config["blocks"] + 2).eval()
        for k in range(1, N_CHANNELS + 1):
            img = codec.decode(bs.parse_packet(packet).with_channels(k))
            assert img.shape == (64, 96, 3) and img.dtype == np.uint8
            np.testing.assert_allclose(img, before[k - 1], atol=1)
    finally:
        codec.decoder = old


def test_train_decoder_cli_runs_and_resumes(tmp_path, codec, photo):
    from mcucoder.cli import main
    from mcucoder.train_decoder import candidate_codec

    crops = np.stack([photo[:112, :112], photo[112:, 112:], photo[56:168, 32:144]])
    meta = {"model": codec.name, "model_id": codec.model_id, "crop": 112}
    write_cache(tmp_path / "c", crops, encode_symbols(codec, crops), meta)
    write_cache(tmp_path / "d", crops[:1], encode_symbols(codec, crops[:1]), meta)
    args = ["train-decoder", "--out", str(tmp_path / "run"), "--cache", str(tmp_path / "c")]
    args += ["--dev-cache", str(tmp_path / "d"), "--batch", "2"]  # whole 112-pixel crops
    args += ["--blocks", "4", "--log-every", "1", "--ckpt-every", "2", "--val-every", "2"]
    assert main([*args, "--steps", "2"]) == 0
    assert main([*args, "--steps", "3", "--resume"]) == 0
    ck = torch.load(tmp_path / "run" / "last.pt", weights_only=False)
    assert ck["step"] == 3 and ck["decoder_config"] == {"width": 128, "blocks": 4}
    assert set(ck["ema"]) == set(ck["decoder"])
    log = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [0, 1, 2, 3]
    assert set(log[0]["val"]) == {str(k) for k in range(1, N_CHANNELS + 1)}
    cand = candidate_codec(tmp_path / "run" / "last.pt", encoder="float")
    assert cand.model_id == codec.model_id and cand.decoder.config["blocks"] == 4
    packet = cand.encode(photo[:32, :40], channels=3)
    assert packet == codec.encode(photo[:32, :40], channels=3)
    assert cand.decode(packet).shape == (32, 40, 3)


def test_compact_checkpoint_resumes(tmp_path, codec, photo):
    from mcucoder.cli import main

    crops = np.stack([photo[:112, :112], photo[112:, 112:]])
    meta = {"model": codec.name, "model_id": codec.model_id, "crop": 112}
    write_cache(tmp_path / "c", crops, encode_symbols(codec, crops), meta)
    args = ["train-decoder", "--out", str(tmp_path / "run"), "--cache", str(tmp_path / "c")]
    args += ["--batch", "1", "--blocks", "3", "--log-every", "1", "--ckpt-every", "1"]
    assert main([*args, "--steps", "2"]) == 0
    small = tmp_path / "small.pt"
    assert main(["compact-decoder", str(tmp_path / "run" / "last.pt"), str(small)]) == 0
    ck = torch.load(small, weights_only=False)
    assert "opt" not in ck and ck["step"] == 2
    assert all(v.dtype == torch.float16 for v in ck["decoder"].values())
    assert small.stat().st_size < 0.6 * (tmp_path / "run" / "last.pt").stat().st_size / 2
    (tmp_path / "run2").mkdir()
    (tmp_path / "run2" / "last.pt").write_bytes(small.read_bytes())
    args[2] = str(tmp_path / "run2")
    assert main([*args, "--steps", "3", "--resume"]) == 0
    assert torch.load(tmp_path / "run2" / "last.pt", weights_only=False)["step"] == 3


def test_per_channel_bits_sum_to_the_per_sample_bits():
    from mcucoder.models import MCUCoder

    net = MCUCoder(width=32, blocks=1)
    x = torch.rand(2, 3, 32, 32)
    k = torch.tensor([3, 12])
    torch.manual_seed(5)
    _, bits = net(x, k)
    torch.manual_seed(5)
    _, bits_c = net(x, k, per_channel=True)
    assert bits_c.shape == (2, N_CHANNELS)
    torch.testing.assert_close(bits_c.sum(dim=1), bits)
    assert (bits_c[0, 3:] == 0).all() and (bits_c[1] > 0).all()
