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
# Member 0 is the memif server of both its links, as the member that broke
# was (docs/deploy.md, "Silent memif links"): its own side must repair
# itself although each client reconnect drops its link. It must follow.
if [[ $L -eq 0 ]]; then
	out=$(ctl --id 0 leader transfer 1) || fail "leader transfer 1: $out"
	step "leader 0 hands over to 1: $out"
	wait_for "member 1 leading" 20 bash -c "[[ \$(CTL_TIMEOUT=2 '$BUILD/client/bypaxctl' --config '$CONF' --id 1 --json status 2>/dev/null | sed -n 's/.*\"leader\":\([0-9]*\).*/\1/p') == 1 ]]" ||
		fail "member 1 did not take over"
	L=1
fi
F=0
step "leader $L; silencing both data links of follower $F (server of both)"
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
# docs/deploy.md ("Silent memif links") and docs/wire.md ("ARP") state the
# limits: the events say them, and so do the constants.
DOCS=$HERE/../../docs
SRC=$HERE/../../dataplane/bypaxd.c
joined() { tr '\n' ' ' <"$1" | tr -s ' '; } # a doc's text, lines joined
joined "$DOCS/deploy.md" | grep -q "for 4 s (its client side) or 8 s (its server side)" ||
	fail "docs/deploy.md does not state the 4 s / 8 s limits"
joined "$DOCS/wire.md" | grep -q "every 250 ms, bypaxd's worker sends each other member" ||
	fail "docs/wire.md does not state the 250 ms probe"
grep -q "^#define LINK_PROBE_NS 250000000ull" "$SRC" || fail "LINK_PROBE_NS is not 250 ms"
grep -q "^#define LINK_SILENT_CLIENT_TICKS 40 " "$SRC" || fail "the client limit is not 4 s"
grep -q "^#define LINK_SILENT_SERVER_TICKS 80$" "$SRC" || fail "the server limit is not 8 s"
while read -r line; do
	case "$line" in
	*"silent_ms=4000 role=client"* | *"silent_ms=8000 role=server"*) ;;
	*) fail "a link_silent event with another limit: $line" ;;
	esac
done <"$DIR/silent"
step "ok: the limits of docs/deploy.md and docs/wire.md (4 s, 8 s, 250 ms)"
load --lanes 16 --verify "$DIR/acked" >"$DIR/verify" 2>&1 ||
	fail "$(cat "$DIR/verify")"
step "ok: $(sed 's/^verify: //' "$DIR/verify")"
echo "memif_silent: OK"
