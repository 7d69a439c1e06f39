#!/bin/bash
# docs/deploy.md and docs/config.md as written: the config file deploy.md
# shows is read by the config reader bypaxd uses (through bypaxctl, which
# loads it before anything else), the commands its runbook and upgrade
# steps name exist, its /bypax/stats table names exactly the fields bypaxd
# registers, and config.md's KV sizing table follows its formula and the
# default in kv.h. No root needed; nothing is started.
#
# usage: check_deploy_docs.sh BUILD_DIR
set -u
BUILD=$(cd "${1:?usage: check_deploy_docs.sh BUILD_DIR}" && pwd)
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
DEPLOY=$ROOT/docs/deploy.md CONFIG=$ROOT/docs/config.md
TMP=$(mktemp -d /tmp/bypax-deploy-docs.XXXXXX)
trap 'rm -rf "$TMP"' EXIT
fails=0
ok() { echo "ok: $*"; }
bad() { echo "FAIL: $*"; fails=$((fails + 1)); }

# ---- the config file of "Three processes on one machine" ----
sed -n "/^cat > \/tmp\/bypax.conf <<'EOF'\$/,/^EOF\$/p" "$DEPLOY" | sed '1d;$d' >"$TMP/bypax.conf"
[[ $(grep -c '^\[member[0-2]\]$' "$TMP/bypax.conf") -eq 3 ]] ||
	bad "deploy.md: no 'cat > /tmp/bypax.conf <<'EOF'' block with three members"
out=$("$BUILD/client/bypaxctl" --config "$TMP/bypax.conf" status 2>&1)
rc=$?
if [[ $rc -eq 0 ]] || grep -q "no bypaxd of cluster 77 answers" <<<"$out"; then
	ok "deploy.md's /tmp/bypax.conf is a valid config of cluster 77"
else
	bad "deploy.md's /tmp/bypax.conf: bypaxctl says: $out"
fi
# the recipe's tap wait: a function that polls for the tap, with a limit
grep -q '^tap_up() {$' "$DEPLOY" && grep -q 'for t in $(seq 1 100); do ip link show bpx$i' "$DEPLOY" &&
	ok "deploy.md waits for the tap before its address" || bad "deploy.md: no tap wait loop"
sed -n '/^tap_up() {$/,/^}$/p' "$DEPLOY" >"$TMP/tap_up.sh"
bash -n "$TMP/tap_up.sh" && [[ -s $TMP/tap_up.sh ]] && ok "tap_up parses as bash" || bad "tap_up does not parse"

# ---- commands the runbook and the upgrade steps name ----
ctl_help=$("$BUILD/client/bypaxctl" --help 2>&1)
for c in "status" "snapshot PATH" "leader transfer" "members add"; do
	grep -qF -- "$c" <<<"$ctl_help" && ok "bypaxctl --help names '$c'" || bad "bypaxctl --help lacks '$c'"
done
d_help=$("$BUILD/dataplane/bypaxd" -- --help 2>&1)
for o in --bootstrap --restore --snapshot-mb --client-port --route; do
	grep -qF -- "$o" <<<"$d_help" && ok "bypaxd --help names $o" || bad "bypaxd --help lacks $o"
	grep -qF -- "$o" "$DEPLOY" || bad "deploy.md does not show $o"
done

# ---- /bypax/stats: the table and the fields bypaxd registers ----
code=$(sed -n '/^static int telemetry_stats/,/^}/p' "$ROOT/dataplane/bypaxd.c" |
	sed -n 's/.*rte_tel_data_add_dict_[a-z0-9]*(t, "\([a-z_]*\)".*/\1/p' | sort)
doc=$(sed -n '/^### DPDK telemetry/,/^## /p' "$DEPLOY" | sed -n 's/^| `\([a-z_]*\)` |.*/\1/p' | sort)
[[ -n $code && $code == "$doc" ]] && ok "deploy.md's /bypax/stats table = bypaxd's fields ($(echo $code))" ||
	bad "/bypax/stats: bypaxd has '$(echo $code)', deploy.md lists '$(echo $doc)'"
grep -q '^| `drop_<n>` |' "$DEPLOY" && grep -q 'snprintf(key, sizeof(key), "drop_%u", i);' "$ROOT/dataplane/bypaxd.c" &&
	ok "drop_<n> in the table and in bypaxd" || bad "drop_<n> missing"
grep -q "^Prometheus metrics: see docs/metrics.md$" "$DEPLOY" && ok "metrics link" || bad "no metrics link line"

# ---- versions named in "Upgrades" ----
grep -q '^#define BPX_WIRE_VERSION 2u$' "$ROOT/include/bypax/wire.h" && grep -q 'now 2\.' "$DEPLOY" &&
	ok "wire version 2 in wire.h and deploy.md" || bad "wire version"
grep -q '^#define CTL_HB_VERSION 1u$' "$ROOT/control/ctl_wire.h" && grep -q 'heartbeat, now 1\.' "$DEPLOY" &&
	ok "heartbeat version 1 in ctl_wire.h and deploy.md" || bad "heartbeat version"

# ---- config.md: the KV sizing table follows its formula ----
KV_H=$ROOT/include/bypax/kv.h
grep -q '^#define BPX_KV_CAPACITY_DEFAULT 1000000u$' "$KV_H" &&
	grep -q 'default 1000000 (`BPX_KV_CAPACITY_DEFAULT`)' "$CONFIG" &&
	grep -q '^- `capacity=N`: the most keys, 1..16777216, default 1000000$' "$CONFIG" &&
	grep -q '^#define BPX_KV_CAPACITY_MAX 16777216u$' "$KV_H" &&
	ok "default capacity 1000000 in kv.h and config.md" || bad "default capacity"
grep -q '^#define BPX_KV_BYTES_PER_KEY_DEFAULT 144u' "$KV_H" &&
	grep -q '^#define BPX_KV_CHUNK_BYTES 48u$' "$KV_H" &&
	grep -q '^#define BPX_KV_BYTES_MAX 137438953472ull' "$KV_H" &&
	grep -q '(128 GiB), in decimal' "$CONFIG" && grep -q '1024³), default N × 144 (`BPX_KV_BYTES_PER_KEY_DEFAULT`' "$CONFIG" &&
	ok "default bytes N x 144, chunks of 48, at most 128 GiB in kv.h and config.md" || bad "bytes default or limits"
python3 - "$CONFIG" <<'PY' && ok "config.md's sizing rows follow the formula" || bad "config.md's sizing table"
import re, sys
rows = re.findall(r"^\| \**`([a-z0-9=,]+)`\** (?:\([a-z ]+\) )?\s*\| (\d+)\s*\| (\d+)\s*\| ([\d.]+) MiB\s*\| (\d+) B", open(sys.argv[1]).read(), re.M)
assert len(rows) >= 8, rows
for args, slots, chunks, mib, per_key in rows:
    kv = dict(item.split("=") for item in args.split(","))
    cap = int(kv["capacity"])
    b = int(kv.get("bytes", cap * 144))
    assert int(slots) == cap + cap // 4 + 1, (args, slots)
    assert int(chunks) == b // 48, (args, chunks)
    mem = int(slots) * 8 + (int(chunks) + 1) * 48 + cap * 4
    assert abs(mem / 2**20 - float(mib)) < 0.06, (args, mib, mem / 2**20)
    assert round(mem / cap) == int(per_key), (args, per_key, mem / cap)
PY
# The measurement's command, as config.md shows it, on a small store: it
# prints the line the doc quotes, in the same words.
doc_line=$(grep '^kv-mem: capacity=10000000,bytes=480000000: 10000000 keys of 16+16 bytes filled in' "$CONFIG")
shape='^kv-mem: [a-z0-9=,]+: [0-9]+ keys of 16\+16 bytes filled in [0-9.]+ s; resident \+[0-9.]+ MiB, [0-9.]+ bytes per key$'
grep -q '^\$ bypax-kv-mem 10000000 capacity=10000000,bytes=480000000 1$' "$CONFIG" &&
	grep -Eq "$shape" <<<"$doc_line" &&
	"$BUILD/bench/bypax-kv-mem" 1000 capacity=1000,bytes=48000 1 | head -1 | grep -Eq "$shape" &&
	ok "config.md's bypax-kv-mem command and the line it prints" || bad "bypax-kv-mem in config.md"
grep -q 'With `bpx_kv_prefetch` of each batch of 32 before it is$' "$CONFIG" &&
	grep -q '^capacity=N,bytes=N\*48 2000000 BATCH`, gcc -O2' "$CONFIG" &&
	"$BUILD/bench/bypax-kv-mem" 1000 capacity=1000,bytes=48000 1000 32 |
	grep -Eq '^kv-mem: 1000 overwriting PUTs in batches of 32: [0-9.]+ ns, [0-9]+ cycles per apply; digest [0-9a-f]{16}$' &&
	ok "config.md's bypax-kv-mem BATCH form runs" || bad "bypax-kv-mem BATCH in config.md"
# ---- "Durable mode": the sizes its incremental snapshots name are the code's ----
step_bytes=$(sed -n 's/^#define DP_SNAPSHOT_STEP_BYTES \([0-9]*\)u$/\1/p' "$ROOT/dataplane/dp.h")
piece_bytes=$(sed -n 's/^#define KV_COW_PIECE_BYTES \([0-9]*\)u$/\1/p' "$ROOT/sm/kv_store.h")
flat=$(tr '\n' ' ' <"$DEPLOY" | tr -s ' ')
[[ -n $step_bytes && -n $piece_bytes ]] &&
	grep -qF "copies at most $((step_bytes / 1024)) KiB of the frozen store a tick" <<<"$flat" &&
	grep -qF "a write to a part not yet copied copies that $((piece_bytes / 1024)) KiB first" <<<"$flat" &&
	ok "deploy.md's snapshot step ($step_bytes bytes) and copy-on-write piece ($piece_bytes bytes)" ||
	bad "deploy.md, Durable mode: the step or piece size is not DP_SNAPSHOT_STEP_BYTES ($step_bytes) or KV_COW_PIECE_BYTES ($piece_bytes)"
[[ $fails -eq 0 ]] && echo "deploy docs: OK" || { echo "deploy docs: $fails failed"; exit 1; }
