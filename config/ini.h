/* A small INI reader: what bpx_config_load (config.c) reads the cluster
 * file with, so that the config reader, libbypax and the tools need no
 * DPDK (rte_cfgfile was the only DPDK they used). The syntax is
 * docs/config.md's:
 *
 *   ; a comment            # also a comment, at the start of a line only
 *   [section]
 *   key = value            ; a ';' comment may follow a value
 *
 * Names and values are trimmed of spaces and tabs. The reader refuses,
 * naming the file and the line: a line longer than BPX_INI_LINE_BYTES_MAX
 * - 2 bytes, a '[' without ']', an empty or over-long section name or key,
 * an over-long value, a key before the first section, a line that is
 * neither a section nor key = value, a section or a key within a section
 * given twice, and more than BPX_INI_SECTIONS_MAX sections or
 * BPX_INI_ENTRIES_MAX keys. An empty value (`key =`) loads as "".
 *
 * Memory: one allocation in bpx_ini_load, released by bpx_ini_free.
 */
#ifndef BYPAX_CONFIG_INI_H
#define BYPAX_CONFIG_INI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define BPX_INI_NAME_BYTES_MAX 64   /* 63 characters and the NUL */
#define BPX_INI_VALUE_BYTES_MAX 256 /* 255 characters and the NUL */
#define BPX_INI_LINE_BYTES_MAX 1024 /* 1022 characters, '\n', NUL */
#define BPX_INI_SECTIONS_MAX 64
#define BPX_INI_ENTRIES_MAX 512

struct bpx_ini;

/* Reads path. Returns 0 and *out (free it with bpx_ini_free), or
 * -BPX_ENOENT ("PATH: cannot open: why") or -BPX_ECONFIG ("PATH:LINE:
 * why") with the message in err; *out is then NULL. */
int bpx_ini_load(const char *path, struct bpx_ini **out, char *err,
		 size_t err_len);

/* NULL is allowed. */
void bpx_ini_free(struct bpx_ini *ini);

/* True when [section] appears in the file. */
bool bpx_ini_has_section(const struct bpx_ini *ini, const char *section);

/* The value of key in [section], or NULL when either is absent. */
const char *bpx_ini_get(const struct bpx_ini *ini, const char *section,
			const char *key);

/* The line (from 1) of key in [section], or of [section] when key is
 * NULL; 0 when absent. */
uint32_t bpx_ini_line(const struct bpx_ini *ini, const char *section,
		      const char *key);

#endif
