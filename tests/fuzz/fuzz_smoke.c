/* fuzz-wire-smoke: runs the wire fuzz target (fuzz_wire.c) on a fixed,
 * seeded corpus in every test run, with no libFuzzer needed.
 *
 * Seeds are valid inputs made by the encoder: every message type with
 * values of 0, 1, some and PX_VALUE_BYTES_MAX bytes, raw and inside
 * Ethernet/IPv4/UDP frames (UDP checksum 0 and computed, IPv4 options,
 * Ethernet padding), and ARP requests and replies. Each is mutated by a
 * fixed-seed PRNG: bit flips, random bytes, interesting values, truncation,
 * extension; half the time the IPv4 checksum is fixed up afterwards so the
 * mutation reaches the UDP and bypax checks behind it. A crash aborts the
 * program, so reaching the end means none. The run also fails if the
 * corpus stops reaching any drop reason of bpx_frame_parse or
 * bpx_wire_decode, so it cannot silently decay into testing nothing.
 *
 *   fuzz-wire-smoke                     run (about 200k inputs)
 *   fuzz-wire-smoke --write-corpus DIR  also write the seeds, for libFuzzer
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bypax/wire.h"
#include "fuzz.h"

#define SEED 0x5eedb1a5f00du
#define INPUTS_TARGET 200000u
#define SEEDS_MAX 512u
#define INPUT_MAX (BPX_FRAME_MAX + 64u)
#define CLUSTER_ID 1u

struct input {
	uint8_t bytes[INPUT_MAX];
	size_t len;
};

static struct input seeds[SEEDS_MAX];
static size_t seed_count;
static uint64_t rng = SEED;

/* splitmix64 */
static uint64_t next(void)
{
	uint64_t z = (rng += 0x9e3779b97f4a7c15u);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
	return z ^ (z >> 31);
}

static size_t below(size_t n)
{
	return n == 0 ? 0 : (size_t)(next() % n);
}

static void put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static struct input *add_seed(void)
{
	if (seed_count == SEEDS_MAX) {
		fprintf(stderr, "fuzz-wire-smoke: SEEDS_MAX too small\n");
		exit(1);
	}
	struct input *in = &seeds[seed_count++];
	memset(in, 0, sizeof(*in));
	return in;
}

static const struct bpx_endpoint ep_self = {
	.mac = { 0x02, 0x00, 0x00, 0x00, 0x00, 0x01 },
	.ip = 0x0a000001,
	.port = 9000,
};
static const struct bpx_endpoint ep_peer = {
	.mac = { 0x02, 0x00, 0x00, 0x00, 0x00, 0x02 },
	.ip = 0x0a000002,
	.port = 9001,
};

static void fix_ip_checksum(uint8_t *frame, size_t len)
{
	if (len < 34)
		return;
	size_t ihl = (size_t)(frame[14] & 0x0f) * 4;
	if (ihl < 20 || 14 + ihl > len)
		return;
	put16(frame + 24, 0);
	put16(frame + 24, bpx_inet_checksum(frame + 14, ihl, 0));
}

static void set_udp_checksum(uint8_t *frame)
{
	const uint8_t *ip = frame + 14;
	uint8_t *udp = frame + 34;
	uint16_t udp_len = (uint16_t)((udp[4] << 8) | udp[5]);
	uint32_t pseudo = 17u + udp_len;
	for (int i = 12; i < 20; i += 2)
		pseudo += (uint32_t)((ip[i] << 8) | ip[i + 1]);
	put16(udp + 6, 0);
	uint16_t c = bpx_inet_checksum(udp, udp_len, pseudo);
	put16(udp + 6, c == 0 ? 0xffff : c);
}

static void add_payload_seeds(const uint8_t *msg, int n);

/* The message, raw and in the frame variants. */
static void add_message_seeds(const struct px_msg *m)
{
	uint8_t msg[BPX_WIRE_PAYLOAD_MAX];
	int n = bpx_wire_encode(msg, sizeof(msg), CLUSTER_ID, m);
	if (n < 0) {
		fprintf(stderr, "fuzz-wire-smoke: encode type %u: %d\n",
			m->type, n);
		exit(1);
	}
	add_payload_seeds(msg, n);
}

/* Packed requests and replies of 1, 3 and as many entries as fit, with
 * values of every size in value_lens. */
static void add_multi_seeds(const uint8_t *value)
{
	static const uint8_t types[] = { BPX_WIRE_MULTI_REQUEST,
					 BPX_WIRE_MULTI_REPLY };
	static const unsigned counts[] = { 1, 3, BPX_WIRE_MULTI_MAX };
	for (size_t t = 0; t < sizeof(types); t++) {
		for (size_t c = 0; c < sizeof(counts) / sizeof(counts[0]); c++) {
			uint8_t msg[BPX_WIRE_MULTI_PAYLOAD_MAX];
			struct bpx_wire_packer w;
			bpx_wire_multi_begin(&w, msg, sizeof(msg), CLUSTER_ID,
					     types[t], PX_TO_CLIENT, 0, 0xff);
			for (unsigned i = 0; i < counts[c]; i++) {
				bool req = types[t] == BPX_WIRE_MULTI_REQUEST;
				struct px_msg m = {
					.client_id = next(), .seq = next(),
					/* 0, READ or OPEN */
					.flags = req ? (uint8_t)(below(3) << 1)
						     : 0,
					.status = req ? 0 : (uint8_t)below(
						PX_REPLY_STATUS_MAX + 1),
					.value = value,
					.value_len = (uint32_t)below(
						c == 2 ? 4 : 300),
				};
				if (bpx_wire_multi_add(&w, &m) != 0)
					break;
			}
			add_payload_seeds(msg, (int)bpx_wire_multi_finish(&w));
		}
	}
}

/* A payload, raw and in the frame variants. */
static void add_payload_seeds(const uint8_t *msg, int n)
{
	struct input *raw = add_seed();
	memcpy(raw->bytes, msg, (size_t)n);
	raw->len = (size_t)n;

	for (int variant = 0; variant < 3; variant++) {
		struct input *f = add_seed();
		size_t h = bpx_frame_write_headers(f->bytes, &ep_peer, &ep_self,
						   (uint16_t)n,
						   (uint16_t)seed_count);
		memcpy(f->bytes + h, msg, (size_t)n);
		f->len = h + (size_t)n;
		if (variant == 1) /* a UDP checksum, and Ethernet padding */
			set_udp_checksum(f->bytes);
		if (variant == 1 && f->len < 60)
			f->len = 60;
		if (variant == 2) { /* IPv4 options: four NOPs */
			memmove(f->bytes + 38, f->bytes + 34, f->len - 34);
			memset(f->bytes + 34, 0x01, 4);
			f->bytes[14] = 0x46;
			put16(f->bytes + 16, (uint16_t)(28 + 4 + n));
			f->len += 4;
			fix_ip_checksum(f->bytes, f->len);
		}
	}
}

static void add_arp_seed(uint16_t oper, uint32_t target_ip, size_t len)
{
	struct input *in = add_seed();
	uint8_t *b = in->bytes;
	memset(b, 0xff, 6);
	memcpy(b + 6, ep_peer.mac, 6);
	put16(b + 12, BPX_ETHERTYPE_ARP);
	put16(b + 14, 1);
	put16(b + 16, BPX_ETHERTYPE_IPV4);
	b[18] = 6;
	b[19] = 4;
	put16(b + 20, oper);
	memcpy(b + 22, ep_peer.mac, 6);
	put16(b + 28, (uint16_t)(ep_peer.ip >> 16));
	put16(b + 30, (uint16_t)ep_peer.ip);
	put16(b + 38, (uint16_t)(target_ip >> 16));
	put16(b + 40, (uint16_t)target_ip);
	in->len = len;
}

static uint64_t field_value(void)
{
	switch (below(4)) {
	case 0:
		return 0;
	case 1:
		return below(1024);
	case 2:
		return UINT64_MAX - below(4);
	default:
		return next();
	}
}

static void build_corpus(void)
{
	static uint8_t value[PX_VALUE_BYTES_MAX];
	for (size_t i = 0; i < sizeof(value); i++)
		value[i] = (uint8_t)next();
	const uint32_t value_lens[] = { 0, 1, 18, 200, PX_VALUE_BYTES_MAX };
	for (uint8_t type = PX_MSG_REQUEST; type <= BPX_WIRE_TYPE_MAX; type++) {
		if (type == PX_MSG_SNAPSHOT)
			continue; /* an outbox effect, not a message */
		for (size_t v = 0;
		     v < sizeof(value_lens) / sizeof(value_lens[0]); v++) {
			struct px_msg m;
			memset(&m, 0, sizeof(m));
			m.type = type;
			m.from = (uint8_t)below(8);
			m.to = (uint8_t)below(8);
			m.flags = (uint8_t)below(8); /* RECOVERY, READ, OPEN */
			m.status = (uint8_t)below(PX_REPLY_STATUS_MAX + 1);
			m.leader_hint = (uint8_t)next();
			uint64_t *fields[] = {
				&m.ballot,	 &m.slot,
				&m.slot_end,	 &m.accepted_ballot,
				&m.commit_index, &m.applied_index,
				&m.log_start,	 &m.client_id,
				&m.seq,
			};
			for (size_t k = 0;
			     k < sizeof(fields) / sizeof(fields[0]); k++)
				*fields[k] = field_value();
			m.value_len = value_lens[v];
			m.value = value_lens[v] > 0 ? value : NULL;
			uint8_t probe[1];
			if (bpx_wire_encode(probe, 0, CLUSTER_ID, &m) ==
			    -BPX_EINVAL)
				continue; /* a type without a value */
			add_message_seeds(&m);
		}
	}
	add_multi_seeds(value);
	add_arp_seed(1, ep_self.ip, BPX_ARP_FRAME_BYTES);
	add_arp_seed(1, ep_self.ip, 60);
	add_arp_seed(1, ep_peer.ip, BPX_ARP_FRAME_BYTES);
	add_arp_seed(2, ep_self.ip, BPX_ARP_FRAME_BYTES);
}

static size_t pick_offset(size_t len)
{
	/* Headers hold most of the checks: favour the first 64 bytes. */
	if (len > 64 && below(2) == 0)
		return below(64);
	return below(len);
}

static void mutate(struct input *in)
{
	static const uint8_t interesting8[] = { 0x00, 0x01, 0x02, 0x04, 0x05,
						0x06, 0x0c, 0x11, 0x20, 0x40,
						0x45, 0x7f, 0x80, 0xff };
	static const uint16_t interesting16[] = {
		0x0000, 0x0001, 0x0008, 0x0014, 0x0800, 0x0806, 0x2000,
		0x4000, 0x4258, 0x0578, 0x0579, 0x05d0, 0x7fff, 0xffff,
	};
	unsigned steps = 1 + (unsigned)below(3);
	for (unsigned s = 0; s < steps; s++) {
		switch (below(6)) {
		case 0: /* bit flips */
			for (size_t k = 1 + below(8); k > 0 && in->len > 0; k--)
				in->bytes[pick_offset(in->len)] ^=
					(uint8_t)(1u << below(8));
			break;
		case 1: /* random bytes */
			for (size_t k = 1 + below(4); k > 0 && in->len > 0; k--)
				in->bytes[pick_offset(in->len)] =
					(uint8_t)next();
			break;
		case 2: /* an interesting byte */
			if (in->len > 0)
				in->bytes[pick_offset(in->len)] =
					interesting8[below(
						sizeof(interesting8))];
			break;
		case 3: /* an interesting or off-by-one 16-bit value */
			if (in->len >= 2) {
				size_t at = pick_offset(in->len - 1);
				uint16_t v = interesting16[below(
					sizeof(interesting16) /
					sizeof(interesting16[0]))];
				if (below(2) == 0)
					v = (uint16_t)(((in->bytes[at] << 8) |
							in->bytes[at + 1]) +
						       (below(2) ? 1 : -1));
				put16(in->bytes + at, v);
			}
			break;
		case 4: /* truncate */
			in->len = below(in->len + 1);
			break;
		default: /* extend with random bytes */
			for (size_t k = 1 + below(16);
			     k > 0 && in->len < INPUT_MAX; k--)
				in->bytes[in->len++] = (uint8_t)next();
			break;
		}
	}
	if (below(2) == 0 && in->len >= 14 && in->bytes[12] == 0x08 &&
	    in->bytes[13] == 0x00)
		fix_ip_checksum(in->bytes, in->len);
}

static uint64_t frame_seen[BPX_WIRE_DROP_COUNT];
static uint64_t msg_seen[BPX_WIRE_DROP_COUNT];

/* Outcomes, to show (and check) how deep the corpus reaches. */
static void tally(const struct input *in)
{
	struct bpx_frame f;
	struct px_msg m;
	enum bpx_wire_drop d = bpx_frame_parse(in->bytes, in->len, &f);
	frame_seen[d]++;
	if (d == BPX_WIRE_OK)
		msg_seen[bpx_wire_decode(f.payload, f.payload_len, CLUSTER_ID,
					 &m)]++;
	msg_seen[bpx_wire_decode(in->bytes, in->len, CLUSTER_ID, &m)]++;
}

static void write_corpus(const char *dir)
{
	for (size_t i = 0; i < seed_count; i++) {
		char path[4096];
		snprintf(path, sizeof(path), "%s/seed-%04zu", dir, i);
		FILE *fp = fopen(path, "wb");
		if (fp == NULL ||
		    fwrite(seeds[i].bytes, 1, seeds[i].len, fp) !=
			    seeds[i].len ||
		    fclose(fp) != 0) {
			perror(path);
			exit(1);
		}
	}
	printf("fuzz-wire-smoke: wrote %zu seeds to %s\n", seed_count, dir);
}

/* Every reason these two functions can give must have been seen. */
static int check_reach(void)
{
	static const enum bpx_wire_drop frame_reasons[] = {
		BPX_WIRE_OK,
		BPX_WIRE_TRUNCATED,
		BPX_WIRE_NOT_IPV4,
		BPX_WIRE_BAD_IP_HEADER,
		BPX_WIRE_BAD_IP_CHECKSUM,
		BPX_WIRE_FRAGMENT,
		BPX_WIRE_NOT_UDP,
		BPX_WIRE_BAD_UDP_LENGTH,
		BPX_WIRE_BAD_UDP_CHECKSUM,
	};
	static const enum bpx_wire_drop msg_reasons[] = {
		BPX_WIRE_OK,
		BPX_WIRE_TRUNCATED,
		BPX_WIRE_BAD_MAGIC,
		BPX_WIRE_BAD_VERSION,
		BPX_WIRE_BAD_TYPE,
		BPX_WIRE_BAD_LENGTH,
		BPX_WIRE_WRONG_CLUSTER,
		BPX_WIRE_BAD_FIELD,
	};
	int missing = 0;
	for (size_t i = 0; i < sizeof(frame_reasons) / sizeof(frame_reasons[0]);
	     i++)
		if (frame_seen[frame_reasons[i]] == 0) {
			printf("  frame parse never gave '%s'\n",
			       bpx_wire_drop_name(frame_reasons[i]));
			missing++;
		}
	for (size_t i = 0; i < sizeof(msg_reasons) / sizeof(msg_reasons[0]);
	     i++)
		if (msg_seen[msg_reasons[i]] == 0) {
			printf("  message decode never gave '%s'\n",
			       bpx_wire_drop_name(msg_reasons[i]));
			missing++;
		}
	return missing;
}

int main(int argc, char **argv)
{
	build_corpus();
	if (argc == 3 && strcmp(argv[1], "--write-corpus") == 0)
		write_corpus(argv[2]);
	else if (argc != 1) {
		fprintf(stderr, "usage: %s [--write-corpus DIR]\n", argv[0]);
		return 2;
	}

	uint64_t inputs = 0;
	size_t per_seed = INPUTS_TARGET / seed_count;
	for (size_t i = 0; i < seed_count; i++) {
		LLVMFuzzerTestOneInput(seeds[i].bytes, seeds[i].len);
		inputs++;
		for (size_t k = 0; k < per_seed; k++) {
			struct input in = seeds[i];
			mutate(&in);
			LLVMFuzzerTestOneInput(in.bytes, in.len);
			tally(&in);
			inputs++;
		}
	}
	printf("fuzz-wire-smoke: %llu inputs, 0 crashes\n",
	       (unsigned long long)inputs);
	printf("  from %zu seeds, %zu mutations each\n", seed_count, per_seed);
	printf("  %-34s %10s %10s\n", "outcome", "frames", "messages");
	for (int d = 0; d < BPX_WIRE_DROP_COUNT; d++)
		if (frame_seen[d] + msg_seen[d] > 0)
			printf("  %-34s %10llu %10llu\n",
			       bpx_wire_drop_name((enum bpx_wire_drop)d),
			       (unsigned long long)frame_seen[d],
			       (unsigned long long)msg_seen[d]);
	int missing = check_reach();
	if (missing > 0) {
		printf("fuzz-wire-smoke: the corpus no longer reaches %d "
		       "outcome(s): fix the seeds or the mutator\n",
		       missing);
		return 1;
	}
	return 0;
}
