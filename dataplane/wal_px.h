/* A consensus PERSIST record (consensus.h, PX_MSG_PERSIST) as a WAL
 * record (wal.h) and back: the record's type is msg.flags (PX_PERSIST_*),
 * its tag the slot of an ACCEPTED or MEMBERS record (0 for the others:
 * they hold no segment from recycling), and its payload, little-endian:
 *
 *   u64 ballot, u64 slot, u64 commit_index, u64 seq, value_len bytes value
 *
 * Header-only pure C: bypaxd's worker encodes, its start-up decodes, and
 * tests/unit/test_wal.c checks the two against each other. */
#ifndef BYPAX_DP_WAL_PX_H
#define BYPAX_DP_WAL_PX_H

#include <stdint.h>
#include <string.h>

#include "bypax/consensus.h"
#include "bypax/errors.h"

#define DP_WAL_PX_FIXED_BYTES 32u
#define DP_WAL_PX_BYTES_MAX (DP_WAL_PX_FIXED_BYTES + PX_VALUE_BYTES_MAX)

static inline void dp_wal_px_put64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static inline uint64_t dp_wal_px_get64(const uint8_t *p)
{
	uint64_t v = 0;
	for (int i = 0; i < 8; i++)
		v |= (uint64_t)p[i] << (8 * i);
	return v;
}

/* The slot a record holds back from recycling. */
static inline uint64_t dp_wal_px_tag(const struct px_msg *m)
{
	return m->flags == PX_PERSIST_ACCEPTED || m->flags == PX_PERSIST_MEMBERS
		       ? m->slot
		       : 0;
}

/* Writes m's payload into out (DP_WAL_PX_BYTES_MAX bytes). Returns its
 * length, or -BPX_ETOOBIG for a value over PX_VALUE_BYTES_MAX. */
static inline int dp_wal_px_encode(const struct px_msg *m, uint8_t *out)
{
	if (m->value_len > PX_VALUE_BYTES_MAX)
		return -BPX_ETOOBIG;
	dp_wal_px_put64(out, m->ballot);
	dp_wal_px_put64(out + 8, m->slot);
	dp_wal_px_put64(out + 16, m->commit_index);
	dp_wal_px_put64(out + 24, m->seq);
	if (m->value_len > 0)
		memcpy(out + DP_WAL_PX_FIXED_BYTES, m->value, m->value_len);
	return (int)(DP_WAL_PX_FIXED_BYTES + m->value_len);
}

/* The record back as a PERSIST message; m->value points into payload.
 * Returns 0, or -BPX_EMALFORMED (too short, or a value too long). The
 * type (flags) is checked by px_durable_replay. */
static inline int dp_wal_px_decode(uint8_t type, const uint8_t *payload,
				   uint32_t len, struct px_msg *m)
{
	if (len < DP_WAL_PX_FIXED_BYTES || len > DP_WAL_PX_BYTES_MAX)
		return -BPX_EMALFORMED;
	memset(m, 0, sizeof(*m));
	m->type = PX_MSG_PERSIST;
	m->flags = type;
	m->ballot = dp_wal_px_get64(payload);
	m->slot = dp_wal_px_get64(payload + 8);
	m->commit_index = dp_wal_px_get64(payload + 16);
	m->seq = dp_wal_px_get64(payload + 24);
	m->value_len = len - DP_WAL_PX_FIXED_BYTES;
	m->value = m->value_len > 0 ? payload + DP_WAL_PX_FIXED_BYTES : NULL;
	return 0;
}

#endif
