"""``python manage.py control``: set every active camera's tier from its link, periodically."""

from __future__ import annotations

import signal
import threading

from django.core.management.base import BaseCommand

from control.policies import POLICIES
from control.services import run_controller
from observability import metrics


class Command(BaseCommand):
    help = "Run the quality-tier controller: decide and publish each camera's tier."

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--policy",
            default=None,
            choices=sorted(POLICIES),
            help="one policy for every camera (default: each camera's own, set by its admin)",
        )
        parser.add_argument("--interval", type=float, default=5.0, help="seconds between rounds")
        parser.add_argument("--once", action="store_true", help="one round, then exit")

    def handle(self, *args, policy: str | None, interval: float, once: bool, **options) -> None:
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        chosen = policy or "each camera's own"
        metrics.serve()  # STRATA_METRICS_PORT, if set
        self.stdout.write(f"controller: policy {chosen}, every {interval:g} s")
        try:
            run_controller(policy, interval, stop, once=once)
        except KeyboardInterrupt:
            stop.set()
