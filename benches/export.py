#!/usr/bin/env python3
"""--export at scale, side by side in one run.

Run through `scripts/bench export` (release build, throwaway Synapse with its
default limits; the admin API is not rate-limited). USERS accounts are made
first (with --batch, which the server's shared-secret endpoint does not
rate-limit), then, for ROUNDS alternating rounds, the whole server is
exported by this tool and read by a bare client of the admin API
(benches/admin_client.rs, mode `export`: the same paged list, the same two
reads per account, the same concurrency, nothing written). Every figure is
accounts per second; each round's ratio compares the two runs made back to
back. The tool's peak memory (VmHWM) is reported for the largest round, and
for a run over a tenth of the accounts, to show it does not grow with them.
"""
import os
import re
import statistics
import subprocess
import tempfile
import time

USERS = int(os.environ.get("USERS", "10000"))
ROUNDS = int(os.environ.get("ROUNDS", "3"))
JOBS = os.environ.get("JOBS", "4")
ours = os.environ.get("RNMU_BIN", "target/release/register_new_matrix_user")
url, secret = os.environ["RNMU_SYNAPSE_URL"], os.environ["RNMU_SYNAPSE_SECRET"]
admin_token = os.environ["RNMU_SYNAPSE_ADMIN_TOKEN"]
tmp = tempfile.mkdtemp(prefix="rnmu-bench-export-")
token_file = os.path.join(tmp, "admin-token")
with open(token_file, "w") as f:
    f.write(admin_token)
os.chmod(token_file, 0o600)


def make(n, prefix):
    path = os.path.join(tmp, f"{prefix}.csv")
    with open(path, "w") as f:
        f.write("username,password\n")
        for i in range(n):
            f.write(f"{prefix}{i},pw-bench-export-{i}\n")
    subprocess.run([ours, "--batch", path, "-j", "8", "-q", "-k", secret, url], check=True)


def tool():
    out = os.path.join(tmp, "export.jsonl")
    t = time.perf_counter()
    p = subprocess.Popen(["/usr/bin/env", "bash", "-c",
                          f'"$0" "$@" & pid=$!; peak=0; while kill -0 $pid 2>/dev/null; do '
                          f'v=$(awk \'/VmHWM/{{print $2}}\' /proc/$pid/status 2>/dev/null); '
                          f'[ -n "$v" ] && [ "$v" -gt "$peak" ] && peak=$v; sleep 0.05; done; '
                          f'wait $pid; rc=$?; echo "peak $peak"; exit $rc',
                          ours, "--export", out, "--admin-token-file", token_file, "-j", JOBS, "-q",
                          "-k", secret, url], stdout=subprocess.PIPE, text=True)
    text, _ = p.communicate()
    secs = time.perf_counter() - t
    assert p.returncode == 0, f"the tool exited {p.returncode}"
    with open(out) as f:
        n = sum(1 for _ in f)
    peak = int(re.search(r"peak (\d+)", text).group(1))
    return n, n / secs, peak


def bare():
    out = subprocess.run(
        ["cargo", "bench", "--quiet", "--bench", "admin_client", "--", "export", "-", "0", JOBS],
        check=True, stdout=subprocess.PIPE, text=True, stderr=subprocess.DEVNULL).stdout
    m = re.search(r"bare: (\d+) accounts in ([\d.]+) s \((\d+) failed\)", out)
    assert m and m.group(3) == "0", out
    return int(m.group(1)) / float(m.group(2))


subprocess.run(["cargo", "bench", "--quiet", "--bench", "admin_client", "--no-run"], check=True,
               stderr=subprocess.DEVNULL)
make(USERS // 10, "exa")
small_n, _, small_peak = tool()
make(USERS - USERS // 10, "exb")
tools, bares, peak = [], [], 0
for _ in range(ROUNDS):
    bares.append(bare())
    n, rate, p = tool()
    tools.append(rate)
    peak = max(peak, p)
ratios = [o / b for o, b in zip(tools, bares)]
print(f"--export against {url}, --jobs {JOBS}, {n} accounts, {ROUNDS} alternating rounds")
print(f"  bare {statistics.median(bares):.0f} accounts/s, this tool {statistics.median(tools):.0f} accounts/s;"
      f" per round {', '.join(f'{r:.2f}' for r in ratios)}; median ratio {statistics.median(ratios):.2f}")
print(f"  peak memory: {small_peak} KiB exporting {small_n} accounts, {peak} KiB exporting {n}")
