#!/bin/bash
# memif_failover: three bypaxd processes (net_memif links, net_tap ports for
# kernel clients) under a steady bypax-load write load while the leader
# fails in three ways:
#   (a) SIGKILL: a new leader commits within a bound; every acknowledged
#       write survives; the killed replica restarts without its state,
#       recovers (recovering, then follower) and catches up.
#   (b) SIGSTOP for 1.5 s, then SIGCONT: the others elect a new leader
#       meanwhile; once awake, the old leader neither serves stale data
#       nor commits with its old ballot; the cluster converges.
#   (c) `bypaxctl fault isolate` of a follower (writes go on), then of the
#       leader (another takes over); after each heal, convergence.
# At the end: every acknowledged write of every phase reads back, and the
# three replicas' snapshots are byte-identical.
#
# usage: memif_failover.sh BUILD_DIR   (root and /dev/net/tun, else skip: 77)
set -u
BUILD=$(cd "${1:?usage: memif_failover.sh BUILD_DIR}" && pwd) # memif_lib.sh
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=tests/dpdk/memif_lib.sh
source "$HERE/memif_lib.sh"
need_root
trap cluster_cleanup EXIT

GAP_MAX_MS=${GAP_MAX_MS:-2000}        # a leader failure, as a client sees it
FOLLOWER_GAP_MAX_MS=${FOLLOWER_GAP_MAX_MS:-1000} # a follower cut off
LANES=4
RATE=3000 # writes/s: every phase writes its own keys, 16.5 s in all fit
          # the store's 65536 (and a 2-core machine keeps up)

others() # others K: the member ids other than K
{
	local i
	for ((i = 0; i < N; i++)); do [[ $i -ne $1 ]] && echo "$i"; done
}

# the current leader: the consensus role, agreed by the control plane.
current_leader()
{
	local l
	l=$(paxos_leader_among $(seq 0 $((N - 1))))
	[[ $l -ge 0 && $(omega_leader "$l") == "$l" ]] && echo "$l" || echo -1
}
stable_leader() { [[ $(current_leader) -ge 0 ]]; }

# load_bg NAME SECONDS: a write load in the background (LOAD_PID), its
# acknowledged writes in $DIR/acked.NAME, its report in $DIR/load.NAME.
load_bg()
{
	load --duration "$2" --lanes "$LANES" --rate "$RATE" --timeout-ms 10 --prefix "$1" \
		--acked "$DIR/acked.$1" >"$DIR/load.$1" 2>&1 &
	LOAD_PID=$!
}

# load_check NAME GAP_MAX_MS AFTER_S: waits for the load; it must have
# succeeded, its longest gap stay under GAP_MAX_MS, and every whole second
# from AFTER_S on have acknowledged writes. Then verifies its writes.
load_check()
{
	local name=$1 gap_max=$2 after=$3 gap per s=0 n
	wait_exit "$LOAD_PID" 60 || fail "bypax-load $name: $(cat "$DIR/load.$name")"
	gap=$(max_gap_ms "$DIR/load.$name")
	per=$(acks_per_second "$DIR/load.$name")
	step "$name: $(head -1 "$DIR/load.$name" | sed 's/^load: //')"
	step "$name: acknowledged per second: $per"
	[[ -n $gap && $gap -lt $gap_max ]] ||
		fail "$name: max gap ${gap:-?} ms, bound $gap_max ms"
	for n in $per; do
		# the last entry is the part-second while the last replies came
		if [[ $s -ge $after && $s -lt $(($(echo "$per" | wc -w) - 1)) &&
			$n -eq 0 ]]; then
			fail "$name: no write acknowledged in second $s (after the fault)"
		fi
		s=$((s + 1))
	done
	step "ok: $name: max gap $gap ms < $gap_max ms; writes acknowledged in every second after the fault"
	load --lanes 16 --verify "$DIR/acked.$name" >"$DIR/verify.$name" 2>&1 ||
		fail "$name: $(cat "$DIR/verify.$name")"
	step "ok: $name: $(sed 's/^verify: //' "$DIR/verify.$name")"
}

wait_converged()
{
	wait_for "the cluster to converge (all applied indexes equal)" "$1" converged ||
		fail "not converged: $(applied_indexes)"
	step "ok: converged: applied/commit $(applied_indexes)"
}

cluster_init
for i in 0 1 2; do start_replica "$i" --bootstrap; done
step "started 3 replicas (--bootstrap), cluster $CLUSTER_ID, logs in $DIR"
wait_for "a leader" 15 stable_leader || fail "no leader"
step "leader: member $(current_leader)"

# ---- (a) SIGKILL the leader under load ----
L=$(current_leader)
ballot_before=$(ballot_of "$L")
load_bg kill 5
sleep 2
stop_replica "$L" KILL
t_kill=$(elapsed)
step "(a) killed leader $L with SIGKILL, 2 s into the load"
# shellcheck disable=SC2046
wait_for "a new leader after the kill" 5 new_leader_among "$L" $(others "$L") ||
	fail "no new leader after killing $L"
NL=$NEW_LEADER
step "ok: (a) member $NL leads (ballot $(ballot_of "$NL") > $ballot_before), seen $(($(elapsed) - t_kill)) ms after the kill"
[[ $(ballot_of "$NL") -gt $ballot_before ]] || fail "new leader's ballot not above the old"
load_check kill "$GAP_MAX_MS" 3

start_replica "$L"
step "(a) restarted member $L without --bootstrap"
seen_recovering=no
for _ in $(seq 1 50); do
	r=$(role_of "$L")
	[[ $r == recovering ]] && seen_recovering=yes
	[[ -n $r && $r != recovering ]] && break
	sleep 0.1
done
wait_for "member $L to recover and every member to vote" 20 all_voting ||
	fail "member $L did not recover: role $(role_of "$L")"
# bypaxd says when its role leaves recovering (it starts there without
# --bootstrap); the status polls above may have been too slow to see it.
# Its main thread notices the role change on its next check (every 100 ms):
# wait for the line rather than look once.
wait_for "member $L to report its recovery" 5 \
	grep -q " replica=$L event=recovery_end " "$DIR/r$L.log" ||
	fail "member $L never reported its recovery"
step "ok: (a) member $L: $(grep -m1 " replica=$L event=recovery_end " "$DIR/r$L.log" | sed "s/^.* event=//") (recovering seen in status: $seen_recovering); all voting, now $(role_of "$L")"
caught_up()
{
	local l
	l=$(current_leader)
	[[ $l -ge 0 && $(applied_of "$L") -eq $(commit_of "$l") ]]
}
wait_for "member $L to catch up with the leader" 15 caught_up ||
	fail "member $L behind: $(applied_indexes)"
step "ok: (a) member $L caught up: its applied index equals the leader's commit ($(applied_indexes))"

# ---- (b) SIGSTOP the leader for 1.5 s under load ----
wait_for "a leader" 10 stable_leader || fail "no leader before (b)"
L=$(current_leader)
ballot_before=$(ballot_of "$L")
cli put stale-key old >/dev/null || fail "put stale-key"
{
	echo "[cluster]"
	echo "id = $CLUSTER_ID"
	sed -n "/^\[member$L\]/,/^control/p" "$CONF" | sed "s/^\[member$L\]/[member0]/"
} >"$DIR/only-$L.conf"
load_bg stop 4.5
sleep 1
kill -STOP "${PIDS[$L]}"
t_stop=$(elapsed)
step "(b) stopped leader $L (ballot $ballot_before) with SIGSTOP"
# shellcheck disable=SC2046
wait_for "a new leader while $L is stopped" 2 new_leader_among "$L" $(others "$L") ||
	fail "no new leader while $L is stopped"
NL=$NEW_LEADER
step "ok: (b) member $NL leads, seen $(($(elapsed) - t_stop)) ms after the stop"
cli --timeout-ms 2000 put stale-key new >/dev/null || fail "put stale-key new while $L is stopped"
step "ok: (b) stale-key = new written while $L is stopped"
left=$((1500 - ($(elapsed) - t_stop)))
((left > 0)) && sleep "$(printf '%d.%03d' $((left / 1000)) $((left % 1000)))"
kill -CONT "${PIDS[$L]}"
step "(b) continued member $L after $(($(elapsed) - t_stop)) ms"
# Straight to the woken one alone: it must not answer from its old state.
answers=()
for _ in 1 2 3 4 5; do
	out=$(cli --config "$DIR/only-$L.conf" --timeout-ms 300 get stale-key 2>/dev/null)
	[[ $out == old ]] && fail "member $L served stale data after SIGCONT"
	answers+=("${out:-none}")
done
step "ok: (b) 5 reads of stale-key from member $L alone after waking: ${answers[*]} (never 'old')"
load_check stop "$GAP_MAX_MS" 3
[[ $(cli get stale-key) == new ]] || fail "stale-key is not 'new'"
wait_converged 15
[[ $(ballot_of "$L") -gt $ballot_before ]] ||
	fail "member $L still at its old ballot $ballot_before"
l=$(current_leader)
[[ $l -ge 0 && $(ballot_of "$l") -gt $ballot_before ]] ||
	fail "the leader's ballot is not above the stopped leader's"
step "ok: (b) member $L moved past its old ballot ($ballot_before -> $(ballot_of "$L")); leader $l"

# ---- (c) cut a follower off, then the leader ----
wait_for "a leader" 10 stable_leader || fail "no leader before (c)"
L=$(current_leader)
F=$(others "$L" | head -1)
load_bg isof 3.5
sleep 1
ctl --id "$F" fault isolate 1500 >/dev/null || fail "fault isolate on $F"
step "(c) cut follower $F off for 1500 ms (leader $L)"
load_check isof "$FOLLOWER_GAP_MAX_MS" 0
wait_converged 15

wait_for "a leader" 10 stable_leader || fail "no leader before (c) leader"
L=$(current_leader)
load_bg isol 3.5
sleep 1
ctl --id "$L" fault isolate 1500 >/dev/null || fail "fault isolate on $L"
t_iso=$(elapsed)
step "(c) cut leader $L off for 1500 ms"
# shellcheck disable=SC2046
wait_for "a new leader while $L is cut off" 2 new_leader_among "$L" $(others "$L") ||
	fail "no new leader while $L is cut off"
step "ok: (c) member $NEW_LEADER leads, seen $(($(elapsed) - t_iso)) ms after the cut"
load_check isol "$GAP_MAX_MS" 2
wait_converged 15

# ---- every acknowledged write, and identical replicas ----
cat "$DIR"/acked.* >"$DIR/acked.all"
load --lanes 16 --verify "$DIR/acked.all" >"$DIR/verify.all" 2>&1 ||
	fail "final verify: $(cat "$DIR/verify.all")"
step "ok: all phases: $(sed 's/^verify: //' "$DIR/verify.all")"
wait_converged 10
for i in 0 1 2; do
	ctl --id "$i" snapshot "$DIR/snap.$i" >"$DIR/snap.$i.out" 2>&1 ||
		fail "snapshot of $i: $(cat "$DIR/snap.$i.out")"
done
idx=$(sed -n 's/.*applied index \([0-9]*\).*/\1/p' "$DIR"/snap.*.out | sort -u)
[[ $(echo "$idx" | wc -l) -eq 1 ]] || fail "snapshots at different indexes: $idx"
if ! cmp -s "$DIR/snap.0" "$DIR/snap.1" || ! cmp -s "$DIR/snap.0" "$DIR/snap.2"; then
	fail "the replicas' snapshots at index $idx differ"
fi
step "ok: the 3 replicas' snapshots at applied index $idx are identical ($(stat -c %s "$DIR/snap.0") bytes)"
echo "memif_failover: OK"
