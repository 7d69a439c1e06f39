#ifndef BYPAX_BYPAXD_H
#define BYPAX_BYPAXD_H

#include <stdbool.h>
#include <stdint.h>

#include "bypax/consensus.h"
#include "bypax/snapfile.h"
#include "wal.h"

struct bypaxd_opts {
	const char *config;
	int id;
	const char *sm;
	int route_port[PX_REPLICAS_MAX]; /* -1: the default port 0 */
	uint16_t client_port;
	int leader;                      /* -1: the control plane decides */
	bool no_control;
	bool bootstrap;
	uint32_t idle_sleep_us;
	uint32_t stats_interval_s;
	const char *admin_socket;
	uint32_t snapshot_mb;
	const char *restore;        /* --restore FILE, or NULL */
	bool restore_other_cluster; /* FILE's cluster id may differ */
};

/* --restore FILE (bypaxd_restore.c): a new cluster from a snapshot file
 * (bypax/snapfile.h; docs/deploy.md, "Disaster recovery"). */
struct bypaxd_restore {
	uint8_t *buf; /* the whole file */
	size_t len;
	struct px_snapfile_info info;
};

struct bpx_config;
struct dp_replica;
/* Reads and checks o->restore whole before anything starts: the frame
 * (px_snapfile_check), the cluster id and member count against cfg, and
 * that no bypaxd of either cluster answers on admin_path or the file's
 * cluster's default admin socket. Returns 0, or -BPX_ECONFIG with err
 * naming the file and what is wrong. */
int bypaxd_restore_load(struct bypaxd_restore *rs, const struct bypaxd_opts *o,
			const struct bpx_config *cfg, const char *admin_path,
			char *err, size_t err_len);
/* Installs the checked snapshot into r (a bootstrap replica that has not
 * run yet) and frees the file. Returns 0, or -BPX_ECONFIG with err naming
 * the file and why the replica refused it. */
int bypaxd_restore_install(struct bypaxd_restore *rs, struct dp_replica *r,
			   const struct bypaxd_opts *o, char *err,
			   size_t err_len);
void bypaxd_restore_free(struct bypaxd_restore *rs);

/* Durable mode (bypaxd_durable.c; docs/deploy.md, "Durable mode"). */
struct dp_snapwriter;
struct bypaxd_durable {
	struct dp_wal *wal;
	struct dp_snapwriter *snapw;
	struct dp_wal_replay info; /* what the replay found */
	bool had_snapshot;
	uint64_t snapshot_index;   /* the disk snapshot's, if any */
};
/* Before the EAL: makes [memberN] wal_dir if missing, and refuses the
 * wrong start kind: an empty directory without o->bootstrap, one with
 * data with it. Returns 0, -BPX_ECONFIG or -BPX_EIO, err saying why. */
int bypaxd_durable_check(const struct bpx_config *cfg,
			 const struct bypaxd_opts *o, char *err, size_t len);
/* Opens [memberN] wal_dir (checked by bypaxd_durable_check), installs its snapshot into r
 * and replays its WAL through px_durable_replay, then hands both to the
 * worker (dp_replica_enable_durable). Returns 0, -BPX_ECONFIG (exit
 * 2: a damaged or foreign log, a log in use) or
 * -BPX_EIO / -BPX_ENOMEM, with err naming the file and, for a damaged
 * record, its byte offset. */
int bypaxd_durable_open(struct bypaxd_durable *du, struct dp_replica *r,
			const struct bpx_config *cfg,
			const struct bypaxd_opts *o, char *err, size_t len);
/* After the worker stopped: the last records synced, files closed. */
void bypaxd_durable_close(struct bypaxd_durable *du);

#endif
