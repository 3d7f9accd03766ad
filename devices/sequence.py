"""Frame sequence numbers that survive restarts, as firmware keeps them in flash.

The platform deduplicates QoS 1 redeliveries by ``(device_id, seq)``; a device that
restarted at 0 would see its new frames taken for old duplicates. Firmware cannot write
flash on every frame, so it reserves blocks: the stored value is the end of the block in
use, and after a power cut the device resumes there, skipping at most one block of
numbers and never reusing one.
"""

from __future__ import annotations

import os
from pathlib import Path

SEQ_MODULO = 1 << 32  # the packet's seq field is uint32
BLOCK = 256


def default_state_dir() -> Path:
    """Where simulated devices keep their "flash": ``$STRATA_DEVICE_STATE`` or the cache."""
    env = os.environ.get("STRATA_DEVICE_STATE")
    if env:
        return Path(env)
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache) / "strata" / "devices"


class SequenceCounter:
    """Hands out seq numbers; with a ``path``, persists them block-wise across restarts."""

    def __init__(self, path: Path | None = None, start: int = 0, block: int = BLOCK) -> None:
        self.path, self.block = path, block
        stored = self._read()
        self.next = (stored if stored is not None else start) % SEQ_MODULO
        self._reserved = self.next
        self._reserve()

    def _read(self) -> int | None:
        if self.path is None:
            return None
        try:
            return int(self.path.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None

    def _reserve(self) -> None:
        if self.path is None:
            return
        self._reserved = self.next + self.block
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text(f"{self._reserved % SEQ_MODULO}\n")
        tmp.replace(self.path)  # atomic: a crash leaves the old block or the new one

    def take(self) -> int:
        seq = self.next
        self.next = (self.next + 1) % SEQ_MODULO
        if self.path is not None and (self.next >= self._reserved or self.next == 0):
            self._reserve()
        return seq
