"""Issue #18 end to end: readings a utility can bill from, from the meter to the export.

The device firmware (``firmware/main.py``) runs on the MicroPython unix port; it reads, through
its console, two simulated IS 15959 meters (one whose clock says +05:30, one whose clock gives
no deviation, so the plan's +05:30 applies) and the simulated IEC 62056-21 meter, each on its
own pty; ``optoread download`` (with the device PIN: it sets the device clock) fetches the
sessions into SQLite, ``optoread export`` writes CSV and JSON. Every checked number below is
the physical value written literally (230.12 V, not something computed through the project's
own codecs), and the IS 15959 values are compared with what gurux-dlms's client reads from the
same simulated meter.
"""

import csv
import json
import os
import subprocess
import sys
import time

import mpbin
import pytest
from optoread.dlms.axdr import decode as axdr

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MAIN = os.path.join(ROOT, "firmware", "main.py")
PIN = "2468"
ROWS = 192  # two days of block load, 15 minutes apart, from 2026-01-01T00:00 meter-local

pytestmark = pytest.mark.skipif(not os.path.exists(mpbin.MICROPYTHON), reason="no MicroPython unix port")


def _cli(*args, env=None, timeout=300):
    e = dict(os.environ,
             PYTHONPATH=os.pathsep.join([os.path.join(ROOT, "tools"), os.path.join(ROOT, "firmware")]))
    e.update(env or {})
    return subprocess.run([sys.executable, "-m", "optoread_tools.cli", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT, env=e)


def _session_seq(lines):
    done = [ln for ln in lines if ln.startswith("session ")]
    assert done, lines
    return int(done[-1].split()[1].rstrip(":")), done[-1]


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """Read the three meters through the device, download with the PIN, export; yield the
    export (CSV rows by file, the JSON document), the console transcript and the models."""
    from optoread_tools import sim_dlms
    from optoread_tools.ptybridge import PtyBridge
    from optoread_tools.ptyline import start_pty_thread
    from optoread_tools.simcli import make_meter

    sys.path.insert(0, os.path.join(ROOT, "tools"))
    from demo import ConsoleClient

    tmp = str(tmp_path_factory.mktemp("billing"))
    ist = sim_dlms.MeterModel(rows=ROWS, serial="IN12345678", deviation=-330)
    nodev = sim_dlms.MeterModel(rows=ROWS, serial="IN87654321", deviation=axdr.DEVIATION_UNSPECIFIED)
    stops = []
    paths = {}
    for name, model in (("ist", ist), ("nodev", nodev)):
        paths[name], stop = sim_dlms.start_pty(sim_dlms.DlmsServer(model))
        stops.append(stop)
    paths["iec"], stop = start_pty_thread(make_meter([]))
    stops.append(stop)
    env = dict(os.environ, OPTOREAD_BOARD="unix", OPTOREAD_STORE=os.path.join(tmp, "flash.img"))
    env.pop("MICROPYPATH", None)
    bridge = PtyBridge([mpbin.MICROPYTHON, "-X", "heapsize=512k", MAIN], env=env, cwd=tmp)
    said = {}
    try:
        port = bridge.start()
        con = ConsoleClient(port, alive=bridge.alive)
        con.sync()
        con.command("pin set " + PIN)
        for name, plan, meter in (("ist", "is15959", ""), ("nodev", "is15959", " --meter IN00000001"),
                                  ("iec", "readout", "")):
            con.command("config set probe pty:" + paths[name])
            lines = con.command("read %s%s" % (plan, meter), timeout=180.0)
            seq, line = _session_seq(lines)
            assert " complete" in line and "incomplete" not in line, lines
            said[name] = (seq, lines, con.command("show %d" % seq))
        # ^C during a reading: what was read so far is kept, committed incomplete
        con.command("config set probe pty:" + paths["ist"])
        con.ser.write(b"read is15959\n")
        buf = b""
        end = time.monotonic() + 120
        while b"profile 1.0.99.1.0.255" not in buf and time.monotonic() < end:
            buf += con.ser.read(4096)
        con.ser.write(b"\x03")
        while not buf.rstrip().endswith(b">") and time.monotonic() < end:
            buf += con.ser.read(4096)
        said["intr"] = (_session_seq(buf.decode().splitlines())[0], buf.decode().splitlines(), None)
        con.close()
        db = os.path.join(tmp, "readings.sqlite")
        p = _cli("download", "--port", port, "--out", db, env={"OPTOREAD_PIN": PIN})
        assert p.returncode == 0, p.stdout + p.stderr
        download_out = p.stdout
        p = _cli("export", db, "--csv", os.path.join(tmp, "csv"), "--json", os.path.join(tmp, "r.json"))
        assert p.returncode == 0, p.stdout + p.stderr
    finally:
        bridge.stop()
        for stop in stops:
            stop()
    out = {"said": said, "download": download_out, "models": {"ist": ist, "nodev": nodev}}
    for f in ("sessions", "register_values", "profile_rows", "events"):
        with open(os.path.join(tmp, "csv", f + ".csv"), newline="", encoding="utf-8") as fh:
            out[f] = list(csv.DictReader(fh))
    with open(os.path.join(tmp, "r.json"), encoding="utf-8") as fh:
        out["json"] = json.load(fh)
    return out


def _session(ex, name):
    seq = ex["said"][name][0]
    return [s for s in ex["sessions"] if int(s["seq"]) == seq][0]


def _cells(ex, name, profile, obis):
    seq = str(ex["said"][name][0])
    return [r for r in ex["profile_rows"]
            if r["seq"] == seq and r["profile"] == profile and r["column_obis"] == obis]


def test_who_was_read(exported):
    ist, nodev, iec = (_session(exported, n) for n in ("ist", "nodev", "iec"))
    assert (ist["meter_id"], ist["meter_ldn"], ist["meter_id_source"]) == ("IN12345678", "SIMIN12345678",
                                                                           "0.0.96.1.0.255")
    assert ist["meter_expected"] == ""
    # read --meter IN00000001 with IN87654321 at the probe: stored as read, the mismatch recorded and said
    assert (nodev["meter_id"], nodev["meter_expected"]) == ("IN87654321", "IN00000001")
    assert any("wrong meter at the probe? expected IN00000001, read IN87654321" in ln
               for ln in exported["said"]["nodev"][1])
    assert (iec["meter_id"], iec["meter_id_source"]) == ("71234567", "0.0.0")
    # one device id, carried in every session and used by download to file them
    ids = {s["device_id"] for s in exported["sessions"]}
    assert len(ids) == 1 and len(ids.pop()) == 16
    assert {s["device"] for s in exported["sessions"]} == {exported["sessions"][0]["device_id"]}
    assert "device clock set to" in exported["download"]


def test_values_with_scale_and_unit(exported):
    volt = _cells(exported, "ist", "1.0.94.91.0.255", "1.0.32.7.0.255")
    assert [(r["value"], r["scaler"], r["unit"], float(r["scaled"])) for r in volt] == [
        ("23012", "-2", "V", 230.12)]
    amp = _cells(exported, "ist", "1.0.94.91.0.255", "1.0.31.7.0.255")
    assert [(r["unit"], float(r["scaled"])) for r in amp] == [("A", 5.12)]
    hz = _cells(exported, "ist", "1.0.94.91.0.255", "1.0.14.7.0.255")
    assert [(r["unit"], float(r["scaled"])) for r in hz] == [("Hz", 50.01)]
    # block load, first row: 220.00 V, 1.00 A, 100 Wh
    first = {c: _cells(exported, "ist", "1.0.99.1.0.255", c)[0]
             for c in ("1.0.12.27.0.255", "1.0.11.27.0.255", "1.0.1.29.0.255")}
    assert [(r["unit"], float(r["scaled"])) for r in first.values()] == [
        ("V", 220.0), ("A", 1.0), ("Wh", 100.0)]
    # the readout: text values with their units, the maximum demand one value with its time
    seq = str(exported["said"]["iec"][0])
    vals = {v["obis"]: v for v in exported["register_values"] if v["seq"] == seq}
    e = vals["1.8.0"]
    assert (e["value"], e["unit"], float(e["scaled"])) == ("012345.678", "kWh", 12345.678)
    md = [v for v in exported["register_values"] if v["seq"] == seq and v["obis"] == "1.6.0"]
    assert [(v["value"], v["unit"], v["time_local"]) for v in md] == [("02.468", "kW", "2025-03-10T09:30:00")]
    # the console's show, for the person at the meter
    shown = "\n".join(exported["said"]["ist"][2])
    assert "230.12 V" in shown


def test_times_local_with_offset_and_utc(exported):
    for name, source in (("ist", "meter"), ("nodev", "configuration")):
        s = _session(exported, name)
        assert (s["utc_offset_min"], s["utc_offset_source"]) == ("330", source), s
        row0 = _cells(exported, name, "1.0.99.1.0.255", "1.0.12.27.0.255")[0]
        assert row0["clock_local"] == "2026-01-01T00:00:00+05:30"
        assert row0["clock_utc"] == "2025-12-31T18:30:00Z"
        assert s["meter_time_local"] == "2026-01-03T00:00:00+05:30"
        assert s["meter_time_utc"] == "2026-01-02T18:30:00Z"
    # the unix port's clock is the host's
    assert _session(exported, "ist")["device_clock_source"] == "system"


def test_events_have_names_and_scaled_snapshots(exported):
    seq = str(exported["said"]["ist"][0])
    ev = [e for e in exported["events"] if e["seq"] == seq]
    assert len(ev) == sum(5 + k for k in range(7))  # the simulator's event logs: 5, 6, ... 11 rows
    assert all(e["name"] and e["name"] != "unknown event" for e in ev)
    first = [e for e in ev if e["profile"] == "0.0.99.98.0.255"][0]
    assert first["time_local"] == "2026-01-01T01:00:00+05:30"
    snap = {x["obis"]: (x["scaled"], x["unit"]) for x in json.loads(first["snapshot_json"])}
    assert snap == {"1.0.31.7.0.255": (1.0, "A"), "1.0.32.7.0.255": (220.0, "V")}


def test_interrupted_reading_keeps_what_was_read(exported):
    s = _session(exported, "intr")
    assert s["complete"] == "0" and s["error"].endswith("interrupted by the user"), s["error"]
    assert _cells(exported, "intr", "1.0.94.91.0.255", "1.0.32.7.0.255")  # read before the ^C


def test_the_values_equal_what_gurux_reads_from_the_same_meter(exported):
    """gurux-dlms's client (an independent implementation) reads the same simulated meter: the
    scaled instantaneous values and the block load equal the export's."""
    pytest.importorskip("gurux_dlms")
    from gurux_dlms.objects import GXDLMSRegister
    from optoread_tools import sim_dlms

    sys.path.insert(0, os.path.dirname(__file__))
    from test_sim_dlms import GuruxReader, _gurux_profile

    model = exported["models"]["ist"]
    r = GuruxReader(sim_dlms.DlmsServer(model, max_info=128))
    r.open()
    try:
        for obis in ("1.0.32.7.0.255", "1.0.31.7.0.255", "1.0.14.7.0.255", "1.0.13.7.0.255"):
            reg = GXDLMSRegister(obis)
            r.read(reg, 3)
            r.read(reg, 2)
            cell = _cells(exported, "ist", "1.0.94.91.0.255", obis)[0]
            assert abs(float(cell["scaled"]) - reg.value) < 1e-9, (obis, cell, reg.value)
        pg = _gurux_profile(r, "1.0.99.1.0.255")
        r.rows_by_entry(pg, 1, 4)
        for i, row in enumerate(pg.buffer):
            for k, obis in enumerate(("1.0.12.27.0.255", "1.0.11.27.0.255", "1.0.1.29.0.255")):
                cell = _cells(exported, "ist", "1.0.99.1.0.255", obis)[i]
                assert int(cell["value"]) == row[k + 1], (i, obis)
    finally:
        r.close()
