#!/usr/bin/env bash
# Every test of khronika-ops, from a fresh Debian 12 machine (as root): set-up, then each stage with its
# wall time. Services it needs (dockerd, the TLS + auth test registry) are started here; the containers,
# networks and volumes the stages make are removed at the end, also when a stage fails.
#   scripts/test.sh [STAGE...]      stages: yamllint ansible-lint ruff mypy pytest molecule lab
#   KHRONIKA_MOLECULE_SCENARIOS="common docker"  restricts the Molecule stage
set -uo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$REPO"
ALL_STAGES=(yamllint ansible-lint ruff mypy pytest molecule lab)
STAGES=("$@")
[ ${#STAGES[@]} -gt 0 ] || STAGES=("${ALL_STAGES[@]}")

declare -a SUMMARY=()
FAILED=0
LAB_RAN=0
SUITE_START=$(date +%s)

stage() {
  local name=$1 start rc
  shift
  printf '\n===== %s =====\n' "$name"
  start=$(date +%s)
  "$@"
  rc=$?
  local took=$(($(date +%s) - start))
  SUMMARY+=("$(printf '%-28s %-5s %4ss' "$name" "$([ $rc -eq 0 ] && echo ok || echo FAIL)" "$took")")
  printf -- '----- %s: %s in %ss -----\n' "$name" "$([ $rc -eq 0 ] && echo ok || echo "FAILED (rc $rc)")" "$took"
  [ $rc -eq 0 ] || FAILED=1
  return $rc
}

cleanup() {
  # Molecule destroys its instances itself; this catches what an interrupted run left behind.
  local ids
  ids=$(docker ps -aq --filter "name=^kh-" 2>/dev/null)
  [ -z "$ids" ] || docker rm -f -v $ids >/dev/null 2>&1
  docker ps -aq --filter label=khronika.test=1 | xargs -r docker rm -f -v >/dev/null 2>&1
  docker network ls -q --filter "name=^kh-" | xargs -r docker network rm >/dev/null 2>&1
  docker network ls -q --filter label=khronika.test=1 | xargs -r docker network rm >/dev/null 2>&1
  docker volume ls -q --filter label=khronika.test=1 | xargs -r docker volume rm >/dev/null 2>&1
  scripts/test-registry.sh stop >/dev/null 2>&1
  # The lab stage takes its lab down itself; after a failure this removes what it left.
  [ "$LAB_RAN" = 0 ] || .venv/bin/khronika lab down >/dev/null 2>&1
  # A downtime probe whose update ended before its finish stops at its own time limit; not later than now.
  pkill -f 'khronika_ops update probe' >/dev/null 2>&1
}

summary() {
  cleanup
  printf '\n===== summary =====\n'
  printf '%s\n' "${SUMMARY[@]}"
  printf '%-28s %-5s %4ss\n' total "$([ $FAILED -eq 0 ] && echo ok || echo FAIL)" "$(($(date +%s) - SUITE_START))"
}
trap summary EXIT

# Scenarios the default run leaves out because the lab stage covers them on real hosts (docs/testing.md):
# monitoring (targets, rules, recording series, exporters' auth and TLS, the Alertmanager API are checked
# by tests/e2e/test_lab.py). KHRONIKA_MOLECULE_SCENARIOS=monitoring runs it.
LAB_COVERED_SCENARIOS="monitoring"

run_molecule() {
  local scenario rc=0
  local all
  all=$(cd molecule && ls -d */ | tr -d / | grep -v '^_' | grep -vxF -f <(tr ' ' '\n' <<<"$LAB_COVERED_SCENARIOS"))
  local scenarios=${KHRONIKA_MOLECULE_SCENARIOS:-$all}
  for scenario in $scenarios; do
    stage "molecule $scenario" molecule test -s "$scenario" || rc=1
  done
  return $rc
}

stage setup scripts/setup.sh || exit 1
export PATH=$REPO/.venv/bin:$PATH
export ANSIBLE_CONFIG=$REPO/ansible.cfg
export KHRONIKA_REQUIRE_SERVICES=1
# No PY_COLORS here: typer forces a terminal (and escape codes) whenever that variable is set at all.
export ANSIBLE_FORCE_COLOR=0 NO_COLOR=1
stage "test registry" scripts/test-registry.sh start || exit 1
# shellcheck disable=SC1091
. .cache/test-registry/env

for name in "${STAGES[@]}"; do
  case $name in
    yamllint) stage yamllint yamllint --strict . ;;
    ansible-lint) stage ansible-lint ansible-lint --profile production --strict ;;
    ruff) stage ruff sh -c 'ruff check . && ruff format --check .' ;;
    mypy) stage mypy mypy src ;;
    pytest) stage pytest pytest -q --durations=15 ;;
    molecule) run_molecule ;;
    # The README's first command, shortened (2 hosts, a minute of traffic): tests/e2e/test_lab.py.
    lab) LAB_RAN=1; stage lab env KHRONIKA_LAB_E2E=1 pytest -q -p no:cacheprovider --durations=0 tests/e2e ;;
    *) echo "unknown stage $name (stages: ${ALL_STAGES[*]})" >&2; FAILED=1 ;;
  esac
done
exit $FAILED
