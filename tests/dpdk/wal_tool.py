#!/usr/bin/env python3
"""Damage a bypax WAL segment the way durable.sh needs (dataplane/wal.h
gives the format: a 32-byte segment header, then records of a 24-byte
header, u32 magic "BPXR", u32 CRC-32C, u32 payload length, u8 type, 3 zero
bytes, u64 tag, then the payload, little-endian; type 0 is the marker that
starts each group commit).

  wal_tool.py tear SEGMENT   writes the first half of a record (the
                             largest) after the last one, as a crash in
                             the middle of a group commit leaves it;
                             prints where
  wal_tool.py flip SEGMENT   flips one byte (the tag) of a record that a
                             later group commit follows (it was synced);
                             prints that record's offset

Records are walked by their lengths; checksums are not needed for that.
"""
import struct
import sys

SEGMENT_HEADER = 32
RECORD_HEADER = 24
RECORD_MAGIC = 0x52585042


def records(data):
    """(offset, length, type) of every record, in order, to the first gap."""
    off, out = SEGMENT_HEADER, []
    while off + RECORD_HEADER <= len(data):
        magic, _crc, length = struct.unpack_from("<III", data, off)
        if magic != RECORD_MAGIC or off + RECORD_HEADER + length > len(data):
            break
        out.append((off, RECORD_HEADER + length, data[off + 12]))
        off += RECORD_HEADER + length
    return out


def main():
    if len(sys.argv) != 3 or sys.argv[1] not in ("tear", "flip"):
        sys.exit(__doc__)
    path = sys.argv[2]
    with open(path, "r+b") as f:
        data = f.read()
        recs = records(data)
        if sys.argv[1] == "tear":
            # A record whose second half is not all zero: the first half
            # alone then fails its checksum (half a marker, or of a
            # short record with zeros at its end, would be whole).
            torn = [r for r in recs
                    if any(data[r[0] + r[1] // 2:r[0] + r[1]])]
            if not torn:
                sys.exit(f"{path}: no record to copy a torn one from")
            off, size, _type = max(torn, key=lambda r: r[1])
            end = recs[-1][0] + recs[-1][1]
            half = data[off:off + size // 2]
            f.seek(end)
            f.write(half)
            print(f"{len(half)} bytes of a {size}-byte record at byte {end} of {path}")
        else:
            last_marker = max((i for i, r in enumerate(recs) if r[2] == 0), default=0)
            synced = [r for r in recs[:last_marker] if r[2] != 0]
            if not synced:
                sys.exit(f"{path}: no record that a later group commit follows")
            off, _size, _type = synced[len(synced) // 2]
            f.seek(off + 16)
            f.write(bytes([data[off + 16] ^ 0x5A]))
            print(off)


if __name__ == "__main__":
    main()
