"""The MQTT topic contract between devices and the platform: the one definition.

Every topic lives under ``strata/v1/dev/{device_id}/``; see ``docs/mqtt.md``.
Firmware, the device simulator and the platform all build and parse topics
through this module so that a rename happens in one place.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum

ROOT = "strata/v1/dev"
INGEST_SHARE_GROUP = "strata-ingest"

DEVICE_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}\Z"  # an MQTT topic level, no wildcards
_DEVICE_ID_RE = re.compile(DEVICE_ID_PATTERN)


class Kind(str, Enum):  # noqa: UP042 (str() of members unchanged for callers)
    """What a message on a device topic carries."""

    FRAME = "frame"  # device -> platform: one bitstream packet (docs/bitstream.md), QoS 1
    STATUS = "status"  # device -> platform: retained {"state": "online"|"offline"}; also LWT
    TELEMETRY = "telemetry"  # device -> platform: JSON link statistics and heartbeat
    DESIRED = "desired"  # platform -> device: retained JSON desired state with a version
    REPORTED = "reported"  # device -> platform: retained JSON of what the device applied


class TopicError(ValueError):
    """A topic that is not part of the contract."""


def valid_device_id(device_id: str) -> bool:
    """Device ids are topic levels: no wildcards, slashes or spaces."""
    return bool(_DEVICE_ID_RE.match(device_id))


def topic(device_id: str, kind: Kind) -> str:
    """The topic on which ``device_id`` sends or receives ``kind``."""
    if not valid_device_id(device_id):
        raise TopicError(f"invalid device id {device_id!r}")
    return f"{ROOT}/{device_id}/{Kind(kind).value}"


def subscription(kind: Kind, device_id: str = "+", share_group: str | None = None) -> str:
    """A subscription filter for ``kind`` from one device or, by default, all of them.

    With ``share_group`` the filter is an MQTT 5 shared subscription, so that several
    consumers (ingest processes) split the traffic between them.
    """
    base = f"{ROOT}/{device_id}/{Kind(kind).value}"
    return f"$share/{share_group}/{base}" if share_group else base


@dataclass(frozen=True)
class ParsedTopic:
    device_id: str
    kind: Kind


def parse(topic_name: str) -> ParsedTopic:
    """Split a concrete topic into device id and kind, or raise ``TopicError``."""
    prefix = ROOT + "/"
    if not topic_name.startswith(prefix):
        raise TopicError(f"topic {topic_name!r} is outside {ROOT}/")
    parts = topic_name[len(prefix) :].split("/")
    if len(parts) != 2:
        raise TopicError(f"topic {topic_name!r} is not {ROOT}/<device>/<kind>")
    device_id, kind = parts
    if not valid_device_id(device_id):
        raise TopicError(f"invalid device id {device_id!r} in topic {topic_name!r}")
    try:
        return ParsedTopic(device_id, Kind(kind))
    except ValueError:
        raise TopicError(f"unknown message kind {kind!r} in topic {topic_name!r}") from None
