"""``python manage.py retention --days N``: drop the archive older than N days."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError

from archive.partitions import apply_retention, ensure_layer_partitions


class Command(BaseCommand):
    help = "Delete frames older than --days days (whole layer partitions on PostgreSQL)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--days", type=int, required=True, help="days of archive to keep")

    def handle(self, *args, days: int, **options) -> None:
        if days < 1:
            raise CommandError("--days must be at least 1")
        ensure_layer_partitions()
        result = apply_retention(days)
        self.stdout.write(
            f"dropped {len(result.partitions_dropped)} layer partitions, "
            f"deleted {result.rows_deleted} rows older than {days} days"
        )
