#!/usr/bin/env python3
"""Runs a command on a pseudo-terminal and answers its prompts.

    pty_drive.py SCRIPT_JSON CMD [ARG...]

SCRIPT_JSON is {"steps": [[expect, answer], ...], "timeout": seconds,
"stderr_null": false}: wait until `expect` appears in the output (after the
previous match), then type `answer`. With stderr_null, the command's
standard error goes to /dev/null, as `CMD 2>/dev/null` on a terminal. Prints {"output": ..., "exit": ..., "unmatched": expect-or-null, "echo":
whether the terminal echoes typing once the command has ended} as JSON.
"""
import fcntl
import json
import os
import pty
import select
import struct
import sys
import termios
import time


def main():
    spec = json.loads(sys.argv[1])
    cmd = sys.argv[2:]
    deadline = time.time() + spec.get("timeout", 30)
    pid, fd = pty.fork()
    if pid == 0:
        os.environ["TERM"] = "xterm"
        if spec.get("stderr_null"):
            # As `CMD 2>/dev/null` on a terminal.
            null = os.open(os.devnull, os.O_WRONLY)
            os.dup2(null, 2)
        os.execvp(cmd[0], cmd)
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))
    buf = b""
    pos = 0
    unmatched = None

    def pump(wait):
        nonlocal buf
        r, _, _ = select.select([fd], [], [], wait)
        if not r:
            return True
        try:
            chunk = os.read(fd, 4096)
        except OSError:
            return False
        if not chunk:
            return False
        buf += chunk
        return True

    alive = True
    for expect, answer in spec["steps"]:
        want = expect.encode()
        while alive and buf.find(want, pos) < 0 and time.time() < deadline:
            alive = pump(0.1)
        i = buf.find(want, pos)
        if i < 0:
            unmatched = expect
            break
        pos = i + len(want)
        time.sleep(0.05)
        os.write(fd, answer.encode())
    while alive and time.time() < deadline:
        alive = pump(0.1)
    if alive:
        os.kill(pid, 9)
    _, status = os.waitpid(pid, 0)
    try:
        echo = bool(termios.tcgetattr(fd)[3] & termios.ECHO)
    except termios.error:
        echo = None
    print(json.dumps({
        "output": buf.decode(errors="replace"),
        "exit": os.waitstatus_to_exitcode(status),
        "unmatched": unmatched,
        "echo": echo,
    }))


if __name__ == "__main__":
    main()
