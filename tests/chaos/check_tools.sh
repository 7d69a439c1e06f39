#!/bin/bash
# check_tools: bypax-chaos-check on the hand-made histories of testdata/
# (a linearizable history passes; a stale read, a read of a refused write
# and a lost acknowledged write are caught; unknown outcomes are no
# failures; the gaps of testdata/gaps.faults are exact), its usage errors,
# and bypax-chaos-client against a cluster nobody runs: every op unknown,
# the history (also of a run killed with SIGKILL) still checks.
#
# usage: check_tools.sh BUILD_DIR    (no root, no cluster; about 5 s)
set -u
BUILD=$(cd "${1:?usage: check_tools.sh BUILD_DIR}" && pwd)
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
DATA=$HERE/testdata
CHECK=$BUILD/tests/chaos/bypax-chaos-check
CLIENT=$BUILD/tests/chaos/bypax-chaos-client
TMP=$(mktemp -d /tmp/bypax-chaos-tools.XXXXXX)
trap 'rm -rf "$TMP"' EXIT
FAILS=0

# expect WANT_RC PATTERN COMMAND...: runs it; its exit status must be
# WANT_RC and its stdout and stderr together must match PATTERN (grep -E).
expect()
{
	local want=$1 pat=$2 rc
	shift 2
	"$@" >"$TMP/out" 2>&1
	rc=$?
	if [[ $rc -ne $want ]] || ! grep -qE -- "$pat" "$TMP/out"; then
		echo "FAIL: ${*#"$BUILD"/} exited $rc (expected $want), output:"
		sed 's/^/    /' "$TMP/out"
		echo "    (expected to match: $pat)"
		FAILS=$((FAILS + 1))
		return 1
	fi
	echo "ok: exit $rc: $(tail -n 1 "$TMP/out" | cut -c1-150)"
}

cd "$DATA" || exit 1

# ---- the checker: verdicts ----
expect 0 'verdict=linearizable violations=0 lost_writes=0 unread=0 unknown=0 failed=0' \
	"$CHECK" linearizable.hist
expect 1 'VIOLATION: key h0 .*GET -> 11 by client 1' "$CHECK" stale_read.hist
expect 1 '^    stale_read.hist:7: O 3 ' "$CHECK" stale_read.hist
expect 1 'verdict=violation violations=1' "$CHECK" stale_read.hist
expect 1 'LOST WRITE: key w1.2: put 22 was acknowledged but the final read found absent' \
	"$CHECK" lost_write.hist
expect 1 'verdict=violation violations=1 lost_writes=1 unread=0' "$CHECK" lost_write.hist
# --final, no read-back: lost, though the history alone is linearizable
expect 1 'final value from lost_write.final:3' \
	"$CHECK" --final lost_write.final lost_write_final.hist
expect 1 'verdict=linearizable violations=0 lost_writes=1 unread=0' \
	"$CHECK" --final lost_write.final lost_write_final.hist
# without final values the lost-write check says it did not run
expect 0 'lost_writes=unchecked' "$CHECK" lost_write_final.hist
expect 0 'verdict=linearizable violations=0 lost_writes=0 unread=0 unknown=6 failed=1' \
	"$CHECK" unknown.hist
expect 1 "reads 11, which no write of the key" "$CHECK" failed_read.hist
# several files: a read in one of a write in the other is fine
expect 0 'files=2 .*verdict=linearizable' "$CHECK" linearizable.hist gaps.hist
expect 3 'verdict=inconclusive' "$CHECK" --budget 1 busy.hist
expect 0 'verdict=linearizable' "$CHECK" --budget 0 busy.hist
expect 0 'last line has no newline' "$CHECK" truncated.hist
# an acknowledged write-once put with no final read: inconclusive
head -n 8 lost_write.hist >"$TMP/no_read.hist"
echo "B 3000" >>"$TMP/no_read.hist"
expect 3 'lost_writes=0 unread=2' "$CHECK" "$TMP/no_read.hist"

# ---- the checker: gaps ----
expect 0 'fault gap_ms=700.0 .* from_ns=1300000000 to_ns=2000000000 name=kill-a' \
	"$CHECK" --faults gaps.faults gaps.hist
expect 0 'fault gap_ms=1300.0 .*name=pause-b' "$CHECK" --faults gaps.faults gaps.hist
expect 0 'fault gap_ms=100.0 .*name=blip-c' "$CHECK" --faults gaps.faults gaps.hist
expect 0 'fault gap_ms=400.0 .*to_ns=4000000000 name=tail-d' "$CHECK" --faults gaps.faults gaps.hist
expect 0 'fault gap_ms=- .*outside the run .*name=late e$' "$CHECK" --faults gaps.faults gaps.hist
expect 0 'faults=4 faults_outside=1 gap_ms p50=400.0 p99=1300.0 max=1300.0 max_gap_ms=1300.0' \
	"$CHECK" --faults gaps.faults gaps.hist

# ---- the checker: usage and bad files ----
expect 2 'no HISTORY file given' "$CHECK"
expect 2 "unknown option '--frob'" "$CHECK" --frob linearizable.hist
expect 2 "--budget 'x'" "$CHECK" --budget x linearizable.hist
expect 2 'nope.hist: cannot open' "$CHECK" nope.hist
expect 2 "bad_kind.hist:3: kind 'frob'" "$CHECK" bad_kind.hist
expect 2 "bad_unknown.hist:4: result unknown with return_ns set" "$CHECK" bad_unknown.hist
expect 2 "not a chaos history" "$CHECK" lost_write.final
echo "1 x y" >"$TMP/bad.faults"
expect 2 "bad.faults:1: '1 x y'" "$CHECK" --faults "$TMP/bad.faults" gaps.hist
expect 0 '^usage: bypax-chaos-check' "$CHECK" --help
expect 0 '^bypax-chaos-check [0-9]' "$CHECK" --version

# ---- the client, without a cluster ----
conf=$DATA/unreachable.conf
expect 0 '^usage: bypax-chaos-client' "$CLIENT" --help
expect 0 '^bypax-chaos-client [0-9]' "$CLIENT" --version
expect 2 'history FILE is required' "$CLIENT" --config "$conf"
expect 2 "--sessions '0': expected a whole number 1..256" \
	"$CLIENT" --config "$conf" --history "$TMP/h" --sessions 0
expect 2 "--rate '-1'" "$CLIENT" --config "$conf" --history "$TMP/h" --rate -1
expect 2 "--config: .*nope.conf" "$CLIENT" --config nope.conf --history "$TMP/h"
expect 1 'ops=[1-9][0-9]* ok=0 notfound=0 mismatch=0 unknown=[1-9]' \
	"$CLIENT" --config "$conf" --history "$TMP/u.hist" --seconds 0.5 \
	--sessions 3 --deadline-ms 100 --timeout-ms 20 --seed 1
expect 0 'verdict=linearizable violations=0 lost_writes=unchecked .*failed=0' \
	"$CHECK" "$TMP/u.hist"
expect 1 'read-back keys=[1-9][0-9]* read=0 unread=[1-9]' \
	"$CLIENT" --config "$conf" --history "$TMP/u.hist" --read-back \
	--deadline-ms 20 --sessions 8
# nothing was acknowledged, so nothing needed reading back
expect 0 'verdict=linearizable violations=0 lost_writes=0 unread=0' "$CHECK" "$TMP/u.hist"
# SIGKILL mid-run: the file holds every op called, and checks
"$CLIENT" --config "$conf" --history "$TMP/k.hist" --seconds 30 \
	--sessions 4 --deadline-ms 150 --timeout-ms 50 >/dev/null 2>&1 &
pid=$!
sleep 1
kill -KILL "$pid"
wait "$pid" 2>/dev/null
grep -q '^E ' "$TMP/k.hist" && echo "FAIL: a killed run wrote its end" && FAILS=$((FAILS + 1))
expect 0 'ops=[1-9][0-9]* .*verdict=linearizable' "$CHECK" "$TMP/k.hist"

if [[ $FAILS -ne 0 ]]; then
	echo "check_tools: $FAILS FAILED"
	exit 1
fi
echo "check_tools: OK"
