/* Unit tests for the cluster key's tags (dataplane/auth.c, auth.h,
 * docs/wire.md "Authentication").
 *
 * The tag is keyed BLAKE2b-128: a known answer computed by two other
 * implementations (CPython's hashlib and OpenSSL's BLAKE2BMAC) pins it,
 * so a change of library can keep the wire. Then the rules: a signed
 * message verifies; any one byte changed, the tag included, or another
 * key, and it does not; the receive rule of the data plane on real
 * encoded messages, with and without a key, at the largest sizes.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdbool.h>
#include <string.h>

#include "bypax/auth.h"
#include "bypax/consensus.h"
#include "bypax/wire.h"

#define CLUSTER_ID 0x5eed0001u

static struct bpx_auth_key key_of(uint8_t first)
{
	struct bpx_auth_key k = { .enabled = true };
	for (unsigned i = 0; i < BPX_AUTH_KEY_BYTES; i++)
		k.bytes[i] = (uint8_t)(first + i);
	return k;
}

static int setup(void **state)
{
	(void)state;
	return bpx_auth_init();
}

/* key = 00 01 .. 1f, message = 00 01 .. 3f. The same answer from
 *   python3 -c 'import hashlib; print(hashlib.blake2b(bytes(range(64)),
 *     key=bytes(range(32)), digest_size=16).hexdigest())'
 * and from `openssl mac -macopt hexkey:0001..1f -macopt size:16
 * BLAKE2BMAC`. */
static void test_known_answer(void **state)
{
	(void)state;
	static const uint8_t want[BPX_AUTH_TAG_BYTES] = {
		0xd7, 0x00, 0x96, 0x91, 0x91, 0x89, 0xec, 0x3b,
		0x38, 0x6b, 0x4d, 0xe2, 0xe4, 0xcf, 0x86, 0xd4,
	};
	struct bpx_auth_key k = key_of(0);
	uint8_t msg[64], tag[BPX_AUTH_TAG_BYTES];
	for (unsigned i = 0; i < sizeof(msg); i++)
		msg[i] = (uint8_t)i;
	bpx_auth_sign(&k, msg, sizeof(msg), tag);
	assert_memory_equal(tag, want, sizeof(want));
	/* The two-segment form is the same function of the bytes. */
	for (size_t cut = 0; cut <= sizeof(msg); cut += 7) {
		memset(tag, 0, sizeof(tag));
		bpx_auth_sign2(&k, msg, cut, msg + cut, sizeof(msg) - cut, tag);
		assert_memory_equal(tag, want, sizeof(want));
	}
}

/* Any one byte changed, of the message or of the tag, fails. */
static void test_tamper_one_byte(void **state)
{
	(void)state;
	struct bpx_auth_key k = key_of(0x40);
	uint8_t buf[200 + BPX_AUTH_TAG_BYTES];
	for (unsigned i = 0; i < 200; i++)
		buf[i] = (uint8_t)(i * 7);
	bpx_auth_sign(&k, buf, 200, buf + 200);
	assert_true(bpx_auth_verify(&k, buf, sizeof(buf)));
	for (size_t i = 0; i < sizeof(buf); i++) {
		buf[i] ^= 0x01;
		assert_false(bpx_auth_verify(&k, buf, sizeof(buf)));
		buf[i] ^= 0x01;
	}
	/* One byte shorter or longer is another message. */
	assert_false(bpx_auth_verify(&k, buf, sizeof(buf) - 1));
	assert_false(bpx_auth_verify(&k, buf, 0));
	assert_false(bpx_auth_verify(&k, buf, BPX_AUTH_TAG_BYTES - 1));
}

static void test_wrong_key(void **state)
{
	(void)state;
	struct bpx_auth_key ours = key_of(1), theirs = key_of(1);
	theirs.bytes[31] ^= 0x80; /* one bit of 256 */
	uint8_t buf[64 + BPX_AUTH_TAG_BYTES] = { 0 };
	bpx_auth_sign(&theirs, buf, 64, buf + 64);
	assert_true(bpx_auth_verify(&theirs, buf, sizeof(buf)));
	assert_false(bpx_auth_verify(&ours, buf, sizeof(buf)));
}

static int encode(uint8_t *buf, size_t cap, const struct px_msg *m)
{
	int n = bpx_wire_encode(buf, cap, CLUSTER_ID, m);
	assert_true(n > 0);
	return n;
}

static size_t signed_message(const struct bpx_auth_key *k, uint8_t *buf,
			     size_t cap, const struct px_msg *m)
{
	int n = encode(buf, cap, m);
	assert_true((size_t)n + BPX_AUTH_TAG_BYTES <= cap);
	bpx_auth_sign(k, buf, (size_t)n, buf + n);
	return (size_t)n + BPX_AUTH_TAG_BYTES;
}

static enum bpx_wire_drop receive(const struct bpx_auth_key *k,
				  const uint8_t *buf, size_t len,
				  struct px_msg *out)
{
	size_t body = 0;
	enum bpx_wire_drop d =
		bpx_auth_check_payload(k, CLUSTER_ID, buf, len, &body);
	if (d != BPX_WIRE_OK)
		return d;
	assert_true(body == len || body == len - BPX_AUTH_TAG_BYTES);
	return bpx_wire_decode(buf, body, CLUSTER_ID, out);
}

/* No key configured: no tag, no check; the wire is as before. */
static void test_no_key_interoperates(void **state)
{
	(void)state;
	struct bpx_auth_key none = { .enabled = false };
	uint8_t buf[BPX_WIRE_PAYLOAD_MAX];
	struct px_msg m = { .type = PX_MSG_COMMIT, .from = 1, .to = 2,
			    .ballot = 0x105, .commit_index = 9, .seq = 3 };
	int n = encode(buf, sizeof(buf), &m);
	struct px_msg got;
	assert_int_equal(receive(&none, buf, (size_t)n, &got), BPX_WIRE_OK);
	assert_int_equal(got.commit_index, 9);
	/* A tagged message at a keyless receiver is one of the wrong length:
	 * a mixed cluster shows in the counters. */
	struct bpx_auth_key k = key_of(2);
	size_t len = signed_message(&k, buf, sizeof(buf), &m);
	assert_int_equal(receive(&none, buf, len, &got), BPX_WIRE_BAD_LENGTH);
	assert_false(bpx_auth_type_signed(PX_MSG_REQUEST));
	assert_false(bpx_auth_type_signed(PX_MSG_REPLY));
	assert_false(bpx_auth_type_signed(BPX_WIRE_MULTI_REQUEST));
	assert_false(bpx_auth_type_signed(BPX_WIRE_MULTI_REPLY));
	for (uint8_t t = PX_MSG_PREPARE; t <= BPX_WIRE_TYPE_MAX; t++)
		if (t != PX_MSG_REPLY)
			assert_true(bpx_auth_type_signed(t));
}

static void test_receive_rule(void **state)
{
	(void)state;
	struct bpx_auth_key k = key_of(3), other = key_of(4);
	uint8_t buf[BPX_WIRE_PAYLOAD_MAX + BPX_AUTH_TAG_BYTES];
	struct px_msg m = { .type = PX_MSG_ACCEPTED, .from = 0, .to = 1,
			    .ballot = 0x200, .slot = 77 };
	struct px_msg got;
	size_t len = signed_message(&k, buf, sizeof(buf), &m);
	assert_int_equal(receive(&k, buf, len, &got), BPX_WIRE_OK);
	assert_int_equal(got.slot, 77);
	/* Unsigned (a member without the key), or another key: bad MAC. */
	assert_int_equal(receive(&k, buf, len - BPX_AUTH_TAG_BYTES, &got),
			 BPX_WIRE_BAD_MAC);
	assert_int_equal(receive(&other, buf, len, &got), BPX_WIRE_BAD_MAC);
	/* One byte of the body changed: bad MAC, not a decode error. */
	buf[30] ^= 0x10;
	assert_int_equal(receive(&k, buf, len, &got), BPX_WIRE_BAD_MAC);
	buf[30] ^= 0x10;
	/* A client's REQUEST carries no tag and needs none. */
	struct px_msg req = { .type = PX_MSG_REQUEST, .from = 0xff, .to = 0,
			      .client_id = 5, .seq = 1 };
	int n = encode(buf, sizeof(buf), &req);
	assert_int_equal(receive(&k, buf, (size_t)n, &got), BPX_WIRE_OK);
	assert_int_equal(got.client_id, 5);
	/* Nor does a packed one (docs/wire.md, "Packed requests and
	 * replies"): it is left whole to its decoder. */
	struct bpx_wire_packer w;
	assert_int_equal(bpx_wire_multi_begin(&w, buf, sizeof(buf), CLUSTER_ID,
					      BPX_WIRE_MULTI_REQUEST, 0xff, 0,
					      0xff),
			 0);
	assert_int_equal(bpx_wire_multi_add(&w, &req), 0);
	size_t packed = bpx_wire_multi_finish(&w);
	size_t body = 0;
	assert_int_equal(bpx_auth_check_payload(&k, CLUSTER_ID, buf, packed,
						&body),
			 BPX_WIRE_OK);
	assert_int_equal(body, packed);
	/* Another cluster's message is named as that, not as bad MAC. */
	n = bpx_wire_encode(buf, sizeof(buf), CLUSTER_ID + 1, &m);
	assert_int_equal(receive(&k, buf, (size_t)n, &got),
			 BPX_WIRE_WRONG_CLUSTER);
	/* Too short to claim anything: decoded, and truncated. */
	assert_int_equal(receive(&k, buf, 3, &got), BPX_WIRE_TRUNCATED);
}

/* The largest messages with their tags: a PROMISE carrying a full batch
 * of the keyed budget fits a 1500-byte IP MTU; a SNAPSHOT_CHUNK of the
 * full value limit does too; both verify. */
static void test_largest_frames(void **state)
{
	(void)state;
	struct bpx_auth_key k = key_of(5);
	static uint8_t value[PX_VALUE_BYTES_MAX];
	static uint8_t buf[BPX_WIRE_PAYLOAD_MAX + BPX_AUTH_TAG_BYTES];
	memset(value, 0xab, sizeof(value));
	struct px_msg promise = { .type = PX_MSG_PROMISE, .from = 2, .to = 0,
				  .ballot = 0x301, .slot = 4, .slot_end = 5,
				  .accepted_ballot = 0x201, .value = value,
				  .value_len = BPX_AUTH_BATCH_BYTES_MAX };
	struct px_msg chunk = { .type = BPX_WIRE_SNAPSHOT_CHUNK, .from = 1,
				.to = 2, .slot = 9, .slot_end = 100000,
				.value = value, .value_len = PX_VALUE_BYTES_MAX };
	const struct px_msg *ms[] = { &promise, &chunk };
	for (unsigned i = 0; i < 2; i++) {
		struct px_msg got;
		size_t len = signed_message(&k, buf, sizeof(buf), ms[i]);
		assert_true(20 + 8 + len <= 1500);
		assert_int_equal(receive(&k, buf, len, &got), BPX_WIRE_OK);
		assert_int_equal(got.value_len, ms[i]->value_len);
		assert_memory_equal(got.value, value, got.value_len);
		buf[len - 1] ^= 1;
		assert_int_equal(receive(&k, buf, len, &got), BPX_WIRE_BAD_MAC);
	}
	assert_int_equal(BPX_AUTH_BATCH_BYTES_MAX, 1376);
}

/* The drop as docs/wire.md numbers it (telemetry drop_18) and names it. */
static void test_drop_reason(void **state)
{
	(void)state;
	assert_int_equal(BPX_WIRE_BAD_MAC, 18);
	assert_string_equal(bpx_wire_drop_name(BPX_WIRE_BAD_MAC), "bad MAC");
	assert_int_equal(BPX_AUTH_TAG_BYTES, 16);
	assert_int_equal(BPX_AUTH_KEY_BYTES, 32);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_known_answer),
		cmocka_unit_test(test_tamper_one_byte),
		cmocka_unit_test(test_wrong_key),
		cmocka_unit_test(test_no_key_interoperates),
		cmocka_unit_test(test_receive_rule),
		cmocka_unit_test(test_largest_frames),
		cmocka_unit_test(test_drop_reason),
	};
	return cmocka_run_group_tests(tests, setup, NULL);
}
