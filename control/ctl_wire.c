#include <string.h>

#include "ctl_wire.h"

static void put_be(uint8_t *p, uint64_t v, unsigned bytes)
{
	for (unsigned i = 0; i < bytes; i++)
		p[i] = (uint8_t)(v >> (8 * (bytes - 1 - i)));
}

static uint64_t get_be(const uint8_t *p, unsigned bytes)
{
	uint64_t v = 0;
	for (unsigned i = 0; i < bytes; i++)
		v = (v << 8) | p[i];
	return v;
}

void ctl_hb_encode(uint8_t buf[CTL_HB_BYTES], uint32_t cluster_id,
		   const struct ctl_hb_msg *m)
{
	put_be(buf, CTL_HB_MAGIC, 2);
	buf[2] = CTL_HB_VERSION;
	buf[3] = m->hb.from;
	put_be(buf + 4, cluster_id, 4);
	buf[8] = m->hb.leader_hint;
	buf[9] = m->hb.ready;
	buf[10] = m->role;
	buf[11] = m->hb.preferred;
	put_be(buf + 12, m->hb.alive_mask, 4);
	put_be(buf + 16, m->hb.seq, 8);
	put_be(buf + 24, m->promised, 8);
	put_be(buf + 32, m->commit_index, 8);
	put_be(buf + 40, m->applied_index, 8);
	put_be(buf + 48, m->failover_age_ms, 8);
}

int ctl_hb_cluster(const uint8_t *buf, size_t len, uint32_t *cluster_id)
{
	if (len != CTL_HB_BYTES || get_be(buf, 2) != CTL_HB_MAGIC ||
	    buf[2] != CTL_HB_VERSION)
		return -1;
	*cluster_id = (uint32_t)get_be(buf + 4, 4);
	return 0;
}

int ctl_hb_decode(const uint8_t *buf, size_t len, uint32_t cluster_id,
		  struct ctl_hb_msg *m)
{
	uint32_t theirs;
	if (ctl_hb_cluster(buf, len, &theirs) != 0 || theirs != cluster_id)
		return -1;
	memset(m, 0, sizeof(*m));
	m->hb.from = buf[3];
	m->hb.leader_hint = buf[8];
	m->hb.ready = buf[9];
	m->role = buf[10];
	m->hb.preferred = buf[11];
	m->hb.alive_mask = (uint32_t)get_be(buf + 12, 4);
	m->hb.seq = get_be(buf + 16, 8);
	m->promised = get_be(buf + 24, 8);
	m->commit_index = get_be(buf + 32, 8);
	m->applied_index = get_be(buf + 40, 8);
	m->failover_age_ms = get_be(buf + 48, 8);
	return m->role > 3 ? -1 : 0;
}
