"""Small template filters for how the dashboard words times and numbers."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from django import template
from django.utils import timezone
from django.utils.timesince import timesince

from archive.models import DecodedImage, Frame
from dashboard.services import decoded_url, image_url

register = template.Library()


@register.filter
def image_src(decoded: DecodedImage) -> str:
    """The URL of a stored image, versioned by its decoder revision (``decoded_url``)."""
    return decoded_url(decoded)


@register.filter
def best_image_src(frame: Frame) -> str:
    """The URL of a frame's best image, from ``queries.with_best_image``'s marks."""
    return image_url(frame.pk, frame.image_k, frame.image_decoder)  # type: ignore[attr-defined]


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


@register.inclusion_tag("dashboard/_sparkline.html")
def sparkline(
    values: list[float | None], top: float | None = None, label: str = "", wide: bool = False
) -> dict:
    """Recent values as small SVG bars (none where nothing came), drawn on the server: no
    chart library to ship to a closed network, and bars stay honest when stretched."""
    width, height = (600, 80) if wide else (120, 22)
    peak = top or max((v for v in values if v is not None), default=0) or 1
    step = width / max(1, len(values))
    bars = [
        (
            round(i * step, 2),
            round(height * (1 - min(v, peak) / peak), 2),
            round(height * min(v, peak) / peak, 2),
        )
        for i, v in enumerate(values)
        if v
    ]
    present = [v for v in values if v is not None]
    return {
        "width": width,
        "height": height,
        "bar_width": round(max(step * 0.8, 0.5), 2),
        "bars": bars,
        "label": label,
        "last": present[-1] if present else None,
        "peak": peak,
        "wide": wide,
    }


@register.filter
def device_time(ms: int | None) -> str:
    """A device's capture time (ms since the epoch, its own clock) as a date and time in
    the viewer's time zone, to the millisecond, not a 13-digit number."""
    if ms is None:
        return "unknown"
    try:
        at = datetime.fromtimestamp(ms / 1000, tz=UTC)
    except (OverflowError, OSError, ValueError):
        return f"{ms} ms"
    local = timezone.localtime(at)
    return f"{local:%Y-%m-%d %H:%M:%S}.{local.microsecond // 1000:03d} {local:%Z}"


ADDS = {"create", "add", "issue"}  # the last word of an audit action that makes something
REMOVES = {"remove", "delete"}


def _plain(value: object) -> str:
    if value is None or value == "":
        return "none"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


@register.filter
def changes(entry) -> str:
    """An audit entry's fields as one line that reads as the change: "fps 1 → 2" for a
    change, "role operator; email ana@…" for something new, "site was Depot" for a removal."""
    keys = sorted(entry.before.keys() | entry.after.keys())
    before = {k: entry.before.get(k) for k in keys}
    after = {k: entry.after.get(k) for k in keys}
    verb = entry.action.rsplit(".", 1)[-1]
    if verb in ADDS and all(v is None for v in before.values()):
        parts = [f"{k} {_plain(after[k])}" for k in keys]
    elif verb in REMOVES and all(v is None for v in after.values()):
        parts = [f"{k} was {_plain(before[k])}" for k in keys]
    else:
        parts = [f"{k} {_plain(before[k])} → {_plain(after[k])}" for k in keys]
    return "; ".join(parts)
