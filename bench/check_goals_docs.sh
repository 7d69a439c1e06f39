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
# The run's table: the section's first link to a results table.
table=$root/bench/results/$(grep -o '(\.\./bench/results/[^)]*\.txt)' <<<"$section" | head -1 | sed 's|^(\.\./bench/results/||; s|)$||')
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
for fig in 375 28.5x 13.2 1,193 1.44x 0.75x 1.47x 0.72x 1.30x 50.8x 28.2x 10.9x 5.3x 0.0021 0.0025 0.0646 0.0641; do
	grep -qF -- "$fig" <<<"$quoted" || fail "goal figure $fig is in no quoted line"
done
echo "goals docs: OK ($n lines quoted from $(basename "$table"))"
