#!/usr/bin/env bash
# A 3-member etcd cluster (Debian's etcd-server) on loopback, loaded with
# wrk through etcd's v3 JSON gateway (POST /v3/kv/put), at each client
# concurrency given; prints one JSON object with a result per concurrency.
# scripts/bench runs it as the peer to compare bypax with.
#
# usage: bench/etcd/run.sh [--conns "32 128"] [--duration S] [--warmup S]
#                          [--value-bytes N] [--threads N] [--tmpfs]
#                          [--out FILE]
#   --tmpfs   data directories on /dev/shm (fsync then costs nothing);
#             default: on disk under /var/tmp, as etcd is deployed
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
conns="32"
duration=10
warmup=2
value_bytes=16
threads=$(nproc)
tmpfs=0
out=/dev/stdout

while [[ $# -gt 0 ]]; do
	case "$1" in
	--conns) conns=$2; shift ;;
	--duration) duration=$2; shift ;;
	--warmup) warmup=$2; shift ;;
	--value-bytes) value_bytes=$2; shift ;;
	--threads) threads=$2; shift ;;
	--tmpfs) tmpfs=1 ;;
	--out) out=$2; shift ;;
	-h | --help) sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
	*) echo "etcd/run.sh: unknown argument $1" >&2; exit 2 ;;
	esac
	shift
done

for tool in etcd etcdctl wrk python3; do
	command -v "$tool" >/dev/null ||
		{ echo "etcd/run.sh: $tool not installed (apt-get install etcd-server etcd-client wrk)" >&2; exit 3; }
done

if [[ $tmpfs -eq 1 ]]; then
	dir=$(mktemp -d /dev/shm/bypax-etcd.XXXXXX)
	storage="tmpfs (/dev/shm)"
else
	dir=$(mktemp -d /var/tmp/bypax-etcd.XXXXXX)
	storage="disk ($(df --output=source /var/tmp | tail -1), fsync per commit)"
fi
base=$((24000 + (RANDOM % 200) * 10))
pids=()

cleanup()
{
	local p
	for p in "${pids[@]}"; do
		kill "$p" 2>/dev/null || true
	done
	for p in "${pids[@]}"; do
		wait "$p" 2>/dev/null || true
	done
	rm -rf "$dir"
}
trap cleanup EXIT

cluster=""
for i in 0 1 2; do
	cluster+="${cluster:+,}m$i=http://127.0.0.1:$((base + 5 + i))"
done
endpoints=""
for i in 0 1 2; do
	endpoints+="${endpoints:+,}http://127.0.0.1:$((base + i))"
	etcd --name "m$i" --data-dir "$dir/m$i" \
		--listen-client-urls "http://127.0.0.1:$((base + i))" \
		--advertise-client-urls "http://127.0.0.1:$((base + i))" \
		--listen-peer-urls "http://127.0.0.1:$((base + 5 + i))" \
		--initial-advertise-peer-urls "http://127.0.0.1:$((base + 5 + i))" \
		--initial-cluster "$cluster" --initial-cluster-state new \
		--initial-cluster-token "bypax-bench-$base" \
		--log-level error >"$dir/m$i.log" 2>&1 &
	pids+=($!)
done

ready=0
for _ in $(seq 1 100); do
	if etcdctl --endpoints "$endpoints" endpoint health >/dev/null 2>&1; then
		ready=1
		break
	fi
	sleep 0.2
done
if [[ $ready -ne 1 ]]; then
	echo "etcd/run.sh: the cluster did not become healthy; logs:" >&2
	tail -n 5 "$dir"/m*.log >&2
	exit 1
fi

# Clients talk to the leader, as bypax's do (a follower would forward).
leader_url=$(etcdctl --endpoints "$endpoints" endpoint status -w json |
	python3 -c '
import json, sys
for e in json.load(sys.stdin):
    if e["Status"]["header"]["member_id"] == e["Status"]["leader"]:
        print(e["Endpoint"])
        break
')
[[ -n "$leader_url" ]] || { echo "etcd/run.sh: no leader" >&2; exit 1; }

export BPX_ETCD_VALUE_BYTES=$value_bytes BPX_ETCD_KEYS=1000
results=()
for c in $conns; do
	t=$((threads < c ? threads : c))
	wrk -t "$t" -c "$c" -d "${warmup}s" -s "$here/put.lua" "$leader_url" >/dev/null 2>&1 || true
	line=$(wrk -t "$t" -c "$c" -d "${duration}s" --latency -s "$here/put.lua" \
		"$leader_url" 2>&1 | sed -n 's/^BPX_WRK_JSON //p')
	[[ -n "$line" ]] || { echo "etcd/run.sh: wrk printed no result" >&2; exit 1; }
	results+=("{\"conns\":$c,\"wrk_threads\":$t,\"wrk\":$line}")
done

version=$(etcd --version | sed -n 's/^etcd Version: //p')
joined=$(IFS=,; echo "${results[*]}")
python3 - "$out" <<PY
import json, sys
runs = json.loads('[' + '''$joined''' + ']')
for r in runs:
    w = r["wrk"]
    secs = w["duration_us"] / 1e6
    errs = sum(v for k, v in w.items() if k.startswith("errors_"))
    r["writes_per_s"] = (w["requests"] - errs) / secs if secs else 0
    r["p50_us"], r["p99_us"], r["p999_us"] = w["p50_us"], w["p99_us"], w["p999_us"]
    r["errors"] = errs
doc = {
    "etcd_version": "$version",
    "members": 3,
    "storage": "$storage",
    "transport": "kernel TCP on loopback, HTTP/1.1 JSON gateway (grpc-gateway) to gRPC",
    "leader_url": "$leader_url",
    "value_bytes": $value_bytes,
    "duration_s": $duration,
    "load_tool": "wrk $(wrk -v 2>&1 | head -1 | awk '{print $2}') with bench/etcd/put.lua, to the leader",
    "runs": runs,
}
with open(sys.argv[1], "w") as f:
    json.dump(doc, f)
    f.write("\n")
PY
