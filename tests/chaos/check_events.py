#!/usr/bin/env python3
"""chaos.py's failover split reads bypaxd's logfmt event lines (docs/
deploy.md, Event log): a survivor's member_suspected of the victim, its
role_change to leader, its first_commit. Lines of the harness, lines cut
by a kill and another member's events are skipped. No cluster is run."""
import os
import sys
import tempfile
import types

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import chaos  # noqa: E402

HEAD = "ts=2026-12-01T15:00:00.000000Z level=info type=bypax.paxos"
LOGS = {
    0: ["==== chaos: start --bootstrap mono=1.000000",
        f"{HEAD} replica=0 event=role_change from=follower to=leader "
        "commit=0 ballot=1.0 mono=2.000000",
        f"{HEAD} replica=0 event=first_commit index=1 mono=2.1"],  # cut
    1: [f"{HEAD} replica=1 event=member_suspected member=2 silence_ms=40 "
        "mono=100.010000",  # another member: not the victim
        f"{HEAD} replica=1 event=member_suspected member=0 silence_ms=40 "
        "mono=100.050000",
        f"{HEAD} replica=1 event=role_change from=follower to=leader "
        "commit=5 ballot=2.1 mono=100.080000",
        f"{HEAD} replica=1 event=first_commit index=6 mono=100.100000"],
    2: ["EAL: a line that is not ours", "ts=2026-12-01T15:00:00.0000"],
}


def main():
    d = tempfile.mkdtemp(prefix="bypax-chaos-events.")
    for i, lines in LOGS.items():
        with open(os.path.join(d, f"r{i}.log"), "w") as f:
            f.write("\n".join(lines) + "\n")
    run = chaos.Run.__new__(chaos.Run)
    run.n = 3
    run.cluster = types.SimpleNamespace(
        log_path=lambda i: os.path.join(d, f"r{i}.log"))
    run.faults = [[100.0e9, None, "kill-leader", 0]]
    splits = run.failover_splits()
    for i in LOGS:
        os.unlink(os.path.join(d, f"r{i}.log"))
    os.rmdir(d)
    want = [("kill", 50.0, 30.0, 20.0)]
    ok = len(splits) == 1 and splits[0][0] == "kill" and all(
        abs(a - b) < 0.01 for a, b in zip(splits[0][1:], want[0][1:]))
    print(f"chaos events: failover split {splits}: {'OK' if ok else 'FAIL'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
