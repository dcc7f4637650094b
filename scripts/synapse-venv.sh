#!/usr/bin/env bash
# Installs the pinned Synapse into the project-local, git-ignored virtualenv
# (.venv/ by default, or $RNMU_VENV). Idempotent: does nothing when the pinned
# version is already there. Prints the venv path on success.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${RNMU_VENV:-$here/.venv}"
pin="$(tr -d '[:space:]' < "$here/scripts/synapse.pin")"
python="${PYTHON:-python3}"

if [ -x "$venv/bin/python" ] && "$venv/bin/python" - "$pin" <<'PY' 2>/dev/null
import sys
from importlib.metadata import version
sys.exit(0 if version("matrix-synapse") == sys.argv[1].split("==")[1] else 1)
PY
then
  echo "$venv"
  exit 0
fi

echo "installing $pin into $venv ..." >&2
"$python" -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip >&2
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check "$pin" >&2
echo "$venv"
