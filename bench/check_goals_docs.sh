#!/usr/bin/env bash
# docs/performance.md "Issue 11's and issue 12's goals in one run": every
# line it quotes from the run's table is a line of that table, and the
# files it links exist. A figure in the goal table that is not in a quoted
# line would go unchecked, so each goal figure is quoted too.
set -uo pipefail
root=${1:?usage: check_goals_docs.sh SOURCE_ROOT}
doc=$root/docs/performance.md
fail() { echo "FAIL: $*" >&2; exit 1; }
section=$(awk '/^## Issue 11.s and issue 12.s goals in one run/ { on = 1; next } /^## / { on = 0 } on' "$doc")
[[ -n $section ]] || fail "no goals section in $doc"
table=$root/bench/results/$(grep -o '2026-12-01-vm\.txt' <<<"$section" | head -1)
[[ -f $table ]] || fail "the section's table file is missing: $table"
[[ -f ${table%.txt}.json ]] || fail "the section's JSON is missing"
quoted=$(sed -n 's/^    \(.*\)$/\1/p' <<<"$section")
[[ $(wc -l <<<"$quoted") -ge 10 ]] || fail "fewer than 10 quoted lines"
n=0
while IFS= read -r line; do
	grep -qxF -- "$line" "$table" || fail "not a line of $table: $line"
	n=$((n + 1))
done <<<"$quoted"
# The goal table's figures, each in a quoted line.
for fig in 564 55.0x 1,487 1.36x 0.70x 1.40x 0.67x 1.17x 19.9x 6.9x 9.9x 5.0x 0.0312 0.0313 0.0647 0.0640; do
	grep -qF -- "$fig" <<<"$quoted" || fail "goal figure $fig is in no quoted line"
done
echo "goals docs: OK ($n lines quoted from $(basename "$table"))"
