#!/usr/bin/env python3
"""Accounts as desired state at scale, side by side in one run.

Run through `scripts/bench ensure` (release build, throwaway Synapse with its
default limits; the admin API is not rate-limited). Two sets of USERS
accounts are made first, one for the tool and one for a bare client of the
admin API (benches/admin_client.rs, keep-alive, the same concurrency), so
neither touches the other's accounts. Then, for ROUNDS alternating rounds:
  unchanged  --ensure over accounts that are as declared, against the bare
             client making the same reads (the account, its rooms);
  plan       --plan over the same;
  changing   --ensure where every row changes admin, the display name and one
             room, against the bare client making the same reads and writes.
A join costs the server more the more members its room has, so the rooms are
spread: each state has ROOMS rooms (USERS / ROOMS members each), made by the
rig's admin, whose own rate limit on making rooms is lifted for that
(override_ratelimit: an admin API call on the server as shipped).
Every figure is users per second; each round's ratio compares the two runs
made back to back on the same server.

READS_ONLY=1 measures the unchanged rerun and --plan only, over accounts made
without rooms (the reads are the same two per account), which takes a minute
instead of most of an hour.
"""
import json
import os
import re
import statistics
import subprocess
import tempfile
import time

USERS = int(os.environ.get("USERS", "2000"))
ROUNDS = int(os.environ.get("ROUNDS", "3"))
JOBS = os.environ.get("JOBS", "4")
ROOMS = int(os.environ.get("ROOMS", "40"))
READS_ONLY = os.environ.get("READS_ONLY") == "1"
ours = os.environ.get("RNMU_BIN", "target/release/register_new_matrix_user")
url, secret = os.environ["RNMU_SYNAPSE_URL"], os.environ["RNMU_SYNAPSE_SECRET"]
admin_token, server = os.environ["RNMU_SYNAPSE_ADMIN_TOKEN"], os.environ["RNMU_SYNAPSE_SERVER_NAME"]
tmp = tempfile.mkdtemp(prefix="rnmu-bench-ensure-")
token_file = os.path.join(tmp, "admin-token")
with open(token_file, "w") as f:
    f.write(admin_token)
os.chmod(token_file, 0o600)


def api(method, path, body=None):
    import urllib.request
    req = urllib.request.Request(url + path, method=method, data=json.dumps(body or {}).encode() if body is not None else None,
                                 headers={"Authorization": "Bearer " + admin_token, "Content-Type": "application/json"})
    with urllib.request.urlopen(req) as r:
        return json.load(r)


def make_rooms(state):
    """ROOMS rooms for one state: their IDs and aliases."""
    out = []
    for k in range(ROOMS):
        name = f"bench{state}r{k}"
        r = api("POST", "/_matrix/client/v3/createRoom", {"preset": "private_chat", "room_alias_name": name})
        out.append((r["room_id"], f"#{name}:{server}"))
    return out


def rows(prefix, rnd, rooms):
    path = os.path.join(tmp, f"{prefix}-{rnd}.jsonl")
    with open(path, "w") as f:
        for i in range(USERS):
            row = {"username": f"{prefix}{i}", "admin": rnd % 2 == 1, "displayname": f"R{rnd}"}
            if rooms:
                row["rooms"] = [rooms[i % len(rooms)][1]]
            f.write(json.dumps(row) + "\n")
    return path


def tool(path, *extra, want=0):
    t = time.perf_counter()
    r = subprocess.run([ours, "--ensure", "--admin-token-file", token_file, "--batch", path, "-j", JOBS, "-q",
                        *extra, "-k", secret, url], stdout=subprocess.DEVNULL)
    secs = time.perf_counter() - t
    assert r.returncode == want, f"the tool exited {r.returncode}"
    return USERS / secs


def bare(mode, prefix, rnd, rooms=()):
    out = subprocess.run(
        ["cargo", "bench", "--quiet", "--bench", "admin_client", "--", mode, prefix, str(USERS), JOBS, str(rnd)],
        check=True, stdout=subprocess.PIPE, text=True, stderr=subprocess.DEVNULL,
        env=dict(os.environ, RNMU_BENCH_ROOMS=" ".join(r[0] for r in rooms)),
    ).stdout
    m = re.search(r"bare: (\d+) accounts in ([\d.]+) s \((\d+) failed\)", out)
    assert m and m.group(3) == "0", out
    return int(m.group(1)) / float(m.group(2))


subprocess.run(["cargo", "bench", "--quiet", "--bench", "admin_client", "--no-run"], check=True,
               stderr=subprocess.DEVNULL)
me = api("GET", "/_matrix/client/v3/account/whoami")["user_id"]
api("POST", f"/_synapse/admin/v1/users/{me}/override_ratelimit", {"messages_per_second": 0, "burst_count": 0})
rooms = [] if READS_ONLY else make_rooms(0)
create = tool(rows("ens", 0, rooms))
tool(rows("bar", 0, rooms))  # the bare client's accounts, as declared
print(f"made 2 x {USERS} accounts ({create:.0f} users/s creating with --ensure)")

results = {"unchanged": ([], []), "plan": ([], []), "changing": ([], [])}
for rnd in range(1, ROUNDS + 1):
    # As declared by the round before: nothing to change.
    same = rows("ens", 0 if READS_ONLY else rnd - 1, rooms)
    results["unchanged"][0].append(bare("read", "bar", rnd))
    results["unchanged"][1].append(tool(same))
    results["plan"][0].append(bare("read", "bar", rnd))
    results["plan"][1].append(tool(same, "--plan"))
    if READS_ONLY:
        continue
    # Every row changes: admin flips, a new display name, a new room.
    rooms = make_rooms(rnd)
    results["changing"][0].append(bare("write", "bar", rnd, rooms))
    results["changing"][1].append(tool(rows("ens", rnd, rooms)))

print(f"--ensure against {url}, --jobs {JOBS}, {USERS} accounts per run, {ROUNDS} alternating rounds")
for name, (b, o) in results.items():
    if not b:
        continue
    ratios = [x / y for x, y in zip(o, b)]
    print(f"  {name:9} bare {statistics.median(b):7.0f} users/s, this tool {statistics.median(o):7.0f} users/s;"
          f" per round {', '.join(f'{r:.2f}' for r in ratios)}; median ratio {statistics.median(ratios):.2f}")
