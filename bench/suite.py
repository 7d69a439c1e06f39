#!/usr/bin/env python3
"""The bypax benchmark suite. scripts/bench installs, builds, then runs this.

It runs, in one go and on one machine:
  micro      Google Benchmark: px_step per committed request at batch 1-64,
             session lookup, batch codec, wire encode/decode per message,
             ring hand-off between control thread and worker
  limit      bypax-fwd: the same net_ring ports forwarding with no consensus
  e2e        bypax-cluster (in-process, net_ring): closed-loop client sweeps
             until throughput stops rising, open-loop rate sweeps to
             saturation, request sizes, batching on/off, window and batch
             sweeps, 3 and 5 replicas
  etcd       a 3-member etcd on loopback through its JSON gateway (wrk)
  failover   scripts/failover-bench when it exists
  deployed   three bypaxd processes over net_memif loaded by bypax-dpdk-load
             (DPDK client lanes on memif links of its own): ops/s, p50/p99,
             the leader's cycles per op from its /metrics
  memif      the same three bypaxd with kernel clients (bypax-load via
             net_tap): the kernel client path's bound
and writes bench/results/<date>-<host>[-profile].json, two PNG plots and a
text table. Every figure carries the machine, its cores and the config.
"""
import argparse
import datetime
import json
import os
import platform
import re
import resource
import shutil
import socket
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "bench"))
import functions  # noqa: E402  (bench/functions.py: perf by function)

# Durations are whole seconds (bypax-cluster takes integers).
PROFILES = {
    "quick": {
        "dur": 1, "micro_min_time": 0.01, "fwd_dur": 1, "warmup_ms": 250,
        "clients": [1, 4, 16, 64, 256], "min_clients": 16,
        "closed": [("3r", 3, 16, 64), ("3r-nobatch", 3, 16, 1),
                   ("5r", 5, 16, 64)],
        "sizes": [128, 1024],
        "size_clients": [16, 128],
        "open": [("3r", 3, 16, 64)],
        "fractions": [0.25, 0.6, 0.9, 1.1],
        "open_lanes": 256,
        "batches": [1, 4, 16, 64],
        "windows": [1, 8, 64],
        "etcd_dur": 3, "etcd_warmup": 1, "etcd_more_conns": [],
        "kills": 1,
        "quiet_wait": 5,
        "deployed_lanes": [64],
        "key_counts": [1000, 1000000],
        "lane_counts": [512, 4096],
    },
    "default": {
        "dur": 3, "micro_min_time": 0.1, "fwd_dur": 1, "fwd_reps": 5,
        "warmup_ms": 500,
        "ref_reps": 3,
        "clients": [1, 2, 4, 8, 16, 32, 64, 128, 256, 512],
        "min_clients": 64,
        "closed": [("3r", 3, 16, 64), ("3r-nobatch", 3, 16, 1),
                   ("5r", 5, 16, 64), ("5r-nobatch", 5, 16, 1)],
        "sizes": [128, 1024],
        "size_clients": [4, 16, 64, 256],
        "open": [("3r", 3, 16, 64), ("3r-nobatch", 3, 16, 1),
                 ("5r", 5, 16, 64), ("3r-1KiB", 3, 1024, 64)],
        "fractions": [0.1, 0.3, 0.5, 0.7, 0.85, 0.95, 1.05],
        "open_lanes": 256,
        "batches": [1, 2, 4, 8, 16, 32, 64],
        "windows": [1, 2, 4, 8, 16, 64, 256],
        "etcd_dur": 10, "etcd_warmup": 2, "etcd_more_conns": [512],
        "kills": 3,
        "quiet_wait": 20,
        "deployed_lanes": [16, 64, 512],
        "key_counts": [1000, 1000000, 10000000],
        "lane_counts": [512, 4096],
    },
    "long": {
        "dur": 10, "micro_min_time": 0.5, "fwd_dur": 3, "fwd_reps": 7,
        "warmup_ms": 1000,
        "ref_reps": 5,
        "clients": [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048],
        "min_clients": 256,
        "closed": [("3r", 3, 16, 64), ("3r-nobatch", 3, 16, 1),
                   ("5r", 5, 16, 64), ("5r-nobatch", 5, 16, 1)],
        "sizes": [128, 1024],
        "size_clients": [1, 4, 16, 64, 256, 1024],
        "open": [("3r", 3, 16, 64), ("3r-nobatch", 3, 16, 1),
                 ("5r", 5, 16, 64), ("5r-nobatch", 5, 16, 1),
                 ("3r-128B", 3, 128, 64), ("3r-1KiB", 3, 1024, 64)],
        "fractions": [0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.85,
                      0.9, 0.95, 1.0, 1.05, 1.1],
        "open_lanes": 512,
        "batches": [1, 2, 4, 8, 16, 24, 32, 48, 64],
        "windows": [1, 2, 4, 8, 16, 32, 64, 128, 256, 1024],
        "etcd_dur": 30, "etcd_warmup": 5, "etcd_more_conns": [512],
        "kills": 10,
        "quiet_wait": 60,
        "deployed_lanes": [16, 512, 4096],
        "key_counts": [1000, 1000000, 10000000],
        "lane_counts": [512, 4096],
    },
}

LOG = None


def say(msg):
    line = "==> " + msg
    print(line, flush=True)
    if LOG:
        LOG.write(line + "\n")
        LOG.flush()


def warn(msg):
    line = "warning: " + msg
    print(line, file=sys.stderr, flush=True)
    if LOG:
        LOG.write(line + "\n")
        LOG.flush()


def sh(cmd, **kw):
    return subprocess.run(cmd, shell=True, capture_output=True, text=True,
                          **kw).stdout.strip()


def parse_lcores(spec):
    """'0-3,6' -> [0, 1, 2, 3, 6]"""
    out = []
    for part in spec.split(","):
        if "-" in part:
            a, b = part.split("-")
            out.extend(range(int(a), int(b) + 1))
        elif part:
            out.append(int(part))
    return out


# ---------------------------------------------------------------- machine

def machine_info(args):
    cpu = "unknown"
    flags = ""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name") and cpu == "unknown":
                    cpu = line.split(":", 1)[1].strip()
                if line.startswith("flags") and not flags:
                    flags = line.split(":", 1)[1]
    except OSError:
        pass
    mem_gib = 0.0
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal"):
                    mem_gib = int(line.split()[1]) / 1048576
    except OSError:
        pass
    virt = "virtual machine" if " hypervisor" in flags else "bare metal"
    if shutil.which("systemd-detect-virt"):
        vm = sh("systemd-detect-virt --vm 2>/dev/null || true")
        if vm and vm != "none":
            virt = f"virtual machine ({vm})"
        ct = sh("systemd-detect-virt --container 2>/dev/null || true")
        if ct and ct != "none":
            virt += f", in a {ct} container"
    git = sh(f"cd {ROOT} && git rev-parse --short HEAD 2>/dev/null")
    dirty = sh(f"cd {ROOT} && git status --porcelain 2>/dev/null | head -1")
    host = args.host or socket.gethostname().split(".")[0]
    m = {
        "host": host,
        "label": args.label or "",
        "cpu": cpu,
        "cores": os.cpu_count(),
        "cores_usable": len(os.sched_getaffinity(0)),
        "memory_gib": round(mem_gib, 1),
        "kernel": platform.release(),
        "os": sh(". /etc/os-release 2>/dev/null && echo $PRETTY_NAME"),
        "virtualization": virt,
        "dpdk": sh("pkg-config --modversion libdpdk 2>/dev/null") or "?",
        "compiler": sh("cc --version 2>/dev/null | head -1"),
        "git": git + ("+dirty" if dirty else ""),
        "loadavg_at_start": open("/proc/loadavg").read().split()[:3],
        "tsc_hz": None,
    }
    # Prebuilt (static) binaries say what they are.
    for d in args.bin.split(":"):
        info = os.path.join(d, "..", "BUILD_INFO.json")
        if d and os.path.exists(info):
            with open(info) as f:
                bi = json.load(f)
            for k in ("git", "dpdk", "compiler"):
                if bi.get(k):
                    m[k] = bi[k]
            m["built_on"] = bi.get("built_on", "")
            break
    return m


class Cpu:
    """What else used the CPU while one of our runs ran: busy jiffies of
    the whole machine minus our children's CPU time, and steal time."""

    def __init__(self):
        self.hz = os.sysconf("SC_CLK_TCK")

    def snap(self):
        with open("/proc/stat") as f:
            v = [int(x) for x in f.readline().split()[1:]]
        user, nice, system, idle, iowait, irq, softirq, steal = v[:8]
        busy = user + nice + system + irq + softirq
        ru = resource.getrusage(resource.RUSAGE_CHILDREN)
        return (time.monotonic(), busy / self.hz, steal / self.hz,
                ru.ru_utime + ru.ru_stime)

    @staticmethod
    def diff(a, b):
        wall = b[0] - a[0]
        if wall <= 0:
            return 0.0, 0.0
        others = max(0.0, (b[1] - a[1]) - (b[3] - a[3])) / wall
        steal = (b[2] - a[2]) / wall
        return round(others, 3), round(steal, 3)

    def others_now(self, secs=1.0):
        a = self.snap()
        time.sleep(secs)
        return Cpu.diff(a, self.snap())[0]


def top_others():
    out = sh("ps -eo pcpu,comm --sort=-pcpu --no-headers | head -4")
    return "; ".join(" ".join(x.split()) for x in out.splitlines())


# ---------------------------------------------------------------- runner

class Suite:
    def __init__(self, args):
        self.a = args
        self.p = PROFILES[args.profile]
        self.cpu = Cpu()
        self.bins = [d for d in args.bin.split(":") if d]
        self.seq = 0
        self.stem = os.path.join(args.out_dir, "bench")
        self.noisy = 0
        self.runs = 0
        lc = parse_lcores(args.lcores)
        self.lcores = args.lcores
        self.lcore_count = len(lc)
        self.m = machine_info(args)
        self.tag = f"{self.m['host']}/{self.m['cores']}c"
        self.res = {
            "schema": 1,
            "profile": args.profile,
            "date": datetime.datetime.now().isoformat(timespec="seconds"),
            "machine": self.m,
            "setup": {
                "lcores": args.lcores,
                "lcore_count": self.lcore_count,
                "hugepages": args.hugepages,
                "pci": args.pci,
                "fwd_lcores": args.fwd_lcores or args.lcores,
                "idle_sleep_us": args.idle_sleep_us,
                "binaries": args.bin,
                "build": args.build_desc,
                "workload": "KV PUTs (no GETs), keys k000000-k000999, "
                            "1 load generator endpoint with N client "
                            "lanes (sessions), each at most 1 request "
                            "outstanding",
            },
            "notes": [],
        }
        self.res["setup"]["warmup_ms"] = self.p["warmup_ms"]
        self.res["setup"]["run_seconds"] = self.p["dur"]

    # -- helpers

    def exe(self, name):
        for d in self.bins:
            p = os.path.join(d, name)
            if os.access(p, os.X_OK):
                return p
        return os.path.join(self.bins[0] if self.bins else ".", name)

    def eal(self, lcores=None, pci=None):
        self.seq += 1
        e = ["-l", lcores or self.lcores, "--log-level=error",
             "--file-prefix", f"bpxbench{os.getpid()}_{self.seq}"]
        if self.a.hugepages:
            e += ["--socket-mem", str(self.a.socket_mem)]
        else:
            e += ["--no-huge", "-m", "1024", "--no-shconf"]
        if pci:
            for bdf in pci:
                e += ["-a", bdf]
        else:
            e += ["--no-pci"]
        return e

    def wait_quiet(self):
        """Others' CPU use distorts a busy-polling run: wait a little for
        a quiet machine (bounded by the profile)."""
        limit = self.p["quiet_wait"]
        waited = 0
        others = self.cpu.others_now(0.5)
        while others > 0.3 and waited < limit:
            time.sleep(1)
            waited += 1.5
            others = self.cpu.others_now(0.5)
        return others

    def measured(self, cmd, timeout):
        """Runs cmd; returns (rc, output, others, steal, wall)."""
        a = self.cpu.snap()
        try:
            p = subprocess.run(cmd, capture_output=True, text=True,
                               timeout=timeout)
            rc, out = p.returncode, p.stdout + p.stderr
        except subprocess.TimeoutExpired as e:
            rc = 124
            out = ((e.stdout or b"").decode(errors="replace") if
                   isinstance(e.stdout, bytes) else (e.stdout or ""))
        b = self.cpu.snap()
        others, steal = Cpu.diff(a, b)
        return rc, out, others, steal, b[0] - a[0]

    def cluster(self, replicas, clients, value_bytes=16, batch=64,
                window=64, rate=0, lanes=None, keys=1000, prefill=False):
        """One bypax-cluster run; returns its JSON report plus our fields.
        A run disturbed by other processes (more than 0.3 of a core) is
        repeated once after waiting for quiet; the better one is kept."""
        dur = self.p["dur"]
        best = None
        for attempt in range(2):
            self.wait_quiet()
            fd, js = tempfile.mkstemp(suffix=".json", prefix="bpxbench")
            os.close(fd)
            cmd = ([self.exe("bypax-cluster")] + self.eal() +
                   ["--", "--replicas", str(replicas), "--loadgens", "1",
                    "--lanes", str(lanes or clients), "--duration", str(dur),
                    "--get-pct", "0", "--keys", str(keys),
                    "--value-bytes", str(value_bytes), "--batch", str(batch),
                    "--window", str(window), "--quiet", "--json", js,
                    "--warmup-ms", str(self.p["warmup_ms"]),
                    "--idle-sleep-us", str(self.a.idle_sleep_us)])
            if rate:
                cmd += ["--rate", str(int(rate))]
            if prefill:
                cmd += ["--prefill", "--sm-args", kv_sized(keys, value_bytes)]
            # Filling 10M keys into 3 stores takes about 20 s here.
            rc, out, others, steal, wall = self.measured(
                cmd, dur + 60 + (keys // 100000 if prefill else 0))
            try:
                with open(js) as f:
                    r = json.load(f)
            except (OSError, ValueError):
                r = {"ops_per_s": 0.0}
            os.unlink(js)
            r.update({"ok": rc == 0, "rc": rc, "clients": clients,
                      "lanes": lanes or clients,
                      "others_cores": others, "steal_cores": steal,
                      "offered_per_s": int(rate)})
            if rc != 0:
                r["output_tail"] = out[-600:]
            if r.get("tsc_hz"):
                self.m["tsc_hz"] = r["tsc_hz"]
            if best is None or (r["ok"] and (not best["ok"] or
                                others < best["others_cores"])):
                best = r
            if r["ok"] and others <= 0.3:
                break
            if attempt == 0:
                why = (f"exit {rc}" if rc else
                       f"other processes used {others:.2f} cores")
                warn(f"run disturbed ({why}); repeating once: "
                     f"{top_others()}")
        self.runs += 1
        # Noisy: others ran on our cores (a busy poller loses its core to
        # anything runnable: the latency tail then shows the OS, not us).
        if (best["others_cores"] > 0.1 or
                best.get("stall_ms", 0) > 10 * dur):
            self.noisy += 1
            best["noisy"] = True
        if not best["ok"]:
            warn(f"bypax-cluster failed (exit {best['rc']}): "
                 f"{best.get('output_tail', '')[-300:]}")
        return best

    @staticmethod
    def fmt_point(r):
        return (f"{r.get('ops_per_s', 0):>10,.0f} ops/s  p50 "
                f"{r.get('p50_ns', 0) / 1e3:7.1f}  p99 "
                f"{r.get('p99_ns', 0) / 1e3:8.1f} us  batch "
                f"{r.get('batch_avg', 0):5.1f}  leader "
                f"{r.get('leader_cycles_per_op', 0):6.0f} cyc/op"
                + (f"  stalls {r['stalls']}/{r['stall_ms']:.0f} ms (max "
                   f"{r.get('stall_max_ms', 0):.1f})"
                   if r.get("stalls") else "")
                + ("  (noisy)" if r.get("noisy") else "")
                + ("" if r.get("ok") else "  FAILED"))

    # -- stages

    def micro(self):
        out = {}
        for name in ("bypax-bench", "bypax-bench-dp"):
            exe = self.exe(name)
            if not os.access(exe, os.X_OK):
                self.res["notes"].append(f"{name} not built: its micro-"
                                         "benchmarks are missing")
                continue
            say(f"micro-benchmarks: {name}")
            self.wait_quiet()
            cmd = [exe, "--benchmark_format=json",
                   f"--benchmark_min_time={self.p['micro_min_time']}"]
            if name == "bypax-bench-dp":
                # Cheap, and the cross-core hand-off suffers from anything
                # else on the other core: the median of 3.
                cmd += ["--benchmark_repetitions=3",
                        "--benchmark_report_aggregates_only=true"]
            p = subprocess.run(cmd, capture_output=True, text=True,
                               timeout=900)
            if p.returncode != 0:
                warn(f"{name} failed: {p.stderr[-300:]}")
                continue
            doc = json.loads(p.stdout)
            for b in doc.get("benchmarks", []):
                bname = b["name"]
                if b.get("run_type") == "aggregate":
                    if b.get("aggregate_name") == "cv":
                        if b.get("run_name") in out:
                            out[b["run_name"]]["cv"] = b.get("real_time")
                        continue
                    if b.get("aggregate_name") != "median":
                        continue
                    bname = b["run_name"]
                ns = (b.get("ns_per_req") or b.get("ns_per_msg") or
                      b.get("ns_per_op"))
                # The counters are inverted rates: seconds per item.
                ns = ns * 1e9 if ns is not None and ns < 1e-3 else ns
                keep = {k: v for k, v in b.items()
                        if k not in ("run_name", "run_type", "repetitions",
                                     "repetition_index", "threads",
                                     "family_index",
                                     "per_family_instance_index")}
                keep["ns_per_item"] = ns
                out[bname] = keep
            out.setdefault("_context", {})[name] = doc.get("context", {})
        self.res["micro"] = out

    def fwd_once(self, vb):
        self.wait_quiet()
        fd, js = tempfile.mkstemp(suffix=".json")
        os.close(fd)
        cmd = ([self.exe("bypax-fwd")] +
               self.eal(self.a.fwd_lcores or self.lcores,
                        self.a.pci or None) +
               ["--", "--value-bytes", str(vb), "--duration",
                str(self.p["fwd_dur"]), "--inflight", "1024", "--json", js])
        if self.a.pci:
            cmd += ["--ports", "0,1" if len(self.a.pci) > 1 else "0"]
        rc, o, others, steal, _ = self.measured(cmd, self.p["fwd_dur"] + 60)
        try:
            with open(js) as f:
                r = json.load(f)
        except (OSError, ValueError):
            r = {}
        os.unlink(js)
        r.update({"ok": rc == 0, "others_cores": others,
                  "steal_cores": steal})
        if rc:
            warn(f"bypax-fwd failed: {o[-300:]}")
        if r.get("tsc_hz"):
            self.m["tsc_hz"] = r["tsc_hz"]
        return r

    def fwd(self):
        """The limit: each size run `fwd_reps` times, the median kept (the
        two pollers fall into a fast or a slow pattern of cache-line
        sharing on the rings from run to run; the median is the usual)."""
        reps = self.p.get("fwd_reps", 1)
        out = []
        say(f"forwarding limit: bypax-fwd (rx burst -> tx burst, no "
            f"consensus), {reps} run(s) per size, median kept")
        for vb in [16] + self.p["sizes"]:
            runs = [self.fwd_once(vb) for _ in range(reps)]
            ok = sorted((r for r in runs if r["ok"]),
                        key=lambda r: r.get("fwd_cycles_per_packet", 0))
            r = dict(ok[len(ok) // 2] if ok else runs[0])
            r["runs_cycles_per_packet"] = [
                x.get("fwd_cycles_per_packet") for x in runs]
            r["runs_packets_per_s"] = [x.get("packets_per_s") for x in runs]
            say(f"  {vb:5d} B values ({r.get('frame_bytes', 0)} B frames): "
                f"{r.get('packets_per_s', 0) / 1e6:6.2f} Mpps, "
                f"{r.get('fwd_cycles_per_packet', 0):6.1f} cycles/packet"
                + (f" (runs: {', '.join('%.1f' % (c or 0) for c in r['runs_cycles_per_packet'])})"
                   if reps > 1 else ""))
            out.append(r)
        self.res["fwd"] = out

    def sweep_closed(self, name, replicas, vb, batch, clients_list,
                     window=64):
        say(f"closed loop {name}: {replicas} replicas, {vb} B PUTs, "
            f"batch <= {batch}, window {window}; clients "
            f"{clients_list[0]}..{clients_list[-1]} until throughput "
            "stops rising")
        pts, best, flat = [], 0.0, 0
        for c in clients_list:
            r = self.cluster(replicas, c, vb, batch, window)
            pts.append(r)
            say(f"  {c:5d} clients {self.fmt_point(r)}")
            t = r.get("ops_per_s", 0) if r["ok"] else 0
            if t > best * 1.03:
                best, flat = max(best, t), 0
            else:
                best = max(best, t)
                flat += 1
                # Two points in a row without a 3% gain, past the least
                # the profile sweeps to (one dip on a noisy machine is
                # not the end).
                if flat >= 2 and c >= self.p["min_clients"]:
                    break
        ok = [p for p in pts if p["ok"]] or pts
        peak = max(ok, key=lambda p: p.get("ops_per_s", 0))
        return {"name": name, "replicas": replicas, "value_bytes": vb,
                "batch": batch, "window": window, "points": pts,
                "peak": peak}

    def sweep_open(self, name, replicas, vb, batch, peak_ops):
        lanes = self.p["open_lanes"]
        say(f"open loop {name}: {replicas} replicas, {vb} B PUTs, batch <= "
            f"{batch}; offered {', '.join(str(f) for f in self.p['fractions'])}"
            f" x closed-loop peak {peak_ops:,.0f} ops/s ({lanes} lanes)")
        pts = []
        for f in self.p["fractions"]:
            rate = max(100, int(peak_ops * f))
            r = self.cluster(replicas, lanes, vb, batch, 64, rate=rate)
            r["fraction"] = f
            pts.append(r)
            say(f"  offered {rate:>10,d}/s {self.fmt_point(r)}")
        return {"name": name, "replicas": replicas, "value_bytes": vb,
                "batch": batch, "window": 64, "lanes": lanes,
                "points": pts}

    def e2e(self):
        clients = self.p["clients"]
        closed = {}
        for name, r, vb, b in self.p["closed"]:
            closed[name] = self.sweep_closed(name, r, vb, b, clients)
        for vb in self.p["sizes"]:
            name = f"3r-{vb}B" if vb < 1024 else "3r-1KiB"
            closed[name] = self.sweep_closed(name, 3, vb, 64,
                                             self.p["size_clients"])
        self.res["closed"] = closed
        ref = closed["3r"]["peak"]
        c_ref = ref["clients"]
        reps = self.p.get("ref_reps", 1)
        if reps > 1:
            say(f"reference point: 3 replicas, 16 B, batch <= 64, window 64, "
                f"{c_ref} clients, {reps} fresh runs (their median is the "
                "headline; the sweep's peak is the best of many)")
            runs = []
            for _ in range(reps):
                r = self.cluster(3, c_ref, 16, 64, 64)
                runs.append(r)
                say(f"  {c_ref:5d} clients {self.fmt_point(r)}")
        else:
            runs = [ref]
        ok = sorted((r for r in runs if r["ok"]),
                    key=lambda r: r.get("ops_per_s", 0)) or runs
        med = ok[len(ok) // 2]
        self.res["reference"] = {
            "replicas": 3, "value_bytes": 16, "batch": 64, "window": 64,
            "clients": c_ref, "median": med,
            "ops_per_s_runs": [r.get("ops_per_s", 0) for r in runs],
            "leader_cycles_per_op_runs": [r.get("leader_cycles_per_op", 0)
                                          for r in runs]}
        say(f"window sweep at {c_ref} clients (3 replicas, 16 B, batch <= 64)")
        win = []
        for w in self.p["windows"]:
            r = self.cluster(3, c_ref, 16, 64, w)
            r["window"] = w
            win.append(r)
            say(f"  window {w:5d} {self.fmt_point(r)}")
        self.res["window_sweep"] = {"clients": c_ref, "points": win}
        say(f"batch sweep at {c_ref} clients (3 replicas, 16 B, window 64)")
        bat = []
        for b in self.p["batches"]:
            r = self.cluster(3, c_ref, 16, b, 64)
            r["batch"] = b
            bat.append(r)
            say(f"  batch <= {b:3d} {self.fmt_point(r)}")
        self.res["batch_sweep"] = {"clients": c_ref, "points": bat}
        opn = {}
        for name, r, vb, b in self.p["open"]:
            base = closed.get(name)
            if base is None:
                base = next((s for s in closed.values()
                             if s["replicas"] == r and s["value_bytes"] == vb
                             and s["batch"] == b), None)
            if base is None:
                base = self.sweep_closed(name, r, vb, b, clients)
                closed[name] = base
            opn[name] = self.sweep_open(name, r, vb, b,
                                        base["peak"].get("ops_per_s", 0))
        self.res["open"] = opn

    def sweeps(self):
        """Key count and client count, at the reference point's clients
        (512 when the e2e stage did not run)."""
        clients = self.res.get("reference", {}).get("clients", 512)
        self.sweep_keys(clients)
        self.sweep_lanes()

    def sweep_keys(self, clients):
        """The store at 1k, 1M and 10M keys, each sized for them and every
        key PUT before the timed run (pre-faulted): issue 11's flatness."""
        say(f"key-count sweep at {clients} clients (3 replicas, 16 B, batch "
            f"<= 64; store sized capacity=N,bytes=48N, every key PUT first)")
        pts = []
        for k in self.p["key_counts"]:
            r = self.cluster(3, clients, 16, 64, 64, keys=k, prefill=True)
            r["keys"] = k
            pts.append(r)
            say(f"  {k:>10,d} keys {self.fmt_point(r)}"
                + (f"  (filled in {r.get('prefill_s', 0):.1f} s)"
                   if r.get("prefill_s") else ""))
        self.res["key_sweep"] = {"clients": clients, "value_bytes": 16,
                                 "sm_args": "capacity=N,bytes=48N",
                                 "points": pts}

    def sweep_lanes(self):
        """512 against 4096 client lanes, fresh runs side by side (the
        session table's cost per op at many clients)."""
        lanes = self.p["lane_counts"]
        say(f"client-count sweep: {', '.join(str(n) for n in lanes)} lanes "
            "(3 replicas, 16 B, batch <= 64, 1,000 keys)")
        pts = []
        for n in lanes:
            r = self.cluster(3, n, 16, 64, 64)
            pts.append(r)
            say(f"  {n:5d} lanes {self.fmt_point(r)}")
        self.res["lanes_sweep"] = {"points": pts}

    def etcd(self):
        if self.a.no_etcd:
            self.res["notes"].append("etcd comparison skipped (--no-etcd)")
            return
        if not (shutil.which("etcd") and shutil.which("wrk")):
            self.res["notes"].append("etcd or wrk not installed: no etcd "
                                     "comparison")
            return
        ref = self.res["closed"]["3r"]
        # 16, the in-process peak's count, and a count well past it: etcd
        # and the durable stage (which runs at these counts) both batch
        # more syncs per commit as concurrency grows, so "at peak" needs a
        # point where neither is short of clients.
        conns = sorted({16, ref["peak"]["clients"],
                        *self.p.get("etcd_more_conns", [])})
        say(f"etcd: 3 members on loopback, wrk at {conns} connections, "
            f"{self.p['etcd_dur']} s each ({'tmpfs' if self.a.etcd_tmpfs else 'disk'})")
        self.wait_quiet()
        fd, js = tempfile.mkstemp(suffix=".json")
        os.close(fd)
        cmd = [os.path.join(ROOT, "bench", "etcd", "run.sh"),
               "--conns", " ".join(str(c) for c in conns),
               "--duration", str(self.p["etcd_dur"]),
               "--warmup", str(self.p["etcd_warmup"]),
               "--value-bytes", "16", "--out", js]
        if self.a.etcd_tmpfs:
            cmd.append("--tmpfs")
        rc, out, others, steal, _ = self.measured(
            cmd, 120 + len(conns) * (self.p["etcd_dur"] + 30))
        try:
            with open(js) as f:
                doc = json.load(f)
        except (OSError, ValueError):
            doc = None
        os.unlink(js)
        if rc != 0 or doc is None:
            warn(f"etcd run failed: {out[-400:]}")
            self.res["notes"].append("etcd run failed: " + out[-200:])
            return
        doc["others_cores"] = others
        # bypax at the same client counts (from the sweep, or run now).
        pairs = []
        for r in doc["runs"]:
            c = r["conns"]
            rm = self.res.get("reference", {})
            ours = (rm["median"] if rm.get("clients") == c else
                    next((p for p in ref["points"] if p["clients"] == c
                          and p["ok"]), None))
            if ours is None:
                ours = self.cluster(3, c, 16, 64, 64)
            pairs.append({"clients": c, "etcd": r, "bypax": ours})
            say(f"  {c:4d} clients: etcd {r['writes_per_s']:>9,.0f} writes/s "
                f"p50 {r['p50_us'] / 1e3:6.2f} ms p99 {r['p99_us'] / 1e3:6.2f}"
                f" ms | bypax {ours.get('ops_per_s', 0):>10,.0f} p50 "
                f"{ours.get('p50_ns', 0) / 1e6:6.3f} ms p99 "
                f"{ours.get('p99_ns', 0) / 1e6:6.3f} ms")
        doc["pairs"] = pairs
        self.res["etcd"] = doc

    def failover(self):
        fb = os.path.join(ROOT, "scripts", "failover-bench")
        if not os.access(fb, os.X_OK):
            self.res["failover"] = {
                "measured": False,
                "note": "scripts/failover-bench is not present: client-"
                        "observed unavailability on leader failure not "
                        "measured in this run"}
            return
        if not self.a.build_dir:
            self.res["failover"] = {
                "measured": False,
                "note": "failover needs a build directory (bypaxd, "
                        "bypax-load): not measured with --bin"}
            return
        k = self.a.kills if self.a.kills is not None else self.p["kills"]
        say(f"failover: scripts/failover-bench --kills {k} (3 bypaxd "
            "processes over net_memif, SIGKILL of the leader under load)")
        self.wait_quiet()
        out_json = self.stem + "-failover.json"
        cmd = [fb, "--kills", str(k), "--build", self.a.build_dir,
               "--out", out_json]
        rc, out, others, steal, wall = self.measured(cmd, 120 + 30 * k)
        doc = {"measured": rc == 0, "rc": rc, "kills": k,
               "seconds": round(wall, 1), "others_cores": others,
               "json": os.path.relpath(out_json, ROOT),
               "output_tail": out[-1500:]}
        if rc == 77:
            doc["note"] = "skipped by failover-bench (needs root and /dev/net/tun)"
        for line in out.splitlines():
            line = line.strip()
            if line.startswith("{") and line.endswith("}"):
                try:
                    obj = json.loads(line)
                except ValueError:
                    continue
                if "availability" in obj:
                    doc["availability"] = obj["availability"]
                elif "p50_ms" in obj:
                    doc["report"] = obj
            elif line.startswith(("availability", "measured:", "at the ")):
                doc.setdefault("availability_text", []).append(line)
        rep = doc.get("report", {})
        if all(k in rep for k in ("p50_ms", "p99_ms", "max_ms")):
            doc["unavailability_ms"] = {"p50": rep["p50_ms"],
                                        "p99": rep["p99_ms"],
                                        "max": rep["max_ms"]}
        else:
            m = re.search(r"p50\D*([\d.]+)\s*ms.*?p99\D*([\d.]+)\s*ms.*?"
                          r"max\D*([\d.]+)\s*ms", out, re.S)
            if m:
                doc["unavailability_ms"] = {"p50": float(m.group(1)),
                                            "p99": float(m.group(2)),
                                            "max": float(m.group(3))}
        for line in out.splitlines():
            if line.startswith(("control plane:", "client:", "replicas:")):
                doc.setdefault("settings", []).append(line.strip())
        if "unavailability_ms" in doc:
            u = doc["unavailability_ms"]
            say(f"  unavailability over {k} kills: p50 {u['p50']} ms, p99 "
                f"{u['p99']} ms, max {u['max']} ms")
        elif rc not in (0, 77):
            warn(f"failover-bench exited {rc}: {out[-300:]}")
        for line in doc.get("availability_text", []):
            say("  " + line)
        self.res["failover"] = doc

    def deployed(self):
        """Three bypaxd processes over net_memif and bypax-dpdk-load on a
        memif link of its own to each: the daemon as deployed, without the
        kernel client path's bound. One cluster, one generator run per
        lane count of the profile."""
        lib = os.path.join(ROOT, "tests", "dpdk", "memif_lib.sh")
        gen = os.path.join(self.a.build_dir, "dataplane", "bypax-dpdk-load")
        if not self.a.build_dir or not os.access(gen, os.X_OK):
            self.res["notes"].append("deployed stage needs a build directory "
                                     "with dataplane/bypax-dpdk-load")
            return
        dur = self.p["dur"]
        lanes = self.p["deployed_lanes"]
        say(f"deployed: three bypaxd processes over net_memif, "
            f"bypax-dpdk-load (DPDK, one memif link per member) at "
            f"{', '.join(str(n) for n in lanes)} lanes, {dur} s each")
        self.wait_quiet()
        rc, out, others, steal, wall = self.measured(
            ["bash", "-c", deployed_script(self.a.build_dir, lib, lanes, dur,
                                           self.p["warmup_ms"])],
            60 + len(lanes) * (dur + 15))
        pts = [parse_dload_result(line) for line in out.splitlines()
               if line.startswith("result: ")]
        for p in pts:
            say(f"  {p['lanes']:5d} lanes {p['ops_per_s']:>10,.0f} ops/s  "
                f"p50 {p['p50_us']:7.1f}  p99 {p['p99_us']:8.1f} us  leader "
                + (f"{p['leader_cycles_per_op']:6.0f} cyc/op"
                   if p.get("leader_cycles_per_op") else "n/a"))
        doc = {"ok": rc == 0 and len(pts) == len(lanes), "rc": rc,
               "others_cores": others, "steal_cores": steal,
               "seconds_per_run": dur, "warmup_ms": self.p["warmup_ms"],
               "wall_s": round(wall, 1), "points": pts,
               "setup": "3 bypaxd processes (-l 0-1, --idle-sleep-us 50) "
                        "with net_memif between each pair and one more "
                        "memif link each to bypax-dpdk-load (-l 1, one "
                        "process, DPDK client lanes, KV PUTs of 16 B on "
                        "keys k000000-k000999); leader cycles per op from "
                        "its /metrics: bypax_worker_busy_cycles_total over "
                        "bypax_requests_applied_total in the window"}
        if others > 0.1:
            doc["noisy"] = True
        if not doc["ok"]:
            doc["output_tail"] = out[-1500:]
            warn("deployed run failed: " + out[-400:])
        self.res["deployed"] = doc
        # Beside each point, bypax-cluster at the same client count: from
        # the e2e stage when it ran there, else measured now.
        doc["inprocess"] = {}
        for p in pts:
            n = p.get("lanes")
            if n and inprocess_at(self.res, n) is None:
                r = self.cluster(3, n, 16, 64, 64)
                say(f"  in-process at {n} lanes {self.fmt_point(r)}")
                doc["inprocess"][str(n)] = r

    def durable(self):
        """Three durable bypaxd ([cluster] durability = wal) over net_memif
        and bypax-dpdk-load, the WAL on tmpfs and then on the disk, at
        etcd's client counts: writes/s, latency, and syncs per committed
        op from the members' /metrics, beside etcd (which fsyncs too)."""
        lib = os.path.join(ROOT, "tests", "dpdk", "memif_lib.sh")
        gen = os.path.join(self.a.build_dir or "", "dataplane",
                           "bypax-dpdk-load")
        if not self.a.build_dir or not os.access(gen, os.X_OK):
            self.res["notes"].append("durable stage needs a build directory "
                                     "with dataplane/bypax-dpdk-load")
            return
        et = self.res.get("etcd") or {}
        lanes = sorted({r["conns"] for r in et.get("runs", [])} or
                       set(self.p["deployed_lanes"]))
        # At least 3 s: a durable member's first second holds its segment
        # preallocation and first syncs (1 s runs measured mostly that).
        dur = max(3, self.p["dur"])
        doc = {"lanes": lanes, "seconds_per_run": dur, "storage": {}}
        for where, root in (("tmpfs", "/dev/shm"), ("disk", "/var/tmp")):
            say(f"durable: three bypaxd with durability = wal, the WAL on "
                f"{where} ({root}), bypax-dpdk-load at "
                f"{', '.join(str(n) for n in lanes)} lanes, {dur} s each")
            self.wait_quiet()
            walroot = tempfile.mkdtemp(prefix="bpxbench-wal.", dir=root)
            rc, out, others, steal, wall = self.measured(
                ["bash", "-c", durable_script(self.a.build_dir, lib, lanes,
                                              dur, self.p["warmup_ms"],
                                              walroot)],
                90 + len(lanes) * (dur + 20))
            shutil.rmtree(walroot, ignore_errors=True)
            pts = durable_points(out)
            for p in pts:
                say(f"  {p['lanes']:5d} lanes {p['ops_per_s']:>10,.0f} "
                    f"writes/s  p50 {p['p50_us']:7.1f}  p99 "
                    f"{p['p99_us']:8.1f} us  syncs/op "
                    f"{syncs_per_op_text(p)}")
            d = {"ok": rc == 0 and len(pts) == len(lanes), "rc": rc,
                 "others_cores": others, "points": pts, "root": root}
            if not d["ok"]:
                d["output_tail"] = out[-1500:]
                warn(f"durable run ({where}) failed: " + out[-400:])
            doc["storage"][where] = d
        doc["etcd_storage"] = "tmpfs" if self.a.etcd_tmpfs else "disk"
        self.res["durable"] = doc

    def memif(self):
        if self.a.no_memif:
            return
        lib = os.path.join(ROOT, "tests", "dpdk", "memif_lib.sh")
        if not self.a.build_dir or not os.path.exists(lib):
            self.res["notes"].append("memif run needs a build directory and "
                                     "tests/dpdk/memif_lib.sh")
            return
        dur = max(3, self.p["dur"] * 2)
        lanes = 32
        say(f"three bypaxd processes over net_memif, bypax-load (kernel UDP "
            f"through net_tap) with {lanes} lanes for {dur} s")
        script = f"""
set -u
BUILD={self.a.build_dir}
# Every write is a new key: room for {dur} s of them at well over the
# kernel path's rate (memif_lib.sh's 65536 filled in 3 s at 67 k/s).
KV_CAPACITY=2000000
source {lib}
need_root
cluster_init
trap cluster_cleanup EXIT
for i in 0 1 2; do start_replica $i --bootstrap; done
wait_for "a leader" 20 has_leader || exit 1
"$BUILD/client/bypax-load" --config "$CONF" --duration {dur} --lanes {lanes}
"""
        rc, out, others, steal, _ = self.measured(["bash", "-c", script],
                                                  dur + 120)
        if rc == 77:
            self.res["notes"].append("memif stage skipped: needs root and "
                                     "/dev/net/tun for net_tap")
            return
        m = re.search(r"load: (\d+) writes acknowledged, (\d+) failed, "
                      r"([\d.]+) ops/s", out)
        doc = {"ok": rc == 0 and m is not None, "rc": rc,
               "others_cores": others, "lanes": lanes, "seconds": dur,
               "setup": "3 bypaxd processes (-l 0-1, --idle-sleep-us 50), "
                        "net_memif between each pair, clients through "
                        "net_tap and kernel UDP (libbypax)"}
        if m:
            doc.update({"acked": int(m.group(1)), "failed": int(m.group(2)),
                        "ops_per_s": float(m.group(3))})
            say(f"  {doc['ops_per_s']:,.0f} writes/s acknowledged")
        else:
            doc["output_tail"] = out[-800:]
            warn("memif run failed: " + out[-300:])
        self.res["memif"] = doc

    def functions(self):
        """The reference configuration once more, under perf: CPU cycles
        per committed op by function (bench/functions.py)."""
        why = functions.perf_usable()
        if why:
            self.res["notes"].append(f"no cycles by function: {why}")
            return
        ref = self.res.get("reference", {})
        lanes = ref.get("clients", 64)
        dur = max(2, self.p["dur"])
        say(f"cycles per op by function: the reference point ({lanes} "
            f"clients) under perf record -e cpu-clock for {dur} s")
        self.wait_quiet()
        cmd = ([self.exe("bypax-cluster")] + self.eal() +
               ["--", "--replicas", "3", "--loadgens", "1", "--lanes",
                str(lanes), "--duration", str(dur), "--get-pct", "0",
                "--keys", "1000", "--value-bytes", "16", "--batch", "64",
                "--window", "64", "--quiet",
                "--idle-sleep-us", str(self.a.idle_sleep_us)])
        p, err = functions.profile(cmd, dur, dur + 120)
        if err:
            warn(f"cycles by function: {err}")
            self.res["notes"].append(f"no cycles by function: {err}")
            return
        p["clients"] = lanes
        self.res["functions"] = p
        for line in functions.table(p).splitlines()[:8]:
            say("  " + line)

    # -- the whole run

    def run(self):
        t0 = time.monotonic()
        others = self.cpu.others_now(1.0)
        self.m["others_cores_at_start"] = others
        if others > 0.3:
            warn(f"other processes use {others:.2f} cores right now "
                 f"({top_others()}); figures from a busy machine vary")
        stages = [("micro", self.micro), ("fwd", self.fwd),
                  ("e2e", self.e2e), ("sweeps", self.sweeps),
                  ("etcd", self.etcd),
                  ("failover", self.failover),
                  ("deployed", self.deployed), ("durable", self.durable),
                  ("memif", self.memif),
                  ("functions", self.functions)]
        only = set(self.a.only.split(",")) if self.a.only else None
        for name, fn in stages:
            if only and name not in only:
                continue
            if name == "etcd" and "closed" not in self.res:
                continue
            s = time.monotonic()
            fn()
            self.res.setdefault("stage_seconds", {})[name] = round(
                time.monotonic() - s, 1)
        self.res["seconds"] = round(time.monotonic() - t0, 1)
        self.res["disturbed_runs"] = {"noisy": self.noisy,
                                      "total": self.runs}
        return self.res


def kv_sized(keys, value_bytes):
    """sm_args for a store that holds exactly these keys (k000000...) with
    values of this size: one 48-byte chunk each while key and value fit
    32 bytes, one more per further 44 (docs/config.md)."""
    key_bytes = max(7, len(str(keys - 1)) + 1)
    extra = max(0, key_bytes + value_bytes - 32)
    chunks = 1 + (extra + 43) // 44
    return f"capacity={keys},bytes={keys * chunks * 48}"


def deployed_script(build, lib, lanes, dur, warmup_ms, setup="",
                    before=lambda n: "", after=lambda n: ""):
    """The deployed stage's shell: memif_lib.sh's cluster with memif client
    links and metrics keys (setup: more shell once the config is written),
    then one generator run per lane count, between before(n) and after(n)
    lines."""
    runs = "\n".join(
        f"{before(n)}dpdk_load --lanes {n} --duration {dur} --warmup-ms "
        f"{warmup_ms} --progress-s 0 || status=1\n{after(n)}"
        for n in lanes)
    return f"""
set -u
BUILD={build}
CLIENT_LINK=memif
METRICS=1
source {lib}
cluster_init
trap cluster_cleanup EXIT
{setup}
for i in 0 1 2; do start_replica $i --bootstrap; done
wait_for "a leader" 30 has_leader || exit 1
status=0
{runs}
exit $status
"""


def durable_script(build, lib, lanes, dur, warmup_ms, walroot):
    """The durable stage's shell: the deployed stage's cluster with
    durability = wal (a wal_dir each under walroot), and around each
    generator run the members' WAL and commit counters (walstat lines)."""
    setup = f"""sed -i "/^id = $CLUSTER_ID\$/a durability = wal" "$CONF"
for i in 0 1 2; do
	sed -i "/^\[member$i\]\$/a wal_dir = {walroot}/wal$i" "$CONF"
done
walstat()
{{
	local i
	for i in 0 1 2; do
		curl -s --max-time 5 "http://127.0.0.1:$((40000 + TAG + i * 7))/metrics" |
			awk -v w="$1 $2" -v i="$i" '
			$1 == "bypax_wal_syncs_total" {{ s = $2 }}
			$1 == "bypax_wal_group_commits_total" {{ g = $2 }}
			$1 == "bypax_requests_applied_total" {{ r = $2 }}
			$1 == "bypax_slots_committed_total" {{ c = $2 }}
			END {{ print "walstat: " w " member=" i " syncs=" s+0 " group_commits=" g+0 " requests=" r+0 " slots=" c+0 }}'
	done
}}"""
    return deployed_script(build, lib, lanes, dur, warmup_ms, setup,
                           before=lambda n: f"walstat before {n}\n",
                           after=lambda n: f"walstat after {n}")


def durable_points(out):
    """The generator's result lines of a durable run, each with the
    members' syncs per committed op over that run (walstat lines)."""
    stats = {}
    pts = []
    for line in out.splitlines():
        if line.startswith("walstat: "):
            f = line.split()
            kv = dict(t.split("=", 1) for t in f[3:])
            stats[(f[1], int(f[2]), int(kv["member"]))] = {
                k: int(float(v)) for k, v in kv.items() if k != "member"}
        elif line.startswith("result: "):
            pts.append(parse_dload_result(line))
    for p in pts:
        n = p.get("lanes")
        per = []
        for m in range(3):
            a, b = stats.get(("before", n, m)), stats.get(("after", n, m))
            if not a or not b or b["requests"] <= a["requests"]:
                continue
            per.append({"member": m,
                        "syncs": b["syncs"] - a["syncs"],
                        "group_commits": b["group_commits"] -
                        a["group_commits"],
                        "requests": b["requests"] - a["requests"],
                        "slots": b["slots"] - a["slots"]})
        for x in per:
            x["syncs_per_op"] = round(x["syncs"] / x["requests"], 5)
        p["members"] = per
        if per:
            p["syncs_per_op_max"] = max(x["syncs_per_op"] for x in per)
    return pts


def parse_dload_result(line):
    """bypax-dpdk-load's result line ("result: key=value ..."): numbers as
    numbers, n/a as None."""
    out = {}
    for tok in line.split()[1:]:
        k, _, v = tok.partition("=")
        if v == "n/a":
            out[k] = None
            continue
        try:
            out[k] = int(v)
        except ValueError:
            try:
                out[k] = float(v)
            except ValueError:
                out[k] = v
    return out


# ---------------------------------------------------------------- report

def config_text(res):
    m, s = res["machine"], res["setup"]
    return (f"{m['host']}: {m['cpu']}, {m['cores']} cores, "
            f"{m['memory_gib']} GiB, {m['virtualization']}"
            + (f", {m['label']}" if m.get("label") else "")
            + f"; lcores {s['lcores']}"
            + (", hugepages" if s["hugepages"] else ", no hugepages")
            + (", busy polling" if not s["idle_sleep_us"]
               else f", idle sleep {s['idle_sleep_us']} us"))


def inprocess_at(res, clients):
    """bypax-cluster's 3-replica 16 B point at this many clients: the
    reference median when it is there, else the sweep's point."""
    rf = res.get("reference", {})
    if rf.get("clients") == clients and rf.get("median"):
        return rf["median"]
    pts = res.get("closed", {}).get("3r", {}).get("points", [])
    return next((p for p in pts if p.get("clients") == clients
                 and p.get("ok")),
                res.get("deployed", {}).get("inprocess", {}).get(
                    str(clients)))


def deployed_headline(res):
    """The deployed shape's biggest point beside the in-process figure at
    the same client count, and their ratios."""
    pts = [p for p in res.get("deployed", {}).get("points", [])
           if p.get("ops_per_s")]
    if not pts:
        return {}
    d = max(pts, key=lambda p: p["lanes"])
    h = {"deployed_lanes": d["lanes"],
         "deployed_ops_per_s": d["ops_per_s"],
         "deployed_p50_us": d["p50_us"], "deployed_p99_us": d["p99_us"],
         "deployed_leader_cycles_per_op": d.get("leader_cycles_per_op")}
    ip = inprocess_at(res, d["lanes"])
    if ip and ip.get("ops_per_s"):
        h["deployed_over_inprocess_ops_per_s"] = round(
            d["ops_per_s"] / ip["ops_per_s"], 3)
        if d.get("leader_cycles_per_op") and ip.get("leader_cycles_per_op"):
            h["deployed_over_inprocess_leader_cycles_per_op"] = round(
                d["leader_cycles_per_op"] / ip["leader_cycles_per_op"], 3)
    mf = res.get("memif", {})
    if mf.get("ok") and mf.get("ops_per_s"):
        h["deployed_over_kernel_client_ops_per_s"] = round(
            d["ops_per_s"] / mf["ops_per_s"], 1)
    return h


def ratio(a, b, nd=3):
    return round(a / b, nd) if a and b else None


def sweep_headline(res):
    """Issue 11's goals as ratios within this run: leader cycles per op
    and ops/s at 1M and 10M keys over 1k; 4096 over 512 lanes; each value
    size's peak over 16 B's."""
    h = {}
    ks = {p["keys"]: p for p in res.get("key_sweep", {}).get("points", [])
          if p.get("ok")}
    base = ks.get(1000)
    for k, name in ((1000000, "1M"), (10000000, "10M")):
        if base and k in ks:
            h[f"keys_{name}_over_1k_leader_cycles_per_op"] = ratio(
                ks[k].get("leader_cycles_per_op"),
                base.get("leader_cycles_per_op"))
            h[f"keys_{name}_over_1k_ops_per_s"] = ratio(
                ks[k].get("ops_per_s"), base.get("ops_per_s"))
    ls = {p["lanes"]: p for p in res.get("lanes_sweep", {}).get("points", [])
          if p.get("ok")}
    if 512 in ls and 4096 in ls:
        h["lanes_4096_over_512_leader_cycles_per_op"] = ratio(
            ls[4096].get("leader_cycles_per_op"),
            ls[512].get("leader_cycles_per_op"))
        h["lanes_4096_over_512_cycles_per_op"] = ratio(
            ls[4096].get("cycles_per_op"), ls[512].get("cycles_per_op"))
        h["lanes_4096_over_512_ops_per_s"] = ratio(
            ls[4096].get("ops_per_s"), ls[512].get("ops_per_s"))
    closed = res.get("closed", {})
    vals = {s["value_bytes"]: s["peak"] for s in closed.values()
            if s.get("replicas") == 3 and s.get("batch") == 64}
    if 16 in vals:
        for vb, pk in sorted(vals.items()):
            if vb != 16:
                h[f"value_{vb}B_over_16B_leader_cycles_per_op"] = ratio(
                    pk.get("leader_cycles_per_op"),
                    vals[16].get("leader_cycles_per_op"))
    return h


def headline(res):
    """The figures the issue asks for, computed from the results."""
    h = {}
    fwd = {f.get("value_bytes"): f for f in res.get("fwd", []) if f.get("ok")}
    closed = res.get("closed", {})
    if "3r" in closed and 16 in fwd:
        pk = res.get("reference", {}).get("median") or closed["3r"]["peak"]
        f = fwd[16]
        h["leader_cycles_per_op"] = pk.get("leader_cycles_per_op")
        h["all_cycles_per_op"] = pk.get("cycles_per_op")
        h["fwd_cycles_per_packet"] = f.get("fwd_cycles_per_packet")
        if f.get("fwd_cycles_per_packet"):
            h["leader_cycles_per_op_over_fwd_cycles_per_packet"] = round(
                pk["leader_cycles_per_op"] / f["fwd_cycles_per_packet"], 1)
            h["all_cycles_per_op_over_fwd_cycles_per_packet"] = round(
                pk["cycles_per_op"] / f["fwd_cycles_per_packet"], 1)
        h["peak_ops_per_s"] = pk.get("ops_per_s")
        h["fwd_packets_per_s"] = f.get("packets_per_s")
        h["peak_clients"] = pk.get("clients")
    h.update(deployed_headline(res))
    h.update(sweep_headline(res))
    e = res.get("etcd")
    if e and e.get("pairs"):
        p = max(e["pairs"], key=lambda x: x["clients"])
        b, w = p["bypax"], p["etcd"]
        h["vs_etcd_clients"] = p["clients"]
        if w["writes_per_s"]:
            h["writes_per_s_ratio_bypax_over_etcd"] = round(
                b.get("ops_per_s", 0) / w["writes_per_s"], 1)
        if b.get("p99_ns"):
            h["p99_ratio_etcd_over_bypax"] = round(
                w["p99_us"] * 1e3 / b["p99_ns"], 1)
    return h


def table(res):
    m = res["machine"]
    tag = f"[{m['host']}/{m['cores']}c]"
    L = []
    add = L.append
    add(f"bypax bench ({res['profile']}), {res['date']}, git {m['git']}")
    add(f"machine: {config_text(res)}")
    add(f"         {m['os']}, kernel {m['kernel']}, DPDK {m['dpdk']}, "
        f"TSC {((m.get('tsc_hz') or 0) / 1e9):.2f} GHz; other processes "
        f"used {m.get('others_cores_at_start', 0):.2f} cores at start")
    s = res["setup"]
    add(f"every line: {tag} = that machine; e2e = bypax-cluster, one "
        "process, replicas and 1 load generator on net_ring ports, "
        "KV PUTs, window 64 unless said;")
    add(f"            {s.get('run_seconds', '?')} s per run, latency "
        f"percentiles leave out requests started in the first "
        f"{s.get('warmup_ms', 0)} ms")
    add("")
    mi = res.get("micro", {})

    def mns(name):
        b = mi.get(name)
        return b["ns_per_item"] if b and b.get("ns_per_item") else None
    row = []
    for n, lab in (("BM_Commit/1", "commit b1"), ("BM_Commit/8", "b8"),
                   ("BM_Commit/32", "b32"), ("BM_Commit/64", "b64"),
                   ("BM_Commit5/1", "5r b1"), ("BM_Commit5/32", "5r b32")):
        v = mns(n)
        if v:
            row.append(f"{lab} {v:.0f}")
    if row:
        add(f"micro   px_step per committed request, in memory, ns: "
            f"{', '.join(row)}  {tag} 1 core")
    row = []
    for n, lab in (("BM_WireEncode/request", "enc request"),
                   ("BM_WireDecode/request", "dec request"),
                   ("BM_WireEncode/accept_batch32", "enc accept(32)"),
                   ("BM_WireDecode/accept_batch32", "dec accept(32)"),
                   ("BM_FrameDecode", "parse+decode frame")):
        v = mns(n)
        if v:
            row.append(f"{lab} {v:.0f}")
    if row:
        add(f"micro   wire per message, ns: {', '.join(row)}  {tag} 1 core")
    row = []
    for n, lab in (("BM_AuthSign/accepted", "sign accepted(88 B)"),
                   ("BM_AuthVerify/accepted", "verify"),
                   ("BM_AuthSign/promise_full", "sign full promise(1472 B)"),
                   ("BM_AuthVerify/promise_full", "verify")):
        v = mns(n)
        if v:
            row.append(f"{lab} {v:.0f}")
    if row:
        add(f"micro   cluster key tag per message, ns: {', '.join(row)}  "
            f"{tag} 1 core")
    row = []
    for n, lab in (("BM_SessionLookup/hit", "session lookup hit"),
                   ("BM_SessionLookup/miss", "miss"),
                   ("BM_RingSameCore<struct ctl_cmd>", "ring hand-off 1 core"),
                   ("BM_RingCrossCore<struct ctl_cmd>/real_time",
                    "across cores")):
        v = mns(n)
        if v:
            row.append(f"{lab} {v:.0f}")
    if row:
        add(f"micro   ns: {', '.join(row)}  {tag}")
    for f in res.get("fwd", []):
        if f.get("ok"):
            add(f"limit   io forwarding, {f['frame_bytes']:4d} B frames "
                f"({f['value_bytes']} B values): "
                f"{f['packets_per_s'] / 1e6:6.2f} Mpps, "
                f"{f['fwd_cycles_per_packet']:5.1f} cycles/packet"
                + (f" (median of {len(f['runs_cycles_per_packet'])}: "
                   + "/".join("%.0f" % (c or 0)
                              for c in f["runs_cycles_per_packet"]) + ")"
                   if len(f.get("runs_cycles_per_packet", [])) > 1 else "")
                + f"  {tag} {f['mode']}, lcores {f['lcores']}, "
                f"{f['inflight']} in flight")
    add("")
    add(f"{'e2e closed loop, peak':34s} {'ops/s':>10s} {'p50 us':>8s} "
        f"{'p99 us':>8s} {'p99.9':>8s} {'batch':>6s} {'pkt/op':>6s} "
        f"{'ldr cyc/op':>10s} {'clients':>7s}")
    for name, s in res.get("closed", {}).items():
        p = s["peak"]
        desc = (f"{s['replicas']} replicas, {s['value_bytes']} B, "
                f"batch<={s['batch']}")
        add(f"{desc:34s} {p.get('ops_per_s', 0):>10,.0f} "
            f"{p.get('p50_ns', 0) / 1e3:>8.1f} {p.get('p99_ns', 0) / 1e3:>8.1f} "
            f"{p.get('p999_ns', 0) / 1e3:>8.1f} {p.get('batch_avg', 0):>6.1f} "
            f"{p.get('packets_per_op', 0):>6.2f} "
            f"{p.get('leader_cycles_per_op', 0):>10,.0f} {p['clients']:>7d}  "
            f"{tag}" + ("" if p.get("ok") else " FAILED")
            + (" noisy" if p.get("noisy") else ""))
    ws = res.get("window_sweep")
    if ws:
        best = max(ws["points"], key=lambda p: p.get("ops_per_s", 0))
        add("window  " + ", ".join(
            f"{p['window']}: {p.get('ops_per_s', 0) / 1e3:.0f}k"
            for p in ws["points"]) + f" ops/s (best {best['window']})  "
            f"{tag} 3r, 16 B, {ws['clients']} clients")
    bs = res.get("batch_sweep")
    if bs:
        add("batch   " + ", ".join(
            f"{p['batch']}: {p.get('ops_per_s', 0) / 1e3:.0f}k"
            for p in bs["points"]) + f" ops/s  {tag} 3r, 16 B, "
            f"{bs['clients']} clients")
    for name, s in res.get("open", {}).items():
        pts = [p for p in s["points"] if p.get("ok")]
        # Kept up: committed what was offered with the median under 1 ms.
        kept = [p for p in pts
                if p.get("ops_per_s", 0) >= 0.97 * p["offered_per_s"]
                and p.get("p50_ns", 1e18) <= 1e6]
        txt = (f"open    {s['replicas']}r {s['value_bytes']} B batch<="
               f"{s['batch']}: ")
        if kept:
            top = max(kept, key=lambda p: p["ops_per_s"])
            low = min(kept, key=lambda p: p["ops_per_s"])
            txt += (f"kept up to {top['ops_per_s']:,.0f} ops/s (p50 "
                    f"{top['p50_ns'] / 1e3:.0f} us, p99 "
                    f"{top['p99_ns'] / 1e3:,.0f} us); at "
                    f"{low['ops_per_s']:,.0f} ops/s p50 "
                    f"{low['p50_ns'] / 1e3:.0f} us p99 "
                    f"{low['p99_ns'] / 1e3:,.0f} us")
        sat = max(pts, key=lambda p: p.get("ops_per_s", 0)) if pts else None
        if sat:
            txt += f"; most {sat['ops_per_s']:,.0f}"
        smax = max((p.get("stall_max_ms", 0) for p in pts), default=0)
        if smax:
            txt += f"; longest OS stall {smax:.1f} ms"
        add(txt + f"  {tag}")
    for line in sweep_lines(res, tag):
        add(line)
    h = res.get("headline", {})
    if h.get("leader_cycles_per_op_over_fwd_cycles_per_packet"):
        add("")
        add(f"ratio   leader cycles/op {h['leader_cycles_per_op']:,.0f} / "
            f"forwarding cycles/packet {h['fwd_cycles_per_packet']:.1f} = "
            f"{h['leader_cycles_per_op_over_fwd_cycles_per_packet']}x "
            f"(all lcores {h['all_cycles_per_op']:,.0f} cycles/op = "
            f"{h['all_cycles_per_op_over_fwd_cycles_per_packet']}x); peak "
            f"{h['peak_ops_per_s']:,.0f} ops/s vs "
            f"{h['fwd_packets_per_s'] / 1e6:.1f} Mpps forwarded  {tag} "
            f"3r 16 B, {h['peak_clients']} clients")
    rf = res.get("reference")
    if rf and len(rf.get("ops_per_s_runs", [])) > 1:
        add(f"ref     3 replicas, 16 B, batch<=64, {rf['clients']} clients, "
            f"{len(rf['ops_per_s_runs'])} runs: ops/s "
            + "/".join(f"{x / 1e3:.0f}k" for x in rf["ops_per_s_runs"])
            + ", leader cycles/op "
            + "/".join(f"{x:.0f}" for x in rf["leader_cycles_per_op_runs"])
            + f" (median used above)  {tag}")
    e = res.get("etcd")
    if e:
        add("")
        for p in e.get("pairs", []):
            w, b = p["etcd"], p["bypax"]
            add(f"etcd    {p['clients']:4d} clients: etcd "
                f"{w['writes_per_s']:>8,.0f} writes/s p50 "
                f"{w['p50_us'] / 1e3:.2f} ms p99 {w['p99_us'] / 1e3:.2f} ms"
                f" | bypax {b.get('ops_per_s', 0):>9,.0f} p50 "
                f"{b.get('p50_ns', 0) / 1e6:.3f} ms p99 "
                f"{b.get('p99_ns', 0) / 1e6:.3f} ms  {tag}")
        if h.get("writes_per_s_ratio_bypax_over_etcd"):
            add(f"        bypax/etcd writes/s {h['writes_per_s_ratio_bypax_over_etcd']}x, "
                f"etcd p99 / bypax p99 {h.get('p99_ratio_etcd_over_bypax')}x "
                f"at {h['vs_etcd_clients']} clients  {tag}")
        add(f"        differ: etcd {e['etcd_version']}, 3 processes, "
            f"storage {e['storage']}, {e['transport']}, one leader, "
            f"{e['load_tool']}; bypax: one process, in memory, no "
            "persistence, DPDK net_ring virtual NICs (no kernel), "
            "clients in-process. Both on the same cores.")
    fo = res.get("failover")
    if fo:
        if fo.get("unavailability_ms"):
            u = fo["unavailability_ms"]
            add(f"failover {fo['kills']} leader kills (SIGKILL under load): "
                f"client-observed unavailability p50 {u['p50']} ms p99 "
                f"{u['p99']} ms max {u['max']} ms  {tag} 3 bypaxd processes, "
                "net_memif, kernel UDP clients via net_tap, see "
                f"{fo.get('json', 'the JSON')}")
            av = fo.get("availability", {})
            for rate, what in (("injected", "at the injected fault rate"),
                               ("one_per_30_days",
                                "at 1 fault per replica per 30 days")):
                if rate in av:
                    a = av[rate]
                    add(f"availability {what} (two-state Markov model, "
                        f"measured repair times): replica "
                        f"{a['replica']['nines']} nines, 3 replicas "
                        f"{a['cluster3']['nines']} nines, 5 replicas "
                        f"{a['cluster5']['nines']} nines")
        elif fo.get("measured"):
            add(f"failover {fo['kills']} kills: see failover.output_tail in "
                "the JSON  " + tag)
        else:
            add(f"failover {fo.get('note', 'failed (exit %s)' % fo.get('rc'))}")
    for line in deployed_lines(res, tag):
        add(line)
    for line in durable_lines(res, tag):
        add(line)
    mf = res.get("memif")
    if mf and mf.get("ok"):
        add(f"memif   3 bypaxd processes, kernel UDP clients via net_tap, "
            f"{mf['lanes']} lanes: {mf['ops_per_s']:,.0f} writes/s  {tag}")
    for line in deployed_ratio_lines(res, tag):
        add(line)
    fn = res.get("functions")
    if fn:
        add(f"cycles per committed op by function (perf, cpu-clock, all "
            f"lcores, idle polling included; {fn['clients']} clients)  {tag}")
        for line in functions.table(fn).splitlines():
            add("  " + line)
    d = res.get("disturbed_runs", {})
    if d.get("noisy"):
        add(f"note    {d['noisy']} of {d['total']} e2e runs shared the CPU "
            "with other processes (> 0.1 core, or lcores preempted > 1% of "
            "the run): marked noisy in the JSON; their tails show the OS")
    for n in res.get("notes", []):
        add("note    " + n)
    add(f"run took {res.get('seconds', 0):.0f} s")
    return "\n".join(L)


def goal(x, limit, at_most=True):
    """'1.12x (goal <= 1.5x: met)'"""
    if x is None:
        return "n/a"
    ok = x <= limit if at_most else x >= limit
    return (f"{x:.2f}x (goal {'<=' if at_most else '>='} {limit}x: "
            f"{'met' if ok else 'NOT met'})")


def sweep_lines(res, tag):
    """The key-count, client-count and value-size rows, with the issue's
    goals read off as ratios of this run."""
    L = []
    h = res.get("headline", {})
    ks = res.get("key_sweep")
    if ks:
        L.append("keys    " + ", ".join(
            f"{p['keys']:,}: {p.get('ops_per_s', 0) / 1e3:,.0f}k ops/s "
            f"leader {p.get('leader_cycles_per_op', 0):,.0f} cyc/op"
            + ("" if p.get("ok") else " FAILED")
            + (" noisy" if p.get("noisy") else "")
            for p in ks["points"]) + f"  {tag} 3r, 16 B, {ks['clients']} "
            "clients, store capacity=N,bytes=48N, every key PUT first")
        for name in ("1M", "10M"):
            c = h.get(f"keys_{name}_over_1k_leader_cycles_per_op")
            o = h.get(f"keys_{name}_over_1k_ops_per_s")
            if c is not None or o is not None:
                L.append(f"ratio   keys {name}/1k: leader cycles/op "
                         f"{goal(c, 1.5)}, ops/s {goal(o, 0.7, False)}  "
                         f"{tag}")
    ls = res.get("lanes_sweep")
    if ls:
        L.append("lanes   " + ", ".join(
            f"{p['lanes']}: {p.get('ops_per_s', 0) / 1e3:,.0f}k ops/s "
            f"leader {p.get('leader_cycles_per_op', 0):,.0f} cyc/op "
            f"(all {p.get('cycles_per_op', 0):,.0f})"
            + ("" if p.get("ok") else " FAILED")
            + (" noisy" if p.get("noisy") else "")
            for p in ls["points"]) + f"  {tag} 3r, 16 B, 1,000 keys")
        c = h.get("lanes_4096_over_512_leader_cycles_per_op")
        if c is not None:
            L.append(f"ratio   lanes 4096/512: leader cycles/op "
                     f"{goal(c, 1.2)} (all lcores "
                     f"{h.get('lanes_4096_over_512_cycles_per_op')}x), "
                     f"ops/s {h.get('lanes_4096_over_512_ops_per_s')}x  "
                     f"{tag}")
    vr = [(k, v) for k, v in h.items() if k.startswith("value_")]
    if vr:
        L.append("values  leader cycles/op at each size's peak over 16 B's: "
                 + ", ".join(f"{k.split('_')[1]} {v}x" for k, v in vr)
                 + f"  {tag} 3r, batch<=64")
    return L


SYNCS_PER_OP_GOAL = 0.05  # issue 12: at most this many syncs per op


def syncs_per_op_text(p):
    """A durable point's syncs per committed op, the most of any member,
    and whether it meets the goal; n/a when no member's /metrics counted
    (a missing figure must not read as 0 syncs, a goal met)."""
    v = p.get("syncs_per_op_max")
    if v is None:
        return "n/a (no member's /metrics counted)"
    verdict = "met" if v <= SYNCS_PER_OP_GOAL else "NOT met"
    return (f"{v:.4f} (most of any member; goal <= {SYNCS_PER_OP_GOAL}: "
            f"{verdict})")


def durable_lines(res, tag):
    """The durable stage's rows: each storage and client count, beside etcd
    at the same count (etcd fsyncs every commit; it ran on the disk unless
    --etcd-tmpfs), with syncs per committed op."""
    du = res.get("durable")
    if not du:
        return []
    et = {r["conns"]: r for r in (res.get("etcd") or {}).get("runs", [])}
    # The same cluster in memory (the deployed stage), where it ran at the
    # same lanes: what durability itself costs, apart from the machine.
    deployed = {p["lanes"]: p for p in (res.get("deployed") or {})
                .get("points", []) if p.get("ops_per_s")}
    L = [f"durable 3 bypaxd, durability = wal, bypax-dpdk-load, 16 B PUTs, "
         f"{du['seconds_per_run']} s per run; etcd on "
         f"{du.get('etcd_storage', '?')}"]
    for where, d in du.get("storage", {}).items():
        if not d.get("points"):
            L.append(f"durable WAL on {where}: FAILED (exit {d.get('rc')}): "
                     "see durable.storage in the JSON")
            continue
        for p in d["points"]:
            txt = (f"durable WAL on {where:5s} {p['lanes']:5d} lanes: "
                   f"{p['ops_per_s']:>10,.0f} writes/s p50 "
                   f"{p['p50_us']:,.0f} us p99 {p['p99_us']:,.0f} us, "
                   f"syncs per committed op {syncs_per_op_text(p)}")
            e = et.get(p["lanes"])
            if e and e.get("writes_per_s"):
                ratio = p["ops_per_s"] / e["writes_per_s"]
                txt += (f" | etcd {e['writes_per_s']:,.0f} writes/s: "
                        f"{ratio:.1f}x (goal >= 20x: "
                        f"{'met' if ratio >= 20 else 'NOT met'})")
            mem = deployed.get(p["lanes"])
            if mem and mem.get("ops_per_s"):
                txt += (f" | in memory {mem['ops_per_s']:,.0f}: "
                        f"{p['ops_per_s'] / mem['ops_per_s']:.2f}x")
            L.append(txt + f"  {tag}")
    return L


def deployed_lines(res, tag):
    """The deployed stage's rows, each beside bypax-cluster's figure at the
    same client count (when the run has one)."""
    dp = res.get("deployed")
    if not dp:
        return []
    if not dp.get("points"):
        return [f"deployed FAILED (exit {dp.get('rc')}): see deployed."
                "output_tail in the JSON"]
    L = [f"deployed 3 bypaxd processes over net_memif, bypax-dpdk-load "
         f"(DPDK client lanes, a memif link per member), 16 B PUTs, "
         f"{dp['seconds_per_run']} s per run" + (" noisy" if dp.get("noisy")
                                                 else "")]
    for p in dp["points"]:
        c = p.get("leader_cycles_per_op")
        txt = (f"deployed {p['lanes']:5d} lanes: {p['ops_per_s']:>10,.0f} "
               f"ops/s p50 {p['p50_us']:,.0f} us p99 {p['p99_us']:,.0f} us, "
               f"leader {f'{c:,.0f}' if c else 'n/a'} cycles/op, "
               f"{p['acked']} acked, {p['failed']} failed")
        ip = inprocess_at(res, p["lanes"])
        if ip:
            txt += (f" | in-process {ip.get('ops_per_s', 0):,.0f} ops/s "
                    f"p50 {ip.get('p50_ns', 0) / 1e3:,.0f} us p99 "
                    f"{ip.get('p99_ns', 0) / 1e3:,.0f} us, leader "
                    f"{ip.get('leader_cycles_per_op', 0):,.0f} cycles/op")
        L.append(txt + f"  {tag}")
    return L


def deployed_ratio_lines(res, tag):
    """The deployed stage against the in-process and the kernel-client
    figures, as headline ratios."""
    L = []
    h = res.get("headline", {})
    parts = []
    if h.get("deployed_over_inprocess_ops_per_s"):
        parts.append(f"deployed/in-process at {h['deployed_lanes']} lanes: "
                     f"ops/s {h['deployed_over_inprocess_ops_per_s']}x, "
                     "leader cycles/op "
                     f"{h.get('deployed_over_inprocess_leader_cycles_per_op')}x")
    if h.get("deployed_over_kernel_client_ops_per_s"):
        parts.append("deployed (DPDK clients)/kernel clients ops/s "
                     f"{h['deployed_over_kernel_client_ops_per_s']}x")
    if parts:
        L.append("ratio   " + "; ".join(parts) + f"  {tag}")
    return L


# ---------------------------------------------------------------- plots

def gp_str(s):
    return "'" + str(s).replace("'", "") + "'"


def write_plot_data(res, d, var):
    """Data files for bench/plot.gp and a vars.gp naming them (gnuplot
    arrays); returns the path of vars.gp."""
    files, titles = [], []
    for name, s in res.get("open", {}).items():
        f = os.path.join(d, f"open-{name}.dat")
        with open(f, "w") as o:
            o.write("# offered ops/s, committed ops/s, p50, p99, p99.9 us\n")
            for p in sorted(s["points"], key=lambda p: p["offered_per_s"]):
                if p.get("ok") and p.get("committed"):
                    o.write(f"{p['ops_per_s']:.0f} {p['p50_ns'] / 1e3:.2f} "
                            f"{p['p99_ns'] / 1e3:.2f} "
                            f"{p['p999_ns'] / 1e3:.2f} "
                            f"{p['offered_per_s']}\n")
        files.append(f)
        titles.append(f"{s['replicas']} replicas, {s['value_bytes']} B, "
                      f"batch<={s['batch']}")
    var["etcd_file"] = ""
    e = res.get("etcd")
    if e and e.get("pairs"):
        var["etcd_file"] = os.path.join(d, "etcd.dat")
        with open(var["etcd_file"], "w") as o:
            o.write("# writes/s, p50 us, p99 us, connections\n")
            for p in e["pairs"]:
                w = p["etcd"]
                o.write(f"{w['writes_per_s']:.0f} {w['p50_us']} "
                        f"{w['p99_us']} {p['clients']}\n")
        var["etcd_title"] = (f"etcd {e['etcd_version']}, 3 members, "
                             f"{e['storage'].split(' ')[0]}, wrk "
                             f"{'/'.join(str(p['clients']) for p in e['pairs'])}"
                             " connections")
    var["closed_file"] = ""
    if "3r" in res.get("closed", {}):
        var["closed_file"] = os.path.join(d, "closed-3r.dat")
        with open(var["closed_file"], "w") as o:
            o.write("# ops/s, p50 us, p99 us, clients\n")
            for p in res["closed"]["3r"]["points"]:
                if p.get("ok") and p.get("committed"):
                    o.write(f"{p['ops_per_s']:.0f} {p['p50_ns'] / 1e3:.2f} "
                            f"{p['p99_ns'] / 1e3:.2f} {p['clients']}\n")
    var["batch_file"] = os.path.join(d, "batch.dat")
    with open(var["batch_file"], "w") as o:
        o.write("# batch, e2e ops/s, leader cycles/op, in-memory req/s\n")
        mem = {}
        for n, b in res.get("micro", {}).items():
            m = re.fullmatch(r"BM_Commit/(\d+)", n)
            if m and b.get("ns_per_item"):
                mem[int(m.group(1))] = 1e9 / b["ns_per_item"]
        e2e = {p["batch"]: p for p in res.get("batch_sweep", {}).get(
            "points", []) if p.get("ok")}
        for b in sorted(set(mem) | set(e2e)):
            p = e2e.get(b)
            o.write(f"{b} {p['ops_per_s'] if p else 'NaN'} "
                    f"{p['leader_cycles_per_op'] if p else 'NaN'} "
                    f"{mem.get(b, 'NaN')}\n")
        have = bool(mem or e2e)
    vp = os.path.join(d, "vars.gp")
    with open(vp, "w") as o:
        for k, v in var.items():
            o.write(f"{k} = {gp_str(v)}\n")
        n = len(files)
        o.write(f"array LF[{max(n, 1)}]\narray LT[{max(n, 1)}]\n")
        o.write(f"nlat = {n}\nhave_batch = {int(have)}\n")
        for i, (f, t) in enumerate(zip(files, titles), 1):
            o.write(f"LF[{i}] = {gp_str(f)}\nLT[{i}] = {gp_str(t)}\n")
    return vp


def plot(res, stem, plot_gp):
    if not shutil.which("gnuplot"):
        res["notes"].append("gnuplot not installed: no PNG plots")
        return []
    m = res["machine"]
    bs = res.get("batch_sweep", {})
    var = {
        "lat_png": stem + "-latency.png",
        "batch_png": stem + "-batch.png",
        "subtitle": (f"{m['host']}: {m['cpu']}, {m['cores']} cores, "
                     f"{m['virtualization']}"
                     + (f", {m['label']}" if m.get("label") else "")
                     + f"; lcores {res['setup']['lcores']}; "
                     f"{res['date'][:10]}, git {m['git']}, "
                     f"{res['profile']} run"),
        "batch_clients": str(bs.get("clients", "?")),
    }
    with tempfile.TemporaryDirectory() as d:
        vp = write_plot_data(res, d, var)
        p = subprocess.run(["gnuplot", vp, plot_gp],
                           capture_output=True, text=True)
        if p.returncode != 0:
            warn("gnuplot: " + p.stderr[-500:])
            res["notes"].append("plotting failed: " + p.stderr[-200:])
            return []
    out = []
    for f in (var["lat_png"], var["batch_png"]):
        if os.path.exists(f) and os.path.getsize(f) == 0:
            os.unlink(f)  # set output made it; nothing was drawn
        elif os.path.exists(f):
            out.append(f)
    return out


# ---------------------------------------------------------------- main

def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--profile", choices=PROFILES, default="default")
    ap.add_argument("--bin", required=True,
                    help="directories (colon-separated) with bypax-cluster, "
                         "bypax-fwd, bypax-bench, bypax-bench-dp")
    ap.add_argument("--build-dir", default="",
                    help="meson build directory (for memif/failover)")
    ap.add_argument("--build-desc", default="")
    ap.add_argument("--out-dir", default=os.path.join(ROOT, "bench",
                                                      "results"))
    ap.add_argument("--lcores", default="0-1" if (os.cpu_count() or 1) > 1
                    else "0")
    ap.add_argument("--fwd-lcores", default="")
    ap.add_argument("--hugepages", action="store_true")
    ap.add_argument("--socket-mem", type=int, default=1024)
    ap.add_argument("--pci", default="",
                    help="PCI addresses for bypax-fwd, space separated")
    ap.add_argument("--idle-sleep-us", type=int, default=0)
    ap.add_argument("--label", default="")
    ap.add_argument("--host", default="")
    ap.add_argument("--kills", type=int, default=None)
    ap.add_argument("--no-etcd", action="store_true")
    ap.add_argument("--etcd-tmpfs", action="store_true")
    ap.add_argument("--memif", action="store_true",
                    help="(the default now; kept for old command lines)")
    ap.add_argument("--no-memif", action="store_true",
                    help="skip the kernel-client memif stage")
    ap.add_argument("--only", default="",
                    help="comma-separated stages: micro,fwd,e2e,sweeps,"
                         "etcd,failover,deployed,durable,memif,"
                         "functions")
    ap.add_argument("--replot", default="",
                    help="only redraw the plots and table of a results JSON")
    a = ap.parse_args()
    a.pci = a.pci.split() if a.pci else []

    plot_gp = os.path.join(ROOT, "bench", "plot.gp")
    if a.replot:
        with open(a.replot) as f:
            res = json.load(f)
        stem = a.replot[:-5] if a.replot.endswith(".json") else a.replot
        pngs = plot(res, stem, plot_gp)
        print(table(res))
        for p in pngs:
            print("plot: " + os.path.relpath(p, ROOT))
        return 0

    os.makedirs(a.out_dir, exist_ok=True)
    s = Suite(a)
    date = datetime.date.today().isoformat()
    base = f"{date}-{s.m['host']}" + ("" if a.profile == "default"
                                      else f"-{a.profile}")
    stem = os.path.join(a.out_dir, base)
    n = 2
    while os.path.exists(stem + ".json"):
        stem = os.path.join(a.out_dir, f"{base}-{n}")
        n += 1
    s.stem = stem
    global LOG
    LOG = open(stem + ".log", "w")
    say(f"profile {a.profile}; results go to "
        f"{os.path.relpath(stem, ROOT)}.{{json,txt,log}} and -*.png")
    say("machine: " + config_text(s.res))
    res = s.run()
    res["headline"] = headline(res)
    with open(stem + ".json", "w") as f:
        json.dump(res, f, indent=1)
        f.write("\n")
    pngs = plot(res, stem, plot_gp)
    txt = table(res)
    with open(stem + ".txt", "w") as f:
        f.write(txt + "\n")
    print()
    print(txt)
    print()
    for p in [stem + ".json", stem + ".txt"] + pngs:
        print("wrote " + os.path.relpath(p, ROOT))
    LOG.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
