/* bypax-chaos-client: a history-recording KV client for the chaos harness.
 *
 * N sessions share one libbypax client with N lanes (client.h: a lane is
 * a session of its own with at most one request outstanding, and
 * bpx_submit/bpx_poll run them all from one thread). Each session calls
 * one op at a time on a few hot keys (get, put, cas, del: the contention
 * the linearizability checker needs) and on write-once keys (a fresh key
 * per put, read back later: a lost acknowledged write shows there). Every
 * op goes to the history file (history.h) as it is called and as it ends.
 *
 * What a status means for the model (client.h, engine.h):
 *   0, NOTFOUND, CASMISMATCH      answered: a definite result
 *   FULL, TOOBIG, INVAL           refused with no effect: "failed"
 *   TIMEDOUT, STALE, EXPIRED, and anything else (MALFORMED, IO)
 *                                 the outcome is unknown: the op may take
 *                                 effect at any time after its call
 *
 * With --read-back it instead reads every key named in the histories given
 * and appends those GETs to --history as a read-back segment (B ... E):
 * the final values the checker compares acknowledged writes with.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "bypax/client.h"
#include "bypax/kv.h"
#include "history.h"

#ifndef BPX_VERSION
#define BPX_VERSION "unknown"
#endif

#define EXIT_NO_ACK 1 /* nothing acknowledged; read-back: a key unread */
#define EXIT_USAGE 2  /* bad arguments, configuration or file */

#define NS_PER_MS 1000000ull
#define NS_PER_S 1000000000ull
#define SESSIONS_MAX BPX_CLIENT_LANES_MAX
#define HOT_KEYS_MAX 1000u
#define SECONDS_MAX 86400.0
#define RECENT_MAX 1024u     /* write-once keys a get may pick */
#define LOOP_WAIT_MS_MAX 100 /* flush and progress stay on time */
#define ACK_SECONDS_MAX 3600u
#define READ_BACK_TRIES 5u
/* Values: tag << 40 | n. The tag (from the seed, 1..2^23-1) keeps two
 * client processes' values and write-once keys apart; the counter n gives
 * 2^40 values each. Both stay below 2^63 (history.h). */
#define VALUE_TAG_SHIFT 40u
#define VALUE_TAG_MAX ((1u << 23) - 1u)

static volatile sig_atomic_t force_quit;

static void on_signal(int sig)
{
	(void)sig;
	force_quit = 1;
}

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * NS_PER_S + (uint64_t)ts.tv_nsec;
}

static uint64_t splitmix64(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

/* ---- Options ---- */

struct opts {
	const char *config;
	const char *history;
	double seconds;
	uint32_t sessions;
	uint64_t seed;
	bool seed_given;
	double rate; /* ops/s per session; 0: each op as soon as the last ends */
	uint32_t keys;
	uint32_t timeout_ms, deadline_ms;
	bool progress;
	bool read_back;
	char **inputs; /* --read-back: more histories to take keys from */
	int input_count;
};

static const char usage_text[] =
	"usage: bypax-chaos-client --history FILE [OPTIONS]\n"
	"       bypax-chaos-client --history FILE --read-back [HISTORY...]\n"
	"\n"
	"Runs get/put/cas/del from several sessions on a few hot keys and on\n"
	"write-once keys, and records every op (call and return times, result)\n"
	"in FILE, in the format of tests/chaos/history.h. With --read-back,\n"
	"reads every key of FILE and of each HISTORY once more and appends\n"
	"those reads to FILE: the final values for bypax-chaos-check.\n"
	"\n"
	"Options:\n"
	"  -c, --config FILE      cluster configuration (default: $BYPAX_CONFIG,\n"
	"                         else ./bypax.conf)\n"
	"  -H, --history FILE     the history to write (truncated; --read-back\n"
	"                         appends); required\n"
	"  -s, --seconds S        how long to run (default 10)\n"
	"  -n, --sessions N       concurrent sessions, 1..256 (default 4)\n"
	"  -S, --seed N           seeds the op mix, the values' tag and the\n"
	"                         write-once keys (default: random; printed).\n"
	"                         Concurrent clients need different seeds\n"
	"  -r, --rate R           ops started per second per session (default\n"
	"                         200; 0: each as soon as the last one ends)\n"
	"  -k, --keys K           hot keys h0..h<K-1>, 1..1000 (default 3)\n"
	"  -t, --timeout-ms N     per attempt before the next member (default 200)\n"
	"  -d, --deadline-ms N    per op; then its outcome is unknown (default\n"
	"                         5000)\n"
	"  -p, --progress         a line a second on stderr\n"
	"  -R, --read-back        read every key back (see above)\n"
	"  -h, --help             this help\n"
	"  -V, --version          the version\n"
	"\n"
	"Op mix per session: get 30%, put 15%, cas 15%, del 5% of a hot key;\n"
	"put 20% of a fresh write-once key w<tag>.<n>, get 15% of a recent one.\n"
	"SIGINT or SIGTERM ends the run early (ops in flight stay unknown).\n"
	"Prints at the end:\n"
	"  chaos-client: ops=N ok=N notfound=N mismatch=N unknown=N failed=N\n"
	"    max_gap_ms=G acks_per_s=A,B,...\n"
	"(ok: every acknowledged op, notfound and mismatch among them; failed:\n"
	"refused with no effect; unknown: may or may not have taken effect.)\n"
	"\n"
	"Exit status: 0 done; 1 nothing was acknowledged (--read-back: some\n"
	"key could not be read); 2 usage, configuration or file error.\n";

#define usage_error(...) \
	chaos_usage_error("bypax-chaos-client", EXIT_USAGE, __VA_ARGS__)

static int parse_u64(const char *s, uint64_t lo, uint64_t hi, uint64_t *v)
{
	char *end;
	errno = 0;
	unsigned long long x = strtoull(s, &end, 0);
	if (*s == '\0' || *s == '-' || *end != '\0' || errno != 0 || x < lo ||
	    x > hi)
		return -1;
	*v = x;
	return 0;
}

static int parse_double(const char *s, double lo, double hi, double *v)
{
	char *end;
	errno = 0;
	double x = strtod(s, &end);
	if (*s == '\0' || *end != '\0' || errno != 0 || !(x >= lo && x <= hi))
		return -1;
	*v = x;
	return 0;
}

static int parse_u32_opt(const char *name, const char *s, uint32_t lo,
			 uint32_t hi, uint32_t *v)
{
	uint64_t x;
	if (parse_u64(s, lo, hi, &x) != 0)
		return usage_error("%s '%s': expected a whole number %" PRIu32
				   "..%" PRIu32,
				   name, s, lo, hi);
	*v = (uint32_t)x;
	return 0;
}

static int parse_option(int ch, const char *arg, struct opts *o)
{
	switch (ch) {
	case 'c':
		o->config = arg;
		return 0;
	case 'H':
		o->history = arg;
		return 0;
	case 's':
		if (parse_double(arg, 0.001, SECONDS_MAX, &o->seconds) != 0)
			return usage_error(
				"--seconds '%s': expected 0.001..%.0f", arg,
				SECONDS_MAX);
		return 0;
	case 'n':
		return parse_u32_opt("--sessions", arg, 1, SESSIONS_MAX,
				     &o->sessions);
	case 'S':
		if (parse_u64(arg, 0, UINT64_MAX, &o->seed) != 0)
			return usage_error("--seed '%s': expected a u64", arg);
		o->seed_given = true;
		return 0;
	case 'r':
		if (parse_double(arg, 0, 1e6, &o->rate) != 0)
			return usage_error("--rate '%s': expected 0..1000000 "
					   "ops/s",
					   arg);
		return 0;
	case 'k':
		return parse_u32_opt("--keys", arg, 1, HOT_KEYS_MAX, &o->keys);
	case 't':
		return parse_u32_opt("--timeout-ms", arg, 1, 600000,
				     &o->timeout_ms);
	case 'd':
		return parse_u32_opt("--deadline-ms", arg, 1, 600000,
				     &o->deadline_ms);
	case 'p':
		o->progress = true;
		return 0;
	case 'R':
		o->read_back = true;
		return 0;
	default:
		/* parse_args takes --help, --version and getopt's errors. */
		CH_ASSERT(false);
		return EXIT_USAGE;
	}
}

static const char *default_config(void)
{
	const char *env = getenv("BYPAX_CONFIG");
	return env != NULL && env[0] != '\0' ? env : "bypax.conf";
}

/* Returns 0 to run, EXIT_USAGE, or -1 after --help/--version (exit 0). */
static int parse_args(int argc, char **argv, struct opts *o)
{
	static const struct option lo[] = {
		{ "config", 1, 0, 'c' },      { "history", 1, 0, 'H' },
		{ "seconds", 1, 0, 's' },     { "sessions", 1, 0, 'n' },
		{ "seed", 1, 0, 'S' },	      { "rate", 1, 0, 'r' },
		{ "keys", 1, 0, 'k' },	      { "timeout-ms", 1, 0, 't' },
		{ "deadline-ms", 1, 0, 'd' }, { "progress", 0, 0, 'p' },
		{ "read-back", 0, 0, 'R' },   { "help", 0, 0, 'h' },
		{ "version", 0, 0, 'V' },     { 0, 0, 0, 0 },
	};
	*o = (struct opts){ .seconds = 10,
			    .sessions = 4,
			    .rate = 200,
			    .keys = 3,
			    .timeout_ms = 200,
			    .deadline_ms = 5000 };
	opterr = 0;
	int ch;
	while ((ch = getopt_long(argc, argv, ":c:H:s:n:S:r:k:t:d:pRhV", lo,
				 NULL)) != -1) {
		if (ch == 'h' || ch == 'V') {
			fputs(ch == 'h' ? usage_text :
					  "bypax-chaos-client " BPX_VERSION
					  "\n",
			      stdout);
			return -1;
		}
		if (ch == ':')
			return usage_error("option '%s' needs an argument",
					   argv[optind - 1]);
		if (ch == '?')
			return usage_error("unknown option '%s'",
					   argv[optind - 1]);
		int rc = parse_option(ch, optarg, o);
		if (rc != 0)
			return rc;
	}
	if (o->history == NULL)
		return usage_error("--history FILE is required");
	if (optind < argc && !o->read_back)
		return usage_error("unexpected argument '%s' (histories are "
				   "only read with --read-back)",
				   argv[optind]);
	o->inputs = argv + optind;
	o->input_count = argc - optind;
	if (o->config == NULL)
		o->config = default_config();
	if (o->timeout_ms > o->deadline_ms)
		o->timeout_ms = o->deadline_ms;
	return 0;
}

/* ---- The run's state ---- */

struct session {
	uint32_t index;
	int32_t hot;	   /* the op's hot key; -1: a write-once key */
	uint32_t read_key; /* --read-back: the key's index in the key set */
	bool busy;
	uint64_t ticket;
	uint64_t next_ns; /* when its next op may start */
	struct ch_op op;  /* the op outstanding */
};

struct counts {
	uint64_t ops, ok, notfound, mismatch, unknown, failed;
};

/* --read-back: every key of the histories, each read until a definite
 * answer or READ_BACK_TRIES unknown ones. */
struct read_back {
	char (*keys)[CH_KEY_BYTES_MAX + 1];
	size_t count, cap;
	uint8_t *tries;	   /* per key */
	uint32_t *queue;   /* key indices still to read, a FIFO */
	size_t head, tail; /* queue[head..tail) */
	uint64_t max_id;   /* in --history: the read-back's ids follow it */
	uint64_t read, unread;
};

struct chaos {
	const struct opts *o;
	struct read_back *rb; /* NULL: the load */
	struct bpx_client *c;
	FILE *hist;
	const char *hist_path;
	bool io_error;
	uint64_t prng;
	uint64_t tag;
	uint64_t next_value; /* the counter n of tag << 40 | n */
	uint64_t next_id;
	uint64_t start_ns, end_ns;
	uint64_t interval_ns; /* between a session's op starts; 0: none */
	uint64_t last_flush_ns;
	uint64_t last_tick_ns; /* housekeeping's last second */
	struct session *sessions;
	uint64_t *last_seen; /* per hot key: the value last seen; 0: absent */
	uint64_t recent[RECENT_MAX]; /* write-once counters called */
	uint32_t recent_count;
	struct counts n;
	uint64_t last_ack_ns, max_gap_ns;
	uint32_t acks_per_s[ACK_SECONDS_MAX];
	struct bpx_completion done[SESSIONS_MAX];
};

static uint64_t rnd(struct chaos *ch, uint64_t bound)
{
	CH_ASSERT(bound > 0);
	return splitmix64(&ch->prng) % bound;
}

static uint64_t fresh_value(struct chaos *ch, uint64_t *counter)
{
	uint64_t n = ++ch->next_value;
	CH_ASSERT(n < (1ull << VALUE_TAG_SHIFT));
	if (counter != NULL)
		*counter = n;
	return ch->tag << VALUE_TAG_SHIFT | n;
}

static void write_once_key(const struct chaos *ch, uint64_t n, char *key)
{
	int len = snprintf(key, CH_KEY_BYTES_MAX + 1, "w%06" PRIx64 ".%" PRIu64,
			   ch->tag, n);
	CH_ASSERT(len > 0 && (unsigned)len <= CH_KEY_BYTES_MAX);
}

/* ---- The history file ---- */

static void hist_write(struct chaos *ch, const char *buf, int len)
{
	CH_ASSERT(len > 0);
	if (fwrite(buf, 1, (size_t)len, ch->hist) != (size_t)len)
		ch->io_error = true;
}

__attribute__((format(printf, 2, 3))) static void
hist_printf(struct chaos *ch, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	if (vfprintf(ch->hist, fmt, ap) < 0)
		ch->io_error = true;
	va_end(ap);
}

static void hist_flush(struct chaos *ch, uint64_t now)
{
	if (fflush(ch->hist) != 0)
		ch->io_error = true;
	ch->last_flush_ns = now;
}

static void hist_call(struct chaos *ch, const struct ch_op *op)
{
	char line[CH_LINE_BYTES_MAX];
	hist_write(ch, line, ch_format_call(line, sizeof(line), op));
}

static void hist_op(struct chaos *ch, const struct ch_op *op)
{
	char line[CH_LINE_BYTES_MAX];
	hist_write(ch, line, ch_format_op(line, sizeof(line), op));
}

/* ---- Choosing ops ---- */

/* The op mix of --help, in percent, cumulative. */
#define MIX_HOT_GET 30u
#define MIX_HOT_PUT 45u
#define MIX_HOT_CAS 60u
#define MIX_HOT_DEL 65u
#define MIX_WO_PUT 85u
#define MIX_ALL 100u

/* The expected value of a CAS: mostly the value last seen (it may swap),
 * else some earlier value of ours (a mismatch, or notfound). */
static uint64_t cas_expected(struct chaos *ch, uint32_t hot)
{
	uint64_t seen = ch->last_seen[hot];
	if (seen != 0 && rnd(ch, 5) != 0)
		return seen;
	CH_ASSERT(ch->next_value > 0);
	return ch->tag << VALUE_TAG_SHIFT | (1 + rnd(ch, ch->next_value));
}

static void gen_hot(struct chaos *ch, struct session *s, uint64_t pick)
{
	struct ch_op *op = &s->op;
	uint32_t hot = (uint32_t)rnd(ch, ch->o->keys);
	s->hot = (int32_t)hot;
	snprintf(op->key, sizeof(op->key), "h%" PRIu32, hot);
	if (pick < MIX_HOT_GET) {
		op->kind = CH_GET;
	} else if (pick < MIX_HOT_PUT) {
		op->kind = CH_PUT;
		op->arg = fresh_value(ch, NULL);
	} else if (pick < MIX_HOT_CAS) {
		op->kind = CH_CAS;
		op->arg2 = fresh_value(ch, NULL);
		op->arg = cas_expected(ch, hot);
	} else {
		op->kind = CH_DEL;
	}
}

static void gen_write_once_put(struct chaos *ch, struct session *s)
{
	uint64_t n;
	s->op.kind = CH_PUT;
	s->op.arg = fresh_value(ch, &n);
	write_once_key(ch, n, s->op.key);
	ch->recent[ch->recent_count++ % RECENT_MAX] = n;
}

/* A get of a recent write-once key, acknowledged or not yet: a stale read
 * after an acknowledged put is a violation the checker sees. */
static void gen_write_once_get(struct chaos *ch, struct session *s)
{
	uint32_t have = ch->recent_count < RECENT_MAX ? ch->recent_count :
							RECENT_MAX;
	CH_ASSERT(have > 0);
	s->op.kind = CH_GET;
	write_once_key(ch, ch->recent[rnd(ch, have)], s->op.key);
}

static void gen_op(struct chaos *ch, struct session *s)
{
	uint64_t pick = rnd(ch, MIX_ALL);
	s->hot = -1;
	if (pick < MIX_HOT_DEL)
		gen_hot(ch, s, pick);
	else if (pick < MIX_WO_PUT || ch->recent_count == 0)
		gen_write_once_put(ch, s);
	else
		gen_write_once_get(ch, s);
}

/* --read-back: the next key to read, if any. */
static bool gen_read(struct chaos *ch, struct session *s)
{
	struct read_back *rb = ch->rb;
	if (rb->head == rb->tail)
		return false;
	s->hot = -1;
	s->read_key = rb->queue[rb->head++];
	s->op.kind = CH_GET;
	memcpy(s->op.key, rb->keys[s->read_key], sizeof(s->op.key));
	return true;
}

/* The session's next op; false when there is none (read-back done). */
static bool gen_next(struct chaos *ch, struct session *s)
{
	if (ch->rb != NULL)
		return gen_read(ch, s);
	gen_op(ch, s);
	return true;
}

/* ---- Ends of ops ---- */

static uint64_t reply_value(const struct bpx_completion *d, const char *key)
{
	uint64_t v;
	if (ch_value_parse(d->value, d->value_len, &v) == 0)
		return v;
	fprintf(stderr,
		"bypax-chaos-client: key %s holds '%.*s', not a value of "
		"ours: recorded as 'bad'\n",
		key, d->value_len > 40 ? 40 : (int)d->value_len,
		(const char *)d->value);
	return CH_BAD_VALUE;
}

/* The model's reading of a status (the table at the top of this file). */
static void classify(const struct bpx_completion *d, struct ch_op *op,
		     uint64_t now)
{
	int st = d->status;
	op->end_ns = now;
	op->return_ns = now;
	op->out = 0;
	snprintf(op->error, sizeof(op->error), "%s",
		 st == 0 ? "" : ch_error_name(st));
	if (st == 0) {
		op->result = CH_OK;
		if (op->kind != CH_PUT)
			op->out = reply_value(d, op->key);
	} else if (st == -BPX_ENOTFOUND && op->kind != CH_PUT) {
		op->result = CH_NOTFOUND;
	} else if (st == -BPX_ECASMISMATCH && op->kind == CH_CAS) {
		op->result = CH_MISMATCH;
		op->out = reply_value(d, op->key);
	} else if (st == -BPX_EFULL || st == -BPX_ETOOBIG ||
		   st == -BPX_EINVAL) {
		op->result = CH_FAILED;
	} else {
		op->result = CH_UNKNOWN;
		op->return_ns = CH_NEVER;
	}
}

static void count_ack(struct chaos *ch, uint64_t t)
{
	CH_ASSERT(t >= ch->last_ack_ns);
	if (t - ch->last_ack_ns > ch->max_gap_ns)
		ch->max_gap_ns = t - ch->last_ack_ns;
	ch->last_ack_ns = t;
	uint64_t sec = (t - ch->start_ns) / NS_PER_S;
	if (sec < ACK_SECONDS_MAX)
		ch->acks_per_s[sec]++;
}

static void count_end(struct chaos *ch, const struct ch_op *op)
{
	switch (op->result) {
	case CH_NOTFOUND:
		ch->n.notfound++;
		ch->n.ok++;
		break;
	case CH_MISMATCH:
		ch->n.mismatch++;
		ch->n.ok++;
		break;
	case CH_OK:
		ch->n.ok++;
		break;
	case CH_FAILED:
		ch->n.failed++;
		break;
	default:
		ch->n.unknown++;
		return;
	}
	count_ack(ch, op->return_ns);
}

/* What a hot key's answer says it holds now, for the next CAS. */
static void learn(struct chaos *ch, const struct session *s,
		  const struct ch_op *op)
{
	if (s->hot < 0 || op->result == CH_UNKNOWN || op->result == CH_FAILED)
		return;
	uint64_t *seen = &ch->last_seen[s->hot];
	if (op->kind == CH_PUT)
		*seen = op->arg;
	else if (op->kind == CH_DEL)
		*seen = 0;
	else if (op->kind == CH_CAS && op->result == CH_OK)
		*seen = op->arg2;
	else
		*seen = op->out; /* get, or cas mismatch / notfound */
	if (*seen == CH_BAD_VALUE)
		*seen = 0;
}

static void read_back_done(struct chaos *ch, const struct session *s,
			   const struct ch_op *op)
{
	struct read_back *rb = ch->rb;
	if (op->result != CH_UNKNOWN) {
		rb->read++;
		return;
	}
	if (++rb->tries[s->read_key] < READ_BACK_TRIES) {
		CH_ASSERT(rb->tail < rb->count * READ_BACK_TRIES);
		rb->queue[rb->tail++] = s->read_key;
		return;
	}
	rb->unread++;
	fprintf(stderr, "bypax-chaos-client: read-back of %s: %s %u times\n",
		op->key, op->error, READ_BACK_TRIES);
}

static void schedule_next(struct chaos *ch, struct session *s, uint64_t now)
{
	s->busy = false;
	if (ch->interval_ns == 0)
		s->next_ns = now;
	else if (s->next_ns + ch->interval_ns > now)
		s->next_ns += ch->interval_ns;
	else
		s->next_ns = now; /* late (a failover): no burst to catch up */
}

static void op_ended(struct chaos *ch, struct session *s, uint64_t now)
{
	hist_op(ch, &s->op);
	count_end(ch, &s->op);
	if (ch->rb != NULL)
		read_back_done(ch, s, &s->op);
	else
		learn(ch, s, &s->op);
	schedule_next(ch, s, now);
}

static void on_completion(struct chaos *ch, const struct bpx_completion *d,
			  uint64_t now)
{
	struct session *s = NULL;
	for (uint32_t i = 0; i < ch->o->sessions && s == NULL; i++)
		if (ch->sessions[i].busy && ch->sessions[i].ticket == d->ticket)
			s = &ch->sessions[i];
	CH_ASSERT(s != NULL); /* every ticket is a busy session's */
	CH_ASSERT(d->op == s->op.kind);
	classify(d, &s->op, now);
	op_ended(ch, s, now);
}

/* ---- Calls ---- */

static void submit_one(struct chaos *ch, struct session *s)
{
	char a[CH_VALUE_DIGITS_MAX + 1] = "", b[CH_VALUE_DIGITS_MAX + 1] = "";
	const struct ch_op *op = &s->op;
	size_t alen = op->arg != 0 ? ch_value_format(op->arg, a) : 0;
	size_t blen = op->arg2 != 0 ? ch_value_format(op->arg2, b) : 0;
	int rc = bpx_submit(ch->c, (enum bpx_kv_op)op->kind, op->key,
			    strlen(op->key), a, alen, b, blen, &s->ticket);
	if (rc == 0) {
		s->busy = true;
		return;
	}
	/* Every session has a lane (lanes = sessions): only the command
	 * itself can be refused, before anything is sent. */
	CH_ASSERT(rc != -BPX_EBUSY);
	fprintf(stderr, "bypax-chaos-client: %s %s not sent: %s\n",
		ch_kind_name(op->kind), op->key, bpx_strerror(rc));
	uint64_t now = now_ns();
	s->op.result = CH_FAILED;
	s->op.return_ns = s->op.end_ns = now;
	snprintf(s->op.error, sizeof(s->op.error), "%s", ch_error_name(rc));
	op_ended(ch, s, now);
}

/* Starts an op on every idle session that is due. The C lines reach the
 * file (one write for the batch) before any request is sent: a run killed
 * at any moment leaves every op that may take effect in its history. */
static void submit_due(struct chaos *ch, uint64_t now)
{
	uint32_t due[SESSIONS_MAX], n = 0;
	for (uint32_t i = 0; i < ch->o->sessions; i++) {
		struct session *s = &ch->sessions[i];
		if (s->busy || s->next_ns > now)
			continue;
		memset(&s->op, 0, sizeof(s->op));
		if (!gen_next(ch, s))
			continue;
		s->op.id = ch->next_id++;
		s->op.client = s->index;
		s->op.call_ns = now;
		hist_call(ch, &s->op);
		ch->n.ops++;
		due[n++] = i;
	}
	if (n == 0)
		return;
	hist_flush(ch, now);
	for (uint32_t k = 0; k < n; k++)
		submit_one(ch, &ch->sessions[due[k]]);
}

/* ---- The loop ---- */

static uint64_t min_u64(uint64_t a, uint64_t b)
{
	return a < b ? a : b;
}

/* How long the loop may wait: until the next session is due, the stop
 * time or the next flush, at most LOOP_WAIT_MS_MAX. */
static int wait_ms(const struct chaos *ch, uint64_t now, uint64_t stop_ns)
{
	uint64_t until = min_u64(stop_ns, ch->last_tick_ns + NS_PER_S);
	for (uint32_t i = 0; i < ch->o->sessions; i++)
		if (!ch->sessions[i].busy)
			until = min_u64(until, ch->sessions[i].next_ns);
	if (until <= now)
		return 0;
	uint64_t ms = (until - now + NS_PER_MS - 1) / NS_PER_MS;
	return ms > LOOP_WAIT_MS_MAX ? LOOP_WAIT_MS_MAX : (int)ms;
}

/* Waits up to ms for completions and takes them. Returns 0 or -BPX_EIO. */
static int collect(struct chaos *ch, int ms)
{
	if (bpx_client_outstanding(ch->c) == 0) {
		struct timespec ts = { ms / 1000,
				       (long)(ms % 1000) * 1000000L };
		nanosleep(&ts, NULL); /* a signal cuts it short: fine */
		return 0;
	}
	int n = bpx_poll(ch->c, ms, ch->done, ch->o->sessions);
	if (n < 0)
		return n;
	uint64_t now = now_ns(); /* at or after each reply: a safe bound */
	for (int i = 0; i < n; i++)
		on_completion(ch, &ch->done[i], now);
	return 0;
}

static void progress(struct chaos *ch, uint64_t now)
{
	uint64_t sec = (now - ch->start_ns) / NS_PER_S;
	uint32_t last = sec >= 1 && sec - 1 < ACK_SECONDS_MAX ?
				ch->acks_per_s[sec - 1] :
				0;
	fprintf(stderr,
		"chaos-client: t=%" PRIu64 "s ops=%" PRIu64 " ok=%" PRIu64
		" unknown=%" PRIu64 " failed=%" PRIu64 " acks_last_s=%" PRIu32
		" in_flight=%" PRIu32 " leader=%u\n",
		sec, ch->n.ops, ch->n.ok, ch->n.unknown, ch->n.failed, last,
		bpx_client_outstanding(ch->c),
		(unsigned)bpx_client_leader(ch->c));
}

/* Once a second: the history reaches the file (a killed run loses at most
 * a second of O lines; its ops then read as unknown, which is safe). */
static void housekeeping(struct chaos *ch, uint64_t now)
{
	if (now < ch->last_tick_ns + NS_PER_S)
		return;
	ch->last_tick_ns = now;
	if (now >= ch->last_flush_ns + NS_PER_S)
		hist_flush(ch, now);
	if (ch->o->progress)
		progress(ch, now);
}

static bool work_left(const struct chaos *ch)
{
	if (ch->rb != NULL)
		return ch->rb->head != ch->rb->tail;
	return true;
}

/* Runs until stop_ns (the load) or until every key is read (read-back),
 * then waits for the ops in flight, each bounded by its deadline. */
static int run_loop(struct chaos *ch, uint64_t stop_ns)
{
	uint64_t now;
	while (!force_quit && !ch->io_error && (now = now_ns()) < stop_ns &&
	       (work_left(ch) || bpx_client_outstanding(ch->c) > 0)) {
		submit_due(ch, now);
		int rc = collect(ch, wait_ms(ch, now_ns(), stop_ns));
		if (rc < 0)
			return rc;
		housekeeping(ch, now_ns());
	}
	uint64_t drain_ns =
		now_ns() + ch->o->deadline_ms * NS_PER_MS + NS_PER_S;
	while (!force_quit && bpx_client_outstanding(ch->c) > 0 &&
	       now_ns() < drain_ns) {
		int rc = collect(ch, LOOP_WAIT_MS_MAX);
		if (rc < 0)
			return rc;
		housekeeping(ch, now_ns());
	}
	return 0;
}

/* ---- Set-up and the end ---- */

static int open_client(struct chaos *ch)
{
	struct bpx_client_options copt = {
		.timeout_ms = ch->o->timeout_ms,
		.deadline_ms = ch->o->deadline_ms,
		.lanes = ch->o->sessions,
	};
	char err[512];
	ch->c = bpx_client_open(ch->o->config, &copt, err, sizeof(err));
	if (ch->c == NULL) {
		fprintf(stderr, "bypax-chaos-client: --config: %s\n", err);
		return EXIT_USAGE;
	}
	return 0;
}

static int setup(struct chaos *ch, const struct opts *o)
{
	ch->o = o;
	ch->prng = o->seed;
	uint64_t mix = o->seed ^ 0x5eedc4a05ull;
	ch->tag = 1 + splitmix64(&mix) % VALUE_TAG_MAX;
	ch->sessions = calloc(o->sessions, sizeof(*ch->sessions));
	ch->last_seen = calloc(o->keys, sizeof(*ch->last_seen));
	if (ch->sessions == NULL || ch->last_seen == NULL) {
		fprintf(stderr,
			"bypax-chaos-client: not enough memory for "
			"%" PRIu32 " sessions\n",
			o->sessions);
		return EXIT_USAGE;
	}
	if (o->rate > 0)
		ch->interval_ns = (uint64_t)(1e9 / o->rate);
	return open_client(ch);
}

static void start_sessions(struct chaos *ch)
{
	ch->start_ns = ch->last_ack_ns = ch->last_flush_ns = now_ns();
	ch->last_tick_ns = ch->start_ns;
	for (uint32_t i = 0; i < ch->o->sessions; i++) {
		struct session *s = &ch->sessions[i];
		s->index = i;
		/* Spread the sessions' starts over one interval. */
		s->next_ns =
			ch->start_ns +
			(ch->interval_ns > 0 ? rnd(ch, ch->interval_ns) : 0);
	}
}

static int open_history(struct chaos *ch, const char *mode)
{
	static char buf[1 << 20];
	ch->hist_path = ch->o->history;
	ch->hist = fopen(ch->hist_path, mode);
	if (ch->hist == NULL) {
		fprintf(stderr, "bypax-chaos-client: %s: cannot open: %s\n",
			ch->hist_path, strerror(errno));
		return EXIT_USAGE;
	}
	setvbuf(ch->hist, buf, _IOFBF, sizeof(buf));
	return 0;
}

static void write_header(struct chaos *ch)
{
	const struct opts *o = ch->o;
	hist_printf(ch, "%s\n", CH_MAGIC);
	hist_printf(ch,
		    "# bypax-chaos-client %s seed=%" PRIu64 " tag=%06" PRIx64
		    " sessions=%" PRIu32 " keys=%" PRIu32 " rate=%g seconds=%g"
		    " timeout_ms=%" PRIu32 " deadline_ms=%" PRIu32
		    " config=%s\n",
		    BPX_VERSION, o->seed, ch->tag, o->sessions, o->keys,
		    o->rate, o->seconds, o->timeout_ms, o->deadline_ms,
		    o->config);
	hist_printf(ch, "# libbypax nonces 0x%" PRIx64 " + session\n",
		    bpx_client_lane_nonce(ch->c, 0));
}

static void write_footer(struct chaos *ch)
{
	const struct bpx_client_stats *st = bpx_client_stats(ch->c);
	hist_printf(ch,
		    "# libbypax sent=%" PRIu64 " retries=%" PRIu64
		    " redirects=%" PRIu64 " timeouts=%" PRIu64 " busy=%" PRIu64
		    " deadlines=%" PRIu64 " opens=%" PRIu64 " rekeys=%" PRIu64
		    " ignored=%" PRIu64 " send_errors=%" PRIu64 "\n",
		    st->sent, st->retries, st->redirects, st->timeouts,
		    st->busy, st->deadlines, st->opens, st->rekeys, st->ignored,
		    st->send_errors);
	hist_printf(ch, "E %" PRIu64 "\n", ch->end_ns);
	hist_flush(ch, ch->end_ns);
	if (fclose(ch->hist) != 0)
		ch->io_error = true;
	ch->hist = NULL;
}

static void print_summary(const struct chaos *ch)
{
	uint64_t gap = ch->max_gap_ns;
	if (ch->end_ns - ch->last_ack_ns > gap) /* the end counts as one */
		gap = ch->end_ns - ch->last_ack_ns;
	printf("chaos-client: ops=%" PRIu64 " ok=%" PRIu64 " notfound=%" PRIu64
	       " mismatch=%" PRIu64 " unknown=%" PRIu64 " failed=%" PRIu64
	       " max_gap_ms=%.1f acks_per_s=",
	       ch->n.ops, ch->n.ok, ch->n.notfound, ch->n.mismatch,
	       ch->n.ops - ch->n.ok - ch->n.failed, ch->n.failed,
	       (double)gap / NS_PER_MS);
	uint64_t secs = (ch->end_ns - ch->start_ns) / NS_PER_S + 1;
	for (uint64_t i = 0; i < secs && i < ACK_SECONDS_MAX; i++)
		printf("%s%" PRIu32, i == 0 ? "" : ",", ch->acks_per_s[i]);
	printf("\n");
}

/* The end of either mode: the footer, and whether the file is whole. */
static int finish(struct chaos *ch)
{
	ch->end_ns = now_ns();
	write_footer(ch);
	if (ch->io_error) {
		fprintf(stderr, "bypax-chaos-client: %s: write failed: %s\n",
			ch->hist_path, strerror(errno));
		return EXIT_USAGE;
	}
	return 0;
}

static int run_load(struct chaos *ch)
{
	int rc = open_history(ch, "w");
	if (rc != 0)
		return rc;
	write_header(ch);
	start_sessions(ch);
	hist_printf(ch, "S %" PRIu64 "\n", ch->start_ns);
	hist_flush(ch, ch->start_ns);
	uint64_t stop_ns = ch->start_ns + (uint64_t)(ch->o->seconds * 1e9);
	rc = run_loop(ch, stop_ns);
	if (rc < 0)
		fprintf(stderr, "bypax-chaos-client: socket: %s\n",
			bpx_strerror(rc));
	int frc = finish(ch);
	print_summary(ch);
	if (frc != 0)
		return frc;
	if (rc < 0)
		return EXIT_USAGE;
	return ch->n.ok > 0 ? 0 : EXIT_NO_ACK;
}

/* ---- --read-back ---- */

struct scan {
	struct read_back *rb;
	bool own; /* the --history file: its ids matter */
};

static int add_key(struct read_back *rb, const char *key)
{
	if (rb->count == rb->cap) {
		size_t cap = rb->cap == 0 ? 1024 : rb->cap * 2;
		void *p = realloc(rb->keys, cap * sizeof(*rb->keys));
		if (p == NULL)
			return -1;
		rb->keys = p;
		rb->cap = cap;
	}
	snprintf(rb->keys[rb->count++], CH_KEY_BYTES_MAX + 1, "%s", key);
	return 0;
}

static int scan_line(void *ctx, const struct ch_line *l, size_t lineno,
		     char *err, size_t err_len)
{
	struct scan *sc = ctx;
	(void)lineno;
	if (l->type != CH_LINE_CALL && l->type != CH_LINE_OP)
		return 0;
	if (sc->own && l->op.id > sc->rb->max_id)
		sc->rb->max_id = l->op.id;
	if (add_key(sc->rb, l->op.key) != 0) {
		snprintf(err, err_len, "not enough memory for the keys");
		return -1;
	}
	return 0;
}

static int cmp_key(const void *a, const void *b)
{
	return strcmp(a, b);
}

/* Every key of every history once, sorted; the read queue holds each. */
static int collect_keys(const struct opts *o, struct read_back *rb)
{
	char err[512];
	struct scan sc = { rb, true };
	if (ch_read_file(o->history, scan_line, &sc, err, sizeof(err)) != 0)
		goto err_file;
	sc.own = false;
	for (int i = 0; i < o->input_count; i++)
		if (ch_read_file(o->inputs[i], scan_line, &sc, err,
				 sizeof(err)) != 0)
			goto err_file;
	if (rb->count > 0)
		qsort(rb->keys, rb->count, sizeof(*rb->keys), cmp_key);
	size_t n = 0;
	for (size_t i = 0; i < rb->count; i++)
		if (n == 0 || strcmp(rb->keys[n - 1], rb->keys[i]) != 0)
			memmove(rb->keys[n++], rb->keys[i], sizeof(*rb->keys));
	rb->count = n;
	rb->tries = calloc(n + 1, sizeof(*rb->tries));
	rb->queue = calloc(n * READ_BACK_TRIES + 1, sizeof(*rb->queue));
	if (rb->tries == NULL || rb->queue == NULL) {
		fprintf(stderr,
			"bypax-chaos-client: not enough memory for "
			"%zu keys\n",
			n);
		return EXIT_USAGE;
	}
	for (size_t i = 0; i < n; i++)
		rb->queue[rb->tail++] = (uint32_t)i;
	return 0;

err_file:
	fprintf(stderr, "bypax-chaos-client: %s\n", err);
	return EXIT_USAGE;
}

static int run_read_back(struct chaos *ch, struct read_back *rb)
{
	int rc = collect_keys(ch->o, rb);
	if (rc != 0)
		return rc;
	ch->rb = rb;
	ch->next_id = rb->max_id + 1;
	if ((rc = open_history(ch, "a")) != 0)
		return rc;
	start_sessions(ch);
	hist_printf(ch, "# read-back of %zu keys by bypax-chaos-client %s\n",
		    rb->count, BPX_VERSION);
	hist_printf(ch, "B %" PRIu64 "\n", ch->start_ns);
	hist_flush(ch, ch->start_ns);
	rc = run_loop(ch, UINT64_MAX);
	if (rc < 0)
		fprintf(stderr, "bypax-chaos-client: socket: %s\n",
			bpx_strerror(rc));
	/* Keys never tried (a signal, a socket error) are unread too. */
	rb->unread = rb->count - rb->read;
	int frc = finish(ch);
	printf("chaos-client: read-back keys=%zu read=%" PRIu64
	       " unread=%" PRIu64 " ops=%" PRIu64 " unknown=%" PRIu64 "\n",
	       rb->count, rb->read, rb->unread, ch->n.ops,
	       ch->n.ops - ch->n.ok - ch->n.failed);
	if (frc != 0 || rc < 0)
		return EXIT_USAGE;
	return rb->unread == 0 ? 0 : EXIT_NO_ACK;
}

static int random_seed(uint64_t *seed)
{
	if (getrandom(seed, sizeof(*seed), 0) == (ssize_t)sizeof(*seed))
		return 0;
	fprintf(stderr, "bypax-chaos-client: getrandom: %s\n", strerror(errno));
	return EXIT_USAGE;
}

int main(int argc, char **argv)
{
	static struct opts o;
	static struct chaos ch;
	static struct read_back rb;
	int rc = parse_args(argc, argv, &o);
	if (rc != 0)
		return rc < 0 ? 0 : rc;
	if (!o.seed_given && (rc = random_seed(&o.seed)) != 0)
		return rc;
	struct sigaction sa = { .sa_handler = on_signal };
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	if ((rc = setup(&ch, &o)) != 0)
		return rc;
	rc = o.read_back ? run_read_back(&ch, &rb) : run_load(&ch);
	bpx_client_close(ch.c);
	free(ch.sessions);
	free(ch.last_seen);
	free(rb.keys);
	free(rb.tries);
	free(rb.queue);
	return rc;
}
