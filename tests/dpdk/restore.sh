#!/bin/bash
# restore: disaster recovery end to end, with the commands of docs/deploy.md
# ("Disaster recovery"). Three bypaxd processes (memif_lib.sh) take a few
# hundred keys; then two of them lose their state at once, which the fault
# model does not allow: they restart without --bootstrap and stay
# recovering, for they can only recover from a majority that votes, and
# the cluster is stuck. The third still holds the state:
# `bypaxctl snapshot PATH` saves it (a recovering member refuses, and
# without --id the next member is asked); every replica is killed; bad
# files are refused with the messages the doc names (damaged, truncated,
# not a snapshot, another cluster id, no --bootstrap, an old replica still
# running); every member restarts with --bootstrap --restore PATH; every
# key is back with its value, and the new cluster takes new writes.
#
# usage: restore.sh BUILD_DIR     (root and /dev/net/tun, else skip: 77)
set -u
BUILD=$(cd "${1:?usage: restore.sh BUILD_DIR}" && pwd) # memif_lib.sh
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=tests/dpdk/memif_lib.sh
source "$HERE/memif_lib.sh"
need_root
trap cluster_cleanup EXIT
KEYS=${KEYS:-300}
SNAP=$DIR/cluster.snap
# Failure detection at 300 ms, not 40: a reader that stalls the control
# thread would stop its heartbeats for seconds, while this shared machine
# pauses every process at once for tens of ms now and then (each member
# suspects both others at the same instant), which is no failover to
# blame on a snapshot.
FD_TIMEOUT_MIN_US=${FD_TIMEOUT_MIN_US:-300000}

# expect_restore_refused PATTERN FILE [OPTION...]: bypaxd --restore FILE as
# member 0 must exit 2 before any port starts, saying PATTERN. No vdev:
# the file is checked before ports are needed.
expect_restore_refused()
{
	local want=$1 file=$2 rc
	shift 2
	timeout 30 "$BUILD/dataplane/bypaxd" -l 0 --no-huge -m 64 --no-pci \
		--no-shconf --file-prefix "bpx$TAG-chk" --log-level=error -- \
		--config "$CONF" --id 0 --snapshot-mb 16 --bootstrap \
		--restore "$file" "$@" >"$DIR/refused.out" 2>&1
	rc=$?
	[[ $rc -eq 2 ]] || fail "--restore $file $*: exit $rc, expected 2: $(cat "$DIR/refused.out")"
	grep -qF -- "$want" "$DIR/refused.out" ||
		fail "--restore $file $*: no '$want' in: $(cat "$DIR/refused.out")"
	step "ok: refused: $(grep -F -- "$want" "$DIR/refused.out" | head -1 | cut -c1-160)"
}

# ---- A cluster with a few hundred keys ----
cluster_init
for i in 0 1 2; do start_replica "$i" --bootstrap; done
step "started 3 replicas (--bootstrap), cluster $CLUSTER_ID, logs in $DIR"
wait_for "a leader" 20 has_leader || fail "no leader"
for ((k = 0; k < KEYS; k++)); do
	cli put "key-$k" "value-$k-$TAG" || fail "put key-$k"
done
step "wrote $KEYS keys with bypax-cli put"
wait_for "every member to apply every write" 20 converged ||
	fail "not converged: $(applied_indexes)"

# ---- The disaster: members 0 and 2 lose their state at once ----
for i in 0 2; do stop_replica "$i" KILL; done
for i in 0 2; do start_replica "$i"; done # a restart: no --bootstrap
sleep 3
for i in 0 2; do
	[[ $(role_of "$i") == recovering ]] ||
		fail "member $i is '$(role_of "$i")', expected recovering"
done
step "members 0 and 2 restarted without their state: recovering; member 1 is '$(role_of 1)'"

# ---- Save what member 1 still holds ----
out=$(ctl --id 0 snapshot "$SNAP" 2>&1)
rc=$?
[[ $rc -eq 1 && $out == *"member 0 is recovering"* ]] ||
	fail "snapshot of a recovering member: exit $rc: $out"
[[ ! -e $SNAP && ! -e $SNAP.tmp ]] || fail "a refused snapshot left a file"
step "ok: a recovering member refuses: $out"
out=$(ctl snapshot "$DIR/no-such-dir/x.snap" 2>&1)
rc=$?
[[ $rc -eq 1 && $out == *"cannot create $DIR/no-such-dir/x.snap.tmp: No such file or directory"* ]] ||
	fail "snapshot to a missing directory: exit $rc: $out"
step "ok: an unwritable path: $out"
# Without --id: member 0 refuses (recovering), member 1 streams.
ctl snapshot "$SNAP" >"$DIR/snap.out" 2>&1 || fail "snapshot: $(cat "$DIR/snap.out")"
grep -q "^ok: snapshot of member 1 at applied index [0-9]* (.*) written to $SNAP$" "$DIR/snap.out" ||
	fail "snapshot: $(cat "$DIR/snap.out")"
[[ $(head -c 4 "$SNAP") == BPXF && ! -e $SNAP.tmp ]] || fail "$SNAP is not a snapshot file"
index=$(sed -n 's/.* at applied index \([0-9]*\) .*/\1/p' "$DIR/snap.out")
step "$(cat "$DIR/snap.out")"
# The documented command, as written there: the member to save, by id.
ctl --id 1 snapshot "$SNAP" >"$DIR/snap.out" 2>&1 || fail "snapshot --id 1: $(cat "$DIR/snap.out")"
step "$(cat "$DIR/snap.out")"

# ---- Refusals: an old replica still runs, bad files ----
expect_restore_refused "a bypaxd still answers on $BYPAX_RUN_DIR/bypaxd-$CLUSTER_ID-0.sock" "$SNAP"
for i in 0 1 2; do stop_replica "$i" KILL; done
step "killed every replica: the cluster is lost"
size=$(stat -c %s "$SNAP")
head -c $((size - 10)) "$SNAP" >"$DIR/truncated.snap"
expect_restore_refused "--restore $DIR/truncated.snap: its length differs from what its header says" \
	"$DIR/truncated.snap"
cp "$SNAP" "$DIR/corrupt.snap"
printf '\xff' | dd of="$DIR/corrupt.snap" bs=1 seek=$((size / 2)) conv=notrunc status=none
expect_restore_refused "--restore $DIR/corrupt.snap: checksum mismatch: the file is corrupted" \
	"$DIR/corrupt.snap"
expect_restore_refused "--restore $CONF: not a bypax snapshot file (bad magic)" "$CONF"
expect_restore_refused "--restore $DIR/missing.snap: cannot read it: No such file or directory" \
	"$DIR/missing.snap"
cp "$CONF" "$DIR/cluster.conf"
sed -i "s/^id = $CLUSTER_ID\$/id = $((CLUSTER_ID + 1))/" "$CONF"
expect_restore_refused "a snapshot of cluster $CLUSTER_ID, but $CONF is cluster $((CLUSTER_ID + 1)); to restore it into cluster $((CLUSTER_ID + 1)) on purpose, add --restore-other-cluster" \
	"$SNAP"
cp "$DIR/cluster.conf" "$CONF"
out=$("$BUILD/dataplane/bypaxd" -l 0 --no-huge -m 64 --no-pci --no-shconf \
	--file-prefix "bpx$TAG-chk" --log-level=error -- --config "$CONF" --id 0 \
	--restore "$SNAP" 2>&1)
rc=$?
[[ $rc -eq 2 && $out == *"it needs --bootstrap too"* ]] || fail "--restore without --bootstrap: exit $rc: $out"
step "ok: refused: $out"

# ---- The restore: every member from the same file ----
for i in 0 1 2; do start_replica "$i" "--bootstrap --restore $SNAP"; done
for i in 0 1 2; do
	wait_for "member $i to say it restored" 10 grep -qF "event=restored file=$SNAP cluster=$CLUSTER_ID index=$index " "$DIR/r$i.log" ||
		fail "member $i: no 'restored' line for index $index"
done
step "every member restored $SNAP at applied index $index"
wait_for "a leader" 20 has_leader || fail "no leader after the restore"
wait_for "every member voting" 20 all_voting || fail "not all voting after the restore"
step "leader after the restore: member $(leader_id)"
for ((k = 0; k < KEYS; k++)); do
	v=$(cli get "key-$k") || fail "get key-$k after the restore"
	[[ $v == "value-$k-$TAG" ]] || fail "key-$k is '$v' after the restore, expected value-$k-$TAG"
done
step "ok: all $KEYS keys read back with bypax-cli get, every value right"

# ---- The new history takes new writes ----
cli put after-restore yes || fail "put after the restore"
[[ $(cli get after-restore) == yes ]] || fail "get after-restore"
load --duration 1 --lanes 8 --prefix restored --acked "$DIR/acked" >"$DIR/load.out" 2>&1 ||
	fail "bypax-load after the restore: $(cat "$DIR/load.out")"
load --verify "$DIR/acked" >"$DIR/verify.out" 2>&1 || fail "verify: $(cat "$DIR/verify.out")"
step "new writes: $(head -1 "$DIR/load.out" | cut -d, -f1-2); $(cat "$DIR/verify.out")"
wait_for "every member to apply every write" 20 converged ||
	fail "not converged after the restore: $(applied_indexes)"
step "ok: converged past the snapshot: $(applied_indexes)"

# ---- A reader that stops reading: the control thread goes on ----
# The state is megabytes now, more than the socket holds: the daemon must
# send a part per loop without blocking, and give up on a reader that
# takes nothing for 5 s (its heartbeats and admin socket meanwhile fine).
leader=$(leader_id)
failovers_of() { ctl --id "$1" --json status | sed -n 's/.*"failovers":\([0-9]*\).*/\1/p'; }
before=$(failovers_of "$leader")
python3 - "$BYPAX_RUN_DIR/bypaxd-$CLUSTER_ID-$leader.sock" >"$DIR/stall.out" 2>&1 <<'PY' &
import socket, sys, time
s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
s.connect(sys.argv[1])
s.sendall(b"snapshot\n")
line = b""
while not line.endswith(b"\n"):
    line += s.recv(1)
total = int(line.split(b", ")[1].split()[0])
print(line.decode().strip(), flush=True)
time.sleep(7)  # takes nothing: the daemon must drop this reader
got = 0
s.settimeout(3)
while True:
    b = s.recv(1 << 16)
    if not b:
        break
    got += len(b)
print("stalled reader: %d of %d bytes, then closed" % (got, total))
PY
reader=$!
wait_for "the stalled reader's first line" 5 grep -q "^ok: snapshot" "$DIR/stall.out" ||
	fail "stalled reader: $(cat "$DIR/stall.out")"
out=$(ctl --id "$leader" snapshot "$DIR/second.snap" 2>&1)
[[ $? -eq 1 && $out == *"another snapshot of member $leader is in progress"* ]] ||
	fail "a second snapshot during the first: $out"
t0=$(date +%s%N)
ctl --id "$leader" status >/dev/null || fail "status while a reader stalls"
ms=$((($(date +%s%N) - t0) / 1000000))
((ms < 1000)) || fail "status took $ms ms while a reader stalls"
step "ok: while a reader stalls: status in $ms ms; $out"
wait "$reader"
grep -q "^stalled reader: [0-9]* of [0-9]* bytes, then closed" "$DIR/stall.out" ||
	fail "stalled reader: $(cat "$DIR/stall.out")"
read -r got total < <(sed -n 's/^stalled reader: \([0-9]*\) of \([0-9]*\) .*/\1 \2/p' "$DIR/stall.out")
((got < total)) || fail "the stalled reader got the whole file ($got bytes): not a test of a stall"
[[ $(failovers_of "$leader") == "$before" && $(leader_id) == "$leader" ]] ||
	fail "the leader changed while a reader stalled: $(ctl status)"
step "ok: $(tail -1 "$DIR/stall.out"); leader $leader throughout, no failover"
ctl --id "$leader" snapshot "$DIR/second.snap" >"$DIR/snap2.out" 2>&1 ||
	fail "snapshot after the stall: $(cat "$DIR/snap2.out")"
step "$(cat "$DIR/snap2.out")"
echo "restore: OK"
