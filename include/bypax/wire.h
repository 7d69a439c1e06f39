/* The bypax wire format, version 2 (docs/wire.md).
 *
 * Ethernet / IPv4 / UDP / bypax header / fields / value. The codec here is
 * pure C on byte buffers, shared by the DPDK dataplane and the kernel-socket
 * client, and fuzzed. Every field is validated; anything wrong is a drop
 * with a reason, never an assertion. */
#ifndef BYPAX_WIRE_H
#define BYPAX_WIRE_H

#include <stddef.h>
#include <stdint.h>

#include "bypax/consensus.h"

#ifdef __cplusplus
extern "C" {
#endif

#define BPX_WIRE_MAGIC 0x4258u /* "BX" */
#define BPX_WIRE_VERSION 2u
#define BPX_WIRE_HEADER_BYTES 16u
/* u64 fields one message carries at most (a PROMISE: 8, with room) and
 * the kinds of field there are (wire.c); a type carries a fixed subset. */
#define BPX_WIRE_FIELDS_MAX 9u
#define BPX_WIRE_FIELD_KINDS 11u
#define BPX_WIRE_PAYLOAD_MAX                                                   \
	(BPX_WIRE_HEADER_BYTES + 8u * BPX_WIRE_FIELDS_MAX + PX_VALUE_BYTES_MAX)
#define BPX_FRAME_HEADER_BYTES 42u /* Ethernet 14 + IPv4 20 + UDP 8 */
#define BPX_FRAME_MAX (BPX_FRAME_HEADER_BYTES + BPX_WIRE_PAYLOAD_MAX)

/* A wire-only message between dataplanes (never given to px_step): one
 * chunk of a snapshot stream. slot = the snapshot's applied index,
 * slot_end = its total length, seq = this chunk's offset, value = bytes. */
#define BPX_WIRE_SNAPSHOT_CHUNK 13u
#define BPX_WIRE_TYPE_MAX 13u

/* Why a frame or message was dropped. 0 is "accepted". */
#define BPX_WIRE_DROP_LIST(X)                                                  \
	X(BPX_WIRE_OK, "ok")                                                   \
	X(BPX_WIRE_TRUNCATED, "truncated")                                     \
	X(BPX_WIRE_NOT_IPV4, "not IPv4 or ARP")                                \
	X(BPX_WIRE_BAD_IP_HEADER, "bad IPv4 header")                           \
	X(BPX_WIRE_BAD_IP_CHECKSUM, "bad IPv4 checksum")                       \
	X(BPX_WIRE_FRAGMENT, "IPv4 fragment")                                  \
	X(BPX_WIRE_NOT_UDP, "not UDP")                                         \
	X(BPX_WIRE_BAD_UDP_LENGTH, "bad UDP length")                           \
	X(BPX_WIRE_BAD_UDP_CHECKSUM, "bad UDP checksum")                       \
	X(BPX_WIRE_NOT_FOR_US, "not addressed to this replica")                \
	X(BPX_WIRE_BAD_MAGIC, "bad magic")                                     \
	X(BPX_WIRE_BAD_VERSION, "unsupported version")                         \
	X(BPX_WIRE_BAD_TYPE, "unknown message type")                           \
	X(BPX_WIRE_BAD_LENGTH, "length does not match the type")               \
	X(BPX_WIRE_WRONG_CLUSTER, "wrong cluster id")                          \
	X(BPX_WIRE_BAD_FIELD, "field out of range")                            \
	X(BPX_WIRE_NOT_MEMBER, "consensus message from a non-member")          \
	X(BPX_WIRE_BAD_ARP, "malformed ARP")                                   \
	X(BPX_WIRE_BAD_MAC, "bad MAC")

enum bpx_wire_drop {
#define BPX_WIRE_DROP_ENUM(name, text) name,
	BPX_WIRE_DROP_LIST(BPX_WIRE_DROP_ENUM)
#undef BPX_WIRE_DROP_ENUM
	BPX_WIRE_DROP_COUNT
};
const char *bpx_wire_drop_name(enum bpx_wire_drop reason);

/* ---- bypax messages (the UDP payload) ---- */

/* Bytes the encoding of m takes. */
size_t bpx_wire_msg_size(const struct px_msg *m);
/* Encodes m. Returns its length, -BPX_EINVAL for a message that has no wire
 * form (bad type, value on a type without one), -BPX_ETOOBIG if cap is
 * short. */
int bpx_wire_encode(uint8_t *buf, size_t cap, uint32_t cluster_id,
		    const struct px_msg *m);
/* Encodes m's header and fields only (its value is sent from elsewhere,
 * e.g. a shared mbuf segment right after). Returns the bytes written
 * (bpx_wire_msg_size(m) - m->value_len) or an error as bpx_wire_encode. */
int bpx_wire_encode_header(uint8_t *buf, size_t cap, uint32_t cluster_id,
			   const struct px_msg *m);
/* Decodes and validates. On BPX_WIRE_OK, m->value points into buf. */
enum bpx_wire_drop bpx_wire_decode(const uint8_t *buf, size_t len,
				   uint32_t cluster_id, struct px_msg *m);
/* The cluster id a message of at least BPX_WIRE_HEADER_BYTES claims, for
 * the log of BPX_WIRE_WRONG_CLUSTER drops; 0 (never a cluster's) for a
 * shorter one. */
uint32_t bpx_wire_cluster_of(const uint8_t *buf, size_t len);

/* ---- Ethernet / IPv4 / UDP ---- */

struct bpx_endpoint {
	uint8_t mac[6];
	uint32_t ip;   /* host byte order */
	uint16_t port; /* host byte order */
};

struct bpx_frame {
	struct bpx_endpoint src;
	struct bpx_endpoint dst;
	const uint8_t *payload;
	uint16_t payload_len;
};

/* Writes Ethernet, IPv4 (checksummed) and UDP (checksum 0, allowed over
 * IPv4) headers for a payload of payload_len bytes that the caller places at
 * buf + BPX_FRAME_HEADER_BYTES. Returns BPX_FRAME_HEADER_BYTES. */
size_t bpx_frame_write_headers(uint8_t *buf, const struct bpx_endpoint *src,
			       const struct bpx_endpoint *dst,
			       uint16_t payload_len, uint16_t ip_id);
/* Parses an Ethernet frame carrying IPv4/UDP. Checks the IPv4 header and
 * its checksum, refuses fragments, checks the UDP length and, when nonzero,
 * the UDP checksum. Trailing Ethernet padding is allowed. */
enum bpx_wire_drop bpx_frame_parse(const uint8_t *buf, size_t len,
				   struct bpx_frame *f);

#define BPX_ETHERTYPE_IPV4 0x0800u
#define BPX_ETHERTYPE_ARP 0x0806u
#define BPX_ARP_FRAME_BYTES 42u
/* The frame's ethertype, or 0 if it is too short to have one. */
uint16_t bpx_frame_ethertype(const uint8_t *buf, size_t len);
/* If buf is an ARP request for self->ip, writes the reply into out and
 * returns its length; returns 0 for ARP not asking for us, or
 * -BPX_EMALFORMED. */
int bpx_arp_answer(const uint8_t *buf, size_t len,
		   const struct bpx_endpoint *self, uint8_t *out, size_t cap);

/* An ARP request from self asking for target->ip, sent straight to
 * target->mac (a unicast poll, RFC 1122 2.3.2.1) rather than broadcast:
 * bypaxd probes each peer's data link with it, and the peer answers it as
 * any ARP request (bpx_arp_answer), so a working link carries frames both
 * ways even when consensus has nothing to say on it. Writes
 * BPX_ARP_FRAME_BYTES into out and returns that, or -BPX_EINVAL when cap
 * is smaller. */
int bpx_arp_request(const struct bpx_endpoint *self,
		    const struct bpx_endpoint *target, uint8_t *out,
		    size_t cap);

/* The Internet checksum (RFC 1071) folded to 16 bits, over len bytes, with
 * an initial partial sum. */
uint16_t bpx_inet_checksum(const void *data, size_t len, uint32_t initial);

#ifdef __cplusplus
}
#endif
#endif
