#!/usr/bin/env python3
"""functions: where a committed op's CPU time goes, by function.

Runs one bypax-cluster configuration under `perf record` (the cpu-clock
software event, so it works in VMs without hardware counters), then turns
each function's share of the samples into CPU cycles per committed op:

    cycles/op(f) = samples(f) / sample rate * TSC Hz / committed ops

over every lcore of the process, idle polling included (the poll loop's
own functions show it: rte_eth_rx_burst on empty rings, dp_replica_poll).
perf samples the whole process, so the sum over functions also holds the
EAL's start, the warm-up, the drain and the teardown, and is above
bypax-cluster's own figure ("cycles per op ... busy polls, all lcores"),
which also leaves out polls that received nothing. The rows of the hot
path's functions are what to read; functions of start-up (page faults,
memset of the tables) are overstated.

Used by scripts/bench (stage `functions`, see docs/performance.md) and on
its own:

    python3 bench/functions.py --cluster build-release/dataplane/bypax-cluster \\
        --seconds 3 --lanes 64

Exit 77 (a skip) when perf is not installed or not allowed to sample.
"""
import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

SAMPLE_HZ = 4999
TOP = 20


def say(msg):
    print(f"functions: {msg}", flush=True)


def perf_usable():
    """None when perf can sample this process's children, else why not."""
    if shutil.which("perf") is None:
        return "perf is not installed (Debian: linux-perf)"
    try:
        r = subprocess.run(["perf", "record", "-e", "cpu-clock", "-o",
                            os.devnull, "--", "true"],
                           capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as e:
        return f"perf record does not run: {e}"
    if r.returncode != 0:
        return ("perf record refused: " +
                (r.stderr.strip().splitlines() or ["?"])[-1])
    return None


REPORT_LINE = re.compile(r"^\s*([\d.]+)%\s+(\d+)\s+(\S+)\s+\[(.)\]\s+(.+?)\s*$")


def parse_report(text):
    """perf report --stdio -n --sort dso,symbol lines: (pct, samples,
    dso, kernel?, symbol) for every function."""
    rows = []
    for line in text.splitlines():
        m = REPORT_LINE.match(line)
        if m:
            rows.append({"pct": float(m.group(1)),
                         "samples": int(m.group(2)),
                         "dso": m.group(3),
                         "kernel": m.group(4) == "k",
                         "symbol": m.group(5)})
    return rows


def profile(cluster_cmd, seconds, timeout):
    """Runs cluster_cmd (which must write --json PATH, given last) under
    perf; returns (report dict, error text)."""
    tmp = tempfile.mkdtemp(prefix="bpxfuncs")
    data = os.path.join(tmp, "perf.data")
    js = os.path.join(tmp, "run.json")
    cmd = (["perf", "record", "-e", "cpu-clock", "-F", str(SAMPLE_HZ),
            "-o", data, "--"] + cluster_cmd + ["--json", js])
    try:
        r = subprocess.run(cmd, capture_output=True, text=True,
                           timeout=timeout)
        if r.returncode != 0:
            return None, f"exit {r.returncode}: {(r.stderr or r.stdout)[-400:]}"
        with open(js) as f:
            run = json.load(f)
        rep = subprocess.run(["perf", "report", "-i", data, "--stdio", "-n",
                              "--no-children", "--sort", "dso,symbol"],
                             capture_output=True, text=True, timeout=120)
        if rep.returncode != 0:
            return None, f"perf report failed: {rep.stderr[-300:]}"
    except (OSError, ValueError, subprocess.TimeoutExpired) as e:
        return None, str(e)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    rows = parse_report(rep.stdout)
    committed = run.get("committed") or 0
    tsc_hz = run.get("tsc_hz") or 0
    if not rows or committed <= 0 or tsc_hz <= 0:
        return None, (f"nothing to report: {len(rows)} functions, "
                      f"{committed} ops committed, tsc_hz {tsc_hz}")
    per_sample = tsc_hz / SAMPLE_HZ / committed
    total = sum(x["samples"] for x in rows)
    for x in rows:
        x["cycles_per_op"] = round(x["samples"] * per_sample, 1)
    return {
        "sample_hz": SAMPLE_HZ, "samples": total,
        "committed": committed, "ops_per_s": run.get("ops_per_s"),
        "run_cycles_per_op": run.get("cycles_per_op"),
        "run_leader_cycles_per_op": run.get("leader_cycles_per_op"),
        "all_cycles_per_op": round(total * per_sample, 1),
        "kernel_cycles_per_op": round(
            sum(x["samples"] for x in rows if x["kernel"]) * per_sample, 1),
        "top": rows[:TOP],
    }, None


def table(p):
    lines = [f"{'function':40s} {'where':18s} {'share':>6s} {'cycles/op':>10s}"]
    for x in p["top"]:
        lines.append(f"{x['symbol'][:40]:40s} {x['dso'][:18]:18s} "
                     f"{x['pct']:5.1f}% {x['cycles_per_op']:10.1f}")
    lines.append(f"all functions (the whole process: EAL start, warm-up, "
                 f"drain and teardown too, so above the run's own figure): "
                 f"{p['all_cycles_per_op']:,.0f} cycles/op, of which the "
                 f"kernel {p['kernel_cycles_per_op']:,.0f}; bypax-cluster's "
                 f"busy-poll figure {p.get('run_cycles_per_op') or 0:,.0f} "
                 f"(leader {p.get('run_leader_cycles_per_op') or 0:,.0f})")
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(
        prog="functions", description=__doc__.split("\n\n")[0])
    ap.add_argument("--cluster", required=True,
                    help="the bypax-cluster binary")
    ap.add_argument("--seconds", type=int, default=3)
    ap.add_argument("--lanes", type=int, default=64)
    ap.add_argument("--lcores", default="0-1")
    ap.add_argument("--json", help="write the report here too")
    a = ap.parse_args()
    if a.seconds <= 0 or a.lanes <= 0:
        ap.error(f"--seconds {a.seconds} and --lanes {a.lanes} must be > 0")
    why = perf_usable()
    if why:
        say(f"skip: {why}")
        return 77
    cmd = [a.cluster, "-l", a.lcores, "--no-huge", "-m", "1024", "--no-pci",
           "--no-shconf", "--log-level=error", "--file-prefix",
           f"bpxfuncs{os.getpid()}", "--", "--replicas", "3", "--loadgens",
           "1", "--lanes", str(a.lanes), "--duration", str(a.seconds),
           "--get-pct", "0", "--keys", "1000", "--value-bytes", "16",
           "--batch", "64", "--window", "64", "--quiet"]
    p, err = profile(cmd, a.seconds, a.seconds + 120)
    if err:
        say(f"failed: {err}")
        return 1
    print(table(p))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(p, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
