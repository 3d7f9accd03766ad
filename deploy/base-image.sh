#!/usr/bin/env bash
# Build a local Debian base image for the Strata image where no image registry is reachable:
# a minimal bookworm root filesystem from Debian's packages (debootstrap), with Python 3.11
# and its venv module, imported as strata-base:bookworm. Elsewhere use python:3.11-slim.
#
#   deploy/base-image.sh [IMAGE]     (root; needs debootstrap and podman; ~3-5 minutes)
set -euo pipefail
image=${1:-localhost/strata-base:bookworm}
engine=${ENGINE:-podman}
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}

if $engine image exists "$image" 2>/dev/null; then
  echo "base-image: $image already there"; exit 0
fi
command -v debootstrap >/dev/null || { echo "base-image: debootstrap missing (apt-get install debootstrap)" >&2; exit 1; }
root=$(mktemp -d /var/tmp/strata-rootfs.XXXXXX)
trap 'rm -rf "$root"' EXIT
echo "base-image: debootstrap bookworm into $root"
debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates,libpq5 \
  bookworm "$root" "$mirror" >"$root.log" 2>&1 || { tail -20 "$root.log" >&2; exit 1; }
rm -f "$root.log"
# No package lists or caches in the image: it is rebuilt, not upgraded in place.
rm -rf "$root"/var/lib/apt/lists/* "$root"/var/cache/apt/*.bin "$root"/var/cache/apt/archives/*.deb
tar -C "$root" -c . | $engine import \
  --change 'CMD ["/bin/bash"]' --change 'ENV LANG=C.UTF-8' - "$image" >/dev/null 2>&1
echo "base-image: $image built"
