/* Authentication of replica-to-replica and control messages with a
 * cluster key (docs/wire.md, "Authentication"; docs/config.md, key_file).
 *
 * With a key, every message between members (every data-plane type but a
 * client's REQUEST and a replica's REPLY, and every control heartbeat)
 * ends with a tag: keyed BLAKE2b (RFC 7693) with a 32-byte key and a
 * 16-byte output, over every byte of the UDP payload before the tag. A
 * message whose tag does not verify is dropped and counted (bad MAC).
 * Without a key nothing is added and nothing is checked: the wire is
 * what it was.
 *
 * The key is read once at start-up (bpx_config_load_key, key_file.c: libc
 * only, so that the config reader needs no crypto library); signing and
 * verifying (auth.c, libsodium) keep their state on the stack: no
 * allocation, usable from any thread. */
#ifndef BYPAX_AUTH_H
#define BYPAX_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "bypax/wire.h"

#ifdef __cplusplus
extern "C" {
#endif

#define BPX_AUTH_KEY_BYTES 32u
#define BPX_AUTH_TAG_BYTES 16u
/* The batch budget with a key: a PROMISE with a full batch and its tag
 * must still fit a 1500-byte IP MTU (20 + 8 + 80 + 1376 + 16 = 1500). */
#define BPX_AUTH_BATCH_BYTES_MAX (PX_VALUE_BYTES_MAX - BPX_AUTH_TAG_BYTES)

struct bpx_auth_key {
	bool enabled; /* false: no key_file, no tags */
	uint8_t bytes[BPX_AUTH_KEY_BYTES];
};

/* Reads a key file: exactly 32 bytes, a regular file that others (not
 * owner, not group) can neither read nor write. Returns 0 with key
 * enabled, or -BPX_ENOENT (cannot open) / -BPX_ECONFIG (wrong size, wrong
 * permissions, not a regular file) with err naming the file and the
 * problem. */
int bpx_auth_key_read(const char *path, struct bpx_auth_key *key, char *err,
		      size_t err_len);

/* Selects libsodium's fastest implementation for this CPU. Call once
 * before the first sign or verify (bypaxd does, at start-up); it is
 * idempotent and thread-safe. Returns 0 or -BPX_EIO. */
int bpx_auth_init(void);

/* The tag of msg (len bytes) under key: written to tag. */
void bpx_auth_sign(const struct bpx_auth_key *key, const uint8_t *msg,
		   size_t len, uint8_t tag[BPX_AUTH_TAG_BYTES]);
/* The tag of head followed by body (a message sent in two segments, as
 * the dataplane's shared value mbufs are), equal to bpx_auth_sign over
 * the concatenation. */
void bpx_auth_sign2(const struct bpx_auth_key *key, const uint8_t *head,
		    size_t head_len, const uint8_t *body, size_t body_len,
		    uint8_t tag[BPX_AUTH_TAG_BYTES]);
/* True when the last 16 of len bytes are the tag of the bytes before
 * them (compared in constant time); false when they are not, or len is
 * shorter than a tag. */
bool bpx_auth_verify(const struct bpx_auth_key *key, const uint8_t *msg,
		     size_t len);

/* The receive rule of the data plane, for a UDP payload, before
 * bpx_wire_decode(payload, *body_len): without a key, BPX_WIRE_OK and
 * *body_len = len. With one, a payload that claims to be a message of
 * this cluster (magic, version and cluster_id in place) and is not a
 * client's REQUEST or MULTI_REQUEST (clients hold no key) must end
 * with a valid tag:
 * BPX_WIRE_OK and *body_len = len - 16, or BPX_WIRE_BAD_MAC. Anything
 * else is left whole to the decoder, which drops it for what it is
 * (another cluster's, another version, not bypax at all) or takes the
 * REQUEST. */
enum bpx_wire_drop bpx_auth_check_payload(const struct bpx_auth_key *key,
					  uint32_t cluster_id,
					  const uint8_t *payload, size_t len,
					  size_t *body_len);
/* Whether a message of this type is signed when a key is set: every type
 * but REQUEST and MULTI_REQUEST (client to replica) and REPLY and
 * MULTI_REPLY (replica to client). */
bool bpx_auth_type_signed(uint8_t type);

#ifdef __cplusplus
}
#endif
#endif
