"""Small template filters for how the dashboard words times and numbers."""

from __future__ import annotations

from datetime import datetime, timedelta

from django import template
from django.utils import timezone
from django.utils.timesince import timesince

register = template.Library()


@register.filter
def ago(value: datetime | None) -> str:
    """ "just now" / "3 minutes ago" / "never": what people read on a camera tile."""
    if value is None:
        return "never"
    if timezone.now() - value < timedelta(minutes=1):
        return "just now"
    return f"{timesince(value)} ago"


@register.filter
def seconds(value: timedelta) -> str:
    """A grace period as people say it: "90 s", "15 min", "2 h"."""
    total = int(value.total_seconds())
    if total < 120:
        return f"{total} s"
    if total < 2 * 3600:
        return f"{total // 60} min"
    return f"{total // 3600} h"
