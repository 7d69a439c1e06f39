/* Snapshots on disk for durable mode (docs/deploy.md, "Durable mode"):
 * WAL_DIR/snapshot.bpxf, in the snapshot file format of bypax/snapfile.h
 * (the one `bypaxctl snapshot` writes), replaced atomically.
 *
 * The worker writes the snapshot's head into dp_snapwriter_body and
 * submits; a thread of this module fills in the rest (a state machine's
 * frozen snapshot, sm.h's snapshot_write_frozen: dp_snapwriter_submit_fill)
 * or takes the body as it is (px_snapshot_save's, for a state machine
 * without incremental snapshots), then frames, writes, fsyncs and renames
 * the file, so the worker neither serializes the store nor waits on the
 * disk. The worker polls for the result and, once the file is durable,
 * recycles the WAL behind it. Plain C, POSIX and pthread: no DPDK
 * (tests/unit/test_wal.c).
 *
 * One buffer, one snapshot in flight: submit only in DP_SNAPW_IDLE. */
#ifndef BYPAX_DP_DISK_SNAPSHOT_H
#define BYPAX_DP_DISK_SNAPSHOT_H

#include <stddef.h>
#include <stdint.h>

#include "bypax/snapfile.h"

#define DP_DISK_SNAPSHOT_FILE "snapshot.bpxf"

enum dp_snapw_state {
	DP_SNAPW_IDLE,   /* the body buffer is the worker's */
	DP_SNAPW_BUSY,   /* the thread writes it */
	DP_SNAPW_DONE,   /* durable; dp_snapwriter_ack to reuse */
	DP_SNAPW_FAILED, /* dp_snapwriter_error says why; ack to retry */
};

struct dp_snapwriter;

/* Allocates a buffer for a body of body_cap bytes and starts the thread.
 * Returns 0, -BPX_ENOMEM or -BPX_EIO (no thread), err saying which. */
int dp_snapwriter_start(const char *dir, size_t body_cap,
			struct dp_snapwriter **out, char *err, size_t err_len);
/* Waits for a write in flight, then stops the thread and frees. */
void dp_snapwriter_stop(struct dp_snapwriter *w);

/* Where px_snapshot_save writes (cap bytes), while DP_SNAPW_IDLE. */
uint8_t *dp_snapwriter_body(struct dp_snapwriter *w, size_t *cap);
/* Hands body_len bytes of body to the thread (IDLE -> BUSY; asserted).
 * Never blocks. Returns 0, or -BPX_EMALFORMED for a body that is not a
 * snapshot (nothing submitted). */
int dp_snapwriter_submit(struct dp_snapwriter *w, size_t body_len,
			 uint32_t cluster_id, uint32_t member_count);
/* Writes what the body still lacks, on the writer's thread: fill_len bytes
 * into buf (cap bytes), returning how many it wrote or a negative error
 * (sm.h's snapshot_write_frozen has this shape; ctx is its sm). */
typedef int64_t (*dp_snapwriter_fill_fn)(void *ctx, uint8_t *buf, size_t cap);
/* Like submit, for a body of head_len bytes written so far: the thread
 * calls fill(ctx) for the fill_len bytes after them first. A fill that
 * fails or writes another length makes the snapshot FAILED, the error
 * naming both lengths. Returns 0 or -BPX_EMALFORMED (the head is not a
 * snapshot's); the caller keeps ctx valid until the state leaves BUSY. */
int dp_snapwriter_submit_fill(struct dp_snapwriter *w, size_t head_len,
			      dp_snapwriter_fill_fn fill, void *ctx,
			      size_t fill_len, uint32_t cluster_id,
			      uint32_t member_count);
/* The same, written by the caller's thread, now (IDLE; asserted): for a
 * snapshot that must be on disk before anything else is. Returns 0,
 * -BPX_EMALFORMED, or -BPX_EIO (dp_snapwriter_error says why). */
int dp_snapwriter_write_now(struct dp_snapwriter *w, size_t body_len,
			    uint32_t cluster_id, uint32_t member_count);
/* The state now; for DONE and FAILED, *index is the snapshot's applied
 * index. Never blocks. */
enum dp_snapw_state dp_snapwriter_state(struct dp_snapwriter *w,
					uint64_t *index);
/* FAILED, or write_now's -BPX_EIO: the step and file that failed, with the errno text. */
const char *dp_snapwriter_error(const struct dp_snapwriter *w);
/* DONE or FAILED -> IDLE. */
void dp_snapwriter_ack(struct dp_snapwriter *w);

/* Reads DIR/snapshot.bpxf whole and checks it (px_snapfile_check) and
 * that it is this cluster's. Returns 0 with *buf (malloc'd: free it) and
 * *info, -BPX_ENOENT when there is no file, -BPX_EIO, or -BPX_EMALFORMED
 * with err naming the file and what is wrong. */
int dp_disk_snapshot_load(const char *dir, uint32_t cluster_id,
			  uint32_t member_count, uint8_t **buf, size_t *len,
			  struct px_snapfile_info *info, char *err,
			  size_t err_len);

#endif
