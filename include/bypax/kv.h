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

/* The most keys the store holds: create() args "capacity=N", N in
 * 1..BPX_KV_CAPACITY_MAX; no args: BPX_KV_CAPACITY_DEFAULT. Every key costs
 * its table slot whatever its value's length (docs/config.md, "Sizing the
 * KV store"): about 280 MiB for the default. A PUT of a new key into a full
 * store is answered BPX_KV_FULL. */
#define BPX_KV_CAPACITY_DEFAULT 200000u
#define BPX_KV_CAPACITY_MAX 16777216u

/* The built-in KV store's ops. */
const struct bpx_sm_ops *bpx_kv_ops(void);

/* The capacity create(args) would give (args NULL or "" for the default).
 * Returns 0, or -BPX_EINVAL for args the store refuses. */
int bpx_kv_capacity(const char *args, uint32_t *capacity);

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
