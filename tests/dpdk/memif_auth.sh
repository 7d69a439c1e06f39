#!/bin/bash
# memif_auth: the cluster key (docs/config.md, "Authentication";
# docs/wire.md, "Authentication") on three bypaxd processes over
# net_memif:
#  - the key is made with the commands docs/config.md shows, as written
#    (the doc's path replaced by the test's);
#  - with key_file set the cluster elects, commits writes from kernel
#    clients (which hold no key, and do not read the key file) and
#    counts no bad MAC;
#  - the largest command the keyed budget allows (batch_bytes 1376 - 18)
#    commits, and one byte more is refused TOO_BIG;
#  - datagrams forged with tags made by another implementation (Python's
#    hashlib) verify on both planes, wrong tags are bad MAC, another
#    cluster's heartbeats stay "another cluster";
#  - member 2 restarted with another key is cut off: members 0 and 1 drop
#    its frames and heartbeats as bad MAC (bypaxctl status, a log line),
#    and go on committing;
#  - member 2 restarted with the right key recovers (its recovery reads
#    the full batches back through PROMISEs with tags) and catches up;
#  - a key file others can read, or of the wrong size, stops bypaxd
#    before its EAL with the message docs/config.md quotes.
#
# About 30 s.
# usage: memif_auth.sh BUILD_DIR     (root and /dev/net/tun, else skip: 77)
set -u
BUILD=$(cd "${1:?usage: memif_auth.sh BUILD_DIR}" && pwd) # memif_lib.sh
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
DOCS=$HERE/../../docs
# As interlock.sh: a slow failure detector, so that a loaded machine does
# not move leadership on its own while the counters are read.
# shellcheck disable=SC2034 # read by memif_lib.sh's cluster_init
FD_TIMEOUT_MIN_US=300000
# shellcheck source=tests/dpdk/memif_lib.sh
source "$HERE/memif_lib.sh"
need_root
trap cluster_cleanup EXIT

DOC_KEY=/etc/bypax/cluster.key
# make_key PATH: runs docs/config.md's key commands with PATH for the
# doc's path.
make_key()
{
	local cmds
	cmds=$(sed -n '/^head -c 32 \/dev\/urandom/p; /^chmod 600 /p' "$DOCS/config.md")
	[[ $(echo "$cmds" | wc -l) -eq 2 && $cmds == *"$DOC_KEY"* ]] ||
		fail "docs/config.md does not show the two key commands for $DOC_KEY"
	bash -c "set -e; ${cmds//$DOC_KEY/$1}" || fail "the key commands failed"
	[[ $(stat -c '%s %a' "$1") == "32 600" ]] || fail "key $1: $(stat -c '%s %a' "$1")"
}

# keyed_config SRC KEY DST: SRC with [cluster] key_file = KEY.
keyed_config() { sed "s#^\[cluster\]\$#[cluster]\nkey_file = $2#" "$1" >"$3"; }

# bad_mac_of K data|control: what member K dropped as bad MAC.
bad_mac_of()
{
	CTL_TIMEOUT=2 ctl --id "$1" --json status 2>/dev/null |
		sed -n "s/.*\"bad_mac\":{[^}]*\"$2\":\([0-9]*\).*/\1/p"
}
base_data=0
base_control=0
member2_cut_off()
{
	[[ $(bad_mac_of 0 data) -gt $base_data && $(bad_mac_of 0 control) -gt $base_control &&
		$(bad_mac_of 1 data) -gt 0 && $(bad_mac_of 1 control) -gt 0 ]]
}
caught_up() { [[ $(applied_of 2) -ge $1 ]] && [[ $(role_of 2) != recovering ]]; }

# doc_states DOC LINE: DOC has LINE, paths and numbers aside.
normalize() { sed -E 's#(/[A-Za-z0-9._-]+)+#PATH#g; s/[0-9]+/N/g'; }
doc_states()
{
	local want
	want=$(echo "$2" | normalize)
	normalize <"$1" | grep -qF -- "$want" ||
		fail "$(basename "$1") does not show the message '$2' (as '$want')"
}

cluster_init
make_key "$DIR/cluster.key"
keyed_config "$CONF" "$DIR/cluster.key" "$DIR/keyed.conf"
mv "$DIR/keyed.conf" "$CONF"
for i in 0 1 2; do start_replica "$i" --bootstrap; done
step "started 3 replicas with key_file, cluster $CLUSTER_ID, logs in $DIR"
wait_for "a leader" 15 has_leader || fail "no leader"
wait_for "every member voting" 15 all_voting || fail "not all voting"
step "leader: member $(leader_id)"

# ---- writes from kernel clients; nothing dropped as bad MAC ----
for k in 1 2 3 4 5; do cli put "auth$k" "value$k" || fail "put auth$k"; done
[[ $(cli get auth3) == value3 ]] || fail "get auth3"
# The largest command: a CAS of a 64-byte key, a 1024-byte old value and
# a 264-byte new one is 6 + 64 + 1024 + 264 = 1358 = 1376 - 18 bytes.
K64=$(printf 'k%.0s' {1..64})
OLD=$(printf 'o%.0s' {1..1024})
NEW=$(printf 'n%.0s' {1..264})
cli put "$K64" "$OLD" || fail "put of the 1024-byte value"
cli cas "$K64" "$OLD" "$NEW" || fail "the largest command (1358 bytes) did not commit"
[[ $(cli get "$K64") == "$NEW" ]] || fail "the largest command's value"
cli cas "$K64" "$OLD" "${NEW}n" 2>"$DIR/toobig.err" && fail "a 1359-byte command committed"
step "ok: 5 puts, the largest command (1358 bytes) committed, 1359 refused: $(head -c 80 "$DIR/toobig.err")"
for i in 0 1 2; do
	[[ $(bad_mac_of "$i" data) == 0 && $(bad_mac_of "$i" control) == 0 ]] ||
		fail "member $i counts bad MACs in a cluster with one key: $(bad_mac_of "$i" data)/$(bad_mac_of "$i" control)"
done
ctl --id 0 status | grep -q "^dropped as bad MAC (cluster key): 0 data frames, 0 control heartbeats$" ||
	fail "bypaxctl status has no bad MAC line: $(ctl --id 0 status)"
step "ok: no bad MAC on any member; bypaxctl status says so"
# Clients read the config, never the key: one whose key_file it cannot
# read (here: a path that does not exist) still works.
sed "s#^key_file = .*#key_file = $DIR/no-such.key#" "$CONF" >"$DIR/client.conf"
"$BUILD/client/bypax-cli" --config "$DIR/client.conf" put nokey yes ||
	fail "a client that cannot read the key file failed"
"$BUILD/client/bypaxctl" --config "$DIR/client.conf" --id 0 status >/dev/null ||
	fail "bypaxctl that cannot read the key file failed"
step "ok: bypax-cli and bypaxctl work without reading the key"

# ---- tags made by another implementation (Python's hashlib) ----
# forge KIND COUNT: sends COUNT datagrams of one KIND to member 0 from a
# port of no member: "hb-good"/"hb-bad" heartbeats of this cluster with a
# right/wrong tag, "hb-other" another cluster's untagged heartbeats,
# "data-good"/"data-bad" data-plane COMMITs with a right/wrong tag
# (docs/wire.md, "Authentication": BLAKE2b, 32-byte key, 16-byte tag over
# the whole UDP payload before it).
C0=$(sed -n '/^\[member0\]/,/^control/s/^control = //p' "$CONF")
IP0=$(sed -n '/^\[member0\]/,/^ip/s/^ip = //p' "$CONF")
forge()
{
	python3 - "$1" "$2" "$DIR/cluster.key" "$CLUSTER_ID" "${C0#127.0.0.1:}" "$IP0" <<'PY'
import hashlib, socket, struct, sys, time
kind, count, keyfile = sys.argv[1], int(sys.argv[2]), sys.argv[3]
cluster, cport, ip0 = int(sys.argv[4]), int(sys.argv[5]), sys.argv[6]
key = open(keyfile, "rb").read()
def tag(msg, good):
    k = key if good else bytes([key[0] ^ 1]) + key[1:]
    return hashlib.blake2b(msg, key=k, digest_size=16).digest()
if kind.startswith("hb-"):
    c = cluster + 1 if kind == "hb-other" else cluster
    # control/ctl_wire.h, from member 1: seq far ahead, like a live one
    msg = struct.pack(">HBBIBBBBIQQQQQ", 0x4248, 1, 1, c, 0xff, 0, 0, 0xff,
                      3, 1 << 40, 0, 0, 0, 2**64 - 1)
    dst = ("127.0.0.1", cport)
else:
    # docs/wire.md: a COMMIT from member 1 to 0: ballot, commit, seq, cv
    msg = struct.pack(">HBBIBBBBBBH", 0x4258, 2, 8, cluster, 1, 0, 0, 0, 0,
                      0, 0) + struct.pack(">QQQQQ", 1 << 24 | 1, 0, 1, 0, 0)
    dst = (ip0, 9000)
if kind != "hb-other":
    msg += tag(msg, kind.endswith("-good"))
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for i in range(count):
    s.sendto(msg, dst)
    time.sleep(0.002)
PY
}
control_bad_mac_is() { [[ $(bad_mac_of 0 control) == "$1" ]]; }
data_bad_mac_is() { [[ $(bad_mac_of 0 data) == "$1" ]]; }
wrong_control_is()
{
	[[ $(CTL_TIMEOUT=2 ctl --id 0 --json status 2>/dev/null |
		sed -n 's/.*"wrong_cluster":{[^}]*"control":\([0-9]*\).*/\1/p') == "$1" ]]
}
forge hb-good 30 || fail "could not send heartbeats"
forge data-good 30 || fail "could not send frames"
sleep 0.5
control_bad_mac_is 0 && data_bad_mac_is 0 ||
	fail "tags made by hashlib do not verify: bad MAC $(bad_mac_of 0 data)/$(bad_mac_of 0 control)"
forge hb-bad 30
wait_for "30 control bad MACs" 5 control_bad_mac_is 30 || fail "control bad MAC: $(bad_mac_of 0 control)"
forge data-bad 30
wait_for "30 data bad MACs" 5 data_bad_mac_is 30 || fail "data bad MAC: $(bad_mac_of 0 data)"
forge hb-other 30
wait_for "30 heartbeats of another cluster" 5 wrong_control_is 30 ||
	fail "another cluster's heartbeats not counted as that"
control_bad_mac_is 30 || fail "another cluster's heartbeats counted as bad MAC: $(bad_mac_of 0 control)"
step "ok: hashlib's tags verify on both planes; 30 wrong tags each are bad MAC; another cluster's heartbeats are that"
base_data=$(bad_mac_of 0 data)
base_control=$(bad_mac_of 0 control)

# ---- member 2 with another key: cut off, counted, logged ----
make_key "$DIR/other.key"
sed "s#^key_file = .*#key_file = $DIR/other.key#" "$CONF" >"$DIR/other.conf"
stop_replica 2
applied_before=$(applied_of 0)
CONF=$DIR/other.conf start_replica 2
wait_for "members 0 and 1 to count member 2's bad MACs" 15 member2_cut_off ||
	fail "bad MAC counts: 0: $(bad_mac_of 0 data)/$(bad_mac_of 0 control), 1: $(bad_mac_of 1 data)/$(bad_mac_of 1 control)"
for k in 6 7 8; do cli put "auth$k" "value$k" || fail "put auth$k with member 2 cut off"; done
[[ $(role_of 2) == recovering ]] || fail "member 2 with another key is $(role_of 2), expected recovering"
step "ok: member 2 with another key: 0 drops $(bad_mac_of 0 data) frames and $(bad_mac_of 0 control) heartbeats as bad MAC; writes go on"
wait_for "the data-plane log line" 15 grep -q " event=bad_mac plane=data count=[0-9]* from=" "$DIR/r0.log" ||
	fail "no data-plane bad MAC line in member 0's log"
wait_for "the control log line" 15 grep -q " event=bad_mac plane=control count=[0-9]* from=127.0.0.1:" "$DIR/r0.log" ||
	fail "no control bad MAC line in member 0's log"
step "ok: $(grep -o " event=bad_mac plane=data .* mono=" "$DIR/r0.log" | head -1)"

# ---- member 2 with the right key: recovers and catches up ----
stop_replica 2
start_replica 2
target=$(applied_of 0)
[[ $target -gt $applied_before ]] || fail "applied index did not move: $applied_before -> $target"
wait_for "member 2 to recover and catch up to $target" 30 caught_up "$target" ||
	fail "member 2: role $(role_of 2), applied $(applied_of 2), want $target"
[[ $(cli get auth7) == value7 ]] || fail "get auth7"
step "ok: member 2 with the right key recovered: applied $(applied_of 2)"

# ---- bad key files stop bypaxd before its EAL, with the doc's message ----
chmod 644 "$DIR/other.key"
CONF=$DIR/other.conf replica_cmd 1
timeout 20 "${REPLICA_CMD[@]}" >"$DIR/open.out" 2>&1
rc=$?
msg="bypaxd: $DIR/other.conf: [cluster] key_file: $DIR/other.key: cluster key: readable or writable by others (mode 0644); chmod 600 it"
{ [[ $rc -eq 2 ]] && grep -qxF -- "$msg" "$DIR/open.out"; } ||
	fail "world-readable key: exit $rc, expected 2 and '$msg': $(cat "$DIR/open.out")"
grep -q "^EAL" "$DIR/open.out" && fail "bypaxd started its EAL with a bad key"
doc_states "$DOCS/config.md" "$msg"
head -c 31 /dev/urandom >"$DIR/other.key"
chmod 600 "$DIR/other.key"
timeout 20 "${REPLICA_CMD[@]}" >"$DIR/short.out" 2>&1
rc=$?
msg="bypaxd: $DIR/other.conf: [cluster] key_file: $DIR/other.key: cluster key: 31 bytes, expected exactly 32; make one with: head -c 32 /dev/urandom > FILE; chmod 600 FILE"
{ [[ $rc -eq 2 ]] && grep -qxF -- "$msg" "$DIR/short.out"; } ||
	fail "short key: exit $rc, expected 2 and '$msg': $(cat "$DIR/short.out")"
doc_states "$DOCS/config.md" "$msg"
step "ok: a key others can read, and a 31-byte one: exit 2 with the messages of docs/config.md"
echo "memif-auth: OK"
