/* The bypax wire format, version 2 (docs/wire.md).
 *
 * Ethernet / IPv4 / UDP / bypax header / fields / value. The codec here is
 * pure C on byte buffers, shared by the DPDK dataplane and the kernel-socket
 * client, and fuzzed. Every field is validated; anything wrong is a drop
 * with a reason, never an assertion. */
#ifndef BYPAX_WIRE_H
#define BYPAX_WIRE_H

#include <stdbool.h>
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

/* Several client requests in one frame, and their replies in one frame
 * (docs/wire.md, "Packed requests and replies"): the per-frame costs of
 * a receiver and a sender (an mbuf, headers, a checksum, a parse) are
 * shared by every request in it. Not px_msg types: each entry decodes to
 * one PX_MSG_REQUEST or PX_MSG_REPLY. 14 is PX_MSG_PERSIST's (outbox
 * only) and stays unused on the wire, as 12 does.
 *
 * After the 16-byte header (flags and status 0; value length = the bytes
 * that follow): u8 count (1..BPX_WIRE_MULTI_MAX), u8 reserved (0), then
 * count entries of u64 client_id, u64 seq, u8 flags, u8 status, u16
 * value length, value. The payload is at most BPX_WIRE_MULTI_PAYLOAD_MAX
 * bytes: an IPv4 packet of 1500 at most. */
#define BPX_WIRE_MULTI_REQUEST 16u
#define BPX_WIRE_MULTI_REPLY 17u
#define BPX_WIRE_MULTI_MAX 64u
#define BPX_WIRE_MULTI_PAYLOAD_MAX 1472u
#define BPX_WIRE_MULTI_HEAD_BYTES (BPX_WIRE_HEADER_BYTES + 2u)
#define BPX_WIRE_MULTI_ENTRY_BYTES 20u

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

/* The type byte of a message of at least BPX_WIRE_HEADER_BYTES (0 for a
 * shorter one): a receiver picks bpx_wire_decode or
 * bpx_wire_multi_decode by it. bpx_wire_decode drops the multi types as
 * BPX_WIRE_BAD_TYPE. */
uint8_t bpx_wire_type_of(const uint8_t *buf, size_t len);

/* ---- Packed requests and replies ---- */

/* Builds one multi message in place: begin, add entries until add says
 * it is full, finish. Nothing is allocated; buf must outlive it. */
struct bpx_wire_packer {
	uint8_t *buf;
	size_t cap;   /* min(cap given, BPX_WIRE_MULTI_PAYLOAD_MAX) */
	size_t len;   /* bytes written so far */
	uint8_t type; /* BPX_WIRE_MULTI_REQUEST or BPX_WIRE_MULTI_REPLY */
	uint8_t count;
};
/* Writes the header of a multi message of type (BPX_WIRE_MULTI_REQUEST or
 * _REPLY) from, to, leader_hint. Returns 0, -BPX_EINVAL for another
 * type, -BPX_ETOOBIG when cap cannot hold the header and one empty
 * entry. */
int bpx_wire_multi_begin(struct bpx_wire_packer *w, uint8_t *buf, size_t cap,
			 uint32_t cluster_id, uint8_t type, uint8_t from,
			 uint8_t to, uint8_t leader_hint);
/* Whether an entry with a value of value_len bytes still fits. */
bool bpx_wire_multi_fits(const struct bpx_wire_packer *w, uint32_t value_len);
/* Appends m's client_id, seq, flags, status and value. Returns 0;
 * -BPX_ETOOBIG when it does not fit (BPX_WIRE_MULTI_MAX entries, or the
 * bytes: send this one and begin another); -BPX_EINVAL for what the
 * decoder would drop: a flag other than READ/OPEN, a status on a
 * request, a flag on a reply, a status above PX_REPLY_STATUS_MAX, a value
 * over PX_VALUE_BYTES_MAX. */
int bpx_wire_multi_add(struct bpx_wire_packer *w, const struct px_msg *m);
/* Writes the count and the length; returns the payload's bytes. At least
 * one entry must have been added (asserted by the caller's count). */
size_t bpx_wire_multi_finish(struct bpx_wire_packer *w);

/* Reads a multi message that bpx_wire_multi_decode checked whole. */
struct bpx_wire_unpacker {
	const uint8_t *pos;
	uint8_t left;        /* entries not yet read */
	uint8_t count;
	uint8_t type;        /* BPX_WIRE_MULTI_REQUEST or _REPLY */
	uint8_t from, to, leader_hint;
};
/* Checks the header as bpx_wire_decode does (magic, version, type,
 * cluster id, reserved, flags and status 0), then every entry, before
 * any is read: a frame with one bad entry is dropped whole, so none of
 * its requests is applied. Returns BPX_WIRE_BAD_TYPE for a single
 * message, BPX_WIRE_BAD_LENGTH when the lengths (value length, payload
 * length, an entry's value, the entries against the count) disagree or
 * exceed BPX_WIRE_MULTI_PAYLOAD_MAX, BPX_WIRE_BAD_FIELD for a count of 0
 * or over BPX_WIRE_MULTI_MAX, a nonzero reserved byte, or an entry's
 * flags or status a single REQUEST or REPLY could not carry. */
enum bpx_wire_drop bpx_wire_multi_decode(const uint8_t *buf, size_t len,
					 uint32_t cluster_id,
					 struct bpx_wire_unpacker *u);
/* The next entry as a PX_MSG_REQUEST (or PX_MSG_REPLY) with the header's
 * from, to and leader hint; its value points into the buffer. Returns
 * false after the last. */
bool bpx_wire_multi_next(struct bpx_wire_unpacker *u, struct px_msg *m);

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
/* The headers of every frame from src to dst, written once: a frame copies
 * them and fills in its lengths, IP id and (unless the NIC computes it)
 * the IPv4 checksum, from ip_sum and those two fields alone. */
struct bpx_frame_template {
	uint8_t headers[BPX_FRAME_HEADER_BYTES];
	uint32_t ip_sum; /* ones' complement sum of the IPv4 header with its
			    length, id and checksum 0, folded to 16 bits */
};
void bpx_frame_template_init(struct bpx_frame_template *t,
			     const struct bpx_endpoint *src,
			     const struct bpx_endpoint *dst);
/* The same bytes as bpx_frame_write_headers(buf, src, dst, payload_len,
 * ip_id) for t's src and dst. With ip_checksum false the IPv4 checksum
 * field is left 0, for a port that computes it
 * (RTE_ETH_TX_OFFLOAD_IPV4_CKSUM). Returns BPX_FRAME_HEADER_BYTES. */
size_t bpx_frame_write_template(uint8_t *buf,
				const struct bpx_frame_template *t,
				uint16_t payload_len, uint16_t ip_id,
				bool ip_checksum);
/* Parses an Ethernet frame carrying IPv4/UDP. Checks the IPv4 header and
 * its checksum, refuses fragments, checks the UDP length and, when nonzero,
 * the UDP checksum. Trailing Ethernet padding is allowed. */
enum bpx_wire_drop bpx_frame_parse(const uint8_t *buf, size_t len,
				   struct bpx_frame *f);
/* bpx_frame_parse, but with ip_checksum_good (the NIC checked the IPv4
 * checksum: RTE_MBUF_F_RX_IP_CKSUM_GOOD) it does not check it again. Every
 * other check stays. */
enum bpx_wire_drop bpx_frame_parse_checked(const uint8_t *buf, size_t len,
					   bool ip_checksum_good,
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
