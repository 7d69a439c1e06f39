#!/usr/bin/env python3
"""The durable stage's table rows (bench/suite.py durable_lines) say the
syncs per committed op and whether the goal is met, and n/a, never 0, when
no member's /metrics was counted. No run: the rows from a made-up result."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import suite  # noqa: E402


def rows(points):
    res = {"durable": {"seconds_per_run": 3, "etcd_storage": "disk",
                       "storage": {"tmpfs": {"points": points}}}}
    return suite.durable_lines(res, "[t]")[1:]


def point(**kw):
    p = {"lanes": 64, "ops_per_s": 1000.0, "p50_us": 10.0, "p99_us": 20.0}
    p.update(kw)
    return p


def main():
    (low,) = rows([point(syncs_per_op_max=0.01)])
    assert "0.0100 (most of any member; goal <= 0.05: met)" in low, low
    (high,) = rows([point(syncs_per_op_max=0.7)])
    assert "0.7000" in high and "NOT met" in high, high
    (none,) = rows([point()])
    assert "n/a (no member's /metrics counted)" in none, none
    assert "0.0000" not in none and "goal" not in none, none
    print("durable lines: OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
