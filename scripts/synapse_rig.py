#!/usr/bin/env python3
"""A throwaway Synapse on loopback, for tests, the demo and benchmarks.

    synapse_rig.py serve        start it, print one JSON line describing it,
                                run until standard input closes, then stop it
                                and delete its directory
    synapse_rig.py run CMD...   start it, run CMD with RNMU_SYNAPSE_* variables
                                set, stop it, exit with CMD's status

The server uses the pinned Synapse from the project's virtualenv (installed by
scripts/synapse-venv.sh when missing), sqlite and bcrypt_rounds 4, with Synapse's
own default rate limits, and listens on a free 127.0.0.1 port, a unix socket, and
a TLS port with a certificate from a CA generated for the run.

RNMU_SYNAPSE_CONFIG_OVERRIDES may hold a JSON object of top-level config keys
(rate limits, say) merged over the defaults (`public_baseurl: auto` becomes the
server's own plain-HTTP address, for SSO): only for a test or benchmark that
measures something else than the limit it changes, which says why it does. A rig admin
account is registered so tests can read state back through the admin API.

Only the standard library is used here; the server itself runs in the venv.
"""
import base64
import ctypes
import hashlib
import hmac
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
SERVER_NAME = "rig.test"


def venv_python():
    venv = subprocess.run(
        ["bash", os.path.join(HERE, "synapse-venv.sh")],
        check=True, stdout=subprocess.PIPE, text=True,
    ).stdout.strip().splitlines()[-1]
    return venv, os.path.join(venv, "bin", "python")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


TLS_SCRIPT = r"""
import datetime, ipaddress, sys
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID, ExtendedKeyUsageOID
d = sys.argv[1]
now = datetime.datetime.now(datetime.timezone.utc)
def name(cn): return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
def pem(obj, path):
    with open(path, "wb") as f:
        f.write(obj.public_bytes(serialization.Encoding.PEM))
ca_key = ec.generate_private_key(ec.SECP256R1())
ca = (x509.CertificateBuilder().subject_name(name("rig test CA")).issuer_name(name("rig test CA"))
      .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
      .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=30))
      .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
      .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
      .sign(ca_key, hashes.SHA256()))
key = ec.generate_private_key(ec.SECP256R1())
cert = (x509.CertificateBuilder().subject_name(name("localhost")).issuer_name(ca.subject)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost"),
                       x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256()))
pem(ca, d + "/ca.pem")
pem(cert, d + "/tls.crt")
with open(d + "/tls.key", "wb") as f:
    f.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                              serialization.NoEncryption()))
"""


def write_tls(d, py):
    """A test CA and a certificate for localhost/127.0.0.1 signed by it."""
    subprocess.run([py, "-c", TLS_SCRIPT, d], check=True)


def write_config(d, port, secret, tls_port):
    log_config = os.path.join(d, "log.yaml")
    with open(log_config, "w") as f:
        json.dump({
            "version": 1,
            "formatters": {"p": {"format": "%(asctime)s %(name)s %(levelname)s %(message)s"}},
            "handlers": {"file": {"class": "logging.FileHandler", "formatter": "p",
                                  "filename": os.path.join(d, "homeserver.log")}},
            "root": {"level": os.environ.get("RNMU_SYNAPSE_LOG_LEVEL", "WARNING"), "handlers": ["file"]},
            "disable_existing_loggers": False,
        }, f)
    with open(os.path.join(d, "signing.key"), "w") as f:
        seed = base64.b64encode(secrets.token_bytes(32)).decode().rstrip("=")
        f.write(f"ed25519 a_rig {seed}\n")
    cfg = {
        "server_name": SERVER_NAME,
        "pid_file": os.path.join(d, "homeserver.pid"),
        "listeners": [
            {"port": port, "bind_addresses": ["127.0.0.1"], "type": "http", "tls": False,
             "x_forwarded": False, "resources": [{"names": ["client"], "compress": False}]},
            {"path": os.path.join(d, "client.sock"), "type": "http",
             "resources": [{"names": ["client"], "compress": False}]},
            {"port": tls_port, "bind_addresses": ["127.0.0.1"], "type": "http", "tls": True,
             "resources": [{"names": ["client"], "compress": False}]},
        ],
        "tls_certificate_path": os.path.join(d, "tls.crt"),
        "tls_private_key_path": os.path.join(d, "tls.key"),
        "database": {"name": "sqlite3", "args": {"database": os.path.join(d, "homeserver.db")}},
        "log_config": log_config,
        "media_store_path": os.path.join(d, "media"),
        "signing_key_path": os.path.join(d, "signing.key"),
        "registration_shared_secret": secret,
        "report_stats": False,
        "trusted_key_servers": [],
        "suppress_key_server_warning": True,
        "bcrypt_rounds": 4,
        "enable_metrics": False,
    }
    cfg.update(json.loads(os.environ.get("RNMU_SYNAPSE_CONFIG_OVERRIDES") or "{}"))
    # SSO needs the server's own address, known only here.
    if cfg.get("public_baseurl") == "auto":
        cfg["public_baseurl"] = f"http://127.0.0.1:{port}/"
    path = os.path.join(d, "homeserver.yaml")
    # It holds the shared secret: readable by its owner alone, as an admin keeps it.
    with os.fdopen(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as f:
        json.dump(cfg, f, indent=1)  # JSON is YAML
    return path


def _set_pdeathsig():
    # The server dies with the rig, even when the rig is killed.
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)
    except OSError:
        pass


def http(method, url, body=None, token=None):
    req = urllib.request.Request(url, method=method)
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("Authorization", "Bearer " + token)
    try:
        with urllib.request.urlopen(req, data, timeout=10) as r:
            return r.status, json.loads(r.read() or b"{}")
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read() or b"{}")


def delegated():
    overrides = json.loads(os.environ.get("RNMU_SYNAPSE_CONFIG_OVERRIDES") or "{}")
    return bool((overrides.get("matrix_authentication_service") or {}).get("enabled"))


def register_admin(url, secret):
    status, body = http("GET", url + "/_synapse/admin/v1/register")
    nonce = body["nonce"]
    user, pw = "rigadmin", secrets.token_hex(16)
    mac = hmac.new(secret.encode(), b"\0".join([nonce.encode(), user.encode(), pw.encode(), b"admin"]),
                   hashlib.sha1).hexdigest()
    status, body = http("POST", url + "/_synapse/admin/v1/register",
                        {"nonce": nonce, "username": user, "password": pw, "mac": mac, "admin": True})
    if status != 200:
        raise SystemExit(f"rig: cannot register the rig admin: {status} {body}")
    return body["access_token"]


def start():
    venv, py = venv_python()
    d = tempfile.mkdtemp(prefix="rnmu-synapse-")
    port, tls_port = free_port(), free_port()
    secret = secrets.token_hex(24)
    write_tls(d, py)
    config = write_config(d, port, secret, tls_port)
    log = open(os.path.join(d, "stdout.log"), "w")
    proc = subprocess.Popen(
        [py, "-m", "synapse.app.homeserver", "-c", config],
        cwd=d, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        preexec_fn=_set_pdeathsig,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + 120
    while True:
        if proc.poll() is not None:
            tail = open(os.path.join(d, "stdout.log")).read()[-3000:]
            shutil.rmtree(d, ignore_errors=True)
            raise SystemExit(f"rig: synapse exited with {proc.returncode}:\n{tail}")
        try:
            with urllib.request.urlopen(url + "/health", timeout=2) as r:
                if r.status == 200:
                    break
        except OSError:
            pass
        if time.time() > deadline:
            proc.kill()
            raise SystemExit("rig: synapse did not come up within 120 s")
        time.sleep(0.1)
    info = {
        "url": url,
        "port": port,
        "socket": os.path.join(d, "client.sock"),
        "tls_url": f"https://localhost:{tls_port}",
        "ca": os.path.join(d, "ca.pem"),
        "secret": secret,
        "config": config,
        "server_name": SERVER_NAME,
        "dir": d,
        "venv": venv,
        "original": os.path.join(venv, "bin", "register_new_matrix_user"),
        # Behind MAS there is no shared-secret registration: no rig admin.
        "admin_token": "" if delegated() else register_admin(url, secret),
        "pid": proc.pid,
    }
    return proc, info


def stop(proc, info):
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    if not os.environ.get("RNMU_KEEP_SYNAPSE"):
        shutil.rmtree(info["dir"], ignore_errors=True)


def main():
    if len(sys.argv) < 2 or sys.argv[1] not in ("serve", "run"):
        print(__doc__, file=sys.stderr)
        return 2
    proc, info = start()
    try:
        if sys.argv[1] == "serve":
            print(json.dumps(info), flush=True)
            for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                signal.signal(sig, lambda *_: (_ for _ in ()).throw(SystemExit(0)))
            while sys.stdin.buffer.read(4096):
                pass
            return 0
        cmd = sys.argv[2:]
        if cmd[:1] == ["--"]:
            cmd = cmd[1:]
        env = dict(os.environ)
        for k, v in info.items():
            env["RNMU_SYNAPSE_" + k.upper()] = str(v)
        return subprocess.call(cmd, env=env)
    finally:
        stop(proc, info)


if __name__ == "__main__":
    sys.exit(main())
