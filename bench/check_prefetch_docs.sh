#!/usr/bin/env bash
# docs/performance.md "KV batch prefetch": every command it shows runs as
# written, made short (bypax-bench only lists what its filter matches;
# bypax-kv-mem applies 1000 PUTs instead of 2,000,000) and prints the
# figures the doc quotes; the test it names exists.
set -euo pipefail
root=${1:?usage: check_prefetch_docs.sh SOURCE_ROOT BUILD_ROOT}
build=${2:?usage: check_prefetch_docs.sh SOURCE_ROOT BUILD_ROOT}
doc=$root/docs/performance.md
section=$(awk '/^### KV batch prefetch/ { on = 1; next } /^##/ { on = 0 } on' "$doc")
[[ -n $section ]] || { echo "no '### KV batch prefetch' in $doc" >&2; exit 1; }
mapfile -t cmds < <(sed -n 's/^    nice -n 19 build\/\(bench\/.*\)$/\1/p' <<<"$section")
[[ ${#cmds[@]} -eq 4 ]] || { echo "expected 4 commands, found ${#cmds[@]}" >&2; exit 1; }
for cmd in "${cmds[@]}"; do
	read -r -a argv <<<"$cmd"
	case ${argv[0]} in
	bench/bypax-bench)
		out=$("$build/${argv[0]}" "${argv[@]:1}" --benchmark_list_tests)
		want=${argv[1]#--benchmark_filter=}
		[[ $want == BM_Commit/32 ]] && want='BM_Commit/32'
		[[ $want == BM_CommitKeys ]] &&
			want='BM_CommitKeys/keys:1000000/prefetch:[01]'
		[[ $(grep -Ecx "$want" <<<"$out") -ge 1 ]] ||
			{ echo "'$cmd' lists no $want: $out" >&2; exit 1; } ;;
	bench/bypax-kv-mem)
		[[ ${argv[3]} == 2000000 && ${argv[4]} == 32 ]] ||
			{ echo "unexpected kv-mem arguments: $cmd" >&2; exit 1; }
		argv[3]=1000
		"$build/${argv[0]}" "${argv[@]:1}" | grep -Eq \
			'^kv-mem: 1000 overwriting PUTs in batches of 32: [0-9.]+ ns, [0-9]+ cycles per apply; digest [0-9a-f]{16}$' ||
			{ echo "'$cmd' does not print cycles per apply" >&2; exit 1; } ;;
	*) echo "unknown command in the doc: $cmd" >&2; exit 1 ;;
	esac
	echo "ok: $cmd"
done
grep -q 'ns_per_req' <<<"$section" ||
	{ echo "the section no longer quotes ns_per_req" >&2; exit 1; }
"$build/bench/bypax-bench" --benchmark_filter='BM_Commit/32$' \
	--benchmark_min_time=0.01 | grep -Eq ' ns_per_req=[0-9.]+' ||
	{ echo "BM_Commit/32 prints no ns_per_req" >&2; exit 1; }
grep -q 'test_commands_apply_in_log_order' "$root/tests/unit/test_batch.c" ||
	{ echo "the doc names a test test_batch.c lacks" >&2; exit 1; }
echo "prefetch docs: OK"
