#!/usr/bin/python3
"""Service habits: -d with pid_file, `user`, configuration errors naming file and line, and
`make install DESTDIR=... PREFIX=/usr` followed by the installed binary started with the installed
example configuration.

- -d: the command returns once the broker is in the background; pid_file holds the daemon's pid;
  the daemon serves MQTT; SIGTERM removes pid_file and ends it.
- user (as root only; skipped loudly otherwise): the daemon runs as `nobody` (real, effective,
  saved and filesystem uid and gid in /proc/PID/status), yet the log file it opened as root in a
  directory only root may write keeps growing, and the listener it bound as root serves.
- Bad options and values stop start-up with "file:line: reason", also inside include_dir.
- make install: the binary in $(PREFIX)/sbin, the unit (paths filled in), the example config,
  the man pages when scripts/man/ has them; the unit passes systemd-analyze verify when that tool
  is there; the installed binary runs the installed config (its port replaced by a free one and its
  state directory by a temporary one) and refuses an anonymous client, as that config says.
"""
import os
import pwd
import re
import shutil
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import opslib as o  # noqa: E402
from opslib import check  # noqa: E402


def proc_ids(pid):
    ids = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            k, _, v = line.partition(":")
            if k in ("Uid", "Gid"):
                ids[k] = [int(x) for x in v.split()]
    return ids


def alive(pid):
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False


def test_daemon_pid_user():
    root = os.geteuid() == 0
    print("-d, pid_file%s:" % (", user nobody" if root else ""))
    if o.SAN:
        # ASan's report of a daemon goes to its /dev/null stderr: log_path keeps it
        pass
    d = o.tmpdir("daemon")
    os.chmod(d, 0o755)
    run = os.path.join(d, "run")
    os.mkdir(run)
    logdir = os.path.join(d, "log")
    os.mkdir(logdir, 0o700)  # only root can create files here
    port = o.free_port()
    pidfile = os.path.join(run, "vigil.pid")
    logfile = os.path.join(logdir, "vigil.log")
    conf = ("listener %d 127.0.0.1\nallow_anonymous true\npid_file %s\nlog_dest file %s\n"
            % (port, pidfile, logfile))
    if root:
        nobody = pwd.getpwnam("nobody")
        os.chown(run, nobody.pw_uid, nobody.pw_gid)  # so that nobody can remove the pid file
        conf += "user nobody\n"
    confp = os.path.join(d, "vigil.conf")
    with open(confp, "w") as f:
        f.write(conf)
    env = dict(os.environ)
    if o.SAN:
        env["ASAN_OPTIONS"] = env.get("ASAN_OPTIONS", "detect_leaks=1") + ":log_path=%s/asan" % d
        env["UBSAN_OPTIONS"] = env.get("UBSAN_OPTIONS", "print_stacktrace=1") + ":log_path=%s/ubsan" % d
    t0 = time.monotonic()
    r = subprocess.run([o.VIGIL, "-c", confp, "-d"], stdin=subprocess.DEVNULL, capture_output=True,
                       timeout=20, env=env)
    check(r.returncode == 0, "vigil -d returns 0 (rc=%s, %.2f s) %s" % (r.returncode, time.monotonic() - t0,
                                                                       r.stderr.decode()[-200:]))
    check(o.wait_for(lambda: os.path.exists(pidfile) and open(pidfile).read().strip(), 5),
          "pid_file written")
    try:
        pid = int(open(pidfile).read().strip())
    except (OSError, ValueError):
        check(False, "pid_file holds a pid")
        return
    check(alive(pid) and pid != os.getpid(), "pid_file names a live process (%d)" % pid)
    with open("/proc/%d/cmdline" % pid, "rb") as f:
        check(b"vigil" in f.read(), "and it is vigil")
    check(o.wait_for(lambda: o.listening(port), 5), "the daemon listens")
    c = o.Client(port)
    check(c.connect("daemon-client") == 0, "the daemon serves MQTT (CONNACK 0)")
    c.close()
    if root:
        ids = proc_ids(pid)
        check(ids.get("Uid") == [nobody.pw_uid] * 4, "Uid real/effective/saved/fs = %d: %s"
              % (nobody.pw_uid, ids.get("Uid")))
        check(ids.get("Gid") == [nobody.pw_gid] * 4, "Gid real/effective/saved/fs = %d: %s"
              % (nobody.pw_gid, ids.get("Gid")))
        check(o.wait_for(lambda: "daemon-client" in o._read(logfile), 2),
              "the log file opened as root (directory 0700 root) still receives lines after the drop")
        st = os.stat(logfile)
        check(st.st_uid == 0, "the log file was created before the drop (owner root)")
    else:
        print("SKIP user: not running as root, no privileges to drop")
    os.kill(pid, signal.SIGTERM)
    check(o.wait_for(lambda: not alive(pid), 5), "SIGTERM ends the daemon")
    check(o.wait_for(lambda: not os.path.exists(pidfile), 2), "pid_file removed at exit")
    if o.SAN:
        reports = [x for x in os.listdir(d) if x.startswith(("asan", "ubsan"))]
        check(not reports, "no sanitizer report from the daemon %s" % reports)
    o.rm(d)


BAD = [
    ("unknown option", "listener {port}\nno_such_option 1\n", 2, "no_such_option"),
    ("bad bool", "allow_anonymous maybe\n", 1, "allow_anonymous"),
    ("bad integer", "\n\nmax_keepalive lots\n", 3, "max_keepalive"),
    ("out of range", "max_inflight_messages 70000\n", 1, "max_inflight_messages"),
    ("bad port", "listener 99999\n", 1, "listener"),
    ("bad log_dest", "log_dest carrier-pigeon\n", 1, "log_dest"),
    ("bad log_format", "log_format xml\n", 1, "log_format"),
    ("missing value", "pid_file\n", 1, "pid_file"),
]


def test_config_errors():
    print("configuration errors name file and line:")
    d = o.tmpdir("conferr")
    port = o.free_port()
    for what, text, line, word in BAD:
        p = os.path.join(d, "bad.conf")
        with open(p, "w") as f:
            f.write(text.replace("{port}", str(port)))
        r = subprocess.run([o.VIGIL, "-c", p], capture_output=True, text=True, timeout=10)
        err = r.stderr.strip()
        check(r.returncode != 0 and ("%s:%d: " % (p, line)) in err and word in err,
              "%s: exit %d, %r" % (what, r.returncode, err[-150:]))
    # Values only found bad when used: a certificate that does not load, an address not on this host
    for what, text, word in (("certfile that does not load",
                              "listener {port} 127.0.0.1\ncertfile /nonexistent.crt\nkeyfile /nonexistent.key\n",
                              "certfile"),
                             ("address not on this host", "listener {port} 192.0.2.1\n", "192.0.2.1")):
        p = os.path.join(d, "bad.conf")
        with open(p, "w") as f:
            f.write(text.replace("{port}", str(port)))
        r = subprocess.run([o.VIGIL, "-c", p], capture_output=True, text=True, timeout=10)
        err = r.stderr.strip()
        check(r.returncode != 0 and ("%s:1: listener %d: " % (p, port)) in err and word in err,
              "%s: exit %d, %r" % (what, r.returncode, err[-150:]))
    inc = os.path.join(d, "conf.d")
    os.mkdir(inc)
    with open(os.path.join(inc, "10-bad.conf"), "w") as f:
        f.write("# ok\nlistener %d\nmax_qos 7\n" % port)
    p = os.path.join(d, "main.conf")
    with open(p, "w") as f:
        f.write("include_dir %s\n" % inc)
    r = subprocess.run([o.VIGIL, "-c", p], capture_output=True, text=True, timeout=10)
    check(r.returncode != 0 and "%s:3: " % os.path.join(inc, "10-bad.conf") in r.stderr,
          "include_dir: the included file and its line are named: %r" % r.stderr.strip()[-150:])
    o.rm(d)


def test_install():
    print("make install DESTDIR=... PREFIX=/usr:")
    if shutil.which("make") is None:
        print("SKIP install: no make")
        return
    dest = o.tmpdir("install")
    os.chmod(dest, 0o755)
    env = dict(os.environ)
    env.pop("MAKEFLAGS", None)
    r = subprocess.run(["make", "-s", "--no-print-directory", "install", "DESTDIR=" + dest, "PREFIX=/usr"],
                       cwd=o.REPO, capture_output=True, text=True, timeout=300, env=env)
    check(r.returncode == 0, "make install exits 0 %s" % (r.stderr[-300:] if r.returncode else ""))
    sbin = os.path.join(dest, "usr/sbin/vigil")
    unit = os.path.join(dest, "lib/systemd/system/vigil.service")
    conf = os.path.join(dest, "etc/vigil/vigil.conf")
    example = os.path.join(dest, "usr/share/doc/vigil/vigil.conf.example")
    check(os.access(sbin, os.X_OK), "binary at $(PREFIX)/sbin/vigil, executable")
    check(os.path.isfile(conf) and os.path.isfile(example), "example config at /etc/vigil/vigil.conf and in doc/")
    text = o._read(unit)
    check("ExecStart=/usr/sbin/vigil -c /etc/vigil/vigil.conf" in text and "@SBINDIR@" not in text and "@SYSCONFDIR@" not in text,
          "unit installed with its paths filled in")
    check("Type=notify" in text and "ProtectSystem=strict" in text and "NoNewPrivileges=yes" in text,
          "unit: Type=notify and the hardening options")
    mans = sorted(os.path.basename(x) for x in _glob(os.path.join(o.REPO, "scripts/man"), r".*\.[1-8]$"))
    for man in mans:
        sec = man.rsplit(".", 1)[1]
        check(os.path.isfile(os.path.join(dest, "usr/share/man/man%s" % sec, man)), "man page %s installed" % man)
    if not mans:
        print("       (scripts/man/ has no man pages yet: none to install)")
    # Installing again keeps an edited configuration
    with open(conf, "a") as f:
        f.write("# edited\n")
    subprocess.run(["make", "-s", "--no-print-directory", "install", "DESTDIR=" + dest, "PREFIX=/usr"],
                   cwd=o.REPO, capture_output=True, text=True, timeout=300, env=env)
    check(o._read(conf).endswith("# edited\n"), "a second make install keeps the existing vigil.conf")
    if shutil.which("systemd-analyze"):
        # Verify against the installed tree; the binary path inside the unit must exist there.
        r = subprocess.run(["systemd-analyze", "verify", "--root=" + dest, "/lib/systemd/system/vigil.service"],
                           capture_output=True, text=True, timeout=60)
        # Not the unit's fault: /bin/kill is not in the DESTDIR tree, and `man` looks for the
        # Documentation= pages on the host, not under --root.
        problems = [l for l in (r.stdout + r.stderr).splitlines()
                    if l.strip() and "vigil.service" in l and "Failed to create vigil.service" not in l
                    and "Command /bin/kill is not executable" not in l
                    and "Command 'man " not in l]
        check(not problems, "systemd-analyze verify --root=DESTDIR: no problem with the unit's keys and "
              "values %s" % problems)
    # The installed binary with the installed example configuration (port and state dir made local)
    port = o.free_port()
    state = os.path.join(dest, "state")
    os.mkdir(state)
    os.chmod(state, 0o777)
    text = o._read(conf)
    text = re.sub(r"(?m)^listener 1883$", "listener %d 127.0.0.1" % port, text)
    text = re.sub(r"(?m)^persistence_location .*$", "persistence_location %s/" % state, text)
    run = os.path.join(dest, "run.conf")
    with open(run, "w") as f:
        f.write(text)
    os.chmod(run, 0o644)
    log = os.path.join(dest, "run.log")
    with open(log, "wb") as lf:
        proc = subprocess.Popen([sbin, "-c", run], stdout=lf, stderr=lf, stdin=subprocess.DEVNULL)
    up = o.wait_for(lambda: o.listening(port) or proc.poll() is not None, 10) and o.listening(port)
    check(up, "the installed binary starts with the installed config %s" % ("" if up else o._read(log)[-300:]))
    if up:
        c = o.Client(port)
        rc = c.connect("install-check")
        c.close()
        check(rc == 5, "it applies that config: an anonymous client is refused (CONNACK %s)" % rc)
        check(os.path.exists(os.path.join(state, "vigil.db")), "persistence true: vigil.db in the state dir")
    proc.send_signal(signal.SIGTERM)
    try:
        rc = proc.wait(timeout=5)
    except subprocess.TimeoutExpired:
        proc.kill()
        rc = None
    check(rc == 0, "it exits 0 on SIGTERM")
    o.rm(dest)


def _glob(d, pat):
    try:
        return [os.path.join(d, x) for x in os.listdir(d) if re.match(pat, x)]
    except OSError:
        return []


if __name__ == "__main__":
    test_daemon_pid_user()
    test_config_errors()
    test_install()
    o.finish("tests/ops/test_service.py")
