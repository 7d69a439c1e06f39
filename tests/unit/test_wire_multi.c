/* Unit tests for packed requests and replies (wire.h, "Packed requests
 * and replies"; docs/wire.md, "Packed requests and replies").
 *
 * Round trips of requests and replies, the byte layout as docs/wire.md
 * states it, the bounds (entries, bytes, the 1500-byte IPv4 packet), and
 * every malformed form a named drop reached by one mutation of a valid
 * message. A single message and a multi one never decode as each other.
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

static uint64_t be64_at(const uint8_t *p)
{
	uint64_t v = 0;
	for (int i = 0; i < 8; i++)
		v = v << 8 | p[i];
	return v;
}

static uint16_t be16_at(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static void put_be16_at(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

/* Three requests: an OPEN, a write, a read; returns the payload length. */
static size_t three_requests(uint8_t *buf, size_t cap)
{
	static const uint8_t put[] = "put k1 v1";
	static const uint8_t get[] = "get k1";
	struct bpx_wire_packer w;
	assert_int_equal(bpx_wire_multi_begin(&w, buf, cap, CLUSTER_ID,
					      BPX_WIRE_MULTI_REQUEST,
					      PX_TO_CLIENT, 2, 0xff),
			 0);
	struct px_msg open = { .client_id = 77, .seq = 5,
			       .flags = PX_FLAG_OPEN };
	struct px_msg write = { .client_id = 1ull << 63 | 1024, .seq = 1,
				.value = put, .value_len = sizeof(put) };
	struct px_msg read = { .client_id = 78, .seq = 1ull << 62,
			       .flags = PX_FLAG_READ, .value = get,
			       .value_len = sizeof(get) };
	assert_int_equal(bpx_wire_multi_add(&w, &open), 0);
	assert_int_equal(bpx_wire_multi_add(&w, &write), 0);
	assert_int_equal(bpx_wire_multi_add(&w, &read), 0);
	return bpx_wire_multi_finish(&w);
}

static void test_request_round_trip(void **state)
{
	(void)state;
	uint8_t buf[BPX_WIRE_MULTI_PAYLOAD_MAX];
	size_t len = three_requests(buf, sizeof(buf));
	assert_int_equal(len, 18 + 3 * 20 + 10 + 7);
	struct bpx_wire_unpacker u;
	assert_int_equal(bpx_wire_multi_decode(buf, len, CLUSTER_ID, &u),
			 BPX_WIRE_OK);
	assert_int_equal(u.count, 3);
	struct px_msg m;
	assert_true(bpx_wire_multi_next(&u, &m));
	assert_int_equal(m.type, PX_MSG_REQUEST);
	assert_int_equal(m.to, 2);
	assert_int_equal(m.from, PX_TO_CLIENT);
	assert_int_equal(m.client_id, 77);
	assert_int_equal(m.seq, 5);
	assert_int_equal(m.flags, PX_FLAG_OPEN);
	assert_int_equal(m.value_len, 0);
	assert_null(m.value);
	assert_true(bpx_wire_multi_next(&u, &m));
	assert_int_equal(m.client_id, 1ull << 63 | 1024);
	assert_int_equal(m.seq, 1);
	assert_int_equal(m.flags, 0);
	assert_int_equal(m.value_len, 10);
	assert_memory_equal(m.value, "put k1 v1", 10);
	assert_true(bpx_wire_multi_next(&u, &m));
	assert_int_equal(m.client_id, 78);
	assert_int_equal(m.seq, 1ull << 62);
	assert_int_equal(m.flags, PX_FLAG_READ);
	assert_memory_equal(m.value, "get k1", 7);
	assert_false(bpx_wire_multi_next(&u, &m));
	/* Not a single message: the single decoder names it so. */
	struct px_msg single;
	assert_int_equal(bpx_wire_decode(buf, len, CLUSTER_ID, &single),
			 BPX_WIRE_BAD_TYPE);
	assert_int_equal(bpx_wire_type_of(buf, len), BPX_WIRE_MULTI_REQUEST);
	assert_int_equal(bpx_wire_type_of(buf, 15), 0);
}

/* docs/wire.md's table, byte by byte. */
static void test_request_layout(void **state)
{
	(void)state;
	uint8_t buf[BPX_WIRE_MULTI_PAYLOAD_MAX];
	size_t len = three_requests(buf, sizeof(buf));
	assert_int_equal(be16_at(buf), 0x4258);
	assert_int_equal(buf[2], 2);
	assert_int_equal(buf[3], 16);
	assert_int_equal(be64_at(buf + 4) >> 32, CLUSTER_ID);
	assert_int_equal(buf[8], 0xff);
	assert_int_equal(buf[9], 2);
	assert_int_equal(buf[10], 0); /* flags: per entry */
	assert_int_equal(buf[11], 0); /* status: per entry */
	assert_int_equal(buf[12], 0xff);
	assert_int_equal(buf[13], 0);
	assert_int_equal(be16_at(buf + 14), len - 16);
	assert_int_equal(buf[16], 3); /* count */
	assert_int_equal(buf[17], 0); /* reserved */
	const uint8_t *e = buf + 18;  /* the first entry: the OPEN */
	assert_int_equal(be64_at(e), 77);
	assert_int_equal(be64_at(e + 8), 5);
	assert_int_equal(e[16], PX_FLAG_OPEN);
	assert_int_equal(e[17], 0);
	assert_int_equal(be16_at(e + 18), 0);
	e += 20; /* the write, and its value right after its 20 bytes */
	assert_int_equal(be16_at(e + 18), 10);
	assert_memory_equal(e + 20, "put k1 v1", 10);
}

static void test_reply_round_trip(void **state)
{
	(void)state;
	uint8_t buf[BPX_WIRE_MULTI_PAYLOAD_MAX];
	struct bpx_wire_packer w;
	assert_int_equal(bpx_wire_multi_begin(&w, buf, sizeof(buf), CLUSTER_ID,
					      BPX_WIRE_MULTI_REPLY, 1,
					      PX_TO_CLIENT, 1),
			 0);
	for (uint8_t s = 0; s <= PX_REPLY_STATUS_MAX; s++) {
		uint8_t value[3] = { s, 0, 0 };
		struct px_msg r = { .client_id = 100u + s, .seq = 9,
				    .status = s, .value = value,
				    .value_len = s == PX_REPLY_OK ? 3 : 0 };
		assert_int_equal(bpx_wire_multi_add(&w, &r), 0);
	}
	size_t len = bpx_wire_multi_finish(&w);
	assert_int_equal(buf[3], 17);
	struct bpx_wire_unpacker u;
	assert_int_equal(bpx_wire_multi_decode(buf, len, CLUSTER_ID, &u),
			 BPX_WIRE_OK);
	struct px_msg m;
	for (uint8_t s = 0; s <= PX_REPLY_STATUS_MAX; s++) {
		assert_true(bpx_wire_multi_next(&u, &m));
		assert_int_equal(m.type, PX_MSG_REPLY);
		assert_int_equal(m.from, 1);
		assert_int_equal(m.to, PX_TO_CLIENT);
		assert_int_equal(m.leader_hint, 1);
		assert_int_equal(m.client_id, 100u + s);
		assert_int_equal(m.status, s);
		assert_int_equal(m.value_len, s == PX_REPLY_OK ? 3 : 0);
	}
	assert_false(bpx_wire_multi_next(&u, &m));
}

/* At most BPX_WIRE_MULTI_MAX entries, and at most 1472 bytes: an IPv4
 * packet of 1500 (docs/wire.md). */
static void test_bounds(void **state)
{
	(void)state;
	uint8_t buf[2048];
	struct bpx_wire_packer w;
	assert_int_equal(bpx_wire_multi_begin(&w, buf, sizeof(buf), CLUSTER_ID,
					      BPX_WIRE_MULTI_REPLY, 0,
					      PX_TO_CLIENT, 0),
			 0);
	assert_int_equal(w.cap, 1472);
	struct px_msg empty = { .client_id = 1, .seq = 1 };
	for (unsigned i = 0; i < BPX_WIRE_MULTI_MAX; i++)
		assert_int_equal(bpx_wire_multi_add(&w, &empty), 0);
	assert_false(bpx_wire_multi_fits(&w, 0));
	assert_int_equal(bpx_wire_multi_add(&w, &empty), -BPX_ETOOBIG);
	size_t len = bpx_wire_multi_finish(&w);
	assert_int_equal(len, 18 + 64 * 20);
	struct bpx_wire_unpacker u;
	assert_int_equal(bpx_wire_multi_decode(buf, len, CLUSTER_ID, &u),
			 BPX_WIRE_OK);
	/* By bytes: one entry of the largest value fits (20 + 1392 after
	 * 18), a second of any size does not. */
	static uint8_t big[PX_VALUE_BYTES_MAX];
	struct px_msg full = { .client_id = 1, .seq = 1, .value = big,
			       .value_len = PX_VALUE_BYTES_MAX };
	assert_int_equal(bpx_wire_multi_begin(&w, buf, sizeof(buf), CLUSTER_ID,
					      BPX_WIRE_MULTI_REQUEST,
					      PX_TO_CLIENT, 0, 0xff),
			 0);
	assert_int_equal(bpx_wire_multi_add(&w, &full), 0);
	assert_int_equal(bpx_wire_multi_add(&w, &full), -BPX_ETOOBIG);
	full.value_len = 1472 - 18 - 1392 - 20 - 20;
	assert_int_equal(bpx_wire_multi_add(&w, &full), 0);
	assert_int_equal(w.len, 1472);
	assert_int_equal(bpx_wire_multi_add(&w, &empty), -BPX_ETOOBIG);
	len = bpx_wire_multi_finish(&w);
	assert_int_equal(bpx_wire_multi_decode(buf, len, CLUSTER_ID, &u),
			 BPX_WIRE_OK);
	/* A cap too small for the header and one entry. */
	assert_int_equal(bpx_wire_multi_begin(&w, buf, 37, CLUSTER_ID,
					      BPX_WIRE_MULTI_REQUEST, 0, 0, 0),
			 -BPX_ETOOBIG);
}

static void test_packer_refuses_what_decode_drops(void **state)
{
	(void)state;
	uint8_t buf[256];
	struct bpx_wire_packer w;
	assert_int_equal(bpx_wire_multi_begin(&w, buf, sizeof(buf), CLUSTER_ID,
					      PX_MSG_REQUEST, 0, 0, 0),
			 -BPX_EINVAL);
	assert_int_equal(bpx_wire_multi_begin(&w, buf, sizeof(buf), CLUSTER_ID,
					      BPX_WIRE_MULTI_REQUEST, 0, 0, 0),
			 0);
	struct px_msg m = { .client_id = 1, .seq = 1,
			    .flags = PX_FLAG_RECOVERY };
	assert_int_equal(bpx_wire_multi_add(&w, &m), -BPX_EINVAL);
	m.flags = 0;
	m.status = PX_REPLY_BUSY; /* a request carries no status */
	assert_int_equal(bpx_wire_multi_add(&w, &m), -BPX_EINVAL);
	m.status = 0;
	m.value_len = PX_VALUE_BYTES_MAX + 1;
	assert_int_equal(bpx_wire_multi_add(&w, &m), -BPX_EINVAL);
	assert_int_equal(bpx_wire_multi_begin(&w, buf, sizeof(buf), CLUSTER_ID,
					      BPX_WIRE_MULTI_REPLY, 0, 0, 0),
			 0);
	struct px_msg r = { .client_id = 1, .seq = 1, .flags = PX_FLAG_READ };
	assert_int_equal(bpx_wire_multi_add(&w, &r), -BPX_EINVAL);
	r.flags = 0;
	r.status = PX_REPLY_STATUS_MAX + 1;
	assert_int_equal(bpx_wire_multi_add(&w, &r), -BPX_EINVAL);
	assert_int_equal(w.count, 0); /* nothing half written */
	assert_int_equal(w.len, BPX_WIRE_MULTI_HEAD_BYTES);
}

/* One mutation of a valid message per drop reason (docs/wire.md,
 * "Packed requests and replies", what a receiver drops). */
static void expect_drop(void (*mutate)(uint8_t *buf, size_t *len),
			enum bpx_wire_drop want)
{
	uint8_t buf[BPX_WIRE_MULTI_PAYLOAD_MAX + 8];
	size_t len = three_requests(buf, BPX_WIRE_MULTI_PAYLOAD_MAX);
	mutate(buf, &len);
	struct bpx_wire_unpacker u;
	assert_int_equal(bpx_wire_multi_decode(buf, len, CLUSTER_ID, &u), want);
}

static void short_header(uint8_t *b, size_t *len) { (void)b; *len = 15; }
static void bad_magic(uint8_t *b, size_t *len) { (void)len; b[0] = 0; }
static void bad_version(uint8_t *b, size_t *len) { (void)len; b[2] = 1; }
static void single_type(uint8_t *b, size_t *len)
{
	(void)len;
	b[3] = PX_MSG_REQUEST;
}
static void type_15(uint8_t *b, size_t *len) { (void)len; b[3] = 15; }
static void other_cluster(uint8_t *b, size_t *len) { (void)len; b[7] ^= 1; }
static void header_flags(uint8_t *b, size_t *len)
{
	(void)len;
	b[10] = PX_FLAG_READ;
}
static void header_status(uint8_t *b, size_t *len) { (void)len; b[11] = 1; }
static void header_reserved(uint8_t *b, size_t *len) { (void)len; b[13] = 1; }
static void count_zero(uint8_t *b, size_t *len) { (void)len; b[16] = 0; }
static void count_over(uint8_t *b, size_t *len) { (void)len; b[16] = 65; }
static void count_high(uint8_t *b, size_t *len) { (void)len; b[16] = 4; }
static void count_low(uint8_t *b, size_t *len) { (void)len; b[16] = 2; }
static void body_reserved(uint8_t *b, size_t *len) { (void)len; b[17] = 1; }
static void one_byte_short(uint8_t *b, size_t *len)
{
	(void)b;
	(*len)--;
}
static void one_byte_long(uint8_t *b, size_t *len)
{
	b[*len] = 0;
	(*len)++;
}
static void length_field_off(uint8_t *b, size_t *len)
{
	put_be16_at(b + 14, (uint16_t)(*len - 16 + 1));
}
static void no_count_byte(uint8_t *b, size_t *len)
{
	*len = 17;
	put_be16_at(b + 14, 1);
}
static void entry_flag_unknown(uint8_t *b, size_t *len)
{
	(void)len;
	b[18 + 16] = PX_FLAG_RECOVERY;
}
static void entry_status_on_request(uint8_t *b, size_t *len)
{
	(void)len;
	b[18 + 17] = 1;
}
static void entry_value_past_end(uint8_t *b, size_t *len)
{
	(void)len;
	put_be16_at(b + 18 + 18, 200); /* the OPEN claims 200 bytes */
}
static void entry_value_over_max(uint8_t *b, size_t *len)
{
	(void)len;
	put_be16_at(b + 18 + 18, PX_VALUE_BYTES_MAX + 1);
}
static void over_the_packet(uint8_t *b, size_t *len)
{
	/* 1473 bytes with the count and length claiming them. */
	size_t want = BPX_WIRE_MULTI_PAYLOAD_MAX + 1;
	memset(b + *len, 0, want - *len);
	put_be16_at(b + 18 + 20 + 20 + 10 + 18,
		    (uint16_t)(7 + want - *len));
	*len = want;
	put_be16_at(b + 14, (uint16_t)(want - 16));
}

static void test_decode_drop_reasons(void **state)
{
	(void)state;
	expect_drop(short_header, BPX_WIRE_TRUNCATED);
	expect_drop(bad_magic, BPX_WIRE_BAD_MAGIC);
	expect_drop(bad_version, BPX_WIRE_BAD_VERSION);
	expect_drop(single_type, BPX_WIRE_BAD_TYPE);
	expect_drop(type_15, BPX_WIRE_BAD_TYPE);
	expect_drop(other_cluster, BPX_WIRE_WRONG_CLUSTER);
	expect_drop(header_flags, BPX_WIRE_BAD_FIELD);
	expect_drop(header_status, BPX_WIRE_BAD_FIELD);
	expect_drop(header_reserved, BPX_WIRE_BAD_FIELD);
	expect_drop(count_zero, BPX_WIRE_BAD_FIELD);
	expect_drop(count_over, BPX_WIRE_BAD_FIELD);
	expect_drop(body_reserved, BPX_WIRE_BAD_FIELD);
	expect_drop(count_high, BPX_WIRE_BAD_LENGTH);
	expect_drop(count_low, BPX_WIRE_BAD_LENGTH);
	expect_drop(one_byte_short, BPX_WIRE_BAD_LENGTH);
	expect_drop(one_byte_long, BPX_WIRE_BAD_LENGTH);
	expect_drop(length_field_off, BPX_WIRE_BAD_LENGTH);
	expect_drop(no_count_byte, BPX_WIRE_BAD_LENGTH);
	expect_drop(entry_flag_unknown, BPX_WIRE_BAD_FIELD);
	expect_drop(entry_status_on_request, BPX_WIRE_BAD_FIELD);
	expect_drop(entry_value_past_end, BPX_WIRE_BAD_LENGTH);
	expect_drop(entry_value_over_max, BPX_WIRE_BAD_LENGTH);
	expect_drop(over_the_packet, BPX_WIRE_BAD_LENGTH);
}

/* A reply entry with a flag, or a status past PX_REPLY_STATUS_MAX. */
static void test_reply_entry_drops(void **state)
{
	(void)state;
	uint8_t buf[128];
	struct bpx_wire_packer w;
	assert_int_equal(bpx_wire_multi_begin(&w, buf, sizeof(buf), CLUSTER_ID,
					      BPX_WIRE_MULTI_REPLY, 0,
					      PX_TO_CLIENT, 0),
			 0);
	struct px_msg r = { .client_id = 1, .seq = 1 };
	assert_int_equal(bpx_wire_multi_add(&w, &r), 0);
	size_t len = bpx_wire_multi_finish(&w);
	struct bpx_wire_unpacker u;
	buf[18 + 16] = PX_FLAG_OPEN;
	assert_int_equal(bpx_wire_multi_decode(buf, len, CLUSTER_ID, &u),
			 BPX_WIRE_BAD_FIELD);
	buf[18 + 16] = 0;
	buf[18 + 17] = PX_REPLY_STATUS_MAX + 1;
	assert_int_equal(bpx_wire_multi_decode(buf, len, CLUSTER_ID, &u),
			 BPX_WIRE_BAD_FIELD);
	buf[18 + 17] = PX_REPLY_STATUS_MAX;
	assert_int_equal(bpx_wire_multi_decode(buf, len, CLUSTER_ID, &u),
			 BPX_WIRE_OK);
}

/* A single REQUEST is not a multi message (old clients keep their
 * format; a receiver picks the decoder by the type byte). */
static void test_single_is_not_multi(void **state)
{
	(void)state;
	uint8_t buf[64];
	struct px_msg m = { .type = PX_MSG_REQUEST, .from = PX_TO_CLIENT,
			    .to = 0, .client_id = 5, .seq = 1 };
	int n = bpx_wire_encode(buf, sizeof(buf), CLUSTER_ID, &m);
	assert_int_equal(n, 32);
	struct bpx_wire_unpacker u;
	assert_int_equal(bpx_wire_multi_decode(buf, (size_t)n, CLUSTER_ID, &u),
			 BPX_WIRE_BAD_TYPE);
	struct px_msg back;
	assert_int_equal(bpx_wire_decode(buf, (size_t)n, CLUSTER_ID, &back),
			 BPX_WIRE_OK);
	assert_int_equal(bpx_wire_type_of(buf, (size_t)n), PX_MSG_REQUEST);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_request_round_trip),
		cmocka_unit_test(test_request_layout),
		cmocka_unit_test(test_reply_round_trip),
		cmocka_unit_test(test_bounds),
		cmocka_unit_test(test_packer_refuses_what_decode_drops),
		cmocka_unit_test(test_decode_drop_reasons),
		cmocka_unit_test(test_reply_entry_drops),
		cmocka_unit_test(test_single_is_not_multi),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
