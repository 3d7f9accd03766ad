"""Hypothesis strategies for hostile device input: any JSON a device could send (and some
only a Python caller could hand over), biased towards the contract's field names; and what
"storable" means for what a validator accepts."""

from __future__ import annotations

import json
from dataclasses import fields
from typing import Any

from hypothesis import strategies as st

from protocol.payloads import COUNTERS, Desired

# Every character, with the ones that break storage (NUL, lone surrogates) made common.
dangerous = st.sampled_from(["\x00", "\ud800", "\udfff", "\\", '"', "\u00e9", "\U0001f600"])
any_text = st.text(dangerous | st.characters(exclude_categories=()), max_size=12)

scalars = st.none() | st.booleans() | any_text | st.floats() | st.integers()
huge_ints = st.integers(min_value=-(2**70), max_value=2**70) | st.sampled_from(
    [2**31, 2**63, 2**64, -(2**63) - 1, 10**30]
)
edge_floats = st.sampled_from([1e400, -1e400, float("nan"), 1e308, 5e-324, -0.0, 1e20])
leaves = scalars | huge_ints | edge_floats

json_values = st.recursive(
    leaves,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(any_text, inner, max_size=4),
    max_leaves=12,
)

KNOWN = (
    [f.name for f in fields(Desired)]
    + list(COUNTERS)
    + ["device", "ts", "uptime_s", "seq", "backlog", "max_backlog", "puback_ms"]
    + ["throughput_kbps", "link_kbps", "state", "reason", "error", "rejected", "firmware"]
)

# An object with some of the contract's fields (any value) and some unknown ones.
objects = st.builds(
    lambda known, extra: extra | known,
    st.dictionaries(st.sampled_from(KNOWN), json_values | st.just({"mean": 1e400}), max_size=8),
    st.dictionaries(any_text, json_values, max_size=3),
)


def _dumps(obj: Any) -> bytes:
    # allow_nan: NaN / Infinity tokens must be refused; surrogates survive \\u escapes
    return json.dumps(obj, allow_nan=True).encode()


# Number literals json.dumps never writes: 1e400 parses as infinity, big ints as big ints.
literals = st.sampled_from(
    ["1e400", "-1e400", "1e20", "NaN", "-Infinity", "-0", "100000000000", "9223372036854775808",
     "1.5", "-1", "1" * 5000, '"\\u0000"', '"\\ud800"', '"\\udfff\\ud800"', "[[[[1]]]]"]
)  # fmt: skip
raw_fields = st.builds(
    lambda pairs: ("{" + ", ".join(f'"{k}": {v}' for k, v in pairs) + "}").encode(),
    st.lists(st.tuples(st.sampled_from([*KNOWN, "x"]), literals), max_size=4),
)
# The same with a valid version first, so that validators that need one look further.
versioned = raw_fields.map(lambda b: b'{"version": 1' + (b"}" if b == b"{}" else b", " + b[1:]))

# What arrives on a topic: raw bytes, JSON text of hostile objects, or near-JSON.
payloads = st.one_of(
    st.binary(max_size=64),
    raw_fields,
    versioned,
    objects.map(_dumps),
    json_values.map(_dumps),
    st.builds(lambda obj, cut: _dumps(obj)[:cut], objects, st.integers(0, 40)),
)


def assert_storable(value: Any) -> None:
    """What PostgreSQL's text and jsonb take: no NUL, no lone surrogate, finite numbers."""
    json.dumps(value, allow_nan=False)  # raises on NaN / Infinity anywhere
    if isinstance(value, str):
        assert "\x00" not in value
        value.encode("utf-8")  # raises on a lone surrogate
    elif isinstance(value, dict):
        for key, item in value.items():
            assert_storable(key)
            assert_storable(item)
    elif isinstance(value, list):
        for item in value:
            assert_storable(item)
