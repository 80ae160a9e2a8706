#!/bin/bash
# Collects this host's state for a Khronika support bundle (roles/support) into a tar.gz: the recorded
# release, versions, containers (state, inspect, logs), docker info and events, failed units, disk,
# memory, GPU, the audit log. Every file is capped; nothing is redacted here: the controller redacts
# everything before anything is written into the bundle (khronika_ops.support).
#   collect.sh OUTPUT.tar.gz [CAP_BYTES] [SINCE]
set -u
output=$1
cap=${2:-262144}
since=${3:-24h}
work=$(mktemp -d /tmp/khronika-support.XXXXXX)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/logs"

capture() {  # capture FILE COMMAND...: the command's output and errors, the last CAP bytes
  local file=$1
  shift
  { "$@" 2>&1 | tail -c "$cap"; } >"$work/$file"
}

if [ -r /etc/khronika/release.json ]; then
  cp /etc/khronika/release.json "$work/release.json"
else
  echo '{"missing": true}' >"$work/release.json"
fi
capture versions.txt sh -c 'uname -a; echo; cat /etc/os-release; echo; docker version 2>&1; echo; python3 --version'
capture khronika-files.txt sh -c 'ls -laR /etc/khronika 2>&1'
# The platform's own settings (the gateway's, the records): secrets in them are redacted on the controller.
if [ -d /etc/khronika ]; then
  find /etc/khronika -maxdepth 3 -type f -size -1024k | while read -r file; do
    mkdir -p "$work$(dirname "$file")"
    tail -c "$cap" "$file" >"$work$file"
  done
fi
if command -v docker >/dev/null 2>&1; then
  capture docker-info.txt docker info
  capture containers.jsonl docker ps -a --no-trunc --format '{{json .}}'
  ids=$(docker ps -aq)
  if [ -n "$ids" ]; then
    # shellcheck disable=SC2086
    docker inspect $ids 2>&1 | head -c 4194304 >"$work/inspect.json"
  fi
  capture docker-events.jsonl docker events --since "$since" --until "$(date +%s)" --format '{{json .}}'
  for name in $(docker ps -a --format '{{.Names}}'); do
    capture "logs/$name.log" docker logs --tail 2000 --timestamps "$name"
  done
  capture docker-journal.txt journalctl -u docker --no-pager -n 1000
else
  echo "docker: not installed" >"$work/docker-info.txt"
fi
capture systemd-failed.txt systemctl --failed --no-legend --plain
capture disk.txt sh -c 'df -P -B1M; echo; lsblk 2>&1'
capture memory.txt sh -c 'free -b; echo; echo "cores: $(nproc)"; uptime'
if command -v nvidia-smi >/dev/null 2>&1; then
  capture gpu.txt nvidia-smi -q
else
  echo "nvidia-smi: not present" >"$work/gpu.txt"
fi
if [ -r /var/log/khronika/audit.log ]; then
  tail -c "$cap" /var/log/khronika/audit.log >"$work/audit.log"
fi
umask 077
tar -czf "$output" -C "$work" .
