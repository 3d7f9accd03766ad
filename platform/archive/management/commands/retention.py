"""``python manage.py retention --days N [--decoded-days M]``: drop the archive older than N
days, and decoded images (a cache: any k decodes again) older than M days."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from archive.images import prune_decoded
from archive.partitions import apply_retention, ensure_layer_partitions


class Command(BaseCommand):
    help = "Delete frames older than --days days (whole layer partitions on PostgreSQL)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--days", type=int, required=True, help="days of archive to keep")
        parser.add_argument(
            "--decoded-days", type=int, help="days of decoded images to keep (default: --days)"
        )

    def handle(self, *args, days: int, decoded_days: int | None = None, **options) -> None:
        if days < 1 or (decoded_days is not None and decoded_days < 1):
            raise CommandError("--days and --decoded-days must be at least 1")
        ensure_layer_partitions()
        result = apply_retention(days)
        self.stdout.write(
            f"dropped {len(result.partitions_dropped)} layer partitions, "
            f"deleted {result.rows_deleted} rows older than {days} days"
        )
        if decoded_days is not None:
            dropped = prune_decoded(decoded_days)
            self.stdout.write(f"dropped {dropped} decoded images older than {decoded_days} days")
