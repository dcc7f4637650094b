#!/usr/bin/env python3
"""One registration end to end, this tool against Synapse's original script.

Run through scripts/bench (which builds the release binary and starts the
throwaway Synapse). The two tools alternate, each registering a fresh user per
run; the medians of the wall times and their ratio are printed.
"""
import os
import statistics
import subprocess
import sys
import time

RUNS = int(os.environ.get("RUNS", "15"))
ours = os.environ.get("RNMU_BIN", "target/release/register_new_matrix_user")
original = os.environ["RNMU_SYNAPSE_ORIGINAL"]
url, secret = os.environ["RNMU_SYNAPSE_URL"], os.environ["RNMU_SYNAPSE_SECRET"]


def once(tool, user):
    t = time.perf_counter()
    subprocess.run([tool, "-u", user, "-p", "bench-pw", "--no-admin", "-k", secret, url],
                   check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - t


times = {"original": [], "ours": []}
once(ours, "warmup_ours")
once(original, "warmup_original")
for i in range(RUNS):
    times["original"].append(once(original, f"single_o{i}"))
    times["ours"].append(once(ours, f"single_r{i}"))
med = {k: statistics.median(v) for k, v in times.items()}
print(f"single registration, median of {RUNS} alternating runs against {url}")
print(f"  original (Python): {med['original'] * 1000:8.1f} ms")
print(f"  this tool:         {med['ours'] * 1000:8.1f} ms")
print(f"  ratio:             {med['ours'] / med['original']:8.3f}  (this tool's time / original's)")
