"""Broker addresses as URLs (``mqtt://user:pass@host:1883``, ``mqtts://…``), parsed once.

Shared by the device simulator and the platform's MQTT consumers.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

DEFAULT_PORTS = {"mqtt": 1883, "mqtts": 8883, "tcp": 1883, "ssl": 8883}


@dataclass(frozen=True)
class BrokerURL:
    host: str
    port: int
    tls: bool = False
    username: str | None = None
    password: str | None = None

    def __str__(self) -> str:
        scheme = "mqtts" if self.tls else "mqtt"
        auth = f"{self.username}@" if self.username else ""
        return f"{scheme}://{auth}{self.host}:{self.port}"


def parse_broker_url(url: str) -> BrokerURL:
    """Parse ``url`` or raise ValueError saying what is wrong with it."""
    parts = urlsplit(url if "://" in url else f"mqtt://{url}")
    if parts.scheme not in DEFAULT_PORTS:
        raise ValueError(f"unsupported broker scheme {parts.scheme!r} in {url!r} (use mqtt:// or mqtts://)")
    if not parts.hostname:
        raise ValueError(f"no host in broker URL {url!r}")
    return BrokerURL(
        host=parts.hostname,
        port=parts.port or DEFAULT_PORTS[parts.scheme],
        tls=parts.scheme in ("mqtts", "ssl"),
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
    )
