"""Uplink bandwidth traces for the link emulator: kbit/s over time, piecewise constant.

A trace comes from a spec string (CLI ``--trace``):

- ``64`` or ``const:64``: a constant 64 kbit/s;
- ``steps:0=256,30=32,60=128``: 256 kbit/s from t=0 s, 32 from 30 s, 128 from 60 s;
- ``walk:48``: a seeded random walk around 48 kbit/s (log-normal steps, 1 s apart);
- ``nbiot``, ``3g``, ``lte``: the traces shipped in ``devices/assets/traces/`` (see its README);
- a path to a file of ``time_s, kbit/s`` rows (CSV or whitespace; ``#`` comments) or a JSON
  list of ``[time_s, kbit/s]`` pairs, the format of the public FCC/HSDPA/LTE traces
  (convert Mbit/s columns by 1000).

Traces loop, so a short trace drives an arbitrarily long run. Zero means no coverage.
"""

from __future__ import annotations

import bisect
import json
import math
import random
import sys
from dataclasses import dataclass
from pathlib import Path

TRACES_DIR = Path(__file__).resolve().parent / "assets" / "traces"


@dataclass(frozen=True)
class Trace:
    name: str
    times: tuple[float, ...]  # start of each segment, seconds, increasing from 0
    kbps: tuple[float, ...]  # rate of each segment; 0 = outage
    period_s: float

    def __post_init__(self) -> None:
        if not self.times or len(self.times) != len(self.kbps) or self.times[0] != 0:
            raise ValueError(f"trace {self.name}: needs rows starting at t=0")
        if any(b <= a for a, b in zip(self.times, self.times[1:], strict=False)):
            raise ValueError(f"trace {self.name}: times must increase")
        if any(k < 0 or not math.isfinite(k) for k in self.kbps):
            raise ValueError(f"trace {self.name}: rates must be finite and >= 0")

    def __call__(self, t: float) -> float:
        """The rate at ``t`` seconds (looping)."""
        i = bisect.bisect_right(self.times, t % self.period_s) - 1
        return self.kbps[i]

    @property
    def mean_kbps(self) -> float:
        ends = [*self.times[1:], self.period_s]
        return sum(k * (e - s) for s, e, k in zip(self.times, ends, self.kbps, strict=True)) / (
            self.period_s
        )

    @classmethod
    def from_rows(cls, name: str, rows: list[tuple[float, float]]) -> Trace:
        """Rows of (time_s, kbit/s); the last row lasts as long as the one before it."""
        times = [t - rows[0][0] for t, _ in rows]
        step = times[-1] - times[-2] if len(times) > 1 else 1.0
        return cls(name, tuple(times), tuple(k for _, k in rows), times[-1] + step)

    def to_csv(self) -> str:
        return "".join(f"{t:g},{k:.1f}\n" for t, k in zip(self.times, self.kbps, strict=True))


def constant(kbps: float) -> Trace:
    return Trace(f"const:{kbps:g}", (0.0,), (float(kbps),), 1.0)


def random_walk(
    mean_kbps: float,
    *,
    duration_s: int = 600,
    step_s: float = 1.0,
    volatility: float = 0.15,
    low: float | None = None,
    high: float | None = None,
    outage_per_min: float = 0.0,
    outage_s: tuple[float, float] = (3.0, 15.0),
    seed: int = 0,
    name: str | None = None,
) -> Trace:
    """A mean-reverting random walk in log space (rates change by percentages, like radio
    conditions do), clipped to ``[low, high]``, with optional outages of zero rate."""
    rng = random.Random(seed)
    low = mean_kbps / 4 if low is None else low
    high = mean_kbps * 4 if high is None else high
    log_mean, x = math.log(mean_kbps), math.log(mean_kbps)
    rows: list[tuple[float, float]] = []
    outage_left = 0.0
    for i in range(int(duration_s / step_s)):
        x += 0.1 * (log_mean - x) + rng.gauss(0.0, volatility)
        rate = min(high, max(low, math.exp(x)))
        if outage_left <= 0 and rng.random() < outage_per_min * step_s / 60:
            outage_left = rng.uniform(*outage_s)
        if outage_left > 0:
            rate, outage_left = 0.0, outage_left - step_s
        rows.append((i * step_s, round(rate, 1)))
    return Trace.from_rows(name or f"walk:{mean_kbps:g}", rows)


def load(path: str | Path) -> Trace:
    """A file of ``time_s, kbit/s`` rows or a JSON list of pairs."""
    path = Path(path)
    text = path.read_text()
    if text.lstrip().startswith("["):
        rows = [(float(t), float(k)) for t, k in json.loads(text)]
    else:
        rows = []
        for line in text.splitlines():
            line = line.split("#", 1)[0].strip()
            if line:
                t, k = line.replace(",", " ").split()[:2]
                rows.append((float(t), float(k)))
    if not rows:
        raise ValueError(f"no rows in trace file {path}")
    return Trace.from_rows(path.stem, rows)


# The shipped traces and how each was generated (``python -m devices.traces`` rewrites them).
SHIPPED = {
    "nbiot": dict(mean_kbps=24, low=4, high=60, volatility=0.25, outage_per_min=0.5, seed=1),
    "3g": dict(mean_kbps=300, low=40, high=1500, volatility=0.2, outage_per_min=0.2, seed=2),
    "lte": dict(mean_kbps=3000, low=300, high=12000, volatility=0.15, seed=3),
}


def parse(spec: str | float) -> Trace:
    """A trace from a CLI spec (see the module docstring)."""
    if isinstance(spec, int | float):
        return constant(spec)
    kind, _, arg = spec.partition(":")
    try:
        if not arg and kind.replace(".", "", 1).isdigit():
            return constant(float(kind))
        if kind == "const":
            return constant(float(arg))
        if kind == "walk":
            return random_walk(float(arg))
        if kind == "steps":
            rows = [tuple(float(v) for v in part.split("=")) for part in arg.split(",")]
            return Trace.from_rows(spec, sorted(rows))  # type: ignore[arg-type]
    except ValueError as exc:
        raise ValueError(f"bad trace spec {spec!r}: {exc}") from None
    if spec in SHIPPED:
        return load(TRACES_DIR / f"{spec}.csv")
    if Path(spec).is_file():
        return load(spec)
    raise ValueError(
        f"trace {spec!r} is not a number, const:/steps:/walk:, {list(SHIPPED)} or a file"
    )


def main() -> None:
    """Regenerate the shipped traces (deterministic: seeded)."""
    TRACES_DIR.mkdir(exist_ok=True)
    for name, params in SHIPPED.items():
        trace = random_walk(name=name, **params)  # type: ignore[arg-type]
        header = f"# {name}: devices.traces.random_walk({params}); time_s,kbit/s\n"
        (TRACES_DIR / f"{name}.csv").write_text(header + trace.to_csv())
        print(
            f"{name}: mean {trace.mean_kbps:.1f} kbit/s over {trace.period_s:g} s", file=sys.stderr
        )


if __name__ == "__main__":
    main()
