#!/usr/bin/env python3
"""welcome.lua at scale, side by side in one run against a throwaway Synapse
with its default rate limits.

Run through `scripts/bench welcome` (release build).
  1. USERS users (default 200) with welcome.lua and a bot exempted from rate
     limits (welcome.exempt_bot, the bot is a server admin), against a bare
     concurrent client doing the same requests (register, createRoom with the
     invite, send) with the same bot and concurrency; ROUNDS alternating
     rounds, medians.
  2. SLOW_USERS users (default 20) with a bot that is not exempted: the total
     time against the time the server's limits demand (rc_room_creation: 10
     rooms at once, then one per 1/0.016 = 62.5 s), checking that every user
     was welcomed exactly once.
"""
import json
import os
import re
import statistics
import subprocess
import tempfile
import time
import urllib.request

USERS = int(os.environ.get("USERS", "200"))
SLOW_USERS = int(os.environ.get("SLOW_USERS", "20"))
ROUNDS = int(os.environ.get("ROUNDS", "3"))
JOBS = os.environ.get("JOBS", "4")
ours = os.environ.get("RNMU_BIN", "target/release/register_new_matrix_user")
url, secret = os.environ["RNMU_SYNAPSE_URL"], os.environ["RNMU_SYNAPSE_SECRET"]
admin = os.environ["RNMU_SYNAPSE_ADMIN_TOKEN"]
server = os.environ["RNMU_SYNAPSE_SERVER_NAME"]
tmp = tempfile.mkdtemp(prefix="rnmu-bench-")
ROOM_BURST, ROOM_RATE = 10, 0.016  # Synapse's defaults for rc_room_creation


def http(method, path, token=None, body=None):
    req = urllib.request.Request(url + path, method=method)
    if token:
        req.add_header("Authorization", "Bearer " + token)
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        req.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(req, data, timeout=30) as r:
        return json.loads(r.read() or b"{}")


def bot(name, make_admin):
    flag = "-a" if make_admin else "--no-admin"
    subprocess.run([ours, "-u", name, "--password-file", "-", flag, "-k", secret, url],
                   input=b"bot-password", check=True, stdout=subprocess.DEVNULL)
    return http("POST", "/_matrix/client/v3/login", body={
        "type": "m.login.password", "identifier": {"type": "m.id.user", "user": name},
        "password": "bot-password"})["access_token"]


def csv_file(prefix, n):
    path = os.path.join(tmp, f"{prefix}.csv")
    with open(path, "w") as f:
        f.write("username,password\n")
        for i in range(n):
            f.write(f"{prefix}{i},bench-pw\n")
    return path


def ours_run(prefix, n, token, exempt):
    env = dict(os.environ, RNMU_WELCOME_TOKEN=token, RNMU_WELCOME_EXEMPT_BOT="1" if exempt else "0")
    t = time.perf_counter()
    r = subprocess.run([ours, "--batch", csv_file(prefix, n), "-j", JOBS, "--no-admin",
                        "--hook", "hooks/welcome.lua", "-k", secret, url],
                       env=env, stderr=subprocess.PIPE, text=True)
    secs = time.perf_counter() - t
    assert r.returncode == 0, r.stderr[-2000:]
    return secs, r.stderr


def bare_run(prefix, n, token):
    env = dict(os.environ, RNMU_BENCH_BOT_TOKEN=token)
    out = subprocess.run(
        ["cargo", "bench", "--quiet", "--bench", "bare_client", "--", prefix, str(n), JOBS],
        check=True, stdout=subprocess.PIPE, text=True, stderr=subprocess.DEVNULL, env=env,
    ).stdout
    m = re.search(r"bare: (\d+) registrations in ([\d.]+) s \((\d+) failed\)", out)
    assert m and m.group(3) == "0", out
    return float(m.group(2))


def welcomed_once(token, prefix, n):
    """Each user has one room with the bot, holding one message."""
    rooms = http("GET", "/_matrix/client/v3/joined_rooms", token)["joined_rooms"]
    per_user = {}
    for room in rooms:
        enc = urllib.request.quote(room, safe="")
        state = http("GET", f"/_synapse/admin/v1/rooms/{enc}/state", admin)["state"]
        invited = [e["state_key"] for e in state if e["type"] == "m.room.member"
                   and e["content"].get("membership") == "invite"]
        msgs = http("GET", f"/_synapse/admin/v1/rooms/{enc}/messages?dir=b&limit=50", admin)["chunk"]
        texts = [e for e in msgs if e["type"] == "m.room.message"]
        for u in invited:
            per_user.setdefault(u, []).append(len(texts))
    want = {f"@{prefix}{i}:{server}" for i in range(n)}
    return all(per_user.get(u) == [1] for u in want)


subprocess.run(["cargo", "bench", "--quiet", "--bench", "bare_client", "--no-run"], check=True,
               stderr=subprocess.DEVNULL)
fast_bot = bot("benchbot", True)
http("POST", f"/_synapse/admin/v1/users/%40benchbot%3A{server}/override_ratelimit", admin,
     {"messages_per_second": 0, "burst_count": 0})
bare, tool = [], []
for r in range(ROUNDS):
    bare.append(USERS / bare_run(f"wbare{r}x", USERS, fast_bot))
    secs, _ = ours_run(f"wtool{r}x", USERS, fast_bot, True)
    tool.append(USERS / secs)
    assert welcomed_once(fast_bot, f"wtool{r}x", USERS), "a user was not welcomed exactly once"
bare_m, tool_m = statistics.median(bare), statistics.median(tool)
print(f"welcome.lua, exempted bot, {USERS} users, --jobs {JOBS}, median of {ROUNDS} alternating rounds")
print(f"  bare client (register, createRoom, send): {bare_m:7.1f} users/s   rounds: {', '.join(f'{x:.1f}' for x in bare)}")
print(f"  this tool, --batch --hook welcome.lua:    {tool_m:7.1f} users/s   rounds: {', '.join(f'{x:.1f}' for x in tool)}")
ratios = [t / b for b, t in zip(bare, tool)]
print(f"  ratio per round: {', '.join(f'{r:.2f}' for r in ratios)}; median {statistics.median(ratios):.2f} of the bare client")

if SLOW_USERS > 0:
    slow_bot = bot("slowbot", False)
    demanded = max(0, SLOW_USERS - ROOM_BURST) / ROOM_RATE
    secs, err = ours_run("wslow", SLOW_USERS, slow_bot, False)
    once = welcomed_once(slow_bot, "wslow", SLOW_USERS)
    print(f"welcome.lua, bot on the server's default limits, {SLOW_USERS} users")
    print(f"  the limits demand {demanded:.0f} s ({ROOM_BURST} rooms at once, then one per {1 / ROOM_RATE:.1f} s)")
    print(f"  this tool took {secs:.0f} s: {secs / demanded:.2f} of that; everyone welcomed once: {once}")
    for line in err.splitlines():
        if "rate-limits" in line:
            print("  said: " + line[:160] + ("..." if len(line) > 160 else ""))
