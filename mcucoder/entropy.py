"""Entropy coding: a learned per-channel Laplace model for training, the static integer
tables derived from it, and a byte-wise rANS coder an MCU can run with those tables.

The coder is integer-only: 32-bit state, 12-bit probabilities, byte renormalisation
(ryg_rans style). Each latent channel is coded as its own stream, so any prefix of
channels decodes. Symbols outside a channel's table range are clamped at encode time.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

PROB_BITS = 12
PROB_SCALE = 1 << PROB_BITS
RANS_L = 1 << 23  # lower bound of the normalised state interval [L, 256 L)
MAX_SYMBOLS = 255  # per channel alphabet limit (keeps tables small for flash)


CTX_THRESHOLDS = (0, 2, 5)  # |left - centre| + |top - centre| -> context 0..3
N_CTX = len(CTX_THRESHOLDS) + 1


@dataclass(frozen=True)
class ChannelTable:
    """Static table of one channel: symbols ``offset .. offset + len(freq) - 1``.

    ``ctx_freq`` optionally holds one table per spatial context (coding method 2), over
    the same alphabet; ``centre`` is the symbol index that contexts measure from.
    """

    offset: int
    freq: tuple[int, ...]  # sums to PROB_SCALE, every entry >= 1
    centre: int = 0
    ctx_freq: tuple[tuple[int, ...], ...] | None = None

    @property
    def lo(self) -> int:
        return self.offset

    @property
    def hi(self) -> int:
        return self.offset + len(self.freq) - 1

    def cum(self) -> list[int]:
        return _cum(self.freq)

    def bits(self, counts: np.ndarray) -> float:
        """Ideal code length of a histogram of symbols over this alphabet."""
        p = np.asarray(self.freq, float) / PROB_SCALE
        return float(-(counts * np.log2(p)).sum())


def _cum(freq: tuple[int, ...]) -> list[int]:
    c = [0]
    for f in freq:
        c.append(c[-1] + f)
    return c


def quantise_pmf(pmf: np.ndarray) -> tuple[int, ...]:
    """Turn a probability vector into integer frequencies summing to ``PROB_SCALE``, each
    >= 1, deterministically (largest remainders get the spare counts)."""
    n = len(pmf)
    if n > PROB_SCALE or n == 0:
        raise ValueError("alphabet size out of range")
    pmf = np.maximum(np.asarray(pmf, np.float64), 0)
    pmf = pmf / pmf.sum() if pmf.sum() > 0 else np.full(n, 1.0 / n)
    spare = PROB_SCALE - n
    raw = pmf * spare
    freq = np.floor(raw).astype(np.int64)
    rest = spare - int(freq.sum())
    order = np.argsort(-(raw - freq), kind="stable")
    freq[order[:rest]] += 1
    freq += 1
    assert int(freq.sum()) == PROB_SCALE
    return tuple(int(f) for f in freq)


def laplace_cdf(x: np.ndarray, mu: float, b: float) -> np.ndarray:
    z = (x - mu) / b
    return np.where(z < 0, 0.5 * np.exp(np.minimum(z, 0)), 1 - 0.5 * np.exp(-np.maximum(z, 0)))


def table_from_laplace(
    mu: float, b: float, counts: np.ndarray | None = None, count_offset: int = 0, tail: float = 1e-4
) -> ChannelTable:
    """Integer table for a quantised Laplace(mu, b); optionally blended with a measured
    histogram ``counts`` (symbols from ``count_offset``), which wins where there is data."""
    b = max(float(b), 0.05)
    half = b * math.log(1 / tail)
    lo, hi = math.floor(mu - half), math.ceil(mu + half)
    if counts is not None and counts.sum() > 0:
        nz = np.nonzero(counts)[0]
        lo, hi = min(lo, count_offset + int(nz[0])), max(hi, count_offset + int(nz[-1]))
    if hi - lo + 1 > MAX_SYMBOLS:  # keep the alphabet bounded, centred on the mode
        c = round(mu)
        lo, hi = c - MAX_SYMBOLS // 2, c + MAX_SYMBOLS // 2
    sym = np.arange(lo, hi + 1, dtype=np.float64)
    pmf = laplace_cdf(sym + 0.5, mu, b) - laplace_cdf(sym - 0.5, mu, b)
    pmf[0] += laplace_cdf(np.array([lo - 0.5]), mu, b)[0]
    pmf[-1] += 1 - laplace_cdf(np.array([hi + 0.5]), mu, b)[0]
    if counts is not None and counts.sum() > 0:
        h = np.zeros_like(pmf)
        for i, c in enumerate(counts):
            s = count_offset + i
            h[min(max(s, lo), hi) - lo] += c
        n = h.sum()
        # the parametric model acts as a prior worth a few hundred samples
        pmf = (h + 200 * pmf) / (n + 200)
    return ChannelTable(offset=lo, freq=quantise_pmf(pmf))


def tables_to_json(tables: list[ChannelTable]) -> list[dict]:
    out = []
    for t in tables:
        d: dict = {"offset": t.offset, "freq": list(t.freq)}
        if t.ctx_freq is not None:
            d["context"] = {"centre": t.centre, "freq": [list(f) for f in t.ctx_freq]}
        out.append(d)
    return out


def _valid(freq: tuple[int, ...], n: int) -> bool:
    return len(freq) == n and sum(freq) == PROB_SCALE and min(freq) >= 1


def tables_from_json(data: list[dict]) -> list[ChannelTable]:
    tables = []
    for d in data:
        freq = tuple(int(f) for f in d["freq"])
        ctx = d.get("context")
        t = ChannelTable(
            int(d["offset"]),
            freq,
            int(ctx["centre"]) if ctx else 0,
            tuple(tuple(int(f) for f in fs) for fs in ctx["freq"]) if ctx else None,
        )
        n = len(freq)
        ok = 1 <= n <= MAX_SYMBOLS and _valid(freq, n) and 0 <= t.centre < n
        if t.ctx_freq is not None:
            ok = ok and len(t.ctx_freq) == N_CTX and all(_valid(f, n) for f in t.ctx_freq)
        if not ok:
            raise ValueError("invalid entropy table")
        tables.append(t)
    return tables


def contexts(idx: np.ndarray, centre: int) -> np.ndarray:
    """Context of each symbol of a (H, W) channel from its left and top neighbours
    (already decoded in raster order; outside the frame counts as ``centre``)."""
    d = np.abs(np.asarray(idx, np.int64) - centre)
    s = np.zeros_like(d)
    s[:, 1:] += d[:, :-1]
    s[1:, :] += d[:-1, :]
    return np.searchsorted(np.array(CTX_THRESHOLDS), s, side="left")


def context_tables(
    table: ChannelTable, idx: np.ndarray, prior_weight: float = 50.0
) -> ChannelTable:
    """Add per-context tables to ``table`` from training symbols ``idx`` (N, H, W) in
    symbol-index space; the channel's own table is the prior of each context."""
    n = len(table.freq)
    centre = int(np.argmax(table.freq))
    prior = np.asarray(table.freq, np.float64) / PROB_SCALE
    ctx = np.concatenate([contexts(i, centre).ravel() for i in idx])
    sym = np.concatenate([i.ravel() for i in idx])
    freqs = []
    for c in range(N_CTX):
        h = np.bincount(sym[ctx == c], minlength=n)[:n].astype(np.float64)
        freqs.append(quantise_pmf((h + prior_weight * prior) / (h.sum() + prior_weight)))
    return ChannelTable(table.offset, table.freq, centre, tuple(freqs))


class RansError(ValueError):
    """A chunk that does not decode (corrupted or coded with other tables)."""


def rans_encode(symbols: np.ndarray, table: ChannelTable, use_context: bool = False) -> bytes:
    """Encode a channel (already clamped to the table range) into one rANS stream.

    ``symbols`` is (H, W) in raster order; with ``use_context`` each symbol is coded with
    the table of its spatial context (coding method 2), else with the channel table.
    """
    sym = np.asarray(symbols, np.int64)
    idx = sym - table.offset
    if use_context:
        if table.ctx_freq is None or idx.ndim != 2:
            raise ValueError("context coding needs context tables and a 2-D channel")
        freqs = table.ctx_freq
        ctx = contexts(idx, table.centre).ravel().tolist()
    else:
        freqs = (table.freq,)
        ctx = [0] * idx.size
    return rans_pack(idx.ravel().tolist(), ctx, freqs)


def rans_pack(
    indices: list[int], tables: list[int], freqs: tuple[tuple[int, ...], ...] | list
) -> bytes:
    """The rANS coder itself: symbol ``indices[i]`` (0-based in its alphabet) coded with
    frequency table ``freqs[tables[i]]``. Coded backwards so that :class:`RansReader`
    reads forwards and may pick each symbol's table from what it decoded before."""
    cums = [_cum(f) for f in freqs]
    x = RANS_L
    out = bytearray()
    shift = (RANS_L >> PROB_BITS) << 8
    for s, c in zip(reversed(indices), reversed(tables), strict=True):
        f = freqs[c][s]
        x_max = shift * f
        while x >= x_max:
            out.append(x & 0xFF)
            x >>= 8
        x = ((x // f) << PROB_BITS) + (x % f) + cums[c][s]
    out += x.to_bytes(4, "little")
    out.reverse()
    return bytes(out)


class RansReader:
    """Symbol-by-symbol decoding of a :func:`rans_pack` stream, each symbol with the table
    the caller names (for streams whose tables depend on earlier symbols)."""

    def __init__(self, data: bytes, freqs: tuple[tuple[int, ...], ...] | list) -> None:
        if len(data) < 4:
            raise RansError("rANS chunk shorter than its 4-byte state")
        self.data, self.pos = data, 4
        self.x = int.from_bytes(data[:4], "big")
        self.freqs = freqs
        self.cums = [_cum(f) for f in freqs]
        self.luts = [_slot_lut(f) for f in freqs]

    def read(self, table: int) -> int:
        x, data = self.x, self.data
        slot = x & (PROB_SCALE - 1)
        s = self.luts[table][slot]
        x = self.freqs[table][s] * (x >> PROB_BITS) + slot - self.cums[table][s]
        while x < RANS_L:
            if self.pos >= len(data):
                raise RansError("rANS chunk ended early")
            x = (x << 8) | data[self.pos]
            self.pos += 1
        self.x = x
        return s

    def finish(self) -> None:
        """A valid stream ends in the initial state with every byte read."""
        if self.x != RANS_L or self.pos != len(self.data):
            raise RansError("rANS chunk does not end in the initial state")


def geometric_table(num: int, den: int, size: int) -> tuple[int, ...]:
    """Integer-only table over ``size`` (odd) symbols centred on ``size // 2``, falling by
    ``num/den`` per step from the centre: exact on any machine, so a camera can rebuild
    it or hard-code it (docs/bitstream.md, predicted frames)."""
    centre = size // 2
    weights = [(1 << 64) * num ** abs(i - centre) // den ** abs(i - centre) for i in range(size)]
    return integer_table(weights)


def integer_table(weights: list[int]) -> tuple[int, ...]:
    """Frequencies summing to ``PROB_SCALE``, each >= 1, proportional to integer
    ``weights``: floors first, the spare counts to the largest remainders (lowest index
    first among equals). Integer arithmetic only."""
    n, total = len(weights), sum(weights)
    spare = PROB_SCALE - n
    if total <= 0 or spare < 0:
        raise ValueError("weights must be positive and at most PROB_SCALE of them")
    freq = [w * spare // total for w in weights]
    rem = [w * spare % total for w in weights]
    for i in sorted(range(n), key=lambda i: (-rem[i], i))[: spare - sum(freq)]:
        freq[i] += 1
    return tuple(f + 1 for f in freq)


def _slot_lut(freq: tuple[int, ...]) -> bytes:
    lut = bytearray()
    for s, f in enumerate(freq):
        lut += bytes([s]) * f
    return bytes(lut)


def rans_decode(
    data: bytes, n: int, table: ChannelTable, width: int | None = None, use_context: bool = False
) -> np.ndarray:
    """Decode ``n`` symbols (raster order, rows of ``width`` when contextual); raises
    ``RansError`` when the stream is not consistent."""
    if len(data) < 4:
        raise RansError("rANS chunk shorter than its 4-byte state")
    if use_context:
        if table.ctx_freq is None or not width or n % width:
            raise RansError("context decoding needs context tables and the row width")
        freqs = table.ctx_freq
    else:
        freqs = (table.freq,)
        width = n or 1
    cums = [_cum(f) for f in freqs]
    luts = [_slot_lut(f) for f in freqs]
    t1, t2 = CTX_THRESHOLDS[1], CTX_THRESHOLDS[2]
    centre = table.centre
    mask = PROB_SCALE - 1
    x = int.from_bytes(data[:4], "big")
    pos, end = 4, len(data)
    out = [0] * n
    above = [0] * width  # |symbol - centre| of the row above, per column
    left = 0
    for i in range(n):
        col = i % width
        if use_context:
            if col == 0:
                left = 0
            a = left + above[col]
            c = 0 if a == 0 else 1 if a <= t1 else 2 if a <= t2 else 3
        else:
            c = 0
        freq, cum = freqs[c], cums[c]
        slot = x & mask
        s = luts[c][slot]
        out[i] = s
        x = freq[s] * (x >> PROB_BITS) + slot - cum[s]
        while x < RANS_L:
            if pos >= end:
                raise RansError("rANS chunk ended early")
            x = (x << 8) | data[pos]
            pos += 1
        if use_context:
            left = s - centre if s >= centre else centre - s
            above[col] = left
    if x != RANS_L or pos != end:
        raise RansError("rANS chunk does not end in the initial state")
    return np.asarray(out, np.int64) + table.offset


def huffman_lengths(counts: np.ndarray) -> np.ndarray:
    """Code lengths of a Huffman code for ``counts`` (zero counts get a count of 1, as a
    static table must code every symbol): the per-channel baseline of the reference."""
    import heapq

    w = np.maximum(np.asarray(counts, np.float64), 1.0)
    if len(w) == 1:
        return np.ones(1, np.int64)
    heap = [(float(v), i, [i]) for i, v in enumerate(w)]
    heapq.heapify(heap)
    lengths = np.zeros(len(w), np.int64)
    uid = len(w)
    while len(heap) > 1:
        a, _, sa = heapq.heappop(heap)
        b, _, sb = heapq.heappop(heap)
        for i in sa + sb:
            lengths[i] += 1
        heapq.heappush(heap, (a + b, uid, sa + sb))
        uid += 1
    return lengths
