"""``python manage.py retention``: apply the retention policies (layers by age, then frames
by age, then a disk budget, oldest first; events and exports kept), ``--dry-run`` to see
what they would free. ``--days N`` also drops the whole archive older than N days (layer
partitions), ``--decoded-days M`` decoded images (a cache: any k decodes again) older than M.
``--set`` stores a policy: ``--set --site "North farm" --full-days 7 --keep-layers 3
--keep-days 365 --budget 20G`` (``--camera ID`` for one camera, neither for the default)."""

from __future__ import annotations

import re

from django.core.management.base import BaseCommand, CommandError

from archive.images import prune_decoded
from archive.models import RetentionPolicy
from archive.partitions import apply_retention, ensure_layer_partitions, whole_days
from archive.retention import Plan, run_all
from fleet.models import Device

UNITS = {"": 1, "K": 10**3, "M": 10**6, "G": 10**9, "T": 10**12}


def parse_bytes(text: str) -> int:
    """``500M``, ``20G``, ``1.5T`` or a number of bytes."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMGT]?)B?\s*", text.upper())
    if not match:
        raise CommandError(f"--budget {text!r}: give bytes, e.g. 500M, 20G or 1.5T")
    return int(float(match.group(1)) * UNITS[match.group(2)])


def chain_note(frames: int, verb: str) -> str:
    """Why frames older than --days stay: predicted frames kept need them (issue 18)."""
    return (
        f"{verb} {frames} older frames whole: kept predicted frames decode from them "
        "(their chains back to a key frame); they go once a later key frame is kept instead"
    )


def report(plan: Plan, dry_run: bool) -> list[str]:
    verb = "would free" if dry_run else "freed"
    lines = [
        f"{plan.policy}: {len(plan.device_pks)} cameras, {plan.used_bytes:,} layer bytes; "
        f"{verb} {plan.freed_bytes:,}"
    ]
    for step in plan.steps:
        what = f"keep {step.keep_layers} layers of" if step.action == "thin" else "delete"
        lines.append(
            f"  {what} {step.frames:,} frames before {step.before:%Y-%m-%d %H:%M} "
            f"({step.why}): {step.bytes:,} bytes"
        )
    if plan.budget_use is not None:
        lines.append(
            f"  budget {plan.policy.budget_bytes:,} bytes: {plan.budget_use:.0%} used after"
        )
    return lines


class Command(BaseCommand):
    help = "Apply retention policies (layers, frames, disk budgets); --days drops old partitions."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--days", type=int, help="drop all of the archive older than this")
        parser.add_argument(
            "--decoded-days", type=int, help="days of decoded images to keep (default: --days)"
        )
        parser.add_argument(
            "--dry-run", action="store_true", help="say what would go; change nothing"
        )
        parser.add_argument("--set", action="store_true", help="store the policy given below")
        parser.add_argument("--site", default="", help="with --set: the site's policy")
        parser.add_argument("--camera", help="with --set: one camera's policy (its device id)")
        parser.add_argument("--full-days", type=int, help="days frames keep every layer")
        parser.add_argument("--keep-layers", type=int, default=3, help="layers older frames keep")
        parser.add_argument("--keep-days", type=int, help="days before whole frames go")
        parser.add_argument("--budget", help="layer bytes the scope may hold: 500M, 20G, 1.5T")
        parser.add_argument("--warn", type=float, default=0.8, help="warn at this budget share")

    def handle(self, *args, **o) -> None:
        if o["set"]:
            self._set(o)
            return
        days, decoded_days, dry_run = o["days"], o["decoded_days"], o["dry_run"]
        if (days is not None and days < 1) or (decoded_days is not None and decoded_days < 1):
            raise CommandError("--days and --decoded-days must be at least 1")
        for plan in run_all(dry_run=dry_run):
            for line in report(plan, dry_run):
                self.stdout.write(line)
            if plan.warning:
                self.stderr.write(f"WARNING: {plan.warning}")
        if dry_run:
            if days is not None:
                plan = whole_days(days)
                old = plan.doomed.count()
                self.stdout.write(f"--days {days} would delete {old} frames older than {days} days")
                if kept := plan.kept.count():
                    self.stdout.write(chain_note(kept, "would keep"))
            return
        if days is not None:
            ensure_layer_partitions()
            result = apply_retention(days)
            self.stdout.write(
                f"dropped {len(result.partitions_dropped)} layer partitions, "
                f"deleted {result.rows_deleted} rows older than {days} days"
            )
            if result.chain_frames:
                self.stdout.write(chain_note(result.chain_frames, "kept"))
        if decoded_days is not None:
            dropped = prune_decoded(decoded_days)
            self.stdout.write(f"dropped {dropped} decoded images older than {decoded_days} days")

    def _set(self, o) -> None:
        for name in ("full_days", "keep_days"):
            if o[name] is not None and o[name] < 1:
                raise CommandError(f"--{name.replace('_', '-')} must be at least 1")
        if not 1 <= o["keep_layers"] <= 12:
            raise CommandError("--keep-layers must be 1 to 12")
        device = None
        if o["camera"]:
            device = Device.objects.filter(device_id=o["camera"]).first()
            if device is None:
                raise CommandError(f"no camera {o['camera']!r}")
        fields = {
            "full_days": o["full_days"],
            "keep_layers": o["keep_layers"],
            "keep_days": o["keep_days"],
            "budget_bytes": parse_bytes(o["budget"]) if o["budget"] else None,
            "warn_ratio": o["warn"],
        }
        if device is not None:
            policy, _ = RetentionPolicy.objects.update_or_create(device=device, defaults=fields)
        else:
            policy, _ = RetentionPolicy.objects.update_or_create(
                device=None, site=o["site"], defaults=fields
            )
        self.stdout.write(f"retention policy for {policy} stored")
