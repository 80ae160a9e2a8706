#!/usr/bin/env bash
# Build the local systemd base images the Molecule harness and the lab boot as hosts.
# Debian 12 (bookworm) and 13 (trixie) via debootstrap from this machine's configured Debian mirror;
# an image that already exists is kept. Usage: build-base-images.sh [SUITE...]
set -euo pipefail

IMAGE_REPO=${KHRONIKA_BASE_IMAGE_REPO:-khronika/debian-systemd}
SUITES=("$@")
[ ${#SUITES[@]} -gt 0 ] || SUITES=(bookworm trixie)
PACKAGES=python3,python3-apt,systemd,systemd-sysv,sudo,iproute2,ca-certificates,gnupg

mirror() {
  local uri
  uri=$("$(dirname "${BASH_SOURCE[0]}")/debian-mirror.sh")
  [ -n "$uri" ] || { echo "build-base-images: no Debian mirror found in /etc/apt/sources.list[.d]" >&2; exit 2; }
  echo "$uri"
}

build() {
  local suite=$1 image="$IMAGE_REPO:$1" root
  if docker image inspect "$image" >/dev/null 2>&1; then
    echo "base image $image: present"
    return 0
  fi
  root=$(mktemp -d /var/tmp/khronika-rootfs.XXXXXX)
  trap 'rm -rf "$root"' RETURN
  echo "base image $image: debootstrap $suite from $(mirror)"
  debootstrap --variant=minbase --include="$PACKAGES" "$suite" "$root" "$(mirror)" >"$root.log" 2>&1 \
    || { tail -n 30 "$root.log" >&2; rm -f "$root.log"; return 1; }
  rm -f "$root.log"
  # The package lists stay, as on any installed host: check mode can only tell what apt would install
  # when apt knows the packages. Downloaded .debs go.
  rm -rf "$root"/var/cache/apt/archives/*.deb
  # Containers get their hostname and machine-id at start.
  : >"$root"/etc/machine-id
  tar -C "$root" -c . | docker import \
    -c 'CMD ["/lib/systemd/systemd"]' -c 'ENV container=docker' \
    -m "khronika-ops systemd host ($suite)" - "$image" >/dev/null
  echo "base image $image: built"
}

for suite in "${SUITES[@]}"; do
  build "$suite"
done
