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


@dataclass(frozen=True)
class ChannelTable:
    """Static table of one channel: symbols ``offset .. offset + len(freq) - 1``."""

    offset: int
    freq: tuple[int, ...]  # sums to PROB_SCALE, every entry >= 1

    @property
    def lo(self) -> int:
        return self.offset

    @property
    def hi(self) -> int:
        return self.offset + len(self.freq) - 1

    def cum(self) -> list[int]:
        c = [0]
        for f in self.freq:
            c.append(c[-1] + f)
        return c

    def bits(self, counts: np.ndarray) -> float:
        """Ideal code length of a histogram of symbols over this alphabet."""
        p = np.asarray(self.freq, float) / PROB_SCALE
        return float(-(counts * np.log2(p)).sum())


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
    return [{"offset": t.offset, "freq": list(t.freq)} for t in tables]


def tables_from_json(data: list[dict]) -> list[ChannelTable]:
    tables = []
    for d in data:
        t = ChannelTable(int(d["offset"]), tuple(int(f) for f in d["freq"]))
        if sum(t.freq) != PROB_SCALE or min(t.freq) < 1 or len(t.freq) > MAX_SYMBOLS:
            raise ValueError("invalid entropy table")
        tables.append(t)
    return tables


class RansError(ValueError):
    """A chunk that does not decode (corrupted or coded with other tables)."""


def rans_encode(symbols: np.ndarray, table: ChannelTable) -> bytes:
    """Encode integers (already clamped to the table range) into one rANS stream."""
    freq = table.freq
    cum = table.cum()
    idx = (np.asarray(symbols, np.int64).ravel() - table.offset).tolist()
    x = RANS_L
    out = bytearray()
    shift = (RANS_L >> PROB_BITS) << 8
    for s in reversed(idx):
        f = freq[s]
        x_max = shift * f
        while x >= x_max:
            out.append(x & 0xFF)
            x >>= 8
        x = ((x // f) << PROB_BITS) + (x % f) + cum[s]
    out += x.to_bytes(4, "little")
    out.reverse()
    return bytes(out)


def rans_decode(data: bytes, n: int, table: ChannelTable) -> np.ndarray:
    """Decode ``n`` symbols; raises ``RansError`` when the stream is not consistent."""
    if len(data) < 4:
        raise RansError("rANS chunk shorter than its 4-byte state")
    freq = table.freq
    cum = table.cum()
    lut = bytearray()
    for s, f in enumerate(freq):
        lut += bytes([s]) * f
    mask = PROB_SCALE - 1
    x = int.from_bytes(data[:4], "big")
    pos, end = 4, len(data)
    out = [0] * n
    for i in range(n):
        slot = x & mask
        s = lut[slot]
        out[i] = s
        x = freq[s] * (x >> PROB_BITS) + slot - cum[s]
        while x < RANS_L:
            if pos >= end:
                raise RansError("rANS chunk ended early")
            x = (x << 8) | data[pos]
            pos += 1
    if x != RANS_L or pos != end:
        raise RansError("rANS chunk does not end in the initial state")
    return np.asarray(out, np.int64) + table.offset
