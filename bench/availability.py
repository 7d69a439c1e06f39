#!/usr/bin/env python3
"""Availability from measured failure and repair rates (docs/performance.md).

The two-state Markov model: a component is up (1) or down (0); it fails at
rate p01 (up -> down) and is repaired at rate p10 (down -> up), both per
hour. Its steady-state availability is A = p10 / (p01 + p10).

- One replica: p01 = the faults injected per replica-hour of the run, p10 =
  1 / (mean time from the replica's restart to its voting again). The model
  assumes a supervisor restarts a dead replica at once (the systemd unit
  does); the bench's own wait before restarting is not counted.
- An n-replica cluster is down when (a) fewer than a majority of replicas
  are up (replicas independent, each with the availability above), or (b)
  the leader has just failed and clients wait for the failover: a second
  two-state model with p01 = the leader's failure rate (one replica's) and
  p10 = 1 / (mean client-observed gap after a leader kill). Follower faults
  are taken as invisible to clients (docs/chaos.md measures what they do
  cost). A_cluster = A_majority * A_failover.

Unavailability (1 - A) is computed directly, never as 1 - A, so the tiny
figures of a realistic failure rate keep their digits. Nines are
-log10(1 - A).

Usage: availability.py FAILOVER_JSON [--wall-s S] [--replicas N]
       availability.py --self-test
FAILOVER_JSON is what scripts/failover-bench writes.
"""

import json
import math
import sys

HOURS_PER_30_DAYS = 30 * 24.0


def unavailability(p01, p10):
    """1 - A of the two-state model, A = p10 / (p01 + p10)."""
    assert p01 >= 0 and p10 > 0, (p01, p10)
    return p01 / (p01 + p10)


def majority_unavailability(u, n):
    """P(fewer than a majority of n independent replicas are up)."""
    assert 0 <= u <= 1 and n >= 1
    majority = n // 2 + 1
    a = 1.0 - u
    return sum(math.comb(n, k) * a ** k * u ** (n - k)
               for k in range(0, majority))


def cluster_unavailability(u_replica, u_failover, n):
    u_maj = majority_unavailability(u_replica, n)
    return u_maj + u_failover - u_maj * u_failover


def nines(u):
    return math.inf if u <= 0 else -math.log10(u)


def availability_text(u):
    n = nines(u)
    if math.isinf(n):
        return "A=1 (no downtime measured)"
    digits = max(2, int(math.ceil(n)) + 2)
    return f"A={1.0 - u:.{digits}f} ({n:.1f} nines)"


def model(fault_rate_per_replica_h, replica_repair_s, failover_s):
    """The replica, 3- and 5-replica cluster unavailabilities."""
    p10_replica = 3600.0 / replica_repair_s
    p10_failover = 3600.0 / failover_s
    u_r = unavailability(fault_rate_per_replica_h, p10_replica)
    u_fo = unavailability(fault_rate_per_replica_h, p10_failover)
    return {"replica": u_r, "failover": u_fo,
            "cluster3": cluster_unavailability(u_r, u_fo, 3),
            "cluster5": cluster_unavailability(u_r, u_fo, 5)}


def measured_rates(doc, wall_s, replicas):
    kills = doc["kills"]
    assert kills, "no kills in the report"
    hours = wall_s / 3600.0
    repair_s = sum(k["recovered_ms"] for k in kills) / len(kills) / 1000.0
    gap_s = sum(k["gap_ms"] for k in kills) / len(kills) / 1000.0
    return {"faults": len(kills), "hours": hours,
            "faults_per_h": len(kills) / hours,
            "faults_per_replica_h": len(kills) / hours / replicas,
            "replica_repair_s": max(repair_s, 1e-3),
            "failover_s": max(gap_s, 1e-6)}


def report(doc, wall_s, replicas):
    r = measured_rates(doc, wall_s, replicas)
    lines = [
        "availability (two-state Markov model, A = p10/(p01+p10); "
        "docs/performance.md):",
        f"  measured: {r['faults']} faults in {r['hours']:.4f} h = "
        f"{r['faults_per_h']:.1f} faults/h ({r['faults_per_replica_h']:.1f} "
        f"per replica-hour); replica repair (restart to voting) mean "
        f"{r['replica_repair_s'] * 1000:.0f} ms; failover (client gap) "
        f"mean {r['failover_s'] * 1000:.1f} ms"]
    out = {"measured": r}
    for name, rate in (("at the injected rate", r["faults_per_replica_h"]),
                       ("at 1 fault per replica per 30 days",
                        1.0 / HOURS_PER_30_DAYS)):
        m = model(rate, r["replica_repair_s"], r["failover_s"])
        lines.append(f"  {name}: replica {availability_text(m['replica'])}; "
                     f"3-replica cluster {availability_text(m['cluster3'])}; "
                     f"5-replica cluster {availability_text(m['cluster5'])}")
        out["injected" if rate == r["faults_per_replica_h"] else
            "one_per_30_days"] = {k: {"availability": 1.0 - u,
                                      "unavailability": u,
                                      "nines": round(nines(u), 2)}
                                  for k, u in m.items()}
    return "\n".join(lines), out


def self_test():
    # lambda = 1/h, mu = 9/h: A = 0.9, exactly one nine.
    assert abs(unavailability(1, 9) - 0.1) < 1e-12
    assert abs(nines(0.1) - 1.0) < 1e-12
    # 3 replicas at A = 0.9: up when >= 2 up, 0.9^3 + 3 * 0.9^2 * 0.1.
    assert abs(1 - majority_unavailability(0.1, 3) - 0.972) < 1e-12
    # 5 replicas at A = 0.9: >= 3 up.
    a5 = sum(math.comb(5, k) * 0.9 ** k * 0.1 ** (5 - k) for k in (3, 4, 5))
    assert abs(1 - majority_unavailability(0.1, 5) - a5) < 1e-12
    # Tiny unavailability keeps its digits: 3 * u^2 for small u.
    u = 1e-9
    assert abs(majority_unavailability(u, 3) / (3 * u * u) - 1) < 1e-6
    # Failover and majority combine as independent outages.
    assert abs(cluster_unavailability(0.1, 0.5, 3)
               - (1 - 0.972 * 0.5)) < 1e-12
    doc = {"kills": [{"recovered_ms": 900, "gap_ms": 40.0},
                     {"recovered_ms": 1100, "gap_ms": 60.0}]}
    text, out = report(doc, 36.0, 3)  # 2 faults in 0.01 h
    assert "200.0 faults/h" in text and "66.7 per replica-hour" in text, text
    assert out["measured"]["replica_repair_s"] == 1.0
    assert out["one_per_30_days"]["cluster3"]["nines"] > \
        out["injected"]["cluster3"]["nines"]
    print("availability: self-test passed")


def main(argv):
    if argv[1:2] == ["--self-test"]:
        self_test()
        return 0
    if len(argv) < 2 or argv[1] in ("-h", "--help"):
        print(__doc__.strip())
        return 0 if len(argv) >= 2 else 2
    wall_s, replicas = None, 3
    args = argv[2:]
    while args:
        if args[0] == "--wall-s" and len(args) > 1:
            wall_s = float(args[1])
        elif args[0] == "--replicas" and len(args) > 1:
            replicas = int(args[1])
        else:
            print(f"availability: unknown argument '{args[0]}'",
                  file=sys.stderr)
            return 2
        args = args[2:]
    with open(argv[1]) as f:
        doc = json.load(f)
    wall_s = wall_s if wall_s is not None else doc.get("kill_loop_s")
    if not wall_s or wall_s <= 0:
        print("availability: no run length: pass --wall-s S (the report "
              "has no kill_loop_s)", file=sys.stderr)
        return 2
    text, out = report(doc, wall_s, replicas)
    print(text)
    print(json.dumps({"availability": out}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
