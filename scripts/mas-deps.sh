#!/usr/bin/env bash
# What the opt-in tests against a real MAS need besides a mas-cli binary
# (RNMU_TEST_MAS_BIN): PostgreSQL's server (Debian's postgresql), openssl for
# MAS's keys, and setpriv (util-linux) to run them as the postgres user.
# Installed when missing, quietly; idempotent. The suite without
# RNMU_TEST_MAS_BIN needs none of this.
set -euo pipefail
missing=()
compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || missing+=(postgresql)
command -v openssl >/dev/null 2>&1 || missing+=(openssl)
command -v setpriv >/dev/null 2>&1 || missing+=(util-linux)
[ ${#missing[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "scripts/mas-deps.sh: please install ${missing[*]} (Debian: apt-get install ${missing[*]})" >&2
  exit 1
fi
echo "installing ${missing[*]} ..." >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >/dev/null
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
