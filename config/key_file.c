/* Reading the cluster key file (include/bypax/auth.h, docs/config.md):
 * libc only, so that the config reader and its users need no crypto
 * library. Read once at start-up, never on a worker. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bypax/auth.h"
#include "bypax/config.h"
#include "bypax/errors.h"

#define KEY_HOWTO "make one with: head -c 32 /dev/urandom > FILE; chmod 600 FILE"

/* Others must not read the key (they could forge any member's messages)
 * nor write it (they could choose it). The group may read it, so that a
 * service account in the key's group can. */
static int check_key_stat(const char *path, const struct stat *st, char *err,
			  size_t err_len)
{
	if (!S_ISREG(st->st_mode)) {
		snprintf(err, err_len, "%s: cluster key: not a regular file",
			 path);
		return -BPX_ECONFIG;
	}
	if ((st->st_mode & (S_IROTH | S_IWOTH)) != 0) {
		snprintf(err, err_len, "%s: cluster key: readable or writable "
			 "by others (mode %04o); chmod 600 it", path,
			 (unsigned)(st->st_mode & 07777));
		return -BPX_ECONFIG;
	}
	if (st->st_size != BPX_AUTH_KEY_BYTES) {
		snprintf(err, err_len, "%s: cluster key: %lld bytes, expected "
			 "exactly %u; " KEY_HOWTO, path,
			 (long long)st->st_size, BPX_AUTH_KEY_BYTES);
		return -BPX_ECONFIG;
	}
	return 0;
}

int bpx_auth_key_read(const char *path, struct bpx_auth_key *key, char *err,
		      size_t err_len)
{
	memset(key, 0, sizeof(*key));
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		snprintf(err, err_len, "%s: cluster key: cannot open: %s", path,
			 strerror(errno));
		return errno == ENOENT ? -BPX_ENOENT : -BPX_ECONFIG;
	}
	struct stat st;
	int rc = 0;
	if (fstat(fd, &st) != 0) {
		snprintf(err, err_len, "%s: cluster key: cannot stat: %s",
			 path, strerror(errno));
		rc = -BPX_ECONFIG;
	}
	rc = rc ? rc : check_key_stat(path, &st, err, err_len);
	if (rc == 0 && read(fd, key->bytes, BPX_AUTH_KEY_BYTES) !=
			       (ssize_t)BPX_AUTH_KEY_BYTES) {
		snprintf(err, err_len, "%s: cluster key: short read", path);
		rc = -BPX_ECONFIG;
	}
	close(fd);
	if (rc != 0) {
		memset(key, 0, sizeof(*key));
		return rc;
	}
	key->enabled = true;
	return 0;
}

int bpx_config_load_key(struct bpx_config *cfg, char *err, size_t err_len)
{
	memset(&cfg->key, 0, sizeof(cfg->key));
	if (cfg->key_file[0] == '\0')
		return 0;
	char why[384];
	int rc = bpx_auth_key_read(cfg->key_file, &cfg->key, why, sizeof(why));
	if (rc != 0)
		snprintf(err, err_len, "%s: [cluster] key_file: %s", cfg->path,
			 why);
	return rc;
}
