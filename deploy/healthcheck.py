"""The web container's health check (compose, the image's HEALTHCHECK): GET /healthz.

Sent as a proxy would send it (a Host the settings allow, X-Forwarded-Proto: https), so
neither ALLOWED_HOSTS nor the HTTPS redirect of production settings answers in its place.
Status 0 when it answers 200, 1 with one line otherwise. Standard library only.
"""

import os
import sys
import urllib.request


def allowed_host() -> str:
    hosts = [h for h in os.environ.get("ALLOWED_HOSTS", "localhost").split(",") if h]
    host = next((h for h in hosts if h != "*"), "localhost")
    return "health" + host if host.startswith(".") else host


def main() -> int:
    port = os.environ.get("PORT", "8000")
    path = sys.argv[1] if len(sys.argv) > 1 else "/healthz"
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}{path}",
        headers={"Host": allowed_host(), "X-Forwarded-Proto": "https"},
    )
    try:
        with urllib.request.urlopen(request, timeout=4) as response:
            return 0 if response.status == 200 else 1
    except OSError as exc:
        print(f"healthcheck: {path}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
