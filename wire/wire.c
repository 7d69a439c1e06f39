/* The wire codec: bypax messages and their Ethernet/IPv4/UDP framing, on
 * plain byte buffers (no DPDK), so the client and the fuzzer share it. */
#include <string.h>

#include "bypax/wire.h"

/* Optional u64 fields, in this order on the wire. Each type carries a
 * fixed set, so a message's length is fully determined by its type and
 * value length, and checked exactly. */
enum {
	F_BALLOT = 1u << 0,
	F_SLOT = 1u << 1,
	F_SLOT_END = 1u << 2,
	F_ACCEPTED_BALLOT = 1u << 3,
	F_COMMIT = 1u << 4,
	F_APPLIED = 1u << 5,
	F_LOG_START = 1u << 6,
	F_CLIENT = 1u << 7,
	F_SEQ = 1u << 8,
	F_CV_LO = 1u << 9,
	F_CV_HI = 1u << 10,
	F_VALUE = 1u << 15, /* the type may carry a value */
};

static const uint16_t type_fields[BPX_WIRE_TYPE_MAX + 1] = {
	[PX_MSG_REQUEST] = F_CLIENT | F_SEQ | F_VALUE,
	[PX_MSG_REPLY] = F_CLIENT | F_SEQ | F_VALUE,
	[PX_MSG_PREPARE] = F_BALLOT | F_SLOT | F_SEQ,
	[PX_MSG_PROMISE] = F_BALLOT | F_SLOT | F_SLOT_END | F_ACCEPTED_BALLOT |
			   F_LOG_START | F_SEQ | F_CV_LO | F_CV_HI | F_VALUE,
	[PX_MSG_ACCEPT] = F_BALLOT | F_SLOT | F_COMMIT | F_CV_LO | F_CV_HI |
			  F_VALUE,
	[PX_MSG_ACCEPTED] = F_BALLOT | F_SLOT | F_COMMIT | F_APPLIED |
			    F_LOG_START | F_CV_LO | F_CV_HI,
	[PX_MSG_NACK] = F_BALLOT,
	[PX_MSG_COMMIT] = F_BALLOT | F_COMMIT | F_SEQ | F_CV_LO | F_CV_HI,
	[PX_MSG_STATUS] = F_BALLOT | F_COMMIT | F_APPLIED | F_LOG_START | F_SEQ,
	[PX_MSG_CHOSEN] = F_BALLOT | F_SLOT | F_COMMIT | F_CV_LO | F_CV_HI |
			  F_VALUE,
	[PX_MSG_SNAPSHOT_REQ] = 0,
	/* PX_MSG_SNAPSHOT is a local effect, not a wire message. */
	[BPX_WIRE_SNAPSHOT_CHUNK] = F_SLOT | F_SLOT_END | F_SEQ | F_VALUE,
};

const char *bpx_wire_drop_name(enum bpx_wire_drop reason)
{
	static const char *const names[BPX_WIRE_DROP_COUNT] = {
#define BPX_WIRE_DROP_NAME(name, text) text,
		BPX_WIRE_DROP_LIST(BPX_WIRE_DROP_NAME)
#undef BPX_WIRE_DROP_NAME
	};
	return (unsigned)reason < BPX_WIRE_DROP_COUNT ? names[reason]
						      : "unknown";
}

static void put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static uint16_t get16(const uint8_t *p)
{
	return (uint16_t)((p[0] << 8) | p[1]);
}

static void put32(uint8_t *p, uint32_t v)
{
	put16(p, (uint16_t)(v >> 16));
	put16(p + 2, (uint16_t)v);
}

static uint32_t get32(const uint8_t *p)
{
	return ((uint32_t)get16(p) << 16) | get16(p + 2);
}

static void put64(uint8_t *p, uint64_t v)
{
	put32(p, (uint32_t)(v >> 32));
	put32(p + 4, (uint32_t)v);
}

static uint64_t get64(const uint8_t *p)
{
	return ((uint64_t)get32(p) << 32) | get32(p + 4);
}

/* The outbox-only types have no wire form: PX_MSG_SNAPSHOT is refused by
 * name, PX_MSG_PERSIST (a record for the caller's disk) by lying above
 * every wire type. */
_Static_assert(PX_MSG_PERSIST > BPX_WIRE_TYPE_MAX,
	       "a PERSIST record must never have a wire form");

static uint16_t fields_of(uint8_t type)
{
	if (type < PX_MSG_REQUEST || type > BPX_WIRE_TYPE_MAX ||
	    type == PX_MSG_SNAPSHOT)
		return 0xffffu; /* no wire form */
	return type_fields[type];
}

static unsigned field_count(uint16_t fields)
{
	return (unsigned)__builtin_popcount(fields & 0x7ffu);
}

/* Every flag a message may carry (consensus.h); any other bit is a
 * field out of range. Which flags make sense together is the replica's
 * check (px_on_request), where a bad combination is a counted drop. */
#define WIRE_FLAGS_KNOWN (PX_FLAG_RECOVERY | PX_FLAG_READ | PX_FLAG_OPEN)

size_t bpx_wire_msg_size(const struct px_msg *m)
{
	uint16_t f = fields_of(m->type);
	if (f == 0xffffu)
		return 0;
	return BPX_WIRE_HEADER_BYTES + 8u * field_count(f) + m->value_len;
}

/* The u64 fields of a message, in wire order. */
static uint64_t *field_ptr(struct px_msg *m, unsigned bit)
{
	uint64_t *const fields[] = {
		&m->ballot,	  &m->slot,	     &m->slot_end,
		&m->accepted_ballot, &m->commit_index, &m->applied_index,
		&m->log_start,	  &m->client_id,     &m->seq,
		&m->crash_vector[0], &m->crash_vector[1],
	};
	return fields[bit];
}

int bpx_wire_encode(uint8_t *buf, size_t cap, uint32_t cluster_id,
		    const struct px_msg *m)
{
	uint16_t f = fields_of(m->type);
	if (f == 0xffffu || (m->value_len > 0 && !(f & F_VALUE)) ||
	    m->value_len > PX_VALUE_BYTES_MAX)
		return -BPX_EINVAL;
	/* What decode would drop is refused here, not sent to be lost. */
	if ((m->flags & ~WIRE_FLAGS_KNOWN) != 0 ||
	    m->status > PX_REPLY_STATUS_MAX)
		return -BPX_EINVAL;
	size_t len = bpx_wire_msg_size(m);
	if (cap < len)
		return -BPX_ETOOBIG;
	put16(buf, BPX_WIRE_MAGIC);
	buf[2] = BPX_WIRE_VERSION;
	buf[3] = m->type;
	put32(buf + 4, cluster_id);
	buf[8] = m->from;
	buf[9] = m->to;
	buf[10] = m->flags;
	buf[11] = m->status;
	buf[12] = m->leader_hint;
	buf[13] = 0;
	put16(buf + 14, (uint16_t)m->value_len);
	uint8_t *p = buf + BPX_WIRE_HEADER_BYTES;
	struct px_msg copy = *m;
	for (unsigned bit = 0; bit < BPX_WIRE_FIELD_KINDS; bit++) {
		if (f & (1u << bit)) {
			put64(p, *field_ptr(&copy, bit));
			p += 8;
		}
	}
	if (m->value_len > 0)
		memcpy(p, m->value, m->value_len);
	return (int)len;
}

int bpx_wire_encode_header(uint8_t *buf, size_t cap, uint32_t cluster_id,
			   const struct px_msg *m)
{
	/* Encode with no value, then restore the value length the header
	 * announces: the value follows in another segment. */
	struct px_msg head = *m;
	head.value_len = 0;
	head.value = NULL;
	int n = bpx_wire_encode(buf, cap, cluster_id, &head);
	if (n < 0)
		return m->value_len > PX_VALUE_BYTES_MAX ? -BPX_EINVAL : n;
	uint16_t f = fields_of(m->type);
	if (m->value_len > PX_VALUE_BYTES_MAX ||
	    (m->value_len > 0 && !(f & F_VALUE)))
		return -BPX_EINVAL;
	put16(buf + 14, (uint16_t)m->value_len);
	return n;
}

static bool is_multi(uint8_t type)
{
	return type == BPX_WIRE_MULTI_REQUEST || type == BPX_WIRE_MULTI_REPLY;
}

/* The checks every message shares, in docs/wire.md's order; multi: the
 * type must be one of the packed ones, else one of a single message. */
static enum bpx_wire_drop check_header_of(const uint8_t *buf, size_t len,
					  uint32_t cluster_id, bool multi)
{
	if (len < BPX_WIRE_HEADER_BYTES)
		return BPX_WIRE_TRUNCATED;
	if (get16(buf) != BPX_WIRE_MAGIC)
		return BPX_WIRE_BAD_MAGIC;
	if (buf[2] != BPX_WIRE_VERSION)
		return BPX_WIRE_BAD_VERSION;
	if (multi ? !is_multi(buf[3]) : fields_of(buf[3]) == 0xffffu)
		return BPX_WIRE_BAD_TYPE;
	if (get32(buf + 4) != cluster_id)
		return BPX_WIRE_WRONG_CLUSTER;
	if (buf[13] != 0 || buf[10] & ~WIRE_FLAGS_KNOWN ||
	    buf[11] > PX_REPLY_STATUS_MAX)
		return BPX_WIRE_BAD_FIELD;
	return BPX_WIRE_OK;
}

static enum bpx_wire_drop check_header(const uint8_t *buf, size_t len,
				       uint32_t cluster_id)
{
	return check_header_of(buf, len, cluster_id, false);
}

uint8_t bpx_wire_type_of(const uint8_t *buf, size_t len)
{
	return len < BPX_WIRE_HEADER_BYTES ? 0 : buf[3];
}

uint32_t bpx_wire_cluster_of(const uint8_t *buf, size_t len)
{
	return len < BPX_WIRE_HEADER_BYTES ? 0 : get32(buf + 4);
}

enum bpx_wire_drop bpx_wire_decode(const uint8_t *buf, size_t len,
				   uint32_t cluster_id, struct px_msg *m)
{
	enum bpx_wire_drop d = check_header(buf, len, cluster_id);
	if (d != BPX_WIRE_OK)
		return d;
	uint16_t f = fields_of(buf[3]);
	uint16_t value_len = get16(buf + 14);
	if (value_len > PX_VALUE_BYTES_MAX || (value_len > 0 && !(f & F_VALUE)))
		return BPX_WIRE_BAD_LENGTH;
	if (len != BPX_WIRE_HEADER_BYTES + 8u * field_count(f) + value_len)
		return BPX_WIRE_BAD_LENGTH;
	memset(m, 0, sizeof(*m));
	m->type = buf[3];
	m->from = buf[8];
	m->to = buf[9];
	m->flags = buf[10];
	m->status = buf[11];
	m->leader_hint = buf[12];
	const uint8_t *p = buf + BPX_WIRE_HEADER_BYTES;
	for (unsigned bit = 0; bit < BPX_WIRE_FIELD_KINDS; bit++) {
		if (f & (1u << bit)) {
			*field_ptr(m, bit) = get64(p);
			p += 8;
		}
	}
	m->value_len = value_len;
	m->value = value_len > 0 ? p : NULL;
	return BPX_WIRE_OK;
}

/* ---- Packed requests and replies ---- */

int bpx_wire_multi_begin(struct bpx_wire_packer *w, uint8_t *buf, size_t cap,
			 uint32_t cluster_id, uint8_t type, uint8_t from,
			 uint8_t to, uint8_t leader_hint)
{
	if (!is_multi(type))
		return -BPX_EINVAL;
	if (cap > BPX_WIRE_MULTI_PAYLOAD_MAX)
		cap = BPX_WIRE_MULTI_PAYLOAD_MAX;
	if (cap < BPX_WIRE_MULTI_HEAD_BYTES + BPX_WIRE_MULTI_ENTRY_BYTES)
		return -BPX_ETOOBIG;
	put16(buf, BPX_WIRE_MAGIC);
	buf[2] = BPX_WIRE_VERSION;
	buf[3] = type;
	put32(buf + 4, cluster_id);
	buf[8] = from;
	buf[9] = to;
	memset(buf + 10, 0, 6); /* flags, status, hint, reserved, length */
	buf[12] = leader_hint;
	buf[16] = 0; /* count, at finish */
	buf[17] = 0; /* reserved */
	*w = (struct bpx_wire_packer){ .buf = buf, .cap = cap,
				       .len = BPX_WIRE_MULTI_HEAD_BYTES,
				       .type = type };
	return 0;
}

bool bpx_wire_multi_fits(const struct bpx_wire_packer *w, uint32_t value_len)
{
	return w->count < BPX_WIRE_MULTI_MAX &&
	       value_len <= PX_VALUE_BYTES_MAX &&
	       w->len + BPX_WIRE_MULTI_ENTRY_BYTES + value_len <= w->cap;
}

/* What an entry of a packed type may carry: a request's flags (READ,
 * OPEN) and no status; a reply's status and no flag. */
static bool entry_fields_ok(uint8_t type, uint8_t flags, uint8_t status)
{
	if (type == BPX_WIRE_MULTI_REQUEST)
		return (flags & ~(PX_FLAG_READ | PX_FLAG_OPEN)) == 0 &&
		       status == 0;
	return flags == 0 && status <= PX_REPLY_STATUS_MAX;
}

int bpx_wire_multi_add(struct bpx_wire_packer *w, const struct px_msg *m)
{
	if (m->value_len > PX_VALUE_BYTES_MAX ||
	    !entry_fields_ok(w->type, m->flags, m->status))
		return -BPX_EINVAL;
	if (!bpx_wire_multi_fits(w, m->value_len))
		return -BPX_ETOOBIG;
	uint8_t *p = w->buf + w->len;
	put64(p, m->client_id);
	put64(p + 8, m->seq);
	p[16] = m->flags;
	p[17] = m->status;
	put16(p + 18, (uint16_t)m->value_len);
	if (m->value_len > 0)
		memcpy(p + BPX_WIRE_MULTI_ENTRY_BYTES, m->value, m->value_len);
	w->len += BPX_WIRE_MULTI_ENTRY_BYTES + m->value_len;
	w->count++;
	return 0;
}

size_t bpx_wire_multi_finish(struct bpx_wire_packer *w)
{
	w->buf[16] = w->count;
	put16(w->buf + 14, (uint16_t)(w->len - BPX_WIRE_HEADER_BYTES));
	return w->len;
}

/* Walks the entries once, checking each: the decoder reads none until
 * all are known good. */
static enum bpx_wire_drop check_entries(uint8_t type, const uint8_t *p,
					const uint8_t *end, unsigned count)
{
	for (unsigned i = 0; i < count; i++) {
		if ((size_t)(end - p) < BPX_WIRE_MULTI_ENTRY_BYTES)
			return BPX_WIRE_BAD_LENGTH;
		if (!entry_fields_ok(type, p[16], p[17]))
			return BPX_WIRE_BAD_FIELD;
		uint16_t value_len = get16(p + 18);
		p += BPX_WIRE_MULTI_ENTRY_BYTES;
		if (value_len > PX_VALUE_BYTES_MAX ||
		    value_len > (size_t)(end - p))
			return BPX_WIRE_BAD_LENGTH;
		p += value_len;
	}
	return p == end ? BPX_WIRE_OK : BPX_WIRE_BAD_LENGTH;
}

enum bpx_wire_drop bpx_wire_multi_decode(const uint8_t *buf, size_t len,
					 uint32_t cluster_id,
					 struct bpx_wire_unpacker *u)
{
	enum bpx_wire_drop d = check_header_of(buf, len, cluster_id, true);
	if (d != BPX_WIRE_OK)
		return d;
	/* The header's flags and status belong to the entries. */
	if (buf[10] != 0 || buf[11] != 0)
		return BPX_WIRE_BAD_FIELD;
	uint16_t body = get16(buf + 14);
	if (len > BPX_WIRE_MULTI_PAYLOAD_MAX ||
	    len != BPX_WIRE_HEADER_BYTES + (size_t)body ||
	    len < BPX_WIRE_MULTI_HEAD_BYTES)
		return BPX_WIRE_BAD_LENGTH;
	uint8_t count = buf[16];
	if (count == 0 || count > BPX_WIRE_MULTI_MAX || buf[17] != 0)
		return BPX_WIRE_BAD_FIELD;
	d = check_entries(buf[3], buf + BPX_WIRE_MULTI_HEAD_BYTES, buf + len,
			  count);
	if (d != BPX_WIRE_OK)
		return d;
	*u = (struct bpx_wire_unpacker){ .pos = buf + BPX_WIRE_MULTI_HEAD_BYTES,
					 .left = count, .count = count,
					 .type = buf[3], .from = buf[8],
					 .to = buf[9], .leader_hint = buf[12] };
	return BPX_WIRE_OK;
}

bool bpx_wire_multi_next(struct bpx_wire_unpacker *u, struct px_msg *m)
{
	if (u->left == 0)
		return false;
	const uint8_t *p = u->pos;
	uint16_t value_len = get16(p + 18);
	*m = (struct px_msg){
		.type = u->type == BPX_WIRE_MULTI_REQUEST ? PX_MSG_REQUEST
							  : PX_MSG_REPLY,
		.from = u->from,
		.to = u->to,
		.leader_hint = u->leader_hint,
		.client_id = get64(p),
		.seq = get64(p + 8),
		.flags = p[16],
		.status = p[17],
		.value_len = value_len,
		.value = value_len > 0 ? p + BPX_WIRE_MULTI_ENTRY_BYTES : NULL,
	};
	u->pos = p + BPX_WIRE_MULTI_ENTRY_BYTES + value_len;
	u->left--;
	return true;
}

/* ---- Ethernet / IPv4 / UDP ---- */

/* RFC 1071 section 2: the ones' complement sum does not depend on byte
 * order, and may be taken over wider words with the carries folded back
 * in. So add the bytes as host-order 32-bit words (2^16 = 1 modulo
 * 0xffff), fold, and swap the result on a little-endian host, instead of
 * building each big-endian 16-bit word from a byte pair. */
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
#define HOST_SUM_TO_BE(x) (x)
#else
#define HOST_SUM_TO_BE(x) ((uint16_t)(((x) >> 8) | ((x) << 8)))
#endif

static uint16_t fold16(uint64_t sum)
{
	while (sum >> 16)
		sum = (sum & 0xffffu) + (sum >> 16);
	return (uint16_t)sum;
}

static uint64_t sum_host_words(const uint8_t *p, size_t len)
{
	uint64_t sum = 0;
	for (; len >= 4; p += 4, len -= 4) {
		uint32_t w;
		memcpy(&w, p, 4);
		sum += w;
	}
	/* The last 1..3 bytes, zero-padded to a word in place. */
	uint8_t tail[4] = { 0, 0, 0, 0 };
	memcpy(tail, p, len);
	uint32_t w;
	memcpy(&w, tail, 4);
	return sum + w;
}

/* An IPv4 header's checksum (ihl a multiple of 4, 20..60): whole words
 * only, no tail. */
static uint16_t ipv4_header_checksum(const uint8_t *ip, size_t ihl)
{
	uint64_t sum = 0;
	for (size_t i = 0; i < ihl; i += 4) {
		uint32_t w;
		memcpy(&w, ip + i, 4);
		sum += w;
	}
	uint16_t host = fold16(sum);
	return (uint16_t)~HOST_SUM_TO_BE(host);
}

uint16_t bpx_inet_checksum(const void *data, size_t len, uint32_t initial)
{
	uint16_t host = fold16(sum_host_words(data, len));
	uint32_t sum = (uint32_t)HOST_SUM_TO_BE(host) + fold16(initial);
	return (uint16_t)~fold16(sum);
}

/* ---- Per-destination header templates ---- */

void bpx_frame_template_init(struct bpx_frame_template *t,
			     const struct bpx_endpoint *src,
			     const struct bpx_endpoint *dst)
{
	uint8_t *buf = t->headers;
	memcpy(buf, dst->mac, 6);
	memcpy(buf + 6, src->mac, 6);
	put16(buf + 12, BPX_ETHERTYPE_IPV4);
	uint8_t *ip = buf + 14;
	ip[0] = 0x45; /* version 4, 20-byte header */
	ip[1] = 0;
	put16(ip + 2, 0); /* total length: per frame */
	put16(ip + 4, 0); /* id: per frame */
	put16(ip + 6, 0x4000); /* don't fragment */
	ip[8] = 64;
	ip[9] = 17; /* UDP */
	put16(ip + 10, 0); /* checksum: per frame */
	put32(ip + 12, src->ip);
	put32(ip + 16, dst->ip);
	uint8_t *udp = ip + 20;
	put16(udp, src->port);
	put16(udp + 2, dst->port);
	put16(udp + 4, 0); /* length: per frame */
	put16(udp + 6, 0); /* no UDP checksum (allowed over IPv4) */
	/* The header's fixed words, summed once: a frame adds its length and
	 * id and folds (RFC 1624's incremental update, from fields at 0). */
	t->ip_sum = (uint16_t)~ipv4_header_checksum(ip, 20);
}

size_t bpx_frame_write_template(uint8_t *buf,
				const struct bpx_frame_template *t,
				uint16_t payload_len, uint16_t ip_id,
				bool ip_checksum)
{
	memcpy(buf, t->headers, BPX_FRAME_HEADER_BYTES);
	uint8_t *ip = buf + 14;
	uint16_t total = (uint16_t)(20 + 8 + payload_len);
	put16(ip + 2, total);
	put16(ip + 4, ip_id);
	if (ip_checksum)
		put16(ip + 10,
		      (uint16_t)~fold16((uint64_t)t->ip_sum + total + ip_id));
	put16(ip + 20 + 4, (uint16_t)(8 + payload_len));
	return BPX_FRAME_HEADER_BYTES;
}

uint16_t bpx_frame_ethertype(const uint8_t *buf, size_t len)
{
	return len < 14 ? 0 : get16(buf + 12);
}

size_t bpx_frame_write_headers(uint8_t *buf, const struct bpx_endpoint *src,
			       const struct bpx_endpoint *dst,
			       uint16_t payload_len, uint16_t ip_id)
{
	memcpy(buf, dst->mac, 6);
	memcpy(buf + 6, src->mac, 6);
	put16(buf + 12, BPX_ETHERTYPE_IPV4);
	uint8_t *ip = buf + 14;
	ip[0] = 0x45; /* version 4, 20-byte header */
	ip[1] = 0;
	put16(ip + 2, (uint16_t)(20 + 8 + payload_len));
	put16(ip + 4, ip_id);
	put16(ip + 6, 0x4000); /* don't fragment */
	ip[8] = 64;
	ip[9] = 17; /* UDP */
	put16(ip + 10, 0);
	put32(ip + 12, src->ip);
	put32(ip + 16, dst->ip);
	put16(ip + 10, ipv4_header_checksum(ip, 20));
	uint8_t *udp = ip + 20;
	put16(udp, src->port);
	put16(udp + 2, dst->port);
	put16(udp + 4, (uint16_t)(8 + payload_len));
	put16(udp + 6, 0);
	return BPX_FRAME_HEADER_BYTES;
}

static uint32_t udp_pseudo_sum(const uint8_t *ip, uint16_t udp_len)
{
	uint32_t sum = get16(ip + 12) + get16(ip + 14) + get16(ip + 16) +
		       get16(ip + 18);
	return sum + 17u + udp_len;
}

static enum bpx_wire_drop parse_ip(const uint8_t *ip, size_t len,
				   bool ip_checksum_good, size_t *ihl_out,
				   uint16_t *total_out)
{
	if (len < 20)
		return BPX_WIRE_TRUNCATED;
	size_t ihl = (size_t)(ip[0] & 0x0f) * 4;
	uint16_t total = get16(ip + 2);
	if ((ip[0] >> 4) != 4 || ihl < 20 || total < ihl || total > len ||
	    ihl > len)
		return BPX_WIRE_BAD_IP_HEADER;
	if (!ip_checksum_good && ipv4_header_checksum(ip, ihl) != 0)
		return BPX_WIRE_BAD_IP_CHECKSUM;
	if ((get16(ip + 6) & 0x3fffu) != 0) /* MF set or an offset */
		return BPX_WIRE_FRAGMENT;
	if (ip[9] != 17)
		return BPX_WIRE_NOT_UDP;
	*ihl_out = ihl;
	*total_out = total;
	return BPX_WIRE_OK;
}

enum bpx_wire_drop bpx_frame_parse(const uint8_t *buf, size_t len,
				   struct bpx_frame *f)
{
	return bpx_frame_parse_checked(buf, len, false, f);
}

enum bpx_wire_drop bpx_frame_parse_checked(const uint8_t *buf, size_t len,
					   bool ip_checksum_good,
					   struct bpx_frame *f)
{
	if (len < 14)
		return BPX_WIRE_TRUNCATED;
	if (bpx_frame_ethertype(buf, len) != BPX_ETHERTYPE_IPV4)
		return BPX_WIRE_NOT_IPV4;
	const uint8_t *ip = buf + 14;
	size_t ihl;
	uint16_t total;
	enum bpx_wire_drop d =
		parse_ip(ip, len - 14, ip_checksum_good, &ihl, &total);
	if (d != BPX_WIRE_OK)
		return d;
	const uint8_t *udp = ip + ihl;
	if (total - ihl < 8)
		return BPX_WIRE_BAD_UDP_LENGTH;
	uint16_t udp_len = get16(udp + 4);
	if (udp_len < 8 || udp_len != total - ihl)
		return BPX_WIRE_BAD_UDP_LENGTH;
	if (get16(udp + 6) != 0 &&
	    bpx_inet_checksum(udp, udp_len, udp_pseudo_sum(ip, udp_len)) != 0)
		return BPX_WIRE_BAD_UDP_CHECKSUM;
	memcpy(f->dst.mac, buf, 6);
	memcpy(f->src.mac, buf + 6, 6);
	f->src.ip = get32(ip + 12);
	f->dst.ip = get32(ip + 16);
	f->src.port = get16(udp);
	f->dst.port = get16(udp + 2);
	f->payload = udp + 8;
	f->payload_len = (uint16_t)(udp_len - 8);
	return BPX_WIRE_OK;
}

int bpx_arp_request(const struct bpx_endpoint *self,
		    const struct bpx_endpoint *target, uint8_t *out,
		    size_t cap)
{
	if (cap < BPX_ARP_FRAME_BYTES)
		return -BPX_EINVAL;
	memcpy(out, target->mac, 6);
	memcpy(out + 6, self->mac, 6);
	put16(out + 12, BPX_ETHERTYPE_ARP);
	uint8_t *a = out + 14;
	put16(a, 1);                     /* Ethernet */
	put16(a + 2, BPX_ETHERTYPE_IPV4);
	a[4] = 6;
	a[5] = 4;
	put16(a + 6, 1);                 /* request */
	memcpy(a + 8, self->mac, 6);
	put32(a + 14, self->ip);
	memset(a + 18, 0, 6);            /* the MAC asked for */
	put32(a + 24, target->ip);
	return BPX_ARP_FRAME_BYTES;
}

int bpx_arp_answer(const uint8_t *buf, size_t len,
		   const struct bpx_endpoint *self, uint8_t *out, size_t cap)
{
	if (bpx_frame_ethertype(buf, len) != BPX_ETHERTYPE_ARP)
		return 0; /* not ARP at all */
	if (len < BPX_ARP_FRAME_BYTES || cap < BPX_ARP_FRAME_BYTES)
		return -BPX_EMALFORMED;
	const uint8_t *a = buf + 14;
	/* Ethernet (1), IPv4 (0x0800), 6-byte and 4-byte addresses. */
	if (get16(a) != 1 || get16(a + 2) != BPX_ETHERTYPE_IPV4 || a[4] != 6 ||
	    a[5] != 4)
		return -BPX_EMALFORMED;
	if (get16(a + 6) != 1 || get32(a + 24) != self->ip)
		return 0; /* not a request, or not for us */
	memcpy(out, a + 8, 6); /* to the asker */
	memcpy(out + 6, self->mac, 6);
	put16(out + 12, BPX_ETHERTYPE_ARP);
	uint8_t *r = out + 14;
	memcpy(r, a, 6);
	put16(r + 6, 2); /* reply */
	memcpy(r + 8, self->mac, 6);
	put32(r + 14, self->ip);
	memcpy(r + 18, a + 8, 10); /* the asker's MAC and IP */
	return BPX_ARP_FRAME_BYTES;
}
