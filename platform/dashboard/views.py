"""Dashboard pages. Thin: reads come from ``dashboard.queries``, writes from services, and
every camera, frame and image is looked up through the user's scope (``access.services``)."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import date, timedelta
from functools import wraps
from typing import TypeVar

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.db.models import QuerySet
from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseBadRequest,
    JsonResponse,
)
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST

from access.services import is_admin, visible_devices
from archive.exports import ExportError, request_export
from archive.images import as_png, best_decoded, clamp_channels, decoded_at
from archive.jobs import JobQueueUnavailable
from archive.models import Export, Frame
from archive.previews import preview_image
from audit.services import audit_trail
from dashboard import queries
from dashboard.forms import ControlsForm, ExportForm
from dashboard.latents import latent_sheet
from dashboard.services import decoded_url
from fleet import services as fleet
from fleet.models import Device
from fleet.services import Health
from protocol.payloads import MAX_TIER


def visible_device(request: HttpRequest, device_id: str) -> Device:
    """The camera if this user may see it; 404 otherwise, so ids of others do not leak."""
    return get_object_or_404(visible_devices(request.user), device_id=device_id)


def visible_frame(request: HttpRequest, frame_id: int) -> Frame:
    return get_object_or_404(
        Frame.objects.select_related("device"),
        pk=frame_id,
        device__in=visible_devices(request.user),
    )


# --- query parameters: one parse each, a bad value is a 400 that says why, never a 500 -----

T = TypeVar("T")
View = TypeVar("View", bound=Callable[..., HttpResponse])


class BadParameter(ValueError):
    """A query parameter a page cannot use; ``refuses_bad_parameters`` answers it with 400."""


def refuses_bad_parameters(view: View) -> View:
    """Answer a ``BadParameter`` raised by ``view`` with 400 and its reason, as plain text."""

    @wraps(view)
    def wrapper(request: HttpRequest, *args: object, **kwargs: object) -> HttpResponse:
        try:
            return view(request, *args, **kwargs)
        except BadParameter as exc:
            return HttpResponseBadRequest(
                f"Bad query parameter {exc}\n", content_type="text/plain; charset=utf-8"
            )

    return wrapper  # type: ignore[return-value]


def query_param(request: HttpRequest, name: str, parse: Callable[[str], T], default: T) -> T:
    """``?name=`` parsed by ``parse`` (which raises ValueError on a bad value); ``default``
    when absent."""
    raw = request.GET.get(name)
    if raw is None:
        return default
    try:
        return parse(raw)
    except ValueError as exc:
        raise BadParameter(f"{name}={raw[:40]!r}: {exc}") from None


def whole_number(low: int, high: int) -> Callable[[str], int]:
    """ASCII digits only (``str.isdigit`` also passes ``²``, which ``int`` refuses)."""

    def parse(raw: str) -> int:
        if not re.fullmatch(r"[0-9]{1,9}", raw) or not low <= int(raw) <= high:
            raise ValueError(f"must be a whole number from {low} to {high}")
        return int(raw)

    return parse


def text(max_length: int = 200) -> Callable[[str], str]:
    """Free text that PostgreSQL can compare: no NUL, bounded, stripped."""

    def parse(raw: str) -> str:
        if "\x00" in raw or len(raw) > max_length:
            raise ValueError(f"must be text of at most {max_length} characters, without NUL")
        return raw.strip()

    return parse


def choice(*allowed: str) -> Callable[[str], str]:
    def parse(raw: str) -> str:
        if raw not in allowed:
            raise ValueError("must be one of " + ", ".join(repr(a) for a in allowed))
        return raw

    return parse


FIRST_DAY = date(1970, 1, 1)  # frames carry Unix times; nothing is archived before


def archive_day(raw: str) -> date:
    """A ``YYYY-MM-DD`` day the archive can hold: from 1970 to tomorrow (any time zone)."""
    last = timezone.localdate() + timedelta(days=1)
    if not re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", raw):
        raise ValueError("must be a day as YYYY-MM-DD")
    day = date.fromisoformat(raw)  # ValueError for 2026-02-30
    if not FIRST_DAY <= day <= last:
        raise ValueError(f"must be a day from {FIRST_DAY} to {last}")
    return day


CHANNEL_COUNT = whole_number(1, MAX_TIER)
HOUR = whole_number(0, 23)
PAGE_NUMBER = whole_number(1, 999_999_999)  # ?page= of a paged list
MOTION_SHARE = whole_number(1, 100)  # ?motion=: % of blocks changed (event search)
ARCHIVE_PAGE = 60  # thumbnails a page of the archive shows: a minute at 1 frame/s
RECENT_FRAMES = 24  # rows of a camera page's recent frames (live ones push the oldest out)


@login_required
@require_GET
@refuses_bad_parameters
def overview(request: HttpRequest) -> HttpResponse:
    devices = visible_devices(request.user)
    filters = queries.Filters(
        site=query_param(request, "site", text(), ""),
        health=query_param(request, "health", choice("", *(h.value for h in Health)), ""),
        q=query_param(request, "q", text(), ""),
    )
    tiles = queries.camera_tiles(devices, filters)
    context = {
        "groups": queries.group_by_site(tiles),
        "count": len(tiles),
        "filters": filters,
        "sites": devices.exclude(site="").values_list("site", flat=True).distinct().order_by(),
        "health_choices": [h.value for h in Health],
    }
    return render(request, "dashboard/overview.html", context)


def _device_page(
    request: HttpRequest, device: Device, form: ControlsForm | None = None, status: int = 200
) -> HttpResponse:
    can_admin = is_admin(request.user)
    if can_admin and form is None:
        form = ControlsForm(initial=fleet.controls(device))
    context = {
        "tile": queries.camera_tile(device),
        "control": queries.tier_control(device),
        "device": device,
        "storage": queries.storage(device),
        "frames": queries.recent_frames(device, RECENT_FRAMES),
        "recent_limit": RECENT_FRAMES,
        "desired": fleet.desired_payload(device),
        "grace": fleet.grace_period(device),
        "can_admin": can_admin,
        "form": form if can_admin else None,
        "changes": audit_trail(f"device:{device.device_id}", 5) if can_admin else [],
    }
    return render(request, "dashboard/device.html", context, status=status)


@login_required
@require_GET
def device_detail(request: HttpRequest, device_id: str) -> HttpResponse:
    return _device_page(request, visible_device(request, device_id))


@login_required
@require_POST
def device_controls(request: HttpRequest, device_id: str) -> HttpResponse:
    """An admin saves a camera's limits: stored, audited, published as desired state."""
    if not is_admin(request.user):
        raise PermissionDenied("Only admins change camera settings.")
    device = visible_device(request, device_id)
    form = ControlsForm(request.POST)
    if form.is_valid():
        try:
            changed = fleet.update_controls(device, request.user, **form.cleaned_data)
        except ValidationError as exc:
            form.add_error(None, exc)
        except (ConnectionError, OSError) as exc:
            messages.error(request, f"Saved, but the broker could not be reached: {exc}")
            return redirect("dashboard:device", device.device_id)
        else:
            if changed is None:
                messages.info(request, "Nothing changed.")
            else:
                # No version number here: the controller may publish a newer one before the
                # page loads; the settings table and the line below it name the current one.
                messages.success(request, "Saved and sent to the camera.")
            return redirect("dashboard:device", device.device_id)
    return _device_page(request, device, form, status=400)


@login_required
@require_GET
def device_state(request: HttpRequest, device_id: str) -> JsonResponse:
    """What the camera page polls: health and desired vs reported state."""
    device = visible_device(request, device_id)
    state = fleet.applied(device)
    return JsonResponse(
        {
            "device_id": device.device_id,
            "health": fleet.health(device),
            "last_seen_at": device.last_seen_at,
            "desired": fleet.desired_payload(device),
            "reported": device.reported,
            "reported_at": device.reported_at,
            "pending": state.pending,
            "rejected": state.rejected,
        }
    )


@login_required
@require_GET
@refuses_bad_parameters
def archive(request: HttpRequest, device_id: str) -> HttpResponse:
    """The camera's timeline: days with frames, the hours of one day and the frames of one
    hour, with the motion in each hour and minute; ``?motion=N`` lists the day's frames with
    at least N % of blocks changed instead (event search)."""
    device = visible_device(request, device_id)
    days = queries.archive_days(device)
    day = query_param(request, "day", archive_day, days[0][0] if days else timezone.localdate())
    hours = queries.day_hours(device, day)
    hour_param = query_param(request, "hour", HOUR, None)
    if hour_param is not None:
        hour = hours[hour_param]
    else:  # the latest hour with frames
        hour = next((b for b in reversed(hours) if b.frames), hours[-1])
    hour_end = hour.start + timedelta(hours=1)
    motion = query_param(request, "motion", MOTION_SHARE, None)
    if motion is None:
        frames = queries.hour_frames(device, hour.start)
    else:
        frames = queries.motion_frames(device, day, motion)
    paginator = Paginator(frames, ARCHIVE_PAGE)
    page = paginator.get_page(query_param(request, "page", PAGE_NUMBER, 1))
    query = request.GET.copy()
    query.pop("page", None)
    query["day"], query["hour"] = day.isoformat(), str(timezone.localtime(hour.start).hour)
    minutes = queries.hour_minutes(device, hour.start)
    threshold = motion or settings.STRATA_EVENT_MOTION
    context = {
        "device": device,
        "days": days,
        "day": day,
        "hours": hours,
        "hour": hour,
        "minutes": minutes,
        "minute_links": zip(minutes, queries.minute_pages(minutes, ARCHIVE_PAGE), strict=True),
        "day_motion": queries.has_motion_data(hours),
        "hour_motion": queries.has_motion_data(minutes),
        "motion": motion,
        "threshold": threshold,
        "hour_end": hour_end,
        "ks": range(1, MAX_TIER + 1),
        "page": page,
        "query": query.urlencode(),
        # new frames join the top of the first page of the hour that is still going on
        "live": motion is None and page.number == 1 and hour.start <= timezone.now() < hour_end,
    }
    return render(request, "dashboard/archive.html", context)


def _channels(request: HttpRequest, name: str, frame: Frame, default: int) -> int:
    """``?name=`` as a channel count, clamped to the layers the frame has."""
    return clamp_channels(frame, query_param(request, name, CHANNEL_COUNT, default))


@login_required
@require_GET
@refuses_bad_parameters
def frame_detail(request: HttpRequest, frame_id: int) -> HttpResponse:
    """One archived frame with the quality slider (k = 1 .. layers received)."""
    frame = visible_frame(request, frame_id)
    k = _channels(request, "k", frame, frame.n_layers)
    previous, following = queries.neighbours(frame)
    hour = timezone.localtime(frame.received_at)
    status, decoded = 200, None
    try:
        decoded = decoded_at(frame, k) if frame.n_layers else None
    except JobQueueUnavailable as exc:
        status = 503
        messages.error(request, f"This frame cannot be decoded now: {exc}. Try again later.")
    context = {
        "frame": frame,
        "device": frame.device,
        "k": k,
        "compare_k": _channels(request, "compare_k", frame, max(1, k // 3)),
        "ks": range(1, frame.n_layers + 1),
        "decoded": decoded,
        "previous": previous,
        "following": following,
        "day": hour.date(),
        "hour": hour.hour,
    }
    return render(request, "dashboard/frame.html", context, status=status)


@login_required
@require_GET
@refuses_bad_parameters
def frame_decode(request: HttpRequest, frame_id: int) -> JsonResponse:
    """Polled by the slider: is the frame at ``?k=`` ready, and where is it?"""
    frame = visible_frame(request, frame_id)
    k = query_param(request, "k", CHANNEL_COUNT, None)
    if k is None or frame.n_layers == 0:
        raise Http404("k must be a channel count of a frame with layers")
    k = clamp_channels(frame, k)
    try:
        decoded = decoded_at(frame, k)
    except JobQueueUnavailable as exc:
        return JsonResponse({"frame_id": frame.pk, "channels": k, "error": str(exc)}, status=503)
    return JsonResponse(
        {
            "frame_id": frame.pk,
            "channels": k,
            "ready": decoded is not None,
            "image_url": decoded_url(decoded) if decoded else None,
            "decode_ms": decoded.decode_ms if decoded else None,
        }
    )


@login_required
@require_GET
def frame_latents(request: HttpRequest, frame_id: int) -> HttpResponse:
    """The frame's 12 latent channel maps as one PNG."""
    frame = visible_frame(request, frame_id)
    if frame.n_layers == 0:
        raise Http404("this frame has no layers")
    response = HttpResponse(latent_sheet(frame), content_type="image/png")
    response["Cache-Control"] = "private, max-age=3600"  # more layers of the frame may arrive
    return response


@login_required
@require_GET
@refuses_bad_parameters
def frame_image(request: HttpRequest, frame_id: int) -> HttpResponse:
    """The decoded image of a frame at ``?k=`` channels (default: the best decoded);
    ``?format=png`` downloads it as PNG. Cached as immutable only under the URL naming the
    decoder revision that made it (``?v=``, ``services.image_url``): a re-decode by another
    revision replaces the image in place, and the old URL must not keep showing the old one."""
    frame = visible_frame(request, frame_id)
    image = best_decoded(frame, query_param(request, "k", CHANNEL_COUNT, None))
    if image is None:
        raise Http404("no decoded image for this frame yet")
    if query_param(request, "format", choice("png"), None) == "png":
        response = HttpResponse(as_png(image), content_type="image/png")
        name = f"{frame.device.device_id}-{frame.seq}-k{image.channels}.png"
        response["Content-Disposition"] = f'attachment; filename="{name}"'
    else:
        response = HttpResponse(bytes(image.image), content_type=image.content_type)
    versioned = request.GET.get("v") == image.decoder
    response["Cache-Control"] = "private, max-age=86400, immutable" if versioned else "no-cache"
    return response


@login_required
@require_GET
def frame_preview(request: HttpRequest, frame_id: int) -> HttpResponse:
    """A quarter-size thumbnail from the frame's first layers, without the decoder
    (``archive.previews``): for overviews and timelines."""
    frame = visible_frame(request, frame_id)
    try:
        data, content_type = preview_image(frame)
    except ValueError as exc:
        raise Http404(str(exc)) from exc
    response = HttpResponse(data, content_type=content_type)
    response["Cache-Control"] = "private, max-age=86400, immutable"
    return response


# --- exports ---------------------------------------------------------------------------------


def visible_exports(request: HttpRequest) -> QuerySet[Export]:
    """Exports of the cameras this user may see."""
    return Export.objects.filter(device__in=visible_devices(request.user)).select_related(
        "device", "created_by"
    )


@login_required
@require_POST
def export_create(request: HttpRequest, device_id: str) -> HttpResponse:
    device = visible_device(request, device_id)
    form = ExportForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Export not started: " + form.errors.as_text())
        return redirect("dashboard:archive", device.device_id)
    try:
        request_export(request.user, device, **form.cleaned_data)
    except ExportError as exc:
        messages.error(request, f"Export not started: {exc}")
        return redirect("dashboard:archive", device.device_id)
    except JobQueueUnavailable as exc:  # the export is listed as failed, with the reason
        messages.error(request, f"Export not started: {exc}. Try again later.")
        return redirect("dashboard:exports")
    messages.success(request, "Export started; it is kept here until you delete it.")
    return redirect("dashboard:exports")


@login_required
@require_GET
def export_list(request: HttpRequest) -> HttpResponse:
    exports = list(visible_exports(request).defer("video")[:100])
    busy = any(e.status in (Export.Status.QUEUED, Export.Status.RUNNING) for e in exports)
    return render(request, "dashboard/exports.html", {"exports": exports, "busy": busy})


@login_required
@require_GET
def export_video(request: HttpRequest, export_id: int) -> HttpResponse:
    export = get_object_or_404(visible_exports(request), pk=export_id, status=Export.Status.DONE)
    response = HttpResponse(bytes(export.video), content_type="video/mp4")
    response["Content-Disposition"] = f'attachment; filename="{export.filename}"'
    return response


@login_required
@require_POST
def export_delete(request: HttpRequest, export_id: int) -> HttpResponse:
    export = get_object_or_404(visible_exports(request).defer("video"), pk=export_id)
    if export.created_by_id != request.user.pk and not is_admin(request.user):
        raise PermissionDenied("Only its author or an admin deletes an export.")
    export.delete()
    messages.info(request, "Export deleted.")
    return redirect("dashboard:exports")
