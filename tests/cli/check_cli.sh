#!/bin/bash
# The command line of every shipped binary without a cluster, hugepages or
# root: --version prints "<name> <project version>" and exits 0, --help
# prints the program's own usage and exits 0 (bypaxd and the other EAL
# programs before their EAL starts), and bypaxctl's usage errors exit 2
# with a message that names what is wrong (docs/deploy.md).
#
# usage: check_cli.sh BUILD_DIR VERSION
set -u
BUILD=${1:?usage: check_cli.sh BUILD_DIR VERSION}
VERSION=${2:?usage: check_cli.sh BUILD_DIR VERSION}
fails=0
ok() { echo "ok: $*"; }
bad() { echo "FAIL: $*"; fails=$((fails + 1)); }

for bin in dataplane/bypaxd dataplane/bypax-cluster dataplane/bypax-fwd \
	client/bypax-cli client/bypaxctl client/bypax-load \
	tests/chaos/bypax-chaos-client tests/chaos/bypax-chaos-check; do
	name=$(basename "$bin")
	out=$(timeout 10 "$BUILD/$bin" --version 2>&1)
	rc=$?
	[[ $rc -eq 0 && $out == "$name $VERSION" ]] && ok "$name --version: $out" ||
		bad "$name --version: exit $rc, '$out' (expected '$name $VERSION')"
	out=$(timeout 10 "$BUILD/$bin" --help 2>&1)
	rc=$?
	[[ $rc -eq 0 && $out == *"usage: $name"* && $out == *--version* ]] &&
		ok "$name --help: exit 0, its usage, names --version" ||
		bad "$name --help: exit $rc: $(head -3 <<<"$out")"
	[[ $out == *"EAL: "* ]] && bad "$name --help started the EAL"
done
out=$(timeout 10 "$BUILD/dataplane/bypaxd" -- --help 2>&1)
[[ $? -eq 0 && $out == *"usage: bypaxd"* ]] && ok "bypaxd -- --help" || bad "bypaxd -- --help: $out"

# usage_error WANT ARGS...: bypaxctl ARGS exits 2, stderr has WANT.
usage_error()
{
	local want=$1 out rc
	shift
	out=$(timeout 10 "$BUILD/client/bypaxctl" --config /nonexistent "$@" 2>&1 >/dev/null)
	rc=$?
	[[ $rc -eq 2 && $out == *"$want"* ]] && ok "bypaxctl $*: exit 2, '$out'" ||
		bad "bypaxctl $*: exit $rc, '$out' (expected 2 and '$want')"
}
usage_error "leader transfer: missing the member id" leader transfer
usage_error "leader: missing 'transfer ID|none'" leader
usage_error "leader: 'move' is not transfer" leader move 1
usage_error "unexpected argument 'x'" leader transfer 1 x
usage_error "snapshot takes one argument" snapshot
usage_error "unknown command 'bogus'" bogus
usage_error "status: unexpected argument 'x'" status x
usage_error "members: 'x' is not add or remove" members x
usage_error "members add: missing the member id" members add
usage_error "members remove: one id at a time" members remove 1 2
usage_error "fault: expected" fault isolate
usage_error "--id must be 0..6, got 'z'" --id z status
usage_error "no command" --json
# A well-formed command gets past the check to the config.
out=$(timeout 10 "$BUILD/client/bypaxctl" --config /nonexistent leader transfer none 2>&1)
[[ $? -eq 2 && $out == *nonexistent* ]] && ok "a good command reaches the config: '$out'" ||
	bad "leader transfer none with a missing config: '$out'"
# A durable member's wal_dir whose files cannot all be there: refused,
# exit 2, before the EAL, with docs/deploy.md's words ("A corrupt
# write-ahead log"). Files are checked by name only, so empty ones do.
DOC=$(dirname "$0")/../../docs/deploy.md
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT
WAL=$TMP/wal0
printf '%s\n' '[cluster]' 'id = 42' 'durability = wal' '' '[member0]' \
	'mac = 02:00:00:00:00:01' 'ip = 10.0.0.1' 'port = 9000' \
	'control = 127.0.0.1:7000' "wal_dir = $WAL" >"$TMP/durable.ini"
# wal_refused FILE... -- WANT: bypaxd on a wal_dir holding only FILEs
# (empty) exits 2 with WANT before the EAL, and docs/deploy.md shows the
# line it printed.
wal_refused()
{
	local files=() want out rc doc_line
	while [[ $1 != -- ]]; do files+=("$1"); shift; done
	want=$2
	rm -rf "$WAL" && mkdir -p "$WAL" || { bad "cannot make $WAL"; return; }
	for f in "${files[@]}"; do : >"$WAL/$f"; done
	out=$(BYPAX_RUN_DIR=$TMP/run timeout 10 "$BUILD/dataplane/bypaxd" -- \
		--config "$TMP/durable.ini" --id 0 2>&1)
	rc=$?
	if [[ $rc -ne 2 || $out != *"$want"* || $out == *"EAL: "* ]]; then
		bad "wal_dir with ${files[*]:-nothing}: exit $rc, '$out' (expected 2 and '$want')"
		return
	fi
	doc_line=${out//$WAL//var/lib/bypax/wal1}
	grep -qxF -- "$doc_line" "$DOC" || doc_line=${out//$WAL//var/lib/bypax/wal0}
	grep -qxF -- "$doc_line" "$DOC" || bad "docs/deploy.md does not show: $doc_line"
	ok "wal_dir with ${files[*]:-nothing}: exit 2, '${out:0:100}...'"
}
wal_refused -- "holds no write-ahead log: the first start of a durable member is with --bootstrap"
wal_refused snapshot.bpxf -- "holds snapshot.bpxf and no write-ahead log segment"
wal_refused wal-0000000000000002.seg wal-0000000000000003.seg -- \
	"the segments before its oldest were deleted behind a snapshot on disk, and snapshot.bpxf is missing"
[[ $fails -eq 0 ]] && echo "cli: OK" || { echo "cli: $fails failed"; exit 1; }
