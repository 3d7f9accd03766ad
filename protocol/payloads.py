"""The JSON payloads of the device topics: one typed class and one validator each.

Devices build these messages and the platform checks them (and the other way round for
``desired``), so each field name, type and limit is written down here once; the firmware's
C code is checked against these rules by the firmware tests (``tests/firmware``).
A payload that breaks the contract raises ``PayloadError`` naming the field.

| topic kind | class | built by | checked by |
|---|---|---|---|
| ``desired`` | ``Desired`` | platform (``fleet``) | device (``Desired.merged``) |
| ``reported`` | ``Reported`` | device | platform (``ingest``) |
| ``telemetry`` | ``Telemetry`` | device | platform (``ingest`` → ``control``) |
| ``status`` | ``Status`` | device (and its Last Will) | platform (``ingest``) |
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from mcucoder.models import N_CHANNELS

MIN_TIER = 1
MAX_TIER = N_CHANNELS  # quality tier k = the first k latent channels of the codec
MAX_FPS = 30
MIN_DEADLINE_MS = 100
MAX_DEADLINE_MS = 600_000
CAP_WINDOW_S = 2.0  # max_kbps holds over every window this long of capture time (docs/mqtt.md)
CAPTURE_MODES = ("periodic", "motion")  # motion: only frames in which something moved
STATES = ("online", "offline")
MAX_PAYLOAD_BYTES = 16 * 1024  # a JSON message on a device topic; frames have their own limit
MAX_DEPTH = 16  # nesting of objects and arrays in a JSON message (the contract's use 2)
MAX_COUNTER = 2**63 - 1  # counters are stored as 64-bit integers
MAX_BACKLOG = 1_000_000  # frames in a device's send queue (stored as a 32-bit integer)
MAX_MEASURE = 1e12  # any measured quantity (kbit/s, ms, s): finite, stored as a double
DEFAULT_MAX_BACKLOG = 16

# The device's own link counters, sent in every telemetry message (firmware and simulator).
COUNTERS = (
    "frames_captured",
    "frames_sent",
    "bytes_sent",
    "frames_acked",
    "bytes_acked",
    "frames_dropped",  # not sent at all: backlog full, over the cap, or sure to be late
    "dropped_backlog",
    "dropped_rate",
    "dropped_deadline",
    "frames_trimmed",  # sent with fewer channels than the tier asked for
    "frames_still",  # motion mode: looked at, nothing moved, not sent
    "connects",
    "disconnects",
)


class PayloadError(ValueError):
    """A message that breaks the contract; ``field`` names the offending field (or '')."""

    def __init__(self, field_name: str, message: str) -> None:
        super().__init__(message)
        self.field = field_name


# --- field checks -------------------------------------------------------------------------


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _finite(name: str, value: Any) -> float:
    if not _is_number(value) or not math.isfinite(value):
        raise PayloadError(name, f"'{name}' is not a finite number: {value!r}")
    return float(value)


def _number(
    obj: Mapping[str, Any],
    key: str,
    default: Any,
    hi: float = MAX_MEASURE,
    name: str | None = None,
) -> Any:
    """An optional non-negative number (telemetry): the default when absent or null;
    ``name`` says where it sits in the message (``puback_ms.mean``) when not ``key``."""
    name = name or key
    value = obj.get(key)
    if value is None:
        return default
    number = _finite(name, value)
    if not 0 <= number <= hi:
        raise PayloadError(name, f"'{name}' is out of range 0..{hi:g}: {value!r}")
    return number


def _counter(obj: Mapping[str, Any], name: str, default: int = 0, hi: int = MAX_COUNTER) -> int:
    value = obj.get(name)
    if value is None:
        return default
    if not _is_int(value) or not 0 <= value <= hi:
        raise PayloadError(name, f"'{name}' must be an integer 0..{hi}: {value!r}")
    return value


def _storable(value: Any, path: str = "", depth: int = 0) -> None:
    """Refuse what PostgreSQL cannot store in text or JSON, wherever it is in the message,
    known field or not: NUL characters, lone UTF-16 surrogates (``"\\ud800"``), and
    non-finite numbers (``1e400`` parses as infinity; PostgreSQL's JSON has none), and
    nesting deeper than ``MAX_DEPTH``."""
    if isinstance(value, str):
        if "\x00" in value:
            raise PayloadError(path, f"'{path}' contains a NUL character")
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise PayloadError(path, f"'{path}' contains a lone surrogate") from None
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise PayloadError(path, f"'{path}' is not a finite number: {value!r}")
    elif isinstance(value, Mapping | list | tuple):
        if depth >= MAX_DEPTH:
            raise PayloadError(path, f"'{path}' is nested deeper than {MAX_DEPTH} levels")
        if isinstance(value, Mapping):
            for key, item in value.items():
                if not isinstance(key, str):
                    raise PayloadError(path, f"'{path}' has a key that is not text: {key!r}")
                _storable(key, path or "key")
                _storable(item, f"{path}.{key}" if path else key, depth + 1)
        else:
            for i, item in enumerate(value):
                _storable(item, f"{path}[{i}]", depth + 1)
    elif value is not None and not isinstance(value, bool | int):
        raise PayloadError(path, f"'{path}' is not a JSON value: {type(value).__name__}")


def _reject_constant(name: str) -> float:
    raise ValueError(f"{name} is not a number")


def load_object(payload: bytes | str | Mapping[str, Any], what: str) -> dict[str, Any]:
    """Decode a JSON object from a message: strict JSON (no NaN / Infinity, no number that
    overflows a double), valid UTF-8 without NUL or lone surrogates: storable as it is."""
    if isinstance(payload, Mapping):
        obj = dict(payload)
    else:
        if len(payload) > MAX_PAYLOAD_BYTES:
            raise PayloadError("", f"{what} is larger than {MAX_PAYLOAD_BYTES} bytes")
        try:
            text = payload if isinstance(payload, str) else bytes(payload).decode("utf-8")
            obj = json.loads(text, parse_constant=_reject_constant)
        except (ValueError, UnicodeDecodeError, RecursionError) as exc:
            raise PayloadError("", f"{what} is not JSON: {exc}") from exc
    if not isinstance(obj, dict):
        raise PayloadError("", f"{what} must be a JSON object")
    _storable(obj)
    return obj


# --- desired (platform -> device) and what the device applied -----------------------------


@dataclass(frozen=True)
class Desired:
    """The desired state: what the platform asks of a device (retained, versioned).

    The device applies a newer version and echoes it on ``reported``; a field left out of
    a desired message keeps the device's current value (``merged``).

    ``key_request`` asks for a key frame (issue 18): the platform raises it by one, with a
    new version, after a lost or refused packet or when a live view opens; the device sends
    its next frame as a key frame whenever the value it applies differs from the one it held.
    Being part of the retained state, a camera that reconnects still sees the request, and
    answers it once (a repeated version is ignored).
    """

    version: int = 0
    tier: int = MAX_TIER
    fps: float = 1.0
    max_kbps: float | None = None  # bitrate cap over every 2 s window; None: no cap
    mode: str = "periodic"
    deadline_ms: float | None = None  # frames that would arrive later are trimmed or skipped
    key_request: int = 0  # raised by one per key frame asked for; absent: unchanged

    def __post_init__(self) -> None:
        self._check()

    def _check(self) -> None:
        if not _is_int(self.version) or not 0 <= self.version <= MAX_COUNTER:
            # the firmware's wording (tests/firmware compares them); at most 2^63-1
            raise PayloadError("version", "'version' must be a non-negative integer")
        if not _is_int(self.tier) or not MIN_TIER <= self.tier <= MAX_TIER:
            raise PayloadError("tier", f"'tier' must be an integer {MIN_TIER}..{MAX_TIER}")
        if not _is_number(self.fps) or not 0 <= self.fps <= MAX_FPS:
            raise PayloadError("fps", f"'fps' must be a number 0..{MAX_FPS} (0 pauses capture)")
        if self.max_kbps is not None and (
            not _is_number(self.max_kbps) or not 0 < self.max_kbps <= MAX_MEASURE
        ):
            raise PayloadError("max_kbps", "'max_kbps' must be a positive number or null")
        if self.mode not in CAPTURE_MODES:
            raise PayloadError("mode", f"'mode' must be one of {', '.join(CAPTURE_MODES)}")
        if self.deadline_ms is not None and (
            not _is_number(self.deadline_ms)
            or not MIN_DEADLINE_MS <= self.deadline_ms <= MAX_DEADLINE_MS
        ):
            raise PayloadError(
                "deadline_ms",
                f"'deadline_ms' must be a number {MIN_DEADLINE_MS}..{MAX_DEADLINE_MS} or null",
            )
        if not _is_int(self.key_request) or not 0 <= self.key_request <= MAX_COUNTER:
            raise PayloadError("key_request", "'key_request' must be a non-negative integer")

    def merged(self, desired: bytes | str | Mapping[str, Any]) -> Desired:
        """The state after applying a ``desired`` message; ``PayloadError`` when invalid.

        Numbers are normalised as a device stores them (fps, cap and deadline as floats).
        """
        obj = load_object(desired, "desired state")
        if "version" not in obj:
            raise PayloadError("version", "'version' must be a non-negative integer")
        values = {f.name: obj.get(f.name, getattr(self, f.name)) for f in fields(self)}
        state = Desired(**values)  # validates
        return Desired(
            state.version,
            state.tier,
            float(state.fps),
            None if state.max_kbps is None else float(state.max_kbps),
            state.mode,
            None if state.deadline_ms is None else float(state.deadline_ms),
            state.key_request,
        )

    def asks_key_frame(self, before: Desired) -> bool:
        """Whether this state, applied over ``before``, asks for a key frame."""
        return self.key_request != before.key_request

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def to_json(self) -> bytes:
        return json.dumps(self.to_dict()).encode()


# --- reported (device -> platform) --------------------------------------------------------


@dataclass(frozen=True)
class Reported:
    """What a device says it applied: the desired fields with their version, plus, when it
    refused a desired message, ``error`` and the start of the ``rejected`` payload."""

    device: str
    ts: int
    applied: Desired
    error: str | None = None
    rejected: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out = self.applied.to_dict()
        if self.error is not None:
            out |= {"error": self.error, "rejected": self.rejected or ""}
        return out | {"device": self.device, "ts": self.ts}

    def to_json(self) -> bytes:
        return json.dumps(self.to_dict()).encode()

    @staticmethod
    def parse(payload: bytes | str | Mapping[str, Any]) -> dict[str, Any]:
        """Check a reported message and return it as stored: an integer version is required;
        the applied fields, when present, must be valid; ``error`` is text."""
        obj = load_object(payload, "reported state")
        version = obj.get("version")
        if not _is_int(version) or not 0 <= version <= MAX_COUNTER:
            raise PayloadError("version", f"no integer version in reported state: {version!r}")
        applied = {f.name: obj[f.name] for f in fields(Desired) if f.name in obj}
        Desired(**applied)  # validates what is there
        for name in ("error", "rejected", "device"):
            if obj.get(name) is not None and not isinstance(obj[name], str):
                raise PayloadError(name, f"'{name}' must be text")
        return obj


# --- telemetry (device -> platform) -------------------------------------------------------


@dataclass(frozen=True)
class PubackStats:
    """Publish-to-PUBACK latency of the last few frames, ms (None: nothing acknowledged)."""

    mean: float | None = None
    p95: float | None = None
    samples: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {"mean": self.mean, "p95": self.p95, "samples": self.samples}


@dataclass(frozen=True)
class Telemetry:
    """A device's heartbeat: its link as it measures it, and the settings it runs.

    ``link_kbps`` is what the link can carry (from PUBACK timing); ``throughput_kbps`` what
    it carried. Older firmware sends fewer fields: ``parse`` fills the defaults.
    """

    device: str = ""
    ts: int = 0
    uptime_s: float = 0.0
    seq: int = 0
    counters: Mapping[str, int] = field(default_factory=dict)
    backlog: int = 0
    max_backlog: int = DEFAULT_MAX_BACKLOG
    puback_ms: PubackStats = field(default_factory=PubackStats)
    throughput_kbps: float = 0.0
    link_kbps: float | None = None
    applied: Desired | None = None

    def to_dict(self) -> dict[str, Any]:
        out = {
            "device": self.device,
            "ts": self.ts,
            "uptime_s": self.uptime_s,
            "seq": self.seq,
            **{name: self.counters.get(name, 0) for name in COUNTERS},
            "backlog": self.backlog,
            "max_backlog": self.max_backlog,
            "puback_ms": self.puback_ms.to_dict(),
            "throughput_kbps": self.throughput_kbps,
            "link_kbps": self.link_kbps,
        }
        return out | (self.applied.to_dict() if self.applied else {})

    def to_json(self) -> bytes:
        return json.dumps(self.to_dict()).encode()

    @property
    def frames_dropped(self) -> int:
        return self.counters.get("frames_dropped", 0)

    @classmethod
    def parse(cls, payload: bytes | str | Mapping[str, Any]) -> tuple[Telemetry, dict[str, Any]]:
        """Check a telemetry message; returns it typed, and as received (for storage)."""
        obj = load_object(payload, "telemetry")
        puback = obj.get("puback_ms")
        if puback is not None and not isinstance(puback, Mapping):
            raise PayloadError("puback_ms", "'puback_ms' must be an object")
        puback = puback or {}
        telemetry = cls(
            device=obj.get("device") if isinstance(obj.get("device"), str) else "",
            ts=_counter(obj, "ts"),
            uptime_s=_number(obj, "uptime_s", 0.0),
            seq=_counter(obj, "seq"),
            counters={name: _counter(obj, name) for name in COUNTERS if name in obj},
            backlog=_counter(obj, "backlog", hi=MAX_BACKLOG),
            max_backlog=_counter(obj, "max_backlog", DEFAULT_MAX_BACKLOG, hi=MAX_BACKLOG),
            puback_ms=PubackStats(
                mean=_optional(puback, "mean", "puback_ms.mean"),
                p95=_optional(puback, "p95", "puback_ms.p95"),
                samples=_counter(puback, "samples"),
            ),
            throughput_kbps=_number(obj, "throughput_kbps", 0.0),
            link_kbps=_optional(obj, "link_kbps", "link_kbps"),
        )
        return telemetry, obj


def _optional(obj: Mapping[str, Any], key: str, name: str) -> float | None:
    return _number(obj, key, None, name=name)


# --- status (device -> platform, retained; the Last Will says offline) --------------------


@dataclass(frozen=True)
class Status:
    """A device's connection state, retained. Online messages also say what the device is
    (firmware, MQTT version, resolution) and the settings it runs."""

    state: str
    device: str
    ts: int | None = None
    reason: str | None = None
    firmware: str | None = None
    mqtt: str | None = None
    resolution: tuple[int, int] | None = None
    applied: Desired | None = None

    def __post_init__(self) -> None:
        if self.state not in STATES:
            raise PayloadError("state", f"unknown state {self.state!r}")

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"state": self.state, "device": self.device}
        if self.ts is not None:
            out["ts"] = self.ts
        if self.reason is not None:
            out["reason"] = self.reason
        if self.state == "online":
            if self.firmware is not None:
                out["firmware"] = self.firmware
            if self.mqtt is not None:
                out["mqtt"] = self.mqtt
            if self.resolution is not None:
                out["resolution"] = list(self.resolution)
            if self.applied is not None:
                out |= self.applied.to_dict()
        return out

    def to_json(self) -> bytes:
        return json.dumps(self.to_dict()).encode()

    @staticmethod
    def last_will(device_id: str) -> Status:
        """What the broker publishes for a device whose connection dies."""
        return Status("offline", device_id, reason="connection-lost")

    @classmethod
    def parse(cls, payload: bytes | str | Mapping[str, Any]) -> Status:
        obj = load_object(payload, "status")
        if "state" not in obj:
            raise PayloadError("state", "status has no 'state'")
        device = obj.get("device")
        return cls(obj["state"], device if isinstance(device, str) else "")
