"""The store's on-flash format: session and acks file names, the record header, tagged items,
varints, and writing a record (the lowest module of the store; reading is :mod:`.decode`).

One file per session, ``<root>/NNNNNNNN.ses`` (decimal sequence number), written append-only;
acknowledgements in ``<root>/acks``. Every record is::

    magic 0xA7 | version | type | flags | session seq (u32 LE) | payload length (u16 LE)
    | payload | CRC-32 (u32 LE) over header + payload

Payloads are self-describing items (tag + value) except ROWS blocks (see :mod:`.writer`).
From version 2 on, every ROWS record decodes on its own (its delta state starts afresh) and
carries in ``flags`` the number (1-255, wrapping) of the PROFILE record it belongs to, which
carries the same number: rows after a damaged record are placed, or refused, exactly.
"""

import struct

from optoread.compat import const
from optoread.crc import crc32_write
from optoread.errors import StoreError

MAGIC = const(0xA7)
# The record format version written into every record. Bump it whenever the meaning of any
# record's bytes changes; decode reads every version from 1 up to this one (sessions not
# yet downloaded survive a firmware update) and refuses newer ones. Version 1 is unchanged by
# keeping profile clocks as offsets in RAM (RowEncoder): the bytes were relative already.
# Version 2: ROWS records are self-contained and tagged with their profile (see above).
# Version 3: a VALUE record may carry a fifth item, the value's own time.
VERSION = const(3)

# Record types.
T_HEAD = const(1)
T_VALUE = const(2)
_T_EVENT = const(3)
_T_PROFILE = const(4)
T_ROWS = const(5)
_T_COMMIT = const(6)
T_ACK = const(7)

HDR = "<BBBBIH"  # the header's layout (struct)
HEADER_SIZE = const(10)
CRC_SIZE = const(4)
MAX_PAYLOAD = const(1024)
_MAX_COLUMNS = const(32)  # of a profile
_MAX_VARINT = const(10)  # bytes

# Tags of the self-describing items in HEAD/VALUE/EVENT/PROFILE/COMMIT/ACK payloads.
_TAG_NONE = const(0)
_TAG_INT = const(1)
_TAG_STR = const(2)
_TAG_BYTES = const(3)
_TAG_FLOAT = const(4)

# A session's outcome (its COMMIT record holds 0 for complete, 1 for incomplete).
COMPLETE = "complete"
INCOMPLETE = "incomplete"
INTERRUPTED = "interrupted (power cut or reset while reading)"  # the error of a sealed torn session
# (Not names here, for RAM: each module-level name is interned on a board for good.) The error of a
# session with records that no longer verify (bit rot) is "damaged on flash: 1 record, 523 bytes
# unreadable; <the session's own error, or 'reading was complete'>"; of a session file that could
# not be read at all "unreadable on flash: file NNNNNNNN.bad" (quarantined under that name).

SUFFIX = ".ses"  # a session file
TMP = ".tmp"  # a file being rewritten (renamed over the real one when whole)
ACKS = "acks"  # the acks file


def file_size(fs, path):
    """Bytes in file ``path`` of ``fs`` (where a file object cannot ``tell()``)."""
    n = 0
    buf = bytearray(256)
    with fs.open(path, "rb") as f:
        while True:
            k = f.readinto(buf)
            if not k:
                return n
            n += k


# ---------------------------------------------------------------- items


def zigzag(v):
    """Signed int -> unsigned (0, -1, 1, -2 ... -> 0, 1, 2, 3 ...)."""
    return v << 1 if v >= 0 else ((-v) << 1) - 1


def put_uvarint(buf, off, end, v):
    """Write unsigned LEB128 ``v`` into ``buf[off:end]``; return the new offset."""
    n = 0
    while v >= 0x80:
        if off >= end or n >= _MAX_VARINT - 1:
            raise StoreError("record full" if off >= end else "integer too large", "varint", off)
        buf[off] = (v & 0x7F) | 0x80
        v >>= 7
        off += 1
        n += 1
    if off >= end:
        raise StoreError("record full", "varint", off)
    buf[off] = v
    return off + 1


def _put_bytes(buf, off, end, tag, data):
    if off >= end:
        raise StoreError("record full", "item", off)
    buf[off] = tag
    n = len(data)
    off = put_uvarint(buf, off + 1, end, n)
    if off + n > end:
        raise StoreError("record full", "item", off)
    buf[off:off + n] = data
    return off + n


def put_item(buf, off, end, v):
    """Write one tagged item (None, int, str, bytes, float) into ``buf``; return the new offset."""
    if v is None:
        if off >= end:
            raise StoreError("record full", "item", off)
        buf[off] = _TAG_NONE
        return off + 1
    if isinstance(v, bool):
        v = int(v)
    if isinstance(v, int):
        if off >= end:
            raise StoreError("record full", "item", off)
        buf[off] = _TAG_INT
        return put_uvarint(buf, off + 1, end, zigzag(v))
    if isinstance(v, str):
        return _put_bytes(buf, off, end, _TAG_STR, v.encode())
    if isinstance(v, (bytes, bytearray, memoryview)):
        return _put_bytes(buf, off, end, _TAG_BYTES, v)
    if isinstance(v, float):
        if off + 9 > end:
            raise StoreError("record full", "item", off)
        buf[off] = _TAG_FLOAT
        struct.pack_into("<d", buf, off + 1, v)
        return off + 9
    raise StoreError("cannot store a %s" % type(v).__name__, "item", off)


# ---------------------------------------------------------------- records


def begin_record(buf, off, rtype, seq, flags=0):
    """Reserve a record header at ``buf[off]``; return the payload offset (finish with end_record)."""
    if off + HEADER_SIZE + CRC_SIZE > len(buf):
        raise StoreError("record buffer full", "record", off)
    struct.pack_into(HDR, buf, off, MAGIC, VERSION, rtype, flags, seq, 0)
    return off + HEADER_SIZE


def end_record(buf, off, pend):
    """Close the record started at ``off`` whose payload ends at ``pend``; return the offset after it."""
    n = pend - off - HEADER_SIZE
    if n > MAX_PAYLOAD or pend + CRC_SIZE > len(buf):
        raise StoreError("record too long", "length", off)
    struct.pack_into("<H", buf, off + 8, n)
    crc32_write(buf, off, pend, pend)  # CRC-32 little-endian after the payload, allocation-free
    return pend + CRC_SIZE


def encode_record(buf, off, rtype, seq, items, flags=0):
    """Encode a record whose payload is the tagged ``items``; return the offset after it."""
    p = begin_record(buf, off, rtype, seq, flags)
    lim = min(len(buf) - CRC_SIZE, p + MAX_PAYLOAD)
    for v in items:
        p = put_item(buf, p, lim, v)
    return end_record(buf, off, p)
