#!/usr/bin/env bash
# The main job: a whole Khronika site on this machine (as root, fresh Debian 12 or again later).
#   scripts/lab.sh [--hosts N] [--traffic-seconds S] [--no-update] [--no-plan]   (= khronika lab up)
# Stages: the machine set-up, N hosts as systemd containers over SSH, the TLS + auth registry with the
# sample modules, site.yml, appeal traffic, a planned update, the capacity plan; then a summary.
# `khronika lab status` shows it, `khronika lab down` removes everything it made. docs/lab.md.
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
start=$(date +%s)
echo "$(date +%H:%M:%S) ==> setup"
"$REPO/scripts/setup.sh" >"${TMPDIR:-/tmp}/khronika-lab-setup.log" 2>&1 \
  || { tail -n 30 "${TMPDIR:-/tmp}/khronika-lab-setup.log" >&2; exit 1; }
echo "$(date +%H:%M:%S) <== setup: ok in $(($(date +%s) - start))s (log ${TMPDIR:-/tmp}/khronika-lab-setup.log)"
export PATH=$REPO/.venv/bin:$PATH ANSIBLE_CONFIG=$REPO/ansible.cfg
cd "$REPO"
exec khronika lab up "$@"
