#!/usr/bin/env bash
# Every planted bug of consensus/plant.h must be caught by the simulator
# within its CI budget: bypax-sim-plant --plant NAME over the seeds below
# must report a violation (exit 1). A plant with no site in consensus/ yet
# (no PX_PLANTED(NAME) branch), or with no budget here, fails too.
#
# Usage: check_plants.sh BYPAX_SIM_PLANT SOURCE_ROOT
# Exit status: 0 when every plant was caught, 1 otherwise, 2 on bad usage.
#
# Budgets: the smallest seed range that catches the plant with a margin
# (several catching seeds in it, so that a change to the consensus code or
# the simulator that moves trajectories does not lose it). To re-measure:
#   bypax-sim-plant --plant NAME --replicas R --seeds 500 | grep -c FAIL

set -euo pipefail

if [[ $# -ne 2 ]]; then
	echo "usage: $0 BYPAX_SIM_PLANT SOURCE_ROOT" >&2
	exit 2
fi
sim=$1
src_root=$2

# name -> arguments of its run (replicas, first seed, seeds, mode)
# Measured on the seeds 1..500 (1..5000 for the lease) of the consensus
# code at the time; catching seeds in the range are listed.
declare -A budget=(
	# 149 of the 200 seeds (1 2 3 5 6 7 8 10 12 15 ...)
	[accept-lower-ballot]="--replicas 5 --from 1 --seeds 200"
	# seeds 39 133 215 425 434
	[recovery-no-fence]="--replicas 3 --from 1 --seeds 500"
	# seeds 37 82 95 224 228 240 538 546 645 848 908
	[lease-not-refused]="--replicas 5 --from 1 --seeds 1000"
	# seeds 14 23 47 81 82 89 90 98 (membership lease attacks; at 7
	# replicas 23 28 47 81 86 89 98 of the first 100)
	[lease-new-config]="--replicas 5 --from 1 --seeds 100"
	# 12 of the first 20 seeds
	[quorum-all-replicas]="--replicas 3 --from 1 --seeds 20"
	# seeds 5 8 14 16 17 22 23 25 34 39 (the session-eviction workload)
	[session-first-seq]="--replicas 3 --from 1 --seeds 40"
)

names=$("$sim" --plant list | awk '{ print $1 }')
failed=()
for name in $names; do
	[[ $name == none ]] && continue
	enum=$(tr 'a-z-' 'A-Z_' <<<"$name")
	if ! grep -rqF "PX_PLANTED($enum)" "$src_root/consensus"; then
		echo "plants: $name: no site yet (no PX_PLANTED($enum) in consensus/)"
		failed+=("$name")
		continue
	fi
	if [[ -z ${budget[$name]:-} ]]; then
		echo "plants: $name: no budget in $0"
		failed+=("$name")
		continue
	fi
	# shellcheck disable=SC2086 # the budget is a list of arguments
	set +e
	out=$("$sim" --plant "$name" --stop ${budget[$name]} 2>&1)
	rc=$?
	set -e
	if [[ $rc -eq 1 ]]; then
		seed=$(sed -n 's/^sim: FAIL seed=\([0-9]*\).*/\1/p' <<<"$out" | head -n 1)
		why=$(sed -n 's/^sim: FAIL seed=[0-9]* replicas=[0-9]*: \(.*\) (replay.*/\1/p' <<<"$out" | head -n 1)
		echo "plants: $name: caught by seed $seed (${budget[$name]}): $why"
	else
		echo "plants: $name: NOT CAUGHT by ${budget[$name]} (exit $rc)"
		tail -n 3 <<<"$out" | sed 's/^/plants:   /'
		failed+=("$name")
	fi
done

if [[ ${#failed[@]} -gt 0 ]]; then
	echo "plants: FAIL: not caught: ${failed[*]}"
	exit 1
fi
echo "plants: every planted bug was caught"
