# A bypax client written from docs/wire.md alone: every byte it sends or
# checks is one that page states, and it imports or mirrors no bypax
# header or code. If bypaxd and this file disagree, docs/wire.md is wrong
# or bypaxd is (tests/dpdk/wire_client.sh runs it against a real
# cluster). Only the member list comes from elsewhere: the caller passes
# the cluster id and each member's data ip:port (docs/config.md).
#
# It speaks the client side of the wire format over an ordinary UDP
# socket: REQUEST and REPLY (docs/wire.md, "The bypax header", "Fields per
# type"), sessions opened through the log ("Sessions"), session-less reads,
# redirects to the leader, and the built-in KV store's commands and
# replies ("Commands and replies of the built-in KV store").
import os
import socket
import struct
import time

MAGIC = 0x4258
VERSION = 2
TYPE_REQUEST = 1
TYPE_REPLY = 2
FROM_CLIENT = 0xFF
HINT_NONE = 0xFF

FLAG_READ = 0x02
FLAG_OPEN = 0x04

# Reply status (the bypax header's status byte).
OK, REDIRECT, BUSY, TOO_BIG, STALE, EXPIRED, BAD_REQUEST = range(7)
STATUS_NAMES = ["OK", "REDIRECT", "BUSY", "TOO_BIG", "STALE", "EXPIRED",
                "BAD_REQUEST"]

# The KV store's ops and reply status.
GET, PUT, DEL, CAS = 1, 2, 3, 4
KV_OK, KV_NOT_FOUND, KV_CAS_MISMATCH, KV_FULL, KV_BAD_COMMAND = range(5)
KV_NAMES = ["OK", "NOT_FOUND", "CAS_MISMATCH", "FULL", "BAD_COMMAND"]

HEADER = struct.Struct(">HBBIBBBBBBH")  # 16 bytes, big-endian
FIELDS = struct.Struct(">QQ")           # REQUEST/REPLY: client_id, seq
SESSION_BIT = 1 << 63
READ_SEQ_BASE = 1 << 62
SEQ_WRITE_MAX = (1 << 62) - 1
VALUE_MAX = 1392


class Reply:
    def __init__(self, frm, status, hint, client_id, seq, value):
        self.frm, self.status, self.hint = frm, status, hint
        self.client_id, self.seq, self.value = client_id, seq, value

    def __repr__(self):
        return (f"Reply(from={self.frm}, {STATUS_NAMES[self.status]}, "
                f"hint={self.hint}, seq={self.seq}, value={self.value!r})")


def encode_request(cluster_id, to, flags, client_id, seq, command):
    head = HEADER.pack(MAGIC, VERSION, TYPE_REQUEST, cluster_id, FROM_CLIENT,
                       to, flags, 0, 0, 0, len(command))
    return head + FIELDS.pack(client_id, seq) + command


def decode_reply(cluster_id, data):
    """A Reply, or None for anything that is not a valid REPLY to a client
    of this cluster (the checks of "Validation and drop reasons")."""
    if len(data) < HEADER.size:
        return None
    (magic, version, typ, cid, frm, to, flags, status, hint, reserved,
     vlen) = HEADER.unpack_from(data)
    if (magic != MAGIC or version != VERSION or typ != TYPE_REPLY or
            cid != cluster_id or to != FROM_CLIENT or reserved != 0 or
            status > BAD_REQUEST or vlen > VALUE_MAX or
            len(data) != HEADER.size + FIELDS.size + vlen):
        return None
    client_id, seq = FIELDS.unpack_from(data, HEADER.size)
    value = data[HEADER.size + FIELDS.size:]
    return Reply(frm, status, hint, client_id, seq, value)


def kv_command(op, key, value=b"", new=b""):
    """The KV store's command: little-endian u8 op, u8 key_len, u16
    value_len, u16 new_len, then the bytes."""
    return struct.pack("<BBHH", op, len(key), len(value), len(new)) + \
        key + value + new


def kv_reply(value):
    """(kv status, value) from an OK REPLY's value."""
    status, n = struct.unpack_from("<BH", value)
    assert len(value) == 3 + n, f"KV reply of {len(value)} bytes, says {n}"
    return status, value[3:]


class Client:
    """One session (opened on the first write) and a read nonce. Requests
    go to the member believed to lead; REDIRECT follows the leader hint,
    else the next member; no reply within timeout resends the same
    (client_id, seq) to the next member."""

    def __init__(self, cluster_id, members, timeout=0.2, deadline=5.0,
                 first=0):
        self.cluster_id = cluster_id
        self.members = members  # [(ip, port)]: member i is replica id i
        self.timeout, self.deadline = timeout, deadline
        self.leader = first
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("0.0.0.0", 0))
        self.nonce = int.from_bytes(os.urandom(8), "little") & ~SESSION_BIT
        self.nonce |= 1  # nonzero
        self.read_seq = READ_SEQ_BASE + int.from_bytes(os.urandom(4), "little")
        self.session = None
        self.seq = 0
        self.redirects = 0
        self.timeouts = 0

    def close(self):
        self.sock.close()

    def send_to(self, member, flags, client_id, seq, command, to=None):
        """Sends one REQUEST to member (its `to` is member, unless given)."""
        frame = encode_request(self.cluster_id,
                               member if to is None else to, flags,
                               client_id, seq, command)
        self.sock.sendto(frame, self.members[member])

    def wait_reply(self, client_id, seq, timeout):
        """The REPLY to (client_id, seq), or None after timeout."""
        end = time.monotonic() + timeout
        while True:
            left = end - time.monotonic()
            if left <= 0:
                return None
            self.sock.settimeout(left)
            try:
                data, _ = self.sock.recvfrom(2048)
            except socket.timeout:
                return None
            r = decode_reply(self.cluster_id, data)
            if r is not None and r.client_id == client_id and r.seq == seq:
                return r

    def call(self, flags, client_id, seq, command):
        """Sends until a reply other than REDIRECT or BUSY comes, following
        the leader. Returns the Reply; raises TimeoutError at the
        deadline."""
        end = time.monotonic() + self.deadline
        backoff = 0.001
        while time.monotonic() < end:
            self.send_to(self.leader, flags, client_id, seq, command)
            r = self.wait_reply(client_id, seq, self.timeout)
            if r is None:
                self.timeouts += 1
                self.leader = (self.leader + 1) % len(self.members)
                continue
            if r.status == REDIRECT:
                self.redirects += 1
                if r.hint != HINT_NONE and r.hint < len(self.members) and \
                        r.hint != self.leader:
                    self.leader = r.hint
                else:
                    self.leader = (self.leader + 1) % len(self.members)
                    time.sleep(backoff)
                    backoff = min(backoff * 2, 0.05)
                continue
            if r.status == BUSY:
                time.sleep(backoff)
                backoff = min(backoff * 2, 0.05)
                continue
            return r
        raise TimeoutError(f"no answer to seq {seq} within {self.deadline} s")

    def open_session(self):
        """OPEN: an empty value, our nonce, any seq (echoed); the OK reply's
        value is the session id, 8 bytes little-endian."""
        seq = 1 + int.from_bytes(os.urandom(4), "little")
        r = self.call(FLAG_OPEN, self.nonce, seq, b"")
        assert r.status == OK, f"OPEN answered {r}"
        assert len(r.value) == 8, f"OPEN reply of {len(r.value)} bytes"
        self.session = int.from_bytes(r.value, "little")
        assert self.session & SESSION_BIT, hex(self.session)
        self.seq = 0
        return self.session

    def write(self, command):
        """A write on the session: seq 1, 2, 3, ... Returns the Reply (its
        status is the header's; an OK one carries the KV reply)."""
        if self.session is None:
            self.open_session()
        self.seq += 1
        r = self.call(0, self.session, self.seq, command)
        if r.status in (EXPIRED, STALE):
            self.session = None  # the next write opens a new session
        return r

    def read(self, command):
        """A session-less read (flag READ), its seq from 2^62 up."""
        self.read_seq += 1
        return self.call(FLAG_READ, self.nonce, self.read_seq, command)

    # ---- The KV store ----

    def kv(self, reply):
        assert reply.status == OK, f"request answered {reply}"
        return kv_reply(reply.value)

    def put(self, key, value):
        return self.kv(self.write(kv_command(PUT, key, value)))

    def get(self, key):
        return self.kv(self.read(kv_command(GET, key)))

    def delete(self, key):
        return self.kv(self.write(kv_command(DEL, key)))

    def cas(self, key, old, new):
        return self.kv(self.write(kv_command(CAS, key, old, new)))
