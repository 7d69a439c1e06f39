#!/bin/bash
# The chaos harness as docs/chaos.md and the README state it: scripts/chaos
# takes the options they show, refuses bad ones with exit 2, every fault
# chaos.py knows is in the doc's table, and the summary line's keys are the
# ones the doc shows. No root needed; nothing is started.
set -u
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
DOC=$ROOT/docs/chaos.md
fails=0
check() { # check DESCRIPTION COMMAND...: the command must succeed
	local what=$1
	shift
	if "$@" >/dev/null 2>&1; then echo "ok: $what"; else echo "FAIL: $what"; fails=$((fails + 1)); fi
}
rc_of() { "$@" >/dev/null 2>&1; echo $?; }

help=$("$ROOT/scripts/chaos" --help)
for opt in --minutes --seed --replicas --out; do
	check "scripts/chaos --help names $opt" grep -q -- "$opt" <<<"$help"
done
check "scripts/chaos --minutes abc exits 2" test "$(rc_of "$ROOT/scripts/chaos" --minutes abc)" -eq 2
check "scripts/chaos --seed -1 exits 2" test "$(rc_of "$ROOT/scripts/chaos" --seed -1)" -eq 2
check "chaos.py --faults bogus exits 2" test "$(rc_of python3 "$ROOT/tests/chaos/chaos.py" --build /nonexistent --faults bogus)" -eq 2
faults=$(python3 -c "import sys; sys.path.insert(0, '$ROOT/tests/chaos'); import chaos; print(' '.join(chaos.FAULTS))")
for f in $faults; do
	check "docs/chaos.md's table has fault $f" grep -q "^ *| \`$f\` " "$DOC"
done
for k in runs ops faults violations lost_writes failed_runs gap_ms; do
	check "summary key $k in docs/chaos.md" grep -qE "chaos: .*$k[= ]" "$DOC"
	check "summary key $k printed by chaos.py" grep -qE "$k[= ]" "$ROOT/tests/chaos/chaos.py"
done
for cmd in "scripts/chaos --minutes 60 --seed 1" "--faults none" "--target leader" "--follower-gap-max-ms"; do
	check "docs/chaos.md shows '$cmd'" grep -qF -- "$cmd" "$DOC"
	check "chaos takes '${cmd##* }'-style option" bash -c "python3 '$ROOT/tests/chaos/chaos.py' --help | grep -q -- '$(echo "$cmd" | grep -o -- '--[a-z-]*' | tail -1)'"
done
[[ $fails -eq 0 ]] && echo "chaos docs: OK" || { echo "chaos docs: $fails failed"; exit 1; }
