"""``python manage.py revoke DEVICE_ID``: the camera's MQTT login stops working."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from fleet.credentials import revoke_credentials


class Command(BaseCommand):
    help = (
        "Revoke a camera's MQTT login: the broker refuses it, and closes its session, at its "
        "next reload (seconds). Its archive stays."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("device_id")

    def handle(self, *args, device_id: str, **options) -> None:
        if not revoke_credentials(device_id):
            raise CommandError(f"{device_id} has no active MQTT login")
        self.stdout.write(f"revoked the MQTT login of {device_id}")
