#!/usr/bin/env python3
"""A strict logfmt parser for bypaxd's event lines (docs/deploy.md, Event
log), as a log shipper's would be: key=value pairs split by single
spaces, keys of [a-z0-9_.], values bare (no space, '=', '"' or control
character) or double-quoted with JSON's escapes. Anything else is an
error, not a guess.

As a program: checks that every bypax event line of the files parses and
has the head in order (ts level type replica event ... mono last):

  logfmt.py [--require EVENT]... [--doc docs/deploy.md] FILE...

Lines that are not bypaxd's (the EAL's own, the harness's markers) are
counted and skipped; every line with " type=bypax." must be an event line.
With --doc, every event and its fields must be those of the doc's table.
Exit 0 when all parse (and every --require'd event occurs), 1 otherwise.
"""
import re
import sys

KEY = re.compile(r"[a-z0-9_.]+")
BARE = re.compile(r'[^\s="\\\x00-\x1f\x7f]+')
ESCAPES = {'"': '"', "\\": "\\", "n": "\n", "r": "\r", "t": "\t", "/": "/"}
HEAD = ["ts", "level", "type", "replica", "event"]
TS = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z")
MONO = re.compile(r"\d+\.\d{6}")
LEVELS = {"error", "warning", "notice", "info", "debug"}
TYPES = {"bypax.paxos", "bypax.ctl", "bypax.dp"}


def _quoted(line, i):
    """The value of the quoted string at line[i] == '"', and the index
    after its closing quote."""
    out, i = [], i + 1
    while i < len(line):
        c = line[i]
        if c == '"':
            return "".join(out), i + 1
        if c == "\\":
            e = line[i + 1:i + 2]
            if e in ESCAPES:
                out.append(ESCAPES[e])
                i += 2
            elif e == "u" and re.fullmatch(r"[0-9a-f]{4}", line[i + 2:i + 6]):
                out.append(chr(int(line[i + 2:i + 6], 16)))
                i += 6
            else:
                raise ValueError(f"bad escape at column {i}")
            continue
        if ord(c) < 0x20:
            raise ValueError(f"control character in a quoted value at {i}")
        out.append(c)
        i += 1
    raise ValueError("unterminated quoted value")


def parse(line):
    """The pairs of one line, in order, as a list of (key, value).
    Raises ValueError on anything that is not strict logfmt."""
    line = line.rstrip("\n")
    pairs, i = [], 0
    while True:
        m = KEY.match(line, i)
        if not m or line[m.end():m.end() + 1] != "=":
            raise ValueError(f"no key=value at column {i}: {line[i:i + 30]!r}")
        key, i = m.group(0), m.end() + 1
        if line[i:i + 1] == '"':
            value, i = _quoted(line, i)
        else:
            v = BARE.match(line, i)
            if not v:
                raise ValueError(f"key {key}: empty or bad bare value")
            value, i = v.group(0), v.end()
        pairs.append((key, value))
        if i == len(line):
            return pairs
        if line[i] != " " or i + 1 == len(line):
            raise ValueError(f"after {key}: not one space at column {i}")
        i += 1


def event(line):
    """The fields of one bypaxd event line as a dict, the head checked:
    ts level type [replica] event first, mono last, no key twice."""
    pairs = parse(line)
    keys = [k for k, _ in pairs]
    want = HEAD if keys[3:4] == ["replica"] else [k for k in HEAD
                                                  if k != "replica"]
    if keys[:len(want)] != want:
        raise ValueError(f"head is not {' '.join(want)}: {' '.join(keys[:5])}")
    if keys[-1] != "mono":
        raise ValueError("mono= is not last")
    if len(set(keys)) != len(keys):
        raise ValueError("a key occurs twice")
    f = dict(pairs)
    if not TS.fullmatch(f["ts"]) or not MONO.fullmatch(f["mono"]):
        raise ValueError(f"bad ts {f['ts']!r} or mono {f['mono']!r}")
    if f["level"] not in LEVELS or f["type"] not in TYPES:
        raise ValueError(f"bad level {f['level']!r} or type {f['type']!r}")
    return f


def events_of(path):
    """(fields of every event line of a file, lines of others skipped)."""
    out, skipped = [], 0
    with open(path, errors="replace") as f:
        for n, line in enumerate(f, 1):
            if not line.startswith("ts=") and " type=bypax." not in line:
                skipped += 1
                continue
            try:
                out.append(event(line))
            except ValueError as e:
                raise ValueError(f"{path}:{n}: {e}: {line.rstrip()}") from e
    return out, skipped


def documented(doc_path):
    """{event: (fields, exact)} from the table of docs/deploy.md, Event
    log: a row names its events and, in its fields column, one `group` of
    field names per event (then the fields are exactly those) or one
    group for all (then no other field may appear). A `name_<x>` field
    stands for every field with that prefix."""
    text = open(doc_path).read().split("\n## Event log", 1)[1]
    text = text.split("\n## ", 1)[0]
    table = {}
    for row in re.findall(r"^\| (`[a-z_]+`(?: / `[a-z_]+`)*) \|([^\n]*)$",
                          text, re.M):
        events = re.findall(r"`([a-z_]+)`", row[0])
        cells = row[1].split("|")
        groups = [g.split() for g in re.findall(r"`([^`]*)`", cells[2])]
        if len(groups) == len(events):
            for e, g in zip(events, groups):
                table[e] = (g, True)
        else:
            union = [f for g in groups for f in g]
            for e in events:
                table[e] = (union, False)
    return table


def check_documented(ev, table):
    """Raises ValueError when an event or a field is not the table's."""
    name = ev["event"]
    if name not in table:
        raise ValueError(f"event {name} is not in the doc's table")
    fields, exact = table[name]
    keys = [k for k in ev if k not in HEAD + ["mono", "truncated"]]
    plain = {f for f in fields if "<" not in f}
    prefixes = [f.split("<")[0] for f in fields if "<" in f]
    extra = [k for k in keys if k not in plain and
             not any(k.startswith(p) for p in prefixes)]
    missing = sorted(plain - set(keys)) if exact and "truncated" not in ev \
        else []
    if extra or missing:
        raise ValueError(f"event {name}: fields not as documented: extra "
                         f"{extra}, missing {missing}")


GOOD = [
    ("ts=2026-12-01T15:00:00.123456Z level=info type=bypax.paxos replica=1 "
     "event=leader_change from=0 to=1 ballot=3.1 mono=123.456789",
     {"to": "1", "ballot": "3.1"}),
    ('ts=2026-12-01T15:00:00.123456Z level=warning type=bypax.ctl '
     'event=x reason="a \\"b\\" \\\\ \\u0001" empty="" mono=1.000000',
     {"reason": 'a "b" \\ \x01', "empty": ""}),
]
BAD = [
    "",  # no pair
    "ts=2026-12-01T15:00:00.123456Z level=info",  # no event, no mono
    "a=b  c=d", "a=b c", "A=b", 'a="x', 'a="\\q"', "a=", "a=b ", " a=b",
    'a=x"y', "a=b\tc=d",
    "ts=2026-12-01T15:00:00Z level=info type=bypax.ctl event=x mono=1.000000",
    "ts=2026-12-01T15:00:00.123456Z type=bypax.ctl level=info event=x "
    "mono=1.000000",  # head out of order
    "ts=2026-12-01T15:00:00.123456Z level=info type=bypax.ctl event=x "
    "mono=1.000000 a=b",  # mono not last
    "ts=2026-12-01T15:00:00.123456Z level=info type=bypax.ctl event=x a=1 "
    "a=2 mono=1.000000",  # a key twice
    "ts=2026-12-01T15:00:00.123456Z level=loud type=bypax.ctl event=x "
    "mono=1.000000",
]


def self_test():
    """The parser on lines it must take and lines it must refuse."""
    fails = 0
    for line, want in GOOD:
        try:
            got = event(line)
            bad = {k: v for k, v in want.items() if got.get(k) != v}
        except ValueError as e:
            bad = str(e)
        if bad:
            print(f"logfmt self-test: FAIL: refused or misread {line!r}: {bad}")
            fails += 1
    for line in BAD:
        try:
            event(line)
            print(f"logfmt self-test: FAIL: took {line!r}")
            fails += 1
        except ValueError:
            pass
    print(f"logfmt self-test: {len(GOOD)} good, {len(BAD)} bad lines: "
          f"{'OK' if fails == 0 else 'FAILED'}")
    return 1 if fails else 0


def main(argv):
    if argv == ["--self-test"]:
        return self_test()
    required, files, table = [], [], None
    it = iter(argv)
    for a in it:
        if a == "--require":
            required.append(next(it))
        elif a == "--doc":
            table = documented(next(it))
        else:
            files.append(a)
    seen, total = set(), 0
    try:
        for p in files:
            evs, skipped = events_of(p)
            for e in evs if table is not None else []:
                try:
                    check_documented(e, table)
                except ValueError as err:
                    raise ValueError(f"{p}: {err}") from err
            total += len(evs)
            seen.update(e["event"] for e in evs)
            print(f"logfmt: {p}: {len(evs)} event lines parse, "
                  f"{skipped} other lines")
    except ValueError as e:
        print(f"logfmt: FAILED: {e}")
        return 1
    missing = [r for r in required if r not in seen]
    if missing or total == 0:
        print(f"logfmt: FAILED: no event {' '.join(missing) or 'lines'}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
