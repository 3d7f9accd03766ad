from __future__ import annotations

import json
import struct
import zlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mcucoder import bitstream as bs


def _packet(n: int = 12, **kw) -> bytes:
    chunks = [bytes([i]) * (i * 7 + 4) for i in range(n)]
    args = dict(
        model_id=0xDEADBEEF, width=224, height=224, chunks=chunks, seq=7, capture_time_ms=123456789
    )
    args.update(kw)
    return bs.build_packet(**args)


def _recrc(body: bytes) -> bytes:
    """Re-seal a modified packet so that only the field under test is wrong."""
    return body + struct.pack("<I", zlib.crc32(body))


def test_round_trip_and_fields():
    data = _packet()
    p = bs.parse_packet(data)
    assert p.to_bytes() == data
    assert (p.model_id, p.seq, p.capture_time_ms, p.width, p.height) == (
        0xDEADBEEF,
        7,
        123456789,
        224,
        224,
    )
    assert p.n_channels == 12 and p.frame_type == bs.FRAME_INTRA and p.coding == bs.CODING_RANS
    fields = p.header_fields()
    assert json.loads(json.dumps(fields)) == fields
    assert fields["n_channels"] == 12


@pytest.mark.parametrize("k", range(1, 13))
def test_with_channels_is_a_valid_prefix(k):
    p = bs.parse_packet(_packet())
    q = bs.parse_packet(p.with_channels(k).to_bytes())
    assert q.chunks == p.chunks[:k]
    assert q.seq == p.seq


def test_with_channels_range():
    p = bs.parse_packet(_packet(3))
    for k in (0, 4):
        with pytest.raises(ValueError):
            p.with_channels(k)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_random_bytes_only_raise_packet_errors(data):
    with pytest.raises(bs.PacketError):
        bs.parse_packet(data)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=64))
def test_random_bytes_after_a_valid_header(tail):
    head = _packet(2)[: bs.HEADER_SIZE]
    try:
        bs.parse_packet(head + tail)
    except bs.PacketError:
        pass


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_truncated(data):
    packet = _packet(data.draw(st.integers(1, 12)))
    cut = data.draw(st.integers(0, len(packet) - 1))
    with pytest.raises(bs.Truncated):
        bs.parse_packet(packet[:cut])


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_any_corrupted_byte_is_detected(data):
    packet = bytearray(_packet(data.draw(st.integers(1, 12))))
    i = data.draw(st.integers(0, len(packet) - 1))
    packet[i] ^= data.draw(st.integers(1, 255))
    with pytest.raises(bs.PacketError):
        bs.parse_packet(bytes(packet))


def test_specific_errors():
    good = _packet()
    with pytest.raises(bs.BadMagic):
        bs.parse_packet(b"XX" + good[2:])
    with pytest.raises(bs.UnsupportedVersion):
        bs.parse_packet(good[:2] + bytes([99]) + good[3:])
    with pytest.raises(bs.ChecksumMismatch):
        bs.parse_packet(good[:-1] + bytes([good[-1] ^ 1]))
    with pytest.raises(bs.TooLarge):
        bs.parse_packet(good, max_size=len(good) - 1)
    with pytest.raises(bs.Inconsistent):
        bs.parse_packet(good + b"\0")
    assert bs.parse_packet(good, max_size=len(good)).n_channels == 12


def _header_patched(offset: int, fmt: str, value: int) -> bytes:
    body = bytearray(_packet(2)[:-4])
    struct.pack_into(fmt, body, offset, value)
    return _recrc(bytes(body))


@pytest.mark.parametrize(
    ("offset", "fmt", "value", "error"),
    [
        (3, "<B", 7, bs.UnsupportedFeature),  # frame type
        (24, "<B", 9, bs.UnsupportedFeature),  # coding method
        (20, "<H", 0, bs.Inconsistent),  # width 0
        (22, "<H", 0, bs.Inconsistent),  # height 0
        (26, "<H", 5, bs.Inconsistent),  # intra frame with a reference
    ],
)
def test_inconsistent_fields_with_valid_crc(offset, fmt, value, error):
    with pytest.raises(error):
        bs.parse_packet(_header_patched(offset, fmt, value))


def test_zero_channels_and_raw_chunk_size():
    body = bytearray(_packet(1)[:-4])
    body[28] = 0  # n_channels = 0: the single chunk is then trailing garbage
    with pytest.raises(bs.Inconsistent):
        bs.parse_packet(_recrc(bytes(body)))
    with pytest.raises(bs.Inconsistent):
        _packet(1, coding=bs.CODING_RAW, width=24, height=16)  # chunk must be 3*2 bytes
    ok = bs.build_packet(model_id=1, width=16, height=9, chunks=[b"\1" * 4], coding=bs.CODING_RAW)
    assert bs.parse_packet(ok).latent_size == (2, 2)


def test_build_rejects_out_of_range():
    with pytest.raises(bs.Inconsistent):
        _packet(seq=-1)
    with pytest.raises(bs.Inconsistent):
        _packet(width=70000)
    with pytest.raises(bs.Inconsistent):
        _packet(33)


def test_large_chunks_use_multi_byte_lengths():
    data = bs.build_packet(model_id=1, width=4000, height=3000, chunks=[b"x" * 300_000, b"y"])
    p = bs.parse_packet(data)
    assert [len(c) for c in p.chunks] == [300_000, 1]


def test_light_imports():
    import subprocess
    import sys

    code = (
        "import sys, mcucoder, mcucoder.bitstream, mcucoder.registry;"
        "mcucoder.registry.known_model_ids();"
        "bad = [m for m in ('torch', 'numpy') if m in sys.modules];"
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
