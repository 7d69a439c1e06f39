/* The cluster configuration file (INI, read by config/ini.c: no DPDK),
 * shared by bypaxd, bypaxctl and the client. See docs/config.md.
 *
 *   [cluster]
 *   id = 1                 ; required, 1..4294967295
 *   window = 64            ; slots in flight
 *   log_slots = 1024       ; power of two >= 2 * window
 *   batch_bytes = 1392     ; bytes of requests per slot (max)
 *   batch_requests = 64    ; requests per slot
 *   request_queue = 1024   ; requests waiting at the leader
 *   sessions = 4096        ; client sessions remembered (exactly-once)
 *   heartbeat_us = 1000    ; leader commit heartbeats
 *   retransmit_us = 2000   ; phase 1 / phase 2 retransmission
 *   lease_us = 5000        ; leader lease for reads; 0: reads via the log
 *   clock_drift_ppm = 1000 ; bound on clock rate difference between hosts
 *   sm = kv                ; or a path to a state machine .so
 *   initial_members = 0,1,2 ; who votes at first (default: every member)
 *   sm_args = capacity=65536
 *   key_file = /etc/bypax/cluster.key ; optional: authenticate members
 *   durability = memory    ; or wal: a write-ahead log per member
 *   wal_segment_bytes = 67108864   ; durability = wal: segment file size
 *   disk_snapshot_slots = 65536    ; durability = wal: slots between
 *                                  ; snapshots on disk (the log recycled)
 *
 *   [control]
 *   heartbeat_us = 5000    ; failure detector heartbeats
 *   timeout_min_us = 30000
 *   timeout_max_us = 1000000
 *
 *   [member0]              ; one section per replica, ids 0..n-1
 *   mac = 02:00:00:00:00:00
 *   ip = 10.0.0.1
 *   port = 9000
 *   control = 127.0.0.1:7000
 *   metrics = 127.0.0.1:9100 ; optional: /metrics and /health over HTTP
 *   wal_dir = /var/lib/bypax/member0 ; required with durability = wal
 */
#ifndef BYPAX_CONFIG_H
#define BYPAX_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#include "bypax/auth.h"
#include "bypax/consensus.h"
#include "bypax/wire.h"

#ifdef __cplusplus
extern "C" {
#endif

struct bpx_member {
	struct bpx_endpoint data;  /* the dataplane address (DPDK port) */
	uint32_t control_ip;       /* host byte order */
	uint16_t control_port;
	uint32_t metrics_ip;       /* host byte order; docs/metrics.md */
	uint16_t metrics_port;     /* 0: no metrics key, no HTTP server */
	char wal_dir[256];         /* durability = wal: this member's
				      write-ahead log and disk snapshot;
				      empty otherwise */
};

/* [cluster] durability (docs/config.md, "Durability"). */
enum bpx_durability {
	BPX_DURABILITY_MEMORY = 0, /* state in memory; recovery from peers */
	BPX_DURABILITY_WAL = 1,    /* a write-ahead log and snapshots on disk */
};
#define BPX_WAL_SEGMENT_BYTES_DEFAULT (64ull << 20)
#define BPX_WAL_SEGMENT_BYTES_MIN (1ull << 20)
#define BPX_WAL_SEGMENT_BYTES_MAX (1ull << 32)
#define BPX_DISK_SNAPSHOT_SLOTS_DEFAULT 65536ull
#define BPX_DISK_SNAPSHOT_SLOTS_MAX (1ull << 32)

struct bpx_config {
	char path[256];
	uint32_t cluster_id;
	uint8_t member_count;
	struct bpx_member members[PX_REPLICAS_MAX];
	struct px_config px;       /* protocol settings; the caller sets
				      self_id, sm_ops and sm */
	char sm[256];
	char sm_args[256];
	uint64_t fd_heartbeat_ns;
	uint64_t fd_timeout_min_ns;
	uint64_t fd_timeout_max_ns;
	/* [cluster] key_file: empty when none. The key itself is read only
	 * by bypaxd (bpx_config_load_key): clients need none, and may not
	 * be allowed to read it. */
	char key_file[256];
	struct bpx_auth_key key;
	enum bpx_durability durability;
	uint64_t wal_segment_bytes;
	uint64_t disk_snapshot_slots;
};

/* Loads and validates path. Returns 0, or -BPX_ENOENT / -BPX_ECONFIG with
 * a message naming the file, section, key and value in err. */
int bpx_config_load(const char *path, struct bpx_config *cfg, char *err,
		    size_t err_len);

/* Reads cfg->key_file into cfg->key (key_file.c). Returns 0 (also when
 * the config names no key file: cfg->key stays disabled), or the error of
 * bpx_auth_key_read with err naming the config file, the key file and the
 * problem. */
int bpx_config_load_key(struct bpx_config *cfg, char *err, size_t err_len);
/* Where bypaxd puts its admin socket by default and bypaxctl looks for
 * it: $BYPAX_RUN_DIR when set and not empty, else BPX_RUN_DIR_DEFAULT
 * (systemd's RuntimeDirectory=bypax; docs/deploy.md). */
#define BPX_RUN_DIR_DEFAULT "/run/bypax"
const char *bpx_run_dir(void);

/* The default admin socket of member_id of cluster_id:
 * RUN_DIR/bypaxd-<cluster_id>-<member_id>.sock. Returns 0, or -BPX_EINVAL
 * when it does not fit cap (buf then holds as much as fits). */
int bpx_admin_socket_path(uint32_t cluster_id, unsigned member_id, char *buf,
			  size_t cap);

/* "02:00:00:00:00:01" -> mac. Returns 0 or -BPX_EINVAL. */
int bpx_parse_mac(const char *s, uint8_t mac[6]);
/* "10.0.0.1" -> host-order IPv4. Returns 0 or -BPX_EINVAL. */
int bpx_parse_ipv4(const char *s, uint32_t *ip);
/* "127.0.0.1:7000" -> ip and port. Returns 0 or -BPX_EINVAL. */
int bpx_parse_hostport(const char *s, uint32_t *ip, uint16_t *port);

#ifdef __cplusplus
}
#endif
#endif
