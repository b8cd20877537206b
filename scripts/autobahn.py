#!/usr/bin/env python3
"""Autobahn|Testsuite conformance runner for crest (python3, stdlib only).

Server testee (wstest drives the fuzzing *client* against our echo server):

    scripts/autobahn.py fuzzingclient --agent crest --port 9001 \
        [--cases '*'] [--exclude '12.*,13.*'] [--outdir reports/server] \
        -- target/release/examples/echo_server 127.0.0.1:9001

Client testee (wstest runs the fuzzing *server*, our client connects to it):

    scripts/autobahn.py fuzzingserver --agent crest --port 9001 \
        [--cases '*'] [--exclude '12.*,13.*'] [--outdir reports/client] \
        -- target/release/examples/autobahn_client ws://127.0.0.1:9001 crest

Pass bar: every selected case is reported for the agent with behavior and
behaviorClose in {OK, INFORMATIONAL} (UNIMPLEMENTED too with
--allow-unimplemented). Exit status: 0 pass, 1 conformance failure,
2 harness/setup error or timeout.

wstest comes from $CREST_WSTEST, else from scripts/autobahn-setup.sh.
Every child is started in its own session (process group id == its PID) and is
stopped by that id (SIGTERM, then SIGKILL after a grace period), so wrapper
commands such as `cargo run` do not leave orphans. Every wait is bounded.
"""

import argparse
import base64
import collections
import json
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
import urllib.parse

HOST = "127.0.0.1"
PASS = {"OK", "INFORMATIONAL"}
SCRIPTS = os.path.dirname(os.path.abspath(__file__))
T0 = time.monotonic()


def log(msg):
    print("autobahn: %s" % msg, flush=True)


class HarnessError(Exception):
    """Setup/startup/timeout problem (exit 2), as opposed to a conformance failure."""


def _on_sigterm(signum, _frame):
    # Turn SIGTERM/SIGHUP into an exception so the finally blocks stop children.
    raise KeyboardInterrupt("signal %d" % signum)


# --------------------------------------------------------------------------
# processes


class Child:
    """A child process in its own session, stopped by its PID/process group."""

    def __init__(self, name, argv, logpath, cwd=None):
        self.name = name
        self.argv = argv
        self.logpath = logpath
        self.logfile = open(logpath, "wb")
        try:
            self.proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=self.logfile,
                stderr=subprocess.STDOUT,
                cwd=cwd,
                start_new_session=True,
            )
        except OSError as e:
            self.logfile.close()
            raise HarnessError("cannot start %s %r: %s" % (name, argv, e))
        self.pid = self.proc.pid
        log("started %s (pid %d): %s   [log: %s]" % (name, self.pid, " ".join(argv), logpath))

    def alive(self):
        return self.proc.poll() is None

    def _group_alive(self):
        try:
            os.killpg(self.pid, 0)
            return True
        except ProcessLookupError:
            return False
        except PermissionError:
            return True

    def _signal(self, sig):
        try:
            os.killpg(self.pid, sig)  # the group we created: pgid == our child's pid
        except ProcessLookupError:
            pass

    def stop(self, grace=5.0):
        """SIGTERM the child's process group, SIGKILL after `grace` seconds. Bounded."""
        if self.alive() or self._group_alive():
            self._signal(signal.SIGTERM)
            deadline = time.monotonic() + grace
            while time.monotonic() < deadline and (self.alive() or self._group_alive()):
                time.sleep(0.05)
            if self.alive() or self._group_alive():
                log("%s (pid %d) did not exit within %.0fs of SIGTERM; sending SIGKILL" % (self.name, self.pid, grace))
                self._signal(signal.SIGKILL)
                try:
                    self.proc.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    log("WARNING: %s (pid %d) still not reaped after SIGKILL" % (self.name, self.pid))
        self.proc.poll()
        self.logfile.close()
        return self.proc.returncode

    def wait(self, timeout, progress=None, every=30.0):
        """Wait for exit; returns the exit code, or None on timeout. Bounded."""
        deadline = time.monotonic() + timeout
        next_progress = time.monotonic() + every
        while True:
            rc = self.proc.poll()
            if rc is not None:
                return rc
            now = time.monotonic()
            if now >= deadline:
                return None
            if progress and now >= next_progress:
                progress()
                next_progress = now + every
            time.sleep(min(0.2, max(0.0, deadline - now)))

    def tail(self, n=12):
        """Last lines of the child's output, for error messages."""
        try:
            self.logfile.flush()
            with open(self.logpath, "rb") as f:
                lines = f.read().decode("utf-8", "replace").splitlines()
        except OSError:
            lines = []
        if not lines:
            return "    (%s wrote no output; log %s)" % (self.name, self.logpath)
        return "    (last lines of %s)\n" % self.logpath + "\n".join("    | " + l for l in lines[-n:])


def port_open(port, timeout=0.5):
    try:
        with socket.create_connection((HOST, port), timeout=timeout):
            return True
    except OSError:
        return False


def wait_for_port(port, child, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not child.alive():
            raise HarnessError(
                "%s (pid %d) exited with code %s before %s:%d accepted connections\n%s"
                % (child.name, child.pid, child.proc.returncode, HOST, port, child.tail())
            )
        if port_open(port):
            log("%s:%d accepts connections after %.1fs" % (HOST, port, timeout - (deadline - time.monotonic())))
            return
        time.sleep(0.1)
    raise HarnessError("%s:%d did not accept connections within %.0fs\n%s" % (HOST, port, timeout, child.tail()))


# --------------------------------------------------------------------------
# wstest


def find_wstest(setup_timeout):
    env = os.environ.get("CREST_WSTEST")
    if env:
        if not (os.path.isfile(env) and os.access(env, os.X_OK)):
            raise HarnessError("CREST_WSTEST=%s is not an executable file" % env)
        return env
    setup = os.path.join(SCRIPTS, "autobahn-setup.sh")
    try:
        out = subprocess.run(
            ["bash", setup], stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, timeout=setup_timeout, check=True
        ).stdout.decode()
    except subprocess.TimeoutExpired:
        raise HarnessError("%s did not finish within %ds" % (setup, setup_timeout))
    except subprocess.CalledProcessError as e:
        raise HarnessError("%s failed with exit code %d" % (setup, e.returncode))
    lines = [l for l in out.splitlines() if l.strip()]
    if not lines or not os.access(lines[-1], os.X_OK):
        raise HarnessError("%s printed no usable wstest path: %r" % (setup, out))
    return lines[-1]


def wstest_python(wstest):
    """The Python 2.7 interpreter wstest runs with (from its shebang)."""
    cand = os.path.join(os.path.dirname(wstest), "python")
    try:
        with open(wstest, "rb") as f:
            first = f.readline().decode("utf-8", "replace").strip()
        if first.startswith("#!"):
            parts = first[2:].split()
            if parts and os.path.basename(parts[0]) == "env" and len(parts) > 1:
                parts = [shutil.which(parts[1]) or parts[1]]
            if parts and os.access(parts[0], os.X_OK):
                return parts[0]
    except OSError:
        pass
    return cand


RESOLVE_CASES = r"""
import json, sys
from autobahntestsuite.case import Cases, CaseSetname, CaseBasename, CaseCategories, CaseSubCategories
from autobahntestsuite.caseset import CaseSet
cs = CaseSet(CaseSetname, CaseBasename, Cases, CaseCategories, CaseSubCategories)
sys.stdout.write(json.dumps(cs.parseSpecCases(json.load(open(sys.argv[1])))))
"""


def resolve_cases(wstest, specpath):
    """The exact case ids wstest will run for this spec (same code wstest uses)."""
    py = wstest_python(wstest)
    try:
        r = subprocess.run(
            [py, "-c", RESOLVE_CASES, specpath],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            timeout=60,
        )
    except (OSError, subprocess.TimeoutExpired) as e:
        raise HarnessError("cannot resolve case list with %s: %s" % (py, e))
    if r.returncode != 0:
        raise HarnessError("cannot resolve case list with %s:\n%s" % (py, r.stderr.decode("utf-8", "replace")))
    cases = json.loads(r.stdout.decode())
    if not cases:
        raise HarnessError("case patterns select no cases (check --cases/--exclude)")
    return cases


def split_patterns(values):
    out = []
    for v in values or []:
        out.extend(p.strip() for p in v.split(",") if p.strip())
    return out


def case_key(cid):
    return tuple(int(x) if x.isdigit() else x for x in cid.split("."))


# --------------------------------------------------------------------------
# minimal WebSocket client (only for /updateReports when the testee skipped it)


def ws_update_reports(port, agent, timeout=60.0):
    path = "/updateReports?agent=" + urllib.parse.quote(agent, safe="")
    key = base64.b64encode(os.urandom(16)).decode()
    deadline = time.monotonic() + timeout
    with socket.create_connection((HOST, port), timeout=10) as s:
        s.settimeout(5)
        s.sendall(
            (
                "GET %s HTTP/1.1\r\nHost: %s:%d\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n" % (path, HOST, port, key)
            ).encode()
        )
        buf = b""
        while b"\r\n\r\n" not in buf:
            if time.monotonic() > deadline:
                raise HarnessError("updateReports: handshake timed out")
            chunk = s.recv(4096)
            if not chunk:
                raise HarnessError("updateReports: connection closed during handshake")
            buf += chunk
        head, buf = buf.split(b"\r\n\r\n", 1)
        if b" 101 " not in head.split(b"\r\n", 1)[0]:
            raise HarnessError("updateReports: handshake refused: %r" % head[:200])
        # Read frames until the server's close frame (sent once reports are written).
        while time.monotonic() < deadline:
            while len(buf) >= 2:
                b0, b1 = buf[0], buf[1]
                ln, off = b1 & 0x7F, 2
                if ln == 126:
                    if len(buf) < 4:
                        break
                    ln, off = struct.unpack("!H", buf[2:4])[0], 4
                elif ln == 127:
                    if len(buf) < 10:
                        break
                    ln, off = struct.unpack("!Q", buf[2:10])[0], 10
                if len(buf) < off + ln:
                    break
                payload, buf = buf[off : off + ln], buf[off + ln :]
                if b0 & 0x0F == 0x8:
                    mask = os.urandom(4)
                    body = bytes(c ^ mask[i % 4] for i, c in enumerate(payload[:2]))
                    try:
                        s.sendall(bytes([0x88, 0x80 | len(body)]) + mask + body)
                    except OSError:
                        pass
                    return
            try:
                chunk = s.recv(4096)
            except socket.timeout:
                continue
            if not chunk:
                return
            buf += chunk
        raise HarnessError("updateReports: no close frame within %.0fs" % timeout)


# --------------------------------------------------------------------------
# results


def shorten(s, n=150):
    s = " ".join(str(s).split())
    return s if len(s) <= n else s[: n - 3] + "..."


def check_results(outdir, agent, expected, allow_unimplemented):
    """Print the summary; return (passed, failed) case counts (missing count as failed)."""
    ok_set = PASS | ({"UNIMPLEMENTED"} if allow_unimplemented else set())
    index_path = os.path.join(outdir, "index.json")
    if not os.path.isfile(index_path):
        log("FAIL: no %s was written" % index_path)
        return 0, len(expected)
    with open(index_path) as f:
        index = json.load(f)
    if agent not in index:
        log("FAIL: agent %r absent from %s (agents present: %s)" % (agent, index_path, sorted(index) or "none"))
        return 0, len(expected)
    results = index[agent]

    beh = collections.Counter(r.get("behavior") for r in results.values())
    behc = collections.Counter(r.get("behaviorClose") for r in results.values())
    fmt = lambda c: ", ".join("%s %d" % kv for kv in sorted(c.items(), key=lambda kv: (-kv[1], str(kv[0]))))
    missing = sorted(set(expected) - set(results), key=case_key)
    extra = sorted(set(results) - set(expected), key=case_key)
    log("agent %r: %d cases expected, %d reported" % (agent, len(expected), len(results)))
    log("  behavior:      %s" % fmt(beh))
    log("  behaviorClose: %s" % fmt(behc))

    # Case durations (ms) per top-level group, to see what dominates.
    groups = collections.OrderedDict()
    for cid in sorted(results, key=case_key):
        g = cid.split(".")[0] + ".*"
        groups[g] = groups.get(g, 0) + (results[cid].get("duration") or 0)
    total_ms = sum(groups.values())
    log("  case time:     %.1fs total; %s" % (total_ms / 1000.0, ", ".join("%s %.1fs" % (g, ms / 1000.0) for g, ms in groups.items())))
    slow = sorted(results.items(), key=lambda kv: -(kv[1].get("duration") or 0))[:5]
    log("  slowest:       %s" % ", ".join("%s %.1fs" % (cid, (r.get("duration") or 0) / 1000.0) for cid, r in slow))

    bad = []
    for cid in sorted(results, key=case_key):
        if cid not in expected:
            continue
        r = results[cid]
        if r.get("behavior") in ok_set and r.get("behaviorClose") in ok_set:
            continue
        hint = ""
        rf = r.get("reportfile")
        if rf:
            try:
                with open(os.path.join(outdir, rf)) as f:
                    detail = json.load(f)
                parts = []
                if r.get("behavior") not in ok_set:
                    parts.append("result: %s expected(OK): %s received: %s" % (
                        shorten(detail.get("result", "")),
                        shorten(json.dumps((detail.get("expected") or {}).get("OK")), 80),
                        shorten(json.dumps(detail.get("received")), 80)))
                if r.get("behaviorClose") not in ok_set:
                    parts.append("resultClose: %s (remoteCloseCode=%s, expected %s)" % (
                        shorten(detail.get("resultClose", "")), detail.get("remoteCloseCode"),
                        (detail.get("expectedClose") or {}).get("closeCode")))
                hint = " | ".join(parts)
            except (OSError, ValueError) as e:
                hint = "(cannot read %s: %s)" % (rf, e)
        bad.append((cid, r.get("behavior"), r.get("behaviorClose"), hint))
    if bad:
        log("  non-passing (%d):" % len(bad))
        for cid, b, bc, hint in bad:
            log("    %-8s %s/%s  %s" % (cid, b, bc, hint))
    if missing:
        log("  missing (%d): %s" % (len(missing), ", ".join(missing[:60]) + (" ..." if len(missing) > 60 else "")))
    if extra:
        log("  (ignored %d reported cases outside the selection: %s)" % (len(extra), ", ".join(extra[:10])))
    failed = len(bad) + len(missing)
    return len(expected) - failed, failed


# --------------------------------------------------------------------------
# modes


def run_fuzzingclient(a, wstest, specpath, workdir):
    """wstest is the client; the testee command is our server."""
    testee = Child("testee server", a.command, os.path.join(a.outdir, "testee.log"))
    ws = None
    try:
        wait_for_port(a.port, testee, a.startup_timeout)
        t = time.monotonic()
        ws = Child("wstest fuzzingclient", [wstest, "-m", "fuzzingclient", "-s", specpath],
                   os.path.join(a.outdir, "wstest.log"), cwd=workdir)
        rc = ws.wait(a.timeout, progress=lambda: progress(ws, testee))
        log("wstest fuzzingclient %s after %.1fs" % ("timed out" if rc is None else "exited %s" % rc, time.monotonic() - t))
        if rc is None:
            raise HarnessError("wstest did not finish within %ds\n%s" % (a.timeout, ws.tail()))
        if not testee.alive():
            log("WARNING: testee server exited early with code %s\n%s" % (testee.proc.returncode, testee.tail()))
        if rc != 0:
            log("WARNING: wstest exited with %s\n%s" % (rc, ws.tail()))
    finally:
        if ws is not None:
            ws.stop(a.grace)
        testee.stop(a.grace)


def run_fuzzingserver(a, wstest, specpath, workdir):
    """wstest is the server; the testee command is our client."""
    # -u 0: no embedded web server on 8080.
    ws = Child("wstest fuzzingserver", [wstest, "-m", "fuzzingserver", "-s", specpath, "-u", "0"],
               os.path.join(a.outdir, "wstest.log"), cwd=workdir)
    testee = None
    try:
        wait_for_port(a.port, ws, a.startup_timeout)
        t = time.monotonic()
        testee = Child("testee client", a.command, os.path.join(a.outdir, "testee.log"))
        rc = testee.wait(a.timeout, progress=lambda: progress(ws, testee))
        log("testee client %s after %.1fs" % ("timed out" if rc is None else "exited %s" % rc, time.monotonic() - t))
        if rc is None:
            raise HarnessError("testee client did not finish within %ds\n%s" % (a.timeout, testee.tail()))
        if rc != 0:
            log("WARNING: testee client exited with %s\n%s" % (rc, testee.tail()))
        if not ws.alive():
            raise HarnessError("wstest fuzzingserver died (exit %s)\n%s" % (ws.proc.returncode, ws.tail()))
        index_path = os.path.join(a.outdir, "index.json")
        agents = {}
        if os.path.isfile(index_path):
            with open(index_path) as f:
                agents = json.load(f)
        if a.agent not in agents:
            log("WARNING: testee client did not request /updateReports?agent=%s; requesting it now" % a.agent)
            ws_update_reports(a.port, a.agent)
    finally:
        if testee is not None:
            testee.stop(a.grace)
        ws.stop(a.grace)


def progress(ws, testee):
    try:
        with open(ws.logpath, "rb") as f:
            ids = re.findall(rb"Running test case ID (\S+)", f.read())
        last = ids[-1].decode() if ids else "-"
    except OSError:
        ids, last = [], "-"
    log("... %.0fs: %d cases started, last %s (testee %s)"
        % (time.monotonic() - T0, len(ids), last, "alive" if testee.alive() else "exited"))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("mode", choices=["fuzzingclient", "fuzzingserver"],
                    help="wstest's role: fuzzingclient tests a server testee, fuzzingserver tests a client testee")
    ap.add_argument("--agent", required=True, help="agent name in the reports (client mode: must match the testee's agent=)")
    ap.add_argument("--port", type=int, default=9001, help="port on 127.0.0.1 (default 9001)")
    ap.add_argument("--cases", action="append", help="comma-separated case patterns (default '*'; repeatable)")
    ap.add_argument("--exclude", action="append", help="comma-separated case patterns to skip, e.g. '12.*,13.*'")
    ap.add_argument("--outdir", help="report dir (default reports/server or reports/client)")
    ap.add_argument("--allow-unimplemented", action="store_true", help="accept UNIMPLEMENTED (e.g. no permessage-deflate)")
    ap.add_argument("--timeout", type=int, default=900, help="bound on the test run, seconds (default 900)")
    ap.add_argument("--startup-timeout", type=int, default=120, help="bound on waiting for the port, seconds (default 120)")
    ap.add_argument("--setup-timeout", type=int, default=900, help="bound on autobahn-setup.sh, seconds (default 900)")
    ap.add_argument("--grace", type=float, default=5.0, help="seconds between SIGTERM and SIGKILL (default 5)")
    ap.epilog = "The testee command follows a literal '--'."
    argv = sys.argv[1:]
    if "--" not in argv:
        ap.parse_args(argv)  # handles --help
        ap.error("missing '-- <testee command ...>'")
    cut = argv.index("--")
    a = ap.parse_args(argv[:cut])
    a.command = argv[cut + 1 :]
    if not a.command:
        ap.error("missing testee command after --")
    if not 0 < a.port < 65536:
        ap.error("bad --port")
    a.outdir = os.path.abspath(a.outdir or ("reports/server" if a.mode == "fuzzingclient" else "reports/client"))

    signal.signal(signal.SIGTERM, _on_sigterm)
    signal.signal(signal.SIGHUP, _on_sigterm)

    cases = split_patterns(a.cases) or ["*"]
    exclude = split_patterns(a.exclude)
    workdir = tempfile.mkdtemp(prefix="crest-autobahn-")
    rc = 2
    try:
        wstest = find_wstest(a.setup_timeout)
        log("wstest: %s" % wstest)
        os.makedirs(a.outdir, exist_ok=True)
        index_path = os.path.join(a.outdir, "index.json")
        if os.path.exists(index_path):
            os.remove(index_path)  # never judge a stale report
        if port_open(a.port):
            raise HarnessError("%s:%d is already in use before the run; refusing to test whatever listens there" % (HOST, a.port))

        spec = {"outdir": a.outdir, "cases": cases, "exclude-cases": exclude, "exclude-agent-cases": {}}
        if a.mode == "fuzzingclient":
            spec["options"] = {"failByDrop": False}
            spec["servers"] = [{"agent": a.agent, "url": "ws://%s:%d" % (HOST, a.port)}]
        else:
            spec["url"] = "ws://%s:%d" % (HOST, a.port)
        specpath = os.path.join(workdir, "spec.json")
        with open(specpath, "w") as f:
            json.dump(spec, f, indent=2)
        expected = resolve_cases(wstest, specpath)
        log("%s: agent %r, %d cases (cases=%s exclude=%s), reports in %s"
            % (a.mode, a.agent, len(expected), ",".join(cases), ",".join(exclude) or "-", a.outdir))

        t = time.monotonic()
        (run_fuzzingclient if a.mode == "fuzzingclient" else run_fuzzingserver)(a, wstest, specpath, workdir)
        run_s = time.monotonic() - t
        passed, failed = check_results(a.outdir, a.agent, expected, a.allow_unimplemented)
        log("wall time: %.1fs run, %.1fs total" % (run_s, time.monotonic() - T0))
        log("report: %s" % os.path.join(a.outdir, "index.html"))
        rc = 0 if failed == 0 else 1
        log("RESULT: %s" % ("PASS" if rc == 0 else "FAIL"))
        print("autobahn: %d passed, %d failed" % (passed, failed), flush=True)
    except HarnessError as e:
        log("ERROR: %s" % e)
        log("wall time: %.1fs total" % (time.monotonic() - T0))
        rc = 2
    except KeyboardInterrupt as e:
        log("interrupted (%s); children stopped" % (e or "SIGINT"))
        rc = 130
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    return rc


if __name__ == "__main__":
    sys.exit(main())
