#!/usr/bin/env bash
# What the tests need besides Synapse: from Debian, strace (the results
# file's ordering test), lintian (the package test), OpenLDAP's slapd with
# its client tools (the directory tests: scripts/ldap_rig.py) and Node.js
# with npm; from the npm registry, matrix-js-sdk as tests/clients/package-lock.json
# pins it (what a person sees: tests/integration/clients.rs). Installed when
# missing, quietly; idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
clients() {
  # Reinstalled when the lock changed since the last install.
  local stamp=tests/clients/node_modules/.package-lock.json
  if [ ! -d tests/clients/node_modules/matrix-js-sdk ] || [ tests/clients/package-lock.json -nt "$stamp" ]; then
    echo "installing tests/clients (matrix-js-sdk) ..." >&2
    npm ci --prefix tests/clients --no-audit --no-fund --loglevel=error >/dev/null
  fi
}
missing=()
command -v node >/dev/null 2>&1 || missing+=(nodejs)
command -v npm >/dev/null 2>&1 || missing+=(npm)
for tool in strace lintian; do
  command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
done
[ -x /usr/sbin/slapd ] || missing+=(slapd)
command -v ldapadd >/dev/null 2>&1 || missing+=(ldap-utils)
if [ ${#missing[@]} -eq 0 ]; then
  clients
  exit 0
fi
if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "scripts/test-deps.sh: please install ${missing[*]} (Debian: apt-get install ${missing[*]})" >&2
  exit 1
fi
echo "installing ${missing[*]} ..." >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# The package starts a slapd of the system's own; the tests start theirs.
if [[ " ${missing[*]} " == *" slapd "* ]] && command -v service >/dev/null 2>&1; then
  service slapd stop >/dev/null 2>&1 || true
fi
clients
