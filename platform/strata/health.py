"""Liveness and readiness for orchestrators (compose health checks, Kubernetes probes).

``/healthz`` says the process serves requests and touches nothing else: a database outage
must not get every web process restarted. ``/readyz`` says it can do its work — the database
answers and, where Redis is configured (job queue, live events), Redis answers — or answers
503 naming the part that does not, so a load balancer sends no users to it. Neither needs a
login, and neither says more than which part is down (the details go to the log).
"""

from __future__ import annotations

import logging

import redis
from django.conf import settings
from django.db import DatabaseError, connection
from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe

logger = logging.getLogger(__name__)


def readiness_problems() -> list[str]:
    """The parts this process needs that do not answer now (empty: ready)."""
    problems = []
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except DatabaseError as exc:
        logger.warning("readiness: database: %s", exc)
        problems.append("database")
    if settings.REDIS_URL:
        client = redis.Redis.from_url(
            settings.REDIS_URL, socket_connect_timeout=2, socket_timeout=2
        )
        try:
            client.ping()
        except (redis.RedisError, OSError) as exc:
            logger.warning("readiness: redis: %s", exc)
            problems.append("redis")
        finally:
            client.close()
    return problems


@never_cache
@require_safe
def healthz(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "ok"})


@never_cache
@require_safe
def readyz(request: HttpRequest) -> JsonResponse:
    problems = readiness_problems()
    if problems:
        return JsonResponse({"status": "unavailable", "down": problems}, status=503)
    return JsonResponse({"status": "ready"})
