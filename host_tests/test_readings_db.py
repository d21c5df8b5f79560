"""The laptop's readings database, schema 2 (tools/optoread_tools/readings_db.py; CPython only).

Sessions are written with the firmware's own store writer on a RAM file system, their raw bytes
inserted as ``optoread download`` does, and the exports are checked against literal values:
scaled numbers and units, "unknown" units, meter-local and UTC times, events, the v1 migration.
"""

import csv
import json
import sqlite3
import sys
import types

import pytest
from optoread.store import store as st
from optoread_tools import readings_db as rdb

MIDNIGHT_LOCAL = 1769817600  # 2026-01-31T00:00:00 on the meter's wall clock (meter-local epoch)
DEVICE_UTC = 1769797800  # 2026-01-30T18:30:00Z on the device's clock (UTC epoch)
CLOCK_SET_UTC = 1769673600  # 2026-01-29T08:00:00Z
EVENT_LOCAL = 1769814000  # 2026-01-30T23:00:00 meter-local
EVENTS_MODULE = "optoread_tools.is15959_events"


# ---------------------------------------------------------------- a RAM file system for the store


class RamFile:
    def __init__(self, fs, path, mode):
        if "r" in mode and path not in fs.files:
            raise OSError(2, "ENOENT")
        if "w" in mode:
            fs.files[path] = bytearray()
        self.data = fs.files.setdefault(path, bytearray())
        self.pos = len(self.data) if "a" in mode else 0

    def readinto(self, buf):
        n = max(0, min(len(buf), len(self.data) - self.pos))
        buf[:n] = self.data[self.pos:self.pos + n]
        self.pos += n
        return n

    def read(self, n=-1):
        end = len(self.data) if n is None or n < 0 else min(len(self.data), self.pos + n)
        b = bytes(self.data[self.pos:end])
        self.pos = max(self.pos, end)
        return b

    def write(self, b):
        b = bytes(b)
        self.data[self.pos:self.pos + len(b)] = b
        self.pos += len(b)
        return len(b)

    def seek(self, off, whence=0):
        self.pos = off if whence == 0 else self.pos + off if whence == 1 else len(self.data) + off
        return self.pos

    def tell(self):
        return self.pos

    def flush(self):
        pass

    def close(self):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *a):
        return False


class RamFs:
    """The store's file-system seam in RAM."""

    def __init__(self):
        self.files = {}
        self.dirs = set()

    def open(self, path, mode):
        return RamFile(self, path, mode)

    def listdir(self, path):
        if path not in self.dirs:
            raise OSError(2, "ENOENT")
        pre = path + "/"
        return [k[len(pre):] for k in self.files if k.startswith(pre) and "/" not in k[len(pre):]]

    def mkdir(self, path):
        self.dirs.add(path)

    def remove(self, path):
        if self.files.pop(path, None) is None:
            raise OSError(2, "ENOENT")

    def rename(self, old, new):
        if old not in self.files:
            raise OSError(2, "ENOENT")
        self.files[new] = self.files.pop(old)

    def free(self, path):
        return 1 << 24


def new_store():
    store = st.Store(fs=RamFs(), root="/store", reserve=0)
    store.mount()
    return store


def raw(store, seq):
    out = bytearray()
    store.read_raw(seq, lambda mv: out.extend(mv))
    return bytes(out)


# ---------------------------------------------------------------- sessions as the firmware writes them


def write_billing(store):
    """India: UTC offset +330 from the meter's clock; registers, a load profile, an event profile."""
    w = store.begin("MTR-1", "billing", DEVICE_UTC, MIDNIGHT_LOCAL)
    w.value("device.id", "OPTO-0001")
    w.value("device.clock", "laptop")
    w.value("device.clock_set", CLOCK_SET_UTC)
    w.value("meter.id_source", "0.0.96.1.0.255")
    w.value("0.0.42.0.0.255", b"LGZ1234567")
    w.value("meter.utc_offset", 330)
    w.value("meter.utc_offset_source", "meter")
    w.value("meter.clock_status", 0)
    w.value("0.0.1.0.0.255", "2026-01-31T00:00:00+05:30")
    w.value("1.0.32.7.0.255", 23012, -2, 35)
    w.value("1.0.1.8.0.255", 1234567, 1, 30)
    w.value("0.0.96.7.0.255", 17)  # a DLMS number without scaler and unit
    w.value("1.0.1.6.0.255", 4520, 0, 27, "2026-01-01T09:15:00+05:30")  # maximum demand, own offset
    w.value("1.0.9.6.0.255", 3100, 0, 28, "2026-01-02T10:00:00")  # maximum demand, no own offset
    w.value("1.8.0", "000671.578", None, "kWh")  # a mode C readout value
    w.value("0.0.96.1.1.255", b"\x00\xff")
    w.profile_begin("1.0.99.1.0.255", [("1.0.1.29.0.255", -2, 30), "1.0.12.27.0.255"], 1800, MIDNIGHT_LOCAL)
    w.row(MIDNIGHT_LOCAL, [1234, 7])
    w.row(None, [1300, None])
    w.profile_begin("0.0.99.98.0.255", [("0.0.96.11.0.255", None, None), ("1.0.32.7.0.255", -2, 35)], 0)
    w.row(EVENT_LOCAL, [101, 23150])
    w.commit()


def write_unknown_offset(store):
    """The device clock never set, no UTC offset known, another meter than the one asked for."""
    w = store.begin("MTR-2", "plain", None, MIDNIGHT_LOCAL)
    w.value("device.clock", "unknown")
    w.value("meter.id_source", "identification (no serial register in the readout)")
    w.value("meter.expected", "MTR-9")
    w.value("1.0.1.6.0.255", 4520, 0, 27, "2026-01-01T09:15:00+05:30")
    w.value("1.0.9.6.0.255", 3100, 0, 28, "2026-01-02T10:00:00")
    w.value("1.0.9.6.1.255", 1, 0, 28, "****-01-02T10:00:00")  # a wildcard year: no UTC
    w.profile_begin("1.0.99.1.0.255", [("1.0.1.29.0.255", -2, 30)], 1800, MIDNIGHT_LOCAL)
    w.row(MIDNIGHT_LOCAL, [5])
    w.commit()


def write_configured_offset(store):
    """A meter west of UTC whose offset came from the plan's configuration; its clock was invalid."""
    w = store.begin("MTR-3", "plain", DEVICE_UTC, MIDNIGHT_LOCAL)
    w.value("meter.utc_offset", -180)
    w.value("meter.utc_offset_source", "configuration")
    w.value("0.0.1.0.0.255", b"\xff" * 12)
    w.value("1.0.9.6.0.255", 3100, 0, 28, "2026-01-02T10:00:00")
    w.commit()


@pytest.fixture
def no_event_decoder(monkeypatch):
    monkeypatch.setitem(sys.modules, EVENTS_MODULE, None)  # "import" raises ImportError


@pytest.fixture
def event_decoder(monkeypatch):
    """A stand-in for is15959_events: one event per row, code from column 1, column 2 as snapshot."""
    calls = []

    def events_from_profile(profile_obis, columns, rows):
        calls.append((profile_obis, columns, rows))
        out = []
        for clock, vals in rows:
            c = columns[1]
            out.append({"time": clock, "code": vals[0], "name": "R-phase voltage missing",
                        "category": "voltage",
                        "snapshot": [{"obis": c[0], "value": vals[1], "scaler": c[1], "unit": c[2],
                                      "scaled": None}]})
        return out

    mod = types.ModuleType(EVENTS_MODULE)
    mod.events_from_profile = events_from_profile
    monkeypatch.setitem(sys.modules, EVENTS_MODULE, mod)
    return calls


def read_csv(path):
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def loaded(tmp_path, *writers):
    store = new_store()
    for write in writers:
        write(store)
    db = rdb.open_db(str(tmp_path / "r.sqlite"))
    for s in store.sessions():
        assert rdb.insert_session(db, "dev", s.seq, raw(store, s.seq), now=1769900000) is not None
    return store, db


# ---------------------------------------------------------------- the billing session


def test_billing_session_columns(tmp_path, event_decoder):
    store, db = loaded(tmp_path, write_billing)
    row = db.execute("SELECT device_id, device_clock_source, device_clock_set, meter_ldn, meter_id_source,"
                     " meter_expected, meter_clock, meter_clock_status, utc_offset_min, utc_offset_source,"
                     " device_time, meter_time FROM sessions").fetchone()
    assert row == ("OPTO-0001", "laptop", CLOCK_SET_UTC, "LGZ1234567", "0.0.96.1.0.255", None,
                   "2026-01-31T00:00:00+05:30", 0, 330, "meter", DEVICE_UTC, MIDNIGHT_LOCAL)
    assert db.execute("PRAGMA user_version").fetchone()[0] == 2

    out = tmp_path / "csv"
    counts = rdb.export_csv(db, str(out))
    assert counts == {"meters.csv": 1, "sessions.csv": 1, "register_values.csv": 16, "profile_rows.csv": 6,
                      "events.csv": 1}
    s = read_csv(out / "sessions.csv")[0]
    assert (s["device_time"], s["device_time_utc"]) == (str(DEVICE_UTC), "2026-01-30T18:30:00Z")
    assert s["meter_time_local"] == "2026-01-31T00:00:00+05:30"
    assert s["meter_time_utc"] == "2026-01-30T18:30:00Z"
    assert (s["utc_offset_min"], s["utc_offset"], s["utc_offset_source"]) == ("330", "+05:30", "meter")
    assert (s["device_id"], s["device_clock_source"], s["device_clock_set_utc"]) == (
        "OPTO-0001", "laptop", "2026-01-29T08:00:00Z")
    assert (s["meter_id"], s["meter_ldn"], s["meter_id_source"], s["meter_expected"]) == (
        "MTR-1", "LGZ1234567", "0.0.96.1.0.255", "")
    assert (s["meter_clock"], s["meter_clock_status"], s["complete"], s["error"]) == (
        "2026-01-31T00:00:00+05:30", "0", "1", "")

    vals = {r["obis"]: r for r in read_csv(out / "register_values.csv")}
    pick = ("value", "scaler", "unit", "unit_code", "scaled", "time_local", "time_utc")
    assert [vals["1.0.32.7.0.255"][k] for k in pick] == ["23012", "-2", "V", "35", "230.12", "", ""]
    assert [vals["1.0.1.8.0.255"][k] for k in pick] == ["1234567", "1", "Wh", "30", "12345670.0", "", ""]
    assert [vals["0.0.96.7.0.255"][k] for k in pick] == ["17", "", "unknown", "", "", "", ""]
    assert [vals["1.0.1.6.0.255"][k] for k in pick] == [
        "4520", "0", "W", "27", "4520.0", "2026-01-01T09:15:00+05:30", "2026-01-01T03:45:00Z"]
    assert [vals["1.0.9.6.0.255"][k] for k in pick] == [
        "3100", "0", "VA", "28", "3100.0", "2026-01-02T10:00:00", "2026-01-02T04:30:00Z"]
    assert [vals["1.8.0"][k] for k in pick] == ["000671.578", "", "kWh", "", "671.578", "", ""]
    assert [vals["0.0.96.1.1.255"][k] for k in pick] == ["00ff", "", "", "", "", "", ""]
    # the session facts stay in register_values as they were stored, never scaled nor "unknown"
    assert [vals["meter.utc_offset"][k] for k in pick] == ["330", "", "", "", "", "", ""]
    assert vals["0.0.42.0.0.255"]["value"] == "4c475a31323334353637"
    assert vals["1.0.32.7.0.255"]["meter_time_utc"] == "2026-01-30T18:30:00Z"

    prows = read_csv(out / "profile_rows.csv")
    pick = ("profile", "clock", "clock_local", "clock_utc", "column", "column_obis", "value", "scaler",
            "unit", "unit_code", "scaled")
    half = str(MIDNIGHT_LOCAL + 1800)
    assert [[r[k] for k in pick] for r in prows] == [
        ["1.0.99.1.0.255", str(MIDNIGHT_LOCAL), "2026-01-31T00:00:00+05:30", "2026-01-30T18:30:00Z", "1",
         "1.0.1.29.0.255", "1234", "-2", "Wh", "30", "12.34"],
        ["1.0.99.1.0.255", str(MIDNIGHT_LOCAL), "2026-01-31T00:00:00+05:30", "2026-01-30T18:30:00Z", "2",
         "1.0.12.27.0.255", "7", "", "unknown", "", ""],
        ["1.0.99.1.0.255", half, "2026-01-31T00:30:00+05:30", "2026-01-30T19:00:00Z", "1",
         "1.0.1.29.0.255", "1300", "-2", "Wh", "30", "13.0"],
        ["1.0.99.1.0.255", half, "2026-01-31T00:30:00+05:30", "2026-01-30T19:00:00Z", "2",
         "1.0.12.27.0.255", "", "", "unknown", "", ""],
        ["0.0.99.98.0.255", str(EVENT_LOCAL), "2026-01-30T23:00:00+05:30", "2026-01-30T17:30:00Z", "1",
         "0.0.96.11.0.255", "101", "", "unknown", "", ""],
        ["0.0.99.98.0.255", str(EVENT_LOCAL), "2026-01-30T23:00:00+05:30", "2026-01-30T17:30:00Z", "2",
         "1.0.32.7.0.255", "23150", "-2", "V", "35", "231.5"],
    ]

    # the event profile went to the decoder as stored: its columns and its rows
    assert event_decoder == [("0.0.99.98.0.255",
                              [("0.0.96.11.0.255", None, None), ("1.0.32.7.0.255", -2, 35)],
                              [(EVENT_LOCAL, [101, 23150])])]
    ev = read_csv(out / "events.csv")
    pick = ("profile", "time", "time_local", "time_utc", "code", "name", "category", "text")
    assert [{k: e[k] for k in pick} for e in ev] == [
        {"profile": "0.0.99.98.0.255", "time": str(EVENT_LOCAL), "time_local": "2026-01-30T23:00:00+05:30",
         "time_utc": "2026-01-30T17:30:00Z", "code": "101", "name": "R-phase voltage missing",
         "category": "voltage", "text": ""}]
    assert json.loads(ev[0]["snapshot_json"]) == [
        {"obis": "1.0.32.7.0.255", "value": 23150, "scaler": -2, "unit": "V", "unit_code": 35,
         "scaled": 231.5}]
    db.close()


def test_billing_session_json(tmp_path, event_decoder):
    store, db = loaded(tmp_path, write_billing)
    path = str(tmp_path / "all.json")
    assert rdb.export_json(db, path) == 1
    with open(path, encoding="utf-8") as f:
        doc = json.load(f)
    assert doc["schema"] == 2
    s = doc["sessions"][0]
    pick = ("device_time", "device_time_utc", "meter_time", "meter_time_local", "meter_time_utc",
            "utc_offset_min", "utc_offset", "utc_offset_source", "meter_ldn", "device_id", "meter_expected",
            "complete")
    assert {k: s[k] for k in pick} == {
        "device_time": DEVICE_UTC, "device_time_utc": "2026-01-30T18:30:00Z", "meter_time": MIDNIGHT_LOCAL,
        "meter_time_local": "2026-01-31T00:00:00+05:30", "meter_time_utc": "2026-01-30T18:30:00Z",
        "utc_offset_min": 330, "utc_offset": "+05:30", "utc_offset_source": "meter",
        "meter_ldn": "LGZ1234567", "device_id": "OPTO-0001", "meter_expected": None, "complete": True}
    vals = {v["obis"]: v for v in s["values"]}
    assert vals["1.0.32.7.0.255"] == {"obis": "1.0.32.7.0.255", "value": 23012, "scaler": -2, "unit": "V",
                                      "unit_code": 35, "scaled": 230.12, "time_local": None, "time_utc": None}
    assert vals["0.0.96.7.0.255"] == {"obis": "0.0.96.7.0.255", "value": 17, "scaler": None,
                                      "unit": "unknown", "unit_code": None, "scaled": None,
                                      "time_local": None, "time_utc": None}
    assert (vals["1.0.1.6.0.255"]["time_local"], vals["1.0.1.6.0.255"]["time_utc"]) == (
        "2026-01-01T09:15:00+05:30", "2026-01-01T03:45:00Z")
    assert vals["0.0.96.1.1.255"]["value"] == "00ff"
    load, evp = s["profiles"]
    assert load["columns"] == [["1.0.1.29.0.255", -2, 30], ["1.0.12.27.0.255", None, None]]
    assert load["column_info"] == [{"obis": "1.0.1.29.0.255", "scaler": -2, "unit": "Wh", "unit_code": 30},
                                   {"obis": "1.0.12.27.0.255", "scaler": None, "unit": "unknown",
                                    "unit_code": None}]
    assert load["rows"] == [[MIDNIGHT_LOCAL, 1234, 7], [MIDNIGHT_LOCAL + 1800, 1300, None]]
    assert load["scaled"] == [[12.34, None], [13.0, None]]
    assert load["clock_local"] == ["2026-01-31T00:00:00+05:30", "2026-01-31T00:30:00+05:30"]
    assert load["clock_utc"] == ["2026-01-30T18:30:00Z", "2026-01-30T19:00:00Z"]
    assert (load["first_time_local"], load["first_time_utc"]) == ("2026-01-31T00:00:00+05:30",
                                                                  "2026-01-30T18:30:00Z")
    assert evp["rows"] == [[EVENT_LOCAL, 101, 23150]] and evp["scaled"] == [[None, 231.5]]
    assert s["events"] == [{
        "time": EVENT_LOCAL, "time_local": "2026-01-30T23:00:00+05:30", "time_utc": "2026-01-30T17:30:00Z",
        "code": 101, "name": "R-phase voltage missing", "category": "voltage", "profile": "0.0.99.98.0.255",
        "text": None, "snapshot": [{"obis": "1.0.32.7.0.255", "value": 23150, "scaler": -2, "unit": "V",
                                    "unit_code": 35, "scaled": 231.5}]}]
    db.close()


def test_unknown_offset_and_unset_device_clock(tmp_path, no_event_decoder):
    store, db = loaded(tmp_path, write_unknown_offset, write_configured_offset)
    out = tmp_path / "csv"
    rdb.export_csv(db, str(out))
    s2, s3 = read_csv(out / "sessions.csv")
    pick = ("device_time", "device_time_utc", "meter_time_local", "meter_time_utc", "utc_offset_min",
            "utc_offset", "utc_offset_source", "meter_expected", "meter_id_source", "device_clock_source",
            "meter_clock")
    assert [s2[k] for k in pick] == ["", "", "2026-01-31T00:00:00", "", "", "", "", "MTR-9",
                                     "identification (no serial register in the readout)", "unknown", ""]
    assert [s3[k] for k in pick] == [str(DEVICE_UTC), "2026-01-30T18:30:00Z", "2026-01-31T00:00:00-03:00",
                                     "2026-01-31T03:00:00Z", "-180", "-03:00", "configuration", "", "", "",
                                     "ffffffffffffffffffffffff"]
    row = db.execute("SELECT device_time, meter_expected FROM sessions WHERE seq = 1").fetchone()
    assert row == (None, "MTR-9")

    times = [(r["seq"], r["obis"], r["time_local"], r["time_utc"])
             for r in read_csv(out / "register_values.csv") if r["time_local"]]
    assert times == [
        ("1", "1.0.1.6.0.255", "2026-01-01T09:15:00+05:30", "2026-01-01T03:45:00Z"),  # its own offset
        ("1", "1.0.9.6.0.255", "2026-01-02T10:00:00", ""),  # neither its own nor the session's offset
        ("1", "1.0.9.6.1.255", "****-01-02T10:00:00", ""),
        ("2", "1.0.9.6.0.255", "2026-01-02T10:00:00", "2026-01-02T13:00:00Z"),  # the session's -03:00
    ]
    prow = read_csv(out / "profile_rows.csv")
    assert [(r["clock_local"], r["clock_utc"], r["scaled"], r["unit"]) for r in prow] == [
        ("2026-01-31T00:00:00", "", "0.05", "Wh")]
    assert read_csv(out / "events.csv") == []

    rdb.export_json(db, str(tmp_path / "a.json"))
    with open(tmp_path / "a.json", encoding="utf-8") as f:
        j2 = json.load(f)["sessions"][0]
    assert (j2["device_time"], j2["device_time_utc"], j2["meter_time_utc"], j2["utc_offset_min"]) == (
        None, None, None, None)
    assert j2["profiles"][0]["clock_utc"] == [None]
    db.close()


def test_event_profiles_without_or_with_a_failing_decoder(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, EVENTS_MODULE, None)
    store, db = loaded(tmp_path, write_billing)
    assert db.execute("SELECT COUNT(*) FROM events").fetchone()[0] == 0  # not installed yet: no events
    assert db.execute("SELECT COUNT(*) FROM profile_rows").fetchone()[0] == 3  # the rows are all kept

    mod = types.ModuleType(EVENTS_MODULE)

    def broken(profile_obis, columns, rows):
        raise KeyError("code 999")

    mod.events_from_profile = broken
    monkeypatch.setitem(sys.modules, EVENTS_MODULE, mod)
    assert rdb.redecode(db) == 1
    assert db.execute("SELECT time, code, name, category, profile, text FROM events").fetchall() == [
        (None, None, "events not decoded", "error", "0.0.99.98.0.255", "KeyError: 'code 999'")]
    assert db.execute("SELECT COUNT(*) FROM register_values").fetchone()[0] == 16
    db.close()


def test_events_from_the_is15959_decoder(tmp_path):
    ev = pytest.importorskip(EVENTS_MODULE)
    store, db = loaded(tmp_path, write_billing)
    out = tmp_path / "csv"
    rdb.export_csv(db, str(out))
    (e,) = read_csv(out / "events.csv")
    assert (e["profile"], e["time_local"], e["time_utc"], e["code"], e["category"]) == (
        "0.0.99.98.0.255", "2026-01-30T23:00:00+05:30", "2026-01-30T17:30:00Z", "101", "voltage related")
    assert e["name"] == ev.event_name(101)
    assert json.loads(e["snapshot_json"]) == [
        {"obis": "1.0.32.7.0.255", "value": 23150, "scaler": -2, "unit": "V", "unit_code": 35,
         "scaled": 231.5}]
    db.close()


def test_old_event_records_are_kept_as_they_are(tmp_path, no_event_decoder):
    store = new_store()
    w = store.begin("MTR-4", "p", DEVICE_UTC, MIDNIGHT_LOCAL)
    w.value("meter.utc_offset", 330)
    w.event(EVENT_LOCAL, 7, "power down")
    w.event(None, 8)
    w.commit()
    db = rdb.open_db(":memory:")
    rdb.insert_session(db, "dev", 1, raw(store, 1))
    q = "SELECT time, time_local, time_utc, code, name, text FROM events ORDER BY id"
    assert db.execute(q).fetchall() == [
        (EVENT_LOCAL, "2026-01-30T23:00:00+05:30", "2026-01-30T17:30:00Z", 7, None, "power down"),
        (None, None, None, 8, None, None)]


def test_insert_is_idempotent_and_clears_staging(tmp_path, no_event_decoder):
    store = new_store()
    write_billing(store)
    data = raw(store, 1)
    db = rdb.open_db(str(tmp_path / "r.sqlite"))
    rdb.stage(db, "dev", 1, "%08x" % 0, 0, data[:10])
    sid = rdb.insert_session(db, "dev", 1, data)
    assert sid is not None and db.execute("SELECT COUNT(*) FROM staging").fetchone()[0] == 0
    assert rdb.insert_session(db, "dev", 1, data) is None
    assert rdb.insert_session(db, "other", 1, data) is not None
    assert db.execute("SELECT COUNT(*) FROM sessions").fetchone()[0] == 2
    assert db.execute("SELECT COUNT(*) FROM register_values").fetchone()[0] == 32
    # undecodable bytes are kept, with an error and no facts
    sid = rdb.insert_session(db, "dev", 2, data[:-1])
    assert db.execute("SELECT complete, meter_id, utc_offset_min, substr(error, 1, 13) FROM sessions"
                      " WHERE id = ?", (sid,)).fetchone() == (0, None, None, "cannot decode")
    db.close()


def test_time_helpers():
    assert rdb.offset_text(330) == "+05:30" and rdb.offset_text(-180) == "-03:00"
    assert rdb.offset_text(0) == "+00:00"
    assert rdb.local_iso(MIDNIGHT_LOCAL, 0) == "2026-01-31T00:00:00+00:00"
    assert rdb.local_to_utc_iso(MIDNIGHT_LOCAL, 0) == "2026-01-31T00:00:00Z"
    assert rdb.local_iso(None, 330) is None and rdb.local_to_utc_iso(MIDNIGHT_LOCAL, None) is None
    assert rdb.utc_iso(None) is None
    assert rdb.parse_iso("2026-01-01T09:15:00.25+05:30") == (1767258900, ".25", 330)
    assert rdb.parse_iso("2026-01-01T09:15:00Z") == (1767258900, "", 0)
    assert rdb.parse_iso("2026-02-30T00:00:00") is None and rdb.parse_iso("****-01-01T00:00:00") is None
    assert rdb._value_times("2026-01-01T09:15:00.25+05:30", None) == ("2026-01-01T09:15:00.25+05:30",
                                                                      "2026-01-01T03:45:00.25Z")
    assert rdb._value_times("2026-01-01T09:15:00.00+05:30", None) == ("2026-01-01T09:15:00.00+05:30",
                                                                      "2026-01-01T03:45:00Z")
    assert rdb.unit_scaled(5, None, None) == ("unknown", None, None)
    assert rdb.unit_scaled(5.5, None, None) == ("unknown", None, None)
    assert rdb.unit_scaled("12.5", None, None) == (None, None, 12.5)  # mode C text: as before
    assert rdb.unit_scaled(b"\x01", None, None) == (None, None, None)
    assert rdb.unit_scaled(23012, -2, 35) == ("V", 35, 230.12)


# ---------------------------------------------------------------- migration from schema 1

# The schema-1 text exactly as the first version of readings_db created it.
V1_SCHEMA = """
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


def make_v1_db(path):
    """A schema-1 database as the old laptop tool left it: session 1 decoded (old-style derived rows),
    session 2 stored as "cannot decode" (its value times were new to that decoder), a staged part."""
    store = new_store()
    write_billing(store)
    write_unknown_offset(store)
    raws = {s.seq: raw(store, s.seq) for s in store.sessions()}
    db = sqlite3.connect(path, isolation_level=None)
    db.executescript(V1_SCHEMA)
    db.execute("PRAGMA user_version = 1")
    db.execute("INSERT INTO sessions (id, device, seq, meter_id, plan, device_time, meter_time, complete,"
               " error, crc, size, records, downloaded_at)"
               " VALUES (7, 'dev', 1, 'MTR-1', 'billing', ?, ?, 1, NULL, 'aaaaaaaa', ?, 22,"
               " '2026-02-01T10:00:00Z')", (DEVICE_UTC, MIDNIGHT_LOCAL, len(raws[1])))
    db.execute("INSERT INTO session_raw VALUES (7, ?)", (raws[1],))
    db.execute("INSERT INTO register_values (session_id, obis, value, scaler, unit, unit_code, scaled)"
               " VALUES (7, '0.0.96.7.0.255', 17, NULL, NULL, NULL, 17.0)")  # the old guessed scale
    db.execute("INSERT INTO profiles VALUES (3, 7, '1.0.99.1.0.255', 1800, ?, '[]')", (MIDNIGHT_LOCAL,))
    db.execute("INSERT INTO profile_rows VALUES (1, 3, ?, '[1234, 7]')", (MIDNIGHT_LOCAL,))
    db.execute("INSERT INTO events VALUES (1, 7, 0, 1, 'stale')")
    db.execute("INSERT INTO sessions (id, device, seq, meter_id, plan, device_time, meter_time, complete,"
               " error, crc, size, records, downloaded_at) VALUES (8, 'dev', 2, NULL, NULL, NULL, NULL, 0,"
               " 'cannot decode: bytes left over in record', 'bbbbbbbb', ?, NULL, '2026-02-02T10:00:00Z')",
               (len(raws[2]),))
    db.execute("INSERT INTO session_raw VALUES (8, ?)", (raws[2],))
    db.execute("INSERT INTO meters VALUES ('MTR-1', '2026-02-01T10:00:00Z', '2026-02-01T10:00:00Z')")
    db.execute("INSERT INTO staging VALUES ('dev', 3, 'cccccccc', 0, x'0102')")
    db.close()
    return raws


def _columns(db, table):
    return [r[1] for r in db.execute("PRAGMA table_info(%s)" % table)]


def test_v1_database_is_migrated(tmp_path, event_decoder):
    path = str(tmp_path / "v1.sqlite")
    raws = make_v1_db(path)
    rdb.check_db(path)  # ours, older: accepted
    db = rdb.open_db(path)
    assert db.execute("PRAGMA user_version").fetchone()[0] == 2
    fresh = rdb.open_db(":memory:")
    for t in rdb.TABLES:
        assert _columns(db, t) == _columns(fresh, t), t
    # the ids and raw bytes are untouched; both sessions are decoded again from them
    assert {r[0]: bytes(r[1]) for r in db.execute("SELECT session_id, data FROM session_raw")} == {
        7: raws[1], 8: raws[2]}
    assert db.execute("SELECT id, seq, meter_id, complete, error, records, utc_offset_min, meter_expected,"
                      " crc, downloaded_at FROM sessions ORDER BY id").fetchall() == [
        (7, 1, "MTR-1", 1, None, 22, 330, None, "aaaaaaaa", "2026-02-01T10:00:00Z"),
        (8, 2, "MTR-2", 1, None, 10, None, "MTR-9", "bbbbbbbb", "2026-02-02T10:00:00Z")]
    assert db.execute("SELECT unit, scaled FROM register_values"
                      " WHERE session_id = 7 AND obis = '0.0.96.7.0.255'").fetchall() == [("unknown", None)]
    assert db.execute("SELECT COUNT(*) FROM register_values").fetchone()[0] == 16 + 6
    assert db.execute("SELECT time_utc FROM register_values WHERE session_id = 7 AND obis = '1.0.9.6.0.255'"
                      ).fetchone() == ("2026-01-02T04:30:00Z",)
    assert db.execute("SELECT COUNT(*) FROM profile_rows").fetchone()[0] == 3 + 1
    assert db.execute("SELECT session_id, code, name, time_utc FROM events").fetchall() == [
        (7, 101, "R-phase voltage missing", "2026-01-30T17:30:00Z")]
    assert db.execute("SELECT * FROM meters ORDER BY meter_id").fetchall() == [
        ("MTR-1", "2026-02-01T10:00:00Z", "2026-02-01T10:00:00Z"),
        ("MTR-2", "2026-02-02T10:00:00Z", "2026-02-02T10:00:00Z")]
    assert db.execute("SELECT device, seq, crc, off, data FROM staging").fetchall() == [
        ("dev", 3, "cccccccc", 0, b"\x01\x02")]
    # still the same sessions: a second download of them is recognised
    assert rdb.session_exists(db, "dev", 1, "aaaaaaaa")
    out = tmp_path / "csv"
    rdb.export_csv(db, str(out))
    assert [s["meter_time_utc"] for s in read_csv(out / "sessions.csv")] == ["2026-01-30T18:30:00Z", ""]
    db.close()
    db = rdb.open_db(path)  # opening again changes nothing
    assert db.execute("SELECT COUNT(*) FROM register_values").fetchone()[0] == 22
    db.close()


def test_failed_migration_leaves_the_v1_database_as_it_was(tmp_path, monkeypatch, no_event_decoder):
    path = str(tmp_path / "v1.sqlite")
    make_v1_db(path)
    real = rdb.decode_session
    calls = []

    def second_fails(data, seq=None):
        calls.append(seq)
        if len(calls) == 2:
            raise RuntimeError("power cut")
        return real(data, seq)

    monkeypatch.setattr(rdb, "decode_session", second_fails)
    with pytest.raises(RuntimeError):
        rdb.open_db(path)
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA user_version").fetchone()[0] == 1
    assert "time_local" not in _columns(db, "register_values")
    assert "utc_offset_min" not in _columns(db, "sessions")
    assert db.execute("SELECT obis, scaled FROM register_values").fetchall() == [("0.0.96.7.0.255", 17.0)]
    assert db.execute("SELECT text FROM events").fetchall() == [("stale",)]
    db.close()
    monkeypatch.setattr(rdb, "decode_session", real)
    rdb.open_db(path).close()  # and the next open migrates it


def test_newer_schema_is_refused(tmp_path):
    path = str(tmp_path / "v3.sqlite")
    db = rdb.open_db(path)
    db.execute("PRAGMA user_version = 3")
    db.close()
    with pytest.raises(rdb.NotReadingsDb, match="newer optoread"):
        rdb.open_db(path)
