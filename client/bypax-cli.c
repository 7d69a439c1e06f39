/* bypax-cli: one key-value command against a bypax cluster, from a shell. */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bypax/client.h"

#define EXIT_OP_ERROR 1 /* timed out, busy, stale, store full, ... */
#define EXIT_USAGE 2	/* bad arguments or configuration */
#define EXIT_NO_MATCH 3 /* key not found, or CAS found another value */

static const char usage_text[] =
	"usage: bypax-cli [OPTIONS] COMMAND ARGS...\n"
	"\n"
	"Commands:\n"
	"  put KEY VALUE      set KEY to VALUE\n"
	"  get KEY            print KEY's value and a newline\n"
	"  del KEY            remove KEY\n"
	"  cas KEY OLD NEW    set KEY to NEW if it holds OLD\n"
	"\n"
	"Options (before the command):\n"
	"  -c, --config FILE     cluster configuration (default: $BYPAX_CONFIG,\n"
	"                        else ./bypax.conf)\n"
	"  -t, --timeout-ms N    give up after N ms in all (default 5000); each\n"
	"                        attempt waits up to 200 ms before the next member\n"
	"  -h, --help            show this help\n"
	"      --version         print the version and exit\n"
	"\n"
	"Keys are 1..64 bytes, values 0..1024 bytes. A retried command is\n"
	"applied at most once.\n"
	"\n"
	"Exit status:\n"
	"  0  success\n"
	"  1  the operation failed (timed out, busy, store full, ...): outcome\n"
	"     of a timed-out write is unknown\n"
	"  2  usage or configuration error\n"
	"  3  get/del/cas: key not found (\"(not found)\" on stderr); cas: the key\n"
	"     holds another value (printed on stderr)\n";

static int usage_error(const char *fmt, const char *arg)
	__attribute__((format(printf, 1, 0)));

static int usage_error(const char *fmt, const char *arg)
{
	fprintf(stderr, "bypax-cli: ");
	fprintf(stderr, fmt, arg);
	fprintf(stderr, "\nTry 'bypax-cli --help'.\n");
	return EXIT_USAGE;
}

struct command {
	const char *name;
	enum bpx_kv_op op;
	int argc; /* arguments after the name */
};

static const struct command commands[] = {
	{ "put", BPX_KV_PUT, 2 },
	{ "get", BPX_KV_GET, 1 },
	{ "del", BPX_KV_DEL, 1 },
	{ "cas", BPX_KV_CAS, 3 },
};

static const struct command *find_command(const char *name)
{
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (strcmp(commands[i].name, name) == 0)
			return &commands[i];
	return NULL;
}

static int check_lengths(const struct command *cmd, char **args)
{
	static const char *const names[4][3] = {
		[BPX_KV_PUT - 1] = { "KEY", "VALUE", NULL },
		[BPX_KV_GET - 1] = { "KEY", NULL, NULL },
		[BPX_KV_DEL - 1] = { "KEY", NULL, NULL },
		[BPX_KV_CAS - 1] = { "KEY", "OLD", "NEW" },
	};
	size_t key_len = strlen(args[0]);
	if (key_len < 1 || key_len > BPX_KV_KEY_BYTES_MAX) {
		fprintf(stderr,
			"bypax-cli: KEY '%.80s' is %zu bytes; keys are 1..%u "
			"bytes\n",
			args[0], key_len, BPX_KV_KEY_BYTES_MAX);
		return EXIT_USAGE;
	}
	for (int i = 1; i < cmd->argc; i++) {
		size_t n = strlen(args[i]);
		if (n > BPX_KV_VALUE_BYTES_MAX) {
			fprintf(stderr,
				"bypax-cli: %s is %zu bytes; values are at "
				"most %u bytes\n",
				names[cmd->op - 1][i], n,
				BPX_KV_VALUE_BYTES_MAX);
			return EXIT_USAGE;
		}
	}
	return 0;
}

static int parse_timeout(const char *s, uint32_t *ms)
{
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (*s == '\0' || *s == '-' || *end != '\0' || errno != 0 || v < 1 ||
	    v > 86400000ull)
		return -1;
	*ms = (uint32_t)v;
	return 0;
}

static int exit_for(int rc)
{
	if (rc == 0)
		return 0;
	if (rc == -BPX_ENOTFOUND || rc == -BPX_ECASMISMATCH)
		return EXIT_NO_MATCH;
	return EXIT_OP_ERROR;
}

static int run_get(struct bpx_client *c, const char *key)
{
	uint8_t value[BPX_KV_VALUE_BYTES_MAX];
	size_t len = 0;
	int rc = bpx_get(c, key, strlen(key), value, sizeof(value), &len);
	if (rc == 0) {
		fwrite(value, 1, len, stdout);
		fputc('\n', stdout);
	}
	return rc;
}

/* CAS through the pipelined API: it returns the value found on mismatch. */
static int run_cas(struct bpx_client *c, char **args)
{
	uint64_t ticket;
	int rc = bpx_submit(c, BPX_KV_CAS, args[0], strlen(args[0]), args[1],
			    strlen(args[1]), args[2], strlen(args[2]), &ticket);
	if (rc != 0)
		return rc;
	static struct bpx_completion done;
	while ((rc = bpx_poll(c, -1, &done, 1)) == 0)
		;
	if (rc < 0)
		return rc;
	if (done.status == -BPX_ECASMISMATCH)
		fprintf(stderr, "bypax-cli: cas: '%s' holds '%.*s', not '%s'\n",
			args[0], (int)done.value_len, (const char *)done.value,
			args[1]);
	return done.status;
}

static int run(struct bpx_client *c, const struct command *cmd, char **args)
{
	const char *key = args[0];
	switch (cmd->op) {
	case BPX_KV_PUT:
		return bpx_put(c, key, strlen(key), args[1], strlen(args[1]));
	case BPX_KV_GET:
		return run_get(c, key);
	case BPX_KV_DEL:
		return bpx_del(c, key, strlen(key));
	default:
		return run_cas(c, args);
	}
}

static const char *default_config(void)
{
	const char *env = getenv("BYPAX_CONFIG");
	return env != NULL && env[0] != '\0' ? env : "bypax.conf";
}

int main(int argc, char **argv)
{
	static const struct option long_opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "timeout-ms", required_argument, NULL, 't' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	const char *config = NULL;
	struct bpx_client_options opt = { 0 };
	int ch;
	opterr = 0;
	/* '+': options end at the command, so values may start with '-'. */
	while ((ch = getopt_long(argc, argv, "+:c:t:h", long_opts, NULL)) !=
	       -1) {
		switch (ch) {
		case 'c':
			config = optarg;
			break;
		case 't':
			if (parse_timeout(optarg, &opt.deadline_ms) != 0)
				return usage_error(
					"--timeout-ms '%s': expected "
					"a whole number of ms, "
					"1..86400000",
					optarg);
			break;
		case 'h':
			fputs(usage_text, stdout);
			return 0;
		case 'V':
			printf("bypax-cli %s\n", BPX_VERSION);
			return 0;
		case ':':
			return usage_error("option '%s' needs an argument",
					   argv[optind - 1]);
		default:
			return usage_error("unknown option '%s'",
					   argv[optind - 1]);
		}
	}
	if (optind >= argc)
		return usage_error("%s",
				   "missing command (put, get, del, cas)");
	const struct command *cmd = find_command(argv[optind]);
	if (cmd == NULL)
		return usage_error("unknown command '%s' (put, get, del, cas)",
				   argv[optind]);
	char **args = argv + optind + 1;
	int nargs = argc - optind - 1;
	if (nargs != cmd->argc) {
		fprintf(stderr, "bypax-cli: %s takes %d argument%s, got %d\n%s",
			cmd->name, cmd->argc, cmd->argc == 1 ? "" : "s", nargs,
			"Try 'bypax-cli --help'.\n");
		return EXIT_USAGE;
	}
	int rc = check_lengths(cmd, args);
	if (rc != 0)
		return rc;
	if (config == NULL)
		config = default_config();
	if (opt.deadline_ms != 0 &&
	    opt.deadline_ms < BPX_CLIENT_TIMEOUT_MS_DEFAULT)
		opt.timeout_ms = opt.deadline_ms;
	char err[512];
	struct bpx_client *c = bpx_client_open(config, &opt, err, sizeof(err));
	if (c == NULL) {
		fprintf(stderr, "bypax-cli: %s\n", err);
		return EXIT_USAGE;
	}
	rc = run(c, cmd, args);
	bpx_client_close(c);
	if (rc == -BPX_ENOTFOUND) {
		fprintf(stderr, "(not found)\n");
	} else if (rc == -BPX_EFULL) {
		char why[512];
		bpx_client_full_reason(config, why, sizeof(why));
		fprintf(stderr, "bypax-cli: %s '%s': %s\n", cmd->name, args[0],
			why);
	} else if (rc != 0 && rc != -BPX_ECASMISMATCH)
		fprintf(stderr, "bypax-cli: %s '%s': %s\n", cmd->name, args[0],
			bpx_strerror(rc));
	return exit_for(rc);
}
