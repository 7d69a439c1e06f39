#!/usr/bin/env bash
# docs/performance.md "Key count and client count": the 1M-key command it
# shows runs as written (build/ read as this build directory) and prints
# the prefill line it quotes and OK; it is the command bench/suite.py's
# sweeps stage runs (the same sm_args for 1M keys); a store too small is
# refused with the message the section quotes.
set -uo pipefail
root=${1:?usage: check_sweep_docs.sh SOURCE_ROOT BUILD_ROOT}
build=$(cd "${2:?usage: check_sweep_docs.sh SOURCE_ROOT BUILD_ROOT}" && pwd)
doc=$root/docs/performance.md
fail() { echo "FAIL: $*" >&2; exit 1; }
section=$(awk '/^## Key count and client count/ { on = 1; next } /^## / { on = 0 } on' "$doc")
[[ -n $section ]] || fail "no '## Key count and client count' in $doc"
cmd=$(sed -n 's/^    \(nice -n 19 build\/dataplane\/bypax-cluster .*\)$/\1/p' <<<"$section")
[[ $(wc -l <<<"$cmd") -eq 1 && -n $cmd ]] || fail "expected one bypax-cluster command: $cmd"
out=$(bash -c "${cmd/ build\// $build/}" 2>&1) || fail "'$cmd' failed: $out"
grep -Eq '^prefilled 1000000 keys into 3 stores in [0-9.]+ s$' <<<"$out" ||
	fail "'$cmd' printed no prefill line: $out"
grep -q 'prefilled 1000000 keys into 3 stores in' <<<"$section" ||
	fail "the section does not quote the prefill line"
grep -q '^bypax-cluster: OK$' <<<"$out" || fail "'$cmd' not OK: $out"
echo "ok: $cmd"
args=$(cd "$root" && python3 -c 'import sys; sys.path.insert(0, "bench"); import suite; print(suite.kv_sized(1000000, 16))')
grep -qF -- "--keys 1000000 --prefill --sm-args $args " <<<"$cmd" ||
	fail "the stage sizes 1M keys as $args, the doc's command does not"
want=$(sed -n 's/^    \(bypax-cluster: --prefill: .*\)$/\1/p' <<<"$section")
err=$("$build/dataplane/bypax-cluster" --no-huge --no-pci --no-shconf -m 512 \
	--file-prefix "sweepdoc$$" -l 0 --log-level=error -- --replicas 3 \
	--lanes 16 --requests 100 --get-pct 0 --keys 2000 --prefill \
	--sm-args capacity=1000,bytes=48000 --quiet 2>&1 >/dev/null)
rc=$?
[[ $rc -ne 0 && $err == "$want" ]] || fail "a small store: exit $rc, '$err'; the doc says '$want'"
echo "ok: a store too small for --keys"
echo "sweep docs: OK"
