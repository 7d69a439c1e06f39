/* Review finding (durable mode, issue 12): a client's value can forge the
 * WAL's group-commit marker, and then a torn tail stops the member.
 *
 * Replay tells a torn tail from corruption by scanning every byte after
 * the bad record for a valid marker record (wal.c, batch_after). A marker
 * is 24 bytes whose only secret-free check is a CRC-32C seeded with the
 * segment's seq (1, 2, 3, ...): anyone can compute one. bypaxd's ACCEPTED
 * payload is 32 fixed bytes followed by the client's value verbatim
 * (wal_px.h), so a PUT whose value holds those 24 bytes puts a "marker"
 * inside the last group commit. If a crash then tears a record before it
 * in that same unsynced group commit, replay finds the forged marker,
 * calls the torn write "corrupted in the middle", and the member refuses
 * to start (exit 2, the corrupt-log procedure of docs/deploy.md: a new
 * history for the whole cluster). Nothing after the bad record was ever
 * synced, so the right answer is the cut.
 *
 * The fix: a random salt in each segment header (format version 2) seeds
 * every record's checksum, and clients never see it, so the value's
 * "marker" (forged with the seq alone, as before the salt) is no record.
 * Without the salt this test fails: the start is refused. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bypax/errors.h"
#include "bypax/snapfile.h" /* px_crc32c */
#include "wal.h"

static int count_record(void *arg, uint8_t type, uint64_t tag,
			const uint8_t *payload, uint32_t len)
{
	(void)type;
	(void)tag;
	(void)payload;
	(void)len;
	(*(uint32_t *)arg)++;
	return 0;
}

static void le32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

/* The 24 bytes of a valid marker record of segment `seq`, as a client
 * could compute them: wal.h's record layout, type 0, no payload. */
static void forge_marker(uint8_t *m, uint64_t seq)
{
	memset(m, 0, DP_WAL_RECORD_HEADER_BYTES);
	le32(m, DP_WAL_RECORD_MAGIC);
	uint8_t seq_le[8];
	for (int i = 0; i < 8; i++)
		seq_le[i] = (uint8_t)(seq >> (8 * i));
	uint32_t crc = px_crc32c(0, seq_le, sizeof(seq_le));
	crc = px_crc32c(crc, m + 8, DP_WAL_RECORD_HEADER_BYTES - 8);
	le32(m + 4, crc);
}

/* The directory outlives a failed assertion: teardown removes it. */
static int setup(void **state)
{
	static char dir[64];
	snprintf(dir, sizeof(dir), "/tmp/bpx-wal-forge-XXXXXX");
	assert_non_null(mkdtemp(dir));
	*state = dir;
	return 0;
}

static int teardown(void **state)
{
	char cmd[96];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", (const char *)*state);
	return system(cmd) == 0 ? 0 : -1;
}

static void test_forged_marker_keeps_a_torn_tail_a_torn_tail(void **state)
{
	const char *dir = *state;
	struct dp_wal_config cfg = { .dir = dir,
				     .segment_bytes = 8192,
				     .buffer_bytes = 4096 };
	struct dp_wal_replay info;
	struct dp_wal *w;
	char err[1024];
	uint32_t n = 0;
	assert_int_equal(
		dp_wal_open(&cfg, NULL, NULL, &info, &w, err, sizeof(err)), 0);
	uint8_t plain[40];
	memset(plain, 0x11, sizeof(plain));
	/* A synced group commit: two records the member acted on. */
	assert_int_equal(dp_wal_append(w, 2, 1, plain, sizeof(plain)), 0);
	assert_int_equal(dp_wal_append(w, 2, 2, plain, sizeof(plain)), 0);
	assert_int_equal(dp_wal_sync(w), 0);
	uint64_t torn_at = DP_WAL_SEGMENT_HEADER_BYTES +
			   3 * DP_WAL_RECORD_HEADER_BYTES +
			   2 * sizeof(plain); /* after the second marker */
	/* The last group commit: a record, then one whose value (a client's
	 * PUT) holds a forged marker. Written out here so that its bytes are
	 * in the file as a crash may leave them; then the first is torn. */
	uint8_t value[32 + 64];
	memset(value, 0x22, sizeof(value));
	forge_marker(value + 40, 1);
	assert_int_equal(dp_wal_append(w, 2, 3, plain, sizeof(plain)), 0);
	assert_int_equal(dp_wal_append(w, 2, 4, value, sizeof(value)), 0);
	assert_int_equal(dp_wal_sync(w), 0);
	dp_wal_close(w);
	char path[128];
	snprintf(path, sizeof(path), "%s/wal-0000000000000001.seg", dir);
	int fd = open(path, O_RDWR);
	assert_true(fd >= 0);
	uint8_t b = 0;
	off_t at = (off_t)(torn_at + DP_WAL_RECORD_HEADER_BYTES + 5);
	assert_int_equal(pread(fd, &b, 1, at), 1);
	b ^= 0x5a;
	assert_int_equal(pwrite(fd, &b, 1, at), 1);
	close(fd);

	int rc = dp_wal_open(&cfg, count_record, &n, &info, &w, err,
			     sizeof(err));
	if (rc != 0)
		print_message("refused: %s\n", err);
	assert_int_equal(rc, 0);
	assert_int_equal(n, 2);
	/* Cut at the torn record, just after the last group commit's own
	 * marker (that marker is whole, and orders nothing after it). */
	assert_int_equal(info.torn_offset, torn_at + DP_WAL_RECORD_HEADER_BYTES);
	dp_wal_close(w);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(
			test_forged_marker_keeps_a_torn_tail_a_torn_tail, setup,
			teardown),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
