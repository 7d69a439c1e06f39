#!/usr/bin/env python3
"""Checks for bypaxd's HTTP endpoint (docs/metrics.md), used by metrics.sh.

  metrics_check.py ports N             N free TCP ports on 127.0.0.1
  metrics_check.py get URL [FILE]      GET, body to FILE or stdout; exit 0
                                       for 200, 3 for another status (the
                                       status printed on stderr)
  metrics_check.py http HOST:PORT      the protocol: 404, 405, 400, 431,
                                       idle clients, a slow reader
  metrics_check.py names PAGE DOC GRAFANA
                                       every metric DOC names and every
                                       metric a GRAFANA expr uses is on PAGE
  metrics_check.py leader PAGE...      the member whose page says
                                       bypax_role{role="leader"} 1
  metrics_check.py query PROM QUERY    a Prometheus instant query: prints
                                       one line per series, its labels as
                                       k=v and the value
"""
import json
import re
import socket
import sys
import time
import urllib.error
import urllib.parse
import urllib.request


def die(msg):
    print("FAIL: " + msg)
    sys.exit(1)


def free_ports(n):
    socks, ports = [], []
    for _ in range(n):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
        ports.append(s.getsockname()[1])
    for s in socks:
        s.close()
    print(" ".join(map(str, ports)))


def get(url, out=None):
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            status, body = r.status, r.read()
    except urllib.error.HTTPError as e:
        status, body = e.code, e.read()
    if out:
        with open(out, "wb") as f:
            f.write(body)
    else:
        sys.stdout.write(body.decode())
    if status != 200:
        print(status, file=sys.stderr)
        sys.exit(3)


def raw(addr, data, timeout=3.0):
    """Sends data, returns (status, whole answer)."""
    host, port = addr.rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=timeout) as s:
        s.sendall(data)
        chunks = []
        while True:
            b = s.recv(65536)
            if not b:
                break
            chunks.append(b)
    answer = b"".join(chunks)
    m = re.match(rb"HTTP/1\.1 (\d{3}) ", answer)
    return (int(m.group(1)) if m else None), answer


def expect_status(addr, data, want, what):
    status, answer = raw(addr, data)
    if status != want:
        die(f"{what}: status {status}, expected {want}: {answer[:200]!r}")
    print(f"ok: {what} -> {status}")
    return answer


def check_http(addr):
    expect_status(addr, b"GET /nope HTTP/1.1\r\nHost: x\r\n\r\n", 404,
                  "GET /nope")
    a = expect_status(addr, b"POST /metrics HTTP/1.1\r\nHost: x\r\n"
                      b"Content-Length: 0\r\n\r\n", 405, "POST /metrics")
    if b"Allow: GET" not in a:
        die("405 without 'Allow: GET'")
    expect_status(addr, b"HEAD /health HTTP/1.0\r\n\r\n", 405, "HEAD /health")
    expect_status(addr, b"garbage\r\n\r\n", 400, "a line that is no request")
    expect_status(addr, b"GET /metrics HTTP/2.0\r\n\r\n", 505, "HTTP/2.0")
    expect_status(addr, b"GET /metrics HTTP/1.0\r\nX: " + b"a" * 5000 +
                  b"\r\n\r\n", 431, "a 5 kB request head")
    a = expect_status(addr, b"GET /metrics?x=1 HTTP/1.0\r\n\r\n", 200,
                      "GET /metrics?x=1 (HTTP/1.0)")
    head, _, body = a.partition(b"\r\n\r\n")
    m = re.search(rb"Content-Length: (\d+)", head)
    if not m or int(m.group(1)) != len(body):
        die(f"Content-Length does not match the body ({len(body)} bytes)")
    # More idle clients than connections: they are dropped for room after
    # their grace, and a scraper still gets its page at once.
    host, port = addr.rsplit(":", 1)
    idle = [socket.create_connection((host, int(port))) for _ in range(12)]
    time.sleep(0.3)
    t0 = time.monotonic()
    expect_status(addr, b"GET /health HTTP/1.1\r\n\r\n", 200,
                  "GET /health next to 12 idle clients")
    if time.monotonic() - t0 > 1.0:
        die("a scrape waited behind idle clients")
    for s in idle:
        s.close()
    # A client that sends half a request and then nothing is dropped
    # after its budget (2 s from its connect): the connection closes.
    half = socket.create_connection((host, int(port)))
    half.sendall(b"GET /metr")
    half.settimeout(6)
    t0 = time.monotonic()
    try:
        rest = half.recv(100)
    except socket.timeout:
        die("a client with half a request was not dropped within 6 s")
    took = time.monotonic() - t0
    if rest or took < 1.5:
        die(f"half a request: answered {rest!r} after {took:.1f} s, "
            "expected the connection closed after about 2 s")
    print(f"ok: half a request: closed after {took:.1f} s")
    half.close()
    # A reader that takes nothing: the page waits in the kernel and the
    # replica goes on answering others.
    slow = socket.create_connection((host, int(port)))
    slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1024)
    slow.sendall(b"GET /metrics HTTP/1.1\r\n\r\n")
    time.sleep(0.2)
    expect_status(addr, b"GET /health HTTP/1.1\r\n\r\n", 200,
                  "GET /health while a reader takes nothing")
    slow.close()


def page_names(page):
    """Metric families (TYPE lines) and sample names of a page."""
    families, samples = set(), set()
    for line in open(page):
        m = re.match(r"# TYPE (\S+) ", line)
        if m:
            families.add(m.group(1))
        elif line and not line.startswith("#"):
            samples.add(re.match(r"[a-zA-Z_:][a-zA-Z0-9_:]*", line).group(0))
    return families, samples


def check_names(page, doc, grafana):
    families, samples = page_names(page)
    documented = set(re.findall(r"`(bypax_[a-z0-9_]+)`", open(doc).read()))
    if len(documented) < 20:
        die(f"{doc} names only {len(documented)} metrics")
    missing = sorted(documented - families - samples)
    if missing:
        die(f"{doc} names metrics the page lacks: {', '.join(missing)}")
    undocumented = sorted(families - documented)
    if undocumented:
        die(f"metrics on the page that {doc} does not list: "
            f"{', '.join(undocumented)}")
    print(f"ok: the {len(documented)} metrics of {doc} are on the page, "
          f"and every family of the page is in {doc}")
    dash = json.load(open(grafana))
    exprs = []

    def walk(node):
        if isinstance(node, dict):
            for k, v in node.items():
                if k == "expr" and isinstance(v, str):
                    exprs.append(v)
                else:
                    walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)
    walk(dash)
    if len(exprs) < 8:
        die(f"{grafana} has only {len(exprs)} exprs")
    used = set()
    for e in exprs:
        used |= set(re.findall(r"\bbypax_[a-z0-9_]+", e))
    unknown = sorted(used - samples)
    if unknown:
        die(f"{grafana} queries metrics the page lacks: {', '.join(unknown)}")
    print(f"ok: {grafana}: {len(exprs)} exprs, {len(used)} metrics, all on "
          f"the page")


def leader_of(pages):
    leaders = []
    for page in pages:
        text = open(page).read()
        member = re.search(r'^bypax_info\{cluster="\d+",member="(\d+)"\} 1$',
                           text, re.M)
        if not member:
            die(f"{page}: no bypax_info line")
        if re.search(r'^bypax_role\{role="leader"\} 1$', text, re.M):
            leaders.append(member.group(1))
    print(" ".join(leaders))


def query(prom, q):
    url = f"http://{prom}/api/v1/query?" + urllib.parse.urlencode({"query": q})
    with urllib.request.urlopen(url, timeout=5) as r:
        answer = json.load(r)
    if answer.get("status") != "success":
        die(f"query {q}: {answer}")
    for series in answer["data"]["result"]:
        labels = " ".join(f"{k}={v}" for k, v in
                          sorted(series["metric"].items()))
        print(f"{labels} {series['value'][1]}")


def main():
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "ports":
        free_ports(int(args[0]))
    elif cmd == "get":
        get(args[0], args[1] if len(args) > 1 else None)
    elif cmd == "http":
        check_http(args[0])
    elif cmd == "names":
        check_names(*args)
    elif cmd == "leader":
        leader_of(args)
    elif cmd == "query":
        query(*args)
    else:
        die(f"unknown command {cmd}")


if __name__ == "__main__":
    main()
