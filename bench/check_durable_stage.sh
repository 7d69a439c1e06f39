#!/usr/bin/env bash
# scripts/bench's durable stage, briefly (--profile quick, 64 lanes, 3 s
# per storage): three durable bypaxd over net_memif and bypax-dpdk-load,
# the WAL on tmpfs and on the disk. Both runs must commit with no failed
# request, every member's syncs per committed op must be measured, and the
# table must carry the rows docs/performance.md describes.
set -uo pipefail
root=${1:?usage: check_durable_stage.sh SOURCE_ROOT BUILD_ROOT}
build=$(cd "${2:?usage: check_durable_stage.sh SOURCE_ROOT BUILD_ROOT}" && pwd)
cd "$root" || exit 1
fail() { echo "FAIL: $*" >&2; exit 1; }
if [[ $(id -u) -ne 0 ]]; then
	echo "skip: the durable stage runs bypaxd on memif ports (root)"
	exit 77
fi
out_dir=$(mktemp -d /tmp/bpx-durable-stage.XXXXXX)
trap 'rm -rf "$out_dir"' EXIT
out=$(python3 bench/suite.py --profile quick --only durable \
	--bin "$build/dataplane:$build/bench" --build-dir "$build" \
	--out-dir "$out_dir" 2>&1) || fail "suite.py: $out"
echo "$out" | grep '^durable WAL on' || fail "no durable rows in the table: $out"
json=$(ls "$out_dir"/*.json | head -1)
python3 - "$json" <<'PY' || fail "the durable stage's JSON: $(tail -c 600 <<<"$out")"
import json, sys
d = json.load(open(sys.argv[1]))["durable"]
for where in ("tmpfs", "disk"):
    s = d["storage"][where]
    assert s["ok"], (where, s.get("output_tail", "")[-400:])
    p = s["points"][0]
    assert p["lanes"] == 64 and p["ops_per_s"] > 0 and p["failed"] == 0, p
    assert len(p["members"]) == 3, p
    for m in p["members"]:
        assert m["requests"] > 0 and m["syncs"] > 0, m
        assert 0 < m["syncs_per_op"] <= 1, m
    print(f"{where}: {p['ops_per_s']} writes/s, syncs per op "
          f"{[m['syncs_per_op'] for m in p['members']]}")
PY
"$root/scripts/bench" --help | grep -q 'deployed,durable,' ||
	fail "scripts/bench --help does not name the durable stage"
python3 bench/suite.py --help | tr -d ' \n' | grep -q 'deployed,durable,' ||
	fail "bench/suite.py --help does not name the durable stage"
echo "durable stage: OK"
