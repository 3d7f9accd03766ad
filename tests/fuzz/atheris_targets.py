"""Coverage-guided fuzzing (atheris, libFuzzer) of what parses device input: the frame
packet as ingest checks it, and every JSON payload validator.

    python -m tests.fuzz.atheris_targets {frame|payloads} CORPUS_DIR [libFuzzer options]

A target fails on any exception other than the refusal it is allowed (``Rejected``,
``PayloadError``) and on an accepted value that could not be stored. ``test_atheris.py`` runs
each for a few seconds from the committed corpus (``corpus/<target>/``).
"""

from __future__ import annotations

import inspect
import os
import struct
import sys
import zlib
from types import ModuleType

import atheris


def _instrument(*modules: ModuleType) -> None:
    """Coverage for the parsers' own code only (instrumenting every import, torch's
    included, would cost a minute at start)."""
    for module in modules:
        for value in vars(module).values():
            members = vars(value).values() if inspect.isclass(value) else [value]
            for member in members:
                member = getattr(member, "__func__", member)  # static/class methods
                if inspect.isfunction(member) and member.__module__ == module.__name__:
                    atheris.instrument_func(member)


def _setup_django() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "strata.settings.test")
    import django

    django.setup()


def frame_target():
    _setup_django()
    from django.conf import settings

    from ingest import services
    from ingest.services import MAX_CAPTURE_TIME_MS, Rejected, parse_frame
    from mcucoder import bitstream

    _instrument(services, bitstream)

    def test_one_input(data: bytes) -> None:
        # As sent, and with a valid CRC appended, so that the fuzzer gets past the checksum
        # to the checks behind it.
        for packet_bytes in (data, data + struct.pack("<I", zlib.crc32(data))):
            try:
                packet = parse_frame(packet_bytes)
            except Rejected:
                continue
            assert packet.capture_time_ms <= MAX_CAPTURE_TIME_MS
            assert packet.width * packet.height <= settings.STRATA_MAX_FRAME_PIXELS

    return test_one_input


def payloads_target():
    from protocol import payloads
    from protocol.payloads import Desired, PayloadError, Reported, Status, Telemetry
    from tests.fuzz.strategies import assert_storable

    _instrument(payloads)

    def test_one_input(data: bytes) -> None:
        for parse in (Reported.parse, Status.parse, Desired().merged):
            try:
                accepted = parse(data)
            except PayloadError:
                continue
            assert_storable(accepted if isinstance(accepted, dict) else accepted.to_dict())
        try:
            _, raw = Telemetry.parse(data)
        except PayloadError:
            return
        assert_storable(raw)

    return test_one_input


TARGETS = {"frame": frame_target, "payloads": payloads_target}


def main() -> None:
    target = TARGETS[sys.argv[1]]()
    atheris.Setup([sys.argv[0], *sys.argv[2:]], target)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
