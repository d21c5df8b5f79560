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
    if rtype == T_VALUE:
        # From version 3 a fifth item may follow: the value's own time (a maximum demand's).
        # Counted here, inline: a helper's name would be interned on the reading path (RAM).
        n = 0
        p = off
        while p < end and n < 6:
            p = get_item(buf, p, end)[1]
            n += 1
        if n == 5:
            count = 5
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
    """Inverse of :class:`.writer.RowEncoder`: feeds decoded rows ``(clock, cols)`` to a callback.

    A ROWS payload is read where its record put it, right after the record's header: its version
    and flags come from there. Version 1 blocks carry the delta state over from the block before
    (``damaged``: records were lost since the profile began, so this one cannot be placed); from
    version 2 each block starts afresh and belongs to the profile whose number its flags carry
    (``tag``: the PROFILE record's flags, None = not checked).
    """

    def __init__(self):
        self.prev = [0] * _MAX_COLUMNS
        self.reset(0, None, None)

    def reset(self, ncols, period, first_time, tag=None):
        self.ncols = ncols
        self.period = period or 0
        self.clock = None
        self.first = first_time
        self.tag = tag
        self.damaged = False  # set by the reader of a damaged session: records were lost
        for i in range(_MAX_COLUMNS):
            self.prev[i] = 0

    def check(self, buf, off):
        """Raise StoreError if the ROWS payload at ``buf[off]`` cannot be placed in this profile;
        else get ready to decode it (a version 2 block starts afresh)."""
        h = off - HEADER_SIZE
        ver = flags = 0
        if h >= 0 and buf[h] == MAGIC:
            ver = buf[h + 1]
            flags = buf[h + 3]
        if ver >= 2:
            if self.tag is not None and flags != self.tag:
                raise StoreError("row block of another profile", "rows", h + 3)
            if self.first is None and self.damaged:
                raise StoreError("row block without its profile's first clock", "rows", off)
            self.clock = None
            for i in range(_MAX_COLUMNS):
                self.prev[i] = 0
        elif self.damaged:
            raise StoreError("row block after a lost one (format 1)", "rows", off)

    def block(self, buf, off, end, emit=None):
        """Decode one ROWS payload; return the number of rows. ``emit(clock, cols)`` gets each row."""
        self.check(buf, off)
        prev = self.prev
        n, off = get_uvarint(buf, off, end)
        if n > end - off:  # every row takes at least one byte
            raise StoreError("row count larger than the block", "rows", off)
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
            if self.first is None:
                self.first = clock  # the profile's base: its first clock
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


def skip(f, buf, seq, off):
    """Skip bytes that are not a record of session ``seq`` (bit rot, a torn tail): the file ``f``
    is read from ``off + 1`` (the offset of the record that did not verify) up to the next offset
    where a record of the session starts (magic, version, type, ``seq``) and verifies (its CRC);
    return what :func:`read_record` returns for it, the bytes consumed counted from ``off``
    (skipped bytes included); ``rtype`` -1: none up to the end of the file. Bounded: candidates
    that fail may cost twice the bytes skipped and two records more; ``rtype`` -2 when that is
    spent (the rest is not looked at).
    """
    mv = memoryview(buf)
    size = len(buf)
    s0, s1, s2, s3 = seq & 0xFF, (seq >> 8) & 0xFF, (seq >> 16) & 0xFF, (seq >> 24) & 0xFF
    q = off + 1
    spent = 0
    while True:
        f.seek(q)
        k = _readfull(f, mv)
        lim = k - HEADER_SIZE + 1
        i = 0
        while i < lim:
            if (buf[i] == MAGIC and _OLDEST_VERSION <= buf[i + 1] <= VERSION
                    and T_HEAD <= buf[i + 2] <= T_ACK and buf[i + 4] == s0 and buf[i + 5] == s1
                    and buf[i + 6] == s2 and buf[i + 7] == s3
                    and buf[i + 8] | (buf[i + 9] << 8) <= MAX_PAYLOAD):
                break
            i += 1
        if i >= lim:
            if k < size:  # the end: what is left cannot hold a record
                return q + k - off, -1, 0, 0, 0
            q += lim
            continue
        q += i
        f.seek(q)
        n, rtype, rseq, pay, pend = read_record(f, buf)
        if rtype >= 0 and rseq == seq:
            return q - off + n, rtype, rseq, pay, pend
        spent += n
        if spent > 2 * (q - off) + 2 * size:
            return q - off, -2, 0, 0, 0
        q += 1


