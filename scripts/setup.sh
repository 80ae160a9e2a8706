#!/usr/bin/env bash
# Prepare this machine (Debian 12, as root) for the khronika-ops lab and tests. Idempotent: a second
# run checks each step and changes nothing.
#   1. system packages   2. dockerd running   3. .venv with the pinned Python dependencies
#   4. collections from requirements.yml (Galaxy, or offline: see scripts/install_collections.py)
#   5. local systemd base images for Debian 12 and 13
# Environment: KHRONIKA_SKIP_IMAGES=1 skips step 5; KHRONIKA_WHEELHOUSE / KHRONIKA_COLLECTIONS_DIR select
# offline sources. Usage: scripts/setup.sh [--relock]
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$REPO"
VENV=$REPO/.venv
STAMPS=$REPO/.cache/stamps
mkdir -p "$STAMPS"

APT_PACKAGES=(
  docker.io debootstrap docker-registry apache2-utils openssl ca-certificates curl unzip rsync git
  python3-venv python3-dev gcc openssh-client busybox-static iproute2 prometheus prometheus-alertmanager
  gnupg gpgv minisign chromium fonts-dejavu-core
)

log() { printf '[setup] %s\n' "$*"; }
die() { printf '[setup] error: %s\n' "$*" >&2; exit 1; }

[ "$(id -u)" -eq 0 ] || die "run as root (it installs packages and starts dockerd)"
if [ -r /etc/os-release ]; then
  . /etc/os-release
  [ "${ID:-}" = debian ] || log "warning: tested on Debian 12, this is ${PRETTY_NAME:-unknown}"
fi

install_packages() {
  local missing=() pkg
  for pkg in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
  done
  if [ ${#missing[@]} -eq 0 ]; then
    log "system packages: present"
    return
  fi
  log "system packages: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q >/dev/null
  # --no-install-recommends keeps debootstrap's and prometheus's optional extras off the machine.
  apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
  # Debian starts packaged daemons only under systemd; the registry and prometheus are run by the
  # harness itself, so a stray service would just hold their ports.
}

docker_up() { docker version --format '{{.Server.Version}}' >/dev/null 2>&1; }

start_dockerd() {
  if docker_up; then
    log "dockerd: running ($(docker version --format '{{.Server.Version}}'))"
    return
  fi
  if [ -d /run/systemd/system ]; then
    systemctl start docker
  else
    log "dockerd: starting (no systemd here; log in /var/log/dockerd.log)"
    nohup dockerd >>/var/log/dockerd.log 2>&1 &
  fi
  for _ in $(seq 1 60); do
    docker_up && { log "dockerd: up"; return; }
    sleep 1
  done
  tail -n 20 /var/log/dockerd.log >&2 || true
  die "dockerd did not answer within 60 s"
}

setup_venv() {
  local stamp want
  want=$(cat pyproject.toml constraints.txt | sha256sum | cut -d' ' -f1)
  stamp=$STAMPS/venv
  if [ -x "$VENV/bin/python" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then
    log "venv: up to date"
    return
  fi
  log "venv: installing pinned dependencies into .venv"
  [ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
  "$VENV/bin/python" -m pip install -q --disable-pip-version-check -c constraints.txt -e '.[test]' 2>&1 \
    | { grep -v "is ignored: it is neither a file nor a directory" || true; }
  echo "$want" >"$stamp"
}

relock() {
  local tmp
  tmp=$(mktemp -d)
  python3 -m venv "$tmp/venv"
  "$tmp/venv/bin/pip" install -q '.[test]'
  {
    echo "# Exact pins for khronika-ops and its test tooling (Python 3.11)."
    echo "# Regenerate: scripts/setup.sh --relock (pip freeze of a fresh venv built from pyproject.toml)."
    "$tmp/venv/bin/pip" freeze --exclude-editable | grep -v '^khronika-ops'
  } >constraints.txt
  rm -rf "$tmp"
  log "constraints.txt regenerated"
}

setup_collections() {
  "$VENV/bin/python" scripts/install_collections.py --requirements requirements.yml --dest .ansible/collections \
    2> >(grep -v "is ignored: it is neither a file nor a directory" >&2)
  # This checkout is the collection khronika.platform: link it where ansible.cfg looks.
  local link=.ansible/collections/ansible_collections/khronika/platform
  mkdir -p "$(dirname "$link")"
  if [ "$(readlink "$link" 2>/dev/null)" != "$REPO" ]; then
    ln -sfn "$REPO" "$link"
    log "collection khronika.platform: linked to this checkout"
  fi
}

if [ "${1:-}" = "--relock" ]; then
  relock
fi
install_packages
start_dockerd
setup_venv
setup_collections
if [ "${KHRONIKA_SKIP_IMAGES:-0}" != 1 ]; then
  scripts/build-base-images.sh
fi
log "done"
