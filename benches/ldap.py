#!/usr/bin/env python3
"""Reading a directory, side by side in one run.

Run through `scripts/bench ldap` (release build, a throwaway Synapse with its
default limits, and a throwaway slapd from scripts/ldap_rig.py seeded with
PEOPLE entries, 20,000 by default, behind a size limit of 500). In ROUNDS
alternating rounds it times:
  ldapsearch  `ldapsearch -E pr=500/noprompt` of the same entries and
              attributes, as the same reader, output thrown away;
  dry run     `--dry-run --batch ldap:`: the directory read and every row
              through the pipeline up to signing, no server contacted;
and reports the tool's peak memory (maxrss) over PEOPLE entries and over a
tenth of them. With PLAN=1 it then creates every account (--ensure) and
times `--ensure --plan --batch ldap:` on the up-to-date server, which reads
each account back from Synapse too.
"""
import json
import os
import statistics
import subprocess
import tempfile
import time

PEOPLE = int(os.environ.get("PEOPLE", "20000"))
ROUNDS = int(os.environ.get("ROUNDS", "3"))
# What the tool asks for with the bench's block: every user attribute, and
# the operational memberOf (src/batch/ldap.rs, `requested`).
ATTRS = ["*", "memberOf"]
ours = os.path.abspath(os.environ.get("RNMU_BIN", "target/release/register_new_matrix_user"))
url, hs_config = os.environ["RNMU_SYNAPSE_URL"], os.environ["RNMU_SYNAPSE_CONFIG"]
admin_token = os.environ["RNMU_SYNAPSE_ADMIN_TOKEN"]
tmp = tempfile.mkdtemp(prefix="rnmu-bench-ldap-")
token_file = os.path.join(tmp, "admin-token")
with open(token_file, "w") as f:
    f.write(admin_token)
os.chmod(token_file, 0o600)


def directory(people):
    p = subprocess.Popen(["python3", "scripts/ldap_rig.py", "serve", "--people", str(people)],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    info = json.loads(p.stdout.readline())
    cfg = os.path.join(tmp, f"ldap-{people}.yaml")
    with open(cfg, "w") as f:
        f.write(f"register_new_matrix_user:\n  ldap:\n    url: {info['url']}\n"
                f"    bind_dn: {info['bind_dn']}\n    bind_password_path: {info['bind_password_path']}\n"
                f"    base: ou=people,{info['base']}\n")
    return p, info, cfg


def peak_run(args):
    """Runs the tool; its seconds and peak memory (maxrss) in KiB, measured
    in a fresh interpreter whose only child is the tool."""
    measure = ("import resource, subprocess, sys, time; t = time.perf_counter(); "
               "r = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL); "
               "print(r.returncode, time.perf_counter() - t, "
               "resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)")
    out = subprocess.run(["python3", "-c", measure, ours, *args], check=True, stdout=subprocess.PIPE,
                         text=True).stdout.split()
    assert out[0] in ("0", "4"), f"the tool exited {out[0]}"
    return float(out[1]), int(out[2])


def ldapsearch(info):
    pw = open(info["bind_password_path"]).read().strip()
    t = time.perf_counter()
    r = subprocess.run(["ldapsearch", "-x", "-LLL", "-E", "pr=500/noprompt", "-H", info["url"],
                        "-D", info["bind_dn"], "-w", pw, "-b", "ou=people," + info["base"],
                        "(objectClass=inetOrgPerson)", *ATTRS], stdout=subprocess.PIPE)
    secs = time.perf_counter() - t
    assert r.returncode == 0 and r.stdout.count(b"\ndn: ") + 1 >= PEOPLE, r.returncode
    return secs


def dry(cfg):
    return peak_run(["-c", hs_config, "-c", cfg, "--dry-run", "--batch", "ldap:", "-q", url])


small, small_info, small_cfg = directory(PEOPLE // 10)
_, small_peak = dry(small_cfg)
small.stdin.close()
big, info, cfg = directory(PEOPLE)
searches, dries, peak = [], [], 0
for _ in range(ROUNDS):
    searches.append(ldapsearch(info))
    secs, p = dry(cfg)
    dries.append(secs)
    peak = max(peak, p)
ratios = [d / s for d, s in zip(dries, searches)]
print(f"directory of {PEOPLE} entries (size limit 500, pages of 500), {ROUNDS} alternating rounds")
print(f"  ldapsearch -E pr=500 {statistics.median(searches):.2f} s, --dry-run --batch ldap: "
      f"{statistics.median(dries):.2f} s; time ratio per round {', '.join(f'{r:.2f}' for r in ratios)};"
      f" median {statistics.median(ratios):.2f}")
print(f"  peak memory: {small_peak} KiB over {PEOPLE // 10} entries, {peak} KiB over {PEOPLE}")
if os.environ.get("PLAN") == "1":
    base = ["-c", hs_config, "-c", cfg, "--admin-token-file", token_file, "-j", "8", "-q", url]
    subprocess.run([ours, "--ensure", "--batch", "ldap:", *base], check=True)
    secs, _ = peak_run(["--ensure", "--plan", "--batch", "ldap:", *base])
    print(f"  --plan on the up-to-date server: {secs:.1f} s ({PEOPLE / secs:.0f} entries/s, each read "
          f"back from Synapse), ldapsearch alone {statistics.median(searches):.2f} s")
big.stdin.close()
