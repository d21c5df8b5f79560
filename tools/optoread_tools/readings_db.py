"""The laptop's readings database (SQLite) and its CSV / JSON exports: data a utility can bill from.

Times. ``device_time`` (and ``device_clock_set``) are the device's clock, UTC epoch seconds, NULL
when the device clock was never set (nothing is invented). Everything the meter said --
``meter_time``, profile clocks, event times -- is METER-LOCAL epoch seconds (seconds since 1970
of the meter's local wall-clock time, not UTC). ``sessions.utc_offset_min`` (minutes east of
UTC, +330 for India) turns them into UTC: ``utc = local - utc_offset_min * 60``; it is NULL when
the session did not say it, and then no UTC time is given anywhere for that session's meter
times. ``utc_offset_source`` says whether the offset came from the meter's clock ("meter") or
from the plan/profile configuration ("configuration"). The exports give each such time as
``..._local`` (ISO 8601, with the offset when known: ``2026-01-31T00:00:00+05:30``, else without
one) and ``..._utc`` (``2026-01-30T18:30:00Z``, empty when the offset is unknown).

Tables (schema version 2; a version-1 database is migrated when opened, see :func:`open_db`):

* ``meters(meter_id, first_seen, last_seen)``
* ``sessions(id, device, seq, meter_id, plan, device_time, meter_time, complete, error, crc, size,
  records, downloaded_at, device_id, device_clock_source, device_clock_set, meter_ldn,
  meter_id_source, meter_expected, meter_clock, meter_clock_status, utc_offset_min,
  utc_offset_source)`` -- unique on ``(device, seq, crc)``: a session downloaded twice is
  stored once, and a device whose numbering restarted (store erased) still gets new rows. The
  columns after ``downloaded_at`` are lifted from the session's reserved values
  (:data:`SESSION_FACTS`): the device's id and where its clock came from ("laptop", "console",
  "unknown") and when it was set (UTC epoch); the meter's logical device name, where the meter id
  came from, the id the user expected (only when the wrong meter was at the probe), the meter
  clock as the meter said it (ISO text, or hex of the 12 octets when its date-time was invalid),
  its status byte, and the UTC offset with its source.
* ``session_raw(session_id, data)`` -- the session's record bytes exactly as the device stored
  them (CRC-checked end to end), so it can be decoded again by a later decoder (:func:`redecode`).
* ``register_values(id, session_id, obis, value, scaler, unit, unit_code, scaled, time_local,
  time_utc)`` -- ``value`` keeps its stored type (INTEGER, REAL, TEXT, BLOB or NULL; an integer
  outside SQLite's 64 bits is stored as its decimal TEXT); ``unit`` is the unit's symbol (DLMS
  code resolved, mode C text as read), ``unit_code`` the DLMS code when there was one; ``scaled``
  = value * 10**scaler for numbers (numeric text from mode C readouts is parsed). A DLMS number
  stored with neither scaler nor unit has ``scaled`` NULL and ``unit`` "unknown": its scale is
  not known, and none is guessed. ``time_local`` is the value's own time as the meter said it (a
  maximum demand's capture time), ``time_utc`` that time in UTC: from its own offset, else from
  the session's, else NULL. The session facts (:data:`SESSION_FACTS`) are rows here too.
* ``profiles(id, session_id, obis, capture_period, first_time, columns_json)`` -- ``columns_json``
  is ``[[obis, scaler, unit], ...]`` for the value columns (the clock is not a column).
* ``profile_rows(id, profile_id, clock, values_json)`` -- one row per profile entry, the raw
  (unscaled) column values as a JSON array with null for missing values. JSON rather than one SQL
  column per value because profiles have 1..32 columns of differing meaning.
* ``events(id, session_id, time, time_local, time_utc, code, name, category, profile, text,
  snapshot_json)`` -- the events of every event profile (``0.0.99.98.x.255``, decoded by
  :mod:`optoread_tools.is15959_events` when it is installed) with their snapshot values, scaled
  (``snapshot_json``: ``[{"obis", "value", "scaler", "unit", "unit_code", "scaled"}, ...]``);
  plus the EVENT records a session holds, as they are (``time``, ``code``, ``text``).
* ``staging(device, seq, crc, off, data)`` -- verified bytes of a session whose download was cut;
  deleted in the same transaction that inserts the session.

CSV export (``export_csv(db, dir)``): ``meters.csv``, ``sessions.csv``, ``register_values.csv``,
``profile_rows.csv`` (long format: one line per row and column, with the column's OBIS, the raw
value, scaler, unit and the scaled value, and the row's clock local and UTC), ``events.csv``.
Byte values are written as hex. JSON export (``export_json(db, path)``): ``{"schema": 2,
"sessions": [{..., "values": [...], "profiles": [{..., "columns": [[obis, scaler, unit], ...],
"column_info": [{obis, scaler, unit, unit_code}], "rows": [[clock, v1, ...], ...], "scaled":
[[s1, ...], ...], "clock_local": [...], "clock_utc": [...]}], "events": [...]}]}``.
"""

import csv
import json
import os
import re
import sqlite3
import time

from optoread import units
from optoread.crc import crc32
from optoread.errors import StoreError
from optoread.store import decode as sd
from optoread.store import records as sr

SCHEMA_VERSION = 2

# Reserved VALUE names (session facts, not meter registers) -> the sessions column they fill.
SESSION_FACTS = {
    "device.id": "device_id",
    "device.clock": "device_clock_source",
    "device.clock_set": "device_clock_set",
    "meter.id_source": "meter_id_source",
    "meter.expected": "meter_expected",
    "0.0.42.0.0.255": "meter_ldn",
    "meter.utc_offset": "utc_offset_min",
    "meter.utc_offset_source": "utc_offset_source",
    "meter.clock_status": "meter_clock_status",
    "0.0.1.0.0.255": "meter_clock",
}
# The sessions columns added by schema 2 (in this order, after ``downloaded_at``).
_FACT_COLUMNS = (
    ("device_id", "TEXT"), ("device_clock_source", "TEXT"), ("device_clock_set", "INTEGER"),
    ("meter_ldn", "TEXT"), ("meter_id_source", "TEXT"), ("meter_expected", "TEXT"), ("meter_clock", "TEXT"),
    ("meter_clock_status", "INTEGER"), ("utc_offset_min", "INTEGER"), ("utc_offset_source", "TEXT"),
)
_INT_FACTS = ("device_clock_set", "meter_clock_status", "utc_offset_min")
_MAX_OFFSET_MIN = 18 * 60  # a UTC offset beyond +-18:00 is no time zone: treated as unknown
UNKNOWN_UNIT = "unknown"

SCHEMA = """
CREATE TABLE IF NOT EXISTS meters (
    meter_id TEXT PRIMARY KEY,
    first_seen TEXT,
    last_seen TEXT
);
CREATE TABLE IF NOT EXISTS sessions (
    id INTEGER PRIMARY KEY,
    device TEXT NOT NULL,
    seq INTEGER NOT NULL,
    meter_id TEXT,
    plan TEXT,
    device_time INTEGER,
    meter_time INTEGER,
    complete INTEGER NOT NULL,
    error TEXT,
    crc TEXT NOT NULL,
    size INTEGER NOT NULL,
    records INTEGER,
    downloaded_at TEXT NOT NULL,
    %s,
    UNIQUE (device, seq, crc)
);
CREATE TABLE IF NOT EXISTS session_raw (
    session_id INTEGER PRIMARY KEY REFERENCES sessions(id) ON DELETE CASCADE,
    data BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS register_values (
    id INTEGER PRIMARY KEY,
    session_id INTEGER NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
    obis TEXT,
    value,
    scaler INTEGER,
    unit TEXT,
    unit_code INTEGER,
    scaled REAL,
    time_local TEXT,
    time_utc TEXT
);
CREATE TABLE IF NOT EXISTS profiles (
    id INTEGER PRIMARY KEY,
    session_id INTEGER NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
    obis TEXT,
    capture_period INTEGER,
    first_time INTEGER,
    columns_json TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS profile_rows (
    id INTEGER PRIMARY KEY,
    profile_id INTEGER NOT NULL REFERENCES profiles(id) ON DELETE CASCADE,
    clock INTEGER,
    values_json TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY,
    session_id INTEGER NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
    time INTEGER,
    time_local TEXT,
    time_utc TEXT,
    code INTEGER,
    name TEXT,
    category TEXT,
    profile TEXT,
    text TEXT,
    snapshot_json TEXT
);
CREATE TABLE IF NOT EXISTS staging (
    device TEXT NOT NULL,
    seq INTEGER NOT NULL,
    crc TEXT NOT NULL,
    off INTEGER NOT NULL,
    data BLOB NOT NULL,
    PRIMARY KEY (device, seq, off)
);
CREATE INDEX IF NOT EXISTS register_values_session ON register_values(session_id);
CREATE INDEX IF NOT EXISTS profiles_session ON profiles(session_id);
CREATE INDEX IF NOT EXISTS profile_rows_profile ON profile_rows(profile_id);
CREATE INDEX IF NOT EXISTS events_session ON events(session_id);
""" % ",\n    ".join("%s %s" % c for c in _FACT_COLUMNS)

# Tables holding what is decoded from session_raw: re-created by the migration from schema 1.
_DERIVED = ("profile_rows", "profiles", "events", "register_values")

_INT64 = (-(1 << 63), (1 << 63) - 1)
TABLES = ("meters", "sessions", "session_raw", "register_values", "profiles", "profile_rows", "events",
          "staging")
_SQLITE_MAGIC = b"SQLite format 3\x00"
_EVENT_PROFILE = re.compile(r"0\.0\.99\.98\.\d{1,3}\.255\Z")


class NotReadingsDb(ValueError):
    """The file is not an optoread readings database (nor empty): it is never written to."""


def check_db(path):
    """Raise NotReadingsDb unless ``path`` is missing, empty, an SQLite database without tables, or
    optoread's own database (every table of :data:`TABLES`, ``user_version`` at most ours: an older
    one is migrated by :func:`open_db`)."""
    if path == ":memory:":
        return
    try:
        size = os.stat(path).st_size
    except FileNotFoundError:
        return
    if os.path.isdir(path):
        raise NotReadingsDb("%s is a folder, not a readings database" % path)
    if size == 0:
        return
    with open(path, "rb") as f:
        head = f.read(len(_SQLITE_MAGIC))
    if head != _SQLITE_MAGIC:
        raise NotReadingsDb("%s is not an optoread readings database (not even SQLite)" % path)
    from urllib.parse import quote

    try:
        db = sqlite3.connect("file:%s?mode=ro" % quote(os.path.abspath(path)), uri=True)
        try:
            tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            version = db.execute("PRAGMA user_version").fetchone()[0]
        finally:
            db.close()
    except sqlite3.DatabaseError as e:
        raise NotReadingsDb("%s is not a readable SQLite database (%s)" % (path, e)) from None
    if not tables and version == 0:
        return  # an empty database: nothing of anyone's to lose
    if not set(TABLES) <= tables:
        raise NotReadingsDb("%s is not an optoread readings database" % path)
    if version > SCHEMA_VERSION:
        raise NotReadingsDb("%s was written by a newer optoread (schema %d; this one knows %d)"
                            % (path, version, SCHEMA_VERSION))


def _statements(script):
    return [s.strip() for s in script.split(";") if s.strip()]


def open_db(path):
    """Open (creating if needed) the readings database at ``path``; return the connection.

    Raises NotReadingsDb (before writing anything) for a file that is not one (:func:`check_db`).
    A schema-1 database is migrated in one transaction (:func:`_migrate`): a failure leaves it
    exactly as it was.
    """
    check_db(path)
    db = sqlite3.connect(path, isolation_level=None)  # explicit BEGIN/COMMIT below
    try:
        db.execute("PRAGMA foreign_keys = ON")
        try:
            db.execute("PRAGMA journal_mode = WAL")
        except sqlite3.DatabaseError:
            pass  # e.g. a file system without shared memory: the default journal is fine
        db.execute("PRAGMA synchronous = FULL")  # a commit must survive a power cut before we ack
        if db.execute("PRAGMA user_version").fetchone()[0] < SCHEMA_VERSION:
            _migrate(db)
    except BaseException:
        db.close()
        raise
    return db


def _migrate(db):
    """Create the schema in a new database, or bring a schema-1 one to this schema: the sessions
    table gets the fact columns, the tables derived from ``session_raw`` are re-created and every
    session is decoded again from its raw bytes. One transaction."""
    db.execute("BEGIN IMMEDIATE")
    try:
        version = db.execute("PRAGMA user_version").fetchone()[0]
        if version >= SCHEMA_VERSION:  # another process migrated it meanwhile
            db.execute("COMMIT")
            return
        tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        old = "sessions" in tables
        if old:
            have = {r[1] for r in db.execute("PRAGMA table_info(sessions)")}
            for name, sqltype in _FACT_COLUMNS:
                if name not in have:
                    db.execute("ALTER TABLE sessions ADD COLUMN %s %s" % (name, sqltype))
            for t in _DERIVED:
                db.execute("DROP TABLE IF EXISTS %s" % t)
        for stmt in _statements(SCHEMA):
            db.execute(stmt)
        if old:
            _rebuild(db)
        db.execute("PRAGMA user_version = %d" % SCHEMA_VERSION)
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise


def redecode(db):
    """Decode every stored session again from ``session_raw`` (e.g. once a newer decoder or the
    event-profile decoder is installed): the derived tables and the sessions' decoded columns are
    replaced, in one transaction. Returns the number of sessions decoded."""
    db.execute("BEGIN IMMEDIATE")
    try:
        for t in _DERIVED:
            db.execute("DELETE FROM %s" % t)
        n = _rebuild(db)
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise
    return n


def _rebuild(db):
    """(Inside a transaction, the derived tables empty.) Decode each session from its raw bytes."""
    n = 0
    ids = db.execute("SELECT id, seq, downloaded_at FROM sessions ORDER BY id").fetchall()
    for sid, seq, downloaded_at in ids:
        r = db.execute("SELECT data FROM session_raw WHERE session_id = ?", (sid,)).fetchone()
        if r is None:
            continue  # (never so: every session is inserted with its raw bytes)
        data = bytes(r[0])  # one session's bytes in memory at a time
        try:
            dec = decode_session(data, seq)
        except StoreError as e:
            # Still not decodable: the head columns stay as they were, the error says why.
            db.execute("UPDATE sessions SET complete = 0, error = ? WHERE id = ?",
                       ("cannot decode: %s" % e, sid))
            continue
        cols = _session_columns(dec)
        db.execute("UPDATE sessions SET %s WHERE id = ?" % ", ".join("%s = ?" % k for k in cols),
                   tuple(cols.values()) + (sid,))
        if cols["meter_id"] is not None:
            _meter_seen(db, cols["meter_id"], downloaded_at)
        _insert_contents(db, sid, dec, cols["utc_offset_min"])
        n += 1
    return n


def crc_text(c):
    """The canonical text of a CRC-32 (8 lower-case hex digits)."""
    return "%08x" % (c & 0xFFFFFFFF)


# ---------------------------------------------------------------- decoding session bytes


class DecodedSession:
    """A session decoded from its raw record bytes with the firmware's own record parser."""

    def __init__(self):
        self.head = None  # (meter, plan, device_time, meter_time)
        self.values = []  # (obis, value, scaler, unit, time)
        self.events = []  # (time, code, text)
        self.profiles = []  # [obis, period, first_time, columns, rows=[(clock, cols)]]
        self.commit = None  # (outcome, error, records, rows)
        self.records = 0


def decode_session(data, seq=None):
    """Decode one session's raw bytes (as ``Store.read_raw`` gives them) into a DecodedSession.

    Every record's CRC, type and session number is checked; raises StoreError on anything
    malformed (the caller already verified the whole-session CRC, so that means a device bug).
    """
    mv = memoryview(data)
    end = len(data)
    off = 0
    out = DecodedSession()
    rows = sd.RowDecoder()
    cur = None
    while off < end:
        rtype, _flags, rseq, pay, nxt = sd.check_record(mv, off, end)
        if seq is not None and rseq != seq:
            raise StoreError("record of session %d inside session %d" % (rseq, seq), "seq", off)
        if out.commit is not None:
            raise StoreError("record after the commit", "record", off)
        if out.records == 0 and rtype != sr.T_HEAD:
            raise StoreError("session does not start with a head record", "type", off)
        if rtype == sr.T_ROWS:
            if cur is None:
                raise StoreError("rows outside a profile", "rows", off)
            rows.block(mv, pay, nxt - sr.CRC_SIZE, lambda clock, cols, r=cur[4]: r.append((clock, cols)))
        else:
            kind, d = sd.decode_payload(rtype, mv, pay, nxt - sr.CRC_SIZE)
            if kind == "head":
                if out.head is not None:
                    raise StoreError("second head record", "type", off)
                out.head = d
            elif kind == "value":
                out.values.append(tuple(d[:5]) + (None,) * (5 - len(d)))
            elif kind == "event":
                out.events.append(d)
            elif kind == "profile":
                cur = [d[0], d[1], d[2], d[3], []]
                out.profiles.append(cur)
                rows.reset(len(d[3]), d[1], d[2])
            elif kind == "commit":
                out.commit = d
            else:
                raise StoreError("unexpected %s record in a session" % kind, "type", off)
        out.records += 1
        off = nxt
    if out.head is None:
        raise StoreError("empty session", "record", 0)
    if out.commit is None:
        # The device lists sealed sessions only; an unsealed one can only be an interrupted read.
        out.commit = (sr.INCOMPLETE, sr.INTERRUPTED, out.records, sum(len(p[4]) for p in out.profiles))
    return out


# ---------------------------------------------------------------- times


def _is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


def _fmt(epoch):
    """``YYYY-MM-DDTHH:MM:SS`` of epoch seconds read as UTC, or None."""
    if not _is_int(epoch):
        return None
    try:
        t = time.gmtime(epoch)
    except (OverflowError, OSError, ValueError):
        return None
    if not 0 < t.tm_year <= 9999:
        return None
    return "%04d-%02d-%02dT%02d:%02d:%02d" % t[:6]


def offset_text(minutes):
    """``+05:30`` / ``-03:00`` / ``+00:00`` for an offset in minutes east of UTC."""
    sign = "+" if minutes >= 0 else "-"
    m = abs(minutes)
    return "%s%02d:%02d" % (sign, m // 60, m % 60)


def utc_iso(epoch):
    """ISO text (``...Z``) of a UTC epoch (the device's clock), or None."""
    t = _fmt(epoch)
    return None if t is None else t + "Z"


def local_iso(local_epoch, offset_min):
    """ISO text of a meter-local epoch: with the offset when it is known, else without one."""
    t = _fmt(local_epoch)
    if t is None or offset_min is None:
        return t
    return t + offset_text(offset_min)


def local_to_utc_iso(local_epoch, offset_min):
    """UTC ISO text (``...Z``) of a meter-local epoch, or None when the offset is unknown."""
    if offset_min is None or not _is_int(local_epoch):
        return None
    return utc_iso(local_epoch - offset_min * 60)


_ISO_RE = re.compile(r"(\d{4})-(\d\d)-(\d\d)[T ](\d\d):(\d\d)(?::(\d\d)(\.\d{1,9})?)?"
                     r"(Z|[+-]\d\d(?::?\d\d)?)?\Z")


def parse_iso(text):
    """``(local_epoch, fraction text, offset minutes or None)`` of ISO 8601 date-time text, or None
    (wildcards, invalid dates)."""
    m = _ISO_RE.match(text.strip()) if isinstance(text, str) else None
    if m is None:
        return None
    y, mo, d, h, mi = (int(m.group(i)) for i in range(1, 6))
    s = int(m.group(6) or 0)
    import calendar
    import datetime

    try:
        datetime.datetime(y, mo, d, h, mi, s)
    except ValueError:
        return None
    tz = m.group(8)
    if tz is None:
        off = None
    elif tz == "Z":
        off = 0
    else:
        digits = tz[1:].replace(":", "")
        off = int(digits[:2]) * 60 + int(digits[2:] or 0)
        if off > _MAX_OFFSET_MIN:
            return None
        off = -off if tz[0] == "-" else off
    return calendar.timegm((y, mo, d, h, mi, s, 0, 0, 0)), m.group(7) or "", off


def _value_times(t, session_off):
    """(time_local, time_utc) of a value's own time (ISO text as the meter said it)."""
    if t is None:
        return None, None
    if isinstance(t, (bytes, bytearray, memoryview)):
        return bytes(t).hex(), None
    if _is_int(t):  # not written so; read as a meter-local epoch
        return local_iso(t, session_off), local_to_utc_iso(t, session_off)
    text = str(t)
    p = parse_iso(text)
    if p is None:
        return text, None
    local, frac, off = p
    if off is None:
        off = session_off
    u = local_to_utc_iso(local, off)
    if u is not None and frac.strip(".0"):  # hundredths kept when the meter gave some (not ".00")
        u = u[:-1] + frac + "Z"
    return text, u


def _event_times(t, session_off):
    """(meter-local epoch, time_local, time_utc) of an event's time (epoch or ISO text)."""
    if _is_int(t):
        return _sql_value(t), local_iso(t, session_off), local_to_utc_iso(t, session_off)
    p = parse_iso(t)
    if p is None:
        return None, (None if t is None else str(t)), None
    local, _frac, off = p
    if off is None:
        off = session_off
    return local, local_iso(local, off), local_to_utc_iso(local, off)


# ---------------------------------------------------------------- units and scaling


def _sql_value(v):
    """A stored item as something SQLite keeps losslessly (big integers as decimal text)."""
    if _is_int(v) and not _INT64[0] <= v <= _INT64[1]:
        return str(v)
    if isinstance(v, (bytearray, memoryview)):
        return bytes(v)
    return v


def _scaled(value, scaler):
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        try:
            value = float(value)
        except ValueError:
            return None
        if scaler is None:
            return value
    if not isinstance(value, (int, float)):
        return None
    s = scaler if _is_int(scaler) and -128 <= scaler <= 127 else 0
    try:
        return float(units.apply_scaler(value, s))
    except (OverflowError, ArithmeticError):
        return None


def _unit(unit):
    """(unit symbol text, DLMS unit code or None)."""
    if _is_int(unit):
        return units.unit_name(unit) or str(unit), unit
    if unit is None:
        return None, None
    return str(unit), None


def _is_number(v):
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def unit_scaled(value, scaler, unit, fact=False):
    """``(unit text, unit code, scaled)`` of one stored value.

    A number stored with neither scaler nor unit (a DLMS value whose scale the meter did not give)
    has unit "unknown" and no scaled value. Text from a mode C readout is parsed (``"000671.578"``,
    unit ``"kWh"`` -> 671.578). A session fact (``fact``) is no measurement: not scaled.
    """
    utext, ucode = _unit(unit)
    if fact:
        return utext, ucode, None
    if scaler is None and unit is None and _is_number(value):
        return UNKNOWN_UNIT, None, None
    return utext, ucode, _scaled(value, scaler)


def _column(col):
    """(obis, scaler, unit raw, unit text, unit code, scale unknown) of a profile column."""
    col = tuple(col) + (None,) * (3 - len(col))
    obis, scaler, unit = col[:3]
    if scaler is None and unit is None:
        return obis, None, None, UNKNOWN_UNIT, None, True
    utext, ucode = _unit(unit)
    return obis, scaler, unit, utext, ucode, False


def _cell_scaled(value, column):
    if column[5] or value is None:
        return None
    return unit_scaled(value, column[1], column[2])[2]


# ---------------------------------------------------------------- session facts


def _ident_text(v):
    """An identifier as text: printable ASCII octets as text, other octets as hex (as the firmware's
    ``value_text``)."""
    if isinstance(v, (bytes, bytearray, memoryview)):
        v = bytes(v)
        if v and all(0x20 <= b < 0x7F for b in v):
            return v.decode()
        return v.hex()
    return None if v is None else str(v)


def _facts(values):
    """The sessions fact columns from the reserved values (:data:`SESSION_FACTS`; the first of each)."""
    out = {name: None for name, _t in _FACT_COLUMNS}
    seen = set()
    for v in values:
        col = SESSION_FACTS.get(v[0]) if isinstance(v[0], str) else None
        if col is None or col in seen:
            continue
        seen.add(col)
        x = v[1]
        if col in _INT_FACTS:
            x = x if _is_int(x) and _INT64[0] <= x <= _INT64[1] else None
        else:
            x = _ident_text(x)
        out[col] = x
    off = out["utc_offset_min"]
    if off is None or abs(off) > _MAX_OFFSET_MIN:
        out["utc_offset_min"] = out["utc_offset_source"] = None
    return out


def _session_columns(dec):
    """The decoded columns of a sessions row (everything but device, seq, crc, size, downloaded_at)."""
    meter, plan, device_time, meter_time = dec.head
    outcome, error = dec.commit[0], dec.commit[1]
    cols = {"meter_id": None if meter is None else str(meter), "plan": _sql_value(plan),
            "device_time": _sql_value(device_time), "meter_time": _sql_value(meter_time),
            "complete": 1 if outcome == sr.COMPLETE else 0, "error": _sql_value(error),
            "records": dec.records}
    cols.update(_facts(dec.values))
    return cols


# ---------------------------------------------------------------- inserting


def session_exists(db, device, seq, crc):
    """True if session ``seq`` of ``device`` with this CRC (8-hex text) is already stored."""
    r = db.execute("SELECT 1 FROM sessions WHERE device = ? AND seq = ? AND crc = ?",
                   (device, seq, crc)).fetchone()
    return r is not None


def stored_sessions(db, device):
    """``{seq: crc}`` of every session of ``device`` in the database."""
    out = {}
    for seq, crc in db.execute("SELECT seq, crc FROM sessions WHERE device = ?", (device,)):
        out.setdefault(seq, set()).add(crc)
    return out


def _meter_seen(db, meter, at):
    db.execute("INSERT INTO meters (meter_id, first_seen, last_seen) VALUES (?, ?, ?) "
               "ON CONFLICT(meter_id) DO UPDATE SET"
               " first_seen = min(coalesce(first_seen, excluded.first_seen), excluded.first_seen),"
               " last_seen = max(coalesce(last_seen, excluded.last_seen), excluded.last_seen)",
               (meter, at, at))


def insert_session(db, device, seq, data, crc=None, now=None):
    """Decode ``data`` (the session's raw bytes) and insert it with everything in it, in ONE transaction.

    Deletes the session's staging rows in the same transaction. Returns the new session id, or
    None if ``(device, seq, crc)`` was already stored (nothing is changed then except staging).
    A session whose records cannot be decoded is still stored (raw bytes and an error text), so
    that it can be acknowledged and decoded again later (:func:`redecode`).
    """
    data = bytes(data)
    if crc is None:
        crc = crc_text(crc32(data))
    downloaded_at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now))
    try:
        dec = decode_session(data, seq)
        cols = _session_columns(dec)
    except StoreError as e:
        dec = None
        cols = {"meter_id": None, "plan": None, "device_time": None, "meter_time": None, "complete": 0,
                "error": "cannot decode: %s" % e, "records": None}
        cols.update((name, None) for name, _t in _FACT_COLUMNS)
    db.execute("BEGIN IMMEDIATE")
    try:
        db.execute("DELETE FROM staging WHERE device = ? AND seq = ?", (device, seq))
        if session_exists(db, device, seq, crc):
            db.execute("COMMIT")
            return None
        names = ["device", "seq", "crc", "size", "downloaded_at"] + list(cols)
        sql = "INSERT INTO sessions (%s) VALUES (%s)" % (", ".join(names), ",".join("?" * len(names)))
        cur = db.execute(sql,
                         [device, seq, crc, len(data), downloaded_at] + list(cols.values()))
        sid = cur.lastrowid
        db.execute("INSERT INTO session_raw (session_id, data) VALUES (?, ?)", (sid, data))
        if cols["meter_id"] is not None:
            _meter_seen(db, cols["meter_id"], downloaded_at)
        if dec is not None:
            _insert_contents(db, sid, dec, cols["utc_offset_min"])
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise
    return sid


_ROW_CELL = re.compile(r"^(.+)\[(\d+)\]\.\d+$")  # a profile cell kept as a value: OBIS[row].column


def _insert_contents(db, sid, dec, off):
    rows = []
    for obis, value, scaler, unit, vtime in dec.values:
        utext, ucode, scaled = unit_scaled(value, scaler, unit, fact=obis in SESSION_FACTS)
        tl, tu = _value_times(vtime, off)
        rows.append((sid, _sql_value(obis), _sql_value(value),
                     scaler if _is_int(scaler) and _INT64[0] <= scaler <= _INT64[1] else None,
                     utext, ucode, scaled, tl, tu))
    db.executemany("INSERT INTO register_values (session_id, obis, value, scaler, unit, unit_code, scaled,"
                   " time_local, time_utc) VALUES (?,?,?,?,?,?,?,?,?)", rows)
    events = []
    for t, code, text in dec.events:  # EVENT records, as they are (their time read as the meter's)
        events.append((sid, _sql_value(t), local_iso(t, off), local_to_utc_iso(t, off), _sql_value(code),
                       None, None, None, _sql_value(text), None))
    # Rows whose clock the meter sent as no valid date: the reader kept its 12 octets as a value
    # "OBIS[row].col" and the store implied a clock for the row; the export gives it none.
    bad_clock = set()
    for v in dec.values:
        m = _ROW_CELL.match(str(v[0]))
        if m and isinstance(v[1], (bytes, bytearray)) and len(v[1]) == 12:
            bad_clock.add((m.group(1), int(m.group(2))))
    for obis, period, first, columns, prow in dec.profiles:
        if bad_clock:
            prow = [(None if (obis, k) in bad_clock else clock, vals) for k, (clock, vals) in enumerate(prow)]
        cols = [[_json_value(c) for c in col] for col in columns]
        cur = db.execute("INSERT INTO profiles (session_id, obis, capture_period, first_time, columns_json)"
                         " VALUES (?,?,?,?,?)", (sid, _sql_value(obis), period, first, json.dumps(cols)))
        pid = cur.lastrowid
        db.executemany("INSERT INTO profile_rows (profile_id, clock, values_json) VALUES (?,?,?)",
                       [(pid, _sql_value(clock), json.dumps(list(vals))) for clock, vals in prow])
        if isinstance(obis, str) and _EVENT_PROFILE.match(obis):
            events.extend(_profile_events(sid, obis, columns, prow, off))
    db.executemany("INSERT INTO events (session_id, time, time_local, time_utc, code, name, category,"
                   " profile, text, snapshot_json) VALUES (?,?,?,?,?,?,?,?,?,?)", events)


def _events_from_profile():
    """``is15959_events.events_from_profile``, or None while that module is not installed."""
    import importlib

    try:
        mod = importlib.import_module("optoread_tools.is15959_events")
    except ImportError:
        return None
    return getattr(mod, "events_from_profile", None)


def _profile_events(sid, obis, columns, prow, off):
    """events rows of one event profile (none without the decoder; one "error" row if it fails)."""
    decode = _events_from_profile()
    if decode is None:
        return []
    try:
        got = list(decode(obis, [tuple(c) for c in columns], [(clock, list(vals)) for clock, vals in prow]))
    except Exception as e:  # the session is stored all the same; redecode() once the decoder is mended
        return [(sid, None, None, None, None, "events not decoded", "error", obis,
                 "%s: %s" % (type(e).__name__, e), None)]
    out = []
    for ev in got:
        ev = ev if isinstance(ev, dict) else {}
        t, tl, tu = _event_times(ev.get("time"), off)
        code = ev.get("code")
        out.append((sid, t, tl, tu, _sql_value(code) if _is_int(code) else None, _ident_text(ev.get("name")),
                    _ident_text(ev.get("category")), obis, None,
                    json.dumps(_snapshot(ev.get("snapshot"), columns), ensure_ascii=False)))
    return out


def _snapshot(items, columns=()):
    """An event's snapshot values, JSON-able, each with its unit text/code and the scaled value as
    :func:`unit_scaled` gives it (scaler and unit from the profile's column of that OBIS when there
    is one: the column keeps the DLMS unit code)."""
    by_obis = {}
    for col in columns:
        if len(col) == 3 and isinstance(col[0], str):
            by_obis.setdefault(col[0], (col[1], col[2]))
    out = []
    for it in items or ():
        if not isinstance(it, dict):
            out.append({"value": _json_value(it)})
            continue
        value, scaler, unit = it.get("value"), it.get("scaler"), it.get("unit")
        if isinstance(it.get("obis"), str) and it["obis"] in by_obis:
            scaler, unit = by_obis[it["obis"]]
        if unit == UNKNOWN_UNIT:
            unit = None
        if _is_int(it.get("unit_code")) and unit is None:
            unit = it["unit_code"]
        utext, ucode, scaled = unit_scaled(value, scaler, unit)
        d = {k: _json_value(v) for k, v in it.items()}
        d.update({"obis": _json_value(it.get("obis")), "value": _json_value(value), "scaler": scaler,
                  "unit": utext, "unit_code": ucode, "scaled": scaled})
        out.append(d)
    return out


# ---------------------------------------------------------------- staging (resumable downloads)


def staged(db, device, seq, crc):
    """The verified bytes already staged for session ``seq`` (b"" if none or for another CRC).

    Staging rows of the same seq with another CRC (the device was erased and renumbered) or
    with a gap in their offsets are discarded.
    """
    parts = db.execute("SELECT crc, off, data FROM staging WHERE device = ? AND seq = ? ORDER BY off",
                       (device, seq)).fetchall()
    out = bytearray()
    ok = True
    for c, off, data in parts:
        if c != crc or off != len(out):
            ok = False
            break
        out += data
    if not ok:
        clear_staging(db, device, seq)
        return b""
    return bytes(out)


def stage(db, device, seq, crc, off, data):
    """Append verified bytes ``data`` at ``off`` of session ``seq`` to the staging table (committed)."""
    if not data:
        return
    db.execute("BEGIN IMMEDIATE")
    try:
        db.execute("INSERT OR REPLACE INTO staging (device, seq, crc, off, data) VALUES (?,?,?,?,?)",
                   (device, seq, crc, off, bytes(data)))
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise


def clear_staging(db, device, seq):
    db.execute("DELETE FROM staging WHERE device = ? AND seq = ?", (device, seq))


# ---------------------------------------------------------------- reading back / exports


def _json_value(v):
    if isinstance(v, (bytes, bytearray, memoryview)):
        return bytes(v).hex()
    return v


_SESSION_COLUMNS = ("id", "device", "seq", "meter_id", "plan", "device_time", "meter_time", "complete",
                    "error", "crc", "size", "records", "downloaded_at") + tuple(n for n, _t in _FACT_COLUMNS)


def _sessions(db):
    """Every sessions row as a dict with the computed times (ordered by device, seq)."""
    q = "SELECT %s FROM sessions ORDER BY device, seq, id" % ", ".join(_SESSION_COLUMNS)
    for r in db.execute(q).fetchall():
        s = dict(zip(_SESSION_COLUMNS, r))
        off = s["utc_offset_min"]
        s["device_time_utc"] = utc_iso(s["device_time"])
        s["device_clock_set_utc"] = utc_iso(s["device_clock_set"])
        s["meter_time_local"] = local_iso(s["meter_time"], off)
        s["meter_time_utc"] = local_to_utc_iso(s["meter_time"], off)
        s["utc_offset"] = None if off is None else offset_text(off)
        yield s


# The session keys of the JSON export and the columns of sessions.csv, in order.
SESSION_FIELDS = (
    "device", "seq", "device_id", "meter_id", "meter_ldn", "meter_id_source", "meter_expected", "plan",
    "device_time", "device_time_utc", "device_clock_source", "device_clock_set", "device_clock_set_utc",
    "meter_time", "meter_time_local", "meter_time_utc", "meter_clock", "meter_clock_status",
    "utc_offset_min", "utc_offset", "utc_offset_source", "complete", "error", "crc", "size", "records",
    "downloaded_at",
)


def _profile_rows(db, pid, off):
    """(clock, clock_local, clock_utc, raw values) of each row of profile ``pid``."""
    for clock, vals in db.execute(
            "SELECT clock, values_json FROM profile_rows WHERE profile_id = ? ORDER BY id", (pid,)):
        yield clock, local_iso(clock, off), local_to_utc_iso(clock, off), json.loads(vals)


def session_dicts(db):
    """Every stored session as a JSON-able dict (ordered by device, seq)."""
    out = []
    for row in _sessions(db):
        sid, off = row["id"], row["utc_offset_min"]
        s = {k: row[k] for k in SESSION_FIELDS}
        s["complete"] = bool(s["complete"])
        s.update({"values": [], "profiles": [], "events": []})
        for obis, value, scaler, unit, ucode, scaled, tl, tu in db.execute(
                "SELECT obis, value, scaler, unit, unit_code, scaled, time_local, time_utc"
                " FROM register_values WHERE session_id = ? ORDER BY id", (sid,)):
            s["values"].append({"obis": obis, "value": _json_value(value), "scaler": scaler, "unit": unit,
                                "unit_code": ucode, "scaled": scaled, "time_local": tl, "time_utc": tu})
        for pid, obis, period, first, cols_json in db.execute(
                "SELECT id, obis, capture_period, first_time, columns_json FROM profiles"
                " WHERE session_id = ? ORDER BY id", (sid,)).fetchall():
            raw_cols = json.loads(cols_json)
            cols = [_column(c) for c in raw_cols]
            p = {"obis": obis, "capture_period": period, "first_time": first,
                 "first_time_local": local_iso(first, off), "first_time_utc": local_to_utc_iso(first, off),
                 "columns": raw_cols,
                 "column_info": [{"obis": c[0], "scaler": c[1], "unit": c[3], "unit_code": c[4]}
                                 for c in cols],
                 "rows": [], "scaled": [], "clock_local": [], "clock_utc": []}
            for clock, cl, cu, vals in _profile_rows(db, pid, off):
                p["rows"].append([clock] + vals)
                p["scaled"].append([_cell_scaled(v, cols[i]) if i < len(cols) else None
                                    for i, v in enumerate(vals)])
                p["clock_local"].append(cl)
                p["clock_utc"].append(cu)
            s["profiles"].append(p)
        for t, tl, tu, code, name, category, profile, text, snap in db.execute(
                "SELECT time, time_local, time_utc, code, name, category, profile, text, snapshot_json"
                " FROM events WHERE session_id = ? ORDER BY id", (sid,)):
            s["events"].append({"time": t, "time_local": tl, "time_utc": tu, "code": code, "name": name,
                                "category": category, "profile": profile, "text": text,
                                "snapshot": None if snap is None else json.loads(snap)})
        out.append(s)
    return out


def export_json(db, path):
    """Write every session (values, profiles with rows, events) to ``path`` as one JSON document."""
    doc = {"schema": SCHEMA_VERSION, "sessions": session_dicts(db)}
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(doc, f, indent=1, ensure_ascii=False)
        f.write("\n")
    os.replace(tmp, path)
    return len(doc["sessions"])


def _csv_cell(v):
    if isinstance(v, (bytes, bytearray, memoryview)):
        return bytes(v).hex()
    return "" if v is None else v


def _write_csv(path, header, rows):
    tmp = path + ".tmp"
    n = 0
    with open(tmp, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(header)
        for r in rows:
            w.writerow([_csv_cell(v) for v in r])
            n += 1
    os.replace(tmp, path)
    return n


def export_csv(db, directory):
    """Write meters/sessions/register_values/profile_rows/events ``.csv`` into ``directory``.

    Returns ``{file name: data rows written}``. Empty cells are NULLs (no time, no UTC offset,
    no scaled value).
    """
    os.makedirs(directory, exist_ok=True)
    counts = {}
    j = os.path.join
    counts["meters.csv"] = _write_csv(
        j(directory, "meters.csv"), ["meter_id", "first_seen", "last_seen"],
        db.execute("SELECT meter_id, first_seen, last_seen FROM meters ORDER BY meter_id"))
    sessions = list(_sessions(db))
    counts["sessions.csv"] = _write_csv(j(directory, "sessions.csv"), list(SESSION_FIELDS),
                                        ([s[k] for k in SESSION_FIELDS] for s in sessions))

    def register_values():
        for s in sessions:
            head = (s["device"], s["seq"], s["meter_id"], s["device_time"], s["device_time_utc"],
                    s["meter_time_local"], s["meter_time_utc"])
            for r in db.execute("SELECT obis, value, scaler, unit, unit_code, scaled, time_local, time_utc"
                                " FROM register_values WHERE session_id = ? ORDER BY id", (s["id"],)):
                yield head + r

    counts["register_values.csv"] = _write_csv(
        j(directory, "register_values.csv"),
        ["device", "seq", "meter_id", "device_time", "device_time_utc", "meter_time_local", "meter_time_utc",
         "obis", "value", "scaler", "unit", "unit_code", "scaled", "time_local", "time_utc"],
        register_values())

    def profile_rows():
        for s in sessions:
            off = s["utc_offset_min"]
            for pid, pobis, cols_json in db.execute(
                    "SELECT id, obis, columns_json FROM profiles WHERE session_id = ? ORDER BY id",
                    (s["id"],)).fetchall():
                cols = [_column(c) for c in json.loads(cols_json)]
                for clock, cl, cu, vals in _profile_rows(db, pid, off):
                    for i, v in enumerate(vals):
                        c = cols[i] if i < len(cols) else (None, None, None, None, None, True)
                        yield (s["device"], s["seq"], s["meter_id"], pobis, clock, cl, cu, i + 1, c[0], v,
                               c[1], c[3], c[4], _cell_scaled(v, c))

    counts["profile_rows.csv"] = _write_csv(
        j(directory, "profile_rows.csv"),
        ["device", "seq", "meter_id", "profile", "clock", "clock_local", "clock_utc", "column", "column_obis",
         "value", "scaler", "unit", "unit_code", "scaled"], profile_rows())

    def events():
        for s in sessions:
            for r in db.execute("SELECT profile, time, time_local, time_utc, code, name, category, text,"
                                " snapshot_json FROM events WHERE session_id = ? ORDER BY id", (s["id"],)):
                yield (s["device"], s["seq"], s["meter_id"]) + r

    counts["events.csv"] = _write_csv(
        j(directory, "events.csv"),
        ["device", "seq", "meter_id", "profile", "time", "time_local", "time_utc", "code", "name", "category",
         "text", "snapshot_json"], events())
    return counts
