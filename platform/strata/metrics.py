"""``/metrics``: this web process's metrics plus the platform's shared state, read at scrape
time (devices online, task queue lengths, archive bytes by table and layer band).

Access: a bearer token (``STRATA_METRICS_TOKEN``, ``Authorization: Bearer ...``), a signed-in
staff user, or a client address in ``STRATA_METRICS_ALLOW`` (default loopback only); anyone
else gets 404, so the endpoint is not advertised. Behind a proxy the client address is the
proxy's: use the token there.
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
import time

from django.conf import settings
from django.db import DatabaseError
from django.db.models import Count, Q
from django.http import Http404, HttpRequest, HttpResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe
from prometheus_client import REGISTRY, CollectorRegistry, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from archive import coordination
from archive.jobs import ARCHIVE_QUEUE, LIVE_QUEUE, Priority
from archive.retention import budget_use, layer_bytes_by_band, table_bytes
from fleet.models import Device
from observability import metrics

log = logging.getLogger(__name__)
DISK_EVERY_S = 60.0  # archive sizes change slowly; summing them is the costly part
BUDGET_EVERY_S = 600.0  # budget use sums each policy's layers: the costliest figure


def queue_keys() -> dict[str, str]:
    """Label -> Redis list of every queue the platform sends tasks to (kombu keeps one list
    per message priority above 0, named queue + "\\x06\\x16" + priority)."""
    prefix = (settings.CELERY_BROKER_TRANSPORT_OPTIONS or {}).get("global_keyprefix", "")
    keys = {LIVE_QUEUE: prefix + LIVE_QUEUE}
    for priority in Priority:
        suffix = f"\x06\x16{priority.value}" if priority.value else ""
        keys[f"{ARCHIVE_QUEUE}:{priority.name.lower()}"] = prefix + ARCHIVE_QUEUE + suffix
    return keys


class PlatformCollector(Collector):
    """Gauges of shared state: collected by the web process only, so each has one source."""

    def __init__(self) -> None:
        self._disk: tuple[float, dict, dict] | None = None
        self._budgets: tuple[float, list] | None = None

    def collect(self):
        try:
            yield from self._devices()
            yield from self._disk_gauges()
        except DatabaseError as exc:
            log.warning("metrics: database: %s", exc)
        yield from self._queues()

    def _devices(self):
        counts = Device.objects.filter(is_active=True).aggregate(
            total=Count("pk"), online=Count("pk", filter=Q(online=True))
        )
        yield GaugeMetricFamily(metrics.DEVICES, "Active devices.", value=counts["total"])
        yield GaugeMetricFamily(
            metrics.DEVICES_ONLINE, "Active devices whose status is online.", counts["online"]
        )

    def _queues(self):
        gauge = GaugeMetricFamily(
            metrics.QUEUE_LENGTH, "Tasks waiting, by queue.", labels=["queue"]
        )
        client = coordination.client()
        if client is not None:
            try:
                for label, key in queue_keys().items():
                    gauge.add_metric([label], client.llen(key))
            except Exception as exc:  # Redis away: no figure rather than a failed scrape
                log.warning("metrics: redis: %s", exc)
        yield gauge

    def _disk_gauges(self):
        now = time.monotonic()
        if self._disk is None or now - self._disk[0] > DISK_EVERY_S:
            tables = table_bytes()
            self._disk = (now, tables, layer_bytes_by_band(tables["layer"]))
        if self._budgets is None or now - self._budgets[0] > BUDGET_EVERY_S:
            self._budgets = (now, budget_use())
        _, tables, bands = self._disk
        budgets = self._budgets[1]
        by_table = GaugeMetricFamily(
            metrics.ARCHIVE_BYTES, "Archive bytes on disk, by table.", labels=["table"]
        )
        for name, size in tables.items():
            by_table.add_metric([name], size)
        by_band = GaugeMetricFamily(
            metrics.ARCHIVE_LAYER_BYTES, "Layer bytes on disk, by layer band.", labels=["band"]
        )
        for name, size in bands.items():
            by_band.add_metric([name], size)
        use = GaugeMetricFamily(
            metrics.RETENTION_BUDGET_USE,
            "Layer bytes over the disk budget, per retention policy (1 = full).",
            labels=["policy"],
        )
        for name, ratio in budgets:
            use.add_metric([name], ratio)
        yield from (by_table, by_band, use)


# A registry of its own: only /metrics reads the shared state, never another process's port.
PLATFORM = CollectorRegistry(auto_describe=False)
PLATFORM.register(PlatformCollector())


def _allowed(request: HttpRequest) -> bool:
    token = settings.STRATA_METRICS_TOKEN
    given = request.headers.get("Authorization", "")
    if token and hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
        return True
    if request.user.is_authenticated and request.user.is_staff:
        return True
    try:
        address = ipaddress.ip_address(request.META.get("REMOTE_ADDR", ""))
    except ValueError:
        return False
    return any(address in ipaddress.ip_network(n) for n in settings.STRATA_METRICS_ALLOW)


@never_cache
@require_safe
def metrics_view(request: HttpRequest) -> HttpResponse:
    if not _allowed(request):
        raise Http404
    body = generate_latest(REGISTRY) + generate_latest(PLATFORM)
    return HttpResponse(body, content_type="text/plain; version=0.0.4")
