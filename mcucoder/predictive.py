"""Predicted frames in the latent domain (issue 18): closed-loop references, block skip
coding of symbol residuals, and the channel chunks of version 2 packets.

A camera watching a still scene sends the same symbols frame after frame. Here the
encoder keeps, per channel, the symbols the decoder holds (the integers it sent: closed
loop, so nothing drifts) and sends per block only what changed beyond a dead-zone. The
format is specified in ``docs/bitstream.md`` ("Predicted frames"). numpy only: no torch,
so the archive can walk a chain of frames back to its key frame without a model.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache

import numpy as np

from . import bitstream as bs
from .entropy import (
    CTX_THRESHOLDS,
    N_CTX,
    PROB_BITS,
    PROB_SCALE,
    ChannelTable,
    RansError,
    RansReader,
    contexts,
    geometric_table,
    rans_decode,
    rans_encode,
    rans_pack,
)

MODE_INTRA = 0  # the channel coded on its own, as in an intra packet
MODE_PREDICTED = 1  # skip flags and residuals against the channel's reference

BLOCK = 4  # default block side in latent cells (32 pixels); bench/pframes.py measures it
DEAD_ZONE = 1  # default: a block whose symbols all moved by at most this is skipped
KEY_INTERVAL = 50  # default frames from one key frame to the next

# Residuals wrap modulo the channel's alphabet (n <= 255 symbols) into -127..127: one
# 255-symbol alphabet for every channel of every model. 16 tables per kind, the encoder
# picks the cheapest per chunk (one byte: skip table << 4 | residual table).
RESIDUAL_CENTRE = 127
RESIDUAL_DECAY = (
    (1, 64),
    (1, 16),
    (1, 8),
    (1, 5),
    (1, 4),
    (1, 3),
    (2, 5),
    (1, 2),
    (3, 5),
    (2, 3),
    (3, 4),
    (4, 5),
    (6, 7),
    (9, 10),
    (14, 15),
    (29, 30),
)
RESIDUAL_TABLES = tuple(geometric_table(n, d, 2 * RESIDUAL_CENTRE + 1) for n, d in RESIDUAL_DECAY)
SKIP_CODED = (8, 32, 96, 192, 320, 512, 768, 1024, 1536, 2048, 2560, 3072, 3584, 3840, 4000, 4088)
SKIP_TABLES = tuple((PROB_SCALE - f, f) for f in SKIP_CODED)  # symbol 0 skipped, 1 coded
COST_BITS = 12  # the encoder's table choice counts bits in units of 2^-12 (integers)
_PREDICTED_HEAD = 3  # mode byte + 16-bit reference check
_SELECTORS = 3  # skip table, residual table per context (4 bits each), 4 bits zero


def reference_check(symbols: np.ndarray, table: ChannelTable) -> int:
    """16-bit check of one channel's reference: the low half of the CRC-32 of its symbol
    indices (symbol - offset, one byte each, raster order)."""
    idx = (np.asarray(symbols, np.int64) - table.offset).astype(np.uint8)
    return zlib.crc32(idx.tobytes()) & 0xFFFF


def _blocks(h: int, w: int, block: int) -> list[tuple[slice, slice]]:
    return [
        (slice(y, min(y + block, h)), slice(x, min(x + block, w)))
        for y in range(0, h, block)
        for x in range(0, w, block)
    ]


def motion_percent(changed: int, blocks: int) -> int:
    """The header's ``motion``: the share of blocks changed, in percent rounded up, in
    integers (a float ``ceil(100 * 7 / 100)`` is 8)."""
    return (100 * changed + blocks - 1) // blocks


def changed_blocks(
    symbols: np.ndarray, reference: np.ndarray, block: int, dead_zone: int
) -> np.ndarray:
    """Per block (raster order), whether any symbol moved by more than ``dead_zone``."""
    diff = np.abs(np.asarray(symbols, np.int64) - reference)
    return np.array([diff[b].max() > dead_zone for b in _blocks(*diff.shape, block)])


# -- channel chunks -----------------------------------------------------------------------


def encode_intra_channel(symbols: np.ndarray, table: ChannelTable, coding: int) -> bytes:
    """One channel as an intra packet carries it (coding method 1 or 2)."""
    if coding not in (bs.CODING_RANS, bs.CODING_RANS_CTX):
        raise ValueError(f"cannot encode with coding method {coding}")
    return rans_encode(symbols, table, coding == bs.CODING_RANS_CTX)


def decode_intra_channel(
    chunk: bytes, table: ChannelTable, coding: int, h: int, w: int
) -> np.ndarray:
    """Symbols (h, w) of an intra-coded channel; raises ``RansError`` or ``PacketError``."""
    if coding == bs.CODING_RAW:
        if len(chunk) != h * w:
            raise bs.Inconsistent(f"raw chunk of {len(chunk)} bytes, expected {h * w}")
        return np.frombuffer(chunk, np.int8).reshape(h, w).astype(np.int64)
    if coding == bs.CODING_RANS_CTX and table.ctx_freq is None:
        raise bs.UnsupportedFeature("this model has no context tables")
    return rans_decode(chunk, h * w, table, w, coding == bs.CODING_RANS_CTX).reshape(h, w)


def wrap_residual(diff: np.ndarray, n: int) -> np.ndarray:
    """Residual ``symbols - reference`` modulo the alphabet size, in -(n//2) .. (n-1)//2."""
    d = np.mod(diff, n)
    return np.where(d > (n - 1) // 2, d - n, d)


@cache
def symbol_cost(freq: int) -> int:
    """What a symbol of frequency ``freq`` costs, in 2^-12 bits: floor(2^12 log2(4096 / freq)),
    exactly, in integers (12 * 2^12 - ceil(log2(freq^(2^12)))), so every encoder of the
    contract, in any language, picks the same tables (float64 sums could differ by an ulp)."""
    if not 1 <= freq <= PROB_SCALE:
        raise ValueError(f"frequency {freq} outside 1..{PROB_SCALE}")
    return (PROB_BITS << COST_BITS) - (freq ** (1 << COST_BITS) - 1).bit_length()


def _costs(tables: Sequence[tuple[int, ...]]) -> np.ndarray:
    return np.array([[symbol_cost(f) for f in t] for t in tables], np.int64)


RESIDUAL_COSTS = _costs(RESIDUAL_TABLES)  # (16, 255)
SKIP_COSTS = _costs(SKIP_TABLES)  # (16, 2)


def cheapest_table(costs: np.ndarray, counts: np.ndarray) -> int:
    """The table coding symbols of these counts in the fewest (integer) bits, the lowest
    index among equal ones (table 0 for no symbols at all)."""
    return int(np.argmin(costs @ np.asarray(counts, np.int64)))


def _residual_contexts(zr: np.ndarray) -> np.ndarray:
    """Context 0..3 of each residual from its left and top neighbours' magnitudes (zero in
    skipped blocks and outside): the thresholds of coding method 2."""
    return contexts(zr + RESIDUAL_CENTRE, RESIDUAL_CENTRE)


def encode_predicted_channel(
    symbols: np.ndarray,
    reference: np.ndarray,
    table: ChannelTable,
    block: int,
    coded: np.ndarray,
    selectors: tuple[int, int, int, int, int] | None = None,
) -> tuple[bytes, np.ndarray]:
    """A predicted chunk coding the blocks marked in ``coded``; returns it with the
    reconstruction both sides then hold (reference in skipped blocks, symbols elsewhere).
    ``selectors``: the skip table and the residual table of each context (None: the
    cheapest, as the contract says; tests pass others, which any decoder must follow)."""
    symbols = np.asarray(symbols, np.int64)
    head = bytes([MODE_PREDICTED]) + reference_check(reference, table).to_bytes(2, "little")
    recon = reference.copy()
    if not coded.any():
        return head, recon
    blocks = _blocks(*symbols.shape, block)
    res = wrap_residual(symbols - reference, len(table.freq))
    zr = np.zeros_like(res)
    for is_coded, b in zip(coded, blocks, strict=True):
        if is_coded:
            zr[b] = res[b]
            recon[b] = symbols[b]
    ctx = _residual_contexts(zr)
    indices, tabs = [], []
    for is_coded, b in zip(coded, blocks, strict=True):
        indices.append(int(is_coded))
        tabs.append(0)
        if is_coded:
            indices += (zr[b] + RESIDUAL_CENTRE).ravel().tolist()
            tabs += (ctx[b] + 1).ravel().tolist()
    idx, tab = np.asarray(indices), np.asarray(tabs)
    if selectors is None:
        st = cheapest_table(SKIP_COSTS, np.bincount(coded.astype(np.int64), minlength=2))
        rts = [
            cheapest_table(
                RESIDUAL_COSTS, np.bincount(idx[tab == c + 1], minlength=2 * RESIDUAL_CENTRE + 1)
            )
            for c in range(N_CTX)
        ]
    else:
        st, *rts = selectors
    body = rans_pack(indices, tabs, (SKIP_TABLES[st], *(RESIDUAL_TABLES[t] for t in rts)))
    selectors = bytes([st << 4 | rts[0], rts[1] << 4 | rts[2], rts[3] << 4])
    return head + selectors + body, recon


def decode_predicted_channel(
    chunk: bytes, reference: np.ndarray, table: ChannelTable, block: int
) -> np.ndarray:
    """Symbols of a predicted chunk whose reference check the caller has verified."""
    recon = np.array(reference, np.int64)
    if len(chunk) == _PREDICTED_HEAD:
        return recon
    sel = chunk[_PREDICTED_HEAD : _PREDICTED_HEAD + _SELECTORS]
    if len(sel) < _SELECTORS or sel[2] & 15:
        raise bs.Inconsistent("predicted chunk with a malformed table selector")
    st, rts = sel[0] >> 4, (sel[0] & 15, sel[1] >> 4, sel[1] & 15, sel[2] >> 4)
    reader = RansReader(
        chunk[_PREDICTED_HEAD + _SELECTORS :],
        (SKIP_TABLES[st], *(RESIDUAL_TABLES[t] for t in rts)),
    )
    h, w = recon.shape
    t1, t2 = CTX_THRESHOLDS[1], CTX_THRESHOLDS[2]
    mag = [[0] * w for _ in range(h)]  # |residual| decoded so far, 0 in skipped blocks
    res = np.zeros((h, w), np.int64)
    for ys, xs in _blocks(h, w, block):
        if not reader.read(0):
            continue
        for y in range(ys.start, ys.stop):
            row, above = mag[y], mag[y - 1] if y else None
            for x in range(xs.start, xs.stop):
                a = (row[x - 1] if x else 0) + (above[x] if above else 0)
                c = 0 if a == 0 else 1 if a <= t1 else 2 if a <= t2 else 3
                r = reader.read(1 + c) - RESIDUAL_CENTRE
                row[x] = abs(r)
                res[y, x] = r
        recon[ys, xs] = (
            np.mod(recon[ys, xs] - table.offset + res[ys, xs], len(table.freq)) + table.offset
        )
    reader.finish()
    return recon


# -- packets --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Reference:
    """What a decoder holds after a frame: per channel the symbols it decoded or kept
    (None: never received, or dropped since the last key frame)."""

    seq: int
    latent_size: tuple[int, int]
    channels: tuple[np.ndarray | None, ...]

    def channel(self, c: int) -> np.ndarray | None:
        return self.channels[c] if c < len(self.channels) else None


def reference_seq(packet: bs.Packet) -> int | None:
    """The ``seq`` of the frame a packet predicts from (None: a key frame)."""
    return packet.reference_seq


def chain_to_key(
    packet: bs.Packet, lookup: Callable[[int], bs.Packet | None], limit: int = 100_000
) -> list[bs.Packet]:
    """The packets to decode, in order, to show ``packet``: back along ``ref`` to its key
    frame (``lookup(seq)`` gives an archived packet, None when it is missing), then
    ``packet`` last. Decode them with a :class:`PredictiveDecoder`. A missing link raises
    :class:`~mcucoder.bitstream.MissingReference`."""
    chain = [packet]
    while (ref := chain[-1].reference_seq) is not None:
        if len(chain) > limit:
            raise bs.MissingReference(f"frame {packet.seq}: no key frame within {limit} frames")
        found = lookup(ref)
        if found is None:
            raise bs.MissingReference(
                f"frame {packet.seq} needs frame {ref} (on its way back to a key frame), "
                "which is missing"
            )
        chain.append(found)
    return chain[::-1]


def decode_symbols(
    packet: bs.Packet,
    tables: Sequence[ChannelTable],
    reference: Reference | None = None,
    channels: int | None = None,
) -> np.ndarray:
    """The symbols (k, h, w) of the first ``channels`` channels (all: None) of a packet.

    A predicted frame needs ``reference``, the decoder state after the frame it predicts
    from (see :func:`advance`); a missing one, another frame's or one whose channel
    differs from what the encoder held raises :class:`~mcucoder.bitstream.MissingReference`
    (decoding fewer channels needs fewer references)."""
    k = packet.n_channels if channels is None else max(1, min(channels, packet.n_channels))
    if k > len(tables):
        raise bs.Inconsistent(f"{k} channels, the model has {len(tables)}")
    if packet.frame_type == bs.FRAME_PREDICTED:
        if packet.version < bs.VERSION_2:
            raise bs.UnsupportedFeature("version 1 reserves predicted frames; they need version 2")
        _check_reference(packet, reference)
    h, w = packet.latent_size
    out = np.zeros((k, h, w), np.int64)
    for c in range(k):
        chunk = packet.chunks[c]
        try:
            if packet.frame_type == bs.FRAME_INTRA:
                out[c] = decode_intra_channel(chunk, tables[c], packet.coding, h, w)
                continue
            if not chunk:
                raise bs.Inconsistent(f"channel {c}: empty chunk in a predicted frame")
            if chunk[0] == MODE_INTRA:
                out[c] = decode_intra_channel(chunk[1:], tables[c], packet.coding, h, w)
            elif chunk[0] == MODE_PREDICTED:
                out[c] = _decode_predicted(packet, c, reference, tables[c])
            else:
                raise bs.UnsupportedFeature(f"channel {c}: unknown chunk mode {chunk[0]}")
        except RansError as e:
            raise bs.Inconsistent(f"channel {c}: {e}") from None
    return out


def _check_reference(packet: bs.Packet, reference: Reference | None) -> None:
    want = packet.reference_seq
    if reference is None:
        raise bs.MissingReference(
            f"frame {packet.seq} predicts from frame {want}, and no reference is held"
        )
    if reference.seq != want:
        raise bs.MissingReference(
            f"frame {packet.seq} predicts from frame {want}, the reference held is frame "
            f"{reference.seq}"
        )
    if reference.latent_size != packet.latent_size:
        raise bs.MissingReference(
            f"frame {packet.seq} is {packet.width}x{packet.height}, its reference another size"
        )


def _decode_predicted(
    packet: bs.Packet, c: int, reference: Reference | None, table: ChannelTable
) -> np.ndarray:
    chunk = packet.chunks[c]
    if len(chunk) < _PREDICTED_HEAD:
        raise bs.Inconsistent(f"channel {c}: predicted chunk of {len(chunk)} bytes")
    ref = reference.channel(c) if reference is not None else None
    if ref is None:
        raise bs.MissingReference(
            f"frame {packet.seq} predicts channel {c}, which frame {packet.reference_seq} "
            "did not leave the decoder (dropped on the way, or never sent)"
        )
    if reference_check(ref, table) != int.from_bytes(chunk[1:3], "little"):
        raise bs.MissingReference(
            f"frame {packet.seq}: channel {c} of the reference differs from the encoder's "
            "(a frame or channel on the way was lost)"
        )
    return decode_predicted_channel(chunk, ref, table, packet.block)


def advance(reference: Reference | None, packet: bs.Packet, symbols: np.ndarray) -> Reference:
    """The decoder state after ``packet``, given the symbols decoded from it (the first
    k channels). A key frame starts afresh; a predicted frame keeps the reference of the
    channels it does not carry. Channels carried but not decoded are unknown after it."""
    k = len(symbols)
    if packet.frame_type == bs.FRAME_INTRA or reference is None:
        kept: list[np.ndarray | None] = []
    else:
        kept = list(reference.channels)
    kept += [None] * max(0, packet.n_channels - len(kept))
    for c in range(packet.n_channels):
        kept[c] = symbols[c] if c < k else None
    return Reference(packet.seq, packet.latent_size, tuple(kept))


# -- the encoder's side ---------------------------------------------------------------------


@dataclass(frozen=True)
class EncodedFrame:
    """What the encoder sent: the packet, whether it was a key frame, the share of blocks
    that changed (None without a reference) and the reconstruction (k, h, w)."""

    packet: bytes
    key: bool
    motion: float | None
    symbols: np.ndarray


class PredictiveEncoder:
    """Closed-loop P-frame encoder over symbols (a camera's side of a stream).

    ``key_interval``: frames from one key frame to the next (1: intra only).
    ``block``: block side in latent cells; ``dead_zone``: largest symbol change a skipped
    block may hide. :meth:`request_key_frame` makes the next frame a key frame (the
    platform asks after a lost packet, on live-view open, on a tier change).
    """

    def __init__(
        self,
        tables: Sequence[ChannelTable],
        model_id: int,
        coding: int,
        key_interval: int = KEY_INTERVAL,
        block: int = BLOCK,
        dead_zone: int = DEAD_ZONE,
    ) -> None:
        if key_interval < 1:
            raise ValueError(f"key interval must be at least 1, got {key_interval}")
        if not 1 <= block <= 255:
            raise ValueError(f"block must be in 1..255 latent cells, got {block}")
        if dead_zone < 0:
            raise ValueError(f"dead zone must be >= 0, got {dead_zone}")
        self.tables, self.model_id, self.coding = list(tables), model_id, coding
        self.key_interval, self.block, self.dead_zone = key_interval, block, dead_zone
        self.reference: Reference | None = None
        self._since_key = 0
        self._key_requested = False

    def _intra(self, symbols: np.ndarray, c: int) -> bytes:
        return encode_intra_channel(symbols[c], self.tables[c], self.coding)

    def request_key_frame(self) -> None:
        self._key_requested = True

    def _needs_key(self, seq: int, size: tuple[int, int]) -> bool:
        ref = self.reference
        return (
            self._key_requested
            or ref is None
            or ref.latent_size != size
            or self._since_key + 1 >= self.key_interval
            or not 1 <= (seq - ref.seq) % (1 << 32) <= 0xFFFF
        )

    def encode(
        self,
        symbols: np.ndarray,
        width: int,
        height: int,
        seq: int,
        capture_time_ms: int = 0,
        key: bool = False,
    ) -> EncodedFrame:
        """Code ``symbols`` (k, h, w): the first k channels of a frame."""
        symbols = np.asarray(symbols, np.int64)
        k, h, w = symbols.shape
        if not 1 <= k <= len(self.tables):
            raise ValueError(f"channels must be in 1..{len(self.tables)}, got {k}")
        key = key or self._needs_key(seq, (h, w))
        ref = self.reference
        same_size = ref is not None and ref.latent_size == (h, w)
        n_blocks = len(_blocks(h, w, self.block))
        changed = np.zeros(n_blocks, bool)
        measured = False
        parts: list[tuple[int, bytes]] = []  # (mode, chunk without the mode byte)
        recon, predicted = [], 0
        for c in range(k):
            ref_c = ref.channel(c) if same_size and ref is not None else None
            if ref_c is not None:
                coded = changed_blocks(symbols[c], ref_c, self.block, self.dead_zone)
                changed |= coded
                measured = True
            if key or ref_c is None:
                parts.append((MODE_INTRA, self._intra(symbols, c)))
                recon.append(symbols[c])
                continue
            chunk, rec = encode_predicted_channel(
                symbols[c], ref_c, self.tables[c], self.block, coded
            )
            # more than a quarter of the blocks moved (a scene change?): intra where its
            # chunk is strictly smaller (``chunk`` holds the mode byte the intra one lacks)
            intra = self._intra(symbols, c) if 4 * int(coded.sum()) > n_blocks else None
            if intra is not None and len(intra) < len(chunk) - 1:
                parts.append((MODE_INTRA, intra))
                recon.append(symbols[c])
            else:
                parts.append((MODE_PREDICTED, chunk[1:]))
                recon.append(rec)
                predicted += 1
        key = key or predicted == 0  # nothing predicted: a key frame costs the same
        chunks = [body if key else bytes([mode]) + body for mode, body in parts]
        motion = motion_percent(int(changed.sum()), n_blocks) if measured else bs.MOTION_UNKNOWN
        packet = bs.build_packet(
            model_id=self.model_id,
            width=width,
            height=height,
            chunks=chunks,
            seq=seq,
            capture_time_ms=capture_time_ms,
            frame_type=bs.FRAME_INTRA if key else bs.FRAME_PREDICTED,
            coding=self.coding,
            ref=0 if key else (seq - ref.seq) % (1 << 32),  # type: ignore[union-attr]
            version=bs.VERSION_2,
            block=0 if key else self.block,
            motion=motion,
        )
        out = np.stack(recon)
        self.reference = advance(None if key else ref, bs.parse_packet(packet), out)
        self._since_key = 0 if key else self._since_key + 1
        self._key_requested = False
        return EncodedFrame(packet, key, changed.mean() if measured else None, out)


class PredictiveDecoder:
    """A decoder's side of a stream: symbols of each packet in turn, the reference kept."""

    def __init__(self, tables: Sequence[ChannelTable]) -> None:
        self.tables = list(tables)
        self.reference: Reference | None = None

    def decode(self, packet: bs.Packet, channels: int | None = None) -> np.ndarray:
        """Symbols (k, h, w). A refused frame (:class:`~mcucoder.bitstream.PacketError`)
        leaves the reference as it was, so the next key frame resumes the stream."""
        symbols = decode_symbols(packet, self.tables, self.reference, channels)
        self.reference = advance(self.reference, packet, symbols)
        return symbols
