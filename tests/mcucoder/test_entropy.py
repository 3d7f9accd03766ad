from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from mcucoder.entropy import (
    PROB_SCALE,
    ChannelTable,
    RansError,
    context_tables,
    huffman_lengths,
    quantise_pmf,
    rans_decode,
    rans_encode,
    table_from_laplace,
    tables_from_json,
    tables_to_json,
)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.floats(0, 1), min_size=1, max_size=255))
def test_quantised_pmf_is_a_valid_table(pmf):
    freq = quantise_pmf(np.array(pmf))
    assert sum(freq) == PROB_SCALE and min(freq) >= 1 and len(freq) == len(pmf)


@settings(max_examples=100, deadline=None)
@given(st.floats(-5, 5), st.floats(0.05, 20), st.integers(0, 2000), st.integers(0, 2**32 - 1))
def test_rans_round_trip(mu, b, n, seed):
    table = table_from_laplace(mu, b)
    rng = np.random.default_rng(seed)
    sym = np.clip(np.round(rng.laplace(mu, b, n)), table.lo, table.hi).astype(np.int64)
    data = rans_encode(sym, table)
    assert np.array_equal(rans_decode(data, n, table), sym)


def test_rate_close_to_ideal():
    table = table_from_laplace(0.0, 2.0)
    rng = np.random.default_rng(0)
    sym = np.clip(np.round(rng.laplace(0, 2.0, 20000)), table.lo, table.hi).astype(np.int64)
    ideal = table.bits(np.bincount(sym - table.lo, minlength=len(table.freq)))
    assert len(rans_encode(sym, table)) * 8 <= ideal * 1.01 + 64


def test_histogram_blend_covers_observed_values():
    counts = np.zeros(40)
    counts[[0, 20, 39]] = [5, 100, 5]
    t = table_from_laplace(0.0, 1.0, counts, count_offset=-20)
    assert t.lo <= -20 and t.hi >= 19


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=64), st.integers(0, 100))
def test_garbage_never_crashes(data, n):
    table = table_from_laplace(0.0, 1.5)
    try:
        out = rans_decode(data, n, table)
        assert len(out) == n
    except RansError:
        pass


def test_tables_json_round_trip_and_validation():
    tables = [table_from_laplace(0.5, 3.0), ChannelTable(-1, (PROB_SCALE - 2, 1, 1))]
    assert tables_from_json(tables_to_json(tables)) == tables
    with pytest.raises(ValueError):
        tables_from_json([{"offset": 0, "freq": [1, 2]}])


def _field(seed: int, h: int, w: int, n: int = 1) -> np.ndarray:
    """Spatially correlated integer fields, like latent channels."""
    rng = np.random.default_rng(seed)
    return np.round(np.cumsum(rng.laplace(0, 1.0, (n, h, w)), axis=2) * 0.4).astype(np.int64)


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 12), st.integers(1, 40), st.integers(0, 2**32 - 1))
def test_context_rans_round_trip(h, w, seed):
    base = table_from_laplace(0.0, 2.0)
    table = context_tables(base, np.clip(_field(seed + 1, 8, 8, 4), base.lo, base.hi) - base.lo)
    sym = np.clip(_field(seed, h, w)[0], table.lo, table.hi)
    data = rans_encode(sym, table, use_context=True)
    assert np.array_equal(rans_decode(data, h * w, table, w, use_context=True), sym.ravel())


def test_context_tables_save_bits_and_survive_json():
    base = table_from_laplace(0.0, 3.0)
    train = np.clip(_field(0, 28, 28, 30), base.lo, base.hi)
    table = context_tables(base, train - base.lo)
    assert tables_from_json(tables_to_json([table])) == [table]
    test = np.clip(_field(1, 28, 28)[0], base.lo, base.hi)
    assert len(rans_encode(test, table, True)) < 0.95 * len(rans_encode(test, base))


@settings(max_examples=100, deadline=None)
@given(st.binary(max_size=64), st.integers(1, 10))
def test_context_garbage_never_crashes(data, w):
    base = table_from_laplace(0.0, 1.5)
    table = context_tables(base, np.zeros((1, 4, 4), np.int64) + base.centre)
    try:
        rans_decode(data, 3 * w, table, w, use_context=True)
    except RansError:
        pass


def test_huffman_lengths_are_a_prefix_code():
    counts = np.array([50, 20, 10, 10, 5, 3, 1, 1])
    lengths = huffman_lengths(counts)
    assert (2.0**-lengths).sum() <= 1.0 + 1e-12
    assert lengths[0] == lengths.min()
