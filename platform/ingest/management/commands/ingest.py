"""``python manage.py ingest``: consume device messages from MQTT into the archive.

Run one per slot on each host (``--slot N``, or ``STRATA_INGEST_SLOT``): the client id,
``strata-ingest-<hostname>-<slot>``, is what a restarted process takes its queued messages
back by (``ingest.consumer``).
"""

from __future__ import annotations

import os
import signal

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from ingest.consumer import SESSION_EXPIRY_S, IdentityInUse, IngestConsumer, claim_identity
from observability import metrics
from protocol import topics
from protocol.broker import BrokerURL


class Command(BaseCommand):
    help = "Consume frames, status and telemetry from MQTT into the archive (shared subscription)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--broker", default=None, help="mqtt://host:port (default: MQTT_URL)")
        parser.add_argument(
            "--slot",
            type=int,
            default=os.environ.get("STRATA_INGEST_SLOT", "0"),  # argparse applies type
            help="This process's slot on this host, 0, 1, ... (default: STRATA_INGEST_SLOT or "
            "0). Each ingest process on a host needs its own; a restart keeps it.",
        )
        parser.add_argument(
            "--client-id",
            default=None,
            help="MQTT client id (default: strata-ingest-<hostname>-<slot>); must be stable "
            "across restarts and unique among running ingest processes.",
        )
        parser.add_argument(
            "--share-group",
            default=topics.INGEST_SHARE_GROUP,
            help="MQTT 5 shared-subscription group that the ingest processes split traffic in.",
        )
        parser.add_argument(
            "--session-expiry",
            type=int,
            default=SESSION_EXPIRY_S,
            help="Seconds the broker keeps our session and queue while we are away "
            "(a short one for throwaway consumers: every session of every group gets a copy).",
        )
        parser.add_argument(
            "--no-share", action="store_true", help="Plain subscription (brokers without MQTT 5)."
        )

    def handle(
        self,
        *args,
        broker: str | None,
        slot: int,
        client_id: str | None,
        share_group: str,
        session_expiry: int,
        no_share: bool,
        **options,
    ) -> None:
        url = broker or settings.MQTT_URL or settings.EMBEDDED_MQTT_URL
        try:
            broker_url = BrokerURL.parse(url)
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        consumer = IngestConsumer(
            broker_url,
            client_id=client_id,
            slot=slot,
            share_group=None if no_share else share_group,
            session_expiry_s=session_expiry,
        )
        try:
            identity = claim_identity(consumer.client_id)
        except IdentityInUse as exc:
            raise CommandError(f"{exc}: give each ingest process on a host its own --slot") from exc
        # Graceful on SIGTERM and Ctrl-C: archive what was delivered, keep the session.
        signal.signal(signal.SIGTERM, lambda *_: consumer.stop())
        signal.signal(signal.SIGINT, lambda *_: consumer.stop())
        metrics.serve()  # STRATA_METRICS_PORT, if set
        self.stdout.write(f"ingest {consumer.client_id} consuming from {broker_url}")
        with identity:
            consumer.run_forever()
