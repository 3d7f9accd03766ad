"""``python manage.py provision DEVICE_ID [--site SITE]``: a camera and its MQTT login."""

from __future__ import annotations

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from fleet.credentials import issue_credentials


class Command(BaseCommand):
    help = (
        "Create a camera (or keep an existing one) and print a new MQTT login for it as JSON "
        "(device_id, username, password). The password is shown only now; issuing again "
        "replaces it."
    )

    def add_arguments(self, parser) -> None:
        parser.add_argument("device_id")
        parser.add_argument("--site", default="", help="farm, yard, building… (new cameras)")
        parser.add_argument("--name", default="", help="display name (new cameras)")

    def handle(self, *args, device_id: str, site: str, name: str, **options) -> None:
        try:
            issued = issue_credentials(device_id, site=site, name=name)
        except ValidationError as exc:
            raise CommandError("; ".join(exc.messages)) from exc
        self.stdout.write(issued.to_json())
