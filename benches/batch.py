#!/usr/bin/env python3
"""Batch onboarding throughput and memory, side by side in one run.

Run through `scripts/bench batch` (release build, throwaway Synapse with
bcrypt_rounds 4). Measures registrations per second of:
  (a) the original script called once per user in a loop (LOOP_USERS users),
  (b) the server's capacity: a bare concurrent client doing only nonce, sign,
      post (benches/bare_client.rs), with the same concurrency,
  (c) this tool's --batch over USERS rows,
alternating (b) and (c) for ROUNDS rounds; then the peak memory of a
--dry-run over a MEM_ROWS-row file.
"""
import json
import os
import re
import statistics
import subprocess
import tempfile
import time

from common import bare_client_path

USERS = int(os.environ.get("USERS", "1000"))
LOOP_USERS = int(os.environ.get("LOOP_USERS", "30"))
ROUNDS = int(os.environ.get("ROUNDS", "3"))
JOBS = os.environ.get("JOBS", "4")
MEM_ROWS = int(os.environ.get("MEM_ROWS", "1000000"))
ours = os.environ.get("RNMU_BIN", "target/release/register_new_matrix_user")
original = os.environ["RNMU_SYNAPSE_ORIGINAL"]
url, secret = os.environ["RNMU_SYNAPSE_URL"], os.environ["RNMU_SYNAPSE_SECRET"]
tmp = tempfile.mkdtemp(prefix="rnmu-bench-")


def csv_file(prefix, n):
    path = os.path.join(tmp, f"{prefix}.csv")
    with open(path, "w") as f:
        f.write("username,password\n")
        for i in range(n):
            f.write(f"{prefix}{i},bench-pw\n")
    return path


def batch_rate(prefix, jobs=None):
    path = csv_file(prefix, USERS)
    out = os.path.join(tmp, f"{prefix}.results.jsonl")
    t = time.perf_counter()
    # As an operator runs it: with a results file (its pending lines synced to disk).
    r = subprocess.run([ours, "--batch", path, "-j", jobs or JOBS, "-q", "-o", out, "-k", secret, url])
    secs = time.perf_counter() - t
    assert r.returncode == 0, f"batch failed with {r.returncode}"
    return USERS / secs


def bare_rate(prefix, jobs=None):
    t = time.perf_counter()
    out = subprocess.run(
        [BARE, prefix, str(USERS), jobs or JOBS],
        check=True, stdout=subprocess.PIPE, text=True, stderr=subprocess.DEVNULL,
    ).stdout
    secs = time.perf_counter() - t
    m = re.search(r"bare: (\d+) registrations in ([\d.]+) s \((\d+) failed\)", out)
    assert m and m.group(3) == "0", out
    return int(m.group(1)) / secs


def loop_rate():
    t = time.perf_counter()
    for i in range(LOOP_USERS):
        subprocess.run([original, "-u", f"loop{i}", "-p", "bench-pw", "--no-admin", "-k", secret, url],
                       check=True, stdout=subprocess.DEVNULL)
    return LOOP_USERS / (time.perf_counter() - t)


BARE = bare_client_path()
# PAIRED_ONLY=1 runs only the paired rounds below.
if os.environ.get("PAIRED_ONLY") != "1":
    loop = loop_rate()
    bare, batch = [], []
    for r in range(ROUNDS):
        bare.append(bare_rate(f"bare{r}x"))
        batch.append(batch_rate(f"batch{r}x"))
    bare_m, batch_m = statistics.median(bare), statistics.median(batch)

    # Peak memory of a dry run over a large file (rows are streamed).
    big = os.path.join(tmp, "big.jsonl")
    with open(big, "w") as f:
        for i in range(MEM_ROWS):
            f.write('{"username":"mem%d","displayname":"Member %d","team":"t%d"}\n' % (i, i, i % 50))
    # Measured in a fresh interpreter, whose only child is the tool.
    measure = ("import resource, subprocess, sys, time; t = time.perf_counter(); "
               "r = subprocess.run(sys.argv[1:]); "
               "print(r.returncode, time.perf_counter() - t, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")
    out = subprocess.run(["python3", "-c", measure, ours, "--batch", big, "--dry-run", "-q", "-k", secret, url],
                         check=True, stdout=subprocess.PIPE, text=True).stdout.split()
    assert out[0] == "0", out
    dry_secs, peak_kib = float(out[1]), int(out[2])

    print(f"batch onboarding against {url}, --jobs {JOBS}, {USERS} users per run, median of {ROUNDS} alternating rounds")
    print(f"  (a) original script in a loop: {loop:8.1f} registrations/s ({LOOP_USERS} users)")
    print(f"  (b) server capacity, bare client: {bare_m:8.1f} registrations/s   rounds: {', '.join(f'{x:.0f}' for x in bare)}")
    print(f"  (c) this tool, --batch:       {batch_m:8.1f} registrations/s   rounds: {', '.join(f'{x:.0f}' for x in batch)}")
    # Each round runs (b) and (c) back to back on the same server: their ratio is
    # the fair comparison, as the server slows while its database grows.
    ratios = [c / b for b, c in zip(bare, batch)]
    print(f"  (c)/(a) = {batch_m / loop:.1f}x the loop;  (c)/(b) per round: "
          f"{', '.join(f'{100 * r:.0f} %' for r in ratios)}; median {100 * statistics.median(ratios):.1f} % of capacity")
    print(f"  --dry-run over {MEM_ROWS} rows: {dry_secs:.1f} s, peak memory {peak_kib / 1024:.1f} MiB")

# At each concurrency of PAIRED_JOBS, PAIRED_ROUNDS rounds of USERS users,
# this tool and the bare client back to back in each, taking turns to go
# first (the server slows as its database grows, which would favour
# whichever always ran first).
PAIRED_JOBS = os.environ.get("PAIRED_JOBS", "4 8").split()
PAIRED_ROUNDS = int(os.environ.get("PAIRED_ROUNDS", "5"))
for jobs in PAIRED_JOBS:
    ratios = []
    for r in range(PAIRED_ROUNDS):
        if r % 2 == 0:
            b = bare_rate(f"pb{jobs}x{r}x", jobs)
            c = batch_rate(f"pc{jobs}x{r}x", jobs)
        else:
            c = batch_rate(f"pc{jobs}x{r}x", jobs)
            b = bare_rate(f"pb{jobs}x{r}x", jobs)
        ratios.append(c / b)
    print(f"  -j {jobs} against {jobs} bare threads, {USERS} users a round: per round "
          f"{', '.join(f'{x:.2f}' for x in ratios)}; median {statistics.median(ratios):.2f}")
