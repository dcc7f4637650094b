#!/usr/bin/env python3
"""One registration end to end, this tool against Synapse's original script,
and where this tool's milliseconds go.

Run through scripts/bench (which builds the release binary and starts the
throwaway Synapse). In each of RUNS rounds, in turn: the original and this tool
each register a fresh user (taking turns to go first); this tool starts and exits (`--version`); this
tool runs a registration up to signing without contacting the server
(`--dry-run`); /bin/true runs, the floor of any process; and a bare client (benches/bare_client.rs, one process, one
registration: a nonce and the signed post) registers a fresh user, which is
the server's own part. The medians are printed, with the ratio to the
original and the breakdown of one registration. Each measurement starts
SETTLE seconds (default 0) after the one before: waiting lets the CPU
fall idle, which slows every process that follows, so it is off.
"""
import json
import os
import re
import statistics
import subprocess
import time

from common import bare_client_path

RUNS = int(os.environ.get("RUNS", "15"))
SETTLE = float(os.environ.get("SETTLE", "0"))
ours = os.environ.get("RNMU_BIN", "target/release/register_new_matrix_user")
original = os.environ["RNMU_SYNAPSE_ORIGINAL"]
url, secret = os.environ["RNMU_SYNAPSE_URL"], os.environ["RNMU_SYNAPSE_SECRET"]


BARE = bare_client_path()


def timed(cmd):
    # Each measurement starts on an idle server: what one registration left
    # it to do (a device, its caches) is not charged to the next.
    time.sleep(SETTLE)
    t = time.perf_counter()
    out = subprocess.run(cmd, check=True, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True).stdout
    return time.perf_counter() - t, out


def once(tool, user):
    return timed([tool, "-u", user, "-p", "bench-pw", "--no-admin", "-k", secret, url])[0]


def bare(prefix):
    secs, out = timed([BARE, prefix, "1", "1"])
    m = re.search(r"bare: 1 registrations in ([\d.]+) s \(0 failed\)", out)
    assert m, out
    return secs, float(m.group(1))


times = {k: [] for k in ("original", "ours", "true", "version", "dry_run", "bare_process", "bare_requests")}
once(ours, "warmup_ours")
once(original, "warmup_original")
bare("warmup_bare")
for i in range(RUNS):
    # The two take turns to go first: a registration leaves the server some
    # work of its own (the original's login makes a device), which would
    # otherwise always fall on the one that runs second.
    pair = [("original", original, f"single_o{i}"), ("ours", ours, f"single_r{i}")]
    for key, tool, user in (pair if i % 2 == 0 else pair[::-1]):
        times[key].append(once(tool, user))
    times["true"].append(timed(["/bin/true"])[0])
    times["version"].append(timed([ours, "--version"])[0])
    times["dry_run"].append(timed([ours, "-u", f"single_d{i}", "-p", "bench-pw", "--no-admin", "--dry-run",
                                   "-k", secret, url])[0])
    p, r = bare(f"single_b{i}_")
    times["bare_process"].append(p)
    times["bare_requests"].append(r)
med = {k: statistics.median(v) * 1000 for k, v in times.items()}
ms = lambda k: f"{med[k]:8.1f} ms"  # noqa: E731
print(f"single registration, median of {RUNS} alternating runs against {url}")
print(f"  original (Python): {ms('original')}")
print(f"  this tool:         {ms('ours')}")
print(f"  ratio:             {med['ours'] / med['original']:8.3f}  (this tool's time / original's)")
print("where this tool's milliseconds go (medians):")
print(f"  a process of nothing, for scale (/bin/true):         {ms('true')}")
print(f"  start and exit (--version):                          {ms('version')}")
print(f"  config, input, validation, signing (--dry-run - --version): {med['dry_run'] - med['version']:8.1f} ms")
print(f"  the server's part (bare client: nonce + register, in-process): {ms('bare_requests')}")
print(f"  the rest (this tool - --dry-run - server's part):    "
      f"{med['ours'] - med['dry_run'] - med['bare_requests']:8.1f} ms")
print(f"  a bare client's whole process, for scale:            {ms('bare_process')}")
