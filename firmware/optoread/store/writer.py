"""Writing one session: :class:`Writer` (from ``Store.begin``), the delta encoder of its profile
rows (:class:`RowEncoder`) and the :class:`Session` summary it keeps (the mount rebuilds the same
summary from a file, the store's index keeps it).

Load-profile rows are stored compactly: per column the zig-zag varint of the difference to the
previous row (+1; 0 = null); the first column's varint is shifted left by one and its low bit
says whether an explicit clock follows (zig-zag difference to the implied clock = previous clock
+ capture period). A regular 15-minute profile with one energy column costs about 2.3 bytes per
row. A ROWS record's payload is the row count (varint) and the rows. Each ROWS record starts
afresh (format version 2): its first row's columns are differences to 0 and its clock is relative
to the profile's first time (or first clock), so a record decodes without the ones before it.

A session stops taking data, with a StoreError, when the flash is nearly full (room for its
COMMIT is kept: ``_COMMIT_RESERVE`` bytes) or past its byte cap (``Store.begin(max_bytes=)``);
commit() or abort() still succeed after that. (Few new names here: each one is interned on a
board's heap for good, and the reading's working set is measured with them.)
"""

# A Writer's file is None once finished; pyright cannot follow it.
# pyright: reportOptionalOperand=false, reportOptionalMemberAccess=false, reportIndexIssue=false
# pyright: reportArgumentType=false, reportOperatorIssue=false, reportAttributeAccessIssue=false
# pyright: reportGeneralTypeIssues=false, reportCallIssue=false

from optoread.compat import IS_MICROPYTHON, const
from optoread.errors import StoreError
from optoread.store.records import (
    COMPLETE,
    CRC_SIZE,
    HEADER_SIZE,
    INCOMPLETE,
    MAX_PAYLOAD,
    T_HEAD,
    T_ROWS,
    T_VALUE,
    begin_record,
    encode_record,
    end_record,
    put_uvarint,
    zigzag,
)

_MAX_COLUMNS = const(32)  # as in records (private: compiled away)
_MAX_VARINT = const(10)  # as in records (private: compiled away)
_T_COMMIT = const(6)  # as in records (private: compiled away)
_T_EVENT = const(3)  # as in records (private: compiled away)
_T_PROFILE = const(4)  # as in records (private: compiled away)

_ROW_BLOCK = const(512)  # profile rows are flushed to the file in records of at most this payload
_ROWS_AT = const(12)  # where a writer encodes rows in the record buffer: HEADER_SIZE + 2-byte count
_SYNC_BYTES = const(4096)  # flush (LittleFS: commit) at least this often while writing a session
_MAX_ERROR = const(240)  # characters of a COMMIT's error text (UTF-8: <= 960 bytes, one record)
# Free bytes a session being written leaves for its COMMIT: checked at every sync (each 4 KB), so
# this covers what is written until the next check (LittleFS: a block for the rewritten tail, one
# for the data) and the COMMIT's own block.
_COMMIT_RESERVE = const(12288)


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
        self.clear()

    def clear(self):
        """Empty the block buffer (after it was written out); the next block starts afresh."""
        self.off = self.start
        self.rows = 0  # 0: the block's first row comes next (columns against 0, clock from base)
        for i in range(_MAX_COLUMNS):
            self.prev[i] = 0

    def room(self):
        """True if a worst-case row still fits in the block."""
        return self.end - self.off >= (self.ncols + 1) * _MAX_VARINT

    def add(self, clock, cols):
        """Encode one row; ``clock`` is epoch seconds or None (implied), ``cols`` ints or None."""
        ncols = self.ncols
        if len(cols) != ncols:
            raise StoreError("row has %d columns, profile has %d" % (len(cols), ncols), "row")
        # Check first: a row that fails must leave no trace in the delta state.
        for i in range(ncols):
            v = cols[i]
            if v is not None and not isinstance(v, int):
                raise StoreError("profile column %d must be an int" % i, "row")
        # implied: the row's clock when none is given, as an offset from base (None: no clock
        # known yet); pred: what the decoder predicts (at a block's start: base itself)
        rel = self.rel
        base = self.base
        if rel is not None:
            implied = rel + self.period
        else:
            implied = None if base is None else 0
        pred = implied if self.rows else (None if base is None else 0)  # a block's first row: base
        if clock is None:
            rel = implied
        elif not isinstance(clock, int):
            raise StoreError("row clock must be an int", "clock")
        elif base is None:  # the first clock of a profile without first_time: the base
            rel = 0
            base = clock
        else:
            rel = clock - base  # a long int's subtraction: only for rows that carry a clock
        if rel is None or rel == pred:
            explicit = 0
            delta = 0
        elif pred is None:  # the base itself, relative to 0 as the decoder expects
            explicit = 1
            delta = clock
        else:
            explicit = 1
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


# ---------------------------------------------------------------- the session summary


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
        # stretches of records that no longer verify (bit rot; the bytes are in the error text),
        # or 1 for a file that could not be read at all
        self.damaged = 0

    def as_dict(self):
        """The summary as a plain dict (JSON, listings)."""
        from optoread.store import query as store_query  # the query side makes it (RAM: loaded on first use)

        return store_query.as_dict(self)

    def __repr__(self):
        return "Session(%d, %r, %s)" % (self.seq, self.meter, COMPLETE if self.complete else INCOMPLETE)


# ---------------------------------------------------------------- the writer


class Writer:
    """Records one session; obtained from :meth:`Store.begin`. Finish with commit() or abort()."""

    def __init__(self, store, seq, max_bytes=None):
        self.store = store
        self.seq = seq
        self.max_bytes = max_bytes  # the session's byte cap (None: none)
        self._written = 0  # bytes written to the file
        # Free bytes when the session began; what it writes is taken off (below, in _sync). Not
        # statvfs at every sync: LittleFS counts its blocks by walking every file, in C, and deep
        # in a profile's call chain that overran a Pico's stack (bench-is15959 on the emulator).
        self.free = store.free_space()
        self.error = None  # why the session takes no more data (a StoreError's text), or None
        # Room for one record of the largest size: records are written out as the next one
        # needs the room (LittleFS's file cache gathers the small ones into program chunks).
        self._out = store.record_buf  # the store's record buffer: it is idle while we write (Store._idle)
        self._n = 0  # bytes pending in _out
        # Rows are encoded straight into the record buffer, after room for a record header and
        # a 2-byte row count (a block holds at most _ROW_BLOCK rows): no buffer of their own.
        self._rows = RowEncoder(_ROW_BLOCK, self._out, _ROWS_AT)
        self._f = None
        self._s = Session(seq)

    def begin_session(self, meter_id, plan, device_time, meter_time):
        s = self._s
        s.meter, s.plan, s.device_time, s.meter_time = meter_id, plan, device_time, meter_time
        try:
            self._f = self.store.fs.open(self.store.session_path(self.seq), "wb")
        except OSError as e:
            raise StoreError("cannot create session file (%s)" % e, "file")
        try:
            self._record(T_HEAD, (meter_id, plan, device_time, meter_time))
            self._sync()  # the session is visible (and will be sealed after a cut) from here on
        except StoreError:
            self.discard()
            raise

    def _check_open(self):
        # Before data is added: refused once finished, the flash nearly full or the cap passed.
        if self._f is None:
            raise StoreError("session already finished", "writer")
        if self.error is not None:
            raise StoreError(self.error, "space")

    def _record(self, rtype, items, flags=0):
        if len(self._out) - self._n < HEADER_SIZE + MAX_PAYLOAD + CRC_SIZE:
            self._write_out()  # room for one record of the largest size
        self._n = encode_record(self._out, self._n, rtype, self.seq, items, flags)
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
            raise StoreError("write failed (%s): store full? download first" % e, "write")
        before = self._written
        self._written += self._n - start
        self._n = 0
        cap = self.max_bytes
        if cap is not None and self._written >= cap and self.error is None:
            self.error = "session cap of %d bytes reached" % cap
        if before // _SYNC_BYTES != self._written // _SYNC_BYTES:  # another 4 KB written: sync
            self._sync()

    def _sync(self):
        self._write_out()
        try:
            self._f.flush()
        except OSError as e:
            raise StoreError("flush failed (%s): store full? download first" % e, "write")
        # Room for the COMMIT (and what is written until the next check) must stay free: what was
        # free at the start less what was written, in whole 4 KB blocks plus LittleFS's block
        # pointers (-1: the file system could not say; then a full flash fails the writes instead).
        left = self.free - self._written - self._written // 64 - 4096
        if self.error is None and self.free >= 0 and left < _COMMIT_RESERVE:
            self.error = "store full: session stopped, its commit keeps the last %d bytes" % _COMMIT_RESERVE

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
        begin_record(out, start, T_ROWS, self.seq, (self._s.profiles - 1) % 255 + 1)  # the profile's number
        put_uvarint(out, p, _ROWS_AT, r.rows)
        self._n = end_record(out, start, r.off)
        self._s.records += 1
        self._s.rows += r.rows
        r.clear()
        self._write_out(start)
        if self.store.watch is not None:
            self.store.watch()

    def value(self, obis, value, scaler=None, unit=None, time=None):
        """Store a register value: OBIS text, value (int/str/bytes/float/None), scaler, unit code or
        text, and the time the value belongs to when it has its own (ISO 8601 text as the meter
        said it: a maximum demand's capture time)."""
        self._check_open()
        self._end_profile()
        v = (obis, value, scaler, unit)
        self._record(T_VALUE, v if time is None else v + (time,))
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
                    raise StoreError("a column is obis or (obis, scaler, unit)", "columns")
                cols.extend(c)
        ncols = len(cols) // 3
        if ncols > _MAX_COLUMNS:
            raise StoreError("more than %d columns" % _MAX_COLUMNS, "columns")
        if capture_period_s is not None and (not isinstance(capture_period_s, int) or capture_period_s < 0):
            raise StoreError("bad capture period", "period")
        if first_time is not None and not isinstance(first_time, int):
            raise StoreError("bad first time", "first_time")
        tag = self._s.profiles % 255 + 1  # this profile's number (see records): 1-255
        self._record(_T_PROFILE, [obis, capture_period_s, first_time, ncols] + cols, tag)
        self._s.profiles += 1
        self._write_out()  # the rows are encoded into the (now empty) record buffer
        self._rows.reset(ncols, capture_period_s, first_time)

    def row(self, clock, cols):
        """Append one profile row: clock (epoch s, or None = previous + capture period), int columns."""
        self._check_open()
        if not self._s.profiles:
            raise StoreError("row outside a profile", "row")
        if self._n:  # a record staged since the last row: out of the way of the rows
            self._write_out()
        r = self._rows
        if not r.room():
            self._flush_rows()
        r.add(clock, cols)

    def _end_profile(self):
        if self._s.profiles:
            self._flush_rows()

    def commit(self, outcome=COMPLETE, error=None):
        """Finish the session with a COMMIT record (``complete`` or ``incomplete``); return its summary.

        Whatever fails here, the store is free for the next session afterwards (a session not
        committed is sealed as interrupted by the next mount).
        """
        if self._f is None:
            raise StoreError("session already finished", "writer")
        if outcome not in (COMPLETE, INCOMPLETE):
            raise StoreError("outcome is complete or incomplete", "outcome")
        if error is not None:
            error = str(error)[:_MAX_ERROR]  # a COMMIT always fits its record
        s = self._s
        try:
            self._end_profile()
            if len(self._out) - self._n < HEADER_SIZE + MAX_PAYLOAD + CRC_SIZE:
                self._write_out()
            self._n = encode_record(self._out, self._n, _T_COMMIT, self.seq,
                                    (0 if outcome == COMPLETE else 1, error, s.records, s.rows))
            self._sync()
            f = self._f
            self._f = None
            f.close()
        except (StoreError, OSError) as e:
            # Not committed: the file is left for the next mount to seal as interrupted.
            self.discard()
            if isinstance(e, StoreError):
                raise
            raise StoreError("commit failed (%s)" % e, "write")
        s.records += 1
        s.size = self._written  # every byte written: the file's size
        s.sealed = True
        s.complete = outcome == COMPLETE
        s.error = error
        s.downloaded = False
        self.store.on_committed(self, s)
        return s

    def abort(self, error):
        """Finish the session as *incomplete* with ``error`` text (the attempt stays visible)."""
        return self.commit(INCOMPLETE, str(error))

    def discard(self):
        """Close the file without a COMMIT (tests; the next mount seals it as interrupted)."""
        f = self._f
        self._f = None
        self.store.on_committed(self, None)
        if f is not None:
            try:
                f.close()
            except OSError:
                pass
