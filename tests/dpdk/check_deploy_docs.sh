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
grep -q '^#define BPX_KV_CAPACITY_DEFAULT 200000u$' "$ROOT/include/bypax/kv.h" &&
	grep -q 'default 200000 (`BPX_KV_CAPACITY_DEFAULT`)' "$CONFIG" &&
	ok "default capacity 200000 in kv.h and config.md" || bad "default capacity"
python3 - "$CONFIG" <<'PY' && ok "config.md's sizing rows follow the formula" || bad "config.md's sizing table"
import re, sys
rows = re.findall(r"^\| \**(\d+)\** (?:\([a-z]+\) )?\s*\| (\d+)\s*\| ([\d.]+) MiB", open(sys.argv[1]).read(), re.M)
assert len(rows) >= 8, rows
for cap, slots, mib in rows:
    cap, slots = int(cap), int(slots)
    n = 1
    while n < cap + cap // 4 + 1:
        n <<= 1
    assert n == slots, (cap, slots, n)
    want = (n * 1112 + cap * 8) / 2**20
    assert abs(want - float(mib)) < 0.1 or (cap > 10**7 and abs(want - float(mib)) < 1), (cap, mib, want)
PY
[[ $fails -eq 0 ]] && echo "deploy docs: OK" || { echo "deploy docs: $fails failed"; exit 1; }
