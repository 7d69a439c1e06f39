#!/usr/bin/env bash
# docs/performance.md "Levers: the session table and the IPv4 header
# checksum": run every command line the section shows, as written, with
# its build/ read as this build directory, and check each prints the rows
# the section's tables are read from; check the limit and the tests it
# names exist as it names them.
set -euo pipefail
src=${1:?usage: check_levers_docs.sh SOURCE_ROOT BUILD_DIR}
build=${2:?usage: check_levers_docs.sh SOURCE_ROOT BUILD_DIR}
doc=$src/docs/performance.md
title='## Levers: the session table and the IPv4 header checksum'
section=$(awk -v t="$title" '$0 == t { on = 1; next } /^## / { on = 0 } on' "$doc")
[[ -n $section ]] || { echo "no '$title' in $doc" >&2; exit 1; }
mapfile -t cmds < <(sed -n 's/^    \(nice -n 19 build\/.*\)$/\1/p' <<<"$section")
[[ ${#cmds[@]} -eq 4 ]] || { echo "expected 4 documented commands, found ${#cmds[@]}" >&2; exit 1; }
for cmd in "${cmds[@]}"; do
	run=${cmd/ build\// $build/}
	case $cmd in
	*bypax-bench-dp*)
		want=(BM_FrameHeaders BM_FrameHeadersTemplate/sw_checksum:1
		      BM_FrameHeadersTemplate/sw_checksum:0 BM_FrameParse) ;;
	*bypax-bench*)
		want=(BM_SessionRequest/clients:512 BM_SessionRequest/clients:4096
		      BM_SessionOpenFull/sessions:512 BM_SessionOpenFull/sessions:4096) ;;
	*bypax-cluster*)
		want=('  cycles per op   ' 'leader 0 alone' 'bypax-cluster: OK') ;;
	*) echo "unknown command in the doc: $cmd" >&2; exit 1 ;;
	esac
	bin=$(awk '{ print $4 }' <<<"$run")
	if [[ $cmd == *bypax-bench* && ! -x $bin ]]; then
		echo "skip: no $bin (libbenchmark-dev missing): $cmd"
		continue
	fi
	out=$(bash -c "$run" 2>&1) || { echo "documented command failed: $cmd" >&2; echo "$out" >&2; exit 1; }
	for w in "${want[@]}"; do
		grep -qF -- "$w" <<<"$out" || { echo "'$cmd' printed no '$w':" >&2; echo "$out" >&2; exit 1; }
	done
	echo "ok: $cmd"
done
# The limit the section states, and the tests it names.
grep -q 'reply of up to 36 bytes' <<<"$section" &&
	grep -q '^#define PX_SESSION_REPLY_INLINE 36u$' "$src/consensus/internal.h" ||
	{ echo "PX_SESSION_REPLY_INLINE is not the 36 bytes the doc states" >&2; exit 1; }
for t in test_checksum_matches_reference test_template_headers_match_reference \
	 test_parse_trusts_a_checked_ip_checksum; do
	grep -q "$t" <<<"$section" && grep -q "cmocka_unit_test($t)" "$src/tests/unit/test_wire.c" ||
		{ echo "the doc names $t, which tests/unit/test_wire.c does not run" >&2; exit 1; }
done
echo "levers docs: OK"
