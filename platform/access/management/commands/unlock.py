"""``manage.py unlock USERNAME [--address IP]``: end a sign-in lockout now."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError, CommandParser

from access.services import unlock


class Command(BaseCommand):
    help = (
        "End sign-in lockouts now: of USERNAME from every address, and/or (--address) of "
        "every account from one address."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("username", nargs="?", help="the account to unlock")
        parser.add_argument("--address", help="an IP address to unlock for every account")

    def handle(self, *args: object, username: str | None, address: str | None, **options):
        if not username and not address:
            raise CommandError("name a USERNAME, an --address, or both")
        forgotten = unlock(username, address)
        who = " from ".join(x for x in (username, address) if x)
        self.stdout.write(f"Unlocked {who}: {forgotten} failed sign-in(s) forgotten.")
