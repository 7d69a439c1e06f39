#!/bin/bash
# ring_auth: bypax-cluster (3 replicas on net_ring in one process) with a
# cluster key: writes commit with 1024-byte values (shared value mbufs
# with a tag segment each), and garbage frames, among them COMMITs from a
# member's address signed with a key one bit off, are counted drops (the
# wrong-key ones as bad MAC; bypax-cluster fails the run otherwise). No
# root needed.
# usage: ring_auth.sh PATH_TO_BYPAX_CLUSTER
set -u
CLUSTER=${1:?usage: ring_auth.sh PATH_TO_BYPAX_CLUSTER}
DIR=$(mktemp -d /tmp/bypax-ring-auth.XXXXXX)
trap 'rm -rf "$DIR"' EXIT
head -c 32 /dev/urandom >"$DIR/cluster.key"
chmod 600 "$DIR/cluster.key"
eal=(--no-huge --no-pci --no-shconf -m 512 -l 0-1 --log-level=warning)
"$CLUSTER" "${eal[@]}" --file-prefix "bpx-ring-auth-$$" -- \
	--requests 20000 --idle-sleep-us 50 --garbage 30 --value-bytes 1024 \
	--key-file "$DIR/cluster.key" --quiet >"$DIR/out" 2>&1
rc=$?
cat "$DIR/out"
[[ $rc -eq 0 ]] || { echo "FAIL: bypax-cluster with a key exited $rc"; exit 1; }
grep -qE "^  cluster key +[1-9][0-9]* frames dropped as bad MAC$" "$DIR/out" ||
	{ echo "FAIL: no bad MAC drops reported"; exit 1; }
# A key others can read is refused, naming the file.
chmod 644 "$DIR/cluster.key"
"$CLUSTER" "${eal[@]}" --file-prefix "bpx-ring-auth-$$" -- \
	--requests 10 --key-file "$DIR/cluster.key" --quiet >"$DIR/bad" 2>&1 &&
	{ echo "FAIL: a world-readable key was taken"; exit 1; }
grep -qF "$DIR/cluster.key: cluster key: readable or writable by others (mode 0644)" "$DIR/bad" ||
	{ echo "FAIL: expected the mode error, got: $(cat "$DIR/bad")"; exit 1; }
echo "ring-auth: OK"
