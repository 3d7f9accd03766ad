"""``python manage.py repair_desired [--every S]``: put back desired states that a foreign
client wrote (``fleet.services.repair_desired``)."""

from __future__ import annotations

import signal
import threading

from django.core.management.base import BaseCommand

from fleet.services import repair_desired


class Command(BaseCommand):
    help = (
        "Compare every camera's retained desired state on the broker, and what it reported, "
        "with the platform's, and republish the platform's where they differ."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("--every", type=float, help="seconds between checks (default: once)")

    def handle(self, *args, every: float | None, **options) -> None:
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        while True:
            repaired = repair_desired()
            self.stdout.write(f"repaired {len(repaired)}: {' '.join(repaired)}".rstrip(": "))
            if every is None or stop.wait(every):
                return
