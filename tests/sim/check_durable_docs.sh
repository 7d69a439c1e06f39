#!/usr/bin/env bash
# README.md's "The simulator" names --durable commands: run each as written
# (build/ replaced by this build's directory) and check what the README
# says of them: the first passes and prints its "sim: durable:" line, the
# second (a planted bug) is caught, exit 1, with a FAIL line.
#
# Usage: check_durable_docs.sh SOURCE_ROOT BUILD_ROOT
# Exit status: 0 when both behave as documented, 1 otherwise, 2 on bad usage.
set -euo pipefail

if [[ $# -ne 2 ]]; then
	echo "usage: $0 SOURCE_ROOT BUILD_ROOT" >&2
	exit 2
fi
readme=$1/README.md
build=$2

mapfile -t cmds < <(grep -E '^build/tests/sim/bypax-sim(-plant)? .*--durable' "$readme" |
	sed 's/  *#.*$//')
if [[ ${#cmds[@]} -ne 2 ]]; then
	echo "durable-docs: expected 2 --durable commands in $readme, found ${#cmds[@]}"
	exit 1
fi

run() { # command line as written in the README -> output; sets rc
	local line=${1/#build\//$build/}
	set +e
	# shellcheck disable=SC2086 # a command line, split as a shell would
	out=$($line 2>/dev/null)
	rc=$?
	set -e
}

run "${cmds[0]}"
# The summary line as the README spells it, every N a number.
line_re='^sim: durable: [0-9]+ whole-cluster crashes, [0-9]+ restarts from disk, [0-9]+ torn tails cut, [0-9]+ replicas down for a corrupt record, [0-9]+ syncs, [0-9]+ crashes that kept unsynced records$'
if ! tr '\n' ' ' <"$readme" | tr -s ' ' | grep -qF 'N restarts from disk, N torn tails cut, N replicas down for a corrupt record, N syncs, N crashes that kept unsynced records'; then
	echo "durable-docs: README.md no longer spells the summary line this test checks"
	exit 1
fi
if [[ $rc -ne 0 ]] || ! grep -Eq "$line_re" <<<"$out"; then
	echo "durable-docs: FAIL: '${cmds[0]}' exited $rc"
	tail -n 3 <<<"$out"
	exit 1
fi
echo "durable-docs: ${cmds[0]}: $(grep '^sim: seeds=' <<<"$out")"
echo "durable-docs: $(grep '^sim: durable:' <<<"$out")"

run "${cmds[1]}"
if [[ $rc -ne 1 ]] || ! grep -q '^sim: FAIL seed=' <<<"$out"; then
	echo "durable-docs: FAIL: '${cmds[1]}' exited $rc, not caught"
	exit 1
fi
echo "durable-docs: ${cmds[1]}: $(grep '^sim: FAIL' <<<"$out" | head -n 1)"
echo "durable-docs: both commands behave as README.md says"
