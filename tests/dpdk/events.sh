#!/bin/bash
# events: one bypaxd (a one-member cluster on a net_ring port, no root
# needed beyond what the EAL wants) and what an operator reads of it:
# - every line it logs is strict logfmt (tests/lib/logfmt.py), with the
#   events of a start, a leader, stats, an admin command and a stop;
# - the log types take the EAL's --log-level: bypax.ctl:debug adds the
#   reading admin commands, bypax.*:warning drops the info events;
# - bypaxctl --json status has every field docs/deploy.md lists, and
#   --json members parses.
#
# usage: events.sh BUILD_DIR
set -u
if [[ $(id -u) -ne 0 ]]; then
	echo "skip: the EAL here wants root"
	exit 77
fi
BUILD=$(cd "${1:?usage: events.sh BUILD_DIR}" && pwd)
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
DIR=$(mktemp -d /tmp/bypax-events.XXXXXX)
TAG=$((RANDOM % 9000 + 1000))
PORT=$((30000 + RANDOM % 20000))
PID=
cleanup()
{
	[[ -n $PID ]] && kill -TERM "$PID" 2>/dev/null && wait "$PID"
	rm -rf "$DIR"
}
trap cleanup EXIT
fail() { echo "events: FAIL: $*"; exit 1; }
step() { echo "events: $*"; }

cat >"$DIR/bypax.conf" <<EOF
[cluster]
id = $TAG
[member0]
mac = 02:00:00:00:$(printf %02x $((TAG % 256))):00
ip = 10.$((TAG % 200 + 20)).0.1
port = 9000
control = 127.0.0.1:$PORT
EOF
SOCK=$DIR/admin.sock
ctl() { timeout 5 "$BUILD/client/bypaxctl" --socket "$SOCK" "$@"; }

# run LOGLEVEL...: starts bypaxd with these --log-level options, lets it
# lead, asks for status (a read) and a fault (a write), stops it; the log
# is $DIR/out.
run()
{
	"$BUILD/dataplane/bypaxd" -l 0-1 --no-huge -m 256 --no-pci --no-shconf \
		--file-prefix "bpx-ev$TAG" "$@" --vdev=net_ring0 -- \
		--config "$DIR/bypax.conf" --id 0 --bootstrap --admin-socket "$SOCK" \
		--idle-sleep-us 200 --stats-interval 1 >"$DIR/out" 2>&1 &
	PID=$!
	local i
	for ((i = 0; i < 100; i++)); do
		ctl --json status 2>/dev/null | grep -q '"role":"leader"' && break
		kill -0 "$PID" 2>/dev/null || fail "bypaxd exited: $(cat "$DIR/out")"
		sleep 0.1
	done
	ctl --json status >"$DIR/status.json" || fail "status: $(cat "$DIR/out")"
	ctl --json members >"$DIR/members.json" || fail "members --json"
	ctl fault isolate 1 control >/dev/null || fail "fault isolate"
	sleep 1.3 # a stats line
	kill -TERM "$PID"
	wait "$PID" || fail "bypaxd exited $? after SIGTERM"
	PID=
}

logfmt() { python3 "$ROOT/tests/lib/logfmt.py" --doc "$ROOT/docs/deploy.md" "$@" "$DIR/out"; }

# ---- the defaults: info and up; EAL and PMD lines quieted ----
run "--log-level=*:error" "--log-level=bypax.*:info"
logfmt --require started --require leader_change --require role_change \
	--require voting_change --require stats --require fault_isolate \
	--require admin_command --require stopped || fail "$(cat "$DIR/out")"
grep -q "event=admin_command command=\"fault isolate 1 control\" peer_uid=$(id -u) result=\"ok: " "$DIR/out" ||
	fail "no admin_command line for the fault: $(grep admin_command "$DIR/out")"
grep -q 'event=admin_command command=status' "$DIR/out" &&
	fail "a reading command logged at info"
grep -Eq ' event=stats .* px_drop_stale_ballot=[0-9]+ ' "$DIR/out" ||
	fail "stats line lacks px_drop_stale_ballot: $(grep event=stats "$DIR/out")"
grep -v '^ts=' "$DIR/out" | grep -q . && fail "lines not logfmt: $(grep -v '^ts=' "$DIR/out")"
step "ok: defaults: every line is logfmt ($(grep -c . "$DIR/out") lines)"

# ---- status --json: every documented field ----
python3 - "$DIR/status.json" "$DIR/members.json" "$ROOT/docs/deploy.md" <<'PY' || fail "status --json: $(cat "$DIR/status.json")"
import json, re, sys
st = json.load(open(sys.argv[1]))
mem = json.load(open(sys.argv[2]))
doc = open(sys.argv[3]).read()
sec = doc.split("## bypaxctl status --json", 1)[1].split("\n## ", 1)[0]
fields = []
for row in re.findall(r"^\| (`[^|]*`) \|", sec, re.M):
    fields += re.findall(r"`([a-z_\[\].]+)`", row)
assert len(fields) > 20, fields
for f in fields:
    if f.startswith("members[]."):
        for m in st["members"]:
            assert f[10:] in m, f"member {m.get('id')} lacks {f[10:]}"
    else:
        assert f in st, f"status lacks {f}"
me = st["members"][0]
assert re.fullmatch(r"\d+\.\d+", me["ballot"]), me["ballot"]
assert me["lag"] == 0 and me["address"].endswith(":9000"), me
assert st["voting"] == [0], st["voting"]
assert mem["members"][0]["data"] == me["address"], mem
print(f"status --json: the {len(fields)} documented fields are present")
PY
step "ok: $(python3 -c 'print("status --json and members --json parse")')"

# ---- bypax.ctl at debug: the reads too ----
run "--log-level=*:error" "--log-level=bypax.*:info" "--log-level=bypax.ctl:debug"
logfmt --require admin_command || fail "$(cat "$DIR/out")"
grep -q 'level=debug type=bypax.ctl replica=0 event=admin_command command="status json"' "$DIR/out" ||
	fail "bypax.ctl:debug: no status line: $(grep admin_command "$DIR/out")"
step "ok: --log-level=bypax.ctl:debug logs the reading commands"

# ---- bypax.* at warning: no info events ----
run "--log-level=*:error" "--log-level=bypax.*:warning"
grep -q ' level=info ' "$DIR/out" && fail "bypax.*:warning: info lines: $(grep ' level=info ' "$DIR/out")"
grep -q ' event=fault_isolate ' "$DIR/out" || fail "bypax.*:warning: no warning line"
step "ok: --log-level=bypax.*:warning keeps the warnings only"
echo "events: OK"
