#!/bin/bash
# wire_client: a client written from docs/wire.md alone
# (tests/wire_client/bpx_wire.py) against three bypaxd processes, through
# their net_tap ports: the KV commands, redirects, the session rules, the
# length limits, a REQUEST for another member dropped and counted in the
# telemetry; then a store filled to its capacity (sm_args capacity=64),
# and what bypax-cli and bypax-load say about it (docs/config.md).
#
# usage: wire_client.sh BUILD_DIR     (root and /dev/net/tun, else skip: 77)
set -u
BUILD=$(cd "${1:?usage: wire_client.sh BUILD_DIR}" && pwd) # memif_lib.sh
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
KV_CAPACITY=64
# shellcheck source=tests/dpdk/memif_lib.sh
source "$HERE/memif_lib.sh"
need_root
trap cluster_cleanup EXIT

cluster_init
for i in 0 1 2; do start_replica "$i" --bootstrap; done
step "started 3 replicas (--bootstrap, capacity=$KV_CAPACITY), cluster $CLUSTER_ID, logs in $DIR"
wait_for "a leader" 15 has_leader || fail "no leader"
wait_for "every member voting" 15 all_voting || fail "not every member votes"
L=$(leader_id)
step "leader elected: member $L"

members=() tel=()
for i in 0 1 2; do
	members+=("10.$((TAG % 200 + 20)).$i.1:9000")
	tel+=(--telemetry "/var/run/dpdk/bpx$TAG-$i/dpdk_telemetry.v2")
done
timeout 120 python3 "$HERE/../wire_client/check_wire_client.py" --cluster "$CLUSTER_ID" \
	--leader "$L" --capacity "$KV_CAPACITY" --deploy-doc "$HERE/../../docs/deploy.md" \
	"${tel[@]}" "${members[@]}" >"$DIR/wire.out" 2>&1
rc=$?
sed 's/^/    /' "$DIR/wire.out"
[[ $rc -eq 0 ]] || fail "the wire.md client: exit $rc"
step "ok: the client written from docs/wire.md works against bypaxd"

# ---- The store is full now: what the tools say ----
want="the store is full (capacity $KV_CAPACITY keys, from sm_args in $CONF; see sm_args capacity in docs/config.md)"
cli put a-new-key v >"$DIR/cli.out" 2>"$DIR/cli.err"
rc=$?
[[ $rc -eq 1 ]] || fail "bypax-cli put into a full store exited $rc, expected 1"
grep -qF "bypax-cli: put 'a-new-key': $want" "$DIR/cli.err" ||
	fail "bypax-cli put into a full store said: $(cat "$DIR/cli.err")"
step "ok: $(cat "$DIR/cli.err")"
cli put fill-0 updated >/dev/null 2>&1 || fail "bypax-cli: an update of an existing key failed when full"
step "ok: bypax-cli updates an existing key of a full store"

load --duration 5 --lanes 4 --prefix full >"$DIR/load.out" 2>&1
rc=$?
sed 's/^/    /' "$DIR/load.out"
[[ $rc -eq 1 ]] || fail "bypax-load into a full store exited $rc, expected 1"
grep -qE "^load: 0 writes acknowledged, 0 failed, " "$DIR/load.out" ||
	fail "bypax-load counted FULL as failed: $(cat "$DIR/load.out")"
grep -qE "^load: [0-9]+ writes refused: $(printf '%s' "$want" | sed 's/[().]/\\&/g'); stopped at [0-9.]+ s$" "$DIR/load.out" ||
	fail "bypax-load did not name the full store: $(cat "$DIR/load.out")"
stopped=$(sed -n 's/.*; stopped at \([0-9]*\)\..*/\1/p' "$DIR/load.out")
[[ ${stopped:-9} -lt 4 ]] || fail "bypax-load went on writing into a full store (stopped at ${stopped:-?} s of 5)"
step "ok: bypax-load counts the refusals apart, names the capacity and stops"
echo "wire_client: OK"
