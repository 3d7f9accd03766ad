"""Decoding archived frames with the real codec (CPU torch)."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from archive.decoding import codec_for, decode_frames, decode_passes, redecode, warm_decoder
from archive.models import DecodedImage, DecodeFailure
from archive.services import store_packet
from fleet.services import provision_device
from mcucoder import registry
from mcucoder.bitstream import build_packet, parse_packet

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


def corrupt(packet_bytes: bytes, channel: int) -> bytes:
    """The same packet with one channel's chunk replaced by bytes that are no rANS stream:
    its CRC is valid (the device computed it over what it sent)."""
    packet = parse_packet(packet_bytes)
    chunks = list(packet.chunks)
    chunks[channel] = bytes(range(4)) * 8
    return build_packet(
        model_id=packet.model_id,
        width=packet.width,
        height=packet.height,
        chunks=chunks,
        seq=packet.seq,
        capture_time_ms=packet.capture_time_ms,
        coding=packet.coding,
    )


def test_a_corrupt_frame_fails_alone_and_is_marked():
    """Finding 3 of issue 13: one packet with a valid CRC and a corrupt channel made its
    whole batch fail (0 of 10 decoded, for ever). Now the other frames decode and the bad
    one is marked, once, so it is not tried again at that k."""
    codec = codec_for(registry.default_model_id())
    device = provision_device("cam-decode-corrupt")
    frames = []
    for seq in range(10):
        data = codec.encode(scene(), channels=12, seq=seq)
        if seq == 4:
            data = corrupt(data, channel=7)
        frames.append(store_packet(device, parse_packet(data)).frame)

    stored = decode_frames([f.pk for f in frames])
    assert sorted(d.frame.seq for d in stored) == [s for s in range(10) if s != 4]
    failure = DecodeFailure.objects.get()
    assert (failure.frame.seq, failure.channels) == (4, 12)
    assert "channel 7" in failure.error
    assert decode_frames([frames[4].pk]) == []  # marked: not decoded again
    assert DecodeFailure.objects.count() == 1
    # Its first 7 channels are sound: the archive view can still show it at k <= 7.
    assert redecode(frames[4].pk, 7).channels == 7
    assert redecode(frames[4].pk, 12) is None


def test_decode_passes_are_bounded_in_pixels(settings):
    """A decode pass stacks frames up to STRATA_DECODE_BATCH_PIXELS, so a batch of large frames
    never holds them all at once; every frame is still decoded."""
    settings.STRATA_DECODE_BATCH_PIXELS = 96 * 72 * 2
    codec = codec_for(registry.default_model_id())
    device = provision_device("cam-decode-bounded")
    frames = [
        store_packet(device, parse_packet(codec.encode(scene(), channels=6, seq=s))).frame
        for s in range(5)
    ]
    passes = list(decode_passes([(f, 6) for f in frames]))
    assert [len(p) for p in passes] == [2, 2, 1]
    assert len(decode_frames([f.pk for f in frames])) == 5


def test_warming_loads_the_default_decoder_once_for_the_first_frame():
    codec_for.cache_clear()
    assert warm_decoder((72, 100)) > 0  # a size that is no multiple of 8 is padded, not refused
    assert codec_for.cache_info().currsize == 1
    codec_for(registry.default_model_id())  # a worker's first frame: the decoder is there
    assert codec_for.cache_info().hits >= 1
