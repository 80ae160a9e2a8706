#!/usr/bin/env bash
# Build the khronika.platform execution environment image (execution-environment.yml) with
# ansible-builder and Docker, without Galaxy and without giving the build any network but pip's.
#
# Steps, each timed:
#   1. stage the inputs under .cache/ee/: the khronika_ops wheel (pip wheel), the khronika.platform
#      tarball (ansible-galaxy collection build) and the collections of requirements.yml at their
#      pinned versions (scripts/install_collections.py: a download folder, Galaxy or the `ansible`
#      bundle wheel);
#   2. the Python packages the image installs: by default this host's pip (its own index, extra
#      indexes, find-links and CA settings) builds a wheelhouse in .cache/ee/wheelhouse, under
#      constraints.txt, which is served on 127.0.0.1 to a build on the host network with
#      PIP_NO_INDEX=1; with KHRONIKA_EE_PIP=index the build uses PIP_INDEX_URL, PIP_EXTRA_INDEX_URL
#      and PIP_TRUSTED_HOST from this script's environment instead (they must be reachable from a
#      container);
#   3. the base image khronika/ee-base:bookworm from ee/base.Containerfile, when missing, with apt
#      from the Debian mirror this host's /etc/apt names;
#   4. ansible-builder build --container-runtime docker, then a check of the image: ansible-core,
#      ansible-runner and every collection at the pinned version, khronika_ops importable;
#   5. with --smoke, ee/smoke.yml run in the image by ansible-runner --process-isolation, and every
#      playbook of playbooks/ syntax-checked in the image against the installed collection.
#
# Usage: scripts/build-ee.sh [--create-only] [--smoke] [--rebuild-base] [--help]
#   --create-only   stop after `ansible-builder create` (stages and context; no Docker needed)
#   --smoke         after the build, run ee/smoke.yml inside the image and syntax-check playbooks/
#   --rebuild-base  rebuild the base image even when it exists
# Environment:
#   KHRONIKA_EE_IMAGE         image to build (default khronika/ee:latest)
#   KHRONIKA_EE_BASE_IMAGE    base image (default khronika/ee-base:bookworm; built when missing)
#   KHRONIKA_EE_DEBIAN_IMAGE  image the base starts from (default khronika/debian-systemd:bookworm)
#   KHRONIKA_EE_PIP           wheelhouse (default) or index, see step 2
#   KHRONIKA_EE_BUILD_ARGS    extra `docker build` arguments (e.g. --cpu-shares=256)
#   KHRONIKA_COLLECTIONS_DIR, KHRONIKA_WHEELHOUSE: as for scripts/install_collections.py
# Docs: docs/awx.md.
set -euo pipefail

REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
OUT="$REPO/.cache/ee"
VENV_BIN="${VIRTUAL_ENV:-$REPO/.venv}/bin"
PY="$VENV_BIN/python"
IMAGE=${KHRONIKA_EE_IMAGE:-khronika/ee:latest}
BASE_IMAGE=${KHRONIKA_EE_BASE_IMAGE:-khronika/ee-base:bookworm}
DEBIAN_IMAGE=${KHRONIKA_EE_DEBIAN_IMAGE:-khronika/debian-systemd:bookworm}
PIP_MODE=${KHRONIKA_EE_PIP:-wheelhouse}
EXTRA_BUILD_ARGS=${KHRONIKA_EE_BUILD_ARGS:-}

CREATE_ONLY=0 SMOKE=0 REBUILD_BASE=0
for arg in "$@"; do
  case "$arg" in
    --create-only) CREATE_ONLY=1 ;;
    --smoke) SMOKE=1 ;;
    --rebuild-base) REBUILD_BASE=1 ;;
    -h | --help) sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"; exit 0 ;;
    *) echo "build-ee: unknown argument $arg (see --help)" >&2; exit 2 ;;
  esac
done
case "$PIP_MODE" in wheelhouse | index) ;; *) echo "build-ee: KHRONIKA_EE_PIP must be wheelhouse or index" >&2; exit 2 ;; esac
for tool in python ansible-builder ansible-galaxy ansible-runner; do
  [ -x "$VENV_BIN/$tool" ] || { echo "build-ee: $VENV_BIN/$tool missing (scripts/setup.sh)" >&2; exit 2; }
done

TIMES=()
step() { STEP_NAME=$1; STEP_START=$SECONDS; echo "==> $1"; }
done_step() { TIMES+=("$(printf '%4ds  %s' $((SECONDS - STEP_START)) "$STEP_NAME")"); }

SERVER_PID=""
cleanup() { if [ -n "$SERVER_PID" ]; then kill "$SERVER_PID" 2>/dev/null || true; fi; }
trap cleanup EXIT

mirror() { "$REPO/scripts/debian-mirror.sh"; }

# ---------------------------------------------------------------------------------------------------
step "stage the khronika_ops wheel, the collection tarball and the pinned collections in $OUT"
mkdir -p "$OUT"
rm -rf "$OUT/khronika" "$OUT/collections"
"$PY" -m pip wheel -q --no-deps -w "$OUT/khronika" "$REPO"
"$VENV_BIN/ansible-galaxy" collection build --force --output-path "$OUT/collections" "$REPO" >/dev/null
(cd "$REPO" && "$PY" scripts/install_collections.py --requirements requirements.yml --dest "$OUT/collections")
ls -1 "$OUT/khronika" "$OUT/collections"
done_step

# ---------------------------------------------------------------------------------------------------
step "ansible-builder create ($OUT/context)"
rm -rf "$OUT/context"
"$VENV_BIN/ansible-builder" create -f "$REPO/execution-environment.yml" -c "$OUT/context" \
  --output-filename Dockerfile -v 1
done_step
if [ "$CREATE_ONLY" = 1 ]; then
  echo "build context: $OUT/context"
  exit 0
fi

# ---------------------------------------------------------------------------------------------------
BUILD_ARGS=(--build-arg "EE_BASE_IMAGE=$BASE_IMAGE")
DOCKER_ARGS=()
if [ "$PIP_MODE" = wheelhouse ]; then
  step "wheelhouse of every Python package the image installs ($OUT/wheelhouse)"
  scratch=$(mktemp -d)
  trap 'cleanup; rm -rf "$scratch"' EXIT
  # The collections' own Python requirements, as ansible-builder's introspection finds them in the image.
  cp -a "$OUT/collections/ansible_collections" "$scratch/"
  (cd "$scratch" && env -u ANSIBLE_CONFIG ANSIBLE_COLLECTIONS_PATH="$scratch" \
    "$VENV_BIN/ansible-galaxy" collection install --offline --no-deps \
    -p "$scratch" "$OUT"/collections/khronika-platform-*.tar.gz >/dev/null)
  introspect=$("$PY" -c 'import ansible_builder, pathlib
print(pathlib.Path(ansible_builder.__file__).parent / "_target_scripts" / "introspect.py")')
  "$PY" "$introspect" introspect --write-pip "$scratch/collections.txt" "$scratch" >/dev/null
  # The pins of execution-environment.yml, what the builder stage installs, and the wheel.
  "$PY" - "$REPO/execution-environment.yml" >"$scratch/ee.txt" <<'EOF'
import sys

import yaml

ee = yaml.safe_load(open(sys.argv[1], encoding="utf-8"))
deps, options = ee["dependencies"], ee.get("options", {})
print(deps["ansible_core"]["package_pip"])
print(deps["ansible_runner"]["package_pip"])
print(options.get("container_init", {}).get("package_pip", "dumb-init==1.2.5"))
print("bindep\npyyaml\npackaging")
EOF
  ls "$OUT"/khronika/khronika_ops-*.whl >>"$scratch/ee.txt"
  mkdir -p "$OUT/wheelhouse"
  # This host's pip configuration decides where the packages come from.
  "$PY" -m pip wheel -q -w "$OUT/wheelhouse" --find-links "$OUT/wheelhouse" -c "$REPO/constraints.txt" \
    -r "$scratch/ee.txt" -r "$scratch/collections.txt"
  echo "$(find "$OUT/wheelhouse" -name '*.whl' | wc -l) wheels, $(du -sh "$OUT/wheelhouse" | cut -f1)"
  port=$("$PY" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  "$PY" -m http.server --bind 127.0.0.1 --directory "$OUT/wheelhouse" "$port" >"$OUT/wheelhouse.log" 2>&1 &
  SERVER_PID=$!
  for _ in $(seq 50); do
    "$PY" -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$port/', timeout=1)" 2>/dev/null && break
    sleep 0.2
  done
  BUILD_ARGS+=(--build-arg PIP_NO_INDEX=1 --build-arg "PIP_FIND_LINKS=http://127.0.0.1:$port/")
  DOCKER_ARGS+=(--network host)
  done_step
else
  for var in PIP_INDEX_URL PIP_EXTRA_INDEX_URL PIP_TRUSTED_HOST; do
    if [ -n "${!var:-}" ]; then BUILD_ARGS+=(--build-arg "$var=${!var}"); fi
  done
fi

# ---------------------------------------------------------------------------------------------------
if [ "$REBUILD_BASE" = 1 ] || ! docker image inspect "$BASE_IMAGE" >/dev/null 2>&1; then
  step "base image $BASE_IMAGE from ee/base.Containerfile (FROM $DEBIAN_IMAGE)"
  # shellcheck disable=SC2086  # KHRONIKA_EE_BUILD_ARGS is a list of words on purpose
  docker build -f "$REPO/ee/base.Containerfile" -t "$BASE_IMAGE" \
    --build-arg "DEBIAN_IMAGE=$DEBIAN_IMAGE" --build-arg "DEBIAN_MIRROR=$(mirror)" $EXTRA_BUILD_ARGS "$REPO/ee"
  done_step
fi

# ---------------------------------------------------------------------------------------------------
step "ansible-builder build $IMAGE"
extra="${DOCKER_ARGS[*]:-} $EXTRA_BUILD_ARGS"
"$VENV_BIN/ansible-builder" build -f "$REPO/execution-environment.yml" -c "$OUT/context" \
  --container-runtime docker -t "$IMAGE" "${BUILD_ARGS[@]}" --extra-build-cli-args "$extra" -v 3 \
  2>&1 | tee "$OUT/build.log"
done_step

# ---------------------------------------------------------------------------------------------------
step "check $IMAGE against constraints.txt, requirements.yml and galaxy.yml"
docker run --rm "$IMAGE" sh -c \
  'ansible-galaxy collection list --format json; echo; python3 -m pip list --format json' >"$OUT/image-contents.json"
"$PY" - "$REPO" "$OUT/image-contents.json" <<'EOF'
import json
import re
import sys
from pathlib import Path

import yaml


def norm(name):
    return re.sub(r"[-_.]+", "-", name).lower()


repo = Path(sys.argv[1])
dump = Path(sys.argv[2]).read_text(encoding="utf-8").strip().splitlines()
collections = {n: i["version"] for path in json.loads(dump[0]).values() for n, i in path.items()}
packages = {norm(p["name"]): p["version"] for p in json.loads(dump[-1])}
requirements = yaml.safe_load((repo / "requirements.yml").read_text(encoding="utf-8"))["collections"]
wanted = {entry["name"]: str(entry["version"]) for entry in requirements}
wanted["khronika.platform"] = str(yaml.safe_load((repo / "galaxy.yml").read_text(encoding="utf-8"))["version"])
pins = {}
for line in (repo / "constraints.txt").read_text(encoding="utf-8").splitlines():
    if "==" in line and not line.lstrip().startswith("#"):
        name, version = line.split("==", 1)
        pins[norm(name.strip())] = version.strip()
errors = [f"collection {n}: {collections.get(n)}, wanted {v}" for n, v in wanted.items() if collections.get(n) != v]
for name in ("ansible-core", "ansible-runner", "khronika-ops"):
    if name not in packages:
        errors.append(f"{name} is not installed")
# Every installed package that constraints.txt pins must be at its pin.
checked = sorted(n for n in packages if n in pins)
errors += [f"{n}: {packages[n]}, pinned {pins[n]}" for n in checked if packages[n] != pins[n]]
for line in errors:
    print("  MISMATCH", line)
print("  collections:", ", ".join(f"{n} {collections[n]}" for n in sorted(wanted) if n in collections))
print(f"  ansible-core {packages.get('ansible-core')}, ansible-runner {packages.get('ansible-runner')},",
      f"khronika-ops {packages.get('khronika-ops')}; {len(checked)} installed packages at their pins")
sys.exit(1 if errors else 0)
EOF
size=$(docker image inspect -f '{{.Size}}' "$IMAGE")
echo "  image $IMAGE: $((size / 1000000)) MB"
done_step

# ---------------------------------------------------------------------------------------------------
if [ "$SMOKE" = 1 ]; then
  step "ee/smoke.yml in $IMAGE (ansible-runner --process-isolation)"
  pdd="$OUT/runner"
  rm -rf "$pdd"
  mkdir -p "$pdd/project" "$pdd/inventory"
  cp "$REPO/ee/smoke.yml" "$pdd/project/smoke.yml"
  printf 'localhost ansible_connection=local\n' >"$pdd/inventory/hosts"
  "$VENV_BIN/ansible-runner" run "$pdd" -p smoke.yml --process-isolation \
    --process-isolation-executable docker --container-image "$IMAGE"
  done_step

  step "playbooks/*.yml of this checkout: --syntax-check in $IMAGE, roles from the installed collection"
  # As AWX runs a project: the checkout at /runner/project, its ansible.cfg read, and the collections
  # path AWX puts in front of it (the checkout's own .ansible/collections is not looked at).
  docker run --rm -v "$REPO:/runner/project:ro" -w /runner/project \
    -e ANSIBLE_COLLECTIONS_PATH=/runner/requirements_collections:/usr/share/ansible/collections \
    -e ANSIBLE_LOCAL_TEMP=/tmp/ansible-local "$IMAGE" sh -ec '
      for playbook in playbooks/*.yml; do
        ansible-playbook --syntax-check -i inventories/example/hosts.yml "$playbook" >/dev/null
        echo "  syntax ok: $playbook"
      done'
  done_step
fi

echo "==> times"
printf '%s\n' "${TIMES[@]}"
