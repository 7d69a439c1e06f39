/* The built-in key-value state machine and its command format.
 *
 * Command (little-endian):
 *   u8  op          BPX_KV_GET, _PUT, _DEL, _CAS
 *   u8  key_len     1..BPX_KV_KEY_BYTES_MAX
 *   u16 value_len   PUT: the value; CAS: the expected value; else 0
 *   u16 new_len     CAS: the new value; else 0
 *   key, value, new value bytes
 * Reply:
 *   u8  status      BPX_KV_OK, _NOT_FOUND, _CAS_MISMATCH, _FULL, _BAD_COMMAND
 *   u16 value_len   GET/DEL/CAS: the value held before the command
 *   value bytes
 */
#ifndef BYPAX_KV_H
#define BYPAX_KV_H

#include <stddef.h>
#include <stdint.h>

#include "bypax/sm.h"

#ifdef __cplusplus
extern "C" {
#endif

#define BPX_KV_KEY_BYTES_MAX 64u
#define BPX_KV_VALUE_BYTES_MAX 1024u
#define BPX_KV_CMD_HEADER_BYTES 6u
#define BPX_KV_REPLY_HEADER_BYTES 3u
#define BPX_KV_CMD_BYTES_MAX                                                   \
	(BPX_KV_CMD_HEADER_BYTES + BPX_KV_KEY_BYTES_MAX + 2 * BPX_KV_VALUE_BYTES_MAX)

enum bpx_kv_op { BPX_KV_GET = 1, BPX_KV_PUT = 2, BPX_KV_DEL = 3, BPX_KV_CAS = 4 };

enum bpx_kv_status {
	BPX_KV_OK = 0,
	BPX_KV_NOT_FOUND = 1,
	BPX_KV_CAS_MISMATCH = 2,
	BPX_KV_FULL = 3,
	BPX_KV_BAD_COMMAND = 4,
};

/* The store's size, from create() args: "capacity=N", "bytes=B" or both,
 * comma-separated, each at most once, no spaces; NULL: the defaults.
 *  - capacity: the most keys, 1..BPX_KV_CAPACITY_MAX, default
 *    BPX_KV_CAPACITY_DEFAULT;
 *  - bytes: the arena for keys and values, BPX_KV_CHUNK_BYTES..
 *    BPX_KV_BYTES_MAX, decimal with an optional K, M or G suffix (x 1024^1,
 *    ^2, ^3), default capacity x BPX_KV_BYTES_PER_KEY_DEFAULT. An entry
 *    takes bpx_kv_entry_bytes(key, value) of it: 48 bytes up to 32 bytes of
 *    key and value together, 48 more for each further 44 or part.
 * All of it is reserved by create() (bpx_kv_sizing's memory_bytes;
 * docs/config.md, "Sizing the KV store"). A PUT of a new key when
 * `capacity` keys are held, or a PUT or CAS whose entry no longer fits in
 * `bytes`, is answered BPX_KV_FULL (a CAS so refused carries no value). */
#define BPX_KV_CAPACITY_DEFAULT 1000000u
#define BPX_KV_CAPACITY_MAX 16777216u
#define BPX_KV_CHUNK_BYTES 48u
#define BPX_KV_BYTES_PER_KEY_DEFAULT 144u /* 3 chunks: key + value <= 120 */
#define BPX_KV_BYTES_MAX 137438953472ull  /* 128 GiB */

struct bpx_kv_sizing {
	uint32_t capacity;     /* the most keys */
	uint64_t bytes;	       /* the arena, as given or by default */
	uint64_t chunks;       /* bytes / BPX_KV_CHUNK_BYTES */
	uint64_t memory_bytes; /* what create() reserves, in all */
	uint64_t snapshot_bytes_max; /* the largest snapshot() of a full store */
};

/* The sizes create(args) would give (args NULL or "" for the defaults).
 * Returns 0, or -BPX_EINVAL for args the store refuses. */
int bpx_kv_sizing(const char *args, struct bpx_kv_sizing *sizing);

/* The arena bytes one entry takes (a multiple of BPX_KV_CHUNK_BYTES). */
uint64_t bpx_kv_entry_bytes(size_t key_len, size_t value_len);

/* The built-in KV store's ops. */
const struct bpx_sm_ops *bpx_kv_ops(void);

/* The capacity create(args) would give (bpx_kv_sizing's). Returns 0, or
 * -BPX_EINVAL for args the store refuses. */
int bpx_kv_capacity(const char *args, uint32_t *capacity);

/* Starts loading what apply() of each of cmds[0..n) will touch, their
 * index slots first, then the entries those point to, so that a batch's
 * cache misses overlap instead of following one another; apply them after.
 * A hint: it changes no state and no reply, and passes over commands that
 * do not decode. n at most BPX_KV_PREFETCH_MAX. */
#define BPX_KV_PREFETCH_MAX 64u
void bpx_kv_prefetch(void *sm, const uint8_t *const *cmds,
		     const uint32_t *lens, uint32_t n);

/* Encodes a command into buf. Returns its length, or -BPX_EINVAL for a bad
 * op or length, -BPX_ETOOBIG if cap is short. value/new_value may be NULL
 * when their length is 0. */
int bpx_kv_encode(uint8_t *buf, size_t cap, enum bpx_kv_op op,
		  const void *key, size_t key_len, const void *value,
		  size_t value_len, const void *new_value, size_t new_len);

struct bpx_kv_cmd {
	uint8_t op;
	uint8_t key_len;
	uint16_t value_len;
	uint16_t new_len;
	const uint8_t *key;
	const uint8_t *value;
	const uint8_t *new_value;
};

/* Decodes and validates a command. Returns 0 or -BPX_EMALFORMED. */
int bpx_kv_decode(const uint8_t *buf, size_t len, struct bpx_kv_cmd *cmd);

/* Decodes a reply. Returns 0 or -BPX_EMALFORMED. */
int bpx_kv_decode_reply(const uint8_t *buf, size_t len, uint8_t *status,
			const uint8_t **value, uint16_t *value_len);

/* True for commands that do not change state (GET). */
int bpx_kv_is_read_only(const uint8_t *cmd, size_t len);

#ifdef __cplusplus
}
#endif
#endif
