"""The laptop's readings database (SQLite) and its CSV / JSON exports.

Tables (one row per thing the device stored; times are epoch seconds, UTC):

* ``meters(meter_id, first_seen, last_seen)``
* ``sessions(id, device, seq, meter_id, plan, device_time, meter_time, complete, error, crc, size,
  records, downloaded_at)`` -- unique on ``(device, seq, crc)``: a session downloaded twice is
  stored once, and a device whose numbering restarted (store erased) still gets new rows.
* ``session_raw(session_id, data)`` -- the session's record bytes exactly as the device stored
  them (CRC-checked end to end), so it can be decoded again by a later decoder.
* ``register_values(id, session_id, obis, value, scaler, unit, unit_code, scaled)`` -- ``value``
  keeps its stored type (INTEGER, REAL, TEXT, BLOB or NULL; an integer outside SQLite's 64 bits is
  stored as its decimal TEXT); ``unit`` is the unit's symbol (DLMS code resolved, mode C text as
  read), ``unit_code`` the DLMS code when there was one; ``scaled`` = value * 10**scaler for
  numbers (numeric text from mode C readouts is parsed), else NULL.
* ``profiles(id, session_id, obis, capture_period, first_time, columns_json)`` -- ``columns_json``
  is ``[[obis, scaler, unit], ...]`` for the value columns (the clock is not a column).
* ``profile_rows(id, profile_id, clock, values_json)`` -- one row per profile entry, the raw
  (unscaled) column values as a JSON array with null for missing values. JSON rather than one SQL
  column per value because profiles have 1..32 columns of differing meaning.
* ``events(id, session_id, time, code, text)``
* ``staging(device, seq, crc, off, data)`` -- verified bytes of a session whose download was cut;
  deleted in the same transaction that inserts the session.

CSV export (``export_csv(db, dir)``): ``meters.csv``, ``sessions.csv``, ``register_values.csv``,
``profile_rows.csv`` (long format: one line per row and column, with the column's OBIS, scaler,
unit and the scaled value), ``events.csv``. Byte values are written as hex. JSON export
(``export_json(db, path)``): ``{"sessions": [{..., "values": [...], "profiles": [{..., "rows":
[[clock, v1, ...], ...]}], "events": [...]}]}``.
"""

import csv
import json
import os
import sqlite3
import time

from optoread import units
from optoread.crc import crc32
from optoread.errors import StoreError
from optoread.store import decode as sd
from optoread.store import records as sr

SCHEMA_VERSION = 1

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
    scaled REAL
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
    code INTEGER,
    text TEXT
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
"""

_INT64 = (-(1 << 63), (1 << 63) - 1)
TABLES = ("meters", "sessions", "session_raw", "register_values", "profiles", "profile_rows", "events",
          "staging")
_SQLITE_MAGIC = b"SQLite format 3\x00"


class NotReadingsDb(ValueError):
    """The file is not an optoread readings database (nor empty): it is never written to."""


def check_db(path):
    """Raise NotReadingsDb unless ``path`` is missing, empty, an SQLite database without tables, or
    optoread's own database (every table of :data:`TABLES`, ``user_version`` at most ours)."""
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


def open_db(path):
    """Open (creating if needed) the readings database at ``path``; return the connection.

    Raises NotReadingsDb (before writing anything) for a file that is not one (:func:`check_db`).
    """
    check_db(path)
    db = sqlite3.connect(path, isolation_level=None)  # explicit BEGIN/COMMIT below
    db.execute("PRAGMA foreign_keys = ON")
    try:
        db.execute("PRAGMA journal_mode = WAL")
    except sqlite3.DatabaseError:
        pass  # e.g. a file system without shared memory: the default journal is fine
    db.execute("PRAGMA synchronous = FULL")  # a commit must survive a power cut before we ack
    db.executescript(SCHEMA)
    db.execute("PRAGMA user_version = %d" % SCHEMA_VERSION)
    return db


def crc_text(c):
    """The canonical text of a CRC-32 (8 lower-case hex digits)."""
    return "%08x" % (c & 0xFFFFFFFF)


# ---------------------------------------------------------------- decoding session bytes


class DecodedSession:
    """A session decoded from its raw record bytes with the firmware's own record parser."""

    def __init__(self):
        self.head = None  # (meter, plan, device_time, meter_time)
        self.values = []  # (obis, value, scaler, unit)
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
                out.values.append(d)
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


# ---------------------------------------------------------------- inserting


def _sql_value(v):
    """A stored item as something SQLite keeps losslessly (big integers as decimal text)."""
    if isinstance(v, int) and not isinstance(v, bool) and not _INT64[0] <= v <= _INT64[1]:
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
    s = scaler if isinstance(scaler, int) and -128 <= scaler <= 127 else 0
    try:
        return float(units.apply_scaler(value, s))
    except (OverflowError, ArithmeticError):
        return None


def _unit(unit):
    """(unit symbol text, DLMS unit code or None)."""
    if isinstance(unit, int) and not isinstance(unit, bool):
        return units.unit_name(unit) or str(unit), unit
    if unit is None:
        return None, None
    return str(unit), None


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


def insert_session(db, device, seq, data, crc=None, now=None):
    """Decode ``data`` (the session's raw bytes) and insert it with everything in it, in ONE transaction.

    Deletes the session's staging rows in the same transaction. Returns the new session id, or
    None if ``(device, seq, crc)`` was already stored (nothing is changed then except staging).
    A session whose records cannot be decoded is still stored (raw bytes and an error text), so
    that it can be acknowledged and decoded again later.
    """
    data = bytes(data)
    if crc is None:
        crc = crc_text(crc32(data))
    downloaded_at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now))
    try:
        dec = decode_session(data, seq)
        err = None
    except StoreError as e:
        dec = None
        err = "cannot decode: %s" % e
    db.execute("BEGIN IMMEDIATE")
    try:
        db.execute("DELETE FROM staging WHERE device = ? AND seq = ?", (device, seq))
        if session_exists(db, device, seq, crc):
            db.execute("COMMIT")
            return None
        if dec is not None:
            meter, plan, device_time, meter_time = dec.head
            outcome, error = dec.commit[0], dec.commit[1]
            complete = 1 if outcome == sr.COMPLETE else 0
        else:
            meter = plan = device_time = meter_time = None
            complete, error = 0, err
        meter = None if meter is None else str(meter)
        cur = db.execute(
            "INSERT INTO sessions (device, seq, meter_id, plan, device_time, meter_time, complete, error,"
            " crc, size, records, downloaded_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
            (device, seq, meter, _sql_value(plan), _sql_value(device_time), _sql_value(meter_time),
             complete, error, crc, len(data), dec.records if dec else None, downloaded_at))
        sid = cur.lastrowid
        db.execute("INSERT INTO session_raw (session_id, data) VALUES (?, ?)", (sid, data))
        if meter is not None:
            db.execute("INSERT INTO meters (meter_id, first_seen, last_seen) VALUES (?, ?, ?) "
                       "ON CONFLICT(meter_id) DO UPDATE SET last_seen = excluded.last_seen",
                       (meter, downloaded_at, downloaded_at))
        if dec is not None:
            _insert_contents(db, sid, dec)
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise
    return sid


def _insert_contents(db, sid, dec):
    rows = []
    for obis, value, scaler, unit in dec.values:
        utext, ucode = _unit(unit)
        rows.append((sid, _sql_value(obis), _sql_value(value), scaler if isinstance(scaler, int) else None,
                     utext, ucode, _scaled(value, scaler)))
    db.executemany("INSERT INTO register_values (session_id, obis, value, scaler, unit, unit_code, scaled)"
                   " VALUES (?,?,?,?,?,?,?)", rows)
    db.executemany("INSERT INTO events (session_id, time, code, text) VALUES (?,?,?,?)",
                   [(sid, _sql_value(t), _sql_value(c), _sql_value(x)) for t, c, x in dec.events])
    for obis, period, first, columns, prow in dec.profiles:
        cols = [[_json_value(c) for c in col] for col in columns]
        cur = db.execute("INSERT INTO profiles (session_id, obis, capture_period, first_time, columns_json)"
                         " VALUES (?,?,?,?,?)", (sid, _sql_value(obis), period, first, json.dumps(cols)))
        pid = cur.lastrowid
        db.executemany("INSERT INTO profile_rows (profile_id, clock, values_json) VALUES (?,?,?)",
                       [(pid, _sql_value(clock), json.dumps(list(vals))) for clock, vals in prow])


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


def _iso(t):
    if not isinstance(t, int) or isinstance(t, bool):
        return ""
    try:
        return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))
    except (OverflowError, OSError, ValueError):
        return ""


def session_dicts(db):
    """Every stored session as a JSON-able dict (ordered by device, seq)."""
    out = []
    q = ("SELECT id, device, seq, meter_id, plan, device_time, meter_time, complete, error, crc, size,"
         " downloaded_at FROM sessions ORDER BY device, seq, id")
    for (sid, device, seq, meter, plan, dtime, mtime, complete, error, crc, size,
         dl) in db.execute(q).fetchall():
        s = {"device": device, "seq": seq, "meter_id": meter, "plan": plan, "device_time": dtime,
             "meter_time": mtime, "complete": bool(complete), "error": error, "crc": crc, "size": size,
             "downloaded_at": dl, "values": [], "profiles": [], "events": []}
        for obis, value, scaler, unit, ucode, scaled in db.execute(
                "SELECT obis, value, scaler, unit, unit_code, scaled FROM register_values"
                " WHERE session_id = ? ORDER BY id", (sid,)):
            s["values"].append({"obis": obis, "value": _json_value(value), "scaler": scaler, "unit": unit,
                                "unit_code": ucode, "scaled": scaled})
        for pid, obis, period, first, cols in db.execute(
                "SELECT id, obis, capture_period, first_time, columns_json FROM profiles"
                " WHERE session_id = ? ORDER BY id", (sid,)).fetchall():
            rows = [[clock] + json.loads(vals) for clock, vals in db.execute(
                "SELECT clock, values_json FROM profile_rows WHERE profile_id = ? ORDER BY id", (pid,))]
            s["profiles"].append({"obis": obis, "capture_period": period, "first_time": first,
                                  "columns": json.loads(cols), "rows": rows})
        for t, code, text in db.execute(
                "SELECT time, code, text FROM events WHERE session_id = ? ORDER BY id", (sid,)):
            s["events"].append({"time": t, "code": code, "text": text})
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

    Returns ``{file name: data rows written}``.
    """
    os.makedirs(directory, exist_ok=True)
    counts = {}
    j = os.path.join
    counts["meters.csv"] = _write_csv(
        j(directory, "meters.csv"), ["meter_id", "first_seen", "last_seen"],
        db.execute("SELECT meter_id, first_seen, last_seen FROM meters ORDER BY meter_id"))

    def sessions():
        for r in db.execute("SELECT device, seq, meter_id, plan, device_time, meter_time, complete, error,"
                            " crc, size, downloaded_at FROM sessions ORDER BY device, seq, id"):
            yield r[:5] + (_iso(r[4]),) + r[5:]

    counts["sessions.csv"] = _write_csv(
        j(directory, "sessions.csv"),
        ["device", "seq", "meter_id", "plan", "device_time", "device_time_iso", "meter_time", "complete",
         "error", "crc", "size", "downloaded_at"], sessions())
    counts["register_values.csv"] = _write_csv(
        j(directory, "register_values.csv"),
        ["device", "seq", "meter_id", "device_time", "obis", "value", "scaler", "unit", "unit_code",
         "scaled"],
        db.execute("SELECT s.device, s.seq, s.meter_id, s.device_time, v.obis, v.value, v.scaler, v.unit,"
                   " v.unit_code, v.scaled FROM register_values v JOIN sessions s ON s.id = v.session_id"
                   " ORDER BY s.device, s.seq, v.id"))

    def profile_rows():
        q = ("SELECT s.device, s.seq, s.meter_id, p.id, p.obis, p.columns_json FROM profiles p"
             " JOIN sessions s ON s.id = p.session_id ORDER BY s.device, s.seq, p.id")
        for device, seq, meter, pid, pobis, cols_json in db.execute(q).fetchall():
            cols = json.loads(cols_json)
            for clock, vals_json in db.execute(
                    "SELECT clock, values_json FROM profile_rows WHERE profile_id = ? ORDER BY id", (pid,)):
                vals = json.loads(vals_json)
                for i, v in enumerate(vals):
                    cobis, scaler, unit = cols[i] if i < len(cols) else (None, None, None)
                    utext, _code = _unit(unit)
                    yield (device, seq, meter, pobis, clock, _iso(clock), i + 1, cobis, v, scaler, utext,
                           None if v is None else _scaled(v, scaler))

    counts["profile_rows.csv"] = _write_csv(
        j(directory, "profile_rows.csv"),
        ["device", "seq", "meter_id", "profile", "clock", "clock_iso", "column", "column_obis", "value",
         "scaler", "unit", "scaled"], profile_rows())

    def events():
        for r in db.execute("SELECT s.device, s.seq, s.meter_id, e.time, e.code, e.text FROM events e"
                            " JOIN sessions s ON s.id = e.session_id ORDER BY s.device, s.seq, e.id"):
            yield r[:4] + (_iso(r[3]),) + r[4:]

    counts["events.csv"] = _write_csv(
        j(directory, "events.csv"), ["device", "seq", "meter_id", "time", "time_iso", "code", "text"],
        events())
    return counts
