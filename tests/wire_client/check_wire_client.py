#!/usr/bin/env python3
# written from docs/wire.md alone (with bpx_wire.py, which is too): checks
# that a client built from the documented format works against a real
# bypaxd cluster, and that the rules docs/wire.md states hold as written.
#
# usage: check_wire_client.py --cluster ID --leader L --capacity N
#            [--telemetry SOCKET ...] IP:PORT...
#   member i is the i-th IP:PORT; --telemetry gives member i's DPDK
#   telemetry socket (its /bypax/stats counts the drops).
import argparse
import json
import socket
import sys
import time

import bpx_wire as w

failures = 0


def check(what, cond, detail=""):
    global failures
    if cond:
        print(f"ok: {what}")
    else:
        failures += 1
        print(f"FAIL: {what}{': ' + str(detail) if detail else ''}")


def telemetry(path, cmd="/bypax/stats"):
    """One command on a DPDK telemetry socket (docs/deploy.md)."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    s.settimeout(2)
    s.connect(path)
    json.loads(s.recv(16384))  # the greeting
    s.send(cmd.encode())
    reply = json.loads(s.recv(65536))
    s.close()
    return reply[cmd]


def silent(c, member, flags, client_id, seq, command, to=None, wait=0.5):
    """True if a REQUEST gets no reply (a drop)."""
    c.send_to(member, flags, client_id, seq, command, to=to)
    return c.wait_reply(client_id, seq, wait) is None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--cluster", type=int, required=True)
    ap.add_argument("--leader", type=int, required=True)
    ap.add_argument("--capacity", type=int, required=True)
    ap.add_argument("--telemetry", action="append", default=[])
    ap.add_argument("--deploy-doc", help="docs/deploy.md: check its "
                    "/bypax/stats table against what bypaxd returns")
    ap.add_argument("members", nargs="+")
    a = ap.parse_args()
    members = [(m.rsplit(":", 1)[0], int(m.rsplit(":", 1)[1]))
               for m in a.members]
    n = len(members)
    follower = (a.leader + 1) % n

    # ---- The KV commands, starting at a follower: REDIRECT to the leader
    c = w.Client(a.cluster, members, first=follower)
    check("put k1 v1 (first sent to a follower) is OK",
          c.put(b"k1", b"v1") == (w.KV_OK, b""))
    check("a follower answered REDIRECT naming the leader",
          c.redirects >= 1 and c.leader == a.leader,
          f"redirects {c.redirects}, now at {c.leader}")
    check("session id has bit 63", c.session & w.SESSION_BIT)
    check("get k1 (a READ) is v1", c.get(b"k1") == (w.KV_OK, b"v1"))
    check("cas k1 x->y: CAS_MISMATCH with the value held",
          c.cas(b"k1", b"x", b"y") == (w.KV_CAS_MISMATCH, b"v1"))
    check("cas k1 v1->v2: OK with the value held before",
          c.cas(b"k1", b"v1", b"v2") == (w.KV_OK, b"v1"))
    check("del k1: OK with the value held before",
          c.delete(b"k1") == (w.KV_OK, b"v2"))
    check("get k1: NOT_FOUND", c.get(b"k1") == (w.KV_NOT_FOUND, b""))
    check("del k1 again: NOT_FOUND", c.delete(b"k1") == (w.KV_NOT_FOUND, b""))
    check("empty value: put e '' then get",
          c.put(b"e", b"") == (w.KV_OK, b"") and c.get(b"e") == (w.KV_OK, b""))

    # ---- Sessions: retries, STALE, gaps, unknown ids, seq 0
    c.put(b"k2", b"a")
    sid, last = c.session, c.seq
    r = c.call(0, sid, last, w.kv_command(w.PUT, b"k2", b"b"))
    check("the last seq again, another command: the cached reply, not applied",
          r.status == w.OK and w.kv_reply(r.value) == (w.KV_OK, b"") and
          c.get(b"k2") == (w.KV_OK, b"a"), r)
    r = c.call(0, sid, last - 1, w.kv_command(w.PUT, b"k2", b"c"))
    check("an older seq: STALE, not applied",
          r.status == w.STALE and c.get(b"k2") == (w.KV_OK, b"a"), r)
    r = c.call(0, sid, last + 10, w.kv_command(w.PUT, b"k2", b"d"))
    check("a seq that skips ahead: applied (seqs increase, gaps allowed)",
          r.status == w.OK and c.get(b"k2") == (w.KV_OK, b"d"), r)
    c.seq = last + 10
    r = c.call(0, w.SESSION_BIT | 0x12345, 1, w.kv_command(w.PUT, b"k3", b"x"))
    check("a session id never opened, seq 1: EXPIRED, not applied",
          r.status == w.EXPIRED and c.get(b"k3") == (w.KV_NOT_FOUND, b""), r)
    r = c.call(0, 777, 1, w.kv_command(w.PUT, b"k3", b"x"))
    check("a client_id without bit 63 (no session): EXPIRED", r.status == w.EXPIRED, r)
    check("seq 0: dropped, no reply",
          silent(c, a.leader, 0, sid, 0, w.kv_command(w.PUT, b"k3", b"x")))
    check("OPEN with a client_id with bit 63: dropped",
          silent(c, a.leader, w.FLAG_OPEN, w.SESSION_BIT | 5, 1, b""))
    check("READ and OPEN together: dropped",
          silent(c, a.leader, w.FLAG_READ | w.FLAG_OPEN, c.nonce, w.READ_SEQ_BASE + 1, b""))
    check("a READ seq with bit 63: dropped",
          silent(c, a.leader, w.FLAG_READ, c.nonce, 1 << 63, w.kv_command(w.GET, b"k2")))
    r = c.call(w.FLAG_READ, c.nonce, w.READ_SEQ_BASE + 99, w.kv_command(w.PUT, b"k4", b"x"))
    check("READ of a PUT: BAD_REQUEST (status 6), not applied",
          r.status == w.BAD_REQUEST and c.get(b"k4") == (w.KV_NOT_FOUND, b""), r)

    # ---- Lengths: the longest command is 1374 bytes, a value 1392
    big = w.kv_command(w.CAS, b"K" * 64, b"v" * 1024, b"n" * 280)
    r = c.call(0, c.session, c.seq + 1, big)
    c.seq += 1
    check(f"a {len(big)}-byte command is applied (CAS of a missing key)",
          len(big) == 1374 and r.status == w.OK and
          w.kv_reply(r.value) == (w.KV_NOT_FOUND, b""), r)
    r = c.call(0, c.session, c.seq + 1, big + b"x")
    check("a 1375-byte command: TOO_BIG", r.status == w.TOO_BIG, r)
    check("a 1393-byte value: dropped (length does not match the type)",
          silent(c, a.leader, 0, c.session, c.seq + 2, b"x" * 1393))
    r = c.call(0, c.session, c.seq + 3, b"\x09\x01\x00\x00\x00\x00k")
    c.seq += 3
    check("a malformed KV command: OK with KV status BAD_COMMAND",
          r.status == w.OK and w.kv_reply(r.value) == (w.KV_BAD_COMMAND, b""), r)

    # ---- `to` names the receiver: another member's id is a drop
    before = None
    if a.telemetry:
        before = telemetry(a.telemetry[a.leader])
    check("a REQUEST whose `to` is another member: no reply",
          silent(c, a.leader, 0, c.session, c.seq + 1,
                 w.kv_command(w.PUT, b"k5", b"x"), to=follower))
    check("... and not applied", c.get(b"k5") == (w.KV_NOT_FOUND, b""))
    if before is not None:
        after = telemetry(a.telemetry[a.leader])
        check("... counted as drop_9 (not addressed to this replica)",
              after["drop_9"] >= before["drop_9"] + 1,
              f"{before['drop_9']} -> {after['drop_9']}")
        if a.deploy_doc:
            import re
            text = open(a.deploy_doc).read()
            table = text.split("### DPDK telemetry", 1)[1].split("\n## ", 1)[0]
            doc = set(re.findall(r"^\| `([a-z_]+)` \|", table, re.M))
            got = {k for k in after if not k.startswith("drop_")}
            drops = {k for k in after if k.startswith("drop_")}
            check("/bypax/stats returns the fields docs/deploy.md lists",
                  got == doc, f"returned {sorted(got)}, listed {sorted(doc)}")
            # As many reasons as the doc's row says (1..N).
            m = re.search(r"wire reason \*n\*, 1\.\.(\d+)", table)
            n = int(m.group(1)) if m else 0
            check(f"/bypax/stats returns drop_1 .. drop_{n} (docs/deploy.md)",
                  drops == {f"drop_{i}" for i in range(1, n + 1)},
                  sorted(drops))

    # ---- FULL: a new key into a full store; updates still work
    c2 = w.Client(a.cluster, members, first=a.leader)
    full_at = None
    for i in range(a.capacity + 1):
        st, _ = c2.put(b"fill-%d" % i, b"x")
        if st == w.KV_FULL:
            full_at = i
            break
        assert st == w.KV_OK, st
    check(f"the store answers FULL (KV status 3) within {a.capacity + 1} new keys",
          full_at is not None and full_at <= a.capacity, full_at)
    check("an existing key can still be written when full",
          c2.put(b"fill-0", b"y") == (w.KV_OK, b""))
    check("and read", c2.get(b"fill-0") == (w.KV_OK, b"y"))
    c.close()
    c2.close()
    print(f"wire client: {'OK' if failures == 0 else f'{failures} failed'}")
    return 0 if failures == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
