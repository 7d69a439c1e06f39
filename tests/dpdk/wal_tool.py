#!/usr/bin/env python3
"""Damage a bypax WAL segment the way durable.sh needs (dataplane/wal.h
gives the format: a 32-byte segment header, then records of a 24-byte
header, u32 magic "BPXR", u32 CRC-32C, u32 payload length, u8 type, 3 zero
bytes, u64 tag, then the payload, little-endian).

  wal_tool.py tear SEGMENT   writes half of a record after the last one,
                             as a crash in the middle of a group commit
                             leaves it; prints where
  wal_tool.py flip SEGMENT   flips one byte (the tag) of a record with
                             records after it; prints that record's offset

Records are walked by their lengths; checksums are not needed for that.
"""
import struct
import sys

SEGMENT_HEADER = 32
RECORD_HEADER = 24
RECORD_MAGIC = 0x52585042


def records(data):
    """(offset, length) of every record, in order, up to the first gap."""
    off, out = SEGMENT_HEADER, []
    while off + RECORD_HEADER <= len(data):
        magic, _crc, length = struct.unpack_from("<III", data, off)
        if magic != RECORD_MAGIC or off + RECORD_HEADER + length > len(data):
            break
        out.append((off, RECORD_HEADER + length))
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
            if not recs:
                sys.exit(f"{path}: no record to copy a torn one from")
            off, size = recs[-1]
            end = off + size
            half = data[off:off + size // 2]
            f.seek(end)
            f.write(half)
            print(f"{len(half)} bytes of a {size}-byte record at byte {end} of {path}")
        else:
            if len(recs) < 3:
                sys.exit(f"{path}: {len(recs)} records, need 3 for one in the middle")
            off, _size = recs[len(recs) // 2]
            f.seek(off + 16)
            f.write(bytes([data[off + 16] ^ 0x5A]))
            print(off)


if __name__ == "__main__":
    main()
