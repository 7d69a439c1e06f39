#!/usr/bin/env python3
"""chaos: real bypaxd processes under seeded faults, their histories checked.

Each run starts a cluster of 3 or 5 bypaxd processes on this machine, as
docs/deploy.md does by hand: a net_memif link between every pair of
replicas and a net_tap port per replica for kernel clients. A history-
recording client (bypax-chaos-client, on libbypax) drives get/put/cas/del
on a few hot keys and write-once keys from several sessions while the
run's seed picks faults:

  kill   SIGKILL, then a restart without --bootstrap (state lost)
  term   SIGTERM, then a restart without --bootstrap
  pause  SIGSTOP for a while, then SIGCONT
  isolate / cut-control / cut-data
         `bypaxctl fault isolate MS [both|control|data]`
  link   `bypaxctl fault link M MS`: the memif link to a peer vanishes
  silent `bypaxctl fault silent M 30000`: the link to a peer stays up at
         both ends but carries nothing until bypaxd finds it silent and
         restarts its port (the way a restarted memif server broke)
  hog    busy processes competing for the two cores

each aimed at the leader or at a follower, never more than a minority
down at once (a replica recovering its state counts as down). After the
faults: every fault healed, the cluster converged, the client reads every
key back (every acknowledged write-once put must be there), the history
goes through the linearizability checker (bypax-chaos-check), the
replicas' snapshots are compared byte for byte, and for each fault the
longest gap between acknowledgements is measured.

One summary line per run and one for the whole:
  chaos: runs=R ops=N faults=F violations=V lost_writes=L gap_ms p50=.. p99=.. max=..

Needs root and /dev/net/tun (exit 77 otherwise: a skip for meson).
Exit status: 0 all runs clean, 1 a violation, a lost write, a replica
that did not converge or a harness failure, 2 usage, 77 skipped.
"""

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time

# The strict logfmt parser of bypaxd's event lines, shared with the tests.
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                "..", "lib"))
import logfmt  # noqa: E402

FAULTS = ["kill", "term", "pause", "isolate", "cut-control", "cut-data",
          "link", "silent", "hog"]
# A fault that takes its victim out of the majority until it heals.
SILENT_FAULT_MS = 30000
SILENT_REPAIR_S = 12
TAKES_DOWN = {"kill", "term", "pause", "isolate", "cut-control", "cut-data"}


def log(msg):
    print(f"chaos: {msg}", flush=True)


def mono_ns():
    return time.monotonic_ns()  # CLOCK_MONOTONIC, as the tools use


class HarnessError(Exception):
    pass


class Cluster:
    """N bypaxd processes, memif between each pair, a tap port each."""

    def __init__(self, build, n, workdir, rng, kv_capacity):
        self.build = build
        self.n = n
        self.dir = workdir
        self.tag = rng.randrange(1000, 9999)
        # Other tests on this machine draw their ports too (memif_lib.sh
        # from $RANDOM): a tag whose ports are taken now would fail the run
        # at start ("control address ... is in use", soak run 37), so the
        # next one is tried. The seed still decides, unless ports collide.
        while not self._ports_free(n):
            self.tag = 1000 + (self.tag - 1000 + 7919) % 8999
        self.net = 20 + self.tag % 200
        self.cluster_id = rng.randrange(100, 60000)
        self.conf = os.path.join(workdir, "bypax.conf")
        # The admin sockets: bypaxd's default and where bypaxctl looks,
        # here this run's directory (not /run/bypax: runs side by side).
        os.environ["BYPAX_RUN_DIR"] = workdir
        self.procs = [None] * n
        self.paused = [False] * n
        self.starts = [0] * n
        self._write_config(kv_capacity)

    def _write_config(self, kv_capacity):
        lines = ["[cluster]", f"id = {self.cluster_id}",
                 f"sm_args = capacity={kv_capacity}"]
        for i in range(self.n):
            lines += [f"[member{i}]",
                      "mac = 02:00:00:00:%02x:%02x" % (self.tag % 256, i),
                      f"ip = 10.{self.net}.{i}.1", "port = 9000",
                      f"control = 127.0.0.1:{20000 + self.tag + i * 7}",
                      f"metrics = 127.0.0.1:{self.metrics_port(i)}"]
        with open(self.conf, "w") as f:
            f.write("\n".join(lines) + "\n")

    def _ports_free(self, n):
        """Every control (UDP) and metrics (TCP) port of this tag unbound."""
        import socket
        for i in range(n):
            for kind, port in ((socket.SOCK_DGRAM, 20000 + self.tag + i * 7),
                               (socket.SOCK_STREAM, self.metrics_port(i))):
                with socket.socket(socket.AF_INET, kind) as s:
                    try:
                        s.bind(("127.0.0.1", port))
                    except OSError:
                        return False
        return True

    def tap(self, i):
        return f"bpx{self.tag}c{i}"

    def metrics_port(self, i):
        """Below the control ports (20000 + tag + 7i): never the same."""
        return 10000 + self.tag + i * 7

    def diagnose(self):
        """What each live replica says of itself, kept beside its log when
        a run fails: its status, and its /metrics page (drops by reason,
        tx_full, links, recovery), so that a failure that does not repeat
        can still be read afterwards."""
        import urllib.request
        for i in range(self.n):
            if not self.alive(i) or self.paused[i]:
                continue
            rc, out = self.ctl(i, "--json", "status", timeout=2)
            with open(os.path.join(self.dir, f"diag-r{i}-status.json"),
                      "w") as f:
                f.write(out)
            url = f"http://127.0.0.1:{self.metrics_port(i)}/metrics"
            try:
                with urllib.request.urlopen(url, timeout=2) as page:
                    text = page.read().decode()
            except OSError as e:
                text = f"# {url}: {e}\n"
            with open(os.path.join(self.dir, f"diag-r{i}.metrics"), "w") as f:
                f.write(text)
            with open(os.path.join(self.dir, f"diag-r{i}-ports.json"),
                      "w") as f:
                json.dump(self.port_telemetry(i), f, indent=1)

    def port_telemetry(self, i):
        """Each port's link and counters as the PMD sees them (DPDK's own
        telemetry: /ethdev/link_status and /ethdev/stats), twice, 1 s
        apart: a memif link that one side calls up and the other down, or
        counters that stand still, shows here and nowhere else."""
        import socket
        path = (f"/var/run/dpdk/bpxc{self.tag}-{i}/dpdk_telemetry.v2")
        out = {"socket": path, "samples": []}
        try:
            s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
            s.settimeout(2)
            s.connect(path)
            s.recv(4096)
            for _ in range(2):
                sample = {}
                for p in range(self.n):  # n - 1 memif ports and the tap
                    for cmd in ("/ethdev/link_status", "/ethdev/stats"):
                        s.send(f"{cmd},{p}".encode())
                        sample[f"{cmd},{p}"] = json.loads(s.recv(65536))
                out["samples"].append(sample)
                time.sleep(1)
            s.close()
        except (OSError, ValueError) as e:
            out["error"] = str(e)
        return out

    def log_path(self, i):
        return os.path.join(self.dir, f"r{i}.log")

    def start(self, i, bootstrap):
        vdevs, routes, k = [], [], 0
        for j in range(self.n):
            if j == i:
                continue
            a, b = min(i, j), max(i, j)
            sock = os.path.join(self.dir, f"{a}-{b}.sock")
            role = "server" if i == a else "client"
            if role == "server" and os.path.exists(sock):
                os.unlink(sock)  # left behind by a killed server
            vdevs.append(f"--vdev=net_memif{k},role={role},socket={sock},"
                         "socket-abstract=no")
            routes += ["--route", f"{j}={k}"]
            k += 1
        vdevs.append(f"--vdev=net_tap0,iface={self.tap(i)}")
        cmd = [os.path.join(self.build, "dataplane", "bypaxd"), "-l", "0-1",
               "--no-huge", "-m", "256", "--no-pci", "--no-shconf",
               "--file-prefix", f"bpxc{self.tag}-{i}",
               # the EAL and its drivers quiet, bypax's events (info) not
               "--log-level=*:error", "--log-level=bypax.*:info",
               *vdevs, "--", "--config", self.conf, "--id", str(i), *routes,
               "--client-port", str(k), "--idle-sleep-us", "50",
               "--snapshot-mb", "16", "--stats-interval", "5"]
        if bootstrap:
            cmd.append("--bootstrap")
        out = open(self.log_path(i), "a")
        out.write(f"==== chaos: start {'--bootstrap' if bootstrap else ''} "
                  f"mono={mono_ns() / 1e9:.6f}\n")
        out.flush()
        self.procs[i] = subprocess.Popen(cmd, stdout=out,
                                         stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL)
        self.paused[i] = False
        self.starts[i] += 1
        self._address_tap(i)

    def _address_tap(self, i):
        """The tap appears once the port starts; give it the kernel side."""
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if subprocess.run(["ip", "link", "show", self.tap(i)],
                              capture_output=True).returncode == 0:
                break
            if self.procs[i].poll() is not None:
                raise HarnessError(f"bypaxd {i} exited at start "
                                   f"(rc {self.procs[i].returncode}); "
                                   f"see {self.log_path(i)}")
            time.sleep(0.05)
        subprocess.run(["ip", "addr", "add", f"10.{self.net}.{i}.254/24",
                        "dev", self.tap(i)], capture_output=True)
        subprocess.run(["ip", "link", "set", self.tap(i), "up"],
                       capture_output=True)

    def alive(self, i):
        return self.procs[i] is not None and self.procs[i].poll() is None

    def send_signal(self, i, sig):
        if self.alive(i):
            os.kill(self.procs[i].pid, sig)
        if sig == signal.SIGSTOP:
            self.paused[i] = True
        elif sig == signal.SIGCONT:
            self.paused[i] = False

    def stop(self, i, sig=signal.SIGTERM, wait_s=20):
        """Stops replica i; returns how long it took to exit (s)."""
        p = self.procs[i]
        if p is None:
            return 0.0
        t0 = time.monotonic()
        if p.poll() is None:
            if self.paused[i]:
                os.kill(p.pid, signal.SIGCONT)
            os.kill(p.pid, sig)
            try:
                p.wait(wait_s)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        self.procs[i] = None
        self.paused[i] = False
        return time.monotonic() - t0

    def ctl(self, i, *args, timeout=3):
        cmd = [os.path.join(self.build, "client", "bypaxctl"), "--config",
               self.conf, "--id", str(i), *args]
        try:
            p = subprocess.run(cmd, capture_output=True, text=True,
                               timeout=timeout)
            return p.returncode, p.stdout + p.stderr
        except subprocess.TimeoutExpired:
            return 124, "timeout"

    def status(self, i):
        """Member i's own row of its status, or None."""
        if not self.alive(i) or self.paused[i]:
            return None
        rc, out = self.ctl(i, "--json", "status", timeout=2)
        if rc != 0:
            return None
        try:
            st = json.loads(out)
        except ValueError:
            return None
        for m in st.get("members", []):
            if m.get("id") == i:
                m["leader"] = st.get("leader", -1)
                return m
        return None

    def leader(self):
        """The member whose consensus leads and whose control plane
        agrees, or -1."""
        for i in range(self.n):
            st = self.status(i)
            if st and st["role"] == "leader" and st["leader"] == i:
                return i
        return -1

    def down(self):
        """Members that do not vote now: stopped, paused or recovering."""
        out = set()
        for i in range(self.n):
            if not self.alive(i) or self.paused[i]:
                out.add(i)
                continue
            st = self.status(i)
            if st is None or st["role"] in ("recovering", "unknown"):
                out.add(i)
        return out

    def converged(self):
        """Every replica voting and applied up to the top commit index."""
        rows = [self.status(i) for i in range(self.n)]
        if any(r is None or r["role"] == "recovering" for r in rows):
            return False
        top = max(r["commit"] for r in rows)
        return all(r["applied"] == top for r in rows) and self.leader() >= 0

    def cleanup(self):
        for i in range(self.n):
            self.stop(i, signal.SIGTERM, wait_s=10)


class Hogs:
    """Busy processes competing for the cores (one per core by default)."""

    def __init__(self):
        self.procs = []

    def start(self, count):
        for _ in range(count):
            self.procs.append(subprocess.Popen(
                [sys.executable, "-c", "while True: pass"]))

    def stop(self):
        for p in self.procs:
            p.kill()
            p.wait()
        self.procs = []


class Run:
    """One seeded run: a cluster, a client, faults, checks."""

    def __init__(self, args, seed, n, workdir):
        self.args = args
        self.seed = seed
        self.n = n
        self.rng = random.Random(seed)
        self.dir = workdir
        self.cluster = Cluster(args.build, n, workdir, self.rng,
                               args.kv_capacity)
        self.hogs = Hogs()
        self.faults = []  # (start_ns, end_ns, name)
        self.leader_changes = 0
        self.failovers_at_start = 0
        self.recovering = set()  # restarted, not voting yet
        self.unexpected_exits = 0
        self.downs = {}   # member -> (heal_at monotonic s, what)
        # Until then a data link is cut (link, silent): nobody is taken
        # down meanwhile. A cut link between two voters plus a third
        # replica down leaves no majority that can talk, which is beyond
        # the fault model (soak run 68: a 9.4 s gap while a silent link
        # awaited its repair and the third member was restarting).
        self.link_cut_until = 0.0
        self.splits = []  # failover phases of leader kills

    # ---- faults ----

    def pick_fault(self):
        kinds = self.args.faults
        kind = self.rng.choice(kinds)
        target = "leader" if self.rng.random() < 0.5 else "follower"
        if self.args.target != "any":
            target = self.args.target
        return kind, target

    def choose_victim(self, target, down):
        """The leader, or a follower, among the members that vote now."""
        up = [i for i in range(self.n) if i not in down]
        leader = self.cluster.leader()
        if target == "leader" and leader in up:
            return leader
        followers = [i for i in up if i != leader]
        return self.rng.choice(followers or up) if up else None

    def inject(self, kind, target):
        """One fault, if the minority rule lets it: a fault that takes its
        victim out needs the down set to stay a minority with it; a link
        cut needs everyone up (a cut between the only voters left would
        take the majority away)."""
        c = self.cluster
        down = c.down() | {v for v in self.downs if v >= 0}
        if kind in TAKES_DOWN and len(down) + 1 > (self.n - 1) // 2:
            return None
        if kind in TAKES_DOWN and time.monotonic() < self.link_cut_until:
            return None
        if kind in ("link", "silent") and down:
            return None
        victim = self.choose_victim(target, down)
        if victim is None:
            return None
        leader = c.leader()
        dur_ms = self.rng.randrange(300, max(301, self.args.fault_ms_max))
        name = f"{kind}-{'leader' if victim == leader else 'follower'}"
        start = mono_ns()
        exit_note = ""
        if kind in ("kill", "term"):
            took = c.stop(victim, signal.SIGKILL if kind == "kill" else
                          signal.SIGTERM)
            exit_note = f" (exited in {took * 1000:.0f} ms)"
            self.downs[victim] = (time.monotonic() + dur_ms / 1000, kind)
        elif kind == "pause":
            c.send_signal(victim, signal.SIGSTOP)
            self.downs[victim] = (time.monotonic() + dur_ms / 1000, kind)
        elif kind in ("isolate", "cut-control", "cut-data"):
            plane = {"isolate": "both", "cut-control": "control",
                     "cut-data": "data"}[kind]
            rc, out = c.ctl(victim, "fault", "isolate", str(dur_ms), plane)
            if rc != 0:
                raise HarnessError(f"fault isolate on {victim}: {out}")
            self.downs[victim] = (time.monotonic() + dur_ms / 1000, kind)
        elif kind == "link":
            peer = self.rng.choice([j for j in range(self.n) if j != victim])
            rc, out = c.ctl(victim, "fault", "link", str(peer), str(dur_ms))
            if rc != 0:
                raise HarnessError(f"fault link on {victim}: {out}")
            self.link_cut_until = time.monotonic() + dur_ms / 1000 + 2
            name = f"link-{'leader' if victim == leader else 'follower'}"
        elif kind == "silent":
            # Long enough that only bypaxd's repair (a port restart within
            # about 8 s) ends it before the run's convergence check.
            dur_ms = SILENT_FAULT_MS
            peer = self.rng.choice([j for j in range(self.n) if j != victim])
            rc, out = c.ctl(victim, "fault", "silent", str(peer), str(dur_ms))
            if rc != 0:
                raise HarnessError(f"fault silent on {victim}: {out}")
            # bypaxd repairs it within 8 s (the server side's limit).
            self.link_cut_until = time.monotonic() + SILENT_REPAIR_S
            name = f"silent-{'leader' if victim == leader else 'follower'}"
        elif kind == "hog":
            self.hogs.start(self.args.hog_procs)
            self.downs[-1] = (time.monotonic() + dur_ms / 1000, kind)
            name = "hog"
        self.faults.append([start, None, name, victim])
        log(f"  fault {name} on {victim} for {dur_ms} ms{exit_note}")
        return victim

    def restart_crashed(self):
        """A replica that exited on its own (not a fault of ours) is
        restarted without --bootstrap, as a supervisor would, and counted:
        the summary says how many, and its log says why."""
        for i in range(self.n):
            p = self.cluster.procs[i]
            if p is None or p.poll() is None or i in self.downs:
                continue
            why = ""
            try:
                with open(self.cluster.log_path(i), errors="replace") as f:
                    lines = [x.strip() for x in f if "PANIC" in x or
                             "assertion" in x or "error" in x.lower()]
                why = lines[-1] if lines else ""
            except OSError:
                pass
            log(f"  bypaxd {i} exited on its own (rc {p.returncode}): "
                f"{why[:160]}; restarting it")
            self.unexpected_exits += 1
            self.cluster.procs[i] = None
            self.faults.append([mono_ns(), None, "crash-unexpected", i])
            self.cluster.start(i, bootstrap=False)
            self.recovering.add(i)

    def heal_due(self, force=False):
        self.restart_crashed()
        now = time.monotonic()
        for victim, (at, kind) in list(self.downs.items()):
            if not force and now < at:
                continue
            if kind in ("kill", "term"):
                self.cluster.start(victim, bootstrap=False)
            elif kind == "pause":
                self.cluster.send_signal(victim, signal.SIGCONT)
            elif kind == "hog":
                self.hogs.stop()
            del self.downs[victim]
            if kind in ("kill", "term"):
                self.recovering.add(victim)
        # A fault's window ends when its victim votes again: a restarted
        # replica's catch-up is part of what its fault costs clients.
        if self.recovering:
            down = self.cluster.down()
            self.recovering = {v for v in self.recovering if v in down}
        for f in self.faults:
            if (f[1] is None and f[3] not in self.downs and
                    f[3] not in self.recovering):
                f[1] = mono_ns()

    # ---- the run ----

    def wait_for(self, what, secs, fn):
        deadline = time.monotonic() + secs
        while time.monotonic() < deadline:
            if fn():
                return
            time.sleep(0.2)
        raise HarnessError(f"timed out after {secs} s waiting for {what}")

    def client(self, *extra, seconds=None):
        cmd = [os.path.join(self.args.build, "tests", "chaos",
                            "bypax-chaos-client"),
               "--config", self.cluster.conf, "--seed", str(self.seed),
               "--sessions", str(self.args.sessions),
               "--timeout-ms", str(self.args.client_timeout_ms), *extra]
        if seconds is not None:
            cmd += ["--seconds", str(seconds)]
        return cmd

    def execute(self):
        c = self.cluster
        for i in range(self.n):
            c.start(i, bootstrap=True)
        self.wait_for("a leader", 60, lambda: c.leader() >= 0)
        history = os.path.join(self.dir, "history")
        client_log = open(os.path.join(self.dir, "client.log"), "w")
        secs = self.args.run_seconds
        cl = subprocess.Popen(self.client("--history", history,
                                          seconds=secs),
                              stdout=client_log, stderr=subprocess.STDOUT)
        t_end = time.monotonic() + secs - 4  # faults healed before the end
        next_fault = time.monotonic() + 2
        if self.args.hog_always:
            self.hogs.start(self.args.hog_procs)
        self.failovers_at_start = self.failovers()
        while time.monotonic() < t_end:
            self.heal_due()
            if (self.args.faults and time.monotonic() >= next_fault and
                    not self.downs and not self.recovering):
                kind, target = self.pick_fault()
                self.inject(kind, target)
                next_fault = time.monotonic() + self.rng.uniform(1.0, 3.0)
            time.sleep(0.1)
        self.heal_due(force=True)
        if cl.wait(secs + 60) != 0:
            self.hogs.stop()
            raise HarnessError(f"client failed (rc {cl.returncode}); see "
                               f"{self.dir}/client.log")
        self.wait_for("convergence", 60,
                      lambda: (self.restart_crashed(), c.converged())[1])
        # Every key once: many reads in flight, and time for a long run's
        # write-once keys (a 10-minute run writes about 100,000).
        read_back = self.client("--history", history, "--read-back")
        read_back[read_back.index("--sessions") + 1] = "64"
        rc = subprocess.run(read_back, stdout=client_log,
                            stderr=subprocess.STDOUT,
                            timeout=120 + 2 * secs).returncode
        if rc != 0:
            raise HarnessError(f"read-back failed (rc {rc}); see "
                               f"{self.dir}/client.log")
        self.hogs.stop()
        self.leader_changes = self.failovers() - self.failovers_at_start
        self.splits = self.failover_splits()
        self.compare_snapshots()
        return self.check(history)

    def events(self):
        """(mono s, member, fields) of every event line of every replica
        (logfmt, docs/deploy.md, Event log); a line that does not parse
        is skipped (a replica killed in the middle of one)."""
        out = []
        for i in range(self.n):
            try:
                with open(self.cluster.log_path(i), errors="replace") as f:
                    for line in f:
                        if not line.startswith("ts="):
                            continue
                        try:
                            ev = logfmt.event(line)
                        except ValueError:
                            continue
                        out.append((float(ev["mono"]), i, ev))
            except OSError:
                pass
        return sorted(out, key=lambda e: (e[0], e[1]))

    def failover_splits(self):
        """For each fault of the leader: kill-to-first-commit split into
        detection (a survivor suspects it), election (a survivor's worker
        leads) and catch-up (the new leader's first commit), in ms."""
        ev = self.events()
        splits = []
        for start_ns, _, name, victim in self.faults:
            if "-leader" not in name:
                continue
            t0 = start_ns / 1e9
            det = next((t for t, m, x in ev if t >= t0 and m != victim and
                        x["event"] == "member_suspected" and
                        x.get("member") == str(victim)), None)
            ele = next((t for t, m, x in ev if t >= t0 and m != victim and
                        x["event"] == "role_change" and
                        x.get("to") == "leader"), None)
            com = next((t for t, m, x in ev if ele is not None and t >= ele
                        and m != victim and x["event"] == "first_commit"),
                       None)
            if det is None or ele is None or com is None or ele < det:
                continue
            splits.append((name.rsplit("-", 1)[0], (det - t0) * 1e3,
                           (ele - det) * 1e3, (com - ele) * 1e3))
        return splits

    def failovers(self):
        """Leader changes so far, the most any replica counted."""
        most = 0
        for i in range(self.n):
            if not self.cluster.alive(i) or self.cluster.paused[i]:
                continue
            rc, out = self.cluster.ctl(i, "--json", "status", timeout=2)
            try:
                most = max(most, int(json.loads(out).get("failovers", 0)))
            except ValueError:
                pass
        return most

    def compare_snapshots(self):
        c = self.cluster
        self.wait_for("convergence after read-back", 30, c.converged)
        digests = []
        for i in range(self.n):
            path = os.path.join(self.dir, f"snap{i}")
            # bypaxctl fsyncs the file before it renames it: on a machine
            # whose disk other work keeps busy that alone took over 20 s
            # once (soak run 43: the whole stream was in PATH.tmp).
            rc, out = c.ctl(i, "snapshot", path, timeout=90)
            if rc != 0:
                tmp = path + ".tmp"
                got = (f"; {os.path.getsize(tmp)} bytes in {tmp}"
                       if os.path.exists(tmp) else "")
                raise HarnessError(f"snapshot of {i}: {out.strip()}{got}")
            with open(path, "rb") as f:
                digests.append(f.read())
        if any(d != digests[0] for d in digests[1:]):
            sizes = [len(d) for d in digests]
            raise HarnessError(f"replicas' snapshots differ (sizes {sizes})")

    def check(self, history):
        faults = os.path.join(self.dir, "faults")
        with open(faults, "w") as f:
            for start, end, name, _ in self.faults:
                f.write(f"{start} {end or mono_ns()} {name}\n")
        p = subprocess.run([os.path.join(self.args.build, "tests", "chaos",
                                         "bypax-chaos-check"),
                            "--faults", faults, history],
                           capture_output=True, text=True, timeout=600)
        with open(os.path.join(self.dir, "check.log"), "w") as f:
            f.write(p.stdout + p.stderr)
        summary = [line for line in p.stdout.splitlines()
                   if line.startswith("chaos-check:")]
        if p.returncode not in (0, 1) or not summary:
            raise HarnessError(f"checker failed (rc {p.returncode}): "
                               f"{(p.stdout + p.stderr).strip()[-500:]}")
        return p.returncode, summary[-1], p.stdout

    def close(self):
        self.hogs.stop()
        self.cluster.cleanup()


def parse_summary(line):
    out = {}
    for tok in line.split():
        if "=" in tok:
            k, v = tok.split("=", 1)
            out[k] = v
    return out


def fault_gaps(check_out):
    """Per-fault gaps from the checker's 'chaos-check: fault gap_ms=G ...
    name=NAME' lines."""
    gaps = []
    for line in check_out.splitlines():
        if not line.startswith("chaos-check: fault "):
            continue
        f = parse_summary(line.split("name=")[0])
        name = line.split("name=", 1)[1].strip() if "name=" in line else "?"
        gaps.append((name, float(f.get("gap_ms", 0))))
    return gaps


def pct(values, q):
    if not values:
        return 0.0
    v = sorted(values)
    return v[min(len(v) - 1, int(q * len(v)))]


def main():
    ap = argparse.ArgumentParser(
        prog="chaos", description="bypaxd processes under seeded faults; "
        "histories checked for linearizability and lost writes.")
    ap.add_argument("--build", required=True, help="meson build directory")
    ap.add_argument("--seed", type=int, default=1, help="first run's seed")
    ap.add_argument("--runs", type=int, default=0,
                    help="runs to do (0: as many as --minutes allow)")
    ap.add_argument("--minutes", type=float, default=0,
                    help="keep starting runs until this much time passed")
    ap.add_argument("--replicas", choices=["3", "5", "both"], default="3")
    ap.add_argument("--run-seconds", type=int, default=40,
                    help="client load per run (faults in all but the end)")
    ap.add_argument("--sessions", type=int, default=4)
    ap.add_argument("--faults", default=",".join(FAULTS),
                    help="comma-separated subset of " + ",".join(FAULTS) +
                    ", or none: no faults (counts leader changes nobody "
                    "caused)")
    ap.add_argument("--target", choices=["any", "leader", "follower"],
                    default="any", help="whom faults aim at (default: "
                    "either, by the seed)")
    ap.add_argument("--follower-gap-max-ms", type=int, default=0,
                    metavar="MS", help="fail a run in which a fault of a "
                    "follower (its catch-up included) left clients without "
                    "an acknowledgement for longer (0: no bound)")
    ap.add_argument("--fault-ms-max", type=int, default=3000, metavar="MS",
                    help="faults last 300..MS ms (default 3000)")
    ap.add_argument("--hog-procs", type=int, default=2)
    ap.add_argument("--hog-always", action="store_true",
                    help="hogs compete for the cores for the whole run "
                    "(--faults none implies it)")
    ap.add_argument("--client-timeout-ms", type=int, default=50,
                    help="client's wait per attempt before the next member")
    ap.add_argument("--kv-capacity", type=int, default=1000000)
    ap.add_argument("--out", help="keep every run's files here")
    ap.add_argument("--hold-on-failure", type=int, default=0, metavar="S",
                    help="leave a failed run's cluster up S seconds")
    ap.add_argument("--version", action="version", version="chaos 1")
    args = ap.parse_args()
    args.faults = [f for f in args.faults.split(",") if f]
    if args.faults == ["none"]:
        args.faults = []  # a steady run: the hogs for its whole length
        args.hog_always = True
    bad = [f for f in args.faults if f not in FAULTS]
    if bad or (not args.faults and not args.hog_always):
        ap.error(f"--faults: unknown fault '{bad[0] if bad else ''}' "
                 f"(known: {','.join(FAULTS)})")
    if args.runs <= 0 and args.minutes <= 0:
        args.runs = 1
    if os.geteuid() != 0 or not os.path.exists("/dev/net/tun"):
        print("chaos: skip: needs root and /dev/net/tun for net_tap ports")
        return 77
    args.build = os.path.abspath(args.build)
    base = args.out or tempfile.mkdtemp(prefix="bypax-chaos.")
    os.makedirs(base, exist_ok=True)
    t0 = time.monotonic()
    totals = {"runs": 0, "ops": 0, "faults": 0, "violations": 0,
              "lost_writes": 0, "failed": 0, "leader_changes": 0,
              "unexpected_exits": 0}
    gaps = []
    splits = []
    i = 0
    while True:
        if args.runs and i >= args.runs:
            break
        if not args.runs and time.monotonic() - t0 >= args.minutes * 60:
            break
        n = {"3": 3, "5": 5}.get(args.replicas, 3 if i % 2 == 0 else 5)
        seed = args.seed + i
        workdir = os.path.join(base, f"run{i}-seed{seed}-n{n}")
        os.makedirs(workdir)
        log(f"run {i}: seed {seed}, {n} replicas, in {workdir}")
        run = Run(args, seed, n, workdir)
        try:
            rc, summary, out = run.execute()
            s = parse_summary(summary)
            totals["ops"] += int(s.get("ops", 0))
            totals["violations"] += int(s.get("violations", 0))
            totals["lost_writes"] += int(s.get("lost_writes", 0))
            if rc != 0:
                totals["failed"] += 1
            run_gaps = fault_gaps(out)
            gaps += run_gaps
            slow = [(n, g) for n, g in run_gaps if "-follower" in n and
                    args.follower_gap_max_ms and
                    g > args.follower_gap_max_ms]
            if slow:
                totals["failed"] += 1
                log(f"run {i}: FAILED: a follower fault stopped the clients "
                    f"for {slow[0][1]:.0f} ms ({slow[0][0]}), over "
                    f"--follower-gap-max-ms {args.follower_gap_max_ms}")
            totals["leader_changes"] += run.leader_changes
            totals["unexpected_exits"] += run.unexpected_exits
            splits += run.splits
            log(f"run {i}: {summary} leader_changes={run.leader_changes} "
                f"unexpected_exits={run.unexpected_exits}")
        except HarnessError as e:
            totals["failed"] += 1
            log(f"run {i}: FAILED: {e}")
            run.cluster.diagnose()
            log(f"run {i}: each live replica's status and /metrics are in "
                f"{run.dir}/diag-r*")
            if args.hold_on_failure:
                log(f"holding the cluster for {args.hold_on_failure} s "
                    f"(pids {[p.pid if p else None for p in run.cluster.procs]})")
                time.sleep(args.hold_on_failure)
        finally:
            totals["faults"] += len(run.faults)
            run.close()
        totals["runs"] += 1
        i += 1
    g = [v for _, v in gaps]
    log(f"runs={totals['runs']} ops={totals['ops']} faults={totals['faults']} "
        f"violations={totals['violations']} "
        f"lost_writes={totals['lost_writes']} failed_runs={totals['failed']} "
        f"leader_changes={totals['leader_changes']} "
        f"unexpected_exits={totals['unexpected_exits']} "
        f"gap_ms p50={pct(g, 0.5):.0f} p99={pct(g, 0.99):.0f} "
        f"max={max(g) if g else 0:.0f}")
    by_kind = {}
    for name, v in gaps:
        by_kind.setdefault(name, []).append(v)
    for name in sorted(by_kind):
        v = by_kind[name]
        log(f"  {name}: n={len(v)} gap_ms p50={pct(v, 0.5):.0f} "
            f"p99={pct(v, 0.99):.0f} max={max(v):.0f}")
    for kind in sorted({k for k, *_ in splits}):
        rows = [r for r in splits if r[0] == kind]
        parts = []
        for j, phase in ((1, "detect"), (2, "elect"), (3, "catch_up")):
            v = [r[j] for r in rows]
            parts.append(f"{phase}_ms p50={pct(v, 0.5):.0f} "
                         f"p99={pct(v, 0.99):.0f} max={max(v):.0f}")
        tot = [r[1] + r[2] + r[3] for r in rows]
        log(f"  {kind}-leader to first commit: n={len(rows)} " +
            " ".join(parts) + f" total_ms p50={pct(tot, 0.5):.0f} "
            f"p99={pct(tot, 0.99):.0f} max={max(tot):.0f}")
    if not args.out and totals["failed"] == 0:
        shutil.rmtree(base, ignore_errors=True)
    elif totals["failed"]:
        log(f"files kept in {base}")
    return 0 if totals["failed"] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
