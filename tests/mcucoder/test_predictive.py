"""Predicted frames (issue 18): closed loop bit exact, skip blocks, references checked,
channel-count changes, key frames, and the version 2 packet next to version 1."""

from __future__ import annotations

import hashlib
from decimal import ROUND_FLOOR, Decimal, getcontext
from pathlib import Path

import numpy as np
import pytest

from mcucoder import bitstream as bs
from mcucoder import predictive as pv
from mcucoder.entropy import PROB_SCALE, ChannelTable, quantise_pmf

H, W = 12, 16  # latent cells: a 128x96 frame


def _tables(n: int = 12) -> list[ChannelTable]:
    """Model-independent tables (alphabets of 255 down to 12 symbols, as mcucoder-s)."""
    out = []
    for c in range(n):
        size = max(12, 255 - 22 * c)
        x = np.arange(size) - size // 2
        out.append(ChannelTable(-(size // 2), quantise_pmf(np.exp(-np.abs(x) / (1 + c)))))
    return out


TABLES = _tables()


def _scene(rng: np.random.Generator, n: int = 12, shape: tuple[int, int] = (H, W)) -> np.ndarray:
    """Symbols drawn from each channel's own table: what intra coding is made for."""
    return np.stack(
        [
            rng.choice(len(t.freq), shape, p=np.array(t.freq) / PROB_SCALE) + t.offset
            for t in TABLES[:n]
        ]
    ).astype(np.int64)


def _frames(count: int, seed: int = 0, n: int = 12) -> list[np.ndarray]:
    """A still scene with +-1 flicker in a few cells and an object moving across."""
    rng = np.random.default_rng(seed)
    base = _scene(rng, n)
    out = []
    for i in range(count):
        f = base.copy()
        flick = rng.random(f.shape) < 0.03
        f[flick] += rng.choice([-1, 1], flick.sum())
        x = (2 * i) % (W - 3)
        f[:, 4:7, x : x + 3] = 9
        lo = np.array([t.lo for t in TABLES[:n]]).reshape(-1, 1, 1)
        hi = np.array([t.hi for t in TABLES[:n]]).reshape(-1, 1, 1)
        out.append(np.clip(f, lo, hi))
    return out


def _encoder(**kw) -> pv.PredictiveEncoder:
    return pv.PredictiveEncoder(TABLES, 0xC0DEC, bs.CODING_RANS, **kw)


def test_closed_loop_is_bit_exact_and_smaller():
    enc, dec = _encoder(key_interval=100), pv.PredictiveDecoder(TABLES)
    sizes = []
    for i, f in enumerate(_frames(12)):
        e = enc.encode(f, W * 8, H * 8, seq=i)
        p = bs.parse_packet(e.packet)
        assert p.version == bs.VERSION_2
        assert p.frame_type == (bs.FRAME_INTRA if i == 0 else bs.FRAME_PREDICTED)
        got = dec.decode(p)
        assert np.array_equal(got, e.symbols)  # the decoder holds what the encoder holds
        assert np.abs(got - f).max() <= pv.DEAD_ZONE  # skipped blocks hide the dead-zone only
        sizes.append(len(e.packet))
    assert max(sizes[1:]) < sizes[0] / 3


def test_lossless_with_no_dead_zone():
    enc, dec = _encoder(dead_zone=0), pv.PredictiveDecoder(TABLES)
    for i, f in enumerate(_frames(5)):
        assert np.array_equal(dec.decode(bs.parse_packet(enc.encode(f, 128, 96, i).packet)), f)


def test_unchanged_frame_skips_every_block():
    f = _frames(1)[0]
    enc = _encoder()
    enc.encode(f, 128, 96, 0)
    e = enc.encode(f, 128, 96, 1)
    p = bs.parse_packet(e.packet)
    assert p.frame_type == bs.FRAME_PREDICTED and p.motion == 0 and e.motion == 0
    assert all(len(c) == 3 and c[0] == pv.MODE_PREDICTED for c in p.chunks)
    assert len(e.packet) == bs.packet_size([3] * 12, bs.VERSION_2)


def test_skip_blocks_keep_the_reference_and_motion_counts_changed_blocks():
    f = _frames(1)[0]
    enc, dec = _encoder(block=4, dead_zone=1), pv.PredictiveDecoder(TABLES)
    dec.decode(bs.parse_packet(enc.encode(f, 128, 96, 0).packet))
    g = f.copy()
    g[0, 0, 0] += 1 if f[0, 0, 0] < TABLES[0].hi else -1  # within the dead-zone: skipped
    g[2, 9, 13] = TABLES[2].hi if f[2, 9, 13] < 0 else TABLES[2].lo  # a real change
    e = enc.encode(g, 128, 96, 1)
    p = bs.parse_packet(e.packet)
    got = dec.decode(p)
    assert got[0, 0, 0] == f[0, 0, 0]  # the reference's old value, on both sides
    assert got[2, 9, 13] == g[2, 9, 13]
    assert np.array_equal(got, e.symbols)
    n_blocks = 3 * 4  # 12x16 cells in 4x4 blocks
    assert p.motion == 9 and e.motion == pytest.approx(1 / n_blocks)  # 1 of 12, rounded up
    assert [len(c) > 3 for c in p.chunks] == [c == 2 for c in range(12)]


def test_key_interval_and_requested_key_frames():
    enc = _encoder(key_interval=3)
    frames = _frames(8)
    keys = []
    for i, f in enumerate(frames):
        if i == 5:
            enc.request_key_frame()
        keys.append(enc.encode(f, 128, 96, i).key)
    assert keys == [True, False, False, True, False, True, False, False]
    assert enc.encode(frames[0], 128, 96, 8, key=True).key


def test_scene_change_and_size_change_fall_back_to_intra():
    enc = _encoder()
    a, b = _frames(1, seed=1)[0], _frames(1, seed=2)[0]
    enc.encode(a, 128, 96, 0)
    e = enc.encode(b, 128, 96, 1)  # another scene: prediction does not pay
    p = bs.parse_packet(e.packet)
    assert e.key and p.frame_type == bs.FRAME_INTRA and p.motion == 100
    small = b[:, :8, :8]
    e = enc.encode(small, 64, 64, 2)
    assert e.key and bs.parse_packet(e.packet).motion == bs.MOTION_UNKNOWN


def test_missing_and_wrong_reference_are_refused():
    frames = _frames(4)
    enc = _encoder()
    packets = [bs.parse_packet(enc.encode(f, 128, 96, i).packet) for i, f in enumerate(frames)]
    assert packets[2].reference_seq == 1 and pv.reference_seq(packets[0]) is None
    with pytest.raises(bs.MissingReference, match="no reference"):
        pv.PredictiveDecoder(TABLES).decode(packets[1])
    dec = pv.PredictiveDecoder(TABLES)
    dec.decode(packets[0])
    with pytest.raises(bs.MissingReference, match="predicts from frame 1"):
        dec.decode(packets[2])  # frame 1 was lost
    assert dec.reference.seq == 0  # a refused frame changes nothing
    # the right seq but other symbols (e.g. an archive row swapped): the check catches it
    forged = pv.Reference(1, (H, W), tuple(np.zeros((H, W), np.int64) for _ in range(12)))
    with pytest.raises(bs.MissingReference, match="channel 0 of the reference differs"):
        pv.decode_symbols(packets[2], TABLES, forged)


def test_relay_dropping_channels_of_a_predicted_stream():
    """with_channels stays valid: the prefix decodes; later frames predicting the
    dropped channels are refused for them, the channels before still decode."""
    frames = _frames(4)
    enc, dec = _encoder(), pv.PredictiveDecoder(TABLES)
    sent = [bs.parse_packet(enc.encode(f, 128, 96, i).packet) for i, f in enumerate(frames)]
    dec.decode(sent[0])
    thin = bs.parse_packet(sent[1].with_channels(5).to_bytes())
    assert np.array_equal(dec.decode(thin), _decoded(sent[:2])[1][:5])
    with pytest.raises(bs.MissingReference, match="channel 5"):
        dec.decode(sent[2])
    assert dec.decode(sent[2], channels=5).shape == (5, H, W)


def _decoded(packets: list[bs.Packet]) -> list[np.ndarray]:
    dec = pv.PredictiveDecoder(TABLES)
    return [dec.decode(p) for p in packets]


def test_channel_count_changes_across_predicted_frames():
    frames = _frames(6)
    enc, dec = _encoder(), pv.PredictiveDecoder(TABLES)
    for i, k in enumerate([4, 8, 8, 2, 12, 12]):
        e = enc.encode(frames[i][:k], 128, 96, i)
        p = bs.parse_packet(e.packet)
        got = dec.decode(p)
        assert got.shape[0] == k and np.array_equal(got, e.symbols)
        if i == 1:  # channels 4..7 have no reference yet: intra inside the P frame
            assert p.frame_type == bs.FRAME_PREDICTED
            assert [c[0] for c in p.chunks] == [pv.MODE_PREDICTED] * 4 + [pv.MODE_INTRA] * 4
        if i == 4:  # 2..7 predicted from frame 2, kept through the 2-channel frame 3
            assert [c[0] for c in p.chunks[:8]] == [pv.MODE_PREDICTED] * 8


def test_corrupted_predicted_packets_raise_packet_errors_only():
    frames = _frames(2)
    enc = _encoder()
    key = bs.parse_packet(enc.encode(frames[0], 128, 96, 0).packet)
    p = bs.parse_packet(enc.encode(frames[1], 128, 96, 1).packet)
    rng = np.random.default_rng(3)
    for _ in range(300):
        c = int(rng.integers(p.n_channels))
        chunk = bytearray(p.chunks[c])
        if rng.random() < 0.3:
            chunk = chunk[: int(rng.integers(len(chunk) + 1))]
        elif chunk:
            chunk[int(rng.integers(len(chunk)))] ^= int(rng.integers(1, 256))
        bad = bs.Packet(
            **{**p.__dict__, "chunks": p.chunks[:c] + (bytes(chunk),) + p.chunks[c + 1 :]}
        )
        dec = pv.PredictiveDecoder(TABLES)
        dec.decode(key)
        try:
            dec.decode(bad)
        except bs.PacketError:
            pass


def test_version_2_header():
    data = bs.build_packet(
        model_id=1,
        width=64,
        height=48,
        chunks=[b"\1\0\0"],
        seq=9,
        ref=2,
        frame_type=bs.FRAME_PREDICTED,
        version=bs.VERSION_2,
        block=4,
        motion=37,
    )
    p = bs.parse_packet(data)
    assert (p.version, p.block, p.motion, p.reference_seq) == (2, 4, 37, 7)
    assert p.to_bytes() == data and len(data) == bs.packet_size([3], bs.VERSION_2)
    assert p.header_fields()["motion"] == 37
    assert bs.parse_packet(p.with_channels(1).to_bytes()) == p
    wrap = bs.parse_packet(bs.build_packet(**{**_v2_args(), "seq": 1, "ref": 3}))
    assert wrap.reference_seq == 2**32 - 2
    for bad in ({"block": 0}, {"motion": 101}, {"frame_type": bs.FRAME_INTRA, "ref": 0}):
        with pytest.raises(bs.Inconsistent):
            bs.build_packet(**{**_v2_args(), **bad})
    with pytest.raises(bs.Inconsistent):  # version 1 has no block or motion fields
        bs.build_packet(model_id=1, width=8, height=8, chunks=[b"x"], motion=3)
    with pytest.raises(bs.UnsupportedVersion):
        bs.parse_packet(data[:2] + b"\3" + data[3:])


def _v2_args() -> dict:
    return dict(
        model_id=1,
        width=64,
        height=48,
        chunks=[b"\1\0\0"],
        seq=9,
        ref=2,
        frame_type=bs.FRAME_PREDICTED,
        version=bs.VERSION_2,
        block=4,
        motion=0,
    )


def test_version_1_predicted_frames_stay_undecodable():
    data = bs.build_packet(
        model_id=1, width=8, height=8, chunks=[b"\1\0\0"], frame_type=bs.FRAME_PREDICTED, ref=1
    )
    p = bs.parse_packet(data)
    with pytest.raises(bs.UnsupportedFeature):
        pv.decode_symbols(p, TABLES, pv.Reference(0, (1, 1), (np.zeros((1, 1), np.int64),)))


def test_golden_packets():
    """The bytes of a key frame and two predicted frames. A change here changes the
    contract (a new version, docs/bitstream.md) or the encoder's choices (say so)."""
    frames = _frames(3)
    enc = _encoder(block=4, dead_zone=1)
    packets = [enc.encode(f, 128, 96, i, 1000 + i).packet for i, f in enumerate(frames)]
    assert [hashlib.sha256(p).hexdigest()[:16] for p in packets] == GOLDEN


GOLDEN = ["f8e6ea83903ece5c", "72fd04fc6f8c45bf", "3c8a69661bbb3971"]


def test_tables_are_valid():
    for t in pv.RESIDUAL_TABLES + pv.SKIP_TABLES:
        assert sum(t) == PROB_SCALE and min(t) >= 1
    for t in pv.RESIDUAL_TABLES:
        assert t.index(max(t)) == pv.RESIDUAL_CENTRE and len(t) == 2 * pv.RESIDUAL_CENTRE + 1


def test_real_codec_round_trip(codec, photo):
    """Symbols of a real photo through the model's own tables, a small object moving."""
    enc = pv.PredictiveEncoder(codec.tables, codec.model_id, codec.coding, block=4)
    dec = pv.PredictiveDecoder(codec.tables)
    img = photo[:96, :128].copy()
    sizes = []
    for i in range(3):
        img[40:56, 10 + 16 * i : 26 + 16 * i] = 255
        e = enc.encode(codec.symbols(img), 128, 96, i)
        assert np.array_equal(dec.decode(bs.parse_packet(e.packet)), e.symbols)
        sizes.append(len(e.packet))
    assert sizes[2] < sizes[0] / 2


def test_version_1_packets_unchanged():
    """An intra packet stays version 1, byte for byte (the digest is the one the code
    before version 2 gave); its symbols decode as before."""
    f = _frames(1)[0]
    chunks = [pv.encode_intra_channel(f[c], TABLES[c], bs.CODING_RANS) for c in range(12)]
    data = bs.build_packet(model_id=7, width=128, height=96, chunks=chunks, seq=3)
    assert data[2] == 1 and len(data) == bs.packet_size([len(c) for c in chunks])
    assert hashlib.sha256(data).hexdigest()[:16] == "e6219646ae606f59"  # as before version 2
    p = bs.parse_packet(data)
    assert (p.block, p.motion, p.reference_seq) == (0, bs.MOTION_UNKNOWN, None)
    assert "motion" not in p.header_fields()
    assert np.array_equal(pv.decode_symbols(p, TABLES), f)
    assert np.array_equal(pv.decode_symbols(p, TABLES, channels=3), f[:3])


def test_walking_back_to_the_key_frame():
    """What the archive does for any frame: its chain from the key frame, decoded in order,
    gives what a decoder that saw the whole stream holds; a missing link is refused."""
    frames = _frames(7)
    enc = _encoder(key_interval=4)
    sent = [
        bs.parse_packet(enc.encode(f[: 4 + i % 3 * 4], 128, 96, i).packet)
        for i, f in enumerate(frames)
    ]
    archive = {p.seq: p for p in sent}
    live = _decoded(sent[:4]) + _decoded(sent[4:])  # frame 4 is a key frame
    for p in sent:
        chain = pv.chain_to_key(p, archive.get)
        assert chain[0].frame_type == bs.FRAME_INTRA and chain[-1] is p
        assert [c.seq for c in chain] == list(range(chain[0].seq, p.seq + 1))
        dec = pv.PredictiveDecoder(TABLES)
        got = [dec.decode(c) for c in chain][-1]
        assert np.array_equal(got, live[p.seq])
    del archive[1]
    with pytest.raises(bs.MissingReference, match="needs frame 1"):
        pv.chain_to_key(sent[3], archive.get)


# A stream the encoder coded before its choices were integer-only (commit 2c4cfcd: motion
# as float64 ceil(100 * share), tables picked by float64 ideal bits). 40x40 latent cells:
# 100 blocks of 4x4, so motion is a whole percentage of blocks.
OLD_STREAM = Path(__file__).parent / "data" / "predicted_v2_float_choices.bin"
OLD_SIZE = (40, 40)


def _old_stream_frames() -> list[np.ndarray]:
    """The frames of OLD_STREAM: a key frame; 7 of 100 blocks moved (motion 7 %, the float
    contract said 8); channels 0..5 a new scene (intra chunks in a predicted frame); 4
    channels (a tier change); 12 again."""
    rng = np.random.default_rng(18)
    base = _scene(rng, shape=OLD_SIZE)
    moved = base.copy()
    for b in (0, 11, 23, 38, 54, 77, 99):
        y, x = 4 * (b // 10), 4 * (b % 10)
        cell = moved[0, y : y + 4, x : x + 4]
        moved[0, y : y + 4, x : x + 4] = np.where(cell > 0, cell - 5, cell + 5)
    scene = moved.copy()
    scene[:6] = _scene(rng, 6, OLD_SIZE)
    tier = scene[:4].copy()
    tier[:, 20:28, 8:16] = 3
    again = scene.copy()
    again[:4] = tier
    return [base, moved, scene, tier, again]


def _old_stream_packets() -> list[bytes]:
    """OLD_STREAM's packets (each a u32 length, little-endian, then the packet)."""
    data, out = OLD_STREAM.read_bytes(), []
    while data:
        n = int.from_bytes(data[:4], "little")
        out.append(data[4 : 4 + n])
        data = data[4 + n :]
    return out


def _encode_old_stream() -> list[bytes]:
    """What the encoder codes for OLD_STREAM's frames (the file: this, at commit 2c4cfcd)."""
    enc = _encoder(block=4, dead_zone=1)
    h, w = OLD_SIZE
    return [enc.encode(f, 8 * w, 8 * h, 40 + i).packet for i, f in enumerate(_old_stream_frames())]


# sha256 (first 16 hex digits) of each frame's decoded symbols, as int16, when recorded
OLD_STREAM_SYMBOLS = [
    "844565cd2afeb309",
    "bbdb478df7fe7b99",
    "53fa58d65c0a5e6a",
    "18fc62bb8a56aa9e",
    "531f050f7ee26cea",
]


def test_packets_coded_before_integer_choices_still_decode():
    """A decoder reads the choices a packet carries (its tables, chunk modes, motion) and
    never re-derives them, so the stream the float64 encoder coded decodes as it did."""
    packets = [bs.parse_packet(raw) for raw in _old_stream_packets()]
    dec = pv.PredictiveDecoder(TABLES)
    got = [dec.decode(p) for p in packets]
    digests = [hashlib.sha256(s.astype(np.int16).tobytes()).hexdigest()[:16] for s in got]
    assert digests == OLD_STREAM_SYMBOLS
    for s, f in zip(got, _old_stream_frames(), strict=True):
        assert np.abs(s - f[: len(s)]).max() <= pv.DEAD_ZONE
    assert [p.frame_type for p in packets] == [bs.FRAME_INTRA] + [bs.FRAME_PREDICTED] * 4
    assert [c[0] for c in packets[2].chunks] == [pv.MODE_INTRA] * 6 + [pv.MODE_PREDICTED] * 6
    now = [bs.parse_packet(p) for p in _encode_old_stream()]
    assert (packets[1].motion, now[1].motion) == (8, 7)  # 7 of 100 blocks: float64 said 8


def test_symbol_costs_are_the_exact_floor():
    """cost(f) = floor(2^12 log2(4096 / f)), checked against 60-digit decimal logarithms."""
    getcontext().prec = 60
    freqs = sorted({f for t in pv.RESIDUAL_TABLES + pv.SKIP_TABLES for f in t} | {1, 3, 4096})
    for f in freqs:
        exact = Decimal(4096) * (Decimal(4096) / f).ln() / Decimal(2).ln()
        floor = (exact + Decimal("1e-40")).to_integral_value(rounding=ROUND_FLOOR)  # 2^k: exact
        assert pv.symbol_cost(f) == int(floor), f
    assert pv.RESIDUAL_COSTS[0, pv.RESIDUAL_CENTRE] == pv.symbol_cost(pv.RESIDUAL_TABLES[0][127])
    with pytest.raises(ValueError):
        pv.symbol_cost(0)


def test_cheapest_table_takes_the_first_of_equal_costs():
    costs = np.array([[3, 3], [1, 4], [4, 1], [2, 5]])
    assert pv.cheapest_table(costs, np.array([1, 1])) == 1  # 6, 5, 5, 7: the first 5
    assert pv.cheapest_table(costs, np.array([1, 3])) == 2  # 12, 13, 7, 17
    assert pv.cheapest_table(costs, np.array([0, 0])) == 0  # nothing to code: table 0


def test_decoder_follows_any_table_choice():
    """The selectors a chunk carries are all a decoder needs: a chunk coded with tables
    other than the cheapest decodes to the same symbols (only longer)."""
    f0, f1 = _frames(2)
    ref, sym = f0[3], f1[3]
    coded = pv.changed_blocks(sym, ref, 4, 1)
    assert coded.any()
    best, recon = pv.encode_predicted_channel(sym, ref, TABLES[3], 4, coded)
    rng = np.random.default_rng(18)
    for _ in range(8):
        sel = tuple(int(v) for v in rng.integers(16, size=5))
        chunk, _ = pv.encode_predicted_channel(sym, ref, TABLES[3], 4, coded, sel)
        assert chunk[3] >> 4 == sel[0] and len(chunk) >= len(best)
        assert np.array_equal(pv.decode_predicted_channel(chunk, ref, TABLES[3], 4), recon)
