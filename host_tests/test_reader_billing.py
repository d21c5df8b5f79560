"""What a reading stores so that a utility can bill from it (issue #18), in process on CPython:
who was read (serial, logical device name, where the id came from, a wrong meter at the probe),
the device's facts, the meter's time with its offset, scalers on every profile column, and a
reading interrupted by the user that keeps what it read. Expected values are written literally."""

import os
import sys

import pytest
from optoread.device import reader
from optoread.device import services as device
from optoread.dlms.axdr import decode as axdr
from optoread.store import store
from optoread_tools import sim_dlms
from optoread_tools.vline import VirtualLine

sys.path.insert(0, os.path.dirname(__file__))
from test_reader import _plans  # noqa: E402  (the plans on disk)

FACTS = [("device.id", "e6614104032b4f2d"), ("device.clock", "laptop"), ("device.clock_set", 1767200000)]


@pytest.fixture
def st(tmp_path):
    s = store.Store(root=str(tmp_path / "store"))
    os.makedirs(str(tmp_path / "store"))
    s.mount()
    return s


ENTRIES = {"entries": {"name": "entries", "steps": [{"profile": "1.0.99.1.0.255", "entries": 2}]}}


def _read_entries(st, model):
    """The 2 newest block-load rows of ``model`` read into ``st``: (summary, session dict)."""
    line = VirtualLine(sim_dlms.HdlcMeter(sim_dlms.DlmsServer(model)))
    r = reader.Reader(line.reader, st, plans=ENTRIES, clock=lambda: 1767225600)
    s = r.read("entries")
    assert s.complete, s.error
    return s, device.session_json(st, s.seq)


def _read(st, model, plan="is15959", meter_id=None, clock=lambda: 1767225600, progress=None, **kw):
    line = VirtualLine(sim_dlms.HdlcMeter(sim_dlms.DlmsServer(model)))
    msgs = []
    r = reader.Reader(line.reader, st, plans=_plans(), clock=clock, facts=FACTS,
                      progress=progress or msgs.append, **kw)
    summary = r.read(plan, meter_id)
    return summary, device.session_json(st, summary.seq), msgs


def _values(d):
    return {v["obis"]: v["value"] for v in d["values"]}


def _profile(d, obis):
    return [p for p in d["profiles"] if p["obis"] == obis][0]


def test_the_session_is_the_meters_serial_with_the_devices_facts(st):
    s, d, _ = _read(st, sim_dlms.MeterModel(rows=96, serial="IN12345678"))
    assert s.complete, s.error
    assert d["meter"] == "IN12345678"
    v = _values(d)
    assert v["meter.id_source"] == "0.0.96.1.0.255" and v["0.0.42.0.0.255"] == "SIMIN12345678"
    assert v["device.id"] == "e6614104032b4f2d" and v["device.clock"] == "laptop"
    assert v["device.clock_set"] == 1767200000
    assert "meter.expected" not in v


def test_a_wrong_meter_at_the_probe_is_recorded_and_said(st):
    s, d, msgs = _read(st, sim_dlms.MeterModel(rows=96, serial="IN12345678"), meter_id="IN99999999")
    assert s.complete and d["meter"] == "IN12345678"  # never the id asked for
    assert _values(d)["meter.expected"] == "IN99999999"
    assert "wrong meter at the probe? expected IN99999999, read IN12345678" in msgs


def test_the_meter_time_keeps_its_offset_from_the_meter_or_from_the_plan(st):
    _, d, _ = _read(st, sim_dlms.MeterModel(rows=96, deviation=-330))
    v = _values(d)
    assert v["0.0.1.0.0.255"] == "2026-01-02T00:00:00.00+05:30"
    assert (v["meter.utc_offset"], v["meter.utc_offset_source"], v["meter.clock_status"]) == (330, "meter", 0)
    assert d["meter_time"] == 1767312000  # 2026-01-02T00:00:00, meter-local
    _, d, _ = _read(st, sim_dlms.MeterModel(rows=96, deviation=axdr.DEVIATION_UNSPECIFIED))
    v = _values(d)
    assert v["0.0.1.0.0.255"] == "2026-01-02T00:00:00.00"
    assert (v["meter.utc_offset"], v["meter.utc_offset_source"]) == (330, "configuration")  # is15959 plan


def test_a_device_clock_never_set_gives_no_device_time(st):
    _, d, _ = _read(st, sim_dlms.MeterModel(rows=96), clock=lambda: None)
    assert d["device_time"] is None


def test_every_profile_column_of_the_is15959_plan_has_its_scaler_and_unit(st):
    s, d, _ = _read(st, sim_dlms.MeterModel(rows=96))
    assert s.complete, s.error
    inst = _profile(d, "1.0.94.91.0.255")
    cols = {c[0]: (c[1], c[2]) for c in inst["columns"]}
    assert cols["1.0.32.7.0.255"] == (-2, 35)  # V
    assert cols["1.0.31.7.0.255"] == (-2, 33)  # A
    block = _profile(d, "1.0.99.1.0.255")
    assert [tuple(c) for c in block["columns"]] == [
        ("1.0.12.27.0.255", -2, 35), ("1.0.11.27.0.255", -2, 33), ("1.0.1.29.0.255", 0, 30),
        ("1.0.2.29.0.255", 0, 30), ("1.0.5.29.0.255", 0, 32), ("1.0.9.29.0.255", 0, 31)]
    for k in range(7):
        ev = _profile(d, "0.0.99.98.%d.255" % k)
        scaled = [tuple(c) for c in ev["columns"] if c[0] != "0.0.96.11.%d.255" % k]
        assert scaled == [("1.0.31.7.0.255", -2, 33), ("1.0.32.7.0.255", -2, 35)], (k, ev["columns"])


def test_without_a_scaler_profile_each_columns_own_scaler_unit_is_read(st):
    s, d, _ = _read(st, sim_dlms.MeterModel(rows=96), plan="generic")
    assert s.complete, s.error
    block = _profile(d, "1.0.99.1.0.255")
    assert [tuple(c) for c in block["columns"]][:2] == [("1.0.12.27.0.255", -2, 35),
                                                        ("1.0.11.27.0.255", -2, 33)]


def test_interrupted_by_the_user_keeps_what_was_read(st):
    def progress(text):
        if text == "profile 1.0.99.1.0.255":
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        _read(st, sim_dlms.MeterModel(rows=96), progress=progress)
    s = list(st.sessions())[-1]
    assert not s.complete and s.error == "interrupted by the user"
    d = device.session_json(st, s.seq)
    assert _profile(d, "1.0.94.91.0.255")["rows"]  # the instantaneous profile read before it is kept
    assert _profile(d, "1.0.98.1.0.255")["rows"]


def test_the_device_id_is_the_boards_unique_id_or_one_made_at_first_boot_and_kept(tmp_path):
    from optoread.device import settings

    path = str(tmp_path / "device_id")
    assert settings.device_id(path, b"\xe6\x61\x41\x04\x03\x2b\x4f\x2d") == "e6614104032b4f2d"
    made = settings.device_id(path, b"\x00" * 8)  # the emulated Pico's unique id is all zeros
    assert len(made) == 16 and int(made, 16) >= 0
    assert settings.device_id(path, None) == made  # kept: the same after a reboot
    os.rename(path, path + ".tmp")  # a power cut between the renames: the new copy is still found
    assert settings.device_id(path, None) == made


def test_an_invalid_meter_clock_is_stored_as_the_meter_sent_it(st):
    """A clock whose date is invalid (month 13) is kept as its 12 raw octets, with no meter time
    and no offset invented; the reading goes on (a profile by entries needs no date)."""
    model = sim_dlms.MeterModel(rows=96)
    bad = bytes([0x07, 0xEA, 13, 1, 0xFF, 0, 0, 0, 0, 0xFE, 0xB6, 0])  # 2026-13-01, deviation -330
    model.clock_bytes = lambda: bad
    s, d = _read_entries(st, model)
    v = _values(d)
    assert v["0.0.1.0.0.255"] == bad and d["meter_time"] is None
    assert v["meter.utc_offset"] == 330  # the deviation itself is valid: it still places the rows


def test_a_column_the_meter_gives_no_scaler_unit_for_keeps_raw_values_and_no_guessed_scale(st, tmp_path):
    """The meter refuses the scaler_unit of one block-load column (and the plan names no scaler
    profile): its raw values are stored with neither scaler nor unit, and the export says
    "unit unknown" and gives no scaled value, never a guessed scale."""
    import csv

    from optoread_tools import readings_db, sim_dlms_model

    model = sim_dlms.MeterModel(rows=96)
    get_attr = model.get_attr
    volt = sim_dlms_model.ob("1.0.12.27.0.255")
    model.get_attr = lambda o, attr: 3 if (o.obis == volt and attr == 3) else get_attr(o, attr)  # 3: denied
    s, d = _read_entries(st, model)
    cols = [tuple(c) for c in _profile(device.session_json(st, s.seq), "1.0.99.1.0.255")["columns"]]
    assert cols[:2] == [("1.0.12.27.0.255", None, None), ("1.0.11.27.0.255", -2, 33)]
    raw = bytearray()
    st.read_raw(s.seq, lambda chunk: raw.extend(chunk))
    db = readings_db.open_db(":memory:")
    readings_db.insert_session(db, "dev", s.seq, bytes(raw))
    readings_db.export_csv(db, str(tmp_path / "csv"))
    with open(str(tmp_path / "csv" / "profile_rows.csv"), newline="") as f:
        cells = [r for r in csv.DictReader(f) if r["column_obis"] == "1.0.12.27.0.255"]
    # rows 94 and 95: 22000 + (94 * 37) % 2000 = 23478, 22000 + (95 * 37) % 2000 = 23515
    assert [(c["value"], c["scaler"], c["unit"], c["scaled"]) for c in cells] == [
        ("23478", "", "unknown", ""), ("23515", "", "unknown", "")]


def test_decode_flash_json_carries_raw_scaler_unit_and_scaled(st, tmp_path):
    """``optoread decode-flash --json`` (flashdump.decode_store): each value with its raw number,
    scaler, unit code and symbol and the scaled value; profile rows with their scaled cells."""
    from optoread_tools import flashdump

    s, _, _ = _read(st, sim_dlms.MeterModel(rows=96))
    assert s.complete, s.error
    sessions, _ = flashdump.decode_store(store.OsFs(), root=str(tmp_path / "store"))
    d = [x for x in sessions if x["seq"] == s.seq][0]
    facts = {v["obis"]: v for v in d["values_list"]}
    assert facts["meter.utc_offset"]["value"] == 330 and facts["meter.utc_offset"]["scaled"] is None
    inst = [p for p in d["profiles_list"] if p["obis"] == "1.0.94.91.0.255"][0]
    i = [c[0] for c in inst["columns"]].index("1.0.32.7.0.255")
    assert (inst["rows"][0][1][i], inst["scaled"][0][i]) == (23012, 230.12)


def test_a_profile_row_with_an_invalid_clock_keeps_its_octets(st):
    """A row whose clock is no valid date (month 13) keeps its 12 octets beside it (``OBIS[row].1``)
    and gets no time in the laptop's database, never a guessed one; the other rows are as served."""
    model = sim_dlms.MeterModel(rows=96)
    p = model.profile("1.0.99.1.0.255")
    cell = p.cell
    bad = bytes([0x07, 0xEA, 13, 1, 0xFF, 23, 45, 0, 0, 0xFE, 0xB6, 0])
    p.cell = lambda i, c: (9, bad) if (i == 95 and c == 0) else cell(i, c)  # 9: octet-string
    s, d = _read_entries(st, model)
    rows = _profile(d, "1.0.99.1.0.255")["rows"]
    # the store implies the clock of a row without one (the previous row's + the period); the
    # laptop gives this row none, and keeps the octets
    assert rows[0][0] == 1767310200  # 2026-01-01T23:30
    assert _values(d)["1.0.99.1.0.255[1].1"] == bad
    from optoread_tools import readings_db

    raw = bytearray()
    st.read_raw(s.seq, lambda chunk: raw.extend(chunk))
    db = readings_db.open_db(":memory:")
    readings_db.insert_session(db, "dev", s.seq, bytes(raw))
    clocks = [r[0] for r in db.execute("SELECT clock FROM profile_rows ORDER BY id")]
    assert clocks == [1767310200, None]
    got = db.execute("SELECT value FROM register_values WHERE obis = '1.0.99.1.0.255[1].1'").fetchone()
    assert got == (bad,)


def test_a_float_profile_cell_is_kept_whole(st):
    """Rows hold integers: a float32 cell (230.5 V) is kept whole as a value beside its row
    (``OBIS[row].col``), never truncated to 230."""
    from optoread.dlms.axdr import encode as axdr_encode

    model = sim_dlms.MeterModel(rows=96)
    p = model.profile("1.0.99.1.0.255")
    cell = p.cell
    p.cell = lambda i, c: (axdr_encode.FLOAT32, 230.5) if (i == 95 and c == 1) else cell(i, c)
    s, d = _read_entries(st, model)
    rows = _profile(d, "1.0.99.1.0.255")["rows"]
    assert rows[0][1] == 23478 and rows[1][1] is None
    assert _values(d)["1.0.99.1.0.255[1].2"] == 230.5
