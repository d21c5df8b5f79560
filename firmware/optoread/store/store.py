"""Power-cut-safe on-device store for reading sessions: :class:`Store` (the package's top).

Sessions are files of append-only CRC-32 records (:mod:`.records`). A session is *committed*
iff its file ends with a COMMIT record whose CRC verifies; the COMMIT says whether the reading
was complete or incomplete (with an error text). On :meth:`Store.mount` every session file is
scanned; a file without a COMMIT (power cut while reading) is trimmed to its last whole record
and sealed with an *incomplete* COMMIT, so it is never mistaken for a complete reading. Files
that never got their first record are removed. LittleFS makes each ``flush()`` atomic; the
record CRCs also protect stores on FAT or a host file system, where an append can be torn.
Bit rot is told from a torn tail: records after bytes that no longer verify are still read
when they verify, and a session whose COMMIT verifies is never trimmed: it is listed as damaged
(``Session.damaged``, the count in its error text). A session file that cannot be read at all
(an unreadable flash block) is renamed ``NNNNNNNN.bad`` and listed as a damaged session; the
mount never raises for one file (``MountReport.damaged``, ``MountReport.unreadable``).

Acknowledgements (the laptop confirmed receipt of sessions up to N) are appended to
``<root>/acks`` as ACK records; the last valid one counts. :meth:`Store.reclaim` deletes
acknowledged sessions oldest first and never an unacknowledged one.

This module holds the index of committed sessions, space and reclaim, and starts a
:class:`~.writer.Writer` (:mod:`.writer`). The mount (:mod:`.mount`, with :mod:`.decode`) is
loaded by :meth:`Store.mount` and dropped after it: a reading only writes. Reading sessions back,
listings and acks (:mod:`.query`) are loaded when first asked for ("loaded on first use" in
docs/architecture.md): a reading and the mount never load them (RAM).

The file system is reached through a tiny interface (see :class:`OsFs`):
``open(path, mode)``, ``listdir(path)``, ``mkdir(path)``, ``remove(path)``,
``rename(old, new)``, ``free(path) -> bytes``. ``OsFs`` maps it onto ``os`` (a
VfsLfs2 mounted on the board, or a directory on a host); the laptop tools
adapt littlefs-python to it to decode a raw flash dump.
"""

import struct

from optoread.compat import const, unload
from optoread.errors import OptoreadError, StoreError
from optoread.store.records import ACKS, CRC_SIZE, HEADER_SIZE, MAX_PAYLOAD, SUFFIX, T_ACK, TMP, encode_record
from optoread.store.writer import Session, Writer

# The store's index in RAM: one fixed entry per committed session (seq, size, device and meter
# time, rows, records, values, events, profiles, flags, ids of meter, plan and error in a table
# of the distinct ones, damaged stretches). ~53 bytes a session instead of a summary object
# (~400 bytes on 64-bit):
# a store of hundreds of sessions leaves the heap to the reading. Summaries are made on demand.
_ENTRY = "<IIqqIIIIIBHHHH"
_ENTRY_SIZE = const(53)
_F_SEALED = const(1)
_F_COMPLETE = const(2)
_F_DT = const(4)  # device time present (else None) ...
_F_MT = const(8)  # ... meter time present
_F_DT_ID = const(16)  # ... not an int: its field is an id in the table
_F_MT_ID = const(32)
_F_BAD = const(64)  # the file was unreadable at the mount: quarantined as NNNNNNNN.bad (or left)
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
        """Free bytes on the file system holding ``path``.

        LittleFS's free count is its size less the blocks in use, and that use can be counted
        above the size on a full file system: the difference wraps (4294967xxx blocks, 17.6 TB,
        on the 64-bit port; a negative small int on a 32-bit board). A count outside 0..size is
        such a wrap: 0 bytes free.
        """
        st = self._os.statvfs(path)
        avail = st[4]
        if avail < 0 or avail > st[2]:
            return 0
        return (st[1] or st[0]) * avail


# ---------------------------------------------------------------- the store


class MountReport:
    """What :meth:`Store.mount` found: listed ``sessions``, ``torn`` sessions (sealed as interrupted),
    ``trimmed_bytes``, ``removed`` files, ``damaged`` sessions (records that no longer verify:
    kept, listed with the count) and ``unreadable`` session files (quarantined as ``.bad``, listed
    as damaged)."""

    def __init__(self, sessions, trimmed_bytes, torn, removed, damaged=0, unreadable=0):
        self.sessions = sessions
        self.trimmed_bytes = trimmed_bytes
        self.torn = torn
        self.removed = removed
        self.damaged = damaged
        self.unreadable = unreadable

    def __repr__(self):
        return ("MountReport(sessions=%d, trimmed_bytes=%d, torn=%d, removed=%d, damaged=%d, "
                "unreadable=%d)") % (
            self.sessions, self.trimmed_bytes, self.torn, self.removed, self.damaged, self.unreadable)


class Store:
    """Sessions of meter readings in append-only files under ``root``.

    ``fs`` is the file-system interface (default :class:`OsFs`); ``reserve`` is
    the free space (bytes) :meth:`begin` insists on, reclaiming acknowledged
    sessions to get it. A session being written always leaves room for its COMMIT (the writer
    refuses data below 12 KB free: "store full: session stopped ...").
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
        self.clear_index()
        self.acked_up_to = 0
        self.next_seq = 1
        self._writer = None
        # The one record buffer: mount, queries and acks use it, and the Writer stages its records
        # in it (the store is idle while a session is being written: see check_idle).
        self.record_buf = bytearray(HEADER_SIZE + MAX_PAYLOAD + CRC_SIZE)
        self.mounted = False
        # What the modules below this one (mount, query, writer) work with besides the public API:
        # record_buf, acked_up_to, next_seq, session_path, exists_dir, need_mount, check_idle,
        # clear_index, index_add, seq_at, write_acks, on_committed. Not for callers of the store.

    # -- paths
    def session_path(self, seq, suffix=SUFFIX):
        return "%s/%08d%s" % (self.root, seq, suffix)

    def exists_dir(self):
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
        self.check_idle()
        from optoread.store import mount as store_mount  # once per boot: dropped again below (RAM)

        try:
            return MountReport(*store_mount.mount(self, repair))
        finally:
            # A reading never decodes: neither module's code stays on the heap for it.
            # (query, when loaded, keeps its own reference to decode.)
            unload("store.mount")
            unload("store.decode")

    def write_acks(self, acked):
        """Rewrite the acks file as one record (atomically via rename)."""
        buf = self.record_buf
        n = encode_record(buf, 0, T_ACK, 0, (acked,))
        tmp = self.root + "/" + ACKS + TMP
        with self.fs.open(tmp, "wb") as f:
            f.write(memoryview(buf)[:n])
            f.flush()
        self.fs.rename(tmp, self.root + "/" + ACKS)

    def need_mount(self):
        if not self.mounted:
            raise StoreError("store not mounted", "store")

    def check_idle(self):
        # The record buffer is the open Writer's while a session is being written.
        if self._writer is not None:
            raise StoreError("a session is being written: finish it first", "writer")

    # -- queries
    def sessions(self, meter=None, downloaded=None, since=None, until=None):
        """Iterate over session summaries (oldest first), optionally filtered.

        ``meter``: meter id; ``downloaded``: True/False; ``since``/``until``: device time range
        (epoch seconds, inclusive).
        """
        from optoread.store import query as store_query  # loaded only when it is asked for (RAM)

        return store_query.sessions(self, meter, downloaded, since, until)

    def session(self, seq):
        """The summary of session ``seq`` (a new :class:`Session`); StoreError if there is none."""
        for i in range(self.count()):
            if self.seq_at(i) == seq:
                return self.summary(i)
        raise StoreError("no session %d" % seq, "seq")

    def count(self):
        """Number of sessions the store lists (:meth:`sessions` without filters)."""
        return len(self._index) // _ENTRY_SIZE

    def summary(self, i):
        """The :class:`Session` summary of the ``i``-th session (oldest first), made from the index."""
        return self._unpack(self._index, self._table, i)

    def _unpack(self, index, table, i):
        seq, size, dt, mt, rows, records, values, events, profiles, flags, meter, plan, error, dmg = \
            struct.unpack_from(_ENTRY, index, i * _ENTRY_SIZE)
        s = Session(seq)
        s.damaged = dmg
        s.size, s.rows, s.records = size, rows, records
        s.values, s.events, s.profiles = values, events, profiles
        s.sealed = bool(flags & _F_SEALED)
        s.complete = bool(flags & _F_COMPLETE)
        s.device_time = (table[dt] if flags & _F_DT_ID else dt) if flags & _F_DT else None
        s.meter_time = (table[mt] if flags & _F_MT_ID else mt) if flags & _F_MT else None
        s.meter = None if meter == _NO_ID else table[meter]
        s.plan = None if plan == _NO_ID else table[plan]
        s.error = None if error == _NO_ID else table[error]
        s.downloaded = seq <= self.acked_up_to
        return s

    def clear_index(self):
        self._index = bytearray()
        self._table = []

    def seq_at(self, i):
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
            raise StoreError("too many distinct meter ids, plans and errors for the index", "index")
        t.append(v)
        return len(t) - 1

    def _time(self, v, present, as_id):
        # (field, flags) of a device or meter time in an index entry
        if v is None:
            return 0, 0
        if isinstance(v, int) and not isinstance(v, bool) and -(1 << 63) <= v < (1 << 63):
            return v, present
        return self._id(v), present | as_id

    def index_add(self, s, flags=0):
        """Append the summary ``s`` of a session newer than every indexed one to the index
        (``flags`` 64: its file was unreadable at the mount, see :meth:`mount`)."""
        dt, f1 = self._time(s.device_time, _F_DT, _F_DT_ID)
        mt, f2 = self._time(s.meter_time, _F_MT, _F_MT_ID)
        flags |= f1 | f2 | (_F_SEALED if s.sealed else 0) | (_F_COMPLETE if s.complete else 0)
        self._index += struct.pack(_ENTRY, s.seq, s.size, dt, mt, s.rows, s.records, s.values, s.events,
                                   s.profiles, flags, self._id(s.meter), self._id(s.plan),
                                   self._id(s.error), min(s.damaged, 0xFFFF))

    def read(self, seq, sink):
        """Stream session ``seq`` back: ``sink(kind, data)`` for each record, in order.

        kinds: ``"head"`` (meter, plan, device_time, meter_time), ``"value"`` (obis, value,
        scaler, unit[, time]: the fifth only when the value has its own time), ``"event"`` (time,
        code, text), ``"profile"`` (obis, period, first_time,
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
        return self.acked_up_to

    def free_space(self):
        """Free bytes on the file system; -1 when it cannot count them (LittleFS counts the blocks
        in use by reading every file's block list: an unreadable block makes that fail). The store
        then goes on as if there were room: a full flash still fails the writes, as a StoreError."""
        try:
            return self.fs.free(self.root)
        except OSError:
            return -1

    # space() and reclaim() stay here although they are queries: the boot banner (main.py) and
    # begin() call them, and moving them would load the query module on every boot or full store.
    def space(self):
        """Space accounting: dict of free bytes, stored/unacknowledged/reclaimable bytes, counts."""
        self.need_mount()
        stored = unacked = reclaimable = 0
        n_unacked = 0
        n = self.count()
        for i in range(n):
            seq, size = struct.unpack_from("<II", self._index, i * _ENTRY_SIZE)
            stored += size
            if seq <= self.acked_up_to:
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
        self.need_mount()
        n = 0
        while True:
            if need is not None and not 0 <= self.free_space() < need:  # enough, or unknown
                break
            # the oldest session is the first one acknowledged, if any is (acks cover a prefix)
            if not self.count() or self.seq_at(0) > self.acked_up_to:
                break
            seq = self.seq_at(0)
            if self._index[44] & _F_BAD:  # unreadable: quarantined (or left where it was)
                for suffix in (".bad", SUFFIX):
                    try:
                        self.fs.remove(self.session_path(seq, suffix))
                    except OSError:
                        pass
            else:
                self.fs.remove(self.session_path(seq))
            # Drop the entry and rebuild the table from the entries left: errors are often
            # unique, and a device that runs for months must not collect them.
            index, table = self._index, self._table
            self.clear_index()
            for j in range(1, len(index) // _ENTRY_SIZE):
                self.index_add(self._unpack(index, table, j), index[j * _ENTRY_SIZE + 44] & _F_BAD)
            n += 1
        return n

    # -- writing
    def begin(self, meter_id, plan, device_time, meter_time=None, max_bytes=None):
        """Start recording a session; return its :class:`Writer`.

        Reclaims acknowledged sessions if less than ``reserve`` bytes are free;
        raises StoreError "store full: download first" if that is not enough.
        ``max_bytes``: the session's byte cap; past it the writer refuses data with StoreError
        "session cap of N bytes reached" (commit or abort it then).
        """
        self.need_mount()
        if self._writer is not None:
            raise StoreError("a session is already being written", "writer")
        if 0 <= self.free_space() < self.reserve:
            self.reclaim(self.reserve)
            if 0 <= self.free_space() < self.reserve:
                raise StoreError("store full: download first", "space")
        seq = self.next_seq
        w = Writer(self, seq, max_bytes)
        w.begin_session(meter_id, plan, device_time, meter_time)
        self.next_seq = seq + 1
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

    def on_committed(self, w, s):
        self._writer = None
        if s is not None:
            self.index_add(s)
