/* Unit tests for the wire codec (wire/wire.c, wire.h, docs/wire.md).
 *
 * Messages: every type round-trips with every field set to a distinctive
 * value; the fields a type does not carry come back 0; every drop reason
 * of bpx_wire_decode is reached by one mutation of a valid message.
 * Frames: headers are checked byte by byte and against an independent
 * Internet checksum; each rule of bpx_frame_parse is broken once. ARP:
 * every field of a reply.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdbool.h>
#include <string.h>

#include "bypax/consensus.h"
#include "bypax/errors.h"
#include "bypax/wire.h"

#define CLUSTER_ID 0xc1a55e5du

/* ---- the wire format as docs/wire.md states it, written out again ---- */

/* The u64 fields in wire order, and which types carry them. */
enum {
	W_BALLOT,
	W_SLOT,
	W_SLOT_END,
	W_ACCEPTED_BALLOT,
	W_COMMIT,
	W_APPLIED,
	W_LOG_START,
	W_CLIENT,
	W_SEQ,
	W_CV_LO,
	W_CV_HI,
	W_FIELD_COUNT,
};
#define B(f) (1u << (f))

struct type_spec {
	uint8_t type;
	uint16_t fields;
	bool value;
};

static const struct type_spec specs[] = {
	{ PX_MSG_REQUEST, B(W_CLIENT) | B(W_SEQ), true },
	{ PX_MSG_REPLY, B(W_CLIENT) | B(W_SEQ), true },
	{ PX_MSG_PREPARE, B(W_BALLOT) | B(W_SLOT) | B(W_SEQ), false },
	{ PX_MSG_PROMISE,
	  B(W_BALLOT) | B(W_SLOT) | B(W_SLOT_END) | B(W_ACCEPTED_BALLOT) |
		  B(W_LOG_START) | B(W_SEQ) | B(W_CV_LO) | B(W_CV_HI),
	  true },
	{ PX_MSG_ACCEPT, B(W_BALLOT) | B(W_SLOT) | B(W_COMMIT) | B(W_CV_LO) |
		  B(W_CV_HI), true },
	{ PX_MSG_ACCEPTED,
	  B(W_BALLOT) | B(W_SLOT) | B(W_COMMIT) | B(W_APPLIED) | B(W_LOG_START) |
		  B(W_CV_LO) | B(W_CV_HI),
	  false },
	{ PX_MSG_NACK, B(W_BALLOT), false },
	{ PX_MSG_COMMIT,
	  B(W_BALLOT) | B(W_COMMIT) | B(W_SEQ) | B(W_CV_LO) | B(W_CV_HI), false },
	{ PX_MSG_STATUS,
	  B(W_BALLOT) | B(W_COMMIT) | B(W_APPLIED) | B(W_LOG_START) | B(W_SEQ),
	  false },
	{ PX_MSG_CHOSEN, B(W_BALLOT) | B(W_SLOT) | B(W_COMMIT) | B(W_CV_LO) |
		  B(W_CV_HI), true },
	{ PX_MSG_SNAPSHOT_REQ, 0, false },
	{ BPX_WIRE_SNAPSHOT_CHUNK, B(W_SLOT) | B(W_SLOT_END) | B(W_SEQ), true },
};
#define SPEC_COUNT (sizeof(specs) / sizeof(specs[0]))

static uint64_t *field_of(struct px_msg *m, unsigned field)
{
	uint64_t *const fields[W_FIELD_COUNT] = {
		&m->ballot,	     &m->slot,	       &m->slot_end,
		&m->accepted_ballot, &m->commit_index, &m->applied_index,
		&m->log_start,	     &m->client_id,    &m->seq,
		&m->crash_vector[0], &m->crash_vector[1],
	};
	return fields[field];
}

static unsigned popcount(uint16_t v)
{
	unsigned n = 0;
	for (; v != 0; v &= (uint16_t)(v - 1))
		n++;
	return n;
}

static uint16_t be16(const uint8_t *p)
{
	return (uint16_t)((p[0] << 8) | p[1]);
}

static uint32_t be32(const uint8_t *p)
{
	return ((uint32_t)be16(p) << 16) | be16(p + 2);
}

static uint64_t be64(const uint8_t *p)
{
	return ((uint64_t)be32(p) << 32) | be32(p + 4);
}

static void put_be16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

/* ---- messages ---- */

static uint8_t value_bytes[PX_VALUE_BYTES_MAX];

/* Every field distinctive: byte k of field i is 0x10 * (i + 1) + k, so a
 * field read from the wrong offset, or byte-swapped, cannot match. */
static void fill(struct px_msg *m, uint8_t type, uint32_t value_len)
{
	memset(m, 0, sizeof(*m));
	m->type = type;
	m->from = 2;
	m->to = 4;
	m->flags = PX_FLAG_RECOVERY;
	m->status = PX_REPLY_EXPIRED;
	m->leader_hint = 6;
	for (unsigned i = 0; i < W_FIELD_COUNT; i++) {
		uint64_t v = 0;
		for (unsigned k = 0; k < 8; k++)
			v = (v << 8) | (uint8_t)(0x10u * (i + 1) + k);
		*field_of(m, i) = v;
	}
	for (unsigned i = 0; i < PX_VALUE_BYTES_MAX; i++)
		value_bytes[i] = (uint8_t)(i * 7 + 3);
	m->value_len = value_len;
	m->value = value_len > 0 ? value_bytes : NULL;
}

static void check_round_trip(const struct type_spec *t, uint32_t value_len)
{
	uint8_t buf[BPX_WIRE_PAYLOAD_MAX];
	struct px_msg in;
	struct px_msg out;
	fill(&in, t->type, value_len);
	size_t expect =
		BPX_WIRE_HEADER_BYTES + 8u * popcount(t->fields) + value_len;
	assert_int_equal(bpx_wire_msg_size(&in), expect);
	assert_int_equal(bpx_wire_encode(buf, sizeof(buf), CLUSTER_ID, &in),
			 (int)expect);

	/* The header, byte by byte (docs/wire.md). */
	assert_int_equal(be16(buf), BPX_WIRE_MAGIC);
	assert_int_equal(buf[2], BPX_WIRE_VERSION);
	assert_int_equal(buf[3], t->type);
	assert_int_equal(be32(buf + 4), CLUSTER_ID);
	assert_int_equal(buf[8], in.from);
	assert_int_equal(buf[9], in.to);
	assert_int_equal(buf[10], in.flags);
	assert_int_equal(buf[11], in.status);
	assert_int_equal(buf[12], in.leader_hint);
	assert_int_equal(buf[13], 0);
	assert_int_equal(be16(buf + 14), value_len);
	/* The carried fields, big-endian, in wire order, then the value. */
	const uint8_t *p = buf + BPX_WIRE_HEADER_BYTES;
	for (unsigned i = 0; i < W_FIELD_COUNT; i++) {
		if (t->fields & B(i)) {
			assert_true(be64(p) == *field_of(&in, i));
			p += 8;
		}
	}
	assert_memory_equal(p, value_bytes, value_len);

	memset(&out, 0xa5, sizeof(out));
	assert_int_equal(bpx_wire_decode(buf, expect, CLUSTER_ID, &out),
			 BPX_WIRE_OK);
	assert_int_equal(out.type, t->type);
	assert_int_equal(out.from, in.from);
	assert_int_equal(out.to, in.to);
	assert_int_equal(out.flags, in.flags);
	assert_int_equal(out.status, in.status);
	assert_int_equal(out.leader_hint, in.leader_hint);
	for (unsigned i = 0; i < W_FIELD_COUNT; i++) {
		uint64_t want = (t->fields & B(i)) ? *field_of(&in, i) : 0;
		assert_true(*field_of(&out, i) == want);
	}
	assert_int_equal(out.value_len, value_len);
	if (value_len == 0) {
		assert_null(out.value);
	} else {
		assert_ptr_equal(out.value, p); /* borrowed from buf */
		assert_memory_equal(out.value, value_bytes, value_len);
	}
}

static void test_round_trip_every_type(void **state)
{
	(void)state;
	for (size_t i = 0; i < SPEC_COUNT; i++) {
		check_round_trip(&specs[i], 0);
		if (specs[i].value) {
			check_round_trip(&specs[i], 1);
			check_round_trip(&specs[i], 37);
			check_round_trip(&specs[i], PX_VALUE_BYTES_MAX);
		}
	}
}

/* Plain values (no flags, status OK, 0 and all-ones fields) also survive. */
static void test_round_trip_extremes(void **state)
{
	(void)state;
	uint8_t buf[BPX_WIRE_PAYLOAD_MAX];
	for (size_t i = 0; i < SPEC_COUNT; i++) {
		for (int ones = 0; ones < 2; ones++) {
			struct px_msg in;
			struct px_msg out;
			memset(&in, ones ? 0xff : 0, sizeof(in));
			in.type = specs[i].type;
			in.flags = 0;
			in.status = PX_REPLY_OK;
			in.value_len = 0;
			in.value = NULL;
			int len = bpx_wire_encode(buf, sizeof(buf), UINT32_MAX,
						  &in);
			assert_true(len > 0);
			assert_int_equal(bpx_wire_decode(buf, (size_t)len,
							 UINT32_MAX, &out),
					 BPX_WIRE_OK);
			assert_int_equal(out.from, in.from);
			assert_int_equal(out.leader_hint, in.leader_hint);
			for (unsigned f = 0; f < W_FIELD_COUNT; f++)
				assert_true(*field_of(&out, f) ==
					    ((specs[i].fields & B(f)) ?
						     *field_of(&in, f) :
						     0));
		}
	}
}

static void test_encode_refuses_value_on_types_without_one(void **state)
{
	(void)state;
	uint8_t buf[BPX_WIRE_PAYLOAD_MAX];
	for (size_t i = 0; i < SPEC_COUNT; i++) {
		struct px_msg m;
		fill(&m, specs[i].type, 1);
		int want = specs[i].value ? (int)bpx_wire_msg_size(&m) :
					    -BPX_EINVAL;
		assert_int_equal(bpx_wire_encode(buf, sizeof(buf), CLUSTER_ID,
						 &m),
				 want);
	}
}

static void test_encode_refuses_bad_messages(void **state)
{
	(void)state;
	uint8_t buf[BPX_WIRE_PAYLOAD_MAX + 1];
	struct px_msg m;
	/* No wire form: the local SNAPSHOT and PERSIST effects, 0, and
	 * unknown types. */
	const uint8_t bad_types[] = {
		PX_MSG_SNAPSHOT,       PX_MSG_PERSIST, 0,
		BPX_WIRE_TYPE_MAX + 1, 0x7f,	       0xff
	};
	for (size_t i = 0; i < sizeof(bad_types); i++) {
		fill(&m, bad_types[i], 0);
		assert_int_equal(bpx_wire_msg_size(&m), 0);
		assert_int_equal(bpx_wire_encode(buf, sizeof(buf), CLUSTER_ID,
						 &m),
				 -BPX_EINVAL);
	}
	/* A value above PX_VALUE_BYTES_MAX. */
	fill(&m, PX_MSG_ACCEPT, PX_VALUE_BYTES_MAX);
	uint8_t big[PX_VALUE_BYTES_MAX + 1] = { 0 };
	m.value = big;
	m.value_len = PX_VALUE_BYTES_MAX + 1;
	assert_int_equal(bpx_wire_encode(buf, sizeof(buf), CLUSTER_ID, &m),
			 -BPX_EINVAL);
	/* Flags and status that decode would drop. */
	fill(&m, PX_MSG_PREPARE, 0);
	m.flags = 0x08; /* neither RECOVERY, READ nor OPEN */
	assert_int_equal(bpx_wire_encode(buf, sizeof(buf), CLUSTER_ID, &m),
			 -BPX_EINVAL);
	fill(&m, PX_MSG_REPLY, 0);
	m.status = PX_REPLY_STATUS_MAX + 1;
	assert_int_equal(bpx_wire_encode(buf, sizeof(buf), CLUSTER_ID, &m),
			 -BPX_EINVAL);
	/* A buffer one byte short, then exactly long enough. */
	fill(&m, PX_MSG_CHOSEN, 100);
	size_t need = bpx_wire_msg_size(&m);
	assert_int_equal(bpx_wire_encode(buf, need - 1, CLUSTER_ID, &m),
			 -BPX_ETOOBIG);
	assert_int_equal(bpx_wire_encode(buf, need, CLUSTER_ID, &m), (int)need);
}

/* A valid ACCEPT with a 5-byte value, to be broken one way at a time. */
static size_t valid_accept(uint8_t *buf)
{
	struct px_msg m;
	fill(&m, PX_MSG_ACCEPT, 5);
	int len = bpx_wire_encode(buf, BPX_WIRE_PAYLOAD_MAX, CLUSTER_ID, &m);
	assert_int_equal(len, BPX_WIRE_HEADER_BYTES + 5 * 8 + 5);
	return (size_t)len;
}

static enum bpx_wire_drop decode(const uint8_t *buf, size_t len)
{
	struct px_msg m;
	return bpx_wire_decode(buf, len, CLUSTER_ID, &m);
}

static void test_decode_drop_reasons(void **state)
{
	(void)state;
	uint8_t buf[BPX_WIRE_PAYLOAD_MAX + 8];
	size_t len = valid_accept(buf);
	assert_int_equal(decode(buf, len), BPX_WIRE_OK);

	for (size_t n = 0; n < BPX_WIRE_HEADER_BYTES; n++)
		assert_int_equal(decode(buf, n), BPX_WIRE_TRUNCATED);

	buf[0] ^= 0x01;
	assert_int_equal(decode(buf, len), BPX_WIRE_BAD_MAGIC);
	len = valid_accept(buf);
	buf[1] = 0;
	assert_int_equal(decode(buf, len), BPX_WIRE_BAD_MAGIC);

	const uint8_t versions[] = { 0, BPX_WIRE_VERSION + 1, 0xff };
	for (size_t i = 0; i < sizeof(versions); i++) {
		len = valid_accept(buf);
		buf[2] = versions[i];
		assert_int_equal(decode(buf, len), BPX_WIRE_BAD_VERSION);
	}

	const uint8_t types[] = { 0, PX_MSG_SNAPSHOT, PX_MSG_PERSIST,
				  BPX_WIRE_TYPE_MAX + 1, 0xff };
	for (size_t i = 0; i < sizeof(types); i++) {
		len = valid_accept(buf);
		buf[3] = types[i];
		assert_int_equal(decode(buf, len), BPX_WIRE_BAD_TYPE);
	}

	struct px_msg m;
	len = valid_accept(buf);
	assert_int_equal(bpx_wire_decode(buf, len, CLUSTER_ID + 1, &m),
			 BPX_WIRE_WRONG_CLUSTER);
	assert_int_equal(bpx_wire_decode(buf, len, 0, &m),
			 BPX_WIRE_WRONG_CLUSTER);
	/* What the log of such drops names. */
	assert_int_equal(bpx_wire_cluster_of(buf, len), CLUSTER_ID);
	assert_int_equal(bpx_wire_cluster_of(buf, BPX_WIRE_HEADER_BYTES),
			 CLUSTER_ID);
	assert_int_equal(bpx_wire_cluster_of(buf, BPX_WIRE_HEADER_BYTES - 1),
			 0);
}

static void test_decode_bad_fields(void **state)
{
	(void)state;
	uint8_t buf[BPX_WIRE_PAYLOAD_MAX];
	size_t len = valid_accept(buf);

	buf[13] = 0x01; /* reserved */
	assert_int_equal(decode(buf, len), BPX_WIRE_BAD_FIELD);
	buf[13] = 0x80;
	assert_int_equal(decode(buf, len), BPX_WIRE_BAD_FIELD);

	const uint8_t flags[] = { 0x08, 0x80, 0xff, PX_FLAG_OPEN | 0x08 };
	for (size_t i = 0; i < sizeof(flags); i++) {
		len = valid_accept(buf);
		buf[10] = flags[i];
		assert_int_equal(decode(buf, len), BPX_WIRE_BAD_FIELD);
	}
	len = valid_accept(buf);
	buf[10] = 0;
	assert_int_equal(decode(buf, len), BPX_WIRE_OK);
	buf[10] = PX_FLAG_RECOVERY;
	assert_int_equal(decode(buf, len), BPX_WIRE_OK);
	buf[10] = PX_FLAG_OPEN; /* which flags fit a type is the replica's */
	assert_int_equal(decode(buf, len), BPX_WIRE_OK);

	buf[11] = PX_REPLY_STATUS_MAX;
	assert_int_equal(decode(buf, len), BPX_WIRE_OK);
	buf[11] = PX_REPLY_STATUS_MAX + 1;
	assert_int_equal(decode(buf, len), BPX_WIRE_BAD_FIELD);
	buf[11] = 0xff;
	assert_int_equal(decode(buf, len), BPX_WIRE_BAD_FIELD);
}

static void test_decode_bad_length(void **state)
{
	(void)state;
	uint8_t buf[BPX_WIRE_PAYLOAD_MAX + 64];
	size_t len = valid_accept(buf);

	/* One byte short or long of what the type and value_len say. */
	assert_int_equal(decode(buf, len - 1), BPX_WIRE_BAD_LENGTH);
	buf[len] = 0;
	assert_int_equal(decode(buf, len + 1), BPX_WIRE_BAD_LENGTH);
	/* Short of the fixed fields, with no value. */
	put_be16(buf + 14, 0);
	assert_int_equal(decode(buf, BPX_WIRE_HEADER_BYTES + 8),
			 BPX_WIRE_BAD_LENGTH);
	assert_int_equal(decode(buf, BPX_WIRE_HEADER_BYTES + 40), BPX_WIRE_OK);
	/* value_len says one more or one less than the bytes there. */
	len = valid_accept(buf);
	put_be16(buf + 14, 6);
	assert_int_equal(decode(buf, len), BPX_WIRE_BAD_LENGTH);
	put_be16(buf + 14, 4);
	assert_int_equal(decode(buf, len), BPX_WIRE_BAD_LENGTH);

	/* value_len above PX_VALUE_BYTES_MAX, even when the bytes are there. */
	memset(buf, 0, sizeof(buf));
	len = valid_accept(buf);
	size_t fixed = len - 5;
	put_be16(buf + 14, PX_VALUE_BYTES_MAX);
	assert_int_equal(decode(buf, fixed + PX_VALUE_BYTES_MAX), BPX_WIRE_OK);
	put_be16(buf + 14, PX_VALUE_BYTES_MAX + 1);
	assert_int_equal(decode(buf, fixed + PX_VALUE_BYTES_MAX + 1),
			 BPX_WIRE_BAD_LENGTH);
	put_be16(buf + 14, 0xffff);
	assert_int_equal(decode(buf, sizeof(buf)), BPX_WIRE_BAD_LENGTH);

	/* A value on a type that carries none, with the bytes there. */
	struct px_msg m;
	fill(&m, PX_MSG_PREPARE, 0);
	len = (size_t)bpx_wire_encode(buf, sizeof(buf), CLUSTER_ID, &m);
	put_be16(buf + 14, 1);
	buf[len] = 0x42;
	assert_int_equal(decode(buf, len + 1), BPX_WIRE_BAD_LENGTH);
	assert_int_equal(decode(buf, len), BPX_WIRE_BAD_LENGTH);
}

static void test_drop_names(void **state)
{
	(void)state;
	for (int i = 0; i < BPX_WIRE_DROP_COUNT; i++) {
		const char *name = bpx_wire_drop_name((enum bpx_wire_drop)i);
		assert_non_null(name);
		assert_true(strlen(name) > 0);
		assert_string_not_equal(name, "unknown");
		for (int j = 0; j < i; j++)
			assert_string_not_equal(
				name,
				bpx_wire_drop_name((enum bpx_wire_drop)j));
	}
	assert_string_equal(bpx_wire_drop_name(BPX_WIRE_OK), "ok");
	assert_string_equal(bpx_wire_drop_name(BPX_WIRE_DROP_COUNT), "unknown");
}

/* ---- Ethernet / IPv4 / UDP ---- */

static const struct bpx_endpoint ep_a = {
	.mac = { 0x02, 0x11, 0x22, 0x33, 0x44, 0x55 },
	.ip = 0x0a010203, /* 10.1.2.3 */
	.port = 9001,
};
static const struct bpx_endpoint ep_b = {
	.mac = { 0x02, 0xaa, 0xbb, 0xcc, 0xdd, 0xee },
	.ip = 0xc0a80164, /* 192.168.1.100 */
	.port = 40123,
};

#define ETH 14u
#define IP (ETH)
#define UDP (ETH + 20u)

/* RFC 1071, written independently of bpx_inet_checksum: 16-bit words,
 * end-around carry, complement. */
static uint16_t ref_sum_add(uint32_t sum, const uint8_t *p, size_t len)
{
	for (size_t i = 0; i < len; i++)
		sum += (i % 2 == 0) ? (uint32_t)p[i] << 8 : p[i];
	while (sum > 0xffffu)
		sum = (sum & 0xffffu) + (sum >> 16);
	return (uint16_t)sum;
}

static uint16_t ref_ip_checksum(const uint8_t *ip, size_t ihl)
{
	uint8_t copy[60];
	memcpy(copy, ip, ihl);
	copy[10] = copy[11] = 0;
	return (uint16_t)~ref_sum_add(0, copy, ihl);
}

/* The UDP checksum over the pseudo-header, header (checksum field 0) and
 * payload, with 0 sent as 0xffff (RFC 768). */
static uint16_t ref_udp_checksum(const uint8_t *frame)
{
	const uint8_t *ip = frame + IP;
	const uint8_t *udp = frame + UDP;
	uint16_t udp_len = be16(udp + 4);
	uint8_t pseudo[12];
	memcpy(pseudo, ip + 12, 8);
	pseudo[8] = 0;
	pseudo[9] = 17;
	put_be16(pseudo + 10, udp_len);
	uint32_t sum = ref_sum_add(0, pseudo, sizeof(pseudo));
	uint8_t head[8];
	memcpy(head, udp, 8);
	head[6] = head[7] = 0;
	sum = ref_sum_add(sum, head, 8);
	/* The payload starts at an even offset, so the words line up. */
	sum = ref_sum_add(sum, udp + 8, udp_len - 8u);
	uint16_t c = (uint16_t)~sum;
	return c == 0 ? 0xffff : c;
}

static void fix_ip_checksum(uint8_t *frame)
{
	size_t ihl = (frame[IP] & 0x0fu) * 4u;
	put_be16(frame + IP + 10, ref_ip_checksum(frame + IP, ihl));
}

/* A frame from ep_a to ep_b with payload bytes 0, 1, 2, ... */
static size_t make_frame(uint8_t *buf, uint16_t payload_len)
{
	assert_int_equal(bpx_frame_write_headers(buf, &ep_a, &ep_b, payload_len,
						 0x1234),
			 BPX_FRAME_HEADER_BYTES);
	for (uint16_t i = 0; i < payload_len; i++)
		buf[BPX_FRAME_HEADER_BYTES + i] = (uint8_t)(i + 1);
	return BPX_FRAME_HEADER_BYTES + payload_len;
}

static enum bpx_wire_drop parse(const uint8_t *buf, size_t len)
{
	struct bpx_frame f;
	return bpx_frame_parse(buf, len, &f);
}

static void test_frame_round_trip(void **state)
{
	(void)state;
	uint8_t buf[BPX_FRAME_MAX];
	const uint16_t sizes[] = { 0, 1, 16, 57, BPX_WIRE_PAYLOAD_MAX };
	for (size_t s = 0; s < sizeof(sizes) / sizeof(sizes[0]); s++) {
		uint16_t n = sizes[s];
		size_t len = make_frame(buf, n);
		/* Ethernet */
		assert_memory_equal(buf, ep_b.mac, 6);
		assert_memory_equal(buf + 6, ep_a.mac, 6);
		assert_int_equal(be16(buf + 12), BPX_ETHERTYPE_IPV4);
		assert_int_equal(bpx_frame_ethertype(buf, len),
				 BPX_ETHERTYPE_IPV4);
		/* IPv4: version 4, IHL 5, total, id, DF, TTL, UDP, checksum */
		const uint8_t *ip = buf + IP;
		assert_int_equal(ip[0], 0x45);
		assert_int_equal(be16(ip + 2), 28 + n);
		assert_int_equal(be16(ip + 4), 0x1234);
		assert_int_equal(be16(ip + 6), 0x4000);
		assert_true(ip[8] > 0);
		assert_int_equal(ip[9], 17);
		assert_int_equal(be32(ip + 12), ep_a.ip);
		assert_int_equal(be32(ip + 16), ep_b.ip);
		assert_int_equal(bpx_inet_checksum(ip, 20, 0), 0);
		assert_int_equal(be16(ip + 10), ref_ip_checksum(ip, 20));
		/* UDP: ports, length, checksum 0 */
		const uint8_t *udp = buf + UDP;
		assert_int_equal(be16(udp), ep_a.port);
		assert_int_equal(be16(udp + 2), ep_b.port);
		assert_int_equal(be16(udp + 4), 8 + n);
		assert_int_equal(be16(udp + 6), 0);

		struct bpx_frame f;
		memset(&f, 0, sizeof(f));
		assert_int_equal(bpx_frame_parse(buf, len, &f), BPX_WIRE_OK);
		assert_memory_equal(f.src.mac, ep_a.mac, 6);
		assert_memory_equal(f.dst.mac, ep_b.mac, 6);
		assert_int_equal(f.src.ip, ep_a.ip);
		assert_int_equal(f.dst.ip, ep_b.ip);
		assert_int_equal(f.src.port, ep_a.port);
		assert_int_equal(f.dst.port, ep_b.port);
		assert_ptr_equal(f.payload, buf + BPX_FRAME_HEADER_BYTES);
		assert_int_equal(f.payload_len, n);
	}
}

/* A message encoded into a frame comes back out of it unchanged. */
static void test_frame_carries_message(void **state)
{
	(void)state;
	uint8_t buf[BPX_FRAME_MAX];
	struct px_msg in;
	struct px_msg out;
	fill(&in, PX_MSG_PROMISE, PX_VALUE_BYTES_MAX);
	int n = bpx_wire_encode(buf + BPX_FRAME_HEADER_BYTES,
				BPX_WIRE_PAYLOAD_MAX, CLUSTER_ID, &in);
	assert_true(n > 0);
	size_t len =
		bpx_frame_write_headers(buf, &ep_a, &ep_b, (uint16_t)n, 7) +
		(size_t)n;
	assert_true(len <= BPX_FRAME_MAX);
	struct bpx_frame f;
	assert_int_equal(bpx_frame_parse(buf, len, &f), BPX_WIRE_OK);
	assert_int_equal(bpx_wire_decode(f.payload, f.payload_len, CLUSTER_ID,
					 &out),
			 BPX_WIRE_OK);
	assert_true(out.seq == in.seq && out.log_start == in.log_start);
	assert_memory_equal(out.value, in.value, in.value_len);
}

static void test_frame_ip_header(void **state)
{
	(void)state;
	uint8_t buf[BPX_FRAME_MAX];
	size_t len = make_frame(buf, 20);

	/* The checksum field, or a covered byte, changed. */
	buf[IP + 10] ^= 0x01;
	assert_int_equal(parse(buf, len), BPX_WIRE_BAD_IP_CHECKSUM);
	len = make_frame(buf, 20);
	buf[IP + 15] ^= 0x80; /* source address */
	assert_int_equal(parse(buf, len), BPX_WIRE_BAD_IP_CHECKSUM);

	/* IHL below 5, checksum fixed so only the IHL is wrong. */
	for (uint8_t ihl = 0; ihl < 5; ihl++) {
		len = make_frame(buf, 20);
		buf[IP] = (uint8_t)(0x40 | ihl);
		put_be16(buf + IP + 10, 0);
		put_be16(buf + IP + 10, ref_ip_checksum(buf + IP, 20));
		assert_int_equal(parse(buf, len), BPX_WIRE_BAD_IP_HEADER);
	}
	/* Not version 4. */
	len = make_frame(buf, 20);
	buf[IP] = 0x65;
	fix_ip_checksum(buf);
	assert_int_equal(parse(buf, len), BPX_WIRE_BAD_IP_HEADER);

	/* Total length beyond the buffer: the frame cut short, or the field
	 * grown. */
	len = make_frame(buf, 20);
	assert_int_equal(parse(buf, len - 1), BPX_WIRE_BAD_IP_HEADER);
	put_be16(buf + IP + 2, (uint16_t)(be16(buf + IP + 2) + 1));
	fix_ip_checksum(buf);
	assert_int_equal(parse(buf, len), BPX_WIRE_BAD_IP_HEADER);
	/* Total length shorter than the IP header. */
	put_be16(buf + IP + 2, 19);
	fix_ip_checksum(buf);
	assert_int_equal(parse(buf, len), BPX_WIRE_BAD_IP_HEADER);
	/* Not even an IPv4 header there. */
	for (size_t n = 0; n < UDP; n++)
		assert_int_equal(parse(buf, n), BPX_WIRE_TRUNCATED);

	/* Another protocol (TCP). */
	len = make_frame(buf, 20);
	buf[IP + 9] = 6;
	fix_ip_checksum(buf);
	assert_int_equal(parse(buf, len), BPX_WIRE_NOT_UDP);
}

static void test_frame_fragments(void **state)
{
	(void)state;
	uint8_t buf[BPX_FRAME_MAX];
	/* flags/offset: MF; an offset; MF and offset; DF and an offset. */
	const uint16_t frag[] = { 0x2000, 0x0001, 0x1fff, 0x2001, 0x4001 };
	for (size_t i = 0; i < sizeof(frag) / sizeof(frag[0]); i++) {
		size_t len = make_frame(buf, 20);
		put_be16(buf + IP + 6, frag[i]);
		fix_ip_checksum(buf);
		assert_int_equal(parse(buf, len), BPX_WIRE_FRAGMENT);
	}
	/* DF or no flag at all is a whole datagram. */
	const uint16_t whole[] = { 0x0000, 0x4000 };
	for (size_t i = 0; i < 2; i++) {
		size_t len = make_frame(buf, 20);
		put_be16(buf + IP + 6, whole[i]);
		fix_ip_checksum(buf);
		assert_int_equal(parse(buf, len), BPX_WIRE_OK);
	}
}

/* An IPv4 header with options (IHL 6): UDP follows the options. */
static void test_frame_ip_options(void **state)
{
	(void)state;
	uint8_t buf[BPX_FRAME_MAX];
	size_t len = make_frame(buf, 20);
	memmove(buf + UDP + 4, buf + UDP, len - UDP);
	memset(buf + UDP, 0x01, 4); /* four NOP options */
	len += 4;
	buf[IP] = 0x46;
	put_be16(buf + IP + 2, (uint16_t)(be16(buf + IP + 2) + 4));
	fix_ip_checksum(buf);
	struct bpx_frame f;
	assert_int_equal(bpx_frame_parse(buf, len, &f), BPX_WIRE_OK);
	assert_ptr_equal(f.payload, buf + UDP + 4 + 8);
	assert_int_equal(f.payload_len, 20);
	assert_int_equal(f.src.port, ep_a.port);
}

static void test_frame_udp_length(void **state)
{
	(void)state;
	uint8_t buf[BPX_FRAME_MAX];
	size_t len = make_frame(buf, 20);
	uint16_t udp_len = be16(buf + UDP + 4);
	const uint16_t bad[] = { (uint16_t)(udp_len - 1),
				 (uint16_t)(udp_len + 1), 0, 7, 0xffff };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		put_be16(buf + UDP + 4, bad[i]);
		assert_int_equal(parse(buf, len), BPX_WIRE_BAD_UDP_LENGTH);
	}
	/* IPv4 total length leaves no room for a UDP header. */
	len = make_frame(buf, 0);
	put_be16(buf + IP + 2, 20 + 7);
	fix_ip_checksum(buf);
	assert_int_equal(parse(buf, len), BPX_WIRE_BAD_UDP_LENGTH);
	put_be16(buf + IP + 2, 20);
	fix_ip_checksum(buf);
	assert_int_equal(parse(buf, len), BPX_WIRE_BAD_UDP_LENGTH);
}

static void test_frame_udp_checksum(void **state)
{
	(void)state;
	uint8_t buf[BPX_FRAME_MAX];
	const uint16_t sizes[] = { 0, 1, 33, 300 }; /* odd ones too */
	for (size_t s = 0; s < sizeof(sizes) / sizeof(sizes[0]); s++) {
		size_t len = make_frame(buf, sizes[s]);
		uint16_t c = ref_udp_checksum(buf);
		put_be16(buf + UDP + 6, c);
		assert_int_equal(parse(buf, len), BPX_WIRE_OK);
		/* A wrong nonzero checksum. */
		put_be16(buf + UDP + 6, (uint16_t)(c == 1 ? 2 : c - 1));
		assert_int_equal(parse(buf, len), BPX_WIRE_BAD_UDP_CHECKSUM);
		/* The right checksum over changed data (the last payload
		 * byte, or the source port when there is no payload). */
		size_t at = sizes[s] > 0 ? len - 1 : UDP + 1;
		put_be16(buf + UDP + 6, c);
		buf[at] ^= 0x10;
		assert_int_equal(parse(buf, len), BPX_WIRE_BAD_UDP_CHECKSUM);
		buf[at] ^= 0x10;
		/* Checksum 0: none computed; accepted as it is. */
		put_be16(buf + UDP + 6, 0);
		assert_int_equal(parse(buf, len), BPX_WIRE_OK);
	}

	/* A datagram whose checksum computes to 0 goes out as 0xffff
	 * (RFC 768): make the sum 0xffff by choosing two payload bytes. */
	size_t len = make_frame(buf, 10);
	buf[BPX_FRAME_HEADER_BYTES] = 0;
	buf[BPX_FRAME_HEADER_BYTES + 1] = 0;
	uint16_t c = ref_udp_checksum(buf);
	put_be16(buf + BPX_FRAME_HEADER_BYTES, c);
	assert_int_equal(ref_udp_checksum(buf), 0xffff);
	put_be16(buf + UDP + 6, 0xffff);
	assert_int_equal(parse(buf, len), BPX_WIRE_OK);
}

static void test_frame_ethernet_padding(void **state)
{
	(void)state;
	uint8_t buf[BPX_FRAME_MAX];
	/* A 4-byte payload is a 46-byte frame; NICs pad it to 60. */
	size_t len = make_frame(buf, 4);
	assert_int_equal(len, 46);
	memset(buf + len, 0xee, 60 - len);
	struct bpx_frame f;
	assert_int_equal(bpx_frame_parse(buf, 60, &f), BPX_WIRE_OK);
	assert_int_equal(f.payload_len, 4);
	/* Also with a UDP checksum: the padding is not covered. */
	put_be16(buf + UDP + 6, ref_udp_checksum(buf));
	assert_int_equal(bpx_frame_parse(buf, 60, &f), BPX_WIRE_OK);
	assert_int_equal(f.payload_len, 4);
}

static void test_frame_not_ipv4(void **state)
{
	(void)state;
	uint8_t buf[BPX_FRAME_MAX];
	const uint16_t types[] = { 0x86dd, BPX_ETHERTYPE_ARP, 0x8100, 0x0000,
				   0x0008 };
	for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
		size_t len = make_frame(buf, 20);
		put_be16(buf + 12, types[i]);
		assert_int_equal(parse(buf, len), BPX_WIRE_NOT_IPV4);
	}
	for (size_t n = 0; n < ETH; n++) {
		assert_int_equal(parse(buf, n), BPX_WIRE_TRUNCATED);
		assert_int_equal(bpx_frame_ethertype(buf, n), 0);
	}
}

/* ---- ARP ---- */

static const uint8_t asker_mac[6] = { 0x02, 0x77, 0x66, 0x55, 0x44, 0x33 };
static const uint32_t asker_ip = 0x0a010209; /* 10.1.2.9 */

/* Who has target_ip? Tell asker (RFC 826). */
static void make_arp(uint8_t *buf, uint16_t oper, uint32_t target_ip)
{
	memset(buf, 0xff, 6);
	memcpy(buf + 6, asker_mac, 6);
	put_be16(buf + 12, BPX_ETHERTYPE_ARP);
	uint8_t *a = buf + ETH;
	put_be16(a, 1);
	put_be16(a + 2, BPX_ETHERTYPE_IPV4);
	a[4] = 6;
	a[5] = 4;
	put_be16(a + 6, oper);
	memcpy(a + 8, asker_mac, 6);
	put_be16(a + 14, (uint16_t)(asker_ip >> 16));
	put_be16(a + 16, (uint16_t)asker_ip);
	memset(a + 18, 0, 6);
	put_be16(a + 24, (uint16_t)(target_ip >> 16));
	put_be16(a + 26, (uint16_t)target_ip);
}

static void check_arp_reply(const uint8_t *r)
{
	assert_memory_equal(r, asker_mac, 6);
	assert_memory_equal(r + 6, ep_a.mac, 6);
	assert_int_equal(be16(r + 12), BPX_ETHERTYPE_ARP);
	const uint8_t *a = r + ETH;
	assert_int_equal(be16(a), 1);
	assert_int_equal(be16(a + 2), BPX_ETHERTYPE_IPV4);
	assert_int_equal(a[4], 6);
	assert_int_equal(a[5], 4);
	assert_int_equal(be16(a + 6), 2);
	assert_memory_equal(a + 8, ep_a.mac, 6);
	assert_int_equal(be32(a + 14), ep_a.ip);
	assert_memory_equal(a + 18, asker_mac, 6);
	assert_int_equal(be32(a + 24), asker_ip);
}

static void test_arp_request_for_us(void **state)
{
	(void)state;
	uint8_t req[60];
	uint8_t out[BPX_ARP_FRAME_BYTES];
	make_arp(req, 1, ep_a.ip);
	memset(out, 0xcc, sizeof(out));
	assert_int_equal(bpx_arp_answer(req, BPX_ARP_FRAME_BYTES, &ep_a, out,
					sizeof(out)),
			 BPX_ARP_FRAME_BYTES);
	check_arp_reply(out);
	/* Padded to the Ethernet minimum, as it arrives from a NIC. */
	memset(req + BPX_ARP_FRAME_BYTES, 0, sizeof(req) - BPX_ARP_FRAME_BYTES);
	memset(out, 0xcc, sizeof(out));
	assert_int_equal(bpx_arp_answer(req, sizeof(req), &ep_a, out,
					sizeof(out)),
			 BPX_ARP_FRAME_BYTES);
	check_arp_reply(out);
}

static void test_arp_not_for_us(void **state)
{
	(void)state;
	uint8_t req[BPX_ARP_FRAME_BYTES];
	uint8_t out[BPX_ARP_FRAME_BYTES];
	make_arp(req, 1, ep_a.ip + 1);
	assert_int_equal(
		bpx_arp_answer(req, sizeof(req), &ep_a, out, sizeof(out)), 0);
	/* A reply, even one naming our address, is not answered. */
	make_arp(req, 2, ep_a.ip);
	assert_int_equal(
		bpx_arp_answer(req, sizeof(req), &ep_a, out, sizeof(out)), 0);
	/* Not ARP at all: an IPv4 frame is no question. */
	uint8_t frame[BPX_FRAME_MAX];
	size_t len = make_frame(frame, 20);
	assert_int_equal(bpx_arp_answer(frame, len, &ep_a, out, sizeof(out)),
			 0);
}

/* The probe bypaxd sends each peer: answered by the peer as it answers
 * any request, with the reply addressed back to the prober. */
static void test_arp_probe_round_trip(void **state)
{
	(void)state;
	struct bpx_endpoint prober = ep_a;
	struct bpx_endpoint peer = ep_a;
	peer.ip = ep_a.ip + 1;
	peer.mac[5] ^= 0x5a;
	uint8_t req[BPX_ARP_FRAME_BYTES];
	uint8_t out[BPX_ARP_FRAME_BYTES];
	assert_int_equal(bpx_arp_request(&prober, &peer, req, sizeof(req) - 1),
			 -BPX_EINVAL);
	assert_int_equal(bpx_arp_request(&prober, &peer, req, sizeof(req)),
			 BPX_ARP_FRAME_BYTES);
	assert_memory_equal(req, peer.mac, 6); /* unicast, not broadcast */
	assert_memory_equal(req + 6, prober.mac, 6);
	/* The prober does not answer its own question ... */
	assert_int_equal(bpx_arp_answer(req, sizeof(req), &prober, out,
					sizeof(out)),
			 0);
	/* ... the peer does, to the prober. */
	assert_int_equal(bpx_arp_answer(req, sizeof(req), &peer, out,
					sizeof(out)),
			 BPX_ARP_FRAME_BYTES);
	assert_memory_equal(out, prober.mac, 6);
	assert_memory_equal(out + 6, peer.mac, 6);
	assert_int_equal(be16(out + ETH + 6), 2);
	assert_int_equal(be32(out + ETH + 14), peer.ip);
	assert_int_equal(be32(out + ETH + 24), prober.ip);
}

static void test_arp_malformed(void **state)
{
	(void)state;
	uint8_t req[BPX_ARP_FRAME_BYTES];
	uint8_t out[BPX_ARP_FRAME_BYTES];
	make_arp(req, 1, ep_a.ip);
	for (size_t n = ETH; n < BPX_ARP_FRAME_BYTES; n++)
		assert_int_equal(bpx_arp_answer(req, n, &ep_a, out,
						sizeof(out)),
				 -BPX_EMALFORMED);
	assert_int_equal(bpx_arp_answer(req, sizeof(req), &ep_a, out,
					sizeof(out) - 1),
			 -BPX_EMALFORMED);
	/* Hardware type, protocol type, and address lengths. */
	const struct {
		size_t at;
		uint8_t v;
	} bad[] = { { ETH + 1, 6 },    { ETH + 0, 1 }, { ETH + 2, 0x86 },
		    { ETH + 3, 0xdd }, { ETH + 4, 8 }, { ETH + 5, 16 } };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		make_arp(req, 1, ep_a.ip);
		req[bad[i].at] = bad[i].v;
		assert_int_equal(bpx_arp_answer(req, sizeof(req), &ep_a, out,
						sizeof(out)),
				 -BPX_EMALFORMED);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_round_trip_every_type),
		cmocka_unit_test(test_round_trip_extremes),
		cmocka_unit_test(
			test_encode_refuses_value_on_types_without_one),
		cmocka_unit_test(test_encode_refuses_bad_messages),
		cmocka_unit_test(test_decode_drop_reasons),
		cmocka_unit_test(test_decode_bad_fields),
		cmocka_unit_test(test_decode_bad_length),
		cmocka_unit_test(test_drop_names),
		cmocka_unit_test(test_frame_round_trip),
		cmocka_unit_test(test_frame_carries_message),
		cmocka_unit_test(test_frame_ip_header),
		cmocka_unit_test(test_frame_fragments),
		cmocka_unit_test(test_frame_ip_options),
		cmocka_unit_test(test_frame_udp_length),
		cmocka_unit_test(test_frame_udp_checksum),
		cmocka_unit_test(test_frame_ethernet_padding),
		cmocka_unit_test(test_frame_not_ipv4),
		cmocka_unit_test(test_arp_request_for_us),
		cmocka_unit_test(test_arp_not_for_us),
		cmocka_unit_test(test_arp_malformed),
		cmocka_unit_test(test_arp_probe_round_trip),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
