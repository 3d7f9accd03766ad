"""The Celery app of the platform, configured from Django settings (``CELERY_*``).

Created when Django loads the project (``strata/__init__.py``), so that every platform process
(dashboard, ingest, controller) can queue jobs by task name (``archive.jobs``). The decode
workers (``decoder_worker/``) run this same app with their task wrappers registered.
"""

from __future__ import annotations

from celery import Celery

app = Celery("strata")
app.config_from_object("django.conf:settings", namespace="CELERY")
