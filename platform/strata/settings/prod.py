"""Production settings: refuse to start with DEBUG on or a placeholder secret; HTTPS only.

The web process sits behind a TLS-terminating proxy that sets ``X-Forwarded-Proto``: plain
HTTP requests are redirected to HTTPS, and browsers are told to use HTTPS for a year (HSTS).
"""

import os

from django.core.exceptions import ImproperlyConfigured

from .base import *  # noqa: F403
from .base import DEBUG, SECRET_KEY, env_bool
from .placeholders import secret_key_problem

if DEBUG:
    raise ImproperlyConfigured("DEBUG must be off in production (unset DEBUG or set DEBUG=0).")
_problem = secret_key_problem(SECRET_KEY)
if _problem:
    raise ImproperlyConfigured(
        f"SECRET_KEY is missing or insecure ({_problem}): set SECRET_KEY to a random string of "
        'at least 40 characters, e.g. python -c "import secrets; print(secrets.token_urlsafe(50))"'
    )

SESSION_COOKIE_SECURE = True
CSRF_COOKIE_SECURE = True
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = env_bool("SECURE_SSL_REDIRECT", True)
# Paths answered over plain HTTP too (regexes without the leading slash): none by default; a
# probe that cannot send X-Forwarded-Proto may be listed here.
SECURE_REDIRECT_EXEMPT = [p for p in os.environ.get("SECURE_REDIRECT_EXEMPT", "").split(",") if p]
SECURE_HSTS_SECONDS = int(os.environ.get("SECURE_HSTS_SECONDS", 365 * 24 * 3600))
SECURE_HSTS_INCLUDE_SUBDOMAINS = env_bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", False)
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"},
}
