#!/bin/bash
# memif_silent: a data link that both ends call up but that carries
# nothing is repaired. Three bypaxd processes over net_memif; a follower's
# two links are silenced with `bypaxctl fault silent` (the ports stay up,
# the worker neither polls nor sends on them, until a port restart), as a
# memif server was seen to break after a restart. While the writes go on,
# the follower must first fall behind (the fault is real), then bypaxd's
# silent-link check must log `link_silent`, restart the ports, and the
# follower catch up: every replica converges, and every acknowledged
# write reads back.
#
# usage: memif_silent.sh BUILD_DIR   (root and /dev/net/tun, else skip: 77)
set -u
BUILD=$(cd "${1:?usage: memif_silent.sh BUILD_DIR}" && pwd) # memif_lib.sh
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=tests/dpdk/memif_lib.sh
source "$HERE/memif_lib.sh"
need_root
trap cluster_cleanup EXIT
REPAIR_MAX_S=${REPAIR_MAX_S:-40}

T_START=$(date +%s%N)
cluster_init
for i in 0 1 2; do start_replica "$i" --bootstrap; done
wait_for "a leader" 30 has_leader || fail "no leader"
L=$(leader_id)
F=$(((L + 1) % N))
step "leader $L; silencing both data links of follower $F"
for ((j = 0; j < N; j++)); do
	[[ $j -eq $F ]] && continue
	out=$(ctl --id "$F" fault silent "$j" 120000) || fail "fault silent $j: $out"
	step "$out"
done

load --duration 8 --lanes 4 --rate 500 --timeout-ms 20 --prefix s \
	--acked "$DIR/acked" >"$DIR/load" 2>&1 &
LOAD_PID=$!
sleep 2
behind_now()
{
	local a c
	a=$(applied_of "$F")
	c=$(commit_of "$L")
	[[ -n $a && -n $c && $a -lt $c ]]
}
behind_now || fail "follower $F kept up although its links are silent: $(applied_indexes)"
step "ok: follower $F falls behind: $(applied_indexes)"

wait_exit "$LOAD_PID" 60 || fail "bypax-load: $(cat "$DIR/load")"
step "load: $(head -1 "$DIR/load" | sed 's/^load: //')"
wait_for "every replica converged" "$REPAIR_MAX_S" converged ||
	fail "not converged after the silence: $(applied_indexes)"
step "ok: converged: $(applied_indexes)"
grep -h "event=link_silent" "$DIR"/r*.log >"$DIR/silent" ||
	fail "no link_silent event in any log"
step "ok: $(wc -l <"$DIR/silent") link_silent events, e.g.: $(head -1 "$DIR/silent" | sed 's/.* event=/event=/')"
grep -q "event=port_restarted.*reason=\"link up but nothing arrives" "$DIR"/r*.log ||
	fail "no port restarted for a silent link"
load --lanes 16 --verify "$DIR/acked" >"$DIR/verify" 2>&1 ||
	fail "$(cat "$DIR/verify")"
step "ok: $(sed 's/^verify: //' "$DIR/verify")"
echo "memif_silent: OK"
