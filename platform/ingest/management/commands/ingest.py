"""``python manage.py ingest``: consume device messages from MQTT into the archive."""

from __future__ import annotations

import signal

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from ingest.consumer import SESSION_EXPIRY_S, IngestConsumer
from protocol import topics
from protocol.broker import BrokerURL


class Command(BaseCommand):
    help = "Consume frames, status and telemetry from MQTT into the archive (shared subscription)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--broker", default=None, help="mqtt://host:port (default: MQTT_URL)")
        parser.add_argument(
            "--client-id", default=None, help="MQTT client id (default: per host and pid)"
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
            share_group=None if no_share else share_group,
            session_expiry_s=session_expiry,
        )
        signal.signal(signal.SIGTERM, lambda *_: consumer.stop())
        self.stdout.write(f"ingest {consumer.client_id} consuming from {broker_url}")
        try:
            consumer.run_forever()
        except KeyboardInterrupt:
            consumer.stop()
