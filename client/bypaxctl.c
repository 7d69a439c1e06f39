/* bypaxctl: operate a running bypax cluster through bypaxd's admin socket
 * (a UNIX socket, mode 0600, one per replica on its host).
 *
 *   bypaxctl [--config FILE] [--id N | --socket PATH] [--json] COMMAND
 */
#include <errno.h>
#include <stdbool.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "bypax/config.h"

static void usage(FILE *f)
{
	fprintf(f,
		"usage: bypaxctl [--config FILE] [--id N | --socket PATH] [--json] COMMAND\n"
		"Commands:\n"
		"  status                 every member: role, ballot, commit and apply\n"
		"                         index, lag, liveness; the last failover\n"
		"  members                the configured members and their addresses\n"
		"  members add ID ...     let configured replicas vote (through the log)\n"
		"  members remove ID      stop a replica voting (through the log)\n"
		"  leader transfer ID     hand leadership to member ID ('none' cancels)\n"
		"  snapshot PATH          write the replica's state machine snapshot\n"
		"  fault isolate MS       cut the replica off from its peers (testing)\n"
		"Options:\n"
		"  --config FILE   cluster configuration (default $BYPAX_CONFIG or\n"
		"                  ./bypax.conf); names the admin sockets\n"
		"  --id N          talk to member N's bypaxd (default: the first that\n"
		"                  answers on this host)\n"
		"  --socket PATH   talk to this admin socket\n"
		"  --json          machine-readable status\n"
		"Exit status: 0 ok, 1 the command failed, 2 usage or connection error.\n");
}

/* Sends one command line and prints the reply. Returns 0, 1 (the replica
 * said error) or -1 (cannot connect). */
static int ask(const char *path, const char *line, char *reply, size_t cap)
{
	struct sockaddr_un a;
	memset(&a, 0, sizeof(a));
	a.sun_family = AF_UNIX;
	snprintf(a.sun_path, sizeof(a.sun_path), "%s", path);
	int fd = socket(AF_UNIX, SOCK_STREAM, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof(a)) != 0) {
		if (fd >= 0)
			close(fd);
		return -1;
	}
	struct timeval tv = { .tv_sec = 10 };
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	size_t len = strlen(line);
	if (write(fd, line, len) != (ssize_t)len) {
		close(fd);
		return -1;
	}
	size_t got = 0;
	ssize_t n;
	while (got + 1 < cap && (n = read(fd, reply + got, cap - got - 1)) > 0)
		got += (size_t)n;
	reply[got] = '\0';
	close(fd);
	if (got == 0) { /* closed without an answer: not a success */
		errno = ECONNRESET;
		return -1;
	}
	return strncmp(reply, "error:", 6) == 0 ? 1 : 0;
}

struct opts {
	const char *config;
	const char *socket;
	int id;
	int json;
};

static int parse(int argc, char **argv, struct opts *o)
{
	static const struct option longopts[] = {
		{ "config", 1, 0, 'c' }, { "id", 1, 0, 'i' },
		{ "socket", 1, 0, 's' }, { "json", 0, 0, 'j' },
		{ "help", 0, 0, 'h' }, { 0, 0, 0, 0 },
	};
	*o = (struct opts){ .id = -1 };
	o->config = getenv("BYPAX_CONFIG") ? getenv("BYPAX_CONFIG") : "bypax.conf";
	int c;
	while ((c = getopt_long(argc, argv, "+c:i:s:jh", longopts, NULL)) != -1) {
		char *end;
		switch (c) {
		case 'c': o->config = optarg; break;
		case 's': o->socket = optarg; break;
		case 'j': o->json = 1; break;
		case 'i':
			o->id = (int)strtol(optarg, &end, 10);
			if (*optarg == '\0' || *end != '\0' || o->id < 0 || o->id > 6) {
				fprintf(stderr, "bypaxctl: --id must be 0..6, got '%s'\n", optarg);
				return -1;
			}
			break;
		case 'h': usage(stdout); exit(0);
		default: usage(stderr); return -1;
		}
	}
	if (optind >= argc) {
		fprintf(stderr, "bypaxctl: no command (see --help)\n");
		return -1;
	}
	return 0;
}

static void join_command(int argc, char **argv, int json, char *line,
			 size_t cap)
{
	line[0] = '\0';
	for (int i = 0; i < argc; i++) {
		strncat(line, argv[i], cap - strlen(line) - 2);
		strncat(line, " ", cap - strlen(line) - 1);
	}
	if (json && strcmp(argv[0], "status") == 0)
		strncat(line, "json", cap - strlen(line) - 1);
	strncat(line, "\n", cap - strlen(line) - 1);
}

int main(int argc, char **argv)
{
	struct opts o;
	if (parse(argc, argv, &o) != 0)
		return 2;
	/* A replica that closes the connection early is an error to report,
	 * not a reason to die silently. */
	signal(SIGPIPE, SIG_IGN);
	char line[512], reply[16384];
	join_command(argc - optind, argv + optind, o.json, line, sizeof(line));
	if (o.socket != NULL) {
		int rc = ask(o.socket, line, reply, sizeof(reply));
		if (rc < 0) {
			fprintf(stderr, "bypaxctl: cannot reach %s: %s\n", o.socket,
				strerror(errno));
			return 2;
		}
		fputs(reply, rc ? stderr : stdout);
		return rc;
	}
	struct bpx_config cfg;
	char err[512];
	if (bpx_config_load(o.config, &cfg, err, sizeof(err)) != 0) {
		fprintf(stderr, "bypaxctl: %s\n", err);
		return 2;
	}
	/* A transfer or a membership change is the leader's to make: the
	 * command goes to each replica here until one accepts it. */
	bool transfer = strncmp(line, "leader transfer", 15) == 0 ||
			strncmp(line, "members add", 11) == 0 ||
			strncmp(line, "members remove", 14) == 0;
	int reached = 0, last = 1;
	for (int i = 0; i < cfg.member_count; i++) {
		if (o.id >= 0 && i != o.id)
			continue;
		char path[108];
		snprintf(path, sizeof(path), "/tmp/bypaxd-%u-%d.sock",
			 cfg.cluster_id, i);
		last = ask(path, line, reply, sizeof(reply));
		if (last < 0)
			continue;
		reached++;
		/* A transfer is the leader's to make: try until one accepts. */
		if (transfer && last == 1 && o.id < 0)
			continue;
		fputs(reply, last ? stderr : stdout);
		return last;
	}
	if (reached == 0) {
		fprintf(stderr, "bypaxctl: no bypaxd of cluster %u answers on this "
			"host (tried /tmp/bypaxd-%u-*.sock%s); is it running?\n",
			cfg.cluster_id, cfg.cluster_id,
			o.id >= 0 ? " for --id" : "");
		return 2;
	}
	fputs(reply, stderr);
	return 1;
}
