#!/usr/bin/env bash
# Makes the image's base, localhost/condmon-base:bookworm-r2, from Debian's packages (no image
# registry needed): `debootstrap --variant=minbase bookworm` with libssl3 and ca-certificates
# (condmon's librdkafka speaks TLS through the system's OpenSSL), trimmed, imported into
# podman. The root file system is cached as target/image/rootfs-r2.tar, so a warm machine
# imports it again in a second instead of bootstrapping. The revision (r2) changes whenever
# the package list does, so no stale cache or image is taken for the new one. Installs podman and debootstrap if missing.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
TAG="${CONDMON_BASE_IMAGE:-localhost/condmon-base:bookworm-r2}"
ROOTFS="rootfs-r2"
PACKAGES="libssl3,ca-certificates"
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
if [ ! -s "$CACHE/$ROOTFS.tar" ]; then
  echo "== debootstrap bookworm (minbase) from $MIRROR"
  rm -rf "$CACHE/$ROOTFS"
  $SUDO debootstrap --variant=minbase --include="$PACKAGES" bookworm "$CACHE/$ROOTFS" "$MIRROR" >"$CACHE/debootstrap.log"
  # What a runtime image does not need.
  $SUDO rm -rf "$CACHE/$ROOTFS"/var/cache/apt/archives/*.deb "$CACHE/$ROOTFS"/var/lib/apt/lists/* \
    "$CACHE/$ROOTFS"/usr/share/doc "$CACHE/$ROOTFS"/usr/share/man "$CACHE/$ROOTFS"/usr/share/locale
  $SUDO tar -C "$CACHE/$ROOTFS" -cf "$CACHE/$ROOTFS.tar.part" .
  mv "$CACHE/$ROOTFS.tar.part" "$CACHE/$ROOTFS.tar"
  $SUDO rm -rf "$CACHE/$ROOTFS"
fi
echo "== importing $TAG"
podman import "$CACHE/$ROOTFS.tar" "$TAG" >/dev/null
