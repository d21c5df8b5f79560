"""Power-cut-safe on-device store for reading sessions (append-only records on LittleFS).

One file per session, ``<root>/NNNNNNNN.ses`` (decimal sequence number), written
append-only. Every record is::

    magic 0xA7 | version | type | flags | session seq (u32 LE) | payload length (u16 LE)
    | payload | CRC-32 (u32 LE) over header + payload

A session is *committed* iff its file ends with a COMMIT record whose CRC
verifies; the COMMIT says whether the reading was complete or incomplete (with
an error text). On :meth:`Store.mount` every session file is scanned; a file
without a COMMIT (power cut while reading) is trimmed to its last whole record
and sealed with an *incomplete* COMMIT, so it is never mistaken for a complete
reading. Files that never got their first record are removed. LittleFS makes
each ``flush()`` atomic; the record CRCs also protect stores on FAT or a host
file system, where an append can be torn.

Acknowledgements (the laptop confirmed receipt of sessions up to N) are
appended to ``<root>/acks`` as ACK records; the last valid one counts.
:meth:`Store.reclaim` deletes acknowledged sessions oldest first and never an
unacknowledged one.

Load-profile rows are stored compactly: per column the zig-zag varint of the
difference to the previous row (+1; 0 = null); the first column's varint is
shifted left by one and its low bit says whether an explicit clock follows
(zig-zag difference to the implied clock = previous clock + capture period).
A regular 15-minute profile with one energy column costs about 2.3 bytes per row.

Reading sessions back, filtered listings and acknowledging live in :mod:`store_query`,
imported by the ``Store`` methods on first use: a reading and the mount never load it (RAM).
Decoding records (:mod:`store_decode`) and the mount's scan and repair (:mod:`store_mount`)
are loaded by :meth:`Store.mount` and dropped after it: a reading only writes.

The file system is reached through a tiny interface (see :class:`OsFs`):
``open(path, mode)``, ``listdir(path)``, ``mkdir(path)``, ``remove(path)``,
``rename(old, new)``, ``free(path) -> bytes``. ``OsFs`` maps it onto ``os`` (a
VfsLfs2 mounted on the board, or a directory on a host); the laptop tools
adapt littlefs-python to it to decode a raw flash dump.
"""

# A Writer's file is None once finished; pyright cannot follow it.
# pyright: reportOptionalOperand=false, reportOptionalMemberAccess=false, reportIndexIssue=false
# pyright: reportArgumentType=false, reportOperatorIssue=false, reportAttributeAccessIssue=false
# pyright: reportGeneralTypeIssues=false, reportCallIssue=false

import struct

from optoread.compat import IS_MICROPYTHON, const, unload
from optoread.crc import crc32_write
from optoread.errors import OptoreadError, StoreError

MAGIC = const(0xA7)
# The record format version written into every record. Bump it whenever the meaning of any
# record's bytes changes; store_decode reads every version from 1 up to this one (sessions not
# yet downloaded survive a firmware update) and refuses newer ones. Version 1 is unchanged by
# keeping profile clocks as offsets in RAM (RowEncoder): the bytes were relative already.
VERSION = const(1)

# Record types.
T_HEAD = const(1)
T_VALUE = const(2)
_T_EVENT = const(3)
_T_PROFILE = const(4)
T_ROWS = const(5)
_T_COMMIT = const(6)
T_ACK = const(7)

HEADER_SIZE = const(10)
CRC_SIZE = const(4)
MAX_PAYLOAD = const(1024)
_MAX_COLUMNS = const(32)

_HDR = "<BBBBIH"
_ROW_BLOCK = const(512)  # profile rows are flushed to the file in records of at most this payload
_ROWS_AT = const(12)  # where a writer encodes rows in the record buffer: HEADER_SIZE + 2-byte count
_MAX_VARINT = const(10)
_SYNC_BYTES = const(4096)  # flush (LittleFS: commit) at least this often while writing a session

# Tags of the self-describing items in HEAD/VALUE/EVENT/PROFILE/COMMIT/ACK payloads.
_TAG_NONE = const(0)
_TAG_INT = const(1)
_TAG_STR = const(2)
_TAG_BYTES = const(3)
_TAG_FLOAT = const(4)

COMPLETE = "complete"
INCOMPLETE = "incomplete"
INTERRUPTED = "interrupted (power cut or reset while reading)"

_SUFFIX = ".ses"
_TMP = ".tmp"
_ACKS = "acks"

# The store's index in RAM: one fixed entry per committed session (seq, size, device and meter
# time, rows, records, values, events, profiles, flags, ids of meter, plan and error in a table
# of the distinct ones). ~51 bytes a session instead of a summary object (~400 bytes on 64-bit):
# a store of hundreds of sessions leaves the heap to the reading. Summaries are made on demand.
_ENTRY = "<IIqqIIIIIBHHH"
_ENTRY_SIZE = const(51)
_F_SEALED = const(1)
_F_COMPLETE = const(2)
_F_DT = const(4)  # device time present (else None) ...
_F_MT = const(8)  # ... meter time present
_F_DT_ID = const(16)  # ... not an int: its field is an id in the table
_F_MT_ID = const(32)
_NO_ID = const(0xFFFF)  # None


# ---------------------------------------------------------------- file system seam


class OsFs:
    """The store's file-system interface on top of ``os`` (board VFS or a host directory)."""

    def __init__(self):
        import os

        self._os = os

    def open(self, path, mode):
        return open(path, mode)

    def listdir(self, path):
        return self._os.listdir(path)

    def mkdir(self, path):
        self._os.mkdir(path)

    def remove(self, path):
        self._os.remove(path)

    def rename(self, old, new):
        self._os.rename(old, new)

    def free(self, path):
        """Free bytes on the file system holding ``path``."""
        st = self._os.statvfs(path)
        return st[0] * st[4]


# ---------------------------------------------------------------- primitive codecs


def _err(msg, field=None, offset=None):
    return StoreError(msg, field=field, offset=offset)


def zigzag(v):
    """Signed int -> unsigned (0, -1, 1, -2 ... -> 0, 1, 2, 3 ...)."""
    return v << 1 if v >= 0 else ((-v) << 1) - 1


def put_uvarint(buf, off, end, v):
    """Write unsigned LEB128 ``v`` into ``buf[off:end]``; return the new offset."""
    n = 0
    while v >= 0x80:
        if off >= end or n >= _MAX_VARINT - 1:
            raise _err("record full" if off >= end else "integer too large", "varint", off)
        buf[off] = (v & 0x7F) | 0x80
        v >>= 7
        off += 1
        n += 1
    if off >= end:
        raise _err("record full", "varint", off)
    buf[off] = v
    return off + 1


def _put_bytes(buf, off, end, tag, data):
    if off >= end:
        raise _err("record full", "item", off)
    buf[off] = tag
    n = len(data)
    off = put_uvarint(buf, off + 1, end, n)
    if off + n > end:
        raise _err("record full", "item", off)
    buf[off:off + n] = data
    return off + n


def put_item(buf, off, end, v):
    """Write one tagged item (None, int, str, bytes, float) into ``buf``; return the new offset."""
    if v is None:
        if off >= end:
            raise _err("record full", "item", off)
        buf[off] = _TAG_NONE
        return off + 1
    if isinstance(v, bool):
        v = int(v)
    if isinstance(v, int):
        if off >= end:
            raise _err("record full", "item", off)
        buf[off] = _TAG_INT
        return put_uvarint(buf, off + 1, end, zigzag(v))
    if isinstance(v, str):
        return _put_bytes(buf, off, end, _TAG_STR, v.encode())
    if isinstance(v, (bytes, bytearray, memoryview)):
        return _put_bytes(buf, off, end, _TAG_BYTES, v)
    if isinstance(v, float):
        if off + 9 > end:
            raise _err("record full", "item", off)
        buf[off] = _TAG_FLOAT
        struct.pack_into("<d", buf, off + 1, v)
        return off + 9
    raise _err("cannot store a %s" % type(v).__name__, "item", off)


# ---------------------------------------------------------------- records


def begin_record(buf, off, rtype, seq, flags=0):
    """Reserve a record header at ``buf[off]``; return the payload offset (finish with end_record)."""
    if off + HEADER_SIZE + CRC_SIZE > len(buf):
        raise _err("record buffer full", "record", off)
    struct.pack_into(_HDR, buf, off, MAGIC, VERSION, rtype, flags, seq, 0)
    return off + HEADER_SIZE


def end_record(buf, off, pend):
    """Close the record started at ``off`` whose payload ends at ``pend``; return the offset after it."""
    n = pend - off - HEADER_SIZE
    if n > MAX_PAYLOAD or pend + CRC_SIZE > len(buf):
        raise _err("record too long", "length", off)
    struct.pack_into("<H", buf, off + 8, n)
    crc32_write(buf, off, pend, pend)  # CRC-32 little-endian after the payload, allocation-free
    return pend + CRC_SIZE


def encode_record(buf, off, rtype, seq, items):
    """Encode a record whose payload is the tagged ``items``; return the offset after it."""
    p = begin_record(buf, off, rtype, seq)
    lim = min(len(buf) - CRC_SIZE, p + MAX_PAYLOAD)
    for v in items:
        p = put_item(buf, p, lim, v)
    return end_record(buf, off, p)


# ---------------------------------------------------------------- load-profile rows


class RowEncoder:
    """Delta + varint encoder of profile rows into a fixed bytearray (no allocation per row).

    The rows go to ``buf[start:start + capacity]``: a buffer of its own by default, or (the
    session writer) the payload area of the store's record buffer, so a profile costs no
    second block buffer.

    Clocks are tracked as offsets from a base (the profile's first time, else the first clock
    a row gives): epoch seconds exceed 2**30, where a 32-bit board's small ints end, and a
    sum of two of them would allocate a long int for every row. The encoded bytes are the
    same as with absolute clocks (a row's clock is always relative to the implied one).
    """

    def __init__(self, capacity=_ROW_BLOCK, buf=None, start=0):
        self.buf = bytearray(capacity) if buf is None else buf
        self.start = start
        self.end = start + capacity
        self.prev = [0] * _MAX_COLUMNS
        self.reset(0, None, None)

    def reset(self, ncols, period, first_time):
        """Start a new profile: ``ncols`` integer columns, capture period (s) and expected first clock."""
        self.ncols = ncols
        self.period = period or 0
        self.base = first_time  # epoch seconds (may be a long int) or None until a row gives one
        self.rel = None  # the last row's clock - base; None while no row had a clock
        for i in range(_MAX_COLUMNS):
            self.prev[i] = 0
        self.clear()

    def clear(self):
        """Empty the block buffer (after it was written out); the delta state carries on."""
        self.off = self.start
        self.rows = 0

    def room(self):
        """True if a worst-case row still fits in the block."""
        return self.end - self.off >= (self.ncols + 1) * _MAX_VARINT

    def add(self, clock, cols):
        """Encode one row; ``clock`` is epoch seconds or None (implied), ``cols`` ints or None."""
        ncols = self.ncols
        if len(cols) != ncols:
            raise _err("row has %d columns, profile has %d" % (len(cols), ncols), "row")
        # Check first: a row that fails must leave no trace in the delta state.
        for i in range(ncols):
            v = cols[i]
            if v is not None and not isinstance(v, int):
                raise _err("profile column %d must be an int" % i, "row")
        # pred: the implied clock as an offset from base (None: no clock known yet)
        rel = self.rel
        base = self.base
        if rel is not None:
            pred = rel + self.period
        else:
            pred = None if base is None else 0
        if clock is None:
            explicit = 0
            delta = 0
            rel = pred
        else:
            if not isinstance(clock, int):
                raise _err("row clock must be an int", "clock")
            if base is None:  # the first clock of a profile without first_time: the base
                delta = clock  # relative to 0, as the decoder expects
                explicit = 1
                rel = 0
                base = clock
            else:
                rel = clock - base  # a long int's subtraction: only for rows that carry a clock
                explicit = 0 if rel == pred else 1
                delta = rel - pred
        buf = self.buf
        end = self.end
        off = self.off
        prev = self.prev
        # The lead varint carries the first column's code and, in its low bit, whether an
        # explicit clock follows: a regular row costs no byte for its timestamp.
        for i in range(ncols):
            v = cols[i]
            code = 0 if v is None else zigzag(v - prev[i]) + 1
            if i == 0:
                off = put_uvarint(buf, off, end, (code << 1) | explicit)
                if explicit:
                    off = put_uvarint(buf, off, end, zigzag(delta))
            else:
                off = put_uvarint(buf, off, end, code)
        if ncols == 0:
            off = put_uvarint(buf, off, end, explicit)
            if explicit:
                off = put_uvarint(buf, off, end, zigzag(delta))
        for i in range(ncols):  # the row is written: now it is the reference of the next one
            v = cols[i]
            if v is not None:
                prev[i] = v
        self.base = base
        self.rel = rel
        self.off = off
        self.rows += 1


# ---------------------------------------------------------------- summaries


class MountReport:
    """What :meth:`Store.mount` found: committed ``sessions``, ``torn`` sessions, ``trimmed_bytes``."""

    def __init__(self, sessions, trimmed_bytes, torn, removed):
        self.sessions = sessions
        self.trimmed_bytes = trimmed_bytes
        self.torn = torn
        self.removed = removed

    def __repr__(self):
        return "MountReport(sessions=%d, trimmed_bytes=%d, torn=%d, removed=%d)" % (
            self.sessions, self.trimmed_bytes, self.torn, self.removed)


class Session:
    """Summary of one stored session (no values: use :meth:`Store.read`)."""

    def __init__(self, seq):
        self.seq = seq
        self.meter = None
        self.plan = None
        self.device_time = None
        self.meter_time = None
        self.complete = False
        self.sealed = False  # a valid COMMIT record is present
        self.error = None
        self.values = 0
        self.events = 0
        self.profiles = 0
        self.rows = 0
        self.records = 0
        self.size = 0  # bytes of valid records
        self.downloaded = False

    def as_dict(self):
        """The summary as a plain dict (JSON, listings)."""
        from optoread.store import query as store_query

        return store_query.as_dict(self)

    def __repr__(self):
        return "Session(%d, %r, %s)" % (self.seq, self.meter, COMPLETE if self.complete else INCOMPLETE)


# ---------------------------------------------------------------- the store


class Store:
    """Sessions of meter readings in append-only files under ``root``.

    ``fs`` is the file-system interface (default :class:`OsFs`); ``reserve`` is
    the free space (bytes) :meth:`begin` insists on, reclaiming acknowledged
    sessions to get it.
    """

    def __init__(self, fs=None, root="/store", reserve=16384):
        self.fs = fs if fs is not None else OsFs()
        self.root = root.rstrip("/") or ""
        self.reserve = reserve
        # Called (no arguments) after every profile row block is written: the console's
        # heapwatch samples the free heap there, where a long profile's rows stream through.
        self.watch = None
        # _index: one _ENTRY per committed session, ascending seq; _table: the distinct meter ids,
        # plans, errors (and times that are not ints) the entries refer to
        self._clear_index()
        self._acked = 0
        self._next = 1
        self._writer = None
        # The one record buffer: mount, queries and acks use it, and the Writer stages its records
        # in it (the store is idle while a session is being written: see _idle).
        self._buf = bytearray(HEADER_SIZE + MAX_PAYLOAD + CRC_SIZE)
        self.mounted = False

    # -- paths
    def _path(self, seq, suffix=_SUFFIX):
        return "%s/%08d%s" % (self.root, seq, suffix)

    def _exists_dir(self):
        try:
            self.fs.listdir(self.root)
            return True
        except OSError:
            return False

    # -- mount
    def mount(self, repair=True):
        """Scan the store; trim and seal torn sessions (unless ``repair`` is False); return a MountReport.

        With ``repair=False`` nothing is written (for decoding a flash dump); torn
        sessions are then listed as incomplete, unsealed.
        """
        self._idle()
        from optoread.store import mount as store_mount  # once per boot: dropped again below (RAM)

        try:
            return store_mount.mount(self, repair)
        finally:
            # A reading never decodes: neither module's code stays on the heap for it.
            # (store_query, when loaded, keeps its own references to store_decode.)
            unload("store.mount")
            unload("store.decode")

    def _write_acks(self, acked):
        """Rewrite the acks file as one record (atomically via rename)."""
        buf = self._buf
        n = encode_record(buf, 0, T_ACK, 0, (acked,))
        tmp = self.root + "/" + _ACKS + _TMP
        with self.fs.open(tmp, "wb") as f:
            f.write(memoryview(buf)[:n])
            f.flush()
        self.fs.rename(tmp, self.root + "/" + _ACKS)

    def _need_mount(self):
        if not self.mounted:
            raise _err("store not mounted", "store")

    def _idle(self):
        # The record buffer is the open Writer's while a session is being written.
        if self._writer is not None:
            raise _err("a session is being written: finish it first", "writer")

    # -- queries
    def sessions(self, meter=None, downloaded=None, since=None, until=None):
        """Iterate over session summaries (oldest first), optionally filtered.

        ``meter``: meter id; ``downloaded``: True/False; ``since``/``until``: device time range
        (epoch seconds, inclusive).
        """
        from optoread.store import (
            query as store_query,  # the query side is loaded only when it is asked for (RAM)
        )

        return store_query.sessions(self, meter, downloaded, since, until)

    def session(self, seq):
        """The summary of session ``seq`` (a new :class:`Session`); StoreError if there is none."""
        for i in range(self.count()):
            if self._seq_at(i) == seq:
                return self.summary(i)
        raise _err("no session %d" % seq, "seq")

    def count(self):
        """Number of sessions the store lists (:meth:`sessions` without filters)."""
        return len(self._index) // _ENTRY_SIZE

    def summary(self, i):
        """The :class:`Session` summary of the ``i``-th session (oldest first), made from the index."""
        return self._unpack(self._index, self._table, i)

    def _unpack(self, index, table, i):
        seq, size, dt, mt, rows, records, values, events, profiles, flags, meter, plan, error = \
            struct.unpack_from(_ENTRY, index, i * _ENTRY_SIZE)
        s = Session(seq)
        s.size, s.rows, s.records = size, rows, records
        s.values, s.events, s.profiles = values, events, profiles
        s.sealed = bool(flags & _F_SEALED)
        s.complete = bool(flags & _F_COMPLETE)
        s.device_time = (table[dt] if flags & _F_DT_ID else dt) if flags & _F_DT else None
        s.meter_time = (table[mt] if flags & _F_MT_ID else mt) if flags & _F_MT else None
        s.meter = None if meter == _NO_ID else table[meter]
        s.plan = None if plan == _NO_ID else table[plan]
        s.error = None if error == _NO_ID else table[error]
        s.downloaded = seq <= self._acked
        return s

    def _clear_index(self):
        self._index = bytearray()
        self._table = []

    def _seq_at(self, i):
        return struct.unpack_from("<I", self._index, i * _ENTRY_SIZE)[0]

    def _id(self, v):
        # v's position in the table of distinct values (added if new); _NO_ID for None
        if v is None:
            return _NO_ID
        t = self._table
        try:
            i = t.index(v)  # a search, not a dict: no second table in RAM
            if type(t[i]) is type(v):
                return i
            for j in range(i + 1, len(t)):  # equal but another type (1 == True == 1.0): go on
                if t[j] == v and type(t[j]) is type(v):
                    return j
        except ValueError:
            pass
        if len(t) >= _NO_ID:
            raise _err("too many distinct meter ids, plans and errors for the index", "index")
        t.append(v)
        return len(t) - 1

    def _time(self, v, present, as_id):
        # (field, flags) of a device or meter time in an index entry
        if v is None:
            return 0, 0
        if isinstance(v, int) and not isinstance(v, bool) and -(1 << 63) <= v < (1 << 63):
            return v, present
        return self._id(v), present | as_id

    def _add(self, s):
        """Append the summary ``s`` of a session newer than every indexed one to the index."""
        dt, f1 = self._time(s.device_time, _F_DT, _F_DT_ID)
        mt, f2 = self._time(s.meter_time, _F_MT, _F_MT_ID)
        flags = f1 | f2 | (_F_SEALED if s.sealed else 0) | (_F_COMPLETE if s.complete else 0)
        self._index += struct.pack(_ENTRY, s.seq, s.size, dt, mt, s.rows, s.records, s.values, s.events,
                                   s.profiles, flags, self._id(s.meter), self._id(s.plan),
                                   self._id(s.error))

    def _remove(self, i):
        # Drop the i-th entry and rebuild the table from the entries left: errors are often
        # unique, and a device that runs for months must not collect them.
        index, table = self._index, self._table
        self._clear_index()
        for j in range(len(index) // _ENTRY_SIZE):
            if j != i:
                self._add(self._unpack(index, table, j))

    def read(self, seq, sink):
        """Stream session ``seq`` back: ``sink(kind, data)`` for each record, in order.

        kinds: ``"head"`` (meter, plan, device_time, meter_time), ``"value"`` (obis, value,
        scaler, unit), ``"event"`` (time, code, text), ``"profile"`` (obis, period, first_time,
        columns), ``"row"`` (clock, cols), ``"commit"`` (outcome, error, records, rows).
        Only whole, CRC-checked records of the session are given; a torn tail is never data.
        Returns the Session summary.
        """
        from optoread.store import query as store_query

        return store_query.read(self, seq, sink)

    def read_raw(self, seq, sink):
        """Stream the stored bytes of session ``seq`` (whole records only) as memoryview chunks."""
        from optoread.store import query as store_query

        return store_query.read_raw(self, seq, sink)

    # -- acknowledgement and space
    def ack(self, up_to_seq):
        """Mark sessions up to ``up_to_seq`` as downloaded (persistent); return the acked sequence."""
        from optoread.store import query as store_query

        return store_query.ack(self, up_to_seq)

    @property
    def acked(self):
        """Highest acknowledged sequence number (0 = none)."""
        return self._acked

    def free_space(self):
        """Free bytes on the file system."""
        return self.fs.free(self.root)

    # space() and reclaim() stay here although they are queries: the boot banner (main.py) and
    # begin() call them, and moving them would load store_query on every boot or full store.
    def space(self):
        """Space accounting: dict of free bytes, stored/unacknowledged/reclaimable bytes, counts."""
        self._need_mount()
        stored = unacked = reclaimable = 0
        n_unacked = 0
        n = self.count()
        for i in range(n):
            seq, size = struct.unpack_from("<II", self._index, i * _ENTRY_SIZE)
            stored += size
            if seq <= self._acked:
                reclaimable += size
            else:
                unacked += size
                n_unacked += 1
        return {"free": self.free_space(), "stored": stored, "unacked": unacked,
                "reclaimable": reclaimable, "sessions": n, "unacked_sessions": n_unacked}

    def reclaim(self, need=None):
        """Delete acknowledged sessions, oldest first, until ``need`` bytes are free (None: all).

        Never deletes an unacknowledged session. Returns the number of sessions deleted.
        """
        self._need_mount()
        n = 0
        while True:
            if need is not None and self.free_space() >= need:
                break
            # the oldest session is the first one acknowledged, if any is (acks cover a prefix)
            if not self.count() or self._seq_at(0) > self._acked:
                break
            self.fs.remove(self._path(self._seq_at(0)))
            self._remove(0)
            n += 1
        return n

    # -- writing
    def begin(self, meter_id, plan, device_time, meter_time=None):
        """Start recording a session; return its :class:`Writer`.

        Reclaims acknowledged sessions if less than ``reserve`` bytes are free;
        raises StoreError "store full: download first" if that is not enough.
        """
        self._need_mount()
        if self._writer is not None:
            raise _err("a session is already being written", "writer")
        if self.free_space() < self.reserve:
            self.reclaim(self.reserve)
            if self.free_space() < self.reserve:
                raise _err("store full: download first", "space")
        seq = self._next
        w = Writer(self, seq)
        w._start(meter_id, plan, device_time, meter_time)
        self._next = seq + 1
        self._writer = w
        return w

    def abort_open(self, error):
        """Commit the session being written (if any) as incomplete with ``error``: used when a
        reading crashed outside the reader's own error handling. Returns its summary or None."""
        w = self._writer
        if w is None:
            return None
        try:
            return w.abort(error)
        except OptoreadError:
            w.discard()  # the next mount seals it as interrupted
            return None

    def _committed(self, w, s):
        self._writer = None
        if s is not None:
            self._add(s)


def _file_size(fs, path):
    n = 0
    buf = bytearray(256)
    with fs.open(path, "rb") as f:
        while True:
            k = f.readinto(buf)
            if not k:
                return n
            n += k


class Writer:
    """Records one session; obtained from :meth:`Store.begin`. Finish with commit() or abort()."""

    def __init__(self, store, seq):
        self.store = store
        self.seq = seq
        # Room for one record of the largest size: records are written out as the next one
        # needs the room (LittleFS's file cache gathers the small ones into program chunks).
        self._out = store._buf  # the store's record buffer: it is idle while we write (Store._idle)
        self._n = 0  # bytes pending in _out
        self._unsynced = 0
        # Rows are encoded straight into the record buffer, after room for a record header and
        # a 2-byte row count (a block holds at most _ROW_BLOCK rows): no buffer of their own.
        self._rows = RowEncoder(_ROW_BLOCK, self._out, _ROWS_AT)
        self._in_profile = False
        self._f = None
        self._s = Session(seq)

    def _start(self, meter_id, plan, device_time, meter_time):
        s = self._s
        s.meter, s.plan, s.device_time, s.meter_time = meter_id, plan, device_time, meter_time
        try:
            self._f = self.store.fs.open(self.store._path(self.seq), "wb")
        except OSError as e:
            raise _err("cannot create session file (%s)" % e, "file")
        try:
            self._record(T_HEAD, (meter_id, plan, device_time, meter_time))
            self._sync()  # the session is visible (and will be sealed after a cut) from here on
        except StoreError:
            self.discard()
            raise

    def _check_open(self):
        if self._f is None:
            raise _err("session already finished", "writer")

    def _room(self, need):
        if len(self._out) - self._n < need:
            self._write_out()

    def _record(self, rtype, items):
        self._room(HEADER_SIZE + MAX_PAYLOAD + CRC_SIZE)
        self._n = encode_record(self._out, self._n, rtype, self.seq, items)
        self._s.records += 1

    def _write_out(self, start=0):
        if self._n <= start:
            self._n = 0
            return
        try:
            if IS_MICROPYTHON:  # stream write(buf, off, len): no slice object
                self._f.write(self._out, start, self._n - start)
            else:
                self._f.write(memoryview(self._out)[start:self._n])
        except OSError as e:
            raise _err("write failed (%s): store full? download first" % e, "write")
        self._unsynced += self._n - start
        self._n = 0
        if self._unsynced >= _SYNC_BYTES:
            self._sync()

    def _sync(self):
        self._write_out()
        try:
            self._f.flush()
        except OSError as e:
            raise _err("flush failed (%s): store full? download first" % e, "write")
        self._unsynced = 0

    def _flush_rows(self):
        # The rows sit in place at _ROWS_AT (the buffer holds nothing else during a profile):
        # the count varint goes right before them and the record header before that, so the
        # record starts at 0 or 1 and is written out from there at once.
        r = self._rows
        if not r.rows:
            return
        out = self._out
        p = _ROWS_AT - (1 if r.rows < 0x80 else 2)
        start = p - HEADER_SIZE
        begin_record(out, start, T_ROWS, self.seq)
        put_uvarint(out, p, _ROWS_AT, r.rows)
        self._n = end_record(out, start, r.off)
        self._s.records += 1
        self._s.rows += r.rows
        r.clear()
        self._write_out(start)
        if self.store.watch is not None:
            self.store.watch()

    def value(self, obis, value, scaler=None, unit=None):
        """Store a register value: OBIS text, value (int/str/bytes/float/None), scaler, unit code or text."""
        self._check_open()
        self._end_profile()
        self._record(T_VALUE, (obis, value, scaler, unit))
        self._s.values += 1

    def event(self, time, code, text=None):
        """Store a meter event: time (epoch s or None), event code, optional text."""
        self._check_open()
        self._end_profile()
        self._record(_T_EVENT, (time, code, text))
        self._s.events += 1

    def profile_begin(self, obis, columns, capture_period_s=None, first_time=None):
        """Start a profile: ``columns`` = sequence of OBIS texts or (obis, scaler, unit) tuples.

        Rows then follow with :meth:`row`. The clock column is not among ``columns``.
        """
        self._check_open()
        self._end_profile()
        cols = []
        for c in columns:
            if isinstance(c, str):
                cols.extend((c, None, None))
            else:
                if len(c) != 3:
                    raise _err("a column is obis or (obis, scaler, unit)", "columns")
                cols.extend(c)
        ncols = len(cols) // 3
        if ncols > _MAX_COLUMNS:
            raise _err("more than %d columns" % _MAX_COLUMNS, "columns")
        if capture_period_s is not None and (not isinstance(capture_period_s, int) or capture_period_s < 0):
            raise _err("bad capture period", "period")
        if first_time is not None and not isinstance(first_time, int):
            raise _err("bad first time", "first_time")
        self._record(_T_PROFILE, [obis, capture_period_s, first_time, ncols] + cols)
        self._write_out()  # the rows are encoded into the (now empty) record buffer
        self._rows.reset(ncols, capture_period_s, first_time)
        self._in_profile = True
        self._s.profiles += 1

    def row(self, clock, cols):
        """Append one profile row: clock (epoch s, or None = previous + capture period), int columns."""
        self._check_open()
        if not self._in_profile:
            raise _err("row outside a profile", "row")
        if self._n:  # a record staged since the last row: out of the way of the rows
            self._write_out()
        r = self._rows
        if not r.room():
            self._flush_rows()
        r.add(clock, cols)

    def _end_profile(self):
        if self._in_profile:
            self._flush_rows()

    def commit(self, outcome=COMPLETE, error=None):
        """Finish the session with a COMMIT record (``complete`` or ``incomplete``); return its summary."""
        self._check_open()
        if outcome not in (COMPLETE, INCOMPLETE):
            raise _err("outcome is complete or incomplete", "outcome")
        self._end_profile()
        s = self._s
        self._room(HEADER_SIZE + MAX_PAYLOAD + CRC_SIZE)
        self._n = encode_record(self._out, self._n, _T_COMMIT, self.seq,
                                (0 if outcome == COMPLETE else 1, error, s.records, s.rows))
        try:
            self._sync()
            self._close()
        except (StoreError, OSError) as e:
            # Not committed: the file is left for the next mount to seal as interrupted.
            self.discard()
            if isinstance(e, StoreError):
                raise
            raise _err("commit failed (%s)" % e, "write")
        s.records += 1
        s.size = self._written
        s.sealed = True
        s.complete = outcome == COMPLETE
        s.error = error
        s.downloaded = False
        self.store._committed(self, s)
        return s

    def abort(self, error):
        """Finish the session as *incomplete* with ``error`` text (the attempt stays visible)."""
        return self.commit(INCOMPLETE, str(error))

    def _close(self):
        f = self._f
        self._f = None
        try:
            self._written = f.tell()
        except (OSError, AttributeError):
            self._written = _file_size(self.store.fs, self.store._path(self.seq))
        f.close()

    def discard(self):
        """Close the file without a COMMIT (tests; the next mount seals it as interrupted)."""
        f = self._f
        self._f = None
        self.store._committed(self, None)
        if f is not None:
            try:
                f.close()
            except OSError:
                pass
