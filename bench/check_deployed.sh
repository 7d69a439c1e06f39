#!/usr/bin/env bash
# docs/performance.md "The deployed shape": its recipe block runs as
# written (three bypaxd processes, bypax-dpdk-load on memif links of its
# own) and prints a result line that bench/suite.py parses, with the keys
# the doc quotes, in order; its error messages are what bypax-dpdk-load
# prints; its bench command runs the deployed stage (briefly: --profile
# quick, 64 lanes for 1 s) and writes the stage into the JSON and table.
set -uo pipefail
root=${1:?usage: check_deployed.sh SOURCE_ROOT BUILD_ROOT}
build=$(cd "${2:?usage: check_deployed.sh SOURCE_ROOT BUILD_ROOT}" && pwd)
doc=$root/docs/performance.md
cd "$root" || exit 1
fail() { echo "FAIL: $*" >&2; exit 1; }
section=$(awk '/^## The deployed shape/ { on = 1; next } /^## / { on = 0 } on' "$doc")
[[ -n $section ]] || fail "no '## The deployed shape' in $doc"
# The recipe: the indented lines from BUILD=build to cluster_cleanup.
recipe=$(sed -n '/^    BUILD=build /,/^    cluster_cleanup$/s/^    //p' <<<"$section")
[[ $(wc -l <<<"$recipe") -eq 7 ]] || fail "the recipe block is not 7 lines: $recipe"
parse() { python3 -c 'import json, sys; sys.path.insert(0, "bench"); import suite; print(json.dumps(suite.parse_dload_result(sys.stdin.read().strip())))'; }
keys() { python3 -c 'import json, sys; print(" ".join(json.load(sys.stdin)))'; }

out=$(bash -c "trap 'cluster_cleanup >/dev/null 2>&1' EXIT; ${recipe/BUILD=build /BUILD=$build }" 2>&1)
line=$(grep '^result: ' <<<"$out") || fail "the recipe printed no result line: $out"
echo "recipe: $line"
grep -q '^bypax-dpdk-load: 1 s: [0-9]* acknowledged, [0-9]* ops/s in the last 1 s, [0-9]* outstanding, [0-9]* failed$' <<<"$out" ||
	fail "no progress line as the doc shows: $out"
got=$(parse <<<"$line")
python3 - "$got" <<'PY' || fail "result line figures: $line"
import json, sys
r = json.loads(sys.argv[1])
assert r["lanes"] == 64 and r["value_bytes"] == 16 and r["get_pct"] == 0, r
assert 1.9 < r["seconds"] < 2.5, r
assert r["ops_per_s"] > 0 and r["acked"] > 0 and r["failed"] == 0, r
assert 0 < r["p50_us"] <= r["p99_us"], r
assert r["leader"] in (0, 1, 2) and r["leader_cycles_per_op"] > 0, r
PY
doc_line=$(sed -n 's/^    \(result: .*\)$/\1/p' <<<"$section")
[[ $(parse <<<"$doc_line" | keys) == "$(keys <<<"$got")" ]] ||
	fail "the doc's result line has other keys than '$line'"

# The quoted errors, as written (build/ is this build directory).
cmd=$(sed -n 's/^    \(nice -n 19 build\/dataplane\/bypax-dpdk-load .*\)$/\1/p' <<<"$section")
want=$(grep -A1 -F -- "$cmd" <<<"$section" | sed -n '2s/^    //p')
err=$(bash -c "${cmd/ build\// $build/}" 2>&1)
rc=$?
[[ $rc -eq 2 && $err == "$want" ]] || fail "'$cmd' exit $rc, printed '$err', the doc says '$want'"
echo "ok: $cmd"
want=$(sed -n 's/^    \(bypax-dpdk-load: member 2 goes through .*\)$/\1/p' <<<"$section")
conf=$(BUILD=$build bash -c 'source tests/dpdk/memif_lib.sh; cluster_init; cat "$CONF"; rm -rf "$DIR"')
cfile=$(mktemp /tmp/bypax-dload-conf.XXXXXX)
echo "$conf" >"$cfile"
err=$("$build/dataplane/bypax-dpdk-load" --no-huge -m 64 --no-pci --no-shconf \
	--file-prefix "dloaddoc$$" -l 0 --log-level=error --vdev=net_null0 \
	--vdev=net_null1 -- --config "$cfile" 2>&1)
rc=$?
rm -f "$cfile"
[[ $rc -eq 2 && $err == "$want" ]] || fail "two ports for three members: exit $rc, '$err', the doc says '$want'"
echo "ok: two ports for three members"

# The bench stage, as the doc runs it.
cmd=$(sed -n 's/^    \(nice -n 19 python3 bench\/suite.py .*\)$/\1/p' <<<"$section")
[[ -n $cmd ]] || fail "no bench/suite.py command in the section"
out_dir=$(mktemp -d /tmp/bypax-deployed.XXXXXX)
trap 'rm -rf "$out_dir"' EXIT
run=${cmd//build\/dataplane/$build/dataplane}
run=${run/--build-dir build /--build-dir $build }
run=${run/\/tmp\/bypax-deployed/$out_dir}
out=$(bash -c "$run" 2>&1) || fail "'$cmd' failed: $out"
json=$(ls "$out_dir"/*.json)
python3 - "$json" <<'PY' || fail "the stage's JSON: $(cat "$json")"
import json, sys
d = json.load(open(sys.argv[1]))["deployed"]
assert d["ok"] and len(d["points"]) == 1, d
p = d["points"][0]
assert p["lanes"] == 64 and p["ops_per_s"] > 0 and p["failed"] == 0, p
assert p["leader_cycles_per_op"] > 0, p
assert d["inprocess"]["64"]["ops_per_s"] > 0, d["inprocess"]
PY
grep -q '^deployed    64 lanes: .* | in-process [0-9,]* ops/s ' "$out_dir"/*.txt ||
	fail "no deployed row beside the in-process figure in the table: $(cat "$out_dir"/*.txt)"
echo "ok: $cmd"
"$root/scripts/bench" --help | grep -q 'failover,deployed,' ||
	fail "scripts/bench --help does not name the deployed stage"
echo "deployed docs: OK"
