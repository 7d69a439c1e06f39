/* The batch format: a slot's value is a sequence of requests, each
 * u64 client_id, u64 seq, u16 length, then the command (little-endian).
 * An empty value is a no-op. */
#include "internal.h"

void px_put_u16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}

uint16_t px_get_u16(const uint8_t *p)
{
	return (uint16_t)(p[0] | (p[1] << 8));
}

void px_put_u32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

uint32_t px_get_u32(const uint8_t *p)
{
	uint32_t v = 0;
	for (int i = 3; i >= 0; i--)
		v = (v << 8) | p[i];
	return v;
}

void px_put_u64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

uint64_t px_get_u64(const uint8_t *p)
{
	uint64_t v = 0;
	for (int i = 7; i >= 0; i--)
		v = (v << 8) | p[i];
	return v;
}

void px_batch_iter_init(struct px_batch_iter *it, const uint8_t *value,
			uint32_t len)
{
	it->pos = value;
	it->end = value + len;
}

int px_batch_next(struct px_batch_iter *it, struct px_batch_entry *e)
{
	if (it->pos == it->end)
		return 0;
	size_t left = (size_t)(it->end - it->pos);
	if (left < PX_BATCH_ENTRY_HEADER_BYTES)
		return -BPX_EMALFORMED;
	e->client_id = px_get_u64(it->pos);
	e->seq = px_get_u64(it->pos + 8);
	e->len = px_get_u16(it->pos + 16);
	if (e->len > left - PX_BATCH_ENTRY_HEADER_BYTES)
		return -BPX_EMALFORMED;
	e->cmd = it->pos + PX_BATCH_ENTRY_HEADER_BYTES;
	it->pos += PX_BATCH_ENTRY_HEADER_BYTES + e->len;
	return 1;
}

/* Appends p to a batch of len bytes. Returns the new length, or len when
 * it does not fit in cap. */
uint32_t px_batch_append(uint8_t *value, uint32_t len, uint32_t cap,
			 const struct px_pending *p)
{
	uint32_t need = PX_BATCH_ENTRY_HEADER_BYTES + p->len;
	if (need > cap || len > cap - need)
		return len;
	uint8_t *at = value + len;
	px_put_u64(at, p->client_id);
	px_put_u64(at + 8, p->seq);
	px_put_u16(at + 16, (uint16_t)p->len);
	memcpy(at + PX_BATCH_ENTRY_HEADER_BYTES, p->cmd, p->len);
	return len + need;
}
