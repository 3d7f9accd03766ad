"""What a camera does with a ``desired`` message, and the ``reported`` message it answers.

The platform steers a device only through its retained ``desired`` state; the device
applies it by ``protocol.payloads.Desired.merged`` (fields left out keep their value) and
answers with a retained ``reported`` message: the settings it now applies, or the error and
the rejected payload. The rules a redelivery or an old message must not break (a repeat of
the applied version is ignored, so is a lower version) live here, apart from the MQTT
session and the capture loop, because the firmware must follow them too
(``tests/firmware/test_tflm.py`` compares the two). Payloads: ``docs/mqtt.md``.
"""

from __future__ import annotations

import logging
import time
from typing import NamedTuple

from protocol.payloads import Desired, PayloadError, Reported, load_object

log = logging.getLogger(__name__)


def initial(
    *,
    tier: int,
    fps: float,
    max_kbps: float | None,
    mode: str,
    deadline_ms: float | None,
) -> Desired:
    """The settings a camera starts with (version 0: any desired version replaces them)."""
    return Desired().merged(
        {
            "version": 0,
            "tier": tier,
            "fps": fps,
            "max_kbps": max_kbps,
            "mode": mode,
            "deadline_ms": deadline_ms,
        }
    )


class Applied(NamedTuple):
    """The outcome of one desired message: the settings now in force (unchanged after an
    error) and the ``reported`` message that says so."""

    settings: Desired
    report: Reported


def apply(device_id: str, current: Desired, payload: bytes) -> Applied | None:
    """Apply one ``desired`` payload to the ``current`` settings. None: ignored, nothing
    to report (a redelivered or a stale version)."""
    error = None
    settings = current
    try:
        desired = load_object(payload, "desired state")
        if desired.get("version", -1) == current.version and current.version:
            return None  # redelivered (retained or QoS 1 duplicate): already applied
        settings = current.merged(desired)
    except PayloadError as exc:
        log.warning("%s: rejected desired state: %s", device_id, exc)
        error = str(exc)
    else:
        if settings.version < current.version:
            log.info("%s: ignored stale desired version %s", device_id, settings.version)
            return None
    return Applied(settings, reported(device_id, settings, error, payload))


def reported(
    device_id: str, settings: Desired, error: str | None = None, payload: bytes = b""
) -> Reported:
    """The ``reported`` message: the applied settings, and what was rejected if anything."""
    return Reported(device_id, _now_ms(), settings, error, _jsonable(payload) if error else None)


def _now_ms() -> int:
    return int(time.time() * 1000)


def _jsonable(payload: bytes) -> str:
    return payload[:200].decode("utf-8", errors="replace")
