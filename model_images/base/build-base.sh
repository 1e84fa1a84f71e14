#!/usr/bin/env bash
# Build a Python base image from Debian packages, with no container registry:
# debootstrap a minimal Debian root file system, then `docker import` it.
#
#   model_images/base/build-base.sh [TAG]        (default vlmhb/python-base:bookworm)
#
# Environment: DEBIAN_MIRROR (default: the first deb mirror of this host's apt
# sources), DEBIAN_SUITE (default bookworm), FORCE=1 rebuilds an existing tag.
# Needs root (debootstrap), debootstrap and a running Docker daemon.
set -euo pipefail

TAG="${1:-vlmhb/python-base:bookworm}"
SUITE="${DEBIAN_SUITE:-bookworm}"

if [[ "${FORCE:-0}" != 1 ]] && docker image inspect "$TAG" >/dev/null 2>&1; then
    echo "base image $TAG exists (FORCE=1 rebuilds it)"
    exit 0
fi

mirror="${DEBIAN_MIRROR:-}"
if [[ -z "$mirror" ]]; then
    # deb822 files (URIs: ...) first, then one-line sources (deb URL suite ...)
    mirror="$(grep -hs '^URIs:' /etc/apt/sources.list.d/*.sources | awk '{print $2}' \
              | grep -v security | head -n1 || true)"
    if [[ -z "$mirror" ]]; then
        mirror="$(grep -hs '^deb ' /etc/apt/sources.list /etc/apt/sources.list.d/*.list \
                  | awk '{print $2}' | grep -v security | head -n1 || true)"
    fi
fi
mirror="${mirror:-http://deb.debian.org/debian}"

rootfs="$(mktemp -d /tmp/vlmhb-rootfs.XXXXXX)"
trap 'rm -rf "$rootfs"' EXIT
echo "debootstrap $SUITE from $mirror into $rootfs"
start=$(date +%s)
debootstrap --variant=minbase \
    --include=python3,python3-venv,ca-certificates \
    "$SUITE" "$rootfs" "$mirror" >"$rootfs.log" 2>&1 || {
    tail -n 40 "$rootfs.log"; exit 1; }
rm -f "$rootfs.log"
# Lean image: no apt lists or package caches.
rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/archives/*.deb
tar -C "$rootfs" -c . | docker import \
    --change 'ENV LANG=C.UTF-8' \
    --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'CMD ["python3"]' \
    - "$TAG" >/dev/null
echo "built base image $TAG in $(( $(date +%s) - start )) s ($(docker run --rm "$TAG" python3 --version))"
