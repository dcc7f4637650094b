#!/usr/bin/env python3
"""A throwaway OpenLDAP slapd on loopback, for the directory tests.

    ldap_rig.py serve [--no-memberof] [--people N] [--time-limit]

starts Debian's slapd (scripts/test-deps.sh installs it) with its own
config and an mdb database in a temporary directory: the core, cosine,
inetorgperson and nis schemas, the memberOf overlay (unless --no-memberof),
plain LDAP and LDAPS with a certificate from a CA made for the run, and a
size limit of 500 entries per search, so a client that does not page with
the paged-results control (RFC 2696, which slapd serves) cannot read the
whole directory. The tests read as cn=reader (bound by the size limit, as a site's
service account is) and change the directory as cn=admin. It is seeded with ldapadd: N people (default 2000) under
ou=people, uid=personNNNN, cn "Person NNNN", mail personNNNN@rig.test,
entryUUID as slapd assigns it, and groups under ou=groups (cn=matrix-admins
holding person0000 and person0001, cn=engineering holding every tenth
person, cn=disabled empty). It prints one JSON line describing itself, runs
until standard input closes, then stops slapd and deletes the directory.
With --time-limit, once seeded, slapd restarts with the retcode overlay
making every operation wait 2 s and cn=reader's searches limited to 1 s, so
each search ends in slapd's own timeLimitExceeded.
"""
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
BASE = "dc=rig,dc=test"
ADMIN = f"cn=admin,{BASE}"
READER = f"cn=reader,{BASE}"
SIZE_LIMIT = 500


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tls(d):
    """A CA and a certificate for 127.0.0.1, by the rig's Python (cryptography)."""
    venv = subprocess.run(["bash", os.path.join(HERE, "synapse-venv.sh")], check=True,
                          stdout=subprocess.PIPE, text=True).stdout.strip().splitlines()[-1]
    sys.path.insert(0, HERE)
    from synapse_rig import TLS_SCRIPT  # noqa: E402
    subprocess.run([os.path.join(venv, "bin", "python"), "-c", TLS_SCRIPT, d], check=True)


def config(d, memberof, slow=False):
    lines = [
        "include /etc/ldap/schema/core.schema",
        "include /etc/ldap/schema/cosine.schema",
        "include /etc/ldap/schema/inetorgperson.schema",
        "include /etc/ldap/schema/nis.schema",
        "modulepath /usr/lib/ldap",
        "moduleload back_mdb",
    ]
    if memberof:
        lines.append("moduleload memberof")
    if slow:
        lines.append("moduleload retcode")
    lines += [
        f"pidfile {d}/slapd.pid",
        f"TLSCACertificateFile {d}/ca.pem",
        f"TLSCertificateFile {d}/tls.crt",
        f"TLSCertificateKeyFile {d}/tls.key",
        f"sizelimit {SIZE_LIMIT}",
        "database mdb",
        f'suffix "{BASE}"',
        f'rootdn "{ADMIN}"',
        "rootpw {ROOTPW}",
        f"directory {d}/db",
        "maxsize 1073741824",
        "limits * size.soft=%d size.hard=%d size.pr=%d size.prtotal=unlimited%s" % (
            SIZE_LIMIT, SIZE_LIMIT, SIZE_LIMIT, " time.soft=1 time.hard=1" if slow else ""),
        "index objectClass,uid,member,memberOf eq" if memberof else "index objectClass,uid,member eq",
    ]
    if memberof:
        lines += ["overlay memberof", "memberof-refint true"]
    if slow:
        # Every operation waits 2 s before it is handled, so a search is past
        # its time limit of 1 s when the database starts it: slapd's own
        # timeLimitExceeded.
        lines += ["overlay retcode", f"retcode-parent \"ou=retcodes,{BASE}\"", "retcode-sleep 2"]
    return "\n".join(lines) + "\n"


def person(i):
    uid = f"person{i:04d}"
    return (f"dn: uid={uid},ou=people,{BASE}\nobjectClass: inetOrgPerson\nuid: {uid}\n"
            f"cn: Person {i:04d}\nsn: {i:04d}\nmail: {uid}@rig.test\n"
            f"departmentNumber: {'eng' if i % 10 == 0 else 'ops'}\n\n")


def group(cn, members):
    # groupOfNames needs one member: an empty group holds the admin.
    members = members or [ADMIN]
    return (f"dn: cn={cn},ou=groups,{BASE}\nobjectClass: groupOfNames\ncn: {cn}\n"
            + "".join(f"member: {m}\n" for m in members) + "\n")


def seed(people):
    dn = lambda i: f"uid=person{i:04d},ou=people,{BASE}"  # noqa: E731
    out = [f"dn: {BASE}\nobjectClass: dcObject\nobjectClass: organization\ndc: rig\no: rig\n\n",
           f"dn: {READER}\nobjectClass: organizationalRole\nobjectClass: simpleSecurityObject\n"
           f"cn: reader\nuserPassword: {{READER_PW}}\n\n",
           f"dn: ou=people,{BASE}\nobjectClass: organizationalUnit\nou: people\n\n",
           f"dn: ou=groups,{BASE}\nobjectClass: organizationalUnit\nou: groups\n\n"]
    out += [person(i) for i in range(people)]
    out.append(group("matrix-admins", [dn(0), dn(1)]))
    out.append(group("engineering", [dn(i) for i in range(0, people, 10)]))
    out.append(group("disabled", []))
    return "".join(out)


def main():
    memberof = "--no-memberof" not in sys.argv
    slow = "--time-limit" in sys.argv
    people = 2000
    if "--people" in sys.argv:
        people = int(sys.argv[sys.argv.index("--people") + 1])
    d = tempfile.mkdtemp(prefix="rnmu-ldap-")
    os.makedirs(os.path.join(d, "db"))
    rootpw = os.urandom(12).hex()
    tls(d)
    with open(os.path.join(d, "slapd.conf"), "w") as f:
        f.write(config(d, memberof).replace("{ROOTPW}", rootpw))
    port, tls_port = free_port(), free_port()
    url, ldaps = f"ldap://127.0.0.1:{port}", f"ldaps://127.0.0.1:{tls_port}"
    def start():
        proc = subprocess.Popen(["/usr/sbin/slapd", "-d", "0", "-f", os.path.join(d, "slapd.conf"),
                                 "-h", f"{url}/ {ldaps}/"], stdout=subprocess.DEVNULL,
                                stderr=open(os.path.join(d, "slapd.log"), "a"))
        for _ in range(100):
            if subprocess.run(["ldapsearch", "-x", "-H", url, "-b", "", "-s", "base"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode in (0, 32):
                return proc
            time.sleep(0.1)
        raise SystemExit("ldap rig: slapd did not start: " + open(os.path.join(d, "slapd.log")).read())

    proc = start()
    env = dict(os.environ, LDAPTLS_CACERT=os.path.join(d, "ca.pem"))
    ldif = os.path.join(d, "seed.ldif")
    reader_pw = os.urandom(12).hex()
    with open(ldif, "w") as f:
        f.write(seed(people).replace("{READER_PW}", reader_pw))
    subprocess.run(["ldapadd", "-x", "-H", url, "-D", ADMIN, "-w", rootpw, "-f", ldif], check=True,
                   stdout=subprocess.DEVNULL, env=env)
    if slow:
        # Seeded at full speed, then restarted slow.
        proc.send_signal(signal.SIGTERM)
        proc.wait(10)
        with open(os.path.join(d, "slapd.conf"), "w") as f:
            f.write(config(d, memberof, slow=True).replace("{ROOTPW}", rootpw))
        proc = start()
    for name, pw in (("bind.secret", reader_pw), ("admin.secret", rootpw)):
        with open(os.path.join(d, name), "w") as f:
            f.write(pw + "\n")
        os.chmod(os.path.join(d, name), 0o600)
    print(json.dumps({"url": url, "ldaps": ldaps, "base": BASE, "bind_dn": READER,
                      "bind_password_path": os.path.join(d, "bind.secret"), "admin_dn": ADMIN,
                      "admin_password_path": os.path.join(d, "admin.secret"), "ca": os.path.join(d, "ca.pem"),
                      "dir": d, "people": people, "memberof": memberof}), flush=True)
    try:
        sys.stdin.read()
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        shutil.rmtree(d, ignore_errors=True)


if __name__ == "__main__":
    main()
