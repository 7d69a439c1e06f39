/* bypax snapshot files: what `bypaxctl snapshot PATH` writes and
 * `bypaxd --bootstrap --restore FILE` reads (docs/deploy.md, "Disaster
 * recovery"; the format in docs/wire.md, "Snapshot files").
 *
 * A file is a consensus snapshot (px_snapshot_save: format "BPXS" v3, the
 * applied index, membership history, crash vector, client sessions and
 * the state machine) framed with what a file kept on a disk needs and a
 * message between two live replicas does not: the cluster it came from,
 * its length, and a checksum. Format version 1, little-endian:
 *
 *     offset  size  field
 *          0     4  magic 0x46585042 ("BPXF")
 *          4     4  file format version (1)
 *          8     4  cluster id ([cluster] id of the snapshotted cluster)
 *         12     4  member count of that cluster's configuration
 *         16     8  applied index (the body's, repeated for a reader)
 *         24     8  body length L
 *         32     L  body: px_snapshot_save's bytes
 *     32 + L     4  CRC-32C (Castagnoli) of bytes 0 .. 32 + L - 1
 *
 * Pure code (DESIGN.md, the purity rule): no I/O. The daemon streams a file
 * from these pieces without copying the body (ctl_daemon.c); bypaxctl
 * checks the stream as it writes it; bypaxd checks the whole file before
 * it installs the body.
 */
#ifndef BYPAX_SNAPFILE_H
#define BYPAX_SNAPFILE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define PX_SNAPFILE_FORMAT_MAGIC 0x46585042u /* "BPXF" */
#define PX_SNAPFILE_FORMAT_VERSION 1u
#define PX_SNAPFILE_HEADER_BYTES 32u
#define PX_SNAPFILE_TRAILER_BYTES 4u

struct px_snapfile_header {
	uint32_t version;
	uint32_t cluster_id;
	uint32_t member_count;
	uint64_t applied_index;
	uint64_t body_bytes;
};

/* What a check found. X(name, text): the text says what is wrong with the
 * file, for a message that also names the file and the values
 * (struct px_snapfile_info). */
#define PX_SNAPFILE_CHECK_LIST(X)                                              \
	X(OK, "ok")                                                            \
	X(SHORT, "too short to be a bypax snapshot file")                      \
	X(MAGIC, "not a bypax snapshot file (bad magic)")                      \
	X(VERSION, "unsupported snapshot file format version")                 \
	X(LENGTH, "its length differs from what its header says "             \
		  "(truncated, or something appended)")                        \
	X(CHECKSUM, "checksum mismatch: the file is corrupted")                \
	X(BODY, "the snapshot inside is malformed")                            \
	X(BODY_VERSION, "unsupported snapshot format version inside")          \
	X(INDEX, "the applied index in its header differs from the "           \
		 "snapshot's")

enum px_snapfile_check {
#define PX_SNAPFILE_CHECK_ENUM(name, text) PX_SNAPFILE_##name,
	PX_SNAPFILE_CHECK_LIST(PX_SNAPFILE_CHECK_ENUM)
#undef PX_SNAPFILE_CHECK_ENUM
	PX_SNAPFILE_CHECK_COUNT
};

/* A static text for a check result; never NULL. */
const char *px_snapfile_check_text(enum px_snapfile_check c);

/* CRC-32C of n bytes, continuing from crc (0 to start): the CRC of a
 * whole equals the CRC of its parts chained in order. */
uint32_t px_crc32c(uint32_t crc, const uint8_t *p, size_t n);

/* The file size for a body of body_bytes. */
uint64_t px_snapfile_size(uint64_t body_bytes);

/* Writes the 32-byte header (magic and version 1 included). */
void px_snapfile_header_encode(uint8_t *out,
			       const struct px_snapfile_header *h);
/* Reads a header from the first len bytes: PX_SNAPFILE_OK, SHORT, MAGIC
 * or VERSION (h->version is filled for VERSION). */
enum px_snapfile_check px_snapfile_header_decode(const uint8_t *buf,
						 size_t len,
						 struct px_snapfile_header *h);
/* The 4-byte trailer that ends a file whose bytes before it have crc. */
void px_snapfile_trailer_encode(uint8_t *out, uint32_t crc);
uint32_t px_snapfile_trailer_decode(const uint8_t *p);

/* Everything a check learned, for messages. */
struct px_snapfile_info {
	struct px_snapfile_header h;
	uint64_t file_bytes;   /* what was checked */
	uint32_t crc_stored;   /* the trailer */
	uint32_t crc_computed; /* over the bytes before it */
	uint32_t body_version; /* the snapshot format inside */
	uint64_t body_index;   /* the snapshot's own applied index */
	const uint8_t *body;   /* into the checked buffer */
};

/* Checks a whole file in memory, in this order: header (SHORT, MAGIC,
 * VERSION), LENGTH, CHECKSUM, then the snapshot inside (BODY,
 * BODY_VERSION, INDEX). Not checked here, because they need what the
 * reader has: the cluster id and member count against its configuration,
 * and the state and sessions themselves (px_snapshot_install validates
 * them and changes nothing when it refuses). *info is filled as far as
 * the check got. */
enum px_snapfile_check px_snapfile_check(const uint8_t *buf, size_t len,
					 struct px_snapfile_info *info);

/* Writes body_bytes of body as a whole file into buf (cap at least
 * px_snapfile_size(body_bytes)); the applied index is taken from the
 * body. Returns the file size, or -BPX_ETOOBIG, or -BPX_EMALFORMED for a
 * body px_snapshot_peek refuses. */
int64_t px_snapfile_encode(uint8_t *buf, size_t cap, uint32_t cluster_id,
			   uint32_t member_count, const uint8_t *body,
			   size_t body_bytes);

#ifdef __cplusplus
}
#endif

#endif
