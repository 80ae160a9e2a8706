#!/usr/bin/env bash
# Every test of khronika-ops, from a fresh Debian 12 machine (as root): set-up, then each stage with its
# wall time. Services it needs (dockerd, the TLS + auth test registry) are started here; the containers,
# networks and volumes the stages make are removed at the end, also when a stage fails.
#   scripts/test.sh [STAGE...]      stages: yamllint ansible-lint ruff mypy pytest molecule lab
#   KHRONIKA_MOLECULE_SCENARIOS="common docker"  restricts the Molecule stage
#   KHRONIKA_MOLECULE_LANES=1  runs its scenarios one at a time (default: 2 lanes, `update` alone)
#   KHRONIKA_PYTEST_WORKERS=1  runs the pytest stage's files one at a time (default: 3 workers)
#   KHRONIKA_MOLECULE_STRATEGY=linear  runs the scenarios' playbooks with Ansible's strategy (default:
#     mitogen_linear, as the lab runs its playbooks)
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
STAGE_LOG=$(mktemp)
FAILURES=$(mktemp)

# One line of the summary: NAME, the exit status, the seconds it took.
summary_line() {
  printf '%-28s %-5s %4ss\n' "$1" "$([ "$2" -eq 0 ] && echo ok || echo FAIL)" "$3"
}

stage() {
  local name=$1 start rc
  shift
  printf '\n===== %s =====\n' "$name"
  start=$(date +%s)
  "$@" 2>&1 | tee "$STAGE_LOG"
  rc=${PIPESTATUS[0]}
  local took=$(($(date +%s) - start))
  [ $rc -eq 0 ] || note_failures "$name" "$STAGE_LOG"
  SUMMARY+=("$(summary_line "$name" $rc "$took")")
  printf -- '----- %s: %s in %ss -----\n' "$name" "$([ $rc -eq 0 ] && echo ok || echo "FAILED (rc $rc)")" "$took"
  [ $rc -eq 0 ] || FAILED=1
  return $rc
}

# What failed, from a stage's output: pytest's FAILED/ERROR lines, Ansible's fatal ones (not those it
# ignores), Molecule's CRITICAL ones (not its search for a `default` scenario, which this repository has
# none of); the last 40, 300 characters each. Printed again before the summary: a long log is read from
# its end.
note_failures() {
  local lines
  lines=$(awk '
    function flush() { if (held != "") print held; held = "" }
    /^\.\.\.ignoring/ { held = ""; next }
    /^[ \t]/ || /^$/ { next }
    { flush() }
    /^(FAILED|ERROR) |^(fatal|failed): \[|CRITICAL / && !/ - RETRYING: | glob failed/ { held = substr($0, 1, 300) }
    END { flush() }' "$2" | tail -n 40)
  printf '%s:\n%s\n' "$1" "${lines:-(no failure line matched: see the output above)}" >>"$FAILURES"
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
  rm -f "$STAGE_LOG"
  # The lab stage takes its lab down itself; after a failure this removes what it left.
  [ "$LAB_RAN" = 0 ] || .venv/bin/khronika lab down >/dev/null 2>&1
  # A downtime probe whose update ended before its finish stops at its own time limit; not later than now.
  pkill -f 'khronika_ops update probe' >/dev/null 2>&1
}

summary() {
  cleanup
  if [ -s "$FAILURES" ]; then
    printf '\n===== what failed =====\n'
    cat "$FAILURES"
  fi
  rm -f "$FAILURES"
  printf '\n===== summary =====\n'
  printf '%s\n' "${SUMMARY[@]}"
  summary_line total $FAILED "$(($(date +%s) - SUITE_START))"
}
trap summary EXIT

# Scenarios the default run leaves out because the lab stage covers them on real hosts (docs/testing.md):
# monitoring (targets, rules, recording series, exporters' auth and TLS, the Alertmanager API are checked
# by tests/e2e/test_lab.py). KHRONIKA_MOLECULE_SCENARIOS=monitoring runs it.
LAB_COVERED_SCENARIOS="monitoring"

# Scenarios that run alone: their assertions time things (downtime through the gateway, a silence's lease,
# soaks). The others (package installs, deploys, archives) run two at a time, each lane its scenarios in
# turn; a lane's output is printed when it ends.
SOLO_SCENARIOS="update"
LANES=${KHRONIKA_MOLECULE_LANES:-2}

run_lane() {
  local lane=$1 scenario start rc result=0
  shift
  for scenario in "$@"; do
    printf '\n===== molecule %s (lane %s) =====\n' "$scenario" "$lane"
    start=$(date +%s)
    molecule test -s "$scenario"
    rc=$?
    summary_line "molecule $scenario" $rc "$(($(date +%s) - start))" >>"$LANE_DIR/summary"
    [ $rc -eq 0 ] || result=1
  done
  return $result
}

run_molecule() {
  local scenario rc=0 all lane
  all=$(cd molecule && ls -d */ | tr -d / | grep -v '^_' | grep -vxF -f <(tr ' ' '\n' <<<"$LAB_COVERED_SCENARIOS"))
  local scenarios=${KHRONIKA_MOLECULE_SCENARIOS:-$all}
  local -a shared=() solo=() pids=() logs=() failed_logs=()
  # The scenarios' playbooks with this strategy (.config/molecule/config.yml reads both variables).
  export KHRONIKA_MOLECULE_STRATEGY=${KHRONIKA_MOLECULE_STRATEGY:-mitogen_linear}
  KHRONIKA_MOLECULE_STRATEGY_PLUGINS=$(python -c 'import sys
from khronika_ops.runner import RunError, strategy_env
try:
    print(strategy_env(sys.argv[1]).get("ANSIBLE_STRATEGY_PLUGINS", ""))
except RunError as exc:
    sys.exit(f"KHRONIKA_MOLECULE_STRATEGY: {exc}")' "$KHRONIKA_MOLECULE_STRATEGY" 2>"$STAGE_LOG") || {
    cat "$STAGE_LOG" >&2
    { echo "molecule:"; cat "$STAGE_LOG"; } >>"$FAILURES"
    SUMMARY+=("$(summary_line molecule 1 0)")
    FAILED=1
    return 1
  }
  export KHRONIKA_MOLECULE_STRATEGY_PLUGINS
  # Dealt to the lanes in turn, in this order (from the last full run's times: the lanes end close together).
  for scenario in offline deploy common docker $scenarios; do
    grep -qxF "$scenario" <<<"$(tr ' ' '\n' <<<"$scenarios")" || continue
    if grep -qxF "$scenario" <<<"$(tr ' ' '\n' <<<"$SOLO_SCENARIOS")"; then
      [[ " ${solo[*]} " == *" $scenario "* ]] || solo+=("$scenario")
    else
      [[ " ${shared[*]} " == *" $scenario "* ]] || shared+=("$scenario")
    fi
  done
  if [ ${#shared[@]} -gt 1 ] && [ "$LANES" -gt 1 ]; then
    LANE_DIR=$(mktemp -d)
    local start
    start=$(date +%s)
    printf '\n===== molecule in %s lanes: %s =====\n' "$LANES" "${shared[*]}"
    for lane in $(seq 1 "$LANES"); do
      local -a mine=()
      for index in "${!shared[@]}"; do
        [ $((index % LANES + 1)) -eq "$lane" ] && mine+=("${shared[$index]}")
      done
      [ ${#mine[@]} -gt 0 ] || continue
      run_lane "$lane" "${mine[@]}" >"$LANE_DIR/lane-$lane.log" 2>&1 &
      pids+=($!)
      logs+=("$LANE_DIR/lane-$lane.log")
    done
    for lane in "${!pids[@]}"; do
      wait "${pids[$lane]}" || { rc=1; failed_logs+=("${logs[$lane]}"); }
    done
    cat "$LANE_DIR"/lane-*.log
    for log in "${failed_logs[@]}"; do note_failures "molecule $(basename "$log" .log)" "$log"; done
    while IFS= read -r line; do SUMMARY+=("$line"); done <"$LANE_DIR/summary"
    grep -q ' FAIL ' "$LANE_DIR/summary" && FAILED=1
    SUMMARY+=("$(summary_line "molecule lanes (wall)" $rc "$(($(date +%s) - start))")")
    rm -rf "$LANE_DIR"
  else
    solo=("${shared[@]}" "${solo[@]}")
  fi
  for scenario in "${solo[@]}"; do
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
    # Three workers, each a whole file at a time (fixtures stay per file): the stage waits on Docker,
    # Ansible and registries about a third of its time; on 2 cores three take 46 % of the wall time of one.
    pytest) stage pytest pytest -q -n "${KHRONIKA_PYTEST_WORKERS:-3}" --dist loadfile --durations=15 ;;
    molecule) run_molecule ;;
    # The README's first command, shortened (2 hosts, a minute of traffic): tests/e2e/test_lab.py.
    lab) LAB_RAN=1; stage lab env KHRONIKA_LAB_E2E=1 pytest -q -p no:cacheprovider --durations=0 tests/e2e ;;
    *) echo "unknown stage $name (stages: ${ALL_STAGES[*]})" >&2; FAILED=1 ;;
  esac
done
exit $FAILED
