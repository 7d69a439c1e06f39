#!/bin/bash
# memif_order: replicas start in any order. A memif client whose server
# (a lower-id peer) is not up yet used to make bypaxd exit at start
# ("port 0: set-up failed"), so a replica restarted while that peer was
# down never came back (issue 9: "no way back after restarts in the wrong
# order"). Now it starts with the port paused and connects once the
# server is there.
#
# usage: memif_order.sh BUILD_DIR   (root and /dev/net/tun, else skip: 77)
set -u
BUILD=$(cd "${1:?usage: memif_order.sh BUILD_DIR}" && pwd) # memif_lib.sh
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=tests/dpdk/memif_lib.sh
source "$HERE/memif_lib.sh"
need_root
trap cluster_cleanup EXIT
cluster_init
start_replica 2 --bootstrap
start_replica 1 --bootstrap
sleep 2
kill -0 "${PIDS[1]}" 2>/dev/null || fail "bypaxd 1 exited without its memif server (member 0)"
kill -0 "${PIDS[2]}" 2>/dev/null || fail "bypaxd 2 exited without its memif servers (members 0, 1)"
grep -q "memif server not reachable yet" "$DIR/r2.log" ||
	fail "bypaxd 2 did not say its memif server is not reachable yet"
step "ok: 1 and 2 run while member 0, their memif server, is down"
start_replica 0 --bootstrap
wait_for "a leader" 30 has_leader || fail "no leader once member 0 started"
cli put order-key order-value >/dev/null || fail "put after the late start"
[[ $(cli get order-key) == order-value ]] || fail "get after the late start"
wait_for "all three voting" 30 all_voting || fail "not all voting"
step "ok: member 0 started last; links up, writes committed"
echo "memif_order: OK"
