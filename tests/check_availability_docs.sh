#!/usr/bin/env bash
# docs/performance.md "Availability" runs bench/availability.py on a stored
# failover report: run every such command line of the doc as written (from
# the source root) and check that the lines the doc quotes from it are what
# it prints.
set -euo pipefail
root=${1:?usage: check_availability_docs.sh SOURCE_ROOT}
doc=$root/docs/performance.md
cd "$root"
section=$(awk '/^## Availability/ { on = 1; next } /^## / { on = 0 } on' "$doc")
[[ -n $section ]] || { echo "no '## Availability' section in $doc" >&2; exit 1; }
mapfile -t cmds < <(sed -n 's/^    \(python3 bench\/availability.py .*\)$/\1/p' <<<"$section")
[[ ${#cmds[@]} -ge 1 ]] || { echo "no documented availability.py command" >&2; exit 1; }
for cmd in "${cmds[@]}"; do
	out=$(bash -c "$cmd") || { echo "documented command failed: $cmd" >&2; exit 1; }
	# Every quoted output line of the doc (indented, starting with one of
	# the report's prefixes) must be a line the command printed.
	while IFS= read -r line; do
		grep -qxF -- "$line" <<<"$out" || {
			echo "the doc quotes a line the command does not print:" >&2
			echo "  doc: $line" >&2
			echo "  output:" >&2; echo "$out" >&2
			exit 1
		}
	done < <(sed -n 's/^    \(availability (two-state.*\|  measured: .*\|  at .*\)$/\1/p' <<<"$section")
	echo "ok: $cmd"
done
