#!/usr/bin/env bash
# What the tests need from Debian besides Synapse: strace (the results
# file's ordering test), lintian (the package test), and OpenLDAP's slapd
# with its client tools (the directory tests: scripts/ldap_rig.py). Installed
# when missing, quietly; idempotent.
set -euo pipefail
missing=()
for tool in strace lintian; do
  command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
done
[ -x /usr/sbin/slapd ] || missing+=(slapd)
command -v ldapadd >/dev/null 2>&1 || missing+=(ldap-utils)
[ ${#missing[@]} -eq 0 ] && exit 0
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
