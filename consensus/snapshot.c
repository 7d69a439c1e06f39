/* Snapshots of the replicated state: applied index, membership history,
 * client sessions and the state machine, and the sender's crash vector.
 * Format (little-endian): u32 magic "BPXS", u32 version, u64
 * applied_index, u8 history count, per change u64 effective slot and u8
 * member mask, u8 replica count, per replica the u16 incarnation the
 * sender knows, sessions (session.c), u64 sm_len, sm bytes. The crash
 * vector is not replicated state (replicas know different amounts), but
 * whoever installs the state learns at least what its sender knew: the
 * knowledge of a recovery travels with the values chosen after it
 * (recovery.c). */
#include "internal.h"

#define SNAPSHOT_MAGIC 0x53585042u /* "BPXS" */
#define SNAPSHOT_VERSION 3u
#define SNAPSHOT_HEADER 16u
#define HISTORY_ENTRY_BYTES 9u

static size_t history_bytes(uint8_t count)
{
	return 1u + (size_t)count * HISTORY_ENTRY_BYTES;
}

static size_t cv_bytes(const struct px_replica *r)
{
	return 1u + 2u * (size_t)r->cfg.replica_count;
}

static size_t head_size(const struct px_replica *r);

size_t px_snapshot_size(const struct px_replica *r)
{
	return head_size(r) + r->cfg.sm_ops->snapshot_size(r->cfg.sm);
}

/* Everything before the state machine's bytes, whose u64 length is left
 * to the caller. Returns where that length goes. */
static size_t save_head(const struct px_replica *r, uint8_t *buf)
{
	px_put_u32(buf, SNAPSHOT_MAGIC);
	px_put_u32(buf + 4, SNAPSHOT_VERSION);
	px_put_u64(buf + 8, r->applied_index);
	size_t off = SNAPSHOT_HEADER;
	buf[off++] = r->history_count;
	for (uint8_t i = 0; i < r->history_count; i++) {
		px_put_u64(buf + off, r->history[i].effective_slot);
		buf[off + 8] = r->history[i].mask;
		off += HISTORY_ENTRY_BYTES;
	}
	buf[off++] = r->cfg.replica_count;
	for (uint8_t i = 0; i < r->cfg.replica_count; i++, off += 2)
		px_put_u16(buf + off, r->incarnation[i]);
	off += px_session_save(&r->sessions, buf + off);
	return off;
}

static size_t head_size(const struct px_replica *r)
{
	return SNAPSHOT_HEADER + history_bytes(r->history_count) + cv_bytes(r) +
	       px_session_snapshot_size(&r->sessions) + 8;
}

int64_t px_snapshot_save(const struct px_replica *r, uint8_t *buf, size_t cap)
{
	if (cap < px_snapshot_size(r))
		return -BPX_ETOOBIG;
	size_t off = save_head(r, buf);
	int64_t sm_len = r->cfg.sm_ops->snapshot(r->cfg.sm, buf + off + 8,
						 cap - off - 8);
	if (sm_len < 0)
		return sm_len;
	px_put_u64(buf + off, (uint64_t)sm_len);
	return (int64_t)(off + 8 + (size_t)sm_len);
}

int64_t px_snapshot_save_head(const struct px_replica *r, uint8_t *buf,
			      size_t cap, uint64_t sm_len)
{
	size_t head = head_size(r);
	if (cap < head || cap - head < sm_len)
		return -BPX_ETOOBIG;
	size_t off = save_head(r, buf);
	PX_ASSERT(off + 8 == head);
	px_put_u64(buf + off, sm_len);
	return (int64_t)head;
}

/* Everything is validated before anything changes: the sessions part is
 * parsed dry, the state machine restores all or nothing, and only then are
 * the sessions loaded. */
static int parse_history(const struct px_replica *r, const uint8_t *p,
			 size_t len, struct px_config_change *h, uint8_t *count)
{
	if (len < 1 || p[0] < 1 || p[0] > PX_CONFIG_HISTORY_MAX ||
	    len < history_bytes(p[0]))
		return -BPX_EMALFORMED;
	*count = p[0];
	for (uint8_t i = 0; i < *count; i++) {
		const uint8_t *e = p + 1 + (size_t)i * HISTORY_ENTRY_BYTES;
		h[i].effective_slot = px_get_u64(e);
		h[i].mask = e[8];
		if (h[i].mask == 0 || (h[i].mask & ~px_all_replicas(r)) ||
		    (i > 0 && h[i].effective_slot < h[i - 1].effective_slot))
			return -BPX_EMALFORMED;
	}
	return 0;
}

/* The sender's crash vector, after the history: returns its length, or 0
 * if it is malformed. */
static size_t parse_cv(const struct px_replica *r, const uint8_t *p,
		       size_t len, uint16_t *inc)
{
	if (len < cv_bytes(r) || p[0] != r->cfg.replica_count)
		return 0;
	for (uint8_t i = 0; i < r->cfg.replica_count; i++)
		inc[i] = px_get_u16(p + 1 + 2 * (size_t)i);
	return cv_bytes(r);
}

/* The parts before the sessions: history and crash vector. Returns the
 * bytes they take, or 0 if malformed. */
static size_t parse_head(const struct px_replica *r, const uint8_t *buf,
			 size_t len, struct px_config_change *history,
			 uint8_t *history_count, uint16_t *inc)
{
	if (parse_history(r, buf + SNAPSHOT_HEADER, len - SNAPSHOT_HEADER,
			  history, history_count) != 0)
		return 0;
	size_t off = SNAPSHOT_HEADER + history_bytes(*history_count);
	size_t n = parse_cv(r, buf + off, len - off, inc);
	return n == 0 ? 0 : off + n;
}

static int install_parts(struct px_replica *r, const uint8_t *buf, size_t len,
			 const struct px_config_change *history,
			 uint8_t history_count, size_t skip)
{
	int err;
	const uint8_t *sess = buf + skip;
	size_t left = len - skip;
	size_t sessions_len = 0;
	err = px_session_validate(&r->sessions, sess, left, &sessions_len);
	if (err != 0)
		return err;
	left -= sessions_len;
	if (left < 8 || px_get_u64(sess + sessions_len) != left - 8)
		return -BPX_EMALFORMED;
	err = r->cfg.sm_ops->restore(r->cfg.sm, sess + sessions_len + 8,
				     left - 8);
	if (err != 0)
		return err;
	err = px_session_load(&r->sessions, sess, sessions_len, &sessions_len);
	if (err != 0)
		return err;
	memcpy(r->history, history, sizeof(*history) * history_count);
	r->history_count = history_count;
	r->config_proposed = false;
	return 0;
}

int px_snapshot_peek(const uint8_t *buf, size_t len, uint32_t *version,
		     uint64_t *applied_index)
{
	PX_ASSERT(version != NULL && applied_index != NULL);
	*version = 0;
	*applied_index = 0;
	if (buf == NULL || len < SNAPSHOT_HEADER ||
	    px_get_u32(buf) != SNAPSHOT_MAGIC)
		return -BPX_EMALFORMED;
	*version = px_get_u32(buf + 4);
	if (*version != SNAPSHOT_VERSION)
		return -BPX_EVERSION;
	*applied_index = px_get_u64(buf + 8);
	return 0;
}

int px_snapshot_install(struct px_replica *r, uint64_t now_ns,
			const uint8_t *buf, size_t len, struct px_outbox *out)
{
	px_begin_call(r);
	px_persist_begin(r, now_ns, out);
	uint32_t version;
	uint64_t index;
	/* Another format version is refused as malformed here; for a file,
	 * px_snapfile_check names it before anything is installed. */
	if (px_snapshot_peek(buf, len, &version, &index) != 0)
		return -BPX_EMALFORMED;
	struct px_config_change history[PX_CONFIG_HISTORY_MAX];
	uint8_t history_count;
	uint16_t inc[PX_REPLICAS_MAX];
	size_t skip = parse_head(r, buf, len, history, &history_count, inc);
	if (skip == 0)
		return -BPX_EMALFORMED;
	/* What the sender knew of incarnations, even from a snapshot older
	 * than our state. */
	for (uint8_t i = 0; i < r->cfg.replica_count; i++)
		px_cv_learn(r, i, inc[i]);
	px_adopt_incarnation_if_due(r, now_ns, out);
	if (index <= r->applied_index) {
		r->recovery_have_snapshot = true;
		return 0; /* we already hold that much */
	}
	int err = install_parts(r, buf, len, history, history_count, skip);
	if (err != 0)
		return err; /* refused: nothing changed, role included */
	r->recovery_have_snapshot = true;
	if (r->role == PX_ROLE_CANDIDATE || r->role == PX_ROLE_LEADER)
		px_become_follower(r, now_ns, out);
	/* A fencing round in progress covers slots from the old applied
	 * index, which acceptors past it cannot report: fence again from
	 * what this snapshot covers (recovery.c, next tick). */
	if (r->role == PX_ROLE_RECOVERING)
		r->p1.ballot = 0;
	r->stats.snapshots_installed++;
	/* Slots below index are covered; accepted slots above it are kept,
	 * they are still this acceptor's votes. */
	px_log_reset_from(r, index);
	r->applied_index = index;
	if (r->commit_index < index)
		r->commit_index = index;
	px_advance_commit(r);
	return 0;
}
