#!/usr/bin/env bash
# The main job: a local lab of Khronika hosts. Not built yet (the roadmap's "lab" step): today this
# prepares the machine exactly as the tests do and says so plainly.
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
"$REPO/scripts/setup.sh"
"$REPO/.venv/bin/khronika" doctor --lab
cat <<'MSG'

The machine is ready (dockerd, registry tooling, base images, .venv, collections).
The lab itself -- hosts as systemd containers over SSH, the platform deployed, a capacity report --
is not built yet. Until it is, run the tests: ./scripts/test.sh
MSG
