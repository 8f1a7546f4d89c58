#!/usr/bin/python3
"""include_dir naming a directory with no *.conf file (empty, or other files only): vigil starts,
serves, and under the sanitizer build reports nothing. (UBSan once reported "null pointer passed as
argument 1" at broker/config_kw.h: qsort was handed the NULL list of an include_dir without .conf
files; this test fails on that binary when run with VIGIL_BIN=build-san/vigil, as `make san` does.)
Also `vigil --check` on the same configuration (it parses it the same way).
"""
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import opslib as o  # noqa: E402
from opslib import check  # noqa: E402


def main():
    d = o.tmpdir("incdir")
    for sub, files in (("empty", ()), ("others", ("README", "x.conf.bak", "y.cnf"))):
        inc = os.path.join(d, sub)
        os.mkdir(inc)
        for name in files:
            with open(os.path.join(inc, name), "w") as f:
                f.write("listener 1\n")  # would be refused if it were read
        port = o.free_port()
        conf = "listener %d 127.0.0.1\nallow_anonymous true\ninclude_dir %s\n" % (port, inc)
        try:
            b = o.Proc(o.VIGIL, d, conf, port)
        except RuntimeError as e:
            check(False, "include_dir with no .conf file (%s): broker starts (%s)" % (sub, e))
            continue
        c = o.Client(port)
        check(c.connect("inc-%s" % sub) == 0, "include_dir with no .conf file (%s): broker serves" % sub)
        c.close()
        r = subprocess.run([o.VIGIL, "--check", "-c", b.conf, "--timeout", "2000"], stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, timeout=15)
        out = r.stdout.decode("utf-8", "replace")
        check(r.returncode == 0 and "OK" in out and not any(s in out for s in o.SAN_MARKERS),
              "vigil --check on it: exit %d: %s" % (r.returncode, out.strip()[-300:]))
        b.stop()
        text = b.stderr() + b.stdout()
        check(not any(s in text for s in o.SAN_MARKERS), "no sanitizer report (%s)" % sub)
        os.remove(b.conf)
    o.finish("test_include_dir_empty")


if __name__ == "__main__":
    main()
