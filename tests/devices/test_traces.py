"""Bandwidth traces for the link emulator."""

from __future__ import annotations

import json

import pytest

from devices import traces


def test_specs() -> None:
    assert traces.parse("64")(123.0) == 64.0
    assert traces.parse("const:8.5")(0.0) == 8.5
    steps = traces.parse("steps:0=256,30=32,60=128")
    assert [steps(t) for t in (0, 29.9, 30, 75, 90, 125)] == [256, 256, 32, 128, 256, 32]
    walk = traces.parse("walk:48")
    assert 12 <= min(walk.kbps) and max(walk.kbps) <= 192 and 30 < walk.mean_kbps < 70
    assert traces.parse("walk:48") == walk  # seeded: the same run every time


@pytest.mark.parametrize("name", sorted(traces.SHIPPED))
def test_shipped_traces_load_and_match_their_generator(name: str) -> None:
    shipped = traces.parse(name)
    regenerated = traces.random_walk(name=name, **traces.SHIPPED[name])
    assert shipped.kbps == regenerated.kbps and shipped.period_s == 600


def test_nbiot_has_outages_and_lte_does_not() -> None:
    assert 0.0 in traces.parse("nbiot").kbps
    assert min(traces.parse("lte").kbps) > 0


def test_files_of_rows_and_json_pairs(tmp_path) -> None:
    csv = tmp_path / "belgium.log"
    csv.write_text("# time_s kbit/s\n100 2000\n101 1500  # a dip\n102 0\n")
    trace = traces.parse(str(csv))
    assert trace.times == (0, 1, 2) and trace(1.5) == 1500 and trace(2.5) == 0 and trace(3) == 2000
    pairs = tmp_path / "fcc.json"
    pairs.write_text(json.dumps([[0, 100], [5, 50]]))
    assert traces.parse(str(pairs))(7) == 50


@pytest.mark.parametrize("spec", ["fast", "steps:0=1,0=2", "const:-1", "steps:0=x"])
def test_bad_specs(spec: str) -> None:
    with pytest.raises(ValueError):
        traces.parse(spec)
