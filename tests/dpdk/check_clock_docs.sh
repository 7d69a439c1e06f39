#!/usr/bin/env bash
# docs/performance.md "Clock reads on the poll path": run every command
# line the section shows, as written, with its build/ read as this build
# directory, and check each prints what the section's tables are read
# from (the four benchmark rows; bypax-cluster's cycles per op and OK).
set -euo pipefail
src=${1:?usage: check_clock_docs.sh SOURCE_ROOT BUILD_DIR}
build=${2:?usage: check_clock_docs.sh SOURCE_ROOT BUILD_DIR}
doc=$src/docs/performance.md
section=$(awk '/^## Clock reads on the poll path/ { on = 1; next } /^## / { on = 0 } on' "$doc")
[[ -n $section ]] || { echo "no '## Clock reads on the poll path' in $doc" >&2; exit 1; }
mapfile -t cmds < <(sed -n 's/^    \(nice -n 19 build\/.*\)$/\1/p' <<<"$section")
[[ ${#cmds[@]} -eq 3 ]] || { echo "expected 3 documented commands, found ${#cmds[@]}" >&2; exit 1; }
for cmd in "${cmds[@]}"; do
	run=${cmd/ build\// $build/}
	if [[ $cmd == *bypax-bench-dp* && ! -x $build/bench/bypax-bench-dp ]]; then
		echo "skip: no bypax-bench-dp (libbenchmark-dev missing): $cmd"
		continue
	fi
	out=$(bash -c "$run" 2>&1) || { echo "documented command failed: $cmd" >&2; echo "$out" >&2; exit 1; }
	if [[ $cmd == *bypax-bench-dp* ]]; then
		want=(BM_TscToNs/division BM_TscToNs/mulshift BM_ClockRead/division BM_ClockRead/mulshift)
	else
		want=('  cycles per op   ' 'bypax-cluster: OK')
	fi
	for w in "${want[@]}"; do
		grep -qF -- "$w" <<<"$out" || { echo "'$cmd' printed no '$w':" >&2; echo "$out" >&2; exit 1; }
	done
	echo "ok: $cmd"
done
