/* Unit tests for snapshot files (consensus/snapfile.c): CRC-32C against its
 * known answer, a file's round trip, each refusal of px_snapfile_check
 * (one damage per test, named by the result the reader reports), and a
 * new cluster restored from a file, every member from the same file, as
 * bypaxd --bootstrap --restore does (docs/deploy.md, "Disaster recovery"):
 * the state and the sessions come back, a retry of a write applied before
 * the snapshot is answered from its session and not applied again, and
 * the new cluster takes new writes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "bypax/snapfile.h"
#include "cluster.h"
#include "internal.h"

#define CLUSTER_ID 4242u

static int setup3(void **state)
{
	return cluster_cmocka_setup(state, 3, NULL);
}
static int teardown(void **state)
{
	return cluster_cmocka_teardown(state);
}

/* A session and a few writes through leader 0; returns the session. */
static uint64_t write_some(struct cluster *c, uint64_t writes)
{
	CLUSTER_ELECT(0);
	uint64_t s = CLUSTER_OPEN_SESSION(0);
	char key[16], value[16];
	for (uint64_t i = 1; i <= writes; i++) {
		snprintf(key, sizeof(key), "k%llu", (unsigned long long)i);
		snprintf(value, sizeof(value), "v%llu", (unsigned long long)i);
		CLUSTER_SUBMIT_PUT(0, s, i, key, value);
		CLUSTER_DELIVER_ALL();
		ASSERT_REPLY(s, i, PX_REPLY_OK);
	}
	return s;
}

/* Replica i's state as a file (free() it). */
static uint8_t *file_of(struct cluster *c, uint8_t i, size_t *len)
{
	size_t body_len;
	uint8_t *body = cluster_save(c, i, &body_len);
	size_t cap = (size_t)px_snapfile_size(body_len);
	uint8_t *file = malloc(cap);
	assert_non_null(file);
	int64_t n = px_snapfile_encode(file, cap, CLUSTER_ID, c->n, body,
				       body_len);
	assert_int_equal(n, (int64_t)cap);
	free(body);
	*len = cap;
	return file;
}

/* After a test changed a file on purpose: a new, right checksum, so the
 * check gets past it to what the test damaged. */
static void reseal(uint8_t *file, size_t len)
{
	size_t covered = len - PX_SNAPFILE_TRAILER_BYTES;
	px_snapfile_trailer_encode(file + covered, px_crc32c(0, file, covered));
}

static enum px_snapfile_check check(const uint8_t *file, size_t len)
{
	struct px_snapfile_info info;
	return px_snapfile_check(file, len, &info);
}

/* ---- CRC-32C ---- */

static void test_crc32c_known_answer(void **state)
{
	(void)state;
	/* RFC 3720, B.4, and every CRC-32C implementation: "123456789". */
	const uint8_t digits[] = "123456789";
	assert_int_equal(px_crc32c(0, digits, 9), 0xe3069283u);
	assert_int_equal(px_crc32c(0, NULL, 0), 0);
	/* 32 bytes of zeros (RFC 3720, B.4). */
	uint8_t zeros[32] = { 0 };
	assert_int_equal(px_crc32c(0, zeros, sizeof(zeros)), 0x8a9136aau);
}

static void test_crc32c_chains(void **state)
{
	(void)state;
	uint8_t buf[1000];
	for (size_t i = 0; i < sizeof(buf); i++)
		buf[i] = (uint8_t)(i * 7 + 3);
	uint32_t whole = px_crc32c(0, buf, sizeof(buf));
	for (size_t cut = 0; cut <= sizeof(buf); cut += 111) {
		uint32_t crc = px_crc32c(0, buf, cut);
		assert_int_equal(px_crc32c(crc, buf + cut, sizeof(buf) - cut),
				 whole);
	}
}

/* ---- A file's round trip ---- */

static void test_round_trip(void **state)
{
	struct cluster *c = *state;
	write_some(c, 5);
	size_t len, body_len;
	uint8_t *file = file_of(c, 0, &len);
	uint8_t *body = cluster_save(c, 0, &body_len);
	struct px_snapfile_info info;
	assert_int_equal(px_snapfile_check(file, len, &info), PX_SNAPFILE_OK);
	assert_int_equal(len, body_len + PX_SNAPFILE_HEADER_BYTES +
				      PX_SNAPFILE_TRAILER_BYTES);
	assert_int_equal(info.h.version, PX_SNAPFILE_FORMAT_VERSION);
	assert_int_equal(info.h.cluster_id, CLUSTER_ID);
	assert_int_equal(info.h.member_count, 3);
	assert_int_equal(info.h.applied_index, px_applied_index(CLUSTER_PX(0)));
	assert_int_equal(info.h.body_bytes, body_len);
	assert_int_equal(info.body_index, info.h.applied_index);
	assert_int_equal(info.crc_stored, info.crc_computed);
	assert_ptr_equal(info.body, file + PX_SNAPFILE_HEADER_BYTES);
	assert_memory_equal(info.body, body, body_len);
	/* The magic spells BPXF on disk, for `head -c 4`. */
	assert_memory_equal(file, "BPXF", 4);
	free(body);
	free(file);
}

static void test_encode_needs_room_and_a_snapshot(void **state)
{
	struct cluster *c = *state;
	size_t body_len;
	uint8_t *body = cluster_save(c, 0, &body_len);
	size_t cap = (size_t)px_snapfile_size(body_len);
	uint8_t *file = malloc(cap);
	assert_non_null(file);
	assert_int_equal(px_snapfile_encode(file, cap - 1, 1, 3, body, body_len),
			 -BPX_ETOOBIG);
	body[0] ^= 1; /* not a consensus snapshot */
	assert_int_equal(px_snapfile_encode(file, cap, 1, 3, body, body_len),
			 -BPX_EMALFORMED);
	free(file);
	free(body);
}

/* ---- Refusals: one damage each ---- */

static void test_refuses_short_files(void **state)
{
	struct cluster *c = *state;
	size_t len;
	uint8_t *file = file_of(c, 0, &len);
	assert_int_equal(check(file, 0), PX_SNAPFILE_SHORT);
	assert_int_equal(check(NULL, 0), PX_SNAPFILE_SHORT);
	assert_int_equal(check(file, 3), PX_SNAPFILE_SHORT);
	assert_int_equal(check(file, PX_SNAPFILE_HEADER_BYTES - 1),
			 PX_SNAPFILE_SHORT);
	/* A header and no trailer: its length is wrong. */
	assert_int_equal(check(file, PX_SNAPFILE_HEADER_BYTES),
			 PX_SNAPFILE_LENGTH);
	free(file);
}

static void test_refuses_another_format(void **state)
{
	struct cluster *c = *state;
	size_t len;
	uint8_t *file = file_of(c, 0, &len);
	/* Not ours at all: a text file, or a bare consensus snapshot. */
	assert_int_equal(check((const uint8_t *)"hello world\n", 12),
			 PX_SNAPFILE_MAGIC);
	assert_int_equal(check(file + PX_SNAPFILE_HEADER_BYTES,
			       len - PX_SNAPFILE_HEADER_BYTES),
			 PX_SNAPFILE_MAGIC);
	/* A later format version is named, not called corrupt. */
	px_put_u32(file + 4, 2);
	reseal(file, len);
	struct px_snapfile_info info;
	assert_int_equal(px_snapfile_check(file, len, &info),
			 PX_SNAPFILE_VERSION);
	assert_int_equal(info.h.version, 2);
	free(file);
}

static void test_refuses_truncated_or_appended(void **state)
{
	struct cluster *c = *state;
	write_some(c, 3);
	size_t len;
	uint8_t *file = file_of(c, 0, &len);
	uint8_t *longer = malloc(len + 1);
	assert_non_null(longer);
	memcpy(longer, file, len);
	longer[len] = 0;
	assert_int_equal(check(file, len - 1), PX_SNAPFILE_LENGTH);
	assert_int_equal(check(file, len / 2), PX_SNAPFILE_LENGTH);
	assert_int_equal(check(longer, len + 1), PX_SNAPFILE_LENGTH);
	/* A length field near 2^64 must not wrap around in the check. */
	px_put_u64(file + 24, UINT64_MAX - 2);
	assert_int_equal(check(file, len), PX_SNAPFILE_LENGTH);
	free(longer);
	free(file);
}

/* Any flipped bit before the trailer, or in it, is a checksum mismatch,
 * the header's cluster id included: a damaged id must not read as
 * "another cluster's file". */
static void test_refuses_flipped_bits(void **state)
{
	struct cluster *c = *state;
	write_some(c, 3);
	size_t len;
	uint8_t *file = file_of(c, 0, &len);
	size_t at[] = { 8, 12, 16, PX_SNAPFILE_HEADER_BYTES,
			PX_SNAPFILE_HEADER_BYTES + 40, len - 5, len - 1 };
	for (size_t i = 0; i < sizeof(at) / sizeof(at[0]); i++) {
		file[at[i]] ^= 0x10;
		struct px_snapfile_info info;
		assert_int_equal(px_snapfile_check(file, len, &info),
				 PX_SNAPFILE_CHECKSUM);
		assert_true(info.crc_stored != info.crc_computed);
		file[at[i]] ^= 0x10;
	}
	assert_int_equal(check(file, len), PX_SNAPFILE_OK);
	free(file);
}

/* The snapshot inside is checked against the header, even when the
 * checksum is right (a writer's bug, not a disk's). */
static void test_refuses_a_bad_body(void **state)
{
	struct cluster *c = *state;
	write_some(c, 3);
	size_t len;
	uint8_t *file = file_of(c, 0, &len);
	uint8_t *body = file + PX_SNAPFILE_HEADER_BYTES;

	px_put_u32(body + 4, 2); /* consensus snapshot format v2 */
	reseal(file, len);
	struct px_snapfile_info info;
	assert_int_equal(px_snapfile_check(file, len, &info),
			 PX_SNAPFILE_BODY_VERSION);
	assert_int_equal(info.body_version, 2);
	px_put_u32(body + 4, 3);

	body[0] ^= 0xff; /* not a consensus snapshot */
	reseal(file, len);
	assert_int_equal(check(file, len), PX_SNAPFILE_BODY);
	body[0] ^= 0xff;

	px_put_u64(file + 16, px_get_u64(file + 16) + 1);
	reseal(file, len);
	assert_int_equal(px_snapfile_check(file, len, &info),
			 PX_SNAPFILE_INDEX);
	assert_int_equal(info.h.applied_index, info.body_index + 1);
	free(file);
}

static void test_every_result_has_a_text(void **state)
{
	(void)state;
	for (int i = 0; i < PX_SNAPFILE_CHECK_COUNT; i++) {
		const char *t = px_snapfile_check_text((enum px_snapfile_check)i);
		assert_non_null(t);
		assert_true(strlen(t) > 1);
	}
	assert_string_equal(px_snapfile_check_text(PX_SNAPFILE_CHECK_COUNT),
			    "unknown check result");
}

/* ---- A new cluster from a file ---- */

/* Every member of a new cluster (a bootstrap: nothing to recover) installs
 * the same file's body, as bypaxd --bootstrap --restore does. */
static void restore_all(struct cluster *n, const uint8_t *file, size_t len)
{
	struct px_snapfile_info info;
	assert_int_equal(px_snapfile_check(file, len, &info), PX_SNAPFILE_OK);
	for (uint8_t i = 0; i < n->n; i++) {
		assert_int_equal(cluster_install(n, i, info.body,
						 (size_t)info.h.body_bytes),
				 0);
		assert_int_equal(px_applied_index(cluster_px(n, i)),
				 info.h.applied_index);
	}
}

/* The new cluster c, every member restored from file: the state, the
 * session s and its cached reply to write 6 (before) came along. */
static void check_restored(struct cluster *c, uint64_t digest, uint64_t s,
			   const struct cluster_reply *before)
{
	uint64_t index = px_applied_index(CLUSTER_PX(0));
	for (uint8_t i = 0; i < 3; i++)
		assert_true(px_state_digest(CLUSTER_PX(i)) == digest);
	CLUSTER_ELECT(1);
	ASSERT_LEADER(1);

	/* Exactly once across the restore: a retry of write 6 is answered
	 * from its session, byte for byte, and not applied again. */
	uint64_t applied = px_stats(CLUSTER_PX(1))->requests_applied;
	CLUSTER_SUBMIT_PUT(1, s, 6, "k6", "v6");
	CLUSTER_DELIVER_ALL();
	const struct cluster_reply *again = CLUSTER_REPLY(s, 6);
	assert_non_null(again);
	assert_int_equal(again->status, before->status);
	assert_int_equal(again->value_len, before->value_len);
	assert_memory_equal(again->value, before->value, before->value_len);
	assert_int_equal(px_stats(CLUSTER_PX(1))->requests_applied, applied);

	/* And the new history goes on from the snapshot's index. */
	CLUSTER_SUBMIT_PUT(1, s, 7, "k7", "v7");
	CLUSTER_DELIVER_ALL();
	ASSERT_REPLY(s, 7, PX_REPLY_OK);
	CLUSTER_RUN(5 * c->tmpl.retransmit_ns);
	for (uint8_t i = 0; i < 3; i++)
		assert_true(px_applied_index(CLUSTER_PX(i)) > index);
	ASSERT_SAME_STATE(0, 1);
	ASSERT_SAME_STATE(0, 2);
}

static void test_restore_a_new_cluster(void **state)
{
	struct cluster *c = *state;
	uint64_t s = write_some(c, 6);
	size_t len;
	uint8_t *file = file_of(c, 0, &len);
	struct cluster_reply before = *CLUSTER_REPLY(s, 6);

	/* The old cluster is lost; a new one starts from the file. */
	struct cluster *n = calloc(1, sizeof(*n));
	assert_non_null(n);
	cluster_init(n, 3, NULL);
	n->fail = cluster_cmocka_fail;
	restore_all(n, file, len);
	check_restored(n, px_state_digest(CLUSTER_PX(0)), s, &before);
	cluster_free(n);
	free(n);
	free(file);
}

/* A file of a 3-member cluster does not fit a 5-member configuration:
 * the install refuses it and changes nothing (bypaxd names the member
 * counts before it gets that far). */
static void test_restore_refuses_other_member_count(void **state)
{
	struct cluster *c = *state;
	write_some(c, 2);
	size_t len;
	uint8_t *file = file_of(c, 0, &len);
	struct px_snapfile_info info;
	assert_int_equal(px_snapfile_check(file, len, &info), PX_SNAPFILE_OK);
	struct cluster *n = calloc(1, sizeof(*n));
	assert_non_null(n);
	cluster_init(n, 5, NULL);
	n->fail = cluster_cmocka_fail;
	assert_int_equal(cluster_install(n, 0, info.body,
					 (size_t)info.h.body_bytes),
			 -BPX_EMALFORMED);
	assert_int_equal(px_applied_index(cluster_px(n, 0)), 0);
	cluster_free(n);
	free(n);
	free(file);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_crc32c_known_answer),
		cmocka_unit_test(test_crc32c_chains),
		cmocka_unit_test(test_every_result_has_a_text),
		cmocka_unit_test_setup_teardown(test_round_trip, setup3,
						teardown),
		cmocka_unit_test_setup_teardown(
			test_encode_needs_room_and_a_snapshot, setup3, teardown),
		cmocka_unit_test_setup_teardown(test_refuses_short_files,
						setup3, teardown),
		cmocka_unit_test_setup_teardown(test_refuses_another_format,
						setup3, teardown),
		cmocka_unit_test_setup_teardown(
			test_refuses_truncated_or_appended, setup3, teardown),
		cmocka_unit_test_setup_teardown(test_refuses_flipped_bits,
						setup3, teardown),
		cmocka_unit_test_setup_teardown(test_refuses_a_bad_body, setup3,
						teardown),
		cmocka_unit_test_setup_teardown(test_restore_a_new_cluster,
						setup3, teardown),
		cmocka_unit_test_setup_teardown(
			test_restore_refuses_other_member_count, setup3,
			teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
