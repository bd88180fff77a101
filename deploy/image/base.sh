#!/usr/bin/env bash
# Makes the image's base, localhost/condmon-base:bookworm, from Debian's packages (no image
# registry needed): `debootstrap --variant=minbase bookworm`, trimmed, imported into podman.
# The root file system is cached as target/image/rootfs.tar, so a warm machine imports it
# again in a second instead of bootstrapping. Installs podman and debootstrap if missing.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
TAG="${CONDMON_BASE_IMAGE:-localhost/condmon-base:bookworm}"
CACHE="$ROOT/target/image"
MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"

SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo"
missing=()
command -v podman >/dev/null || missing+=(podman)
command -v debootstrap >/dev/null || missing+=(debootstrap)
if [ ${#missing[@]} -gt 0 ]; then
  echo "== installing ${missing[*]}"
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

if podman image exists "$TAG"; then
  exit 0
fi
mkdir -p "$CACHE"
if [ ! -s "$CACHE/rootfs.tar" ]; then
  echo "== debootstrap bookworm (minbase) from $MIRROR"
  rm -rf "$CACHE/rootfs"
  $SUDO debootstrap --variant=minbase bookworm "$CACHE/rootfs" "$MIRROR" >"$CACHE/debootstrap.log"
  # What a runtime image does not need.
  $SUDO rm -rf "$CACHE/rootfs"/var/cache/apt/archives/*.deb "$CACHE/rootfs"/var/lib/apt/lists/* \
    "$CACHE/rootfs"/usr/share/doc "$CACHE/rootfs"/usr/share/man "$CACHE/rootfs"/usr/share/locale
  $SUDO tar -C "$CACHE/rootfs" -cf "$CACHE/rootfs.tar.part" .
  mv "$CACHE/rootfs.tar.part" "$CACHE/rootfs.tar"
  $SUDO rm -rf "$CACHE/rootfs"
fi
echo "== importing $TAG"
podman import "$CACHE/rootfs.tar" "$TAG" >/dev/null
