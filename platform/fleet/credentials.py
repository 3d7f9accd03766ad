"""Camera MQTT credentials: issue, revoke, and the broker files that enforce them.

The platform decides who may connect as which camera. A password is shown once, when it is
issued, and kept only as Mosquitto's own hash; from the database the platform renders the
broker's device password file and ACL (``devices.passwd`` and ``devices.acl`` in
``settings.MQTT_AUTH_DIR``) and then bumps ``generation`` in the same folder.
``deploy/mosquitto/run-broker.sh`` reloads Mosquitto (SIGHUP) when ``generation`` changes; on
reload Mosquitto disconnects a client whose login no longer holds, so a revocation takes effect
within seconds and without a restart. Cameras connect on a listener that forces the client id
to the username, and the ACL names each camera's own topics, so a camera's login acts as that
camera and nothing else (``docs/mqtt.md``, "Credentials and ACL").
"""

from __future__ import annotations

import base64
import fcntl
import hashlib
import hmac
import json
import os
import secrets
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from audit.services import audit
from fleet.models import DeviceCredential, device_id_validator
from fleet.services import provision_device
from protocol import topics

PASSWORD_FILE = "devices.passwd"
ACL_FILE = "devices.acl"
GENERATION_FILE = "generation"
# The platform's own logins (deploy/mosquitto/platform.acl) and the prefix kept for them:
# a camera named like one would share its client id space on the platform listener.
RESERVED_PREFIX = "strata-"
PBKDF2_ITERATIONS = 101  # what mosquitto_passwd 2.0 writes


def mosquitto_hash(password: str, *, salt: bytes | None = None) -> str:
    """Mosquitto 2's password-file hash (``$7$``: PBKDF2-SHA512, 12-byte salt, base64), so
    the broker gets the stored hash as is and the password never leaves the issuing call."""
    salt = secrets.token_bytes(12) if salt is None else salt
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, PBKDF2_ITERATIONS)
    b64 = base64.b64encode
    return f"$7${PBKDF2_ITERATIONS}${b64(salt).decode()}${b64(digest).decode()}"


def check_mosquitto_hash(password: str, hashed: str) -> bool:
    """Whether ``password`` matches a ``$7$`` hash (what Mosquitto checks at CONNECT)."""
    try:
        _, kind, iterations, salt, digest = hashed.split("$")
        if kind != "7":
            return False
        computed = hashlib.pbkdf2_hmac(
            "sha512", password.encode(), base64.b64decode(salt), int(iterations)
        )
        return hmac.compare_digest(computed, base64.b64decode(digest))
    except ValueError:
        return False


@dataclass(frozen=True)
class IssuedCredentials:
    """What the camera is flashed with; the password exists nowhere else afterwards."""

    device_id: str
    username: str
    password: str

    def to_json(self) -> str:
        return json.dumps(asdict(self))


def check_device_id(device_id: str) -> None:
    """A camera's login is its device id: a topic level, outside the platform's names."""
    device_id_validator(device_id)
    if device_id.startswith(RESERVED_PREFIX):
        raise ValidationError(f"device ids starting with {RESERVED_PREFIX!r} are the platform's")


def issue_credentials(
    device_id: str, *, site: str = "", name: str = "", by: AbstractBaseUser | None = None
) -> IssuedCredentials:
    """Create the camera if it is new and give it a new password. Issuing again replaces
    the old password (how a lost or leaked one is rotated) and lifts a revocation."""
    check_device_id(device_id)
    password = secrets.token_urlsafe(24)
    with transaction.atomic():
        device = provision_device(device_id, name=name, site=site)
        DeviceCredential.objects.update_or_create(
            device=device,
            defaults={
                "username": device_id,
                "password_hash": mosquitto_hash(password),
                "issued_at": timezone.now(),
                "revoked_at": None,
            },
        )
        audit(by, "device.credentials.issue", f"device:{device_id}", {}, {"username": device_id})
    write_broker_files()
    return IssuedCredentials(device_id=device_id, username=device_id, password=password)


def revoke_credentials(device_id: str, *, by: AbstractBaseUser | None = None) -> bool:
    """Refuse the camera's login from the next broker reload on (its session is closed then).
    Returns False when it had no active credentials."""
    with transaction.atomic():
        revoked = DeviceCredential.objects.filter(
            device__device_id=device_id, revoked_at__isnull=True
        ).update(revoked_at=timezone.now())
        if revoked:
            audit(by, "device.credentials.revoke", f"device:{device_id}", {}, {"revoked": True})
    write_broker_files()
    return bool(revoked)


def active_credentials() -> list[DeviceCredential]:
    return list(
        DeviceCredential.objects.filter(revoked_at__isnull=True, device__is_active=True)
        .select_related("device")
        .order_by("username")
    )


def password_file(credentials: list[DeviceCredential]) -> str:
    """Mosquitto's ``password_file`` for the camera listener."""
    return "".join(f"{c.username}:{c.password_hash}\n" for c in credentials)


def acl_file(credentials: list[DeviceCredential]) -> str:
    """Mosquitto's ``acl_file`` for the camera listener: each camera writes its frames,
    status, telemetry and reports and reads its desired state, on its own topics only."""
    kinds = topics.Kind
    lines = ["# Generated by the platform (fleet.credentials): do not edit.\n"]
    for credential in credentials:
        device_id = credential.username
        lines.append(f"\nuser {device_id}\n")
        for kind in (kinds.FRAME, kinds.STATUS, kinds.TELEMETRY, kinds.REPORTED):
            lines.append(f"topic write {topics.topic(device_id, kind)}\n")
        lines.append(f"topic read {topics.topic(device_id, kinds.DESIRED)}\n")
    return "".join(lines)


def write_broker_files(directory: str | Path | None = None) -> Path | None:
    """Render the camera listener's password file and ACL from the database into
    ``directory`` (default ``settings.MQTT_AUTH_DIR``; nothing when unset) and bump the
    generation that tells the broker to reload. Writers take a lock and rename whole
    files, so the broker never reads half a file and the last writer saw every commit."""
    directory = Path(directory or settings.MQTT_AUTH_DIR or "")
    if not str(directory) or str(directory) == ".":
        return None
    directory.mkdir(parents=True, exist_ok=True)
    with (directory / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        credentials = active_credentials()
        _replace(directory / PASSWORD_FILE, password_file(credentials))
        _replace(directory / ACL_FILE, acl_file(credentials))
        _replace(directory / GENERATION_FILE, f"{time.time_ns()}\n")
    return directory


def _replace(path: Path, text: str) -> None:
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_text(text)
    os.chmod(temporary, 0o644)  # hashes only; the broker runs as another user
    os.replace(temporary, path)
