/* The control thread's HTTP endpoint: /metrics (Prometheus text) and
 * /health, served by ctl_http.c, rendered by ctl_metrics.c. What this file
 * adds is where the numbers come from: the control thread's own state (the
 * policy, its heartbeat and admin counters), and the worker's per-core
 * counters through bypaxd's worker_metrics callback. That callback reads
 * the same published counters DPDK telemetry's /bypax/stats reads (plain
 * loads of aligned words, DESIGN.md: "telemetry callbacks read per-core
 * counters; they never lock a worker"): the worker is never locked nor
 * waited for, and a reading may be a poll old. docs/metrics.md lists what
 * the page holds. */
#include <stdio.h>
#include <string.h>

#include "ctl_daemon.h"

#define PROMETHEUS_TEXT "text/plain; version=0.0.4; charset=utf-8"

static bool leader_alive(const struct ctl_daemon *d, uint64_t now)
{
	uint8_t l = d->policy.leader;
	return l != CTL_NONE &&
	       (l == d->self || ctl_fd_alive(&d->policy.omega.fd, l, now));
}

static bool health(const struct ctl_daemon *d, uint64_t now, char *why,
		   size_t cap)
{
	const struct ctl_policy *p = &d->policy;
	struct ctl_health_input in = {
		.have_status = p->have_status,
		.status = &p->status,
		.self = d->self,
		.leader = p->leader,
		.leader_alive = leader_alive(d, now),
	};
	return ctl_health_check(&d->health, &in, now, why, cap);
}

static void fill_peers(const struct ctl_daemon *d, uint64_t now,
		       struct ctl_metrics_page *pg)
{
	const struct ctl_policy *pol = &d->policy;
	for (uint8_t i = 0; i < d->cfg->member_count; i++) {
		const struct ctl_policy_peer *p = &pol->peers[i];
		struct ctl_metrics_peer *q = &pg->peers[i];
		q->known = p->heard_any && i != d->self;
		q->alive = q->known && ctl_fd_alive(&pol->omega.fd, i, now);
		q->applied_index = p->last.applied_index;
		q->commit_index = p->last.commit_index;
		q->heard_age_ns = q->known ? now - p->heard_ns : 0;
		q->suspicions = d->health.suspicions[i];
		q->false_suspicions = pol->omega.fd.members[i].false_suspicions;
	}
}

static void fill_page(const struct ctl_daemon *d, uint64_t now,
		      struct ctl_metrics_page *pg)
{
	const struct ctl_policy *pol = &d->policy;
	char why[128];
	memset(pg, 0, sizeof(*pg));
	pg->cluster_id = d->cfg->cluster_id;
	pg->self = d->self;
	pg->member_count = d->cfg->member_count;
	pg->have_status = pol->have_status;
	pg->status = pol->status;
	pg->leader = pol->leader;
	pg->failovers = pol->failovers;
	pg->step_downs = pol->step_downs;
	pg->stalls = pol->omega.fd.stalls;
	pg->hb_dropped = d->hb_dropped;
	pg->hb_wrong_cluster = d->hb_wrong_cluster;
	pg->hb_bad_mac = d->hb_bad_mac;
	pg->admin_dropped = d->admin_dropped;
	pg->admin_refused = d->admin_refused;
	pg->log_lost = d->log_lost;
	pg->http_requests = d->http.requests;
	pg->http_dropped = d->http.dropped;
	pg->snapshots_streamed = d->snap.streamed;
	pg->snapshots_abandoned = d->snap.abandoned;
	pg->uptime_ns = now - d->start_ns;
	pg->healthy = health(d, now, why, sizeof(why));
	fill_peers(d, now, pg);
	if (d->worker_metrics != NULL)
		d->worker_metrics(d->worker_metrics_arg, &pg->w);
}

static void answer_metrics(struct ctl_daemon *d, uint64_t now,
			   struct ctl_http_answer *a)
{
	static struct ctl_metrics_page page; /* the control thread's only */
	fill_page(d, now, &page);
	a->body_len = ctl_metrics_render(&page, a->body, CTL_HTTP_BODY_MAX);
	a->status = 200;
	a->content_type = PROMETHEUS_TEXT;
	if (a->body_len == 0) { /* a bug: the page outgrew its buffer */
		a->status = 500;
		a->content_type = "text/plain";
		a->body_len = (size_t)snprintf(a->body, CTL_HTTP_BODY_MAX,
					       "the page does not fit %u bytes\n",
					       CTL_HTTP_BODY_MAX);
	}
}

static void answer(void *arg, const char *path, uint64_t now,
		   struct ctl_http_answer *a)
{
	struct ctl_daemon *d = arg;
	a->content_type = "text/plain";
	if (strcmp(path, "/metrics") == 0) {
		answer_metrics(d, now, a);
	} else if (strcmp(path, "/health") == 0) {
		char why[128];
		bool ok = health(d, now, why, sizeof(why));
		a->status = ok ? 200 : 503;
		a->body_len = (size_t)snprintf(a->body, CTL_HTTP_BODY_MAX,
					       "%s: member %u: %s\n",
					       ok ? "ok" : "unavailable",
					       d->self, why);
	} else {
		a->status = 404;
		a->body_len = (size_t)snprintf(a->body, CTL_HTTP_BODY_MAX,
					       "not found: %s (try /metrics or "
					       "/health)\n", path);
	}
}

int ctl_daemon_metrics_open(struct ctl_daemon *d, char *err, size_t err_len)
{
	const struct bpx_member *me = &d->cfg->members[d->self];
	ctl_http_init(&d->http, answer, d);
	if (me->metrics_port == 0)
		return 0; /* no metrics key for this member: no server */
	int rc = ctl_http_open(&d->http, me->metrics_ip, me->metrics_port, err,
			       err_len);
	/* On the main thread, before the control thread runs: an event
	 * line written at once, as bypaxd's other start-up events are. */
	if (rc == 0) {
		char addr[32], url[48];
		ctl_log_addr(me->metrics_ip, me->metrics_port, addr,
			     sizeof(addr));
		snprintf(url, sizeof(url), "http://%s", addr);
		ctl_log_event(CTL_LOG_CTL, RTE_LOG_NOTICE, d->self,
			      "metrics_listening",
			      BPX_LOG_FIELDS(BPX_LF_STR("url", url),
					     BPX_LF_STR("paths", "/metrics,/health")));
	}
	return rc;
}

void ctl_daemon_metrics_serve(struct ctl_daemon *d, const struct pollfd *fds,
			      uint64_t now)
{
	ctl_health_note(&d->health, &d->policy.status, d->policy.have_status,
			now);
	ctl_health_note_alive(&d->health,
			      ctl_fd_alive_mask(&d->policy.omega.fd, now),
			      d->self);
	ctl_http_serve(&d->http, fds, now);
}
