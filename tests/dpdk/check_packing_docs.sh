#!/usr/bin/env bash
# docs/performance.md "Lever: packed requests and replies" and
# docs/wire.md "Packed requests and replies": run the two bypax-cluster
# commands the lever shows, as written, with build-rel/ read as this build
# directory; check each prints the rows its tables are read from and that
# packing cuts the frames per op as the section says; check the limits,
# type numbers, defaults and tests the two pages state against the code.
set -euo pipefail
src=${1:?usage: check_packing_docs.sh SOURCE_ROOT BUILD_DIR}
build=${2:?usage: check_packing_docs.sh SOURCE_ROOT BUILD_DIR}
perf=$src/docs/performance.md
wire=$src/docs/wire.md
fail() { echo "packing docs: $*" >&2; exit 1; }
section_of() { # FILE TITLE: the lines under the title, to the next of its level
	local level=${2%% *}
	awk -v t="$2" -v l="$level" '$0 == t { on = 1; next }
		on && index($0, l " ") == 1 { on = 0 } on' "$1"
}
lever=$(section_of "$perf" '## Lever: packed requests and replies')
[[ -n $lever ]] || fail "no lever section in $perf"
packed=$(section_of "$wire" '### Packed requests and replies (MULTI\_REQUEST, MULTI\_REPLY)')
[[ -n $packed ]] || fail "no packed section in $wire"

mapfile -t cmds < <(sed -n 's/^    \(nice -n 19 build-rel\/.*\)$/\1/p' <<<"$lever")
[[ ${#cmds[@]} -eq 2 ]] || fail "expected 2 documented commands, found ${#cmds[@]}"
declare -A per_op
run_pair() {
	for cmd in "${cmds[@]}"; do
		run=${cmd/ build-rel\// $build/}
		pack=$(sed -n 's/.*--pack \([0-9]*\).*/\1/p' <<<"$cmd")
		[[ -n $pack ]] || fail "a documented command without --pack: $cmd"
		out=$(bash -c "$run" 2>&1) || { echo "$out" >&2; fail "documented command failed: $cmd"; }
		for w in '  cycles per op   ' 'leader 0 alone' "up to $pack requests per client frame" 'bypax-cluster: OK'; do
			grep -qF -- "$w" <<<"$out" || { echo "$out" >&2; fail "'$cmd' printed no '$w'"; }
		done
		per_op[$pack]=$(sed -n 's/^  packets per op  \([0-9.]*\) .*/\1/p' <<<"$out")
		echo "ok: $cmd (packets per op ${per_op[$pack]})"
	done
}
# The section says packing cuts the frames per op to under a third. A
# loaded machine can stall a run into a few thousand ops/s, with or without
# packing, and then frames per op say little: up to three pairs.
grep -q 'under a third of the frames' <<<"$lever" || fail "the lever no longer states its frame cut"
cut=no
for attempt in 1 2 3; do
	run_pair
	if awk -v a="${per_op[1]}" -v b="${per_op[64]}" 'BEGIN { exit !(b * 3 < a) }'; then
		cut=yes
		break
	fi
	echo "pair $attempt: packets per op ${per_op[64]} (--pack 64) not under a third of ${per_op[1]} (--pack 1); again"
done
[[ $cut == yes ]] || fail "packets per op with --pack 64 was not under a third of --pack 1's in three pairs"

# The limits and type numbers of docs/wire.md, against wire.h.
h=$src/include/bypax/wire.h
want_define() { grep -q "^#define $1 $2u\$" "$h" || fail "wire.h: $1 is not $2, as docs/wire.md states"; }
grep -qF '| 16 | MULTI\_REQUEST |' <<<"$packed" && want_define BPX_WIRE_MULTI_REQUEST 16 || fail "MULTI_REQUEST type"
grep -qF '| 17 | MULTI\_REPLY |' <<<"$packed" && want_define BPX_WIRE_MULTI_REPLY 17 || fail "MULTI_REPLY type"
grep -qF '1..64 (`BPX_WIRE_MULTI_MAX`)' <<<"$packed" && want_define BPX_WIRE_MULTI_MAX 64 || fail "entry count"
grep -qF '**1472 bytes** (`BPX_WIRE_MULTI_PAYLOAD_MAX`' <<<"$packed" && want_define BPX_WIRE_MULTI_PAYLOAD_MAX 1472 || fail "payload bound"
grep -qF 'One entry (20 bytes, then its value)' <<<"$packed" || fail "entry size"
grep -q '^#define BPX_WIRE_MULTI_ENTRY_BYTES 20u$' "$h" || fail "wire.h: an entry is not 20 bytes"

# The knobs as the two pages name them, with their defaults.
"$build/dataplane/bypax-cluster" --help | grep -qF -- '--pack N            requests per client frame at most, 1..64' ||
	fail "bypax-cluster --help has no --pack 1..64"
"$build/dataplane/bypax-cluster" --help | grep -qF -- '(default 64: what a lane has ready goes in' ||
	fail "bypax-cluster --pack's default is not 64"
"$build/dataplane/bypax-dpdk-load" --help | grep -qF -- '(default 64: MULTI_REQUEST frames,' ||
	fail "bypax-dpdk-load --pack's default is not 64"
"$build/client/bypax-load" --help | grep -qF -- '--pack K: up to K requests per datagram, 1..64 (default 1;' ||
	fail "bypax-load --pack's default is not 1"
for doc in "$packed" "$lever"; do
	grep -qF 'bypax-cluster --pack N' <<<"$doc" || fail "a page does not name bypax-cluster --pack N"
done
grep -qF 'pack_max' <<<"$lever" && grep -q 'uint32_t pack_max;' "$src/include/bypax/client.h" ||
	fail "libbypax's pack_max is not what the lever names"

# The tests the lever names.
for t in test_request_round_trip test_decode_drop_reasons test_bounds; do
	grep -q "$t" <<<"$lever" && grep -q "cmocka_unit_test($t)" "$src/tests/unit/test_wire_multi.c" ||
		fail "the lever names $t, which tests/unit/test_wire_multi.c does not run"
done
for t in test_each_request_applied_once_and_answered test_malformed_frame_dropped_whole test_replies_split_over_frames; do
	grep -q "$t" <<<"$lever" && grep -q "cmocka_unit_test($t)" "$src/tests/dpdk/test_packed.c" ||
		fail "the lever names $t, which tests/dpdk/test_packed.c does not run"
done
grep -q 'test_pipelined_lanes_packed' <<<"$lever" && grep -q 'T(test_pipelined_lanes_packed)' "$src/tests/unit/test_client.c" ||
	fail "the lever names test_pipelined_lanes_packed, which test_client.c does not run"
echo "packing docs: OK"
