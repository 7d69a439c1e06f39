/* Unit tests for batching (consensus/batch.c, and how proposer.c fills a
 * slot): the batch codec, its limits, and what a replica does with a batch
 * that does not parse. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "bypax/kv.h"
#include "cluster.h"
#include "internal.h"

static int setup3(void **state)
{
	return cluster_cmocka_setup(state, 3, NULL);
}
static int teardown(void **state)
{
	return cluster_cmocka_teardown(state);
}

/* Slots of at most 200 bytes. */
static int setup3_small_batches(void **state)
{
	struct px_config cfg;
	cluster_config_default(&cfg, 3);
	cfg.batch_bytes_max = 200;
	return cluster_cmocka_setup(state, 3, &cfg);
}

static struct px_pending pending(uint64_t client, uint64_t seq, uint32_t len,
				 uint8_t fill)
{
	struct px_pending p = { .client_id = client, .seq = seq, .len = len };
	memset(p.cmd, fill, len);
	return p;
}

/* Requests in a batch, or -1 if it does not parse to the end. */
static int batch_count(const uint8_t *value, uint32_t len)
{
	struct px_batch_iter it;
	struct px_batch_entry e;
	int n = 0, rc;
	px_batch_iter_init(&it, value, len);
	while ((rc = px_batch_next(&it, &e)) == 1)
		n++;
	return rc == 0 ? n : -1;
}

/* ---- The codec ---- */

static void test_little_endian_helpers(void **state)
{
	(void)state;
	uint8_t b[8];
	px_put_u16(b, 0x1234);
	assert_int_equal(b[0], 0x34);
	assert_int_equal(b[1], 0x12);
	assert_int_equal(px_get_u16(b), 0x1234);
	px_put_u32(b, 0x89abcdefu);
	assert_int_equal(b[0], 0xef);
	assert_int_equal(b[3], 0x89);
	assert_int_equal(px_get_u32(b), 0x89abcdefu);
	px_put_u64(b, 0x0102030405060708ull);
	for (int i = 0; i < 8; i++)
		assert_int_equal(b[i], 8 - i);
	assert_int_equal(px_get_u64(b), 0x0102030405060708ull);
	px_put_u64(b, UINT64_MAX);
	assert_int_equal(px_get_u64(b), UINT64_MAX);
}

static void test_codec_round_trip(void **state)
{
	(void)state;
	uint8_t value[PX_VALUE_BYTES_MAX];
	const uint32_t lens[] = { 0, 1, 17, 300, 5 };
	uint32_t len = 0;
	for (uint32_t i = 0; i < 5; i++) {
		struct px_pending p =
			pending(1000 + i, 7 * i + 1, lens[i], (uint8_t)i);
		uint32_t next = px_batch_append(value, len, sizeof(value), &p);
		assert_int_equal(next,
				 len + PX_BATCH_ENTRY_HEADER_BYTES + lens[i]);
		len = next;
	}
	/* The wire layout: u64 client, u64 seq, u16 length, command. */
	assert_int_equal(px_get_u64(value), 1000);
	assert_int_equal(px_get_u64(value + 8), 1);
	assert_int_equal(px_get_u16(value + 16), 0);

	struct px_batch_iter it;
	struct px_batch_entry e;
	px_batch_iter_init(&it, value, len);
	for (uint32_t i = 0; i < 5; i++) {
		assert_int_equal(px_batch_next(&it, &e), 1);
		assert_int_equal(e.client_id, 1000 + i);
		assert_int_equal(e.seq, 7 * i + 1);
		assert_int_equal(e.len, lens[i]);
		for (uint32_t k = 0; k < e.len; k++)
			assert_int_equal(e.cmd[k], i);
	}
	assert_int_equal(px_batch_next(&it, &e), 0);
	assert_int_equal(px_batch_next(&it, &e), 0); /* and stays there */
}

/* An empty value is a no-op: a batch of nothing. */
static void test_empty_batch_is_a_noop(void **state)
{
	(void)state;
	uint8_t unused[1] = { 0 };
	assert_int_equal(batch_count(unused, 0), 0);
}

/* append refuses (returns len unchanged) what does not fit in cap. */
static void test_append_respects_cap(void **state)
{
	(void)state;
	uint8_t value[PX_VALUE_BYTES_MAX];
	struct px_pending p = pending(1, 1, 10, 0xaa);
	const uint32_t one = PX_BATCH_ENTRY_HEADER_BYTES + 10;
	assert_int_equal(px_batch_append(value, 0, one, &p), one);
	assert_int_equal(px_batch_append(value, 0, one - 1, &p), 0);
	assert_int_equal(px_batch_append(value, one, 2 * one, &p), 2 * one);
	assert_int_equal(px_batch_append(value, one, 2 * one - 1, &p), one);
	/* A length past cap is refused, not wrapped around. */
	assert_int_equal(px_batch_append(value, 5, 4, &p), 5);
	struct px_pending big = pending(1, 1, PX_COMMAND_BYTES_MAX, 0);
	assert_int_equal(px_batch_append(value, 0, PX_VALUE_BYTES_MAX, &big),
			 PX_VALUE_BYTES_MAX);
	assert_int_equal(px_batch_append(value, 1, PX_VALUE_BYTES_MAX, &big),
			 1);
}

static void test_malformed_batches(void **state)
{
	(void)state;
	uint8_t value[256];
	struct px_pending p = pending(3, 4, 20, 0x55);
	uint32_t len = px_batch_append(value, 0, sizeof(value), &p);
	len = px_batch_append(value, len, sizeof(value), &p);
	assert_int_equal(batch_count(value, len), 2);
	/* Every truncation of a good batch fails at its broken entry. */
	for (uint32_t cut = 1; cut < len; cut++) {
		if (cut == PX_BATCH_ENTRY_HEADER_BYTES + 20)
			continue; /* a whole first entry: fine */
		assert_int_equal(batch_count(value, cut), -1);
	}
	/* A length beyond the end, and the largest length. */
	px_put_u16(value + 16, 21);
	struct px_batch_iter it;
	struct px_batch_entry e;
	px_batch_iter_init(&it, value, PX_BATCH_ENTRY_HEADER_BYTES + 20);
	assert_int_equal(px_batch_next(&it, &e), -BPX_EMALFORMED);
	px_put_u16(value + 16, UINT16_MAX);
	px_batch_iter_init(&it, value, len);
	assert_int_equal(px_batch_next(&it, &e), -BPX_EMALFORMED);
	/* A good entry, then garbage: the first still comes out. */
	px_put_u16(value + 16, 20);
	px_put_u16(value + 16 + PX_BATCH_ENTRY_HEADER_BYTES + 20, 200);
	px_batch_iter_init(&it, value, len);
	assert_int_equal(px_batch_next(&it, &e), 1);
	assert_int_equal(px_batch_next(&it, &e), -BPX_EMALFORMED);
}

/* ---- Filling slots ---- */

/* The ACCEPT values leader 0 sent to replica 1, in slot order. */
static size_t accepted_batches(const struct cluster *c, int *counts,
			       uint32_t *lens, size_t max)
{
	size_t n = 0;
	uint64_t first = 0;
	for (size_t k = c->head; k < c->len && n < max; k++) {
		const struct px_msg *m = &c->queue[k].msg;
		if (m->type != PX_MSG_ACCEPT || m->from != 0 || m->to != 1)
			continue;
		if (n == 0)
			first = m->slot;
		assert_int_equal(m->slot, first + n);
		counts[n] = batch_count(m->value, m->value_len);
		lens[n++] = m->value_len;
	}
	return n;
}

/* Opens n sessions through leader 0, one slot each. */
static void open_sessions(struct cluster *c, uint64_t *ids, size_t n)
{
	for (size_t k = 0; k < n; k++)
		ids[k] = cluster_open_session(c, 0);
}

/* A slot takes at most batch_requests_max requests. */
static void test_batch_requests_max(void **state)
{
	struct cluster *c = *state;
	CLUSTER_ELECT(0);
	uint64_t ids[20];
	open_sessions(c, ids, 20);
	uint64_t slots_before = px_stats(CLUSTER_PX(0))->slots_proposed;
	uint64_t batched_before = px_stats(CLUSTER_PX(0))->batch_requests_total;
	uint8_t cmd[64];
	uint32_t len = cluster_encode_put(cmd, sizeof(cmd), "k", "v");
	for (uint64_t k = 0; k < 20; k++)
		assert_int_equal(cluster_request(c, 0, ids[k], 1, cmd, len),
				 0);
	cluster_flush(c, 0);
	int counts[8];
	uint32_t lens[8];
	assert_int_equal(accepted_batches(c, counts, lens, 8), 3);
	assert_int_equal(counts[0], 8);
	assert_int_equal(counts[1], 8);
	assert_int_equal(counts[2], 4);
	const struct px_stats *st = px_stats(CLUSTER_PX(0));
	assert_int_equal(st->slots_proposed - slots_before, 3);
	assert_int_equal(st->batch_requests_total - batched_before, 20);
	CLUSTER_DELIVER_ALL();
	assert_int_equal(px_stats(CLUSTER_PX(0))->requests_applied, 20);
	for (uint64_t k = 0; k < 20; k++)
		ASSERT_REPLY(ids[k], 1, PX_REPLY_OK);
}

/* A slot's value stays within batch_bytes_max. */
static void test_batch_bytes_max(void **state)
{
	struct cluster *c = *state;
	CLUSTER_ELECT(0);
	uint8_t cmd[64];
	memset(cmd, 0, sizeof(cmd));
	uint32_t len = cluster_encode_put(cmd, sizeof(cmd), "key",
					  "a-value-that-takes-room-0123456789"
					  "0123456789");
	uint32_t entry = PX_BATCH_ENTRY_HEADER_BYTES + len;
	assert_true(2 * entry <= 200 && 3 * entry > 200);
	uint64_t ids[5];
	open_sessions(c, ids, 5);
	for (uint64_t k = 0; k < 5; k++)
		assert_int_equal(cluster_request(c, 0, ids[k], 1, cmd, len),
				 0);
	cluster_flush(c, 0);
	int counts[8];
	uint32_t lens[8];
	assert_int_equal(accepted_batches(c, counts, lens, 8), 3);
	assert_int_equal(counts[0], 2);
	assert_int_equal(counts[1], 2);
	assert_int_equal(counts[2], 1);
	for (int i = 0; i < 3; i++)
		assert_true(lens[i] <= 200);
	CLUSTER_DELIVER_ALL();
	for (uint64_t k = 0; k < 5; k++)
		ASSERT_REPLY(ids[k], 1, PX_REPLY_OK);
}

/* A lone request does not wait for company; what arrives while its slot
 * is in flight goes into the next slot together. */
static void test_lone_request_goes_alone(void **state)
{
	struct cluster *c = *state;
	CLUSTER_ELECT(0);
	uint64_t ids[4];
	open_sessions(c, ids, 4);
	CLUSTER_SUBMIT_PUT(0, ids[0], 1, "k", "v");
	int counts[8];
	uint32_t lens[8];
	assert_int_equal(accepted_batches(c, counts, lens, 8), 1);
	assert_int_equal(counts[0], 1);
	uint8_t cmd[64];
	uint32_t len = cluster_encode_put(cmd, sizeof(cmd), "k", "w");
	for (uint64_t k = 1; k < 4; k++)
		assert_int_equal(cluster_request(c, 0, ids[k], 1, cmd, len),
				 0);
	cluster_flush(c, 0);
	assert_int_equal(accepted_batches(c, counts, lens, 8), 2);
	assert_int_equal(counts[1], 3);
	CLUSTER_DELIVER_ALL();
	for (uint64_t k = 0; k < 4; k++)
		ASSERT_REPLY(ids[k], 1, PX_REPLY_OK);
}

/* A command that cannot fit in a slot is answered TOO_BIG at once; the
 * largest that fits goes through. */
static void test_too_big_command(void **state)
{
	struct cluster *c = *state;
	CLUSTER_ELECT(0);
	static uint8_t cmd[PX_VALUE_BYTES_MAX];
	memset(cmd, 'x', sizeof(cmd));
	uint64_t s7 = CLUSTER_OPEN_SESSION(0), s8 = CLUSTER_OPEN_SESSION(0);
	uint32_t fits = c->tmpl.batch_bytes_max - PX_BATCH_ENTRY_HEADER_BYTES;
	assert_int_equal(cluster_request(c, 0, s7, 1, cmd, fits + 1), 0);
	ASSERT_REPLY(s7, 1, PX_REPLY_TOO_BIG);
	assert_int_equal(px_queue_depth(CLUSTER_PX(0)), 0);
	assert_int_equal(cluster_request(c, 0, s7, 2, cmd, PX_VALUE_BYTES_MAX),
			 0);
	ASSERT_REPLY(s7, 2, PX_REPLY_TOO_BIG);
	assert_int_equal(cluster_request(c, 0, s8, 1, cmd, fits), 0);
	cluster_flush(c, 0);
	CLUSTER_DELIVER_ALL();
	/* Not a KV command: the state machine says so, but it is applied. */
	ASSERT_REPLY(s8, 1, PX_REPLY_OK);
	const struct cluster_reply *r = CLUSTER_REPLY(s8, 1);
	assert_true(r->value_len >= 1);
	assert_int_equal(r->value[0], BPX_KV_BAD_COMMAND);
}

/* A chosen value that does not parse is applied up to its bad entry, the
 * same way on every replica, and nothing breaks. */
static void test_malformed_chosen_batch_is_skipped_alike(void **state)
{
	struct cluster *c = *state;
	uint8_t value[192];
	uint8_t cmd[64];
	/* An OPEN, a write on the session it opens, and a write cut short. */
	struct px_pending p = { .client_id = 5, .seq = 1 | PX_SEQ_OPEN_BIT };
	uint32_t len = px_batch_append(value, 0, sizeof(value), &p);
	p.client_id = px_session_id_make(0, 0);
	p.seq = 1;
	p.len = cluster_encode_put(cmd, sizeof(cmd), "k", "v");
	memcpy(p.cmd, cmd, p.len);
	len = px_batch_append(value, len, sizeof(value), &p);
	p.seq = 2;
	len = px_batch_append(value, len, sizeof(value), &p);
	len -= 3; /* the third entry is cut short */
	for (uint8_t i = 1; i < 3; i++) {
		struct px_msg chosen = {
			.type = PX_MSG_CHOSEN,
			.from = 0,
			.to = i,
			.slot = 0,
			.value = value,
			.value_len = len,
			.commit_index = 1,
			.ballot = px_ballot_make(1, 0),
		};
		assert_int_equal(CLUSTER_INJECT(i, &chosen), 0);
		ASSERT_APPLIED(i, 1);
		assert_int_equal(px_stats(CLUSTER_PX(i))->sessions_opened, 1);
		assert_int_equal(px_stats(CLUSTER_PX(i))->requests_applied, 1);
	}
	ASSERT_SAME_STATE(1, 2);
}

/* Appends a PUT key=value by session (slot 0, index) with this seq. */
static uint32_t append_put(uint8_t *value, uint32_t len, size_t cap,
			   uint32_t session_index, uint64_t seq,
			   const char *key, const char *v)
{
	struct px_pending p = { .seq = seq };
	p.client_id = px_session_id_make(0, session_index);
	p.len = cluster_encode_put(p.cmd, sizeof(p.cmd), key, v);
	return px_batch_append(value, len, (uint32_t)cap, &p);
}

static void inject_chosen(struct cluster *c, uint8_t i, uint64_t slot,
			  const uint8_t *value, uint32_t len)
{
	struct px_msg chosen = {
		.type = PX_MSG_CHOSEN,
		.from = 0,
		.to = i,
		.slot = slot,
		.value = value,
		.value_len = len,
		.commit_index = slot + 1,
		.ballot = px_ballot_make(1, 0),
	};
	assert_int_equal(CLUSTER_INJECT(i, &chosen), 0);
}

static void assert_kv_value(struct cluster *c, uint8_t i, const char *key,
			    const char *want)
{
	uint8_t cmd[64], reply[64];
	int n = bpx_kv_encode(cmd, sizeof(cmd), BPX_KV_GET, key, strlen(key),
			      NULL, 0, NULL, 0);
	assert_true(n > 0);
	int len = bpx_kv_ops()->read(c->nodes[i].sm, cmd, (uint32_t)n, reply,
				     sizeof(reply));
	uint8_t status;
	const uint8_t *v;
	uint16_t v_len;
	int err = bpx_kv_decode_reply(reply, (size_t)len, &status, &v, &v_len);
	assert_int_equal(err, 0);
	assert_int_equal(status, BPX_KV_OK);
	assert_int_equal(v_len, strlen(want));
	assert_memory_equal(v, want, v_len);
}

/* Committed requests are applied in log order, within a batch and across
 * slots, however many the learner prefetches together: slots 2, 1 and 0
 * arrive in that order, so all three are applied in one run (one prefetch
 * of their 7 commands). Each key's last writer must win: writes from two
 * sessions to k1 in one batch, and to k2 in two slots. */
static void test_commands_apply_in_log_order(void **state)
{
	struct cluster *c = *state;
	uint8_t slot0[512], slot1[128], slot2[128];
	struct px_pending open = { .client_id = 5, .seq = 1 | PX_SEQ_OPEN_BIT };
	uint32_t len0 = px_batch_append(slot0, 0, sizeof(slot0), &open);
	open.client_id = 6;
	len0 = px_batch_append(slot0, len0, sizeof(slot0), &open);
	len0 = append_put(slot0, len0, sizeof(slot0), 0, 1, "k3", "a0");
	len0 = append_put(slot0, len0, sizeof(slot0), 0, 2, "k1", "a0");
	len0 = append_put(slot0, len0, sizeof(slot0), 1, 1, "k1", "b0");
	uint32_t len1 = append_put(slot1, 0, sizeof(slot1), 0, 3, "k2", "a1");
	uint32_t len2 = append_put(slot2, 0, sizeof(slot2), 1, 2, "k2", "b2");
	len2 = append_put(slot2, len2, sizeof(slot2), 0, 4, "k3", "a2");
	for (uint8_t i = 1; i < 3; i++) {
		inject_chosen(c, i, 2, slot2, len2);
		inject_chosen(c, i, 1, slot1, len1);
		ASSERT_APPLIED(i, 0);
		inject_chosen(c, i, 0, slot0, len0);
		ASSERT_APPLIED(i, 3);
		assert_int_equal(px_stats(CLUSTER_PX(i))->requests_applied, 6);
		assert_kv_value(c, i, "k1", "b0");
		assert_kv_value(c, i, "k2", "b2");
		assert_kv_value(c, i, "k3", "a2");
	}
	ASSERT_SAME_STATE(1, 2);
}

int main(void)
{
#define T(f, s) cmocka_unit_test_setup_teardown(f, s, teardown)
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_little_endian_helpers),
		cmocka_unit_test(test_codec_round_trip),
		cmocka_unit_test(test_empty_batch_is_a_noop),
		cmocka_unit_test(test_append_respects_cap),
		cmocka_unit_test(test_malformed_batches),
		T(test_batch_requests_max, setup3),
		T(test_batch_bytes_max, setup3_small_batches),
		T(test_lone_request_goes_alone, setup3),
		T(test_too_big_command, setup3),
		T(test_malformed_chosen_batch_is_skipped_alike, setup3),
		T(test_commands_apply_in_log_order, setup3),
	};
#undef T
	return cmocka_run_group_tests(tests, NULL, NULL);
}
