#!/bin/bash
# durable: the whole-cluster crash test of durable mode (docs/deploy.md,
# "Durable mode"; issue 12). Three bypaxd processes (memif_lib.sh) with
# [cluster] durability = wal and a wal_dir each, small segments and
# frequent disk snapshots so that segments roll and are recycled:
#
#  1. a load runs (bypax-load, every acknowledged key noted); all three are
#     SIGKILLed at once in the middle of it, restarted WITHOUT --bootstrap,
#     vote at once (durable_start, no recovery_start), and every
#     acknowledged write reads back (bypax-load --verify);
#  2. the same, with a torn last write on member 0's WAL (half a record
#     after its last one, as a crash in the middle of a group commit
#     leaves it): member 0 cuts it (wal_torn_tail) and starts;
#  3. the same, with one byte flipped in a record in the middle of member
#     1's WAL: member 1 refuses to start, exit 2, with the message naming
#     the file and the byte offset, as docs/deploy.md quotes it; members 0
#     and 2 carry on: a leader, new writes, every acknowledged one there.
#
# Also: the first start needs --bootstrap (an empty wal_dir without it is
# refused), and a restart with --bootstrap is refused (it would throw the
# log away), both with the messages docs/deploy.md quotes.
#
# usage: durable.sh BUILD_DIR     (root and /dev/net/tun, else skip: 77)
set -u
BUILD=$(cd "${1:?usage: durable.sh BUILD_DIR}" && pwd) # memif_lib.sh
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
DOCS=$HERE/../../docs
# shellcheck source=tests/dpdk/memif_lib.sh
source "$HERE/memif_lib.sh"
need_root
MOUNTED=
durable_cleanup()
{
	local i
	for ((i = 0; i < N; i++)); do stop_replica "$i" KILL; done
	[[ -n $MOUNTED ]] && umount "$MOUNTED"
	cluster_cleanup
}
trap durable_cleanup EXIT
FD_TIMEOUT_MIN_US=${FD_TIMEOUT_MIN_US:-300000}
# Every load writes new keys: about 100k over the test.
KV_CAPACITY=${KV_CAPACITY:-262144}
LOAD_S=${LOAD_S:-3}

# The durable part of the config, as docs/config.md shows the keys.
cluster_init
sed -i "/^id = $CLUSTER_ID\$/a durability = wal\nwal_segment_bytes = 1048576\ndisk_snapshot_slots = 1000" "$CONF"
for i in 0 1 2; do
	sed -i "/^\[member$i\]\$/a wal_dir = $DIR/wal$i" "$CONF"
done
METRICS_PORT=$(python3 "$HERE/metrics_check.py" ports 1)
sed -i "/^\[member0\]\$/a metrics = 127.0.0.1:$METRICS_PORT" "$CONF"
# metric NAME: member 0's value of NAME now.
metric()
{
	python3 "$HERE/metrics_check.py" get "http://127.0.0.1:$METRICS_PORT/metrics" "$DIR/metrics.txt" >/dev/null 2>&1 ||
		fail "no /metrics from member 0"
	awk -v s="$1 " 'index($0, s) == 1 { print $NF; exit }' "$DIR/metrics.txt"
}

# doc_states FILE TEXT: the doc quotes TEXT (a message, as printed).
doc_states()
{
	local text
	text=$(echo "$2" | sed "s|$DIR|/var/lib/bypax|g; s|at byte [0-9]*|at byte 7340|;
		s|wal-[0-9a-f]\{16\}\.seg|wal-0000000000000003.seg|g")
	tr '\n' ' ' <"$1" | tr -s ' ' | grep -qF -- "$text" ||
		fail "$1 does not quote: $text"
}

# expect_refused I PATTERN [OPTION...]: bypaxd I exits 2, saying PATTERN.
expect_refused()
{
	local i=$1 want=$2 rc j
	shift 2
	for ((j = i + 1; j < N; j++)); do
		rm -f "$DIR/$i-$j.sock" # left behind by a killed server
	done
	replica_cmd "$i" "$@"
	timeout 60 "${REPLICA_CMD[@]}" >"$DIR/refused$i.out" 2>&1
	rc=$?
	[[ $rc -eq 2 ]] || fail "member $i $*: exit $rc, expected 2: $(tail -3 "$DIR/refused$i.out")"
	grep -qF -- "$want" "$DIR/refused$i.out" ||
		fail "member $i: no '$want' in: $(tail -3 "$DIR/refused$i.out")"
	REFUSED=$(grep -F -- "$want" "$DIR/refused$i.out" | head -1)
	step "ok: member $i refused: ${REFUSED:0:200}"
}

# load_then_kill FILE: a load for LOAD_S seconds; every member SIGKILLed
# at once two thirds of the way in; the load then gives up.
load_then_kill()
{
	local acked=$1 lp
	load --duration "$LOAD_S" --lanes 16 --timeout-ms 300 --prefix "k$RANDOM" \
		--acked "$acked" >"$DIR/load.out" 2>&1 &
	lp=$!
	sleep "$(echo "$LOAD_S * 2 / 3" | bc -l)"
	for i in 0 1 2; do kill -KILL "${PIDS[$i]}"; done
	for i in 0 1 2; do wait "${PIDS[$i]}" 2>/dev/null; PIDS[$i]=""; done
	wait "$lp"
	[[ -s $acked ]] || fail "no write acknowledged before the kill: $(cat "$DIR/load.out")"
	step "SIGKILLed all three under load; $(wc -l <"$acked") writes acknowledged before"
}

# restart I...: without --bootstrap; each replays its disk.
# replays I: how many times member I's log says it replayed its disk.
replays() { grep -c 'event=durable_start .*kind="replayed: votes at once"' "$DIR/r$1.log" 2>/dev/null; }
# replayed_since I N: member I replayed more than N times.
replayed_since() { [[ $(replays "$1") -gt $2 ]]; }
restart()
{
	local i
	local -a before
	for i in "$@"; do
		before[$i]=$(replays "$i")
		start_replica "$i"
	done
	for i in "$@"; do
		wait_for "member $i to replay its disk" 20 replayed_since "$i" "${before[$i]}" ||
			fail "member $i: no new durable_start line"
	done
	for i in "$@"; do
		grep -q "event=recovery_start" "$DIR/r$i.log" &&
			fail "member $i ran a recovery round"
	done
	wait_for "a leader" 30 has_leader || fail "no leader after the restart"
}

verify()
{
	load --verify "$1" >"$DIR/verify.out" 2>&1 || fail "verify: $(cat "$DIR/verify.out")"
	step "ok: $(cat "$DIR/verify.out")"
}

# segments I: member I's segment files, oldest first.
segments() { find "$DIR/wal$1" -name 'wal-*.seg' | sort; }

# ---- The config keys as docs/config.md shows them ----
sed -n '/^## Durability: /,/^## /p' "$DOCS/config.md" | sed -n '/^```ini$/,/^```$/p' | sed '1d;$d' >"$DIR/doc.ini"
grep -q '^durability = wal$' "$DIR/doc.ini" || fail "docs/config.md: no durability example"
out=$("$BUILD/client/bypaxctl" --config "$DIR/doc.ini" status 2>&1)
[[ $out == *"no bypaxd of cluster 42 answers"* ]] || fail "docs/config.md's durability example: $out"
# bad_config KEYLINE SECTION: the doc's example with one line changed.
bad_config()
{
	sed "$1" "$DIR/doc.ini" >"$DIR/bad.ini"
	out=$("$BUILD/client/bypaxctl" --config "$DIR/bad.ini" status 2>&1)
	doc_states "$DOCS/config.md" "$(echo "${out#bypaxctl: }" | sed "s|$DIR/bad.ini|/etc/bypax/cluster.ini|")"
}
bad_config 's/^durability = wal$/durability = disk/'
bad_config 's|^wal_dir = .*|wal_dir = var/lib/bypax|'
bad_config 's/^wal_segment_bytes = .*/wal_segment_bytes = 4096/'
sed -i 's/^\[member0\]$/[member1]\nmac = 02:00:00:00:00:09\nip = 10.0.0.9\nport = 9000\ncontrol = 192.168.1.9:7000\n[member0]/' "$DIR/doc.ini"
bad_config 's/^control = 192.168.1.9:7000$/&/'
step "ok: docs/config.md's durability example loads, its refusals are the reader's"

# ---- The first start ----
expect_refused 0 "wal_dir $DIR/wal0 holds no write-ahead log: the first start of a durable member is with --bootstrap"
doc_states "$DOCS/deploy.md" "${REFUSED#bypaxd: }"
for i in 0 1 2; do start_replica "$i" --bootstrap; done
wait_for "a leader" 20 has_leader || fail "no leader"
grep -q 'event=durable_start .*kind="new member of a new cluster"' "$DIR/r0.log" ||
	fail "member 0: no durable_start line for a new member"
[[ $(stat -c %a "$DIR/wal0") == 700 ]] || fail "wal_dir made with mode $(stat -c %a "$DIR/wal0"), not 0700"
step "started 3 durable replicas (--bootstrap), cluster $CLUSTER_ID, logs in $DIR"

# ---- 1. Every member killed under load ----
load_then_kill "$DIR/acked1"
for i in 0 1 2; do
	[[ -n $(segments "$i") ]] || fail "member $i wrote no WAL segment"
done
expect_refused 2 "wal_dir $DIR/wal2 holds a write-ahead log: --bootstrap (a new cluster) would throw it away" --bootstrap
doc_states "$DOCS/deploy.md" "${REFUSED#bypaxd: }"
restart 0 1 2
step "all three back, voting at once: $(grep -o 'event=durable_start.*' "$DIR/r1.log" | tail -1 | cut -c1-160)"
verify "$DIR/acked1"
# What group commit saves: records per sync, syncs per committed slot.
load --duration 1 --lanes 16 --prefix m --acked "$DIR/acked-m" >"$DIR/load.out" 2>&1 ||
	fail "load: $(cat "$DIR/load.out")"
[[ $(metric bypax_durable) == 1 ]] || fail "bypax_durable is not 1"
records=$(metric bypax_wal_records_total) commits=$(metric bypax_wal_group_commits_total)
syncs=$(metric bypax_wal_syncs_total) slots=$(metric bypax_slots_committed_total)
held=$(metric bypax_wal_held_frames_total)
((records > commits && commits > 0 && held > 0)) ||
	fail "member 0: $records records, $commits group commits, $held frames held"
step "ok: member 0: $records WAL records in $commits group commits ($syncs syncs) for $slots committed slots; $held frames waited for a sync"
wait_for "snapshots on disk" 20 test -e "$DIR/wal0/snapshot.bpxf" -a -e "$DIR/wal1/snapshot.bpxf" -a -e "$DIR/wal2/snapshot.bpxf" ||
	fail "no snapshot on disk was written"
step "snapshots on disk: $(ls "$DIR"/wal*/snapshot.bpxf | wc -l) of 3 members"
# Incremental (docs/deploy.md): the worker copied the frozen store in passes.
passes=$(metric bypax_disk_snapshot_copy_passes_total)
((passes > 0)) || fail "member 0: no copy pass for its disk snapshots (bypax_disk_snapshot_copy_passes_total $passes)"
step "ok: member 0's disk snapshots took $passes copy passes; its longest worker call $(metric bypax_disk_snapshot_stall_max_seconds) s"
# The layout of docs/deploy.md, "What is on disk".
for i in 0 1 2; do
	for f in snapshot.bpxf wal.lock; do
		[[ -e $DIR/wal$i/$f ]] || fail "member $i has no $f"
	done
	[[ $(stat -c %s "$(segments "$i" | tail -1)") -eq 1048576 ]] ||
		fail "member $i: its newest segment is not preallocated to wal_segment_bytes"
	# (a .tmp while a snapshot or a segment is being written)
	extra=$(ls "$DIR/wal$i" | grep -v '^wal-[0-9a-f]\{16\}\.seg\(\.tmp\)\{0,1\}$\|^snapshot\.bpxf\(\.tmp\)\{0,1\}$\|^wal\.lock$')
	[[ -z $extra ]] || fail "member $i: unexpected files in its wal_dir: $extra"
done

# ---- 2. A torn last write on member 0 ----
load_then_kill "$DIR/acked2"
seg=$(segments 0 | tail -1)
tear=$(python3 "$HERE/wal_tool.py" tear "$seg") || fail "wal_tool tear $seg"
step "tore member 0's last write: $tear"
restart 0 1 2
grep -q "event=wal_torn_tail file=$seg " "$DIR/r0.log" || fail "member 0: no wal_torn_tail line for $seg"
step "ok: $(grep -o 'event=wal_torn_tail.*' "$DIR/r0.log" | tail -1 | cut -c1-200)"
verify "$DIR/acked1"
verify "$DIR/acked2"

# ---- 3. One byte flipped in the middle of member 1's WAL ----
load_then_kill "$DIR/acked3"
seg=$(segments 1 | head -1)
off=$(python3 "$HERE/wal_tool.py" flip "$seg") || fail "wal_tool flip $seg"
step "flipped a byte of the record at byte $off of $seg"
expect_refused 1 "$seg at byte $off: record checksum mismatch, with a later group commit after it: the log is corrupted in the middle"
doc_states "$DOCS/deploy.md" "${REFUSED#bypaxd: }"
restart 0 2
PIDS[1]=""
load --duration 1 --lanes 8 --prefix after --acked "$DIR/acked4" >"$DIR/load.out" 2>&1 ||
	fail "writes with members 0 and 2: $(cat "$DIR/load.out")"
step "members 0 and 2 carry on: $(head -1 "$DIR/load.out" | cut -d, -f1-2)"
for f in acked1 acked2 acked3 acked4; do verify "$DIR/$f"; done

grep -q "event=disk_snapshot .*segments_recycled=[1-9]" "$DIR"/r*.log ||
	fail "no segment was recycled behind a snapshot"
step "ok: $(grep -ho "event=disk_snapshot .*segments_recycled=[1-9][0-9]*" "$DIR"/r*.log | tail -1)"

# ---- The procedure for a corrupt log (docs/deploy.md) ----
SNAP=$DIR/bypax.snap
ctl --id 0 snapshot "$SNAP" >"$DIR/snap.out" 2>&1 || fail "snapshot: $(cat "$DIR/snap.out")"
step "$(cat "$DIR/snap.out")"
for i in 0 2; do stop_replica "$i" TERM; done
for i in 0 1 2; do mv "$DIR/wal$i" "$DIR/wal$i.corrupt"; done
for i in 0 1 2; do start_replica "$i" "--bootstrap --restore $SNAP"; done
wait_for "a leader" 30 has_leader || fail "no leader after the restore"
wait_for "every member voting" 30 all_voting || fail "not all voting after the restore"
for f in acked1 acked2 acked3 acked4; do verify "$DIR/$f"; done
for i in 0 1 2; do
	[[ -e $DIR/wal$i/snapshot.bpxf ]] || fail "member $i: the restored state is not on its disk"
done
step "ok: every member back from the snapshot, each with it on its disk"

# ---- 5. A full disk: member 2's wal_dir on a tmpfs with little room ----
stop_replica 2 TERM
mv "$DIR/wal2" "$DIR/wal2.full"
mkdir -m 700 "$DIR/wal2"
used_kb=$(du -sk "$DIR/wal2.full" | cut -f1)
mount -t tmpfs -o size=$((used_kb + 600))k "bpx$TAG-full" "$DIR/wal2" || fail "mount a tmpfs"
MOUNTED=$DIR/wal2
cp -a "$DIR/wal2.full/." "$DIR/wal2/" || fail "copy member 2's log onto the tmpfs"
n2=$(replays 2)
start_replica 2
wait_for "member 2 to replay" 20 replayed_since 2 "$n2" ||
	fail "member 2 did not start on the tmpfs"
pid2=${PIDS[2]}
load --duration 10 --lanes 16 --prefix full --acked "$DIR/acked5" >"$DIR/load.out" 2>&1 &
lp=$!
wait_exit "$pid2" 30
rc=$?
PIDS[2]=""
wait "$lp"
[[ $rc -eq 1 ]] || fail "member 2 on a full disk: exit $rc, expected 1"
grep -q "event=wal_failed error=.*No space left on device" "$DIR/r2.log" ||
	fail "member 2: no wal_failed line naming ENOSPC"
grep -q "event=stopped reason=wal_failed" "$DIR/r2.log" || fail "member 2: no stopped reason=wal_failed"
step "ok: member 2 on a full disk stopped, exit 1: $(grep -o 'event=wal_failed.*' "$DIR/r2.log" | cut -c1-180)"
for f in acked1 acked2 acked3 acked4 acked5; do verify "$DIR/$f"; done
step "members 0 and 1 carry on"

# Every event line is strict logfmt and in docs/deploy.md's table.
python3 "$HERE/../lib/logfmt.py" --doc "$DOCS/deploy.md" "$DIR"/r*.log >"$DIR/logfmt.out" 2>&1 ||
	fail "event lines: $(tail -5 "$DIR/logfmt.out")"
step "ok: $(tail -1 "$DIR/logfmt.out")"
echo "PASS"
