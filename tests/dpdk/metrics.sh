#!/bin/bash
# metrics: bypaxd's HTTP endpoint (docs/metrics.md) on a live 3-replica
# memif cluster, each member with a `metrics = 127.0.0.1:PORT` key.
#
#   metrics.sh BUILD_DIR page
#     every page passes `promtool check metrics`; every metric that
#     docs/metrics.md names is on a page and every family of the page is
#     in the doc; every metric docs/grafana-bypax.json queries exists; the
#     page's leader is bypaxctl's; replies, requests and the commit
#     latency histogram count a load; /health is 200 on all three, 503
#     with a reason once two are gone; the protocol (404, 405, 400, 431,
#     505, idle clients, half a request). About 25 s.
#   metrics.sh BUILD_DIR prometheus
#     a real Prometheus (Debian's) on loopback scrapes the three replicas;
#     a query for bypax_role{role="leader"} == 1 names bypaxctl's leader.
#     About 20 s.
#
# Root and /dev/net/tun (net_tap), python3, and Debian's prometheus
# (promtool, prometheus), else skip: 77.
set -u
BUILD=$(cd "${1:?usage: metrics.sh BUILD_DIR page|prometheus}" && pwd)
MODE=${2:?usage: metrics.sh BUILD_DIR page|prometheus}
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
DOCS=$HERE/../../docs
CHECK=$HERE/metrics_check.py
for tool in promtool prometheus python3; do
	if ! command -v "$tool" >/dev/null 2>&1; then
		echo "skip: $tool is not installed (Debian: apt-get install prometheus)"
		exit 77
	fi
done
# shellcheck source=tests/dpdk/memif_lib.sh
source "$HERE/memif_lib.sh"
need_root
PROM_PID=
cleanup()
{
	[[ -n $PROM_PID ]] && kill "$PROM_PID" 2>/dev/null && wait "$PROM_PID" 2>/dev/null
	cluster_cleanup
}
trap cleanup EXIT

read -r -a PORTS <<<"$(python3 "$CHECK" ports 4)"
cluster_init
for ((i = 0; i < N; i++)); do
	sed -i "/^\[member$i\]/a metrics = 127.0.0.1:${PORTS[$i]}" "$CONF"
done
url() { echo "http://127.0.0.1:${PORTS[$1]}$2"; }
scrape() { python3 "$CHECK" get "$(url "$1" /metrics)" "$DIR/metrics$1.txt"; }
health_of() { python3 "$CHECK" get "$(url "$1" /health)" 2>&1; }
healthy() { python3 "$CHECK" get "$(url "$1" /health)" >/dev/null 2>&1; }
all_healthy() { local i; for ((i = 0; i < N; i++)); do healthy "$i" || return 1; done; }
# sample K LINE_START: the value of the first line of member K's page
# that starts with LINE_START (a name and its labels).
sample() { awk -v s="$2" 'index($0, s) == 1 { print $NF; exit }' "$DIR/metrics$1.txt"; }

for ((i = 0; i < N; i++)); do start_replica "$i" --bootstrap; done
step "started 3 replicas (--bootstrap), cluster $CLUSTER_ID, metrics on ports ${PORTS[*]:0:3}"
wait_for "a leader" 15 has_leader || fail "no leader"
wait_for "every member voting" 10 all_voting || fail "not all voting"
# Twice, a while apart: in the first second or so a member may suspect
# the others that started after it and drop its first leader choice.
for t in 1 2; do
	wait_for "/health 200 on every member" 10 all_healthy ||
		fail "/health: $(health_of 0) / $(health_of 1) / $(health_of 2)"
	[[ $t -eq 1 ]] && sleep 1.5
done
leader=$(leader_id)
step "leader: member $leader; /health: $(health_of "$leader" | tr -d '\n')"

# normalize: numbers -> N, paths -> PATH (as interlock.sh), so a message
# can be matched against the example docs/metrics.md gives.
normalize() { sed -E 's#(/[A-Za-z0-9._-]+)+#PATH#g; s/[0-9]+/N/g; s/^bypaxd: //'; }
doc_states()
{
	local want
	want=$(echo "$1" | normalize)
	normalize <"$DOCS/metrics.md" | grep -qF -- "$want" ||
		fail "docs/metrics.md does not show the message '$1' (as '$want')"
}

# A bad metrics value: bypaxd refuses the file (exit 2) with the message
# docs/metrics.md quotes.
bad_metrics_value()
{
	local bad=$DIR/bad.conf out rc
	sed "s/^metrics = 127.0.0.1:${PORTS[0]}\$/metrics = localhost:9100/" "$CONF" >"$bad"
	out=$("$BUILD/dataplane/bypaxd" -- --config "$bad" --id 0 2>&1)
	rc=$?
	[[ $rc -eq 2 && $out == *"[member0] metrics = 'localhost:9100'"* ]] ||
		fail "a bad metrics value: exit $rc, '$out'"
	doc_states "$out"
	step "ok: a bad metrics value exits 2: $out"
}

# Member I restarted while another process listens on its metrics port:
# it stops at start (exit 1), naming the address, as the doc says.
metrics_address_in_use()
{
	local i=$1 out rc
	python3 -c 'import socket, sys, time
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1]))); s.listen(1); time.sleep(30)' "${PORTS[$i]}" &
	local holder=$!
	sleep 0.3
	local j
	for ((j = i + 1; j < N; j++)); do
		rm -f "$DIR/$i-$j.sock" # left behind by the killed server
	done
	replica_cmd "$i"
	timeout 30 "${REPLICA_CMD[@]}" >"$DIR/in-use.out" 2>&1
	rc=$?
	kill "$holder" 2>/dev/null
	wait "$holder" 2>/dev/null
	out=$(grep '^bypaxd: metrics' "$DIR/in-use.out")
	[[ $rc -eq 1 && $out == *"metrics address 127.0.0.1:${PORTS[$i]}: Address already in use"* ]] ||
		fail "metrics port in use: exit $rc, '$(tail -3 "$DIR/in-use.out")'"
	doc_states "$out"
	step "ok: metrics port in use: $out"
}

page_checks()
{
	bad_metrics_value
	load --duration 1 --lanes 4 --prefix metrics >"$DIR/load.out" 2>&1 ||
		fail "bypax-load: $(cat "$DIR/load.out")"
	local i out
	for ((i = 0; i < N; i++)); do
		scrape "$i" || fail "GET /metrics of member $i"
		out=$(promtool check metrics <"$DIR/metrics$i.txt" 2>&1) ||
			fail "promtool check metrics, member $i: $out"
	done
	step "ok: promtool check metrics accepts the 3 pages ($(wc -c <"$DIR/metrics0.txt") bytes each)"
	python3 "$CHECK" names "$DIR/metrics$leader.txt" "$DOCS/metrics.md" \
		"$DOCS/grafana-bypax.json" || fail "names"
	[[ $(python3 "$CHECK" leader "$DIR"/metrics?.txt) == "$leader" ]] ||
		fail "the pages name leader(s) '$(python3 "$CHECK" leader "$DIR"/metrics?.txt)', bypaxctl $leader"
	[[ $(sample "$leader" 'bypax_control_leader ') == "$leader" ]] ||
		fail "bypax_control_leader is not $leader"
	local ok count
	ok=$(sample "$leader" 'bypax_replies_total{status="ok"}')
	count=$(sample "$leader" 'bypax_commit_latency_seconds_count')
	[[ $ok -gt 100 && $count -gt 0 ]] ||
		fail "after a load the leader counts $ok ok replies and $count commit latencies"
	step "ok: the pages name leader $leader; it counts $ok ok replies, $count slots' commit latency"
	python3 "$CHECK" http "127.0.0.1:${PORTS[$leader]}" || fail "the HTTP protocol"
	# Two members gone: the last one has no leader to follow or lead.
	local a=$(((leader + 1) % N)) b=$(((leader + 2) % N))
	stop_replica "$leader" KILL
	stop_replica "$a" KILL
	metrics_address_in_use "$a"
	wait_for "/health 503 on member $b" 10 bash -c "! python3 '$CHECK' get '$(url "$b" /health)'" ||
		fail "member $b still healthy alone: $(health_of "$b")"
	out=$(health_of "$b")
	[[ $out == *"unavailable: member $b:"*503* ]] || fail "/health alone: '$out'"
	step "ok: alone, member $b's /health: $(echo "$out" | tr '\n' ' ')"
}

prometheus_checks()
{
	local i prom=127.0.0.1:${PORTS[3]} q='bypax_role{role="leader"} == 1' out
	{
		echo "global:"
		echo "  scrape_interval: 1s"
		echo "  scrape_timeout: 1s"
		echo "scrape_configs:"
		echo "  - job_name: bypax"
		echo "    static_configs:"
		for ((i = 0; i < N; i++)); do
			echo "      - targets: ['127.0.0.1:${PORTS[$i]}']"
			echo "        labels: {member: '$i'}"
		done
	} >"$DIR/prometheus.yml"
	promtool check config "$DIR/prometheus.yml" >"$DIR/promtool.out" 2>&1 ||
		fail "promtool check config: $(cat "$DIR/promtool.out")"
	prometheus --config.file="$DIR/prometheus.yml" \
		--storage.tsdb.path="$DIR/tsdb" --web.listen-address="$prom" \
		>"$DIR/prometheus.log" 2>&1 &
	PROM_PID=$!
	wait_for "prometheus ready" 20 python3 "$CHECK" get "http://$prom/-/ready" ||
		fail "prometheus: $(tail -5 "$DIR/prometheus.log")"
	step "prometheus $(prometheus --version 2>&1 | head -1 | awk '{print $3}') ready on $prom"
	wait_for "3 targets up" 20 bash -c "[[ \$(python3 '$CHECK' query '$prom' 'sum(up{job=\"bypax\"})' | awk '{print \$NF}') == 3 ]]" ||
		fail "targets: $(python3 "$CHECK" query "$prom" up)"
	wait_for "a leader in prometheus" 15 bash -c "python3 '$CHECK' query '$prom' '$q' | grep -q member=" ||
		fail "no answer to $q"
	out=$(python3 "$CHECK" query "$prom" "$q")
	step "prometheus: $q -> $out"
	[[ $(echo "$out" | wc -l) -eq 1 && $out == *"member=$leader "* ]] ||
		fail "prometheus names '$out', bypaxctl names member $leader"
	out=$(python3 "$CHECK" query "$prom" 'max(bypax_control_leader)')
	[[ ${out##* } == "$leader" ]] || fail "max(bypax_control_leader) is '$out'"
	step "ok: prometheus names the leader, member $leader"
}

case $MODE in
page) page_checks ;;
prometheus) prometheus_checks ;;
*) fail "unknown mode '$MODE' (page or prometheus)" ;;
esac
step "ok: metrics ($MODE)"
