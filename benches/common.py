"""What the Python benchmarks share."""
import json
import subprocess


def bare_client_path():
    """The bare client's executable (benches/bare_client.rs), built once, so
    that it is timed as this tool is: a process started and waited for, with
    nothing of cargo's."""
    out = subprocess.run(
        ["cargo", "bench", "--quiet", "--bench", "bare_client", "--no-run", "--message-format=json"],
        check=True, stdout=subprocess.PIPE, text=True, stderr=subprocess.DEVNULL,
    ).stdout
    for line in out.splitlines():
        msg = json.loads(line)
        if msg.get("reason") == "compiler-artifact" and msg.get("target", {}).get("name") == "bare_client" \
                and msg.get("executable"):
            return msg["executable"]
    raise SystemExit("cannot find the bare client's executable")
