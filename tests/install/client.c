/* A client built the way a user of an installed libbypax builds one:
 *   cc client.c $(pkg-config --cflags --libs bypax)
 * tests/install/check_install.sh compiles it against the files
 * meson install put in a DESTDIR, then runs it against nothing (no
 * replica runs): it reads the installed example config and prints its
 * members, and one GET to a port nobody serves times out cleanly.
 *
 * usage: client CONFIG */
#include <stdio.h>
#include <string.h>

#include <bypax/client.h>
#include <bypax/config.h>

static int print_members(const char *path)
{
	struct bpx_config cfg;
	char err[512];
	int rc = bpx_config_load(path, &cfg, err, sizeof(err));
	if (rc != 0) {
		fprintf(stderr, "client: %s\n", err);
		return 1;
	}
	printf("cluster %u: %u members\n", cfg.cluster_id, cfg.member_count);
	for (unsigned i = 0; i < cfg.member_count; i++) {
		uint32_t ip = cfg.members[i].data.ip;
		printf("member%u %u.%u.%u.%u:%u\n", i, ip >> 24,
		       (ip >> 16) & 255, (ip >> 8) & 255, ip & 255,
		       cfg.members[i].data.port);
	}
	return 0;
}

/* 127.0.0.1:9 (discard): nobody answers, so the request's deadline. */
static int get_from_nobody(void)
{
	struct bpx_endpoint nobody = { .ip = 0x7f000001, .port = 9 };
	struct bpx_client_options opt = { .timeout_ms = 20,
					  .deadline_ms = 100 };
	char err[256];
	struct bpx_client *c =
		bpx_client_open_members(7, &nobody, 1, &opt, err, sizeof(err));
	if (c == NULL) {
		fprintf(stderr, "client: open: %s\n", err);
		return 1;
	}
	char value[64];
	int rc = bpx_get(c, "k", 1, value, sizeof(value), NULL);
	bpx_client_close(c);
	printf("get from nobody: %s\n", bpx_strerror(rc));
	return rc == -BPX_ETIMEDOUT || rc == -BPX_EIO ? 0 : 1;
}

int main(int argc, char **argv)
{
	if (argc != 2) {
		fprintf(stderr, "usage: client CONFIG\n");
		return 2;
	}
	return print_members(argv[1]) || get_from_nobody();
}
