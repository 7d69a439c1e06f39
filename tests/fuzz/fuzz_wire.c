/* Fuzz target for the wire codec (wire/wire.c): whatever bytes come
 * in, no entry point may read out of bounds or misbehave, and what decode
 * accepts must encode back to the very same bytes.
 *
 * Properties checked (abort() on a failure, so libFuzzer and the smoke
 * driver both report it as a crash):
 *  - bpx_frame_parse: an accepted frame's payload lies inside the input,
 *    right after the UDP header, and its IPv4 header checksums to 0;
 *    rewriting its headers with bpx_frame_write_headers parses back to the
 *    same endpoints and payload.
 *  - bpx_wire_decode (on the UDP payload, and on the raw input): an
 *    accepted message re-encodes byte for byte, with bpx_wire_msg_size
 *    equal to the input length.
 *  - bpx_wire_multi_decode (the same inputs): an accepted packed message
 *    has 1..BPX_WIRE_MULTI_MAX entries whose values lie inside it, and
 *    packing its entries again gives the very same bytes.
 *  - bpx_arp_answer: returns 0, -BPX_EMALFORMED or a 42-byte reply whose
 *    fields say "self is at self's MAC" to the asker.
 *  - bpx_auth_check_payload (with a key, dataplane/auth.c): on any input,
 *    OK or bad MAC, and what it takes with a tag is exactly what the key
 *    signed; an accepted message of a signed type, signed, passes with
 *    its tag taken off, and with any byte after the cluster id flipped
 *    is a bad MAC.
 */
#include <stdlib.h>
#include <string.h>

#include "bypax/auth.h"
#include "bypax/wire.h"
#include "fuzz.h"

#define CHECK(x)                                                               \
	do {                                                                   \
		if (!(x))                                                      \
			abort();                                               \
	} while (0)

static const struct bpx_endpoint self = {
	.mac = { 0x02, 0x00, 0x00, 0x00, 0x00, 0x01 },
	.ip = 0x0a000001, /* 10.0.0.1, as in the smoke corpus */
	.port = 9000,
};

static uint32_t be32(const uint8_t *p)
{
	return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) |
	       ((uint32_t)p[2] << 8) | p[3];
}

static const struct bpx_auth_key fuzz_key = {
	.enabled = true,
	.bytes = { 0x6b, 0x65, 0x79, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13,
		   14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28 },
};

static void check_auth(const uint8_t *buf, size_t len, uint32_t cluster_id)
{
	size_t body = 0;
	enum bpx_wire_drop d =
		bpx_auth_check_payload(&fuzz_key, cluster_id, buf, len, &body);
	CHECK(d == BPX_WIRE_OK || d == BPX_WIRE_BAD_MAC);
	if (d != BPX_WIRE_OK || body == len)
		return;
	uint8_t tag[BPX_AUTH_TAG_BYTES];
	CHECK(body + BPX_AUTH_TAG_BYTES == len);
	bpx_auth_sign(&fuzz_key, buf, body, tag);
	CHECK(memcmp(tag, buf + body, sizeof(tag)) == 0);
}

/* A decoded message, signed as a member would send it. */
static void check_signed(const uint8_t *buf, size_t len, uint32_t cluster_id,
			 uint8_t type)
{
	static uint8_t tagged[BPX_WIRE_PAYLOAD_MAX + BPX_AUTH_TAG_BYTES];
	if (!bpx_auth_type_signed(type))
		return;
	memcpy(tagged, buf, len);
	bpx_auth_sign(&fuzz_key, buf, len, tagged + len);
	size_t full = len + BPX_AUTH_TAG_BYTES, body = 0;
	CHECK(bpx_auth_check_payload(&fuzz_key, cluster_id, tagged, full,
				     &body) == BPX_WIRE_OK);
	CHECK(body == len);
	size_t at = 8 + len % (full - 8); /* past magic, version, cluster */
	tagged[at] ^= 0x20;
	CHECK(bpx_auth_check_payload(&fuzz_key, cluster_id, tagged, full,
				     &body) == BPX_WIRE_BAD_MAC);
}

static void check_multi(const uint8_t *buf, size_t len, uint32_t cluster_id)
{
	static uint8_t again[BPX_WIRE_MULTI_PAYLOAD_MAX];
	struct bpx_wire_unpacker u;
	enum bpx_wire_drop d = bpx_wire_multi_decode(buf, len, cluster_id, &u);
	CHECK(bpx_wire_drop_name(d) != NULL);
	if (d != BPX_WIRE_OK)
		return;
	CHECK(len <= BPX_WIRE_MULTI_PAYLOAD_MAX);
	CHECK(u.count >= 1 && u.count <= BPX_WIRE_MULTI_MAX);
	struct bpx_wire_packer w;
	CHECK(bpx_wire_multi_begin(&w, again, sizeof(again), cluster_id,
				   buf[3], u.from, u.to, u.leader_hint) == 0);
	struct px_msg m;
	unsigned entries = 0;
	while (bpx_wire_multi_next(&u, &m)) {
		CHECK(m.value_len <= PX_VALUE_BYTES_MAX);
		CHECK(m.value_len == 0 ||
		      (m.value >= buf && m.value + m.value_len <= buf + len));
		CHECK(bpx_wire_multi_add(&w, &m) == 0);
		entries++;
	}
	CHECK(entries == buf[16]);
	CHECK(bpx_wire_multi_finish(&w) == len);
	CHECK(memcmp(again, buf, len) == 0);
}

static void check_message(const uint8_t *buf, size_t len, uint32_t cluster_id)
{
	check_auth(buf, len, cluster_id);
	check_multi(buf, len, cluster_id);
	static uint8_t again[BPX_WIRE_PAYLOAD_MAX];
	struct px_msg m;
	enum bpx_wire_drop d = bpx_wire_decode(buf, len, cluster_id, &m);
	CHECK(bpx_wire_drop_name(d) != NULL);
	if (d != BPX_WIRE_OK)
		return;
	CHECK(len <= BPX_WIRE_PAYLOAD_MAX);
	CHECK(m.value_len <= PX_VALUE_BYTES_MAX);
	CHECK(m.value_len == 0 ||
	      (m.value >= buf && m.value + m.value_len == buf + len));
	CHECK(bpx_wire_msg_size(&m) == len);
	int n = bpx_wire_encode(again, sizeof(again), cluster_id, &m);
	CHECK(n >= 0 && (size_t)n == len);
	CHECK(memcmp(again, buf, len) == 0);
	check_signed(buf, len, cluster_id, m.type);
}

/* Decodes with a fixed cluster id, and with the one in the input so that
 * inputs get past the cluster check to the length and field checks. */
static void check_messages(const uint8_t *buf, size_t len)
{
	check_message(buf, len, 1);
	if (len >= 8 && be32(buf + 4) != 1)
		check_message(buf, len, be32(buf + 4));
}

/* Field by field: the struct has padding that parse does not write. */
static int same_endpoint(const struct bpx_endpoint *a,
			 const struct bpx_endpoint *b)
{
	return memcmp(a->mac, b->mac, 6) == 0 && a->ip == b->ip &&
	       a->port == b->port;
}

static void check_frame(const uint8_t *data, size_t size)
{
	static uint8_t again[BPX_FRAME_HEADER_BYTES + UINT16_MAX];
	struct bpx_frame f;
	if (bpx_frame_parse(data, size, &f) != BPX_WIRE_OK)
		return;
	size_t ihl = (size_t)(data[14] & 0x0f) * 4;
	CHECK(ihl >= 20);
	CHECK(f.payload == data + 14 + ihl + 8);
	CHECK((size_t)(f.payload - data) + f.payload_len <= size);
	CHECK(bpx_inet_checksum(data + 14, ihl, 0) == 0);
	CHECK(bpx_frame_ethertype(data, size) == BPX_ETHERTYPE_IPV4);

	/* Our own headers around the same payload parse back the same. */
	if (f.payload_len <= UINT16_MAX - 28) {
		size_t h = bpx_frame_write_headers(again, &f.src, &f.dst,
						   f.payload_len, 0x55aa);
		CHECK(h == BPX_FRAME_HEADER_BYTES);
		memcpy(again + h, f.payload, f.payload_len);
		struct bpx_frame g;
		CHECK(bpx_frame_parse(again, h + f.payload_len, &g) ==
		      BPX_WIRE_OK);
		CHECK(same_endpoint(&g.src, &f.src));
		CHECK(same_endpoint(&g.dst, &f.dst));
		CHECK(g.payload_len == f.payload_len);
		CHECK(memcmp(g.payload, f.payload, f.payload_len) == 0);
	}
	check_messages(f.payload, f.payload_len);
}

static void check_arp(const uint8_t *data, size_t size)
{
	uint8_t out[BPX_ARP_FRAME_BYTES];
	int n = bpx_arp_answer(data, size, &self, out, sizeof(out));
	CHECK(n == 0 || n == -BPX_EMALFORMED || n == (int)BPX_ARP_FRAME_BYTES);
	if (n != (int)BPX_ARP_FRAME_BYTES)
		return;
	CHECK(bpx_frame_ethertype(data, size) == BPX_ETHERTYPE_ARP);
	CHECK(bpx_frame_ethertype(out, sizeof(out)) == BPX_ETHERTYPE_ARP);
	CHECK(be32(data + 14 + 24) == self.ip);	   /* it asked for us */
	CHECK(memcmp(out, data + 14 + 8, 6) == 0); /* to the asker */
	CHECK(memcmp(out + 6, self.mac, 6) == 0);
	CHECK(memcmp(out + 14, data + 14, 6) == 0); /* hw/proto types, lens */
	CHECK(out[20] == 0 && out[21] == 2);	    /* a reply */
	CHECK(memcmp(out + 22, self.mac, 6) == 0);
	CHECK(be32(out + 28) == self.ip);
	CHECK(memcmp(out + 32, data + 22, 10) == 0); /* the asker's MAC, IP */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	check_frame(data, size);
	check_messages(data, size);
	check_arp(data, size);
	return 0;
}
