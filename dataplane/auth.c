/* Signing and verifying with the cluster key (include/bypax/auth.h):
 * keyed BLAKE2b-128 through libsodium's crypto_generichash. The state
 * lives on the stack, so the worker and the control thread sign at once
 * without sharing anything, and nothing is allocated per message. */
#include <sodium.h>

#include "bypax/auth.h"
#include "bypax/errors.h"

_Static_assert(BPX_AUTH_TAG_BYTES >= crypto_generichash_BYTES_MIN &&
		       BPX_AUTH_TAG_BYTES <= crypto_generichash_BYTES_MAX,
	       "the tag is a valid BLAKE2b output length");
_Static_assert(BPX_AUTH_KEY_BYTES >= crypto_generichash_KEYBYTES_MIN &&
		       BPX_AUTH_KEY_BYTES <= crypto_generichash_KEYBYTES_MAX,
	       "the key is a valid BLAKE2b key length");

int bpx_auth_init(void)
{
	return sodium_init() < 0 ? -BPX_EIO : 0;
}

void bpx_auth_sign2(const struct bpx_auth_key *key, const uint8_t *head,
		    size_t head_len, const uint8_t *body, size_t body_len,
		    uint8_t tag[BPX_AUTH_TAG_BYTES])
{
	crypto_generichash_state st;
	/* Cannot fail with lengths in range (the asserts above). */
	crypto_generichash_init(&st, key->bytes, BPX_AUTH_KEY_BYTES,
				BPX_AUTH_TAG_BYTES);
	crypto_generichash_update(&st, head, head_len);
	if (body_len > 0)
		crypto_generichash_update(&st, body, body_len);
	crypto_generichash_final(&st, tag, BPX_AUTH_TAG_BYTES);
}

void bpx_auth_sign(const struct bpx_auth_key *key, const uint8_t *msg,
		   size_t len, uint8_t tag[BPX_AUTH_TAG_BYTES])
{
	crypto_generichash(tag, BPX_AUTH_TAG_BYTES, msg, len, key->bytes,
			   BPX_AUTH_KEY_BYTES);
}

bool bpx_auth_verify(const struct bpx_auth_key *key, const uint8_t *msg,
		     size_t len)
{
	if (len < BPX_AUTH_TAG_BYTES)
		return false;
	uint8_t tag[BPX_AUTH_TAG_BYTES];
	size_t body = len - BPX_AUTH_TAG_BYTES;
	bpx_auth_sign(key, msg, body, tag);
	/* Constant time: a receiver that answers faster for a longer
	 * matching prefix would let a forger find a tag byte by byte. */
	return crypto_verify_16(tag, msg + body) == 0;
}

bool bpx_auth_type_signed(uint8_t type)
{
	return type != PX_MSG_REQUEST && type != PX_MSG_REPLY &&
	       type != BPX_WIRE_MULTI_REQUEST && type != BPX_WIRE_MULTI_REPLY;
}

/* Magic, version and cluster id of this cluster's messages (wire.h). */
static bool claims_cluster(const uint8_t *p, size_t len, uint32_t cluster_id)
{
	return len >= BPX_WIRE_HEADER_BYTES &&
	       p[0] == (uint8_t)(BPX_WIRE_MAGIC >> 8) &&
	       p[1] == (uint8_t)BPX_WIRE_MAGIC && p[2] == BPX_WIRE_VERSION &&
	       bpx_wire_cluster_of(p, len) == cluster_id;
}

enum bpx_wire_drop bpx_auth_check_payload(const struct bpx_auth_key *key,
					  uint32_t cluster_id,
					  const uint8_t *payload, size_t len,
					  size_t *body_len)
{
	*body_len = len;
	if (!key->enabled)
		return BPX_WIRE_OK;
	/* Byte 3 is the type (docs/wire.md). What does not claim to be
	 * ours cannot decode: the decoder names its reason. */
	if (!claims_cluster(payload, len, cluster_id) ||
	    payload[3] == PX_MSG_REQUEST ||
	    payload[3] == BPX_WIRE_MULTI_REQUEST)
		return BPX_WIRE_OK;
	if (!bpx_auth_verify(key, payload, len))
		return BPX_WIRE_BAD_MAC;
	*body_len = len - BPX_AUTH_TAG_BYTES;
	return BPX_WIRE_OK;
}
