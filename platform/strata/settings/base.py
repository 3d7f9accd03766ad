"""Settings shared by every environment, read from environment variables.

The embedded default (no ``DATABASE_URL``/``REDIS_URL``/``MQTT_URL``) runs everything in one
machine with no system services: SQLite, Celery tasks run in-process, an in-memory channel
layer and an embedded MQTT broker started by ``python -m launchers.demo``.
"""

from __future__ import annotations

import os
from pathlib import Path

import dj_database_url

PROJECT_DIR = Path(__file__).resolve().parents[3]  # repository root
PLATFORM_DIR = PROJECT_DIR / "platform"
VAR_DIR = Path(os.environ.get("STRATA_VAR_DIR", PROJECT_DIR / "var"))


def env_bool(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


# Development default only: production (prod.py) refuses it and every other placeholder.
SECRET_KEY = os.environ.get("SECRET_KEY", "insecure-dev-key-change-me")
DEBUG = env_bool("DEBUG", False)  # off unless DEBUG=1, in every environment
ALLOWED_HOSTS = [
    h for h in os.environ.get("ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]").split(",") if h
]
CSRF_TRUSTED_ORIGINS = [o for o in os.environ.get("CSRF_TRUSTED_ORIGINS", "").split(",") if o]

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "channels",
    "fleet",
    "archive",
    "ingest",
    "dashboard",
    "access",
    "audit",
    "control",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "strata.middleware.ContentSecurityPolicyMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]
# Headers on every page, every environment (prod.py adds HTTPS only: redirect, HSTS).
X_FRAME_OPTIONS = "DENY"
SECURE_REFERRER_POLICY = "same-origin"
CONTENT_SECURITY_POLICY = {  # strata.middleware: scripts and styles are static files only
    "default-src": "'self'",
    "script-src": "'self'",
    "style-src": "'self'",
    "img-src": "'self'",
    "connect-src": "'self'",  # fetch and the live WebSocket (same host)
    "object-src": "'none'",
    "base-uri": "'none'",
    "form-action": "'self'",
    "frame-ancestors": "'none'",
}

ROOT_URLCONF = "strata.urls"
ASGI_APPLICATION = "strata.asgi.application"
WSGI_APPLICATION = None

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASE_URL = os.environ.get("DATABASE_URL", f"sqlite:///{VAR_DIR / 'strata.sqlite3'}")
DATABASES = {"default": dj_database_url.parse(DATABASE_URL, conn_max_age=60)}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Several threads (ingest, decode, web) write in the demo: wait for the lock instead of failing.
    DATABASES["default"]["OPTIONS"] = {"timeout": 30, "transaction_mode": "IMMEDIATE"}
    DATABASES["default"]["CONN_MAX_AGE"] = 0
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "dashboard:overview"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = Path(os.environ.get("STATIC_ROOT", VAR_DIR / "static"))
STATIC_ROOT.mkdir(parents=True, exist_ok=True)  # also holds the SQLite file of the demo
WHITENOISE_USE_FINDERS = True  # serve app static files without collectstatic (demo, tests)

# --- Services -------------------------------------------------------------------------------
REDIS_URL = os.environ.get("REDIS_URL", "")
MQTT_URL = os.environ.get("MQTT_URL", "")
EMBEDDED_MQTT_URL = "mqtt://127.0.0.1:1883"
# Where the platform writes the broker's camera password file and ACL (fleet.credentials);
# empty: credentials are kept in the database only (no broker of ours reads them).
MQTT_AUTH_DIR = os.environ.get("MQTT_AUTH_DIR", "")

if REDIS_URL:
    # A live socket waits for its next event with a blocking Redis read of 5 s (channels-redis's
    # BRPOP); redis-py's default socket timeout is also 5 s, which cut that read short and
    # closed every idle socket with 1011. No read timeout (the server ends the blocking read);
    # a finite one longer than 5 s also made a closing consumer's cancelled read linger for
    # seconds (a test hung for 300 s). Connecting still times out, so a dead Redis is seen.
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {
                "hosts": [
                    {"address": REDIS_URL, "socket_timeout": None, "socket_connect_timeout": 5}
                ]
            },
        }
    }
else:
    CHANNEL_LAYERS = {
        "default": {"BACKEND": "strata.channel_layers.ThreadSafeInMemoryChannelLayer"}
    }

# Celery (namespace CELERY_): Redis broker when REDIS_URL is set, otherwise tasks run in-process.
CELERY_BROKER_URL = REDIS_URL or "memory://"
CELERY_RESULT_BACKEND = None
CELERY_TASK_ALWAYS_EAGER = not REDIS_URL
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_DEFAULT_QUEUE = "live"
CELERY_IMPORTS = ["decoder_worker.tasks"]  # the workers' task wrappers (archive.jobs names them)
# Two queues, four priorities (archive.jobs.Priority): live viewers on ``live``; re-decodes
# (slider, compare), exports and backfill on ``archive`` at message priority 0, 3 and 9.
CELERY_TASK_ROUTES = {
    "decoder_worker.tasks.decode_live": {"queue": "live"},
    "decoder_worker.tasks.decode_frames": {"queue": "live"},
    "decoder_worker.tasks.redecode": {"queue": "archive"},
    "decoder_worker.tasks.export_video": {"queue": "archive"},
    "decoder_worker.tasks.backfill": {"queue": "archive"},
}
# A task a dead worker held (late acknowledgement) goes back to the queue after this long:
# longer than the slowest batch decode, short enough that a crash costs little latency.
# A worker takes its queues in the order it names them (``-Q live,archive``: live first,
# "priority"), and within them messages by priority (0 first, then 3, 6, 9).
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "visibility_timeout": int(os.environ.get("STRATA_TASK_VISIBILITY_S", 300)),
    "unacked_restore_interval": 5,
    "unacked_restore_throttle": 1,
    "queue_order_strategy": "priority",
    "priority_steps": [0, 3, 6, 9],
}

# --- Strata ---------------------------------------------------------------------------------
# Which codec model to decode with when a packet names none we know; None = the default model.
STRATA_DECODE_DEVICE = os.environ.get("STRATA_DECODE_DEVICE", "auto")  # auto | cpu | cuda
# The decoder's runtime (mcucoder.runtime.RUNTIMES): torch, or torch-half on a GPU; the CPU
# runtimes measured no faster here (BENCHMARKS.md, bench.decode --runtimes).
STRATA_DECODE_RUNTIME = os.environ.get("STRATA_DECODE_RUNTIME", "torch")
# Torch threads per decode worker process (0: torch's default, one per core); a host running
# a live worker beside an archive worker gives each its share (decoder_worker.celery.host_workers).
STRATA_DECODE_THREADS = int(os.environ.get("STRATA_DECODE_THREADS", 0))
STRATA_DECODED_FORMAT = "WEBP"
STRATA_DECODED_QUALITY = 90
STRATA_MAX_PACKET_BYTES = 256 * 1024
# Largest frame ingest archives (width x height; 1080p padded to 8 fits): bounds what a decode
# worker holds per frame. A decode pass stacks frames of one size up to the batch's pixels.
STRATA_MAX_FRAME_PIXELS = int(os.environ.get("STRATA_MAX_FRAME_PIXELS", 1920 * 1088))
STRATA_DECODE_BATCH_PIXELS = int(os.environ.get("STRATA_DECODE_BATCH_PIXELS", 4 * 1920 * 1088))
# What gets decoded (archive.policy): "eager" every frame, "watched" the cameras someone views
# live plus the rest when workers are idle, "on-demand" only what is asked for; "auto": eager
# when a GPU worker is present, else watched.
STRATA_DECODE_POLICY = os.environ.get("STRATA_DECODE_POLICY", "auto")
STRATA_EVENT_MOTION = int(os.environ.get("STRATA_EVENT_MOTION", 20))  # % of blocks: an event
STRATA_KEY_PREFIX = "strata:"  # Redis keys of the decode coordination (archive.coordination)
STRATA_WATCH_TTL_S = 30  # a live view counts as watching this long after its last refresh
# Frames per backfill task: the longest a live frame can wait behind one (about 40 ms each
# at 224x224 on one CPU thread).
STRATA_BACKFILL_BATCH = int(os.environ.get("STRATA_BACKFILL_BATCH", 8))
STRATA_BACKFILL_WINDOW_S = int(os.environ.get("STRATA_BACKFILL_WINDOW_S", 24 * 3600))
# /metrics (strata.metrics): a bearer token, staff, or these client networks may read it.
STRATA_METRICS_TOKEN = os.environ.get("STRATA_METRICS_TOKEN", "")
STRATA_METRICS_ALLOW = [
    n for n in os.environ.get("STRATA_METRICS_ALLOW", "127.0.0.0/8,::1/128").split(",") if n
]
STRATA_DECODE_CLAIM_S = 120  # a (frame, k) being decoded is another worker's for this long


def refusal_without_traceback(record) -> bool:
    """A refused request (4xx: no permission, a bad form) is expected and answered: its log
    line says so, a traceback would read as a crash. Server errors keep theirs."""
    if getattr(record, "status_code", 500) < 500:
        record.exc_info = record.exc_text = None
    return True


LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"},
        "json": {"()": "observability.logs.JsonFormatter"},  # LOG_FORMAT=json: JSON lines
    },
    "filters": {
        "refusals": {
            "()": "django.utils.log.CallbackFilter",
            "callback": refusal_without_traceback,
        }
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": "json" if os.environ.get("LOG_FORMAT") == "json" else "plain",
            "filters": ["refusals"],
        }
    },
    "root": {"handlers": ["console"], "level": os.environ.get("LOG_LEVEL", "INFO")},
    "loggers": {
        name: {"level": "WARNING"}
        for name in (
            "daphne",
            "django.channels.server",
            "amqtt",
            "transitions",
            "kombu",
            "celery.app.trace",
        )
    },
}
