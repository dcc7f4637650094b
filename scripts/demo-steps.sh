#!/usr/bin/env bash
# Run by scripts/demo inside the throwaway server's environment (RNMU_SYNAPSE_*).
set -euo pipefail
tool=target/debug/register_new_matrix_user
echo "started Synapse at $RNMU_SYNAPSE_URL (config $RNMU_SYNAPSE_CONFIG)"
password=$(python3 -c 'import secrets; print(secrets.token_urlsafe(18))')
echo "\$ $tool -c \$CONFIG -u demo --admin --password-file -   (password on stdin)"
printf %s "$password" | "$tool" -c "$RNMU_SYNAPSE_CONFIG" -u demo --admin --password-file -
python3 - "$password" <<'PY'
import json, os, sys, urllib.request
url, token = os.environ["RNMU_SYNAPSE_URL"], os.environ["RNMU_SYNAPSE_ADMIN_TOKEN"]
def call(method, path, body=None, auth=None):
    req = urllib.request.Request(url + path, method=method, data=json.dumps(body).encode() if body else None,
                                 headers={"Content-Type": "application/json", **({"Authorization": "Bearer " + auth} if auth else {})})
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.load(r)
uid = "@demo:" + os.environ["RNMU_SYNAPSE_SERVER_NAME"]
user = call("GET", "/_synapse/admin/v2/users/" + uid, auth=token)
devices = call("GET", "/_synapse/admin/v2/users/%s/devices" % uid, auth=token)["devices"]
login = call("POST", "/_matrix/client/v3/login", {"type": "m.login.password", "identifier": {"type": "m.id.user", "user": "demo"}, "password": sys.argv[1]})
assert user["admin"] and login["user_id"] == uid
print(f"checked: {uid} exists, is an admin, had {len(devices)} devices before this login, and its password logs in")
PY
echo "stopping Synapse and deleting its directory"
