"""Test settings: the real PostgreSQL, Redis and Mosquitto on their standard ports by default.

Several test runs may share one machine's services (developers, CI): each run gets its own
test database, Celery queue keys and channel-layer prefix, named by ``STRATA_TEST_RUN``,
which child processes (ingest, workers) inherit through the environment.
"""

import os

os.environ.setdefault("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/strata")
os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:6379/15")
os.environ.setdefault("MQTT_URL", "mqtt://127.0.0.1:1883")
TEST_RUN = os.environ.setdefault("STRATA_TEST_RUN", str(os.getpid()))

from .base import *  # noqa: E402, F403
from .base import CELERY_BROKER_TRANSPORT_OPTIONS, CHANNEL_LAYERS, DATABASES  # noqa: E402

DATABASES["default"]["TEST"] = {"NAME": f"test_strata_{TEST_RUN}"}
CELERY_BROKER_TRANSPORT_OPTIONS = {
    **CELERY_BROKER_TRANSPORT_OPTIONS,
    "global_keyprefix": f"strata-test-{TEST_RUN}:",
}
CHANNEL_LAYERS["default"]["CONFIG"]["prefix"] = f"strata-test-{TEST_RUN}"
STRATA_KEY_PREFIX = f"strata-test-{TEST_RUN}:"

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # fast logins in tests
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
