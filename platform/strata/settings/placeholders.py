"""Secret keys production must refuse: every placeholder the repository ships (settings,
deploy files, docs) and the usual shapes of one. Anyone who has read the repository, or
Django's tutorial, knows these; a session or password-reset token signed with one is forged.

``strata.tests.test_settings`` scans the repository for SECRET_KEY values and fails if one of
them is accepted, so a new placeholder cannot slip in without being added here.
"""

from __future__ import annotations

# Literal values written in this repository, now or before (kept when a file changes: old
# checkouts and copied .env files still carry them).
KNOWN_PLACEHOLDER_KEYS: frozenset[str] = frozenset(
    {
        "insecure-dev-key-change-me",  # settings/base.py: the development default
        "CHANGE-ME-to-a-random-string-of-at-least-40-characters",  # deploy/k8s/strata.yaml
        "build-only-collectstatic-key-0123456789abcdefghij",  # deploy/Dockerfile, until 2026-12
    }
)

# Words no random key contains: tutorial, template and startproject placeholders.
PLACEHOLDER_WORDS = (
    "insecure",
    "change-me",
    "changeme",
    "change_me",
    "placeholder",
    "secret-key",
    "secret_key",
    "secretkey",
    "your-",
    "example",
    "build-only",
    "dummy",
    "not-a-secret",
)
MIN_LENGTH = 40
MIN_DISTINCT = 10


def secret_key_problem(key: str) -> str | None:
    """Why ``key`` may not sign production sessions, or None when it may."""
    if key in KNOWN_PLACEHOLDER_KEYS:
        return "it is a placeholder published in this repository"
    lowered = key.lower()
    word = next((w for w in PLACEHOLDER_WORDS if w in lowered), None)
    if word is not None:
        return f"it looks like a placeholder (contains {word!r})"
    if len(key) < MIN_LENGTH:
        return f"it is shorter than {MIN_LENGTH} characters"
    if len(set(key)) < MIN_DISTINCT:
        return f"it has fewer than {MIN_DISTINCT} different characters"
    return None
