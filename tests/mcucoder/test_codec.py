from __future__ import annotations

import numpy as np
import pytest
import torch

from mcucoder import bitstream as bs
from mcucoder import registry
from mcucoder.models import Encoder


def test_encoder_is_the_published_one():
    enc = Encoder()
    assert sum(p.numel() for p in enc.parameters()) == 10_524
    assert enc(torch.zeros(1, 3, 224, 224)).shape == (1, 12, 28, 28)


def test_registry():
    assert registry.default_model_id() in registry.known_model_ids()


def test_round_trip(codec, photo):
    data = codec.encode(photo, seq=5, capture_time_ms=1000)
    p = bs.parse_packet(data)
    assert (p.model_id, p.seq, p.capture_time_ms, p.n_channels) == (codec.model_id, 5, 1000, 12)
    out = codec.decode(data)
    assert out.shape == photo.shape and out.dtype == np.uint8
    assert codec.encode(photo, seq=5, capture_time_ms=1000) == data  # deterministic


def test_every_prefix_decodes(codec, photo):
    data = codec.encode(photo)
    full = bs.parse_packet(data)
    y_full = codec.dequantise(full)
    for k in range(1, 13):
        relayed = full.with_channels(k).to_bytes()
        y = codec.dequantise(relayed)
        assert np.array_equal(y[:k], y_full[:k]) and not y[k:].any()
        assert codec.decode(relayed).shape == photo.shape
        assert np.array_equal(codec.decode(relayed), codec.decode(data, channels=k))
    sizes = [len(full.with_channels(k).to_bytes()) for k in range(1, 13)]
    assert sizes == sorted(sizes)


def test_fewer_channels_when_encoding(codec, photo):
    data = codec.encode(photo, channels=4)
    assert bs.parse_packet(data).n_channels == 4
    assert np.array_equal(codec.decode(data), codec.decode(codec.encode(photo), channels=4))


@pytest.mark.parametrize(("h", "w"), [(1, 1), (7, 13), (33, 17), (64, 8), (9, 200), (224, 221)])
def test_odd_sizes(codec, photo, h, w):
    img = np.ascontiguousarray(photo[:h, :w])
    out = codec.decode(codec.encode(img))
    assert out.shape == (h, w, 3)


def test_decode_batch_matches_decode(codec, photo):
    packets = [
        codec.encode(photo),
        codec.encode(photo[:40, :56]),
        codec.encode(photo[8:, 8:], channels=3),
    ]
    batch = codec.decode_batch(packets)
    for pk, img in zip(packets, batch, strict=True):
        single = codec.decode(pk)
        assert single.shape == img.shape
        assert np.abs(single.astype(int) - img).max() <= 1  # batched float math may differ by 1


def test_wrong_model_and_corrupt_chunk(codec, photo):
    p = bs.parse_packet(codec.encode(photo[:32, :32]))
    other = bs.Packet(**{**p.__dict__, "model_id": p.model_id ^ 1})
    with pytest.raises(bs.UnknownModel):
        codec.decode(other.to_bytes())
    broken = bs.Packet(**{**p.__dict__, "chunks": (p.chunks[0][:-1],) + p.chunks[1:]})
    with pytest.raises(bs.PacketError):
        codec.decode(broken.to_bytes())


def test_rejects_bad_images(codec):
    with pytest.raises(ValueError):
        codec.encode(np.zeros((8, 8), np.uint8))
    with pytest.raises(ValueError):
        codec.encode(np.zeros((8, 8, 3), np.float32))
    with pytest.raises(ValueError):
        codec.encode(np.zeros((8, 8, 3), np.uint8), channels=13)
