#!/bin/bash
# docs/deploy.md, "Three processes on one machine", run as a new operator
# would: its shell blocks copied out of the doc and run in order, as
# written (the config file, the three bypaxd, the taps and a put, the look
# at the cluster, the stop), with the build's binaries on the PATH as the
# doc says. Then the answers are checked: the read, a leader in status,
# 200 from every /health, the metrics lines, the start-up events, every
# bypaxd gone and its tap with it.
#
# The recipe's names are fixed (cluster 77, 10.77.*, bpx0..2, control
# ports 7700-7702, metrics 9100-9102, /tmp/bypax.conf, /tmp/?-?.sock,
# /tmp/bypaxd-?.log): this test owns them while it runs (is_parallel:
# false) and removes them after.
#
# usage: deploy_recipe.sh BUILD_DIR
set -u
BUILD=$(cd "${1:?usage: deploy_recipe.sh BUILD_DIR}" && pwd)
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
DEPLOY=$ROOT/docs/deploy.md

[[ $(id -u) -eq 0 && -c /dev/net/tun ]] || { echo "skip: needs root and /dev/net/tun"; exit 77; }
command -v curl >/dev/null || { echo "skip: no curl (apt-get install curl)"; exit 77; }
for t in bpx0 bpx1 bpx2; do
	ip link show "$t" >/dev/null 2>&1 && { echo "skip: $t exists (another run of the recipe?)"; exit 77; }
done

TMP=$(mktemp -d /tmp/bypax-recipe.XXXXXX)
cleanup()
{
	pkill -f -- "--config /tmp/bypax.conf" 2>/dev/null
	for _ in $(seq 1 50); do
		pgrep -f -- "--config /tmp/bypax.conf" >/dev/null || break
		sleep 0.1
	done
	pkill -9 -f -- "--config /tmp/bypax.conf" 2>/dev/null
	rm -f /tmp/bypax.conf /tmp/0-1.sock /tmp/0-2.sock /tmp/1-2.sock
	[[ ${KEEP:-0} == 1 ]] || rm -f /tmp/bypaxd-0.log /tmp/bypaxd-1.log /tmp/bypaxd-2.log
	rm -rf "$TMP"
}
trap cleanup EXIT

# The section's fenced blocks without a language (the shell ones), in order.
awk '/^## Three processes on one machine/ { on = 1; next } on && /^## / { on = 0 }
	on && /^```$/ { if (inb) { inb = 0; n++ } else { inb = 1 }; next }
	on && inb { print > (dir "/block" n ".sh") }' dir="$TMP" "$DEPLOY"
ls "$TMP"/block*.sh >/dev/null 2>&1 || { echo "FAIL: no shell blocks in the section"; exit 1; }
# Which block is which, by what it does (the order of the doc).
conf_block=$(grep -l "^cat > /tmp/bypax.conf <<'EOF'$" "$TMP"/block*.sh | head -1)
start_block=$(grep -l '^bypaxd \$eal --file-prefix r0' "$TMP"/block*.sh | head -1)
look_block=$(grep -l '^bypaxctl --config \$conf status$' "$TMP"/block*.sh | head -1)
stop_cmd=$(sed -n 's/^To stop the cluster: `\(.*\)` (SIGTERM.*/\1/p' "$DEPLOY")
for v in conf_block start_block look_block stop_cmd; do
	[[ -n ${!v} ]] || { echo "FAIL: deploy.md: no $v in the section"; exit 1; }
done

export PATH=$BUILD/dataplane:$BUILD/client:$PATH
script=$TMP/recipe.sh
{
	cat "$conf_block"
	cat "$start_block"
	echo 'echo "=== look"'
	cat "$look_block"
	echo 'echo "=== stop"'
	echo "$stop_cmd"
	# The doc's stop is asynchronous: wait (bounded) for the processes.
	echo 'for t in $(seq 1 100); do pgrep -f -- "--config $conf" >/dev/null || break; sleep 0.1; done'
	echo 'pgrep -f -- "--config $conf" >/dev/null && echo "still running after 10 s" || echo "all stopped"'
} >"$script"
echo "deploy-recipe: running $(wc -l <"$script") lines taken from docs/deploy.md"
out=$(timeout 120 bash "$script" 2>&1)
rc=$?
echo "$out"
fails=0
ok() { echo "ok: $*"; }
bad() { echo "FAIL: $*"; fails=$((fails + 1)); }
[[ $rc -eq 0 ]] && ok "the recipe ran (exit 0)" || bad "the recipe exited $rc"
look=$(sed -n '/^=== look$/,/^=== stop$/p' <<<"$out")
grep -qx "world" <<<"$look" && ok "get hello answers world" || bad "get hello did not answer world"
grep -Eq "leader" <<<"$look" && ok "status names a leader" || bad "status names no leader"
n200=$(grep -c "^ok: member [0-2]: " <<<"$look")
[[ $n200 -eq 3 ]] && ok "/health answers ok for the 3 members" || bad "/health: $n200 of 3 answered ok"
for m in bypax_role bypax_commit_index bypax_leader_changes_total; do
	grep -q "^$m" <<<"$look" && ok "metrics has $m" || bad "metrics lacks $m"
done
grep -q "event=started" <<<"$look" && ok "the logs have event=started" || bad "no event=started in /tmp/bypaxd-*.log"
grep -Eq "event=(role_change|leader_change)" <<<"$look" && ok "the logs have the leader's election" ||
	bad "no role_change/leader_change in /tmp/bypaxd-*.log"
grep -qx "all stopped" <<<"$out" && ok "the doc's stop stops every bypaxd" || bad "bypaxd still running after the doc's stop"
for t in bpx0 bpx1 bpx2; do
	ip link show "$t" >/dev/null 2>&1 && bad "tap $t left behind"
done
[[ $fails -eq 0 ]] && { echo "deploy-recipe: OK"; exit 0; }
echo "deploy-recipe: $fails check(s) failed (KEEP=1 keeps /tmp/bypaxd-?.log)"
exit 1
