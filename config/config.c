/* Reading the cluster configuration with the INI reader of ini.h (no
 * DPDK: libbypax and the tools link this). Every error names the file,
 * section, key and value, so an operator can fix it at once. */
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bypax/config.h"
#include "ini.h"

struct reader {
	struct bpx_ini *file;
	const char *path;
	char *err;
	size_t err_len;
};

static int fail(struct reader *rd, const char *section, const char *key,
		const char *value, const char *fmt, ...)
	__attribute__((format(printf, 5, 6)));

static int fail(struct reader *rd, const char *section, const char *key,
		const char *value, const char *fmt, ...)
{
	char why[256];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	if (key != NULL)
		snprintf(rd->err, rd->err_len, "%s: [%s] %s = '%s': %s",
			 rd->path, section, key, value ? value : "", why);
	else
		snprintf(rd->err, rd->err_len, "%s: [%s]: %s", rd->path,
			 section, why);
	return -BPX_ECONFIG;
}

int bpx_parse_mac(const char *s, uint8_t mac[6])
{
	unsigned v[6];
	char tail;
	/* Exactly xx:xx:xx:xx:xx:xx: %2x alone would take "+1", "-1", " 1". */
	if (strlen(s) != 17)
		return -BPX_EINVAL;
	for (int i = 0; i < 17; i++)
		if (i % 3 == 2 ? s[i] != ':' : !isxdigit((unsigned char)s[i]))
			return -BPX_EINVAL;
	if (sscanf(s, "%2x:%2x:%2x:%2x:%2x:%2x%c", &v[0], &v[1], &v[2], &v[3],
		   &v[4], &v[5], &tail) != 6)
		return -BPX_EINVAL;
	for (int i = 0; i < 6; i++)
		mac[i] = (uint8_t)v[i];
	return 0;
}

int bpx_parse_ipv4(const char *s, uint32_t *ip)
{
	struct in_addr a;
	if (inet_pton(AF_INET, s, &a) != 1)
		return -BPX_EINVAL;
	*ip = ntohl(a.s_addr);
	return 0;
}

static int parse_u64_text(const char *s, uint64_t lo, uint64_t hi,
			  uint64_t *out)
{
	char *end;
	errno = 0;
	if (*s == '\0' || *s == '-')
		return -BPX_EINVAL;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno != 0 || *end != '\0' || v < lo || v > hi)
		return -BPX_EINVAL;
	*out = v;
	return 0;
}

int bpx_parse_hostport(const char *s, uint32_t *ip, uint16_t *port)
{
	char host[64];
	const char *colon = strrchr(s, ':');
	if (colon == NULL || (size_t)(colon - s) >= sizeof(host))
		return -BPX_EINVAL;
	memcpy(host, s, (size_t)(colon - s));
	host[colon - s] = '\0';
	uint64_t p;
	if (bpx_parse_ipv4(host, ip) != 0 ||
	    parse_u64_text(colon + 1, 1, 65535, &p) != 0)
		return -BPX_EINVAL;
	*port = (uint16_t)p;
	return 0;
}

const char *bpx_run_dir(void)
{
	const char *dir = getenv("BYPAX_RUN_DIR");
	return dir != NULL && *dir != '\0' ? dir : BPX_RUN_DIR_DEFAULT;
}

int bpx_admin_socket_path(uint32_t cluster_id, unsigned member_id, char *buf,
			  size_t cap)
{
	int n = snprintf(buf, cap, "%s/bypaxd-%" PRIu32 "-%u.sock",
			 bpx_run_dir(), cluster_id, member_id);
	return n < 0 || (size_t)n >= cap ? -BPX_EINVAL : 0;
}

/* Reads an optional number; keeps *out (the default) when absent. */
static int get_u64(struct reader *rd, const char *section, const char *key,
		   uint64_t lo, uint64_t hi, uint64_t *out)
{
	const char *v = bpx_ini_get(rd->file, section, key);
	if (v == NULL)
		return 0;
	if (parse_u64_text(v, lo, hi, out) != 0)
		return fail(rd, section, key, v,
			    "expected a whole number in %" PRIu64 "..%" PRIu64,
			    lo, hi);
	return 0;
}

static int get_u32(struct reader *rd, const char *section, const char *key,
		   uint64_t lo, uint64_t hi, uint32_t *out)
{
	uint64_t v = *out;
	int err = get_u64(rd, section, key, lo, hi, &v);
	*out = (uint32_t)v;
	return err;
}

static int get_us(struct reader *rd, const char *section, const char *key,
		  uint64_t *ns)
{
	uint64_t us = *ns / 1000;
	int err = get_u64(rd, section, key, 1, 3600ull * 1000 * 1000, &us);
	*ns = us * 1000;
	return err;
}

static int read_cluster(struct reader *rd, struct bpx_config *cfg)
{
	const char *s = "cluster";
	struct px_config *px = &cfg->px;
	uint64_t id = 0;
	if (!bpx_ini_has_section(rd->file, s))
		return fail(rd, s, NULL, NULL, "section is missing");
	if (bpx_ini_get(rd->file, s, "id") == NULL)
		return fail(rd, s, "id", "", "the cluster id is required");
	int err = get_u64(rd, s, "id", 1, UINT32_MAX, &id);
	err = err ? err : get_u32(rd, s, "window", 1, 65536, &px->window_slots);
	err = err ? err : get_u32(rd, s, "log_slots", 64, 1u << 24, &px->log_slots);
	err = err ? err : get_u32(rd, s, "batch_bytes", 19, PX_VALUE_BYTES_MAX, &px->batch_bytes_max);
	err = err ? err : get_u32(rd, s, "batch_requests", 1, 1024, &px->batch_requests_max);
	err = err ? err : get_u32(rd, s, "request_queue", 1, 1u << 20, &px->request_queue_max);
	err = err ? err : get_u32(rd, s, "sessions", 1, 1u << 24, &px->session_max);
	err = err ? err : get_us(rd, s, "heartbeat_us", &px->heartbeat_interval_ns);
	err = err ? err : get_us(rd, s, "retransmit_us", &px->retransmit_ns);
	uint64_t lease_us = px->lease_ns / 1000;
	err = err ? err : get_u64(rd, s, "lease_us", 0, 10000000, &lease_us);
	px->lease_ns = lease_us * 1000;
	err = err ? err : get_u32(rd, s, "clock_drift_ppm", 0, 200000,
				  &px->clock_drift_ppm);
	if (err)
		return err;
	char v[24];
	snprintf(v, sizeof(v), "%" PRIu32, px->log_slots);
	if ((px->log_slots & (px->log_slots - 1)) != 0)
		return fail(rd, s, "log_slots", v, "must be a power of two");
	if (px->log_slots < 2ull * px->window_slots)
		return fail(rd, s, "log_slots", v,
			    "must be at least 2 * window (window = %" PRIu32 ")",
			    px->window_slots);
	cfg->cluster_id = (uint32_t)id;
	px->cluster_id = (uint32_t)id;
	const char *sm = bpx_ini_get(rd->file, s, "sm");
	const char *args = bpx_ini_get(rd->file, s, "sm_args");
	snprintf(cfg->sm, sizeof(cfg->sm), "%s", sm && *sm ? sm : "kv");
	snprintf(cfg->sm_args, sizeof(cfg->sm_args), "%s", args ? args : "");
	return 0;
}

static int read_control(struct reader *rd, struct bpx_config *cfg)
{
	const char *s = "control";
	int err = get_us(rd, s, "heartbeat_us", &cfg->fd_heartbeat_ns);
	err = err ? err : get_us(rd, s, "timeout_min_us", &cfg->fd_timeout_min_ns);
	err = err ? err : get_us(rd, s, "timeout_max_us", &cfg->fd_timeout_max_ns);
	if (err)
		return err;
	if (cfg->fd_timeout_min_ns > cfg->fd_timeout_max_ns) {
		char v[24];
		snprintf(v, sizeof(v), "%" PRIu64, cfg->fd_timeout_min_ns / 1000);
		return fail(rd, s, "timeout_min_us", v,
			    "must not exceed timeout_max_us (%" PRIu64 ")",
			    cfg->fd_timeout_max_ns / 1000);
	}
	return 0;
}

static int read_member(struct reader *rd, uint8_t id, struct bpx_member *m)
{
	char s[16];
	snprintf(s, sizeof(s), "member%u", id);
	static const char *const keys[] = { "mac", "ip", "port", "control" };
	const char *v[4];
	for (int i = 0; i < 4; i++) {
		v[i] = bpx_ini_get(rd->file, s, keys[i]);
		if (v[i] == NULL)
			return fail(rd, s, keys[i], "", "required key is missing");
	}
	uint64_t port;
	if (bpx_parse_mac(v[0], m->data.mac) != 0)
		return fail(rd, s, "mac", v[0], "expected xx:xx:xx:xx:xx:xx");
	if (bpx_parse_ipv4(v[1], &m->data.ip) != 0)
		return fail(rd, s, "ip", v[1], "expected a dotted IPv4 address");
	if (parse_u64_text(v[2], 1, 65535, &port) != 0)
		return fail(rd, s, "port", v[2], "expected a UDP port 1..65535");
	m->data.port = (uint16_t)port;
	if (bpx_parse_hostport(v[3], &m->control_ip, &m->control_port) != 0)
		return fail(rd, s, "control", v[3], "expected IPv4:port");
	/* Optional: where bypaxd serves /metrics and /health. */
	const char *metrics = bpx_ini_get(rd->file, s, "metrics");
	if (metrics != NULL &&
	    bpx_parse_hostport(metrics, &m->metrics_ip, &m->metrics_port) != 0)
		return fail(rd, s, "metrics", metrics,
			    "expected IPv4:port (the HTTP address for "
			    "/metrics and /health), e.g. 127.0.0.1:9100");
	return 0;
}

/* Two members that share an address would take each other's traffic: the
 * routes map a MAC to a port, a data ip:port names the sender of a
 * consensus message, and one control address can be bound by one bypaxd
 * only. Each is refused, naming both members and the value. */
static int dup_member(struct reader *rd, uint8_t i, uint8_t j,
		      const char *key, const char *what)
{
	char s[16];
	snprintf(s, sizeof(s), "member%u", i);
	const char *v = bpx_ini_get(rd->file, s, key);
	return fail(rd, s, key, v,
		    "[member%u] has the same %s: each member needs its own",
		    j, what);
}

static int dup_data_address(struct reader *rd, uint8_t i, uint8_t j,
			    const struct bpx_member *m)
{
	char what[64];
	snprintf(what, sizeof(what), "ip and port (%u.%u.%u.%u:%u)",
		 m->data.ip >> 24, (m->data.ip >> 16) & 0xffu,
		 (m->data.ip >> 8) & 0xffu, m->data.ip & 0xffu, m->data.port);
	return dup_member(rd, i, j, "port", what);
}

/* Returns 0, or the error for the first member that repeats an earlier
 * member's mac, data ip:port or control address. */
static int check_distinct(struct reader *rd, const struct bpx_config *cfg,
			  uint8_t n)
{
	for (uint8_t i = 0; i < n; i++) {
		const struct bpx_member *a = &cfg->members[i];
		for (uint8_t j = 0; j < i; j++) {
			const struct bpx_member *b = &cfg->members[j];
			if (memcmp(a->data.mac, b->data.mac, 6) == 0)
				return dup_member(rd, i, j, "mac", "mac");
			if (a->data.ip == b->data.ip &&
			    a->data.port == b->data.port)
				return dup_data_address(rd, i, j, a);
			if (a->control_ip == b->control_ip &&
			    a->control_port == b->control_port)
				return dup_member(rd, i, j, "control",
						  "control address");
			if (a->metrics_port != 0 &&
			    a->metrics_ip == b->metrics_ip &&
			    a->metrics_port == b->metrics_port)
				return dup_member(rd, i, j, "metrics",
						  "metrics address");
		}
	}
	return 0;
}

static int read_members(struct reader *rd, struct bpx_config *cfg)
{
	uint8_t n = 0;
	while (n < PX_REPLICAS_MAX) {
		char s[16];
		snprintf(s, sizeof(s), "member%u", n);
		if (!bpx_ini_has_section(rd->file, s))
			break;
		int err = read_member(rd, n, &cfg->members[n]);
		if (err)
			return err;
		n++;
	}
	/* A section past the last id would be silently ignored: refuse it. */
	for (unsigned k = n; k <= UINT8_MAX; k++) {
		char extra[16];
		snprintf(extra, sizeof(extra), "member%u", k);
		if (!bpx_ini_has_section(rd->file, extra))
			continue;
		if (k == n) /* n == PX_REPLICAS_MAX */
			return fail(rd, extra, NULL, NULL,
				    "at most %u members", PX_REPLICAS_MAX);
		return fail(rd, extra, NULL, NULL,
			    "member ids must be 0..n-1 without gaps: "
			    "[member%u] is missing", n);
	}
	if (n == 0)
		return fail(rd, "member0", NULL, NULL,
			    "no members: add [member0], [member1], ...");
	int err = check_distinct(rd, cfg, n);
	if (err)
		return err;
	cfg->member_count = n;
	cfg->px.replica_count = n;
	return 0;
}

/* [cluster] initial_members = 0,1,2: who votes at the start (default:
 * every member); the others can be added later (bypaxctl members add). */
static int read_initial_members(struct reader *rd, struct bpx_config *cfg)
{
	const char *v = bpx_ini_get(rd->file, "cluster",
					      "initial_members");
	if (v == NULL || *v == '\0')
		return 0;
	uint8_t mask = 0;
	const char *p = v;
	while (*p != '\0') {
		char *end;
		unsigned long id = strtoul(p, &end, 10);
		if (end == p || id >= cfg->member_count ||
		    (*end != ',' && *end != '\0'))
			return fail(rd, "cluster", "initial_members", v,
				    "expected member ids 0..%u separated by "
				    "commas", cfg->member_count - 1);
		mask |= (uint8_t)(1u << id);
		p = *end == ',' ? end + 1 : end;
	}
	cfg->px.initial_members = mask;
	return 0;
}

/* [cluster] key_file (docs/config.md, "Authentication"): only its path
 * here, the key is read by bypaxd alone (bpx_config_load_key). With a key
 * every member message ends with a 16-byte tag, so the batch budget
 * shrinks by as much: a PROMISE with a full batch still fits a 1500-byte
 * IP MTU. The documented value limit (PX_VALUE_BYTES_MAX) stays. */
static int read_cluster_key(struct reader *rd, struct bpx_config *cfg)
{
	const char *s = "cluster";
	const char *v = bpx_ini_get(rd->file, s, "key_file");
	if (v == NULL)
		return 0;
	if (*v == '\0' || strlen(v) >= sizeof(cfg->key_file))
		return fail(rd, s, "key_file", v, "expected the path of a "
			    "32-byte key file, at most %zu characters",
			    sizeof(cfg->key_file) - 1);
	snprintf(cfg->key_file, sizeof(cfg->key_file), "%s", v);
	const char *b = bpx_ini_get(rd->file, s, "batch_bytes");
	if (b == NULL)
		cfg->px.batch_bytes_max = BPX_AUTH_BATCH_BYTES_MAX;
	else if (cfg->px.batch_bytes_max > BPX_AUTH_BATCH_BYTES_MAX)
		return fail(rd, s, "batch_bytes", b, "at most %u with a "
			    "key_file (each message then carries a %u-byte "
			    "tag)", BPX_AUTH_BATCH_BYTES_MAX,
			    BPX_AUTH_TAG_BYTES);
	return 0;
}

/* [cluster] durability, wal_segment_bytes, disk_snapshot_slots and every
 * member's wal_dir (docs/config.md, "Durability"). A wal_dir is absolute:
 * bypaxd runs from wherever systemd or a script starts it. */
static int read_durability(struct reader *rd, struct bpx_config *cfg)
{
	const char *s = "cluster";
	const char *v = bpx_ini_get(rd->file, s, "durability");
	if (v != NULL && strcmp(v, "wal") == 0)
		cfg->durability = BPX_DURABILITY_WAL;
	else if (v != NULL && strcmp(v, "memory") != 0)
		return fail(rd, s, "durability", v, "expected memory or wal");
	int err = get_u64(rd, s, "wal_segment_bytes", BPX_WAL_SEGMENT_BYTES_MIN,
			  BPX_WAL_SEGMENT_BYTES_MAX, &cfg->wal_segment_bytes);
	err = err ? err : get_u64(rd, s, "disk_snapshot_slots", 1,
				  BPX_DISK_SNAPSHOT_SLOTS_MAX,
				  &cfg->disk_snapshot_slots);
	for (uint8_t i = 0; err == 0 && i < cfg->member_count; i++) {
		char m[16];
		snprintf(m, sizeof(m), "member%u", i);
		const char *d = bpx_ini_get(rd->file, m, "wal_dir");
		if (cfg->durability == BPX_DURABILITY_MEMORY)
			continue; /* ignored, like any key of no use */
		if (d == NULL || *d == '\0')
			return fail(rd, m, "wal_dir", d, "required with "
				    "[cluster] durability = wal (the directory "
				    "of this member's write-ahead log)");
		if (d[0] != '/' || strlen(d) >= 200)
			return fail(rd, m, "wal_dir", d, "expected an absolute "
				    "path of at most 199 characters");
		snprintf(cfg->members[i].wal_dir,
			 sizeof(cfg->members[i].wal_dir), "%s", d);
	}
	return err;
}

int bpx_config_load(const char *path, struct bpx_config *cfg, char *err,
		    size_t err_len)
{
	memset(cfg, 0, sizeof(*cfg));
	snprintf(cfg->path, sizeof(cfg->path), "%s", path);
	px_config_default(&cfg->px, 3, 0);
	cfg->fd_heartbeat_ns = 5000000;
	cfg->fd_timeout_min_ns = 30000000;
	cfg->fd_timeout_max_ns = 1000000000;
	cfg->wal_segment_bytes = BPX_WAL_SEGMENT_BYTES_DEFAULT;
	cfg->disk_snapshot_slots = BPX_DISK_SNAPSHOT_SLOTS_DEFAULT;
	struct reader rd = { .path = path, .err = err, .err_len = err_len };
	int rc = bpx_ini_load(path, &rd.file, err, err_len);
	if (rc != 0)
		return rc;
	rc = read_cluster(&rd, cfg);
	rc = rc ? rc : read_control(&rd, cfg);
	rc = rc ? rc : read_members(&rd, cfg);
	rc = rc ? rc : read_initial_members(&rd, cfg);
	rc = rc ? rc : read_cluster_key(&rd, cfg);
	rc = rc ? rc : read_durability(&rd, cfg);
	bpx_ini_free(rd.file);
	return rc;
}
