"""Broker addresses as one URL (``mqtt://[user:pass@]host:port``, ``mqtts://`` for TLS).

One string is what an operator types, what ``MQTT_URL`` holds and what the fleet CLI
takes; this module turns it into paho-mqtt connection settings.
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

import paho.mqtt.client as mqtt

DEFAULT_PORTS = {"mqtt": 1883, "tcp": 1883, "mqtts": 8883, "ssl": 8883}


@dataclass(frozen=True)
class BrokerURL:
    host: str
    port: int
    tls: bool = False
    username: str | None = None
    password: str | None = None

    @classmethod
    def parse(cls, url: str) -> BrokerURL:
        """Parse ``mqtt://``/``mqtts://`` URLs; a bare ``host:port`` means plain MQTT."""
        parts = urlsplit(url if "://" in url else f"mqtt://{url}")
        scheme = parts.scheme.lower()
        if scheme not in DEFAULT_PORTS:
            raise ValueError(f"unsupported broker URL scheme {parts.scheme!r} in {url!r}")
        if not parts.hostname:
            raise ValueError(f"no host in broker URL {url!r}")
        return cls(
            host=parts.hostname,
            port=parts.port or DEFAULT_PORTS[scheme],
            tls=scheme in ("mqtts", "ssl"),
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password else None,
        )

    def configure(
        self,
        client: mqtt.Client,
        username: str | None = None,
        password: str | None = None,
        ca_certs: str | None = None,
    ) -> None:
        """Apply credentials (per-device ones win over the URL's) and TLS to ``client``."""
        user = username if username is not None else self.username
        if user is not None:
            client.username_pw_set(user, password if username is not None else self.password)
        if self.tls:
            client.tls_set(ca_certs=ca_certs, cert_reqs=ssl.CERT_REQUIRED)

    def __str__(self) -> str:  # never print the password
        auth = f"{self.username}@" if self.username else ""
        return f"{'mqtts' if self.tls else 'mqtt'}://{auth}{self.host}:{self.port}"
