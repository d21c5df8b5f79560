"""The read side of the store's record format (:mod:`.records`): items, records, row blocks.

Used by the mount (:mod:`.mount`) and by reading sessions back (:mod:`.query`); a reading that
is being written never decodes anything, so it is not on the heap then (RAM).
"""

# decode_payload returns data whose shape depends on the record kind; pyright cannot follow it.
# pyright: reportIndexIssue=false, reportArgumentType=false

import struct

from optoread.compat import const
from optoread.crc import crc32
from optoread.errors import StoreError
from optoread.store.records import (
    COMPLETE,
    CRC_SIZE,
    HDR,
    HEADER_SIZE,
    INCOMPLETE,
    MAGIC,
    MAX_PAYLOAD,
    T_ACK,
    T_HEAD,
    T_ROWS,
    T_VALUE,
    VERSION,
)

_MAX_COLUMNS = const(32)  # as in records (private: compiled away)
_MAX_VARINT = const(10)  # as in records (private: compiled away)
_TAG_NONE = const(0)  # as in records (private: compiled away)
_TAG_INT = const(1)  # as in records (private: compiled away)
_TAG_STR = const(2)  # as in records (private: compiled away)
_TAG_BYTES = const(3)  # as in records (private: compiled away)
_TAG_FLOAT = const(4)  # as in records (private: compiled away)
_T_COMMIT = const(6)  # as in records (private: compiled away)
_T_EVENT = const(3)  # as in records (private: compiled away)
_T_PROFILE = const(4)  # as in records (private: compiled away)

# Every record version from this one up to records.VERSION is read: sessions written by an
# older firmware and not yet downloaded survive an update (docs/architecture.md, "Store format").
_OLDEST_VERSION = const(1)


def unzigzag(z):
    """Inverse of :func:`.records.zigzag`."""
    return z >> 1 if not z & 1 else -((z + 1) >> 1)


def get_uvarint(buf, off, end):
    """Read an unsigned LEB128 from ``buf[off:end]``; return ``(value, new_off)``."""
    v = 0
    shift = 0
    start = off
    while True:
        if off >= end:
            raise StoreError("truncated varint", "varint", start)
        if off - start >= _MAX_VARINT:
            raise StoreError("varint too long", "varint", start)
        b = buf[off]
        off += 1
        v |= (b & 0x7F) << shift
        if not b & 0x80:
            return v, off
        shift += 7


def get_item(buf, off, end):
    """Read one tagged item from ``buf[off:end]``; return ``(value, new_off)``."""
    if off >= end:
        raise StoreError("truncated item", "item", off)
    tag = buf[off]
    off += 1
    if tag == _TAG_NONE:
        return None, off
    if tag == _TAG_INT:
        z, off = get_uvarint(buf, off, end)
        return unzigzag(z), off
    if tag == _TAG_STR or tag == _TAG_BYTES:
        n, off = get_uvarint(buf, off, end)
        if n > end - off:
            raise StoreError("item longer than its record", "item", off)
        data = bytes(buf[off:off + n])
        if tag == _TAG_BYTES:
            return data, off + n
        try:
            return data.decode(), off + n
        except UnicodeError:
            raise StoreError("bad UTF-8 text", "item", off)
    if tag == _TAG_FLOAT:
        if off + 8 > end:
            raise StoreError("truncated float", "item", off)
        v = struct.unpack_from("<d", buf, off)[0]
        if v - v != 0:  # inf or nan: the rp2 build's unpack turns every nan into inf
            frac = buf[off + 6] & 0x0F
            for i in range(off, off + 6):
                frac |= buf[i]
            if frac:
                v = float("nan")
        return v, off + 8
    raise StoreError("unknown item tag %d" % tag, "item", off - 1)


def get_items(buf, off, end, count):
    """Read exactly ``count`` items filling ``buf[off:end]``; return them as a list."""
    out = []
    for _ in range(count):
        v, off = get_item(buf, off, end)
        out.append(v)
    if off != end:
        raise StoreError("bytes left over in record", "payload", off)
    return out


def parse_header(buf, off, end):
    """Check the record header at ``buf[off:end]``; return ``(rtype, flags, seq, length)``.

    Raises StoreError if the header is not a record header or the record runs past ``end``.
    """
    if end - off < HEADER_SIZE + CRC_SIZE:
        raise StoreError("truncated record header", "header", off)
    magic, ver, rtype, flags, seq, n = struct.unpack_from(HDR, buf, off)
    if magic != MAGIC:
        raise StoreError("bad magic 0x%02X" % magic, "magic", off)
    if ver < _OLDEST_VERSION or ver > VERSION:
        raise StoreError("unsupported record version %d" % ver, "version", off + 1)
    if rtype < T_HEAD or rtype > T_ACK:
        raise StoreError("unknown record type %d" % rtype, "type", off + 2)
    if n > MAX_PAYLOAD:
        raise StoreError("record length %d too large" % n, "length", off + 8)
    if n > end - off - HEADER_SIZE - CRC_SIZE:
        raise StoreError("record longer than the data", "length", off + 8)
    return rtype, flags, seq, n


def check_record(buf, off, end):
    """Verify the record at ``buf[off:end]``; return ``(rtype, flags, seq, payload_off, next_off)``."""
    rtype, flags, seq, n = parse_header(buf, off, end)
    pend = off + HEADER_SIZE + n
    want = struct.unpack_from("<I", buf, pend)[0]
    if crc32(memoryview(buf)[off:pend]) != want:
        raise StoreError("record CRC mismatch", "crc", pend)
    return rtype, flags, seq, off + HEADER_SIZE, pend + CRC_SIZE


_ITEM_COUNTS = {T_HEAD: 4, T_VALUE: 4, _T_EVENT: 3, _T_COMMIT: 4, T_ACK: 1}


def decode_payload(rtype, buf, off, end):
    """Decode a verified record payload into a tuple ``(kind, data)`` (see :meth:`Store.read`)."""
    if rtype == T_ROWS:
        raise StoreError("row blocks need a RowDecoder", "type", off)
    if rtype == _T_PROFILE:
        head = []
        p = off
        for _ in range(4):
            v, p = get_item(buf, p, end)
            head.append(v)
        obis, period, first, ncols = head
        if not isinstance(ncols, int) or ncols < 0 or ncols > _MAX_COLUMNS:
            raise StoreError("bad column count", "columns", off)
        if period is not None and not isinstance(period, int):
            raise StoreError("bad capture period", "period", off)
        if first is not None and not isinstance(first, int):
            raise StoreError("bad first time", "first_time", off)
        cols = get_items(buf, p, end, 3 * ncols)
        columns = tuple(tuple(cols[i:i + 3]) for i in range(0, 3 * ncols, 3))
        return "profile", (obis, period, first, columns)
    count = _ITEM_COUNTS.get(rtype)
    if count is None:
        raise StoreError("unknown record type %d" % rtype, "type", off)
    items = get_items(buf, off, end, count)
    if rtype == T_HEAD:
        return "head", tuple(items)
    if rtype == T_VALUE:
        return "value", tuple(items)
    if rtype == _T_EVENT:
        return "event", tuple(items)
    if rtype == T_ACK:
        if not isinstance(items[0], int) or items[0] < 0:
            raise StoreError("bad ack", "ack", off)
        return "ack", items[0]
    outcome, error, nrec, nrows = items
    if outcome not in (0, 1) or not isinstance(nrec, int) or not isinstance(nrows, int):
        raise StoreError("bad commit record", "commit", off)
    return "commit", (COMPLETE if outcome == 0 else INCOMPLETE, error, nrec, nrows)


class RowDecoder:
    """Inverse of :class:`.writer.RowEncoder`: feeds decoded rows ``(clock, cols)`` to a callback."""

    def __init__(self):
        self.prev = [0] * _MAX_COLUMNS
        self.reset(0, None, None)

    def reset(self, ncols, period, first_time):
        self.ncols = ncols
        self.period = period or 0
        self.clock = None
        self.first = first_time
        for i in range(_MAX_COLUMNS):
            self.prev[i] = 0

    def block(self, buf, off, end, emit=None):
        """Decode one ROWS payload; return the number of rows. ``emit(clock, cols)`` gets each row."""
        n, off = get_uvarint(buf, off, end)
        if n > end - off:  # every row takes at least one byte
            raise StoreError("row count larger than the block", "rows", off)
        prev = self.prev
        ncols = self.ncols
        for _ in range(n):
            lead, off = get_uvarint(buf, off, end)
            pred = self.first if self.clock is None else self.clock + self.period
            if lead & 1:
                z, off = get_uvarint(buf, off, end)
                clock = (pred or 0) + unzigzag(z)
            else:
                clock = pred
            cols = [None] * ncols if emit is not None else None
            for i in range(ncols):
                if i == 0:
                    z = lead >> 1
                else:
                    z, off = get_uvarint(buf, off, end)
                if z:
                    prev[i] += unzigzag(z - 1)
                    if cols is not None:
                        cols[i] = prev[i]
            self.clock = clock
            if emit is not None:
                emit(clock, tuple(cols))
        if off != end:
            raise StoreError("bytes left over in row block", "rows", off)
        return n


def _readfull(f, mv):
    """readinto until ``mv`` is full or EOF; return the byte count."""
    got = 0
    n = len(mv)
    while got < n:
        k = f.readinto(mv[got:])
        if not k:
            break
        got += k
    return got


def read_record(f, buf):
    """Read one record from file ``f`` into ``buf``; return (bytes consumed, rtype or -1 if the
    bytes are not a valid record, its session seq, payload offset, payload end); (0, ...) at EOF."""
    mv = memoryview(buf)
    got = _readfull(f, mv[:HEADER_SIZE])
    if got == 0:
        return 0, 0, 0, 0, 0
    if got < HEADER_SIZE:
        return got, -1, 0, 0, 0
    magic, ver, rtype, flags, seq, n = struct.unpack_from(HDR, buf, 0)
    if (magic != MAGIC or ver < _OLDEST_VERSION or ver > VERSION or n > MAX_PAYLOAD
            or rtype < T_HEAD or rtype > T_ACK):
        return got, -1, 0, 0, 0
    want = n + CRC_SIZE
    got2 = _readfull(f, mv[HEADER_SIZE:HEADER_SIZE + want])
    if got2 < want:
        return got + got2, -1, 0, 0, 0
    try:
        rtype, flags, rseq, pay, nxt = check_record(buf, 0, HEADER_SIZE + want)
    except StoreError:
        return got + got2, -1, 0, 0, 0
    return nxt, rtype, rseq, pay, nxt - CRC_SIZE
