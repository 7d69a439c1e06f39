#!/bin/bash
# memif_basic: three bypaxd processes linked by net_memif, kernel clients
# through each one's net_tap port. The client tools end to end (bypax-cli,
# bypax-load, bypaxctl), two leadership transfers (the second through the
# leader the first chose), a snapshot, and a clean shutdown.
#
# usage: memif_basic.sh BUILD_DIR     (root and /dev/net/tun, else skip: 77)
set -u
BUILD=$(cd "${1:?usage: memif_basic.sh BUILD_DIR}" && pwd) # memif_lib.sh
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=tests/dpdk/memif_lib.sh
source "$HERE/memif_lib.sh"
need_root
trap cluster_cleanup EXIT

# expect WANT_RC WANT_STDOUT|- STDERR_PATTERN|- COMMAND...: runs it and
# checks its exit status, its whole stdout and a pattern in its stderr.
expect()
{
	local want_rc=$1 want_out=$2 want_err=$3 rc out
	shift 3
	out=$("$@" 2>"$DIR/stderr")
	rc=$?
	[[ $rc -eq $want_rc ]] ||
		fail "'${*:2}' exited $rc, expected $want_rc (stderr: $(cat "$DIR/stderr"))"
	[[ $want_out == - || $out == "$want_out" ]] ||
		fail "'${*:2}' printed '$out', expected '$want_out'"
	[[ $want_err == - ]] || grep -q -- "$want_err" "$DIR/stderr" ||
		fail "'${*:2}': stderr lacks '$want_err': $(cat "$DIR/stderr")"
	step "ok: ${*:2} -> exit $rc${out:+, '$out'}"
}

cluster_init
for i in 0 1 2; do start_replica "$i" --bootstrap; done
step "started 3 replicas (--bootstrap), cluster $CLUSTER_ID, logs in $DIR"
wait_for "a leader" 15 has_leader || fail "no leader"
step "leader elected: member $(leader_id)"

# ---- bypax-cli: put/get/del/cas, outputs and exit codes ----
expect 0 "" - cli put greeting hello
expect 0 hello - cli get greeting
expect 0 "" - cli put dash -starts-with-dash
expect 0 -starts-with-dash - cli get dash
expect 0 "" - cli cas greeting hello world
expect 0 world - cli get greeting
expect 3 "" "holds 'world'" cli cas greeting hello again
expect 0 world - cli get greeting
expect 0 "" - cli del greeting
expect 3 "" "(not found)" cli get greeting
expect 3 "" "(not found)" cli del greeting
expect 3 "" - cli cas greeting world x
expect 2 "" "takes 1 argument" cli get
expect 2 "" "unknown command" cli frob x
expect 2 "" "keys are 1..64" cli put "$(printf 'k%.0s' {1..65})" v

# ---- bypax-load: a write load, then every acknowledged write read back ----
# (paced: both loads together stay well inside the store's capacity, and
# bypax-load fails when the store fills up)
load --duration 2 --lanes 8 --rate 5000 --prefix basic --acked "$DIR/acked" >"$DIR/load.out" 2>&1 ||
	fail "bypax-load: $(cat "$DIR/load.out")"
grep -q " 0 failed" "$DIR/load.out" || fail "writes failed: $(cat "$DIR/load.out")"
step "$(head -1 "$DIR/load.out")"
[[ $(wc -l <"$DIR/acked") -gt 100 ]] || fail "too few writes acknowledged"
load --verify "$DIR/acked" >"$DIR/verify.out" 2>&1 ||
	fail "verify: $(cat "$DIR/verify.out")"
step "$(cat "$DIR/verify.out")"

# ---- libbypax packing (pack_max; docs/wire.md, "Packed requests and
# replies"): 16 lanes at 5000 writes/s, up to 8 requests a datagram,
# answered in packed datagrams by the replicas; every acknowledged write
# read back ----
load --duration 1 --lanes 16 --rate 5000 --pack 8 --prefix packed --acked "$DIR/acked-packed" \
	>"$DIR/load-packed.out" 2>&1 || fail "bypax-load --pack 8: $(cat "$DIR/load-packed.out")"
grep -q " 0 failed" "$DIR/load-packed.out" || fail "packed writes failed: $(cat "$DIR/load-packed.out")"
packed_line=$(grep '^load: .* packed datagrams; ' "$DIR/load-packed.out") ||
	fail "bypax-load --pack 8 printed no packing line: $(cat "$DIR/load-packed.out")"
read -r sent datagrams replies < <(sed -n 's/^load: \([0-9]*\) requests sent in \([0-9]*\) packed datagrams; \([0-9]*\) packed replies taken$/\1 \2 \3/p' <<<"$packed_line")
[[ -n $sent && $datagrams -gt 0 && $datagrams -lt $sent && $replies -gt 0 ]] ||
	fail "not packed: $packed_line"
step "$packed_line"
load --verify "$DIR/acked-packed" >"$DIR/verify-packed.out" 2>&1 ||
	fail "verify packed: $(cat "$DIR/verify-packed.out")"

# ---- bypaxctl status: a readable table, and JSON ----
ctl status >"$DIR/status.txt" 2>&1 || fail "bypaxctl status: $(cat "$DIR/status.txt")"
rows=$(grep -cE '^[0-9]+ +[0-9.]+:[0-9]+ +(leader|follower|candidate|recovering) ' "$DIR/status.txt")
[[ $rows -eq 3 ]] || fail "status: $rows member rows, expected 3: $(cat "$DIR/status.txt")"
grep -qE '^ID +ADDRESS +ROLE +BALLOT +COMMIT +APPLIED +LAG +LIVENESS' "$DIR/status.txt" ||
	fail "status: no table header: $(cat "$DIR/status.txt")"
grep -qE '^leader: member [0-2]$' "$DIR/status.txt" ||
	fail "status: no leader line: $(cat "$DIR/status.txt")"
[[ $(grep -cE '^[0-9]+ +[0-9.]+:[0-9]+ +leader ' "$DIR/status.txt") -eq 1 ]] ||
	fail "status: not exactly one member in role leader: $(cat "$DIR/status.txt")"
step "ok: bypaxctl status: 3 members, $(grep '^leader:' "$DIR/status.txt")"
sed 's/^/    /' "$DIR/status.txt"
ctl --json status >"$DIR/status.json" 2>&1 || fail "bypaxctl --json status failed"
python3 - "$DIR/status.json" <<'PY' || fail "bypaxctl --json status: $(cat "$DIR/status.json")"
import json, sys
d = json.load(open(sys.argv[1]))
assert len(d["members"]) == 3, "members"
assert d["leader"] in (0, 1, 2), "leader"
assert sum(m["role"] == "leader" for m in d["members"]) == 1, "one leader role"
assert all(m["alive"] and m["known"] for m in d["members"]), "all alive"
PY
step "ok: bypaxctl --json status parses: 3 members, all alive, one leader"

# ---- bypaxctl members ----
ctl members >"$DIR/members.txt" 2>&1 || fail "bypaxctl members: $(cat "$DIR/members.txt")"
for i in 0 1 2; do
	mac=$(printf '02:00:00:00:%02x:%02x' $((TAG % 256)) "$i")
	grep -qE "^$i .* $mac +10\.[0-9]+\.$i\.1:9000 +127\.0\.0\.1:[0-9]+$" "$DIR/members.txt" ||
		fail "members: no row for member $i ($mac): $(cat "$DIR/members.txt")"
done
grep -qE '^ID .*MAC +DATA +CONTROL$' "$DIR/members.txt" ||
	fail "members: no header: $(cat "$DIR/members.txt")"
step "ok: bypaxctl members lists the 3 configured members"
sed 's/^/    /' "$DIR/members.txt"
expect 1 - "not a member id" ctl leader transfer 9

# ---- leadership transfer to member 1 ----
ctl leader transfer 1 >"$DIR/transfer.out" 2>&1 ||
	fail "leader transfer 1: $(cat "$DIR/transfer.out")"
step "$(cat "$DIR/transfer.out")"
transferred()
{
	local i
	for i in 0 1 2; do [[ $(omega_leader "$i") == 1 ]] || return 1; done
	[[ $(role_of 1) == leader ]]
}
wait_for "leadership to move to member 1" 10 transferred || fail "transfer"
step "ok: every member's leader_id is 1 and member 1's role is leader"
expect 0 "" - cli put after-transfer yes
expect 0 yes - cli get after-transfer
load --duration 1 --lanes 8 --rate 5000 --prefix moved --acked "$DIR/acked2" >"$DIR/load2.out" 2>&1 ||
	fail "bypax-load after the transfer: $(cat "$DIR/load2.out")"
load --verify "$DIR/acked2" >"$DIR/verify2.out" 2>&1 || fail "verify: $(cat "$DIR/verify2.out")"
step "writes after the transfer: $(head -1 "$DIR/load2.out" | cut -d, -f1); $(cat "$DIR/verify2.out")"

# ---- a second transfer, through the member that leads now (issue 8: a
# leader that is not the lowest id answered ok and nothing moved); a
# member that does not lead refuses ----
expect 1 - "is not the leader (leader: 1)" ctl --id 0 leader transfer 2
expect 0 "ok: member 2 leads now" - ctl --id 1 leader transfer 2
led_by()
{
	local i
	for i in 0 1 2; do [[ $(omega_leader "$i") == "$1" ]] || return 1; done
	[[ $(role_of "$1") == leader ]]
}
wait_for "leadership to move to member 2" 10 led_by 2 || fail "second transfer"
step "ok: every member's leader_id is 2 and member 2's role is leader"
# (an existing key: the load above may have filled the store)
expect 0 "" - cli put after-transfer again
expect 0 again - cli get after-transfer

# ---- snapshot ----
ctl snapshot "$DIR/snap.bin" >"$DIR/snap.out" 2>&1 || fail "snapshot: $(cat "$DIR/snap.out")"
[[ -s "$DIR/snap.bin" ]] || fail "snapshot file is empty or missing"
step "$(cat "$DIR/snap.out") [$(stat -c %s "$DIR/snap.bin") bytes]"

# ---- clean shutdown: SIGTERM, exit 0, taps and admin sockets gone ----
for i in 0 1 2; do
	kill -TERM "${PIDS[$i]}"
	wait_exit "${PIDS[$i]}" 20
	rc=$?
	PIDS[$i]=""
	[[ $rc -eq 0 ]] || fail "bypaxd $i exited $rc after SIGTERM"
	grep -q " replica=$i event=stopped " "$DIR/r$i.log" || fail "bypaxd $i did not say stopped"
	step "ok: bypaxd $i exited 0 after SIGTERM"
done
# Every event line of the run is strict logfmt (what a log shipper reads
# without custom rules), with the events of a start, a transfer, a
# snapshot and a stop among them (docs/deploy.md, Event log).
python3 "$(dirname "${BASH_SOURCE[0]}")/../lib/logfmt.py" \
	--doc "$(dirname "${BASH_SOURCE[0]}")/../../docs/deploy.md" --require started \
	--require leader_change --require role_change --require voting_change \
	--require first_commit --require stats --require leader_transfer \
	--require admin_command --require snapshot_streamed --require stopped \
	"$DIR"/r[012].log >"$DIR/logfmt.out" 2>&1 || fail "event lines: $(cat "$DIR/logfmt.out")"
step "ok: every event line parses as logfmt: $(tr '\n' ' ' <"$DIR/logfmt.out")"
for i in 0 1 2; do
	ip link show "$(tap_name "$i")" >/dev/null 2>&1 && fail "tap $(tap_name "$i") still there"
	[[ -e $BYPAX_RUN_DIR/bypaxd-$CLUSTER_ID-$i.sock ]] && fail "admin socket of $i still there"
done
step "ok: tap interfaces and admin sockets are gone"
echo "memif_basic: OK"
