/* Unit tests for the /metrics renderer and the /health verdict
 * (control/ctl_metrics.c) and the HTTP request line parser
 * (control/ctl_http.c): pages from made-up counters, checked line by line
 * (tests/dpdk/metrics.sh has promtool check live pages). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "ctl_http.h"
#include "ctl_metrics.h"
#include "fd.h"

#define MS(n) ((uint64_t)(n) * 1000 * 1000)
#define PAGE_BYTES (60u << 10)

static char page_text[PAGE_BYTES];

/* A 3-member leader with a little of everything counted. */
static void make_page(struct ctl_metrics_page *p)
{
	memset(p, 0, sizeof(*p));
	p->cluster_id = 42;
	p->self = 1;
	p->member_count = 3;
	p->have_status = true;
	p->status.role = PX_ROLE_LEADER;
	p->status.promised = px_ballot_make(7, 1);
	p->status.commit_index = 100;
	p->status.applied_index = 99;
	p->status.members = 7;
	p->leader = 1;
	p->peers[0] = (struct ctl_metrics_peer){ .known = true, .alive = true,
						 .applied_index = 90,
						 .heard_age_ns = MS(3),
						 .suspicions = 2 };
	p->peers[2] = (struct ctl_metrics_peer){ .known = false };
	p->w.frame_drops[BPX_WIRE_BAD_IP_CHECKSUM] = 5;
	p->w.message_drops[PX_DROP_STALE_BALLOT] = 6;
	p->w.replies[PX_REPLY_BUSY] = 3;
	p->w.lat_buckets[0] = 1;
	p->w.lat_buckets[3] = 2;
	p->w.lat_buckets[CTL_LAT_BUCKETS] = 4; /* above 1 s */
	p->w.lat_count = 7;
	p->w.lat_sum_ns = 5500000000ull;
	p->w.tx_full = 8;
	p->w.frame_drops[BPX_WIRE_BAD_MAC] = 9;
	p->hb_dropped = 12;
	p->hb_wrong_cluster = 2;
	p->hb_bad_mac = 7;
	p->admin_refused = 4;
}

static const char *render(const struct ctl_metrics_page *p)
{
	size_t n = ctl_metrics_render(p, page_text, sizeof(page_text));
	assert_true(n > 0 && n < sizeof(page_text));
	assert_int_equal(strlen(page_text), n);
	return page_text;
}

/* The page has this exact line. */
static void assert_line(const char *page, const char *line)
{
	size_t len = strlen(line);
	for (const char *at = page; (at = strstr(at, line)) != NULL; at++)
		if ((at == page || at[-1] == '\n') && at[len] == '\n')
			return;
	fail_msg("no line \"%s\" on the page", line);
}

static void assert_no_text(const char *page, const char *text)
{
	if (strstr(page, text) != NULL)
		fail_msg("the page has \"%s\"", text);
}

static void test_identity_and_role(void **state)
{
	(void)state;
	struct ctl_metrics_page p;
	make_page(&p);
	const char *page = render(&p);
	assert_line(page, "bypax_info{cluster=\"42\",member=\"1\"} 1");
	assert_line(page, "bypax_role{role=\"leader\"} 1");
	assert_line(page, "bypax_role{role=\"follower\"} 0");
	assert_line(page, "bypax_role{role=\"recovering\"} 0");
	assert_line(page, "bypax_control_leader 1");
	assert_line(page, "bypax_ballot_round 7");
	assert_line(page, "bypax_ballot_owner 1");
	assert_line(page, "bypax_commit_index 100");
	assert_line(page, "bypax_voting_members 3");
	assert_line(page, "# TYPE bypax_role gauge");
	/* No worker report yet: no role is 1; no leader: -1. */
	p.have_status = false;
	p.leader = CTL_NONE;
	page = render(&p);
	assert_line(page, "bypax_role{role=\"leader\"} 0");
	assert_line(page, "bypax_control_leader -1");
}

/* Peers: lag from our commit index to their applied index; members never
 * heard have no lag or age, but an up and suspicion series. */
static void test_peers(void **state)
{
	(void)state;
	struct ctl_metrics_page p;
	make_page(&p);
	const char *page = render(&p);
	assert_line(page, "bypax_peer_up{peer=\"0\"} 1");
	assert_line(page, "bypax_peer_up{peer=\"2\"} 0");
	assert_line(page, "bypax_peer_lag_slots{peer=\"0\"} 10");
	assert_no_text(page, "bypax_peer_lag_slots{peer=\"2\"}");
	assert_no_text(page, "{peer=\"1\"}"); /* ourselves */
	assert_line(page, "bypax_peer_heard_age_seconds{peer=\"0\"} 0.003");
	assert_line(page, "bypax_peer_suspicions_total{peer=\"0\"} 2");
	assert_line(page, "bypax_peer_suspicions_total{peer=\"2\"} 0");
	/* A peer ahead of us: no negative lag. */
	p.peers[0].applied_index = 500;
	page = render(&p);
	assert_line(page, "bypax_peer_lag_slots{peer=\"0\"} 0");
}

/* Reasons and statuses by name, every one present (a stable set of
 * series), from the enums' names. */
static void test_drops_and_replies_by_name(void **state)
{
	(void)state;
	struct ctl_metrics_page p;
	make_page(&p);
	const char *page = render(&p);
	assert_line(page, "bypax_frame_drops_total{reason=\"bad_ip_checksum\"} 5");
	assert_line(page, "bypax_frame_drops_total{reason=\"wrong_cluster\"} 0");
	assert_line(page, "bypax_frame_drops_total{reason=\"bad_arp\"} 0");
	assert_line(page, "bypax_frame_drops_total{reason=\"bad_mac\"} 9");
	assert_line(page, "bypax_heartbeat_drops_total{reason=\"wrong_cluster\"} 2");
	assert_line(page, "bypax_heartbeat_drops_total{reason=\"bad_mac\"} 7");
	assert_line(page, "bypax_heartbeat_drops_total{reason=\"other\"} 3");
	assert_line(page, "bypax_admin_refused_total 4");
	assert_line(page, "bypax_frame_drops_total{reason=\"tx_full\"} 8");
	assert_no_text(page, "reason=\"ok\"");
	assert_line(page, "bypax_message_drops_total{reason=\"stale_ballot\"} 6");
	assert_line(page, "bypax_message_drops_total{reason=\"stale_incarnation\"} 0");
	assert_line(page, "bypax_replies_total{status=\"busy\"} 3");
	assert_line(page, "bypax_replies_total{status=\"bad_request\"} 0");
	assert_no_text(page, "drop_1");
}

/* Buckets are cumulative, +Inf equals the count, the sum is in seconds. */
static void test_latency_histogram(void **state)
{
	(void)state;
	struct ctl_metrics_page p;
	make_page(&p);
	const char *page = render(&p);
	assert_line(page, "# TYPE bypax_commit_latency_seconds histogram");
	assert_line(page, "bypax_commit_latency_seconds_bucket{le=\"1e-05\"} 1");
	assert_line(page, "bypax_commit_latency_seconds_bucket{le=\"5e-05\"} 1");
	assert_line(page, "bypax_commit_latency_seconds_bucket{le=\"0.0001\"} 3");
	assert_line(page, "bypax_commit_latency_seconds_bucket{le=\"1\"} 3");
	assert_line(page, "bypax_commit_latency_seconds_bucket{le=\"+Inf\"} 7");
	assert_line(page, "bypax_commit_latency_seconds_count 7");
	assert_line(page, "bypax_commit_latency_seconds_sum 5.500000000");
	/* A count read before its buckets: +Inf never below the buckets. */
	p.w.lat_count = 2;
	page = render(&p);
	assert_line(page, "bypax_commit_latency_seconds_bucket{le=\"+Inf\"} 7");
	assert_line(page, "bypax_commit_latency_seconds_count 7");
}

static void test_latency_buckets(void **state)
{
	(void)state;
	assert_int_equal(ctl_lat_bucket(0), 0);
	assert_int_equal(ctl_lat_bucket(10000), 0);     /* le="1e-05" */
	assert_int_equal(ctl_lat_bucket(10001), 1);
	assert_int_equal(ctl_lat_bucket(1000000000), CTL_LAT_BUCKETS - 1);
	assert_int_equal(ctl_lat_bucket(1000000001), CTL_LAT_BUCKETS);
	assert_int_equal(ctl_lat_bucket(UINT64_MAX), CTL_LAT_BUCKETS);
	for (unsigned i = 1; i < CTL_LAT_BUCKETS; i++)
		assert_true(ctl_lat_bounds_ns[i] > ctl_lat_bounds_ns[i - 1]);
}

/* Every family has HELP then TYPE, and every sample line belongs to the
 * family announced last (what promtool checks, in short). */
/* Durable mode's counters (dataplane/durable.c): what the WAL costs. */
static void test_durability(void **state)
{
	(void)state;
	struct ctl_metrics_page p;
	make_page(&p);
	const char *page = render(&p);
	assert_line(page, "bypax_durable 0");
	assert_line(page, "bypax_wal_syncs_total 0");
	p.w.durable = 1;
	p.w.wal_syncs = 12;
	p.w.wal_bytes = 4096;
	p.w.wal_group_commits = 10;
	p.w.disk_snapshots = 2;
	p.w.disk_snapshot_copy_passes = 110;
	p.w.disk_snapshot_copy_refused = 3;
	p.w.disk_snapshot_stall_max_ns = 41250;
	p.w.wal_failed = 1;
	page = render(&p);
	assert_line(page, "# TYPE bypax_durable gauge");
	assert_line(page, "bypax_durable 1");
	assert_line(page, "bypax_wal_failed 1");
	assert_line(page, "# TYPE bypax_wal_syncs_total counter");
	assert_line(page, "bypax_wal_syncs_total 12");
	assert_line(page, "bypax_wal_bytes_total 4096");
	assert_line(page, "bypax_wal_group_commits_total 10");
	assert_line(page, "bypax_disk_snapshots_total 2");
	assert_line(page, "# TYPE bypax_disk_snapshot_copy_passes_total counter");
	assert_line(page, "bypax_disk_snapshot_copy_passes_total 110");
	assert_line(page, "bypax_disk_snapshot_copy_refused_total 3");
	assert_line(page, "# TYPE bypax_disk_snapshot_stall_max_seconds gauge");
	assert_line(page, "bypax_disk_snapshot_stall_max_seconds 0.000041");
}

static void test_families_well_formed(void **state)
{
	(void)state;
	struct ctl_metrics_page p;
	make_page(&p);
	char text[PAGE_BYTES];
	strcpy(text, render(&p));
	char family[96] = "";
	unsigned families = 0;
	for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
		char name[96], type[16];
		if (sscanf(line, "# TYPE %95s %15s", name, type) == 2) {
			snprintf(family, sizeof(family), "%s", name);
			families++;
			continue;
		}
		if (line[0] == '#') {
			assert_true(strncmp(line, "# HELP bypax_", 13) == 0);
			continue;
		}
		assert_true(strncmp(line, family, strlen(family)) == 0);
		char c = line[strlen(family)];
		if (c != ' ' && c != '{' && c != '_')
			fail_msg("line \"%s\" is not of family %s", line, family);
	}
	assert_true(families >= 50);
}

static void test_too_small_a_buffer(void **state)
{
	(void)state;
	struct ctl_metrics_page p;
	make_page(&p);
	size_t n = ctl_metrics_render(&p, page_text, sizeof(page_text));
	static char small[PAGE_BYTES];
	assert_int_equal(ctl_metrics_render(&p, small, n), 0); /* no room for NUL */
	assert_int_equal(small[0], '\0');
	assert_int_equal(ctl_metrics_render(&p, small, n + 1), n);
	assert_int_equal(ctl_metrics_render(&p, small, 0), 0);
}

/* ---- /health ---- */

struct health_fixture {
	struct ctl_health_track t;
	struct ctl_worker_status st;
	struct ctl_health_input in;
	uint64_t now;
	char why[128];
};

static struct health_fixture hf;

/* A follower of member 0 whose worker reports every ms and moves. */
static int health_setup(void **state)
{
	(void)state;
	memset(&hf, 0, sizeof(hf));
	hf.st.role = PX_ROLE_FOLLOWER;
	hf.in = (struct ctl_health_input){ .have_status = true,
					   .status = &hf.st, .self = 1,
					   .leader = 0, .leader_alive = true };
	hf.now = MS(1000);
	return 0;
}

/* A new report at now; frames moved when moved. */
static void report(bool moved)
{
	hf.st.seq++;
	hf.st.rx_frames += moved;
	ctl_health_note(&hf.t, &hf.st, true, hf.now);
}

static bool healthy(void)
{
	return ctl_health_check(&hf.t, &hf.in, hf.now, hf.why, sizeof(hf.why));
}

static void test_health_follower_and_leader(void **state)
{
	(void)state;
	assert_false(healthy());
	assert_string_equal(hf.why, "the worker has not reported yet");
	report(true);
	assert_true(healthy());
	assert_string_equal(hf.why, "follower of member 0");
	hf.in.leader_alive = false;
	assert_false(healthy());
	assert_string_equal(hf.why, "leader 0 is suspected");
	hf.in.leader = CTL_NONE;
	assert_false(healthy());
	assert_string_equal(hf.why, "no leader (no majority heard)");
	hf.in.leader = 1;
	hf.st.role = PX_ROLE_CANDIDATE;
	assert_false(healthy());
	assert_string_equal(hf.why, "chosen to lead, not leading yet (electing)");
	hf.st.role = PX_ROLE_LEADER;
	assert_true(healthy());
	assert_string_equal(hf.why, "leader");
	hf.in.leader = 2; /* the control plane moved on; we still lead */
	assert_false(healthy());
	assert_string_equal(hf.why, "leader while member 2 leads");
	hf.st.role = PX_ROLE_RECOVERING;
	assert_false(healthy());
	assert_string_equal(hf.why, "recovering: not voting yet");
}

/* The data path: a worker that stops reporting, or reports without its
 * frame counters moving, is unhealthy after the bounds of ctl_metrics.h. */
static void test_health_data_path(void **state)
{
	(void)state;
	report(true);
	hf.now += CTL_HEALTH_STATUS_NS;
	assert_true(healthy());
	hf.now += MS(1);
	assert_false(healthy());
	assert_string_equal(hf.why, "the worker has not reported for 1001 ms");
	/* Reports again, frames still: stale data after CTL_HEALTH_DATA_NS. */
	uint64_t moved_at = MS(1000);
	for (int i = 0; i < 3; i++) {
		hf.now += MS(500);
		report(false);
	}
	assert_int_equal(hf.now - moved_at, MS(2501));
	assert_false(healthy());
	assert_string_equal(hf.why, "no frame received or sent for 2501 ms");
	report(true);
	assert_true(healthy());
	/* A seq seen before is not a new report. */
	hf.now += MS(1500);
	ctl_health_note(&hf.t, &hf.st, true, hf.now);
	assert_false(healthy());
}

static void test_suspicions_counted(void **state)
{
	(void)state;
	ctl_health_note_alive(&hf.t, 0x7, 1);
	ctl_health_note_alive(&hf.t, 0x6, 1); /* 0 suspected */
	ctl_health_note_alive(&hf.t, 0x6, 1);
	ctl_health_note_alive(&hf.t, 0x7, 1);
	ctl_health_note_alive(&hf.t, 0x4, 1); /* 0 again, and self (ignored) */
	assert_int_equal(hf.t.suspicions[0], 2);
	assert_int_equal(hf.t.suspicions[1], 0);
	assert_int_equal(hf.t.suspicions[2], 0);
}

/* ---- HTTP request lines ---- */

static int parse(const char *head, char *path)
{
	return ctl_http_parse_request(head, strlen(head), path, 32);
}

static void test_http_request_line(void **state)
{
	(void)state;
	char path[32];
	assert_int_equal(parse("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n", path), 0);
	assert_string_equal(path, "/metrics");
	assert_int_equal(parse("GET /health?verbose=1 HTTP/1.0\n\n", path), 0);
	assert_string_equal(path, "/health");
	assert_int_equal(parse("POST /metrics HTTP/1.1\r\n\r\n", path), 405);
	assert_int_equal(parse("HEAD /metrics HTTP/1.1\r\n\r\n", path), 405);
	assert_int_equal(parse("GET /metrics HTTP/2.0\r\n\r\n", path), 505);
	assert_int_equal(parse("GET /metrics\r\n\r\n", path), 400);
	assert_int_equal(parse("GET metrics HTTP/1.1\r\n\r\n", path), 400);
	assert_int_equal(parse("GET  HTTP/1.1\r\n\r\n", path), 400);
	assert_int_equal(parse("garbage\r\n\r\n", path), 400);
	assert_int_equal(parse("GET /metrics FTP/1.1\r\n\r\n", path), 400);
	assert_int_equal(parse("GET /metrics HTTP/1.1", path), 400); /* no \n */
	assert_int_equal(parse("GET /0123456789012345678901234567890123 "
			       "HTTP/1.1\r\n\r\n", path), 414);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_identity_and_role),
		cmocka_unit_test(test_peers),
		cmocka_unit_test(test_drops_and_replies_by_name),
		cmocka_unit_test(test_latency_histogram),
		cmocka_unit_test(test_latency_buckets),
		cmocka_unit_test(test_durability),
		cmocka_unit_test(test_families_well_formed),
		cmocka_unit_test(test_too_small_a_buffer),
		cmocka_unit_test_setup(test_health_follower_and_leader,
				       health_setup),
		cmocka_unit_test_setup(test_health_data_path, health_setup),
		cmocka_unit_test_setup(test_suspicions_counted, health_setup),
		cmocka_unit_test(test_http_request_line),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
