"""Dashboard pages. Thin: reads come from ``dashboard.queries``."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render
from django.views.decorators.http import require_GET

from archive.models import DecodedImage
from dashboard import queries
from fleet.models import Device


@login_required
@require_GET
def overview(request: HttpRequest) -> HttpResponse:
    return render(request, "dashboard/overview.html", {"tiles": queries.camera_tiles()})


@login_required
@require_GET
def device_detail(request: HttpRequest, device_id: str) -> HttpResponse:
    device = get_object_or_404(Device, device_id=device_id)
    context = {
        "device": device,
        "latest": queries.latest_decoded(device),
        "frames": queries.recent_frames(device),
    }
    return render(request, "dashboard/device.html", context)


@login_required
@require_GET
def frame_image(request: HttpRequest, frame_id: int) -> HttpResponse:
    """The decoded image of a frame at ``?k=`` channels (default: the best decoded)."""
    decoded = DecodedImage.objects.filter(frame_id=frame_id)
    k = request.GET.get("k")
    if k is not None:
        if not k.isdigit():
            raise Http404("k must be a channel count")
        decoded = decoded.filter(channels=int(k))
    image = decoded.order_by("-channels").first()
    if image is None:
        raise Http404("no decoded image for this frame yet")
    response = HttpResponse(bytes(image.image), content_type=image.content_type)
    response["Cache-Control"] = "private, max-age=86400, immutable"
    return response
