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
# Measured on the consensus code and simulator at the time (re-measure
# after changing either: trajectories move); catching seeds are listed.
# The lease plants need a lease attack at the right moment, so their
# ranges are long: their run stops at the first catch.
declare -A budget=(
	# every seed of 1..10
	[accept-lower-ballot]="--replicas 5 --from 1 --seeds 20"
	# seeds 138 140 195 204 298 308 423 437 441
	[recovery-no-fence]="--replicas 3 --from 1 --seeds 500"
	# seeds 7 11 48 57 69 92 110 113 119 (recovery attacks; at 7
	# replicas 7 11 17 19 31 48 57 69 93 110 113 119 of the first 120)
	[recovery-no-incarnation]="--replicas 5 --from 1 --seeds 120"
	# seeds 80 610 919 1255 1536 1850 2048 2078 2249 2596 2960
	[lease-not-refused]="--replicas 3 --from 1 --seeds 3000"
	# seeds 247 503 586 889 891 1113 1255 1312 1488 1597 1723 ... (20 in
	# 1..2459)
	[lease-own-promise]="--replicas 3 --from 1 --seeds 3000"
	# seeds 14 23 81 82 85 90 98 118 219 222 (membership lease attacks)
	[lease-new-config]="--replicas 5 --from 1 --seeds 300"
	# seeds 1 3 4 6 8 11 12 13 15 17
	[quorum-all-replicas]="--replicas 3 --from 1 --seeds 20"
	# seeds 5 14 16 17 22 25 31 37 39 40 (the session-eviction workload)
	[session-first-seq]="--replicas 3 --from 1 --seeds 60"
	# --durable (issue 12): a restart that forgets its votes, or its
	# promise. The simulator checks both at every restart from a disk
	# (sim_world.c: restart_from_disk): seeds 1 2 3 4 5 6 8 9 10 ... for
	# each. Without those checks, the invariants caught them too: two
	# values chosen for one slot (no-accepted: seeds 1 4 5 9 11 12 ...),
	# and a leader that ran its own ballot again with other values
	# (no-promise: seeds 41 241 258 341 483 500 639 ... of 1..1000).
	[durable-replay-no-accepted]="--durable --replicas 3 --from 1 --seeds 20"
	[durable-replay-no-promise]="--durable --replicas 3 --from 1 --seeds 20"
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
