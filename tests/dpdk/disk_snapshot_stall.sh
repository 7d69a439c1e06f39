#!/bin/bash
# disk-snapshot-stall: how long a snapshot to disk stalls bypaxd's worker
# (docs/deploy.md, "Durable mode"; issue 12). Three durable bypaxd
# (memif_lib.sh) are filled with KEYS keys by bypax-load (it stops when
# the store, sized capacity=KEYS, is full) while a snapshot goes to disk
# every SNAPSHOT_SLOTS applied slots, twice:
#
#  1. over tests/dpdk/kv_v2_sm.c, the built-in store as an ABI version 2
#     .so, without the incremental snapshot ops: bypaxd saves each one
#     synchronously on the worker (copy passes 0);
#  2. over the built-in store: frozen, copied 64 KiB a tick, serialized by
#     the writer thread (copy passes > 0).
#
# Each prints member 0..2's bypax_disk_snapshot_stall_max_seconds
# (docs/metrics.md) in microseconds, and the largest of them:
#   sync (kv-v2 .so): keys=K snapshots=S copy_passes=0 stall_max_us=A,B,C max=M
#   incremental (kv): keys=K snapshots=S copy_passes=P stall_max_us=A,B,C max=M
# It checks that each way is the one taken (copy passes), that every
# member wrote snapshots, and every acknowledged write reads back; not the
# stalls themselves, which depend on the machine (docs/performance.md,
# "Disk snapshots", has measured ones: KEYS=120000).
#
# usage: disk_snapshot_stall.sh BUILD_DIR   (root and /dev/net/tun, else skip: 77)
set -u
BUILD=$(cd "${1:?usage: disk_snapshot_stall.sh BUILD_DIR}" && pwd) # memif_lib.sh
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
KEYS=${KEYS:-20000}
SNAPSHOT_SLOTS=${SNAPSHOT_SLOTS:-200}
KV_CAPACITY=$KEYS
METRICS=1
# shellcheck source=tests/dpdk/memif_lib.sh
source "$HERE/memif_lib.sh"
need_root
trap cluster_cleanup EXIT
V2_SO=$BUILD/tests/dpdk/libbypax_sm_kv_v2.so
[[ -e $V2_SO ]] || fail "no $V2_SO: build tests/dpdk first"

cluster_init
sed -i "/^id = $CLUSTER_ID\$/a durability = wal\nwal_segment_bytes = 4194304\ndisk_snapshot_slots = $SNAPSHOT_SLOTS\nsm = kv" "$CONF"
for i in 0 1 2; do
	sed -i "/^\[member$i\]\$/a wal_dir = $DIR/wal$i" "$CONF"
done

# metric I NAME: member I's value of NAME now.
metric()
{
	local port
	port=$(sed -n "/^\[member$1\]\$/,/^\[/p" "$CONF" | sed -n 's/^metrics = 127.0.0.1:\([0-9]*\)$/\1/p')
	python3 "$HERE/metrics_check.py" get "http://127.0.0.1:$port/metrics" "$DIR/metrics$1.txt" >/dev/null 2>&1 ||
		fail "no /metrics from member $1"
	awk -v s="$2 " 'index($0, s) == 1 { print $NF; exit }' "$DIR/metrics$1.txt"
}
snapshots_at_least() { [[ $(metric 0 bypax_disk_snapshots_total) -ge $1 && $(metric 1 bypax_disk_snapshots_total) -ge $1 && $(metric 2 bypax_disk_snapshots_total) -ge $1 ]]; }

# run LABEL SM: one cluster over state machine SM, filled, measured.
run()
{
	local label=$1 sm=$2 i passes=0 stalls="" max=0 s p n
	sed -i "s|^sm = .*|sm = $sm|" "$CONF"
	rm -f "$DIR/acked"
	for i in 0 1 2; do rm -rf "$DIR/wal$i"; start_replica "$i" --bootstrap; done
	wait_for "a leader" 30 has_leader || fail "$label: no leader"
	# Writes until the store is full (bypax-load stops there, exit 1).
	load --duration 120 --lanes 32 --prefix s --acked "$DIR/acked" >"$DIR/load.out" 2>&1
	grep -q "full" "$DIR/load.out" || fail "$label: the store did not fill: $(tail -3 "$DIR/load.out")"
	# Whatever is applied now is in the next snapshots: a few more.
	n=$(metric 0 bypax_disk_snapshots_total)
	wait_for "snapshots on disk" 30 snapshots_at_least 2 || fail "$label: fewer than 2 snapshots on disk per member"
	for i in 0 1 2; do
		s=$(metric "$i" bypax_disk_snapshot_stall_max_seconds | awk '{ printf "%d", $1 * 1e6 }')
		p=$(metric "$i" bypax_disk_snapshot_copy_passes_total)
		passes=$((passes + p))
		stalls+="${stalls:+,}$s"
		((s > max)) && max=$s
	done
	load --verify "$DIR/acked" >"$DIR/verify.out" 2>&1 || fail "$label: verify: $(cat "$DIR/verify.out")"
	echo "$label: keys=$(wc -l <"$DIR/acked") snapshots=$n copy_passes=$passes stall_max_us=$stalls max=$max"
	LAST_PASSES=$passes
	for i in 0 1 2; do stop_replica "$i" TERM; done
}

run "sync (kv-v2 .so)" "$V2_SO"
[[ $LAST_PASSES -eq 0 ]] || fail "the version 2 .so took $LAST_PASSES copy passes: not the synchronous save"
run "incremental (kv)" kv
[[ $LAST_PASSES -gt 0 ]] || fail "the built-in store took no copy pass: not incremental"
echo PASS
