#!/usr/bin/env bash
# Installs the pinned Synapse into the project-local, git-ignored virtualenv
# (.venv/ by default, or $RNMU_VENV), with the pinned packages of the rig's
# OpenID Connect provider (scripts/sso.pin: authlib, which Synapse's own OIDC
# support uses too, and Flask to serve it). Idempotent: does nothing when every
# pinned version is already there. Prints the venv path on success.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${RNMU_VENV:-$here/.venv}"
pins=("$(tr -d '[:space:]' < "$here/scripts/synapse.pin")")
while read -r line; do
  [ -n "$line" ] && [ "${line#\#}" = "$line" ] && pins+=("$line")
done < "$here/scripts/sso.pin"
python="${PYTHON:-python3}"

if [ -x "$venv/bin/python" ] && "$venv/bin/python" - "${pins[@]}" <<'PY' 2>/dev/null
import sys
from importlib.metadata import version
sys.exit(0 if all(version(p.split("==")[0]) == p.split("==")[1] for p in sys.argv[1:]) else 1)
PY
then
  echo "$venv"
  exit 0
fi

echo "installing ${pins[*]} into $venv ..." >&2
"$python" -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip >&2
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check "${pins[@]}" >&2
echo "$venv"
