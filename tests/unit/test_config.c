/* Unit tests for the cluster configuration reader (config/config.c,
 * config.h, docs/config.md).
 *
 * Each test writes an INI file to /tmp (mkstemp, removed afterwards) and
 * loads it. A good file must load every field; a bad one must be refused
 * with an error that names the file, the section, the key and the value,
 * which is what an operator needs to fix it without reading code.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bypax/config.h"
#include "bypax/errors.h"

#define ERR_BYTES 512

struct loaded {
	char path[64];
	char err[ERR_BYTES];
	int rc;
	struct bpx_config cfg;
};

/* Writes text to a fresh temp file, loads it, and removes the file. */
static void load_text(const char *text, struct loaded *l)
{
	snprintf(l->path, sizeof(l->path), "/tmp/bypax-test-config-XXXXXX");
	int fd = mkstemp(l->path);
	assert_true(fd >= 0);
	size_t len = strlen(text);
	assert_int_equal(write(fd, text, len), (ssize_t)len);
	assert_int_equal(close(fd), 0);
	memset(l->err, 0, sizeof(l->err));
	l->rc = bpx_config_load(l->path, &l->cfg, l->err, sizeof(l->err));
	assert_int_equal(unlink(l->path), 0);
}

static void assert_contains(const char *haystack, const char *needle)
{
	if (strstr(haystack, needle) == NULL)
		fail_msg("\"%s\" does not contain \"%s\"", haystack, needle);
}

#define MEMBER(n, mac, ip, port, control)                                      \
	"[member" #n "]\nmac = " mac "\nip = " ip "\nport = " port             \
	"\ncontrol = " control "\n"

#define MEMBERS3                                                               \
	MEMBER(0, "02:00:00:00:00:01", "10.0.0.1", "9000", "127.0.0.1:7000")   \
	MEMBER(1, "02:00:00:00:00:02", "10.0.0.2", "9000", "127.0.0.1:7001")   \
	MEMBER(2, "02:00:00:00:00:03", "10.0.0.3", "9000", "127.0.0.1:7002")

/* Member n of a larger cluster: 02:00:00:00:01:0n, 10.0.1.n:9000. */
#define MEMBER_N(n)                                                            \
	MEMBER(n, "02:00:00:00:01:0" #n, "10.0.1." #n, "9000",                 \
	       "127.0.0.1:700" #n)
#define MEMBERS7                                                               \
	MEMBER_N(0)                                                            \
	MEMBER_N(1) MEMBER_N(2) MEMBER_N(3) MEMBER_N(4) MEMBER_N(5) MEMBER_N(6)

static const char good_file[] = "; a 3-replica cluster with every key set\n"
				"[cluster]\n"
				"id = 3000000000\n"
				"window = 128\n"
				"log_slots = 4096   ; inline comment\n"
				"batch_bytes = 1000\n"
				"batch_requests = 32\n"
				"request_queue = 2048\n"
				"sessions = 10000\n"
				"heartbeat_us = 1500\n"
				"retransmit_us = 2500\n"
				"sm = /opt/bypax/libcounter.so\n"
				"sm_args = start=5\n"
				"\n"
				"[control]\n"
				"heartbeat_us = 4000\n"
				"timeout_min_us = 20000\n"
				"timeout_max_us = 500000\n"
				"\n"
				"[member0]\n"
				"mac = 02:00:00:00:00:0a\n"
				"ip = 10.0.0.1\n"
				"port = 9000\n"
				"control = 127.0.0.1:7000\n"
				"[member1]\n"
				"mac = 02:AB:cd:EF:01:23\n"
				"ip = 10.0.0.2\n"
				"port = 9001\n"
				"control = 192.168.7.2:7001\n"
				"[member2]\n"
				"mac = fe:ff:ff:ff:ff:ff\n"
				"ip = 255.255.255.254\n"
				"port = 65535\n"
				"control = 0.0.0.0:1\n";

static void test_good_file(void **state)
{
	(void)state;
	struct loaded l;
	load_text(good_file, &l);
	assert_int_equal(l.rc, 0);
	const struct bpx_config *c = &l.cfg;
	assert_string_equal(c->path, l.path);
	assert_int_equal(c->cluster_id, 3000000000u);
	assert_int_equal(c->px.cluster_id, 3000000000u);
	assert_int_equal(c->member_count, 3);
	assert_int_equal(c->px.replica_count, 3);
	assert_int_equal(c->px.window_slots, 128);
	assert_int_equal(c->px.log_slots, 4096);
	assert_int_equal(c->px.batch_bytes_max, 1000);
	assert_int_equal(c->px.batch_requests_max, 32);
	assert_int_equal(c->px.request_queue_max, 2048);
	assert_int_equal(c->px.session_max, 10000);
	assert_int_equal(c->px.heartbeat_interval_ns, 1500000);
	assert_int_equal(c->px.retransmit_ns, 2500000);
	assert_string_equal(c->sm, "/opt/bypax/libcounter.so");
	assert_string_equal(c->sm_args, "start=5");
	assert_int_equal(c->fd_heartbeat_ns, 4000000);
	assert_int_equal(c->fd_timeout_min_ns, 20000000);
	assert_int_equal(c->fd_timeout_max_ns, 500000000);

	const uint8_t mac0[6] = { 0x02, 0, 0, 0, 0, 0x0a };
	const uint8_t mac1[6] = { 0x02, 0xab, 0xcd, 0xef, 0x01, 0x23 };
	const uint8_t mac2[6] = { 0xfe, 0xff, 0xff, 0xff, 0xff, 0xff };
	assert_memory_equal(c->members[0].data.mac, mac0, 6);
	assert_memory_equal(c->members[1].data.mac, mac1, 6);
	assert_memory_equal(c->members[2].data.mac, mac2, 6);
	assert_int_equal(c->members[0].data.ip, 0x0a000001);
	assert_int_equal(c->members[1].data.ip, 0x0a000002);
	assert_int_equal(c->members[2].data.ip, 0xfffffffe);
	assert_int_equal(c->members[0].data.port, 9000);
	assert_int_equal(c->members[1].data.port, 9001);
	assert_int_equal(c->members[2].data.port, 65535);
	assert_int_equal(c->members[0].control_ip, 0x7f000001);
	assert_int_equal(c->members[0].control_port, 7000);
	assert_int_equal(c->members[1].control_ip, 0xc0a80702);
	assert_int_equal(c->members[1].control_port, 7001);
	assert_int_equal(c->members[2].control_ip, 0);
	assert_int_equal(c->members[2].control_port, 1);
	for (unsigned i = 3; i < PX_REPLICAS_MAX; i++)
		assert_int_equal(c->members[i].data.port, 0);
}

/* Only the required keys: everything else takes its documented default. */
static void test_defaults(void **state)
{
	(void)state;
	struct loaded l;
	load_text("[cluster]\nid = 1\n" MEMBERS3, &l);
	assert_int_equal(l.rc, 0);
	const struct bpx_config *c = &l.cfg;
	assert_int_equal(c->cluster_id, 1);
	assert_int_equal(c->member_count, 3);
	assert_int_equal(c->px.window_slots, 64);
	assert_int_equal(c->px.log_slots, 1024);
	assert_int_equal(c->px.batch_bytes_max, PX_VALUE_BYTES_MAX);
	assert_int_equal(c->px.batch_requests_max, 64);
	assert_int_equal(c->px.request_queue_max, 1024);
	assert_int_equal(c->px.session_max, 4096);
	assert_int_equal(c->px.catchup_burst, 16);
	assert_int_equal(c->px.heartbeat_interval_ns, 1000000);
	assert_int_equal(c->px.retransmit_ns, 2000000);
	assert_int_equal(c->px.self_id, 0);
	assert_null(c->px.sm_ops);
	assert_string_equal(c->sm, "kv");
	assert_string_equal(c->sm_args, "");
	assert_int_equal(c->fd_heartbeat_ns, 5000000);
	assert_int_equal(c->fd_timeout_min_ns, 30000000);
	assert_int_equal(c->fd_timeout_max_ns, 1000000000);
	assert_int_equal(c->members[1].data.ip, 0x0a000002);
	assert_int_equal(c->members[2].control_port, 7002);
	assert_int_equal(c->durability, BPX_DURABILITY_MEMORY);
	assert_int_equal(c->wal_segment_bytes, 67108864);
	assert_int_equal(c->disk_snapshot_slots, 65536);
	assert_string_equal(c->members[0].wal_dir, "");
}

/* Durability: each member's wal_dir is its own; with memory, wal_dir is
 * not read. */
static void test_durability_wal(void **state)
{
	(void)state;
	struct loaded l;
	load_text("[cluster]\nid = 1\ndurability = wal\n"
		  "wal_segment_bytes = 1048576\ndisk_snapshot_slots = 1000\n"
		  MEMBER(0, "02:00:00:00:00:01", "10.0.0.1", "9000",
			 "127.0.0.1:7000") "wal_dir = /var/lib/bypax/m0\n"
		  MEMBER(1, "02:00:00:00:00:02", "10.0.0.2", "9000",
			 "127.0.0.1:7001") "wal_dir = /var/lib/bypax/m1\n",
		  &l);
	assert_int_equal(l.rc, 0);
	assert_int_equal(l.cfg.durability, BPX_DURABILITY_WAL);
	assert_int_equal(l.cfg.wal_segment_bytes, 1048576);
	assert_int_equal(l.cfg.disk_snapshot_slots, 1000);
	assert_string_equal(l.cfg.members[0].wal_dir, "/var/lib/bypax/m0");
	assert_string_equal(l.cfg.members[1].wal_dir, "/var/lib/bypax/m1");
	load_text("[cluster]\nid = 1\ndurability = memory\n"
		  MEMBER(0, "02:00:00:00:00:01", "10.0.0.1", "9000",
			 "127.0.0.1:7000") "wal_dir = relative\n", &l);
	assert_int_equal(l.rc, 0);
	assert_int_equal(l.cfg.durability, BPX_DURABILITY_MEMORY);
	assert_string_equal(l.cfg.members[0].wal_dir, "");
}

/* One member, and the most members there can be. */
static void test_member_counts(void **state)
{
	(void)state;
	struct loaded l;
	load_text("[cluster]\nid = 9\n" MEMBER(0, "02:00:00:00:00:01",
					       "10.0.0.1", "1", "1.2.3.4:5"),
		  &l);
	assert_int_equal(l.rc, 0);
	assert_int_equal(l.cfg.member_count, 1);

	load_text("[cluster]\nid = 9\n" MEMBERS7, &l);
	assert_int_equal(l.rc, 0);
	assert_int_equal(l.cfg.member_count, PX_REPLICAS_MAX);
	assert_int_equal(l.cfg.members[6].data.ip, 0x0a000106);
	assert_int_equal(l.cfg.members[6].control_port, 7006);
}

static void test_missing_file(void **state)
{
	(void)state;
	char err[ERR_BYTES] = "";
	struct bpx_config cfg;
	const char *path = "/tmp/bypax-test-config-does-not-exist.ini";
	assert_int_equal(bpx_config_load(path, &cfg, err, sizeof(err)),
			 -BPX_ENOENT);
	assert_contains(err, path);
}

static void test_not_ini(void **state)
{
	(void)state;
	struct loaded l;
	load_text("id = 1\n[cluster]\n" MEMBERS3, &l); /* before a section */
	assert_int_equal(l.rc, -BPX_ECONFIG);
	assert_contains(l.err, l.path);
	load_text("[cluster\nid = 1\n" MEMBERS3, &l);
	assert_int_equal(l.rc, -BPX_ECONFIG);
	assert_contains(l.err, l.path);
	/* A key given twice used to keep the first silently: now refused,
	 * with the line of each (config/ini.c). */
	load_text("[cluster]\nid = 1\nid = 2\n" MEMBERS3, &l);
	assert_int_equal(l.rc, -BPX_ECONFIG);
	char where[sizeof(l.path) + 64];
	snprintf(where, sizeof(where), "%s:3: [cluster] id appears twice "
		 "(first at line 2)", l.path);
	assert_contains(l.err, where);
	load_text("[cluster]\nid = 1\n" MEMBERS3 MEMBER_N(1), &l);
	assert_int_equal(l.rc, -BPX_ECONFIG);
	assert_contains(l.err, "[member1] appears twice");
}

/* An empty sm or sm_args means the default. */
static void test_empty_optional_values(void **state)
{
	(void)state;
	struct loaded l;
	load_text("[cluster]\nid = 1\nsm =\nsm_args =\n" MEMBERS3, &l);
	assert_int_equal(l.rc, 0);
	assert_string_equal(l.cfg.sm, "kv");
	assert_string_equal(l.cfg.sm_args, "");
}

/* A bad file: what the error must name. key and value may be NULL where
 * there is no such thing (a missing section). */
struct bad_case {
	const char *what;
	const char *text;
	const char *section;
	const char *key;
	const char *value;
};

#define CLUSTER "[cluster]\nid = 7\n"

static const struct bad_case bad_cases[] = {
	{ "missing [cluster]", MEMBERS3, "[cluster]", NULL, NULL },
	{ "missing id", "[cluster]\nwindow = 8\n" MEMBERS3, "[cluster]", "id",
	  NULL },
	{ "id 0", "[cluster]\nid = 0\n" MEMBERS3, "[cluster]", "id", "'0'" },
	{ "id above 32 bits", "[cluster]\nid = 4294967296\n" MEMBERS3,
	  "[cluster]", "id", "'4294967296'" },
	{ "negative id", "[cluster]\nid = -1\n" MEMBERS3, "[cluster]", "id",
	  "'-1'" },
	{ "non-numeric window", CLUSTER "window = lots\n" MEMBERS3, "[cluster]",
	  "window", "'lots'" },
	{ "window with a unit", CLUSTER "window = 64k\n" MEMBERS3, "[cluster]",
	  "window", "'64k'" },
	{ "empty window", CLUSTER "window =\n" MEMBERS3, "[cluster]", "window",
	  "''" },
	{ "a '#' comment (only ';' starts one)",
	  CLUSTER "window = 64 # slots\n" MEMBERS3, "[cluster]", "window",
	  "'64 # slots'" },
	{ "log_slots not a power of two", CLUSTER "log_slots = 1000\n" MEMBERS3,
	  "[cluster]", "log_slots", "'1000'" },
	{ "log_slots below 2 * window",
	  CLUSTER "window = 64\nlog_slots = 64\n" MEMBERS3, "[cluster]",
	  "log_slots", "'64'" },
	{ "log_slots too small", CLUSTER "log_slots = 32\n" MEMBERS3,
	  "[cluster]", "log_slots", "'32'" },
	{ "batch_bytes too big", CLUSTER "batch_bytes = 1401\n" MEMBERS3,
	  "[cluster]", "batch_bytes", "'1401'" },
	{ "batch_bytes below one request",
	  CLUSTER "batch_bytes = 18\n" MEMBERS3, "[cluster]", "batch_bytes",
	  "'18'" },
	{ "heartbeat 0", CLUSTER "heartbeat_us = 0\n" MEMBERS3, "[cluster]",
	  "heartbeat_us", "'0'" },
	{ "control timeout non-numeric",
	  CLUSTER "[control]\ntimeout_max_us = 1s\n" MEMBERS3, "[control]",
	  "timeout_max_us", "'1s'" },
	{ "timeout_min above timeout_max",
	  CLUSTER "[control]\ntimeout_min_us = 2000000\ntimeout_max_us = "
		  "1000000\n" MEMBERS3,
	  "[control]", "timeout_min_us", "'2000000'" },
	{ "timeout_min above the default timeout_max",
	  CLUSTER "[control]\ntimeout_min_us = 1000001\n" MEMBERS3, "[control]",
	  "timeout_min_us", "'1000001'" },
	{ "short mac",
	  CLUSTER MEMBER(0, "02:00:00:00:00", "10.0.0.1", "9000", "1.1.1.1:1"),
	  "[member0]", "mac", "'02:00:00:00:00'" },
	{ "mac with a non-hex digit",
	  CLUSTER MEMBER(0, "02:00:00:00:00:0g", "10.0.0.1", "9000",
			 "1.1.1.1:1"),
	  "[member0]", "mac", "'02:00:00:00:00:0g'" },
	{ "mac with a sign",
	  CLUSTER MEMBER(0, "+2:00:00:00:00:01", "10.0.0.1", "9000",
			 "1.1.1.1:1"),
	  "[member0]", "mac", "'+2:00:00:00:00:01'" },
	{ "mac with dashes",
	  CLUSTER MEMBERS3 MEMBER(3, "02-00-00-00-00-04", "10.0.0.4", "9000",
				  "1.1.1.1:1"),
	  "[member3]", "mac", "'02-00-00-00-00-04'" },
	{ "ip with an octet above 255",
	  CLUSTER MEMBER(0, "02:00:00:00:00:01", "10.0.0.256", "9000",
			 "1.1.1.1:1"),
	  "[member0]", "ip", "'10.0.0.256'" },
	{ "ip with three octets",
	  CLUSTER MEMBER(0, "02:00:00:00:00:01", "10.0.1", "9000", "1.1.1.1:1"),
	  "[member0]", "ip", "'10.0.1'" },
	{ "ip as a name",
	  CLUSTER MEMBER(0, "02:00:00:00:00:01", "localhost", "9000",
			 "1.1.1.1:1"),
	  "[member0]", "ip", "'localhost'" },
	{ "port 0",
	  CLUSTER MEMBER(0, "02:00:00:00:00:01", "10.0.0.1", "0", "1.1.1.1:1"),
	  "[member0]", "port", "'0'" },
	{ "port 70000",
	  CLUSTER MEMBER(0, "02:00:00:00:00:01", "10.0.0.1", "70000",
			 "1.1.1.1:1"),
	  "[member0]", "port", "'70000'" },
	{ "control without a port",
	  CLUSTER MEMBER(0, "02:00:00:00:00:01", "10.0.0.1", "9000",
			 "127.0.0.1"),
	  "[member0]", "control", "'127.0.0.1'" },
	{ "control port 0",
	  CLUSTER MEMBER(0, "02:00:00:00:00:01", "10.0.0.1", "9000",
			 "127.0.0.1:0"),
	  "[member0]", "control", "'127.0.0.1:0'" },
	{ "control port 99999",
	  CLUSTER MEMBER(0, "02:00:00:00:00:01", "10.0.0.1", "9000",
			 "127.0.0.1:99999"),
	  "[member0]", "control", "'127.0.0.1:99999'" },
	{ "control host name",
	  CLUSTER MEMBER(0, "02:00:00:00:00:01", "10.0.0.1", "9000",
			 "localhost:7000"),
	  "[member0]", "control", "'localhost:7000'" },
	{ "empty mac", CLUSTER MEMBER(0, "", "10.0.0.1", "9000", "1.1.1.1:1"),
	  "[member0]", "mac", "''" },
	{ "member key missing",
	  CLUSTER MEMBERS3 "[member3]\nmac = 02:00:00:00:00:04\nip = "
			   "10.0.0.4\ncontrol = 1.1.1.1:1\n",
	  "[member3]", "port", NULL },
	{ "no members", CLUSTER "[control]\nheartbeat_us = 5000\n", "[member0]",
	  NULL, NULL },
	{ "gap in member ids",
	  CLUSTER MEMBER(0, "02:00:00:00:00:01", "10.0.0.1", "9000",
			 "1.1.1.1:1") MEMBER(2, "02:00:00:00:00:03", "10.0.0.3",
					     "9000", "1.1.1.1:3"),
	  "[member2]", NULL, NULL },
	{ "gap far after the members",
	  CLUSTER MEMBERS3 MEMBER(5, "02:00:00:00:00:06", "10.0.0.6", "9000",
				  "1.1.1.1:6"),
	  "[member5]", NULL, NULL },
	{ "no member0",
	  CLUSTER MEMBER(1, "02:00:00:00:00:01", "10.0.0.1", "9000",
			 "1.1.1.1:1"),
	  "[member1]", NULL, NULL },
	{ "more members than PX_REPLICAS_MAX", CLUSTER MEMBERS7 MEMBER_N(7),
	  "[member7]", NULL, NULL },
	{ "metrics without a port",
	  CLUSTER MEMBER_N(0) "metrics = 127.0.0.1\n", "[member0]", "metrics",
	  "'127.0.0.1'" },
	{ "metrics port 0",
	  CLUSTER MEMBER_N(0) "metrics = 127.0.0.1:0\n", "[member0]", "metrics",
	  "'127.0.0.1:0'" },
	{ "metrics host name",
	  CLUSTER MEMBER_N(0) "metrics = localhost:9100\n", "[member0]",
	  "metrics", "'localhost:9100'" },
	{ "empty metrics", CLUSTER MEMBER_N(0) "metrics =\n", "[member0]",
	  "metrics", "''" },
	{ "durability unknown", CLUSTER "durability = disk\n" MEMBER_N(0),
	  "[cluster]", "durability", "'disk': expected memory or wal" },
	{ "wal without wal_dir", CLUSTER "durability = wal\n" MEMBER_N(0)
	  "wal_dir = /var/lib/bypax/0\n" MEMBER_N(1), "[member1]", "wal_dir",
	  "'': required with [cluster] durability = wal" },
	{ "wal_dir relative", CLUSTER "durability = wal\n" MEMBER_N(0)
	  "wal_dir = var/lib/bypax\n", "[member0]", "wal_dir",
	  "'var/lib/bypax': expected an absolute path" },
	{ "wal_segment_bytes small", CLUSTER "wal_segment_bytes = 4096\n"
	  MEMBER_N(0), "[cluster]", "wal_segment_bytes",
	  "'4096': expected a whole number in 1048576..4294967296" },
	{ "disk_snapshot_slots 0", CLUSTER "disk_snapshot_slots = 0\n"
	  MEMBER_N(0), "[cluster]", "disk_snapshot_slots", "'0'" },
};

static void test_bad_files(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(bad_cases) / sizeof(bad_cases[0]); i++) {
		const struct bad_case *b = &bad_cases[i];
		struct loaded l;
		load_text(b->text, &l);
		print_message("%-40s %s\n", b->what, l.err);
		if (l.rc != -BPX_ECONFIG)
			fail_msg("%s: rc %d, want %d", b->what, l.rc,
				 -BPX_ECONFIG);
		assert_contains(l.err, l.path);
		assert_contains(l.err, b->section);
		if (b->key != NULL)
			assert_contains(l.err, b->key);
		if (b->value != NULL)
			assert_contains(l.err, b->value);
	}
}

/* Two members sharing an address would take each other's traffic: each
 * duplicate is refused, naming the file, both members and the value. */
struct dup_case {
	const char *what;
	const char *text;
	const char *key;   /* the later member's key named */
	const char *value; /* the value named, as the later member wrote it */
	const char *also;  /* more the message must say */
};

static const struct dup_case dup_cases[] = {
	{ "the same ip:port",
	  CLUSTER MEMBER_N(0) MEMBER_N(1) MEMBER(2, "02:00:00:00:01:02",
						 "10.0.1.0", "9000",
						 "127.0.0.1:7002"),
	  "port", "'9000'", "10.0.1.0:9000" },
	{ "the same mac",
	  CLUSTER MEMBER_N(0) MEMBER_N(1) MEMBER(2, "02:00:00:00:01:00",
						 "10.0.1.2", "9000",
						 "127.0.0.1:7002"),
	  "mac", "'02:00:00:00:01:00'", "same mac" },
	{ "the same mac, other case",
	  CLUSTER MEMBER(0, "02:00:00:00:0a:0b", "10.0.1.0", "9000",
			 "127.0.0.1:7000") MEMBER_N(1)
		  MEMBER(2, "02:00:00:00:0A:0B", "10.0.1.2", "9000",
			 "127.0.0.1:7002"),
	  "mac", "'02:00:00:00:0A:0B'", "same mac" },
	{ "the same control address",
	  CLUSTER MEMBER_N(0) MEMBER_N(1) MEMBER(2, "02:00:00:00:01:02",
						 "10.0.1.2", "9000",
						 "127.0.0.1:7000"),
	  "control", "'127.0.0.1:7000'", "same control address" },
	{ "the same metrics address",
	  CLUSTER MEMBER_N(0) "metrics = 127.0.0.1:9100\n" MEMBER_N(1)
		  MEMBER_N(2) "metrics = 127.0.0.1:9100\n",
	  "metrics", "'127.0.0.1:9100'", "same metrics address" },
};

static void test_duplicates_name_both(void **state)
{
	(void)state;
	for (size_t i = 0; i < sizeof(dup_cases) / sizeof(dup_cases[0]); i++) {
		const struct dup_case *c = &dup_cases[i];
		struct loaded l;
		load_text(c->text, &l);
		print_message("%-40s %s\n", c->what, l.err);
		if (l.rc != -BPX_ECONFIG)
			fail_msg("%s: rc %d, want %d", c->what, l.rc,
				 -BPX_ECONFIG);
		assert_contains(l.err, l.path);
		assert_contains(l.err, "[member2]");
		assert_contains(l.err, "[member0]");
		assert_contains(l.err, c->key);
		assert_contains(l.err, c->value);
		assert_contains(l.err, c->also);
	}
}

/* The same port or control port on different hosts, or the same ip with
 * different ports, is not a duplicate. */
static void test_distinct_addresses_load(void **state)
{
	(void)state;
	struct loaded l;
	load_text(CLUSTER
		  MEMBER(0, "02:00:00:00:00:01", "10.0.0.1", "9000",
			 "192.168.0.1:7000")
		  MEMBER(1, "02:00:00:00:00:02", "10.0.0.1", "9001",
			 "192.168.0.2:7000")
		  MEMBER(2, "02:00:00:00:00:03", "10.0.0.3", "9000",
			 "192.168.0.1:7001"),
		  &l);
	if (l.rc != 0)
		fail_msg("refused: %s", l.err);
	assert_int_equal(l.cfg.member_count, 3);
}

/* metrics (docs/metrics.md) is optional: without it no HTTP server. */
static void test_metrics_address(void **state)
{
	(void)state;
	struct loaded l;
	load_text(CLUSTER MEMBER_N(0) "metrics = 127.0.0.1:9100\n" MEMBER_N(1)
			  "metrics = 10.0.0.2:9100\n" MEMBER_N(2),
		  &l);
	if (l.rc != 0)
		fail_msg("refused: %s", l.err);
	assert_int_equal(l.cfg.members[0].metrics_ip, 0x7f000001);
	assert_int_equal(l.cfg.members[0].metrics_port, 9100);
	assert_int_equal(l.cfg.members[1].metrics_ip, 0x0a000002);
	assert_int_equal(l.cfg.members[1].metrics_port, 9100);
	assert_int_equal(l.cfg.members[2].metrics_port, 0);
}

static void test_parsers(void **state)
{
	(void)state;
	uint8_t mac[6];
	uint32_t ip;
	uint16_t port;
	assert_int_equal(bpx_parse_mac("00:1b:21:aB:Cd:ff", mac), 0);
	const uint8_t want[6] = { 0x00, 0x1b, 0x21, 0xab, 0xcd, 0xff };
	assert_memory_equal(mac, want, 6);
	const char *bad_macs[] = { "",
				   "00:1b:21:ab:cd",
				   "00:1b:21:ab:cd:ff:",
				   "00:1b:21:ab:cd:ff:00",
				   "0:1b:21:ab:cd:fff",
				   " 0:1b:21:ab:cd:ff",
				   "-1:1b:21:ab:cd:ff",
				   "001b:21:ab:cd:ff0",
				   "00.1b.21.ab.cd.ff" };
	for (size_t i = 0; i < sizeof(bad_macs) / sizeof(bad_macs[0]); i++)
		if (bpx_parse_mac(bad_macs[i], mac) != -BPX_EINVAL)
			fail_msg("mac '%s' accepted", bad_macs[i]);

	assert_int_equal(bpx_parse_ipv4("172.16.0.9", &ip), 0);
	assert_int_equal(ip, 0xac100009);
	assert_int_equal(bpx_parse_ipv4("1.2.3", &ip), -BPX_EINVAL);
	assert_int_equal(bpx_parse_ipv4("1.2.3.4 ", &ip), -BPX_EINVAL);

	assert_int_equal(bpx_parse_hostport("10.9.8.7:65535", &ip, &port), 0);
	assert_int_equal(ip, 0x0a090807);
	assert_int_equal(port, 65535);
	const char *bad_hp[] = {
		"10.9.8.7",	  "10.9.8.7:",	 ":7000",
		"10.9.8.7:65536", "10.9.8.7:-1", "10.9.8.7:70x"
	};
	for (size_t i = 0; i < sizeof(bad_hp) / sizeof(bad_hp[0]); i++)
		if (bpx_parse_hostport(bad_hp[i], &ip, &port) != -BPX_EINVAL)
			fail_msg("host:port '%s' accepted", bad_hp[i]);
}

/* ---- [cluster] key_file (docs/config.md, "Authentication") ---- */

/* Writes a key file of len bytes with the given mode; returns its path. */
static void write_key(char path[64], size_t len, mode_t mode)
{
	snprintf(path, 64, "/tmp/bypax-test-key-XXXXXX");
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	uint8_t bytes[64];
	for (size_t i = 0; i < sizeof(bytes); i++)
		bytes[i] = (uint8_t)(0xa0 + i);
	assert_true(len <= sizeof(bytes));
	assert_int_equal(write(fd, bytes, len), (ssize_t)len);
	assert_int_equal(fchmod(fd, mode), 0);
	assert_int_equal(close(fd), 0);
}

/* Loads a config naming key (and extra [cluster] lines), then the key. */
static int load_with_key(const char *key, const char *extra,
			 struct loaded *l)
{
	char text[1024];
	snprintf(text, sizeof(text), "[cluster]\nid = 7\nkey_file = %s\n%s"
		 MEMBERS3, key, extra);
	load_text(text, l);
	if (l->rc != 0)
		return l->rc;
	return bpx_config_load_key(&l->cfg, l->err, sizeof(l->err));
}

static void test_key_file_loads(void **state)
{
	(void)state;
	char key[64];
	struct loaded l;
	write_key(key, 32, 0600);
	assert_int_equal(load_with_key(key, "", &l), 0);
	assert_true(l.cfg.key.enabled);
	assert_int_equal(l.cfg.key.bytes[0], 0xa0);
	assert_int_equal(l.cfg.key.bytes[31], 0xa0 + 31);
	assert_string_equal(l.cfg.key_file, key);
	/* The batch budget leaves room for the tag. */
	assert_int_equal(l.cfg.px.batch_bytes_max, 1376);
	/* The group may read it (a service account's group). */
	assert_int_equal(chmod(key, 0640), 0);
	assert_int_equal(load_with_key(key, "batch_bytes = 1376\n", &l), 0);
	assert_int_equal(l.cfg.px.batch_bytes_max, 1376);
	assert_int_equal(unlink(key), 0);
	/* No key_file: no key, the full budget, and nothing read. */
	load_text("[cluster]\nid = 7\n" MEMBERS3, &l);
	assert_int_equal(l.rc, 0);
	assert_int_equal(bpx_config_load_key(&l.cfg, l.err, sizeof(l.err)), 0);
	assert_false(l.cfg.key.enabled);
	assert_int_equal(l.cfg.px.batch_bytes_max, 1392);
}

/* Each bad key file is refused with the config, the key file and what is
 * wrong with it; the key stays off. */
static void test_bad_key_files(void **state)
{
	(void)state;
	char key[64];
	struct loaded l;
	write_key(key, 31, 0600);
	assert_int_equal(load_with_key(key, "", &l), -BPX_ECONFIG);
	assert_contains(l.err, "[cluster] key_file");
	assert_contains(l.err, key);
	assert_contains(l.err, "31 bytes, expected exactly 32");
	assert_contains(l.err, "head -c 32 /dev/urandom");
	assert_false(l.cfg.key.enabled);
	assert_int_equal(unlink(key), 0);

	write_key(key, 33, 0600);
	assert_int_equal(load_with_key(key, "", &l), -BPX_ECONFIG);
	assert_contains(l.err, "33 bytes");
	assert_int_equal(unlink(key), 0);

	write_key(key, 32, 0644);
	assert_int_equal(load_with_key(key, "", &l), -BPX_ECONFIG);
	assert_contains(l.err, key);
	assert_contains(l.err, "readable or writable by others (mode 0644)");
	assert_contains(l.err, "chmod 600");
	assert_false(l.cfg.key.enabled);
	assert_int_equal(unlink(key), 0);

	assert_int_equal(load_with_key("/tmp/bypax-test-no-such.key", "", &l),
			 -BPX_ENOENT);
	assert_contains(l.err, "/tmp/bypax-test-no-such.key: cluster key: "
			       "cannot open");
	assert_int_equal(load_with_key("/tmp", "", &l), -BPX_ECONFIG);
	assert_contains(l.err, "not a regular file");

	/* The full budget does not fit with a tag: refused, by name. */
	write_key(key, 32, 0600);
	assert_int_equal(load_with_key(key, "batch_bytes = 1392\n", &l),
			 -BPX_ECONFIG);
	assert_contains(l.err, "[cluster] batch_bytes = '1392'");
	assert_contains(l.err, "at most 1376 with a key_file");
	assert_int_equal(unlink(key), 0);
	load_text("[cluster]\nid = 7\nkey_file =\n" MEMBERS3, &l);
	assert_int_equal(l.rc, -BPX_ECONFIG);
	assert_contains(l.err, "[cluster] key_file = ''");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_good_file),
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_durability_wal),
		cmocka_unit_test(test_member_counts),
		cmocka_unit_test(test_missing_file),
		cmocka_unit_test(test_not_ini),
		cmocka_unit_test(test_empty_optional_values),
		cmocka_unit_test(test_bad_files),
		cmocka_unit_test(test_duplicates_name_both),
		cmocka_unit_test(test_distinct_addresses_load),
		cmocka_unit_test(test_metrics_address),
		cmocka_unit_test(test_parsers),
		cmocka_unit_test(test_key_file_loads),
		cmocka_unit_test(test_bad_key_files),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
