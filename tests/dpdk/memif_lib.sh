# Three bypaxd processes on this machine: net_memif links between each pair
# and a net_tap port each for kernel clients (libbypax, bypax-cli). Sourced
# by the multi-process tests and the failover measurement.
#
# usage: BUILD=build-dir; source memif_lib.sh; cluster_init; start_replica 0 ...
#
# CLIENT_LINK=memif: instead of the net_tap port, each bypaxd serves one
# more memif socket ($DIR/load-I.sock) for bypax-dpdk-load and replies to
# clients there (dpdk_load runs it). METRICS=1: each member gets a
# `metrics = 127.0.0.1:PORT` key (the generator reads the leader's cycles).
# shellcheck shell=bash

: "${BUILD:?set BUILD to the meson build directory}"
N=${N:-3}
CLUSTER_ID=${CLUSTER_ID:-$((RANDOM % 50000 + 100))}
DIR=$(mktemp -d "/tmp/bypax-memif.XXXXXX")
# The admin sockets (bypaxd's default, where bypaxctl looks): this test's
# own directory, not /run/bypax, so tests run side by side and unprivileged.
export BYPAX_RUN_DIR=$DIR
TAG=$((RANDOM % 9000 + 1000))
CONF=$DIR/bypax.conf
declare -a PIDS

need_root()
{
	if [[ $(id -u) -ne 0 || ! -e /dev/net/tun ]]; then
		echo "skip: needs root and /dev/net/tun for net_tap ports"
		rm -rf "$DIR"
		exit 77
	fi
}

cluster_init()
{
	{
		echo "[cluster]"
		echo "id = $CLUSTER_ID"
		echo "heartbeat_us = 1000"
		echo "retransmit_us = 2000"
		echo "sm_args = capacity=${KV_CAPACITY:-65536}"
		echo "[control]"
		echo "heartbeat_us = 5000"
		echo "timeout_min_us = ${FD_TIMEOUT_MIN_US:-40000}"
		echo "timeout_max_us = 1000000"
		for ((i = 0; i < N; i++)); do
			echo "[member$i]"
			printf 'mac = 02:00:00:00:%02x:%02x\n' $((TAG % 256)) "$i"
			echo "ip = 10.$((TAG % 200 + 20)).$i.1"
			echo "port = 9000"
			echo "control = 127.0.0.1:$((20000 + TAG + i * 7))"
			[[ -n ${METRICS:-} ]] && echo "metrics = 127.0.0.1:$((40000 + TAG + i * 7))"
		done
	} >"$CONF"
}

tap_name() { echo "bpx${TAG}t$1"; }

# replica_cmd I [EXTRA...]: sets REPLICA_CMD to the command line that runs
# bypaxd I (memif links, a tap port, routes), with EXTRA options of ours
# after the others. Starts nothing, removes nothing.
replica_cmd()
{
	local i=$1 j k=0 args=() routes=()
	shift
	for ((j = 0; j < N; j++)); do
		[[ $j -eq $i ]] && continue
		local a=$((i < j ? i : j)) b=$((i < j ? j : i))
		local role=client
		[[ $i -eq $a ]] && role=server
		args+=("--vdev=net_memif$k,role=$role,socket=$DIR/$a-$b.sock,socket-abstract=no")
		routes+=(--route "$j=$k")
		k=$((k + 1))
	done
	if [[ ${CLIENT_LINK:-tap} == memif ]]; then
		args+=("--vdev=net_memif$k,role=server,socket=$DIR/load-$i.sock,socket-abstract=no")
	else
		args+=("--vdev=net_tap0,iface=$(tap_name "$i")")
	fi
	REPLICA_CMD=("$BUILD/dataplane/bypaxd" -l 0-1 --no-huge -m 256 --no-pci --no-shconf
		--file-prefix "bpx$TAG-$i" "--log-level=*:error" "--log-level=bypax.*:info"
		"${args[@]}" --
		--config "$CONF" --id "$i" "${routes[@]}" --client-port "$k"
		--idle-sleep-us 50 --snapshot-mb 16 --stats-interval 1 "$@")
}

# start_replica I [--bootstrap]: launches bypaxd I in the background; the
# first start of the cluster passes --bootstrap, a restart does not.
start_replica()
{
	local i=$1 extra=${2:-} j
	for ((j = i + 1; j < N; j++)); do
		rm -f "$DIR/$i-$j.sock" # left behind by a killed server
	done
	# shellcheck disable=SC2086 # extra is one option or none
	replica_cmd "$i" $extra
	"${REPLICA_CMD[@]}" >>"$DIR/r$i.log" 2>&1 &
	PIDS[$i]=$!
	[[ ${CLIENT_LINK:-tap} == memif ]] && return 0
	# The tap appears once the port is up; give it the kernel-side address.
	local t
	for t in $(seq 1 100); do
		ip link show "$(tap_name "$i")" >/dev/null 2>&1 && break
		sleep 0.1
	done
	ip addr add "10.$((TAG % 200 + 20)).$i.254/24" dev "$(tap_name "$i")" 2>/dev/null || true
	ip link set "$(tap_name "$i")" up 2>/dev/null || true
}

stop_replica()
{
	local i=$1 sig=${2:-TERM}
	[[ $i =~ ^[0-9]+$ ]] || { echo "stop_replica: bad id '$i'"; return 1; }
	[[ -n "${PIDS[$i]:-}" ]] || return 0
	kill "-$sig" "${PIDS[$i]}" 2>/dev/null || true
	if [[ $sig != STOP ]]; then
		wait "${PIDS[$i]}" 2>/dev/null || true
		PIDS[$i]=""
	fi
}

cluster_cleanup()
{
	local i
	for ((i = 0; i < N; i++)); do
		[[ -n "${PIDS[$i]:-}" ]] && kill -CONT "${PIDS[$i]}" 2>/dev/null
		stop_replica "$i" TERM
	done
	# The lock files of the admin sockets outlive their bypaxd on
	# purpose (docs/deploy.md); ours go with the test's cluster id.
	rm -f "$BYPAX_RUN_DIR"/bypaxd-"$CLUSTER_ID"-*.sock.lock
	if [[ -n "${KEEP_LOGS:-}" ]]; then
		echo "logs kept in $DIR"
	else
		rm -rf "$DIR"
	fi
}

# A stopped (SIGSTOP) bypaxd accepts on its admin socket but never answers:
# every call is bounded.
ctl() { timeout "${CTL_TIMEOUT:-5}" "$BUILD/client/bypaxctl" --config "$CONF" "$@"; }
cli() { "$BUILD/client/bypax-cli" --config "$CONF" "$@"; }
load() { "$BUILD/client/bypax-load" --config "$CONF" "$@"; }

# dpdk_load [OPTIONS...]: bypax-dpdk-load on one memif link per member
# (CLIENT_LINK=memif), member I through port I; its own EAL, lcore
# ${LOAD_LCORES:-1}.
dpdk_load()
{
	local i vdevs=()
	for ((i = 0; i < N; i++)); do
		vdevs+=("--vdev=net_memif$i,role=client,socket=$DIR/load-$i.sock,socket-abstract=no")
	done
	"$BUILD/dataplane/bypax-dpdk-load" -l "${LOAD_LCORES:-1}" --no-huge -m 256 \
		--no-pci --no-shconf --file-prefix "bpx$TAG-load" --log-level=error \
		"${vdevs[@]}" -- --config "$CONF" "$@"
}

# leader_id: the leader as member 0..N-1 sees it, or -1.
leader_id()
{
	local i out
	for ((i = 0; i < N; i++)); do
		out=$(ctl --id "$i" --json status 2>/dev/null) || continue
		echo "$out" | sed -n 's/.*"leader":\(-\{0,1\}[0-9]*\).*/\1/p'
		return 0
	done
	echo -1
}

# wait_for DESCRIPTION SECONDS COMMAND...: polls COMMAND until it succeeds.
wait_for()
{
	local what=$1 secs=$2 t
	shift 2
	for t in $(seq 1 $((secs * 10))); do
		"$@" >/dev/null 2>&1 && return 0
		sleep 0.1
	done
	echo "FAIL: timed out after ${secs}s waiting for $what"
	return 1
}

# all_voting: every member alive and none recovering, per member 0..N-1.
all_voting()
{
	local i
	for ((i = 0; i < N; i++)); do
		[[ -n "${PIDS[$i]:-}" ]] || return 1
		ctl --id "$i" --json status 2>/dev/null | grep -q "\"role\":\"recovering\"" && return 1
		ctl --id "$i" --json status 2>/dev/null | grep -q "\"alive\":false" && return 1
	done
	return 0
}

has_leader() { [[ $(leader_id) -ge 0 ]]; }

# ---- For the tests and the failover bench ----

T_START=$(date +%s%N)
elapsed() { echo "$((($(date +%s%N) - T_START) / 1000000))"; }
# step TEXT: one line per check, with the time since the start.
step() { printf '[%6.1f s] %s\n' "$(echo "$(elapsed) / 1000" | bc -l)" "$*"; }

# fail TEXT: says what failed, shows the end of each replica's log, exits 1.
fail()
{
	local i
	echo "FAIL: $*"
	for ((i = 0; i < N; i++)); do
		echo "---- bypaxd $i log (last lines) ----"
		grep -v '^[0-9]*: \|^tap_\|^qdisc_\|^eth_dev_tap' "$DIR/r$i.log" 2>/dev/null |
			tail -n "${FAIL_LOG_LINES:-8}" | cut -c1-300
	done
	exit 1
}

# own_field K FIELD: FIELD (role, ballot_raw, commit, applied) of member K as
# it reports itself; empty when it does not answer.
own_field()
{
	local k=$1 f=$2
	CTL_TIMEOUT=${CTL_TIMEOUT:-2} ctl --id "$k" --json status 2>/dev/null |
		sed -n "s/.*{\"id\":$k,[^}]*\"$f\":\"\{0,1\}\([a-z0-9]*\)\"\{0,1\}[,}].*/\1/p"
}
role_of() { own_field "$1" role; }
applied_of() { own_field "$1" applied; }
commit_of() { own_field "$1" commit; }
ballot_of() { own_field "$1" ballot_raw; } # the integer: ballot order

# omega_leader K: the leader as member K's control plane sees it (-1: none).
omega_leader()
{
	CTL_TIMEOUT=${CTL_TIMEOUT:-2} ctl --id "$1" --json status 2>/dev/null |
		sed -n 's/.*"leader":\(-\{0,1\}[0-9]*\).*/\1/p'
}

# paxos_leader_among K...: the member among K... whose consensus says it
# leads (the first one; -1 when none does).
paxos_leader_among()
{
	local k
	for k in "$@"; do
		[[ $(role_of "$k") == leader ]] && { echo "$k"; return 0; }
	done
	echo -1
}

# new_leader_among OLD K...: succeeds when one of K... (not OLD) leads;
# sets NEW_LEADER to it.
new_leader_among()
{
	local old=$1 l
	shift
	l=$(paxos_leader_among "$@")
	[[ $l -ge 0 && $l -ne $old ]] || return 1
	# shellcheck disable=SC2034 # for the caller
	NEW_LEADER=$l
}

# converged: every member answers, none recovering, and all applied
# indexes equal the highest commit index.
converged()
{
	local i a c top=0 apps=()
	for ((i = 0; i < N; i++)); do
		a=$(applied_of "$i")
		c=$(commit_of "$i")
		[[ -n $a && -n $c ]] || return 1
		[[ $(role_of "$i") != recovering ]] || return 1
		apps+=("$a")
		((c > top)) && top=$c
	done
	for a in "${apps[@]}"; do
		[[ $a -eq $top ]] || return 1
	done
	return 0
}

# applied_indexes: "i:applied" for every member, for messages.
applied_indexes()
{
	local i out=""
	for ((i = 0; i < N; i++)); do
		out+="$i:$(applied_of "$i")/$(commit_of "$i") "
	done
	echo "$out"
}

# wait_exit PID SECONDS: waits for a child, SIGKILLs it after SECONDS;
# returns its exit status (137 if it had to be killed). No helper process
# is left behind (one holding our stdout would stall meson).
wait_exit()
{
	local pid=$1 secs=$2 t state
	for ((t = 0; t < secs * 10; t++)); do
		state=$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null) || break
		[[ $state == Z ]] && break
		sleep 0.1
	done
	kill -0 "$pid" 2>/dev/null && [[ $(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null) != Z ]] &&
		kill -KILL "$pid" 2>/dev/null
	wait "$pid"
}

# max_gap_ms OUTPUT_FILE: the max gap (ms, whole) from a bypax-load report.
max_gap_ms()
{
	sed -n 's/.*max gap between acknowledgements \([0-9]*\)\.[0-9]* ms.*/\1/p' "$1"
}
# acks_per_second OUTPUT_FILE: the per-second acknowledgement counts.
acks_per_second()
{
	sed -n 's/^load: acknowledged per second: //p' "$1"
}
