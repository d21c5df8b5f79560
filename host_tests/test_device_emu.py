"""Device in the loop: the stock MicroPython rp2 firmware on an emulated RP2040 (``../shared/emu``).

The board boots the flash image ``optoread deploy --board pico --image`` writes (what is tested is
what is shipped), its console is on a pty (USB CDC), UART0 (the optical probe) on a loopback TCP
port where a simulated meter connects, speaking bytes as on the line (``optoread_tools.tcpline``).
Each reading goes through the console; the committed sessions come back to the laptop with
``optoread download`` over the same pty and are compared value by value with what the simulator
served.

``make test`` runs only ``test_emulated_pico_reads_a_dlms_meter_and_the_laptop_downloads_it`` (a
short profile); the rest carry the ``device`` marker and run in ``make test-device``. Everything
skips, saying why, without ``../shared/emu`` or node.
"""

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time

import pytest
from optoread_tools import emu

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_WHY = emu.unavailable()
pytestmark = pytest.mark.skipif(_WHY is not None, reason=_WHY or "")

# A short plan for the emulator (a few hundred times slower than micropython32 in wall time):
# the energy registers, the block load's scaler profile and its last 12 rows.
SHORT_PLAN = {
    "name": "devtest",
    "description": "device tests: energy registers and the last 12 block-load rows",
    "steps": [
        {"registers": ["1.0.1.8.0.255", "1.0.2.8.0.255", "1.0.32.7.0.255", "1.0.31.7.0.255"]},
        {"profile": "1.0.99.1.0.255", "entries": 12, "scaler_profile": "1.0.94.91.4.255"},
    ],
}
PROFILE = "1.0.99.1.0.255"
# A session of several download frames' worth (the interrupted download).
LONG_PLAN = {"name": "devlong", "description": "device tests: 400 block-load rows",
             "steps": [{"profile": "1.0.99.1.0.255", "entries": 400}]}


def build_image(path, plans=None):
    """The shipped Pico image plus the test plans (``plans/NAME.json``)."""
    from optoread_tools import deploy

    plans = plans or (SHORT_PLAN, LONG_PLAN, BILL_PLAN)
    extra = {"plans/%s.json" % p["name"]: json.dumps(p).encode() for p in plans}
    deploy.build_image("pico", str(path), extra_files=extra, force=True)
    return str(path)


def _session_line(lines):
    done = [x for x in lines if x.startswith("session ")]
    assert done, "no session line in %r" % (lines,)
    return done[-1]


def _seq(line):
    return int(line.split()[1].rstrip(":"))


def _sessions(db_path):
    from optoread_tools import readings_db

    db = readings_db.open_db(db_path)
    try:
        return {s["seq"]: s for s in readings_db.session_dicts(db)}
    finally:
        db.close()


def check_dlms_session(s, model, rows_wanted=None):
    """Every register the session holds equals the model's; the profile rows are the model's newest."""
    from optoread_tools.sim_dlms_model import obis_text

    want = {}
    for entry in model.objects:
        if entry[0] in (3, 4, 5):
            want[obis_text(entry[2])] = model.expected_register(entry[2])
    n = 0
    for v in s["values"]:
        if v["obis"] in want:
            assert (v["value"], v["scaler"], v["unit_code"]) == want[v["obis"]], v
            n += 1
    assert n >= 4, s["values"]
    if rows_wanted is None:
        return n, 0
    profs = [p for p in s["profiles"] if p["obis"] == PROFILE]
    assert len(profs) == 1, [p["obis"] for p in s["profiles"]]
    rows = profs[0]["rows"]
    assert len(rows) == rows_wanted
    p = model.profile(PROFILE)
    first = p.rows - len(rows)
    served = model.expected_rows(PROFILE, first, p.rows)
    for k, row in enumerate(rows):
        cells = [c for c in served[k] if not (isinstance(c, (bytes, bytearray)) and len(c) == 12)]
        assert list(row[1:]) == cells, (k, row, cells)
        t = model.row_time(PROFILE, first + k)
        assert row[0] in (t, t + model.deviation * 60), (k, row[0], t)
    return n, len(rows)


def check_iec_session(s, meter):
    sys.path.insert(0, os.path.join(ROOT, "tools"))
    from demo import expected_readout, meter_values

    want = expected_readout(meter)
    got = [(v["obis"], v["value"], v["unit"]) for v in meter_values(s)]
    assert got == want
    return len(want)


@pytest.fixture(scope="module")
def pico(tmp_path_factory):
    """One emulated Pico for the module (boot ~10 s wall), shipped image plus the test plan."""
    d = tmp_path_factory.mktemp("pico")
    image = build_image(d / "flash.img")
    board = emu.Pico(image, log_file=str(d / "emu.log"))
    try:
        board.start()
    except emu.EmuError:
        board.stop()
        raise
    yield board
    board.stop()


# The emulated board runs slower than real time when the host is busy, but the simulators'
# sign-on time-outs are real time: give the ACK after the identification room (a real meter's
# 1.5 s is exercised on the unix port's pty tests, which run in real time).
_SLOW_BOARD = {"ack_timeout_ms": 15000}


def _dlms_meter(board, mode_e=False, rows=96):
    from optoread_tools import tcpline

    return tcpline.connect_dlms_line(board.uart_port, mode_e=mode_e, rows=rows, meter_kw=dict(_SLOW_BOARD))


def _read(board, plan, timeout=600):
    lines = board.cmd("read " + plan, timeout=timeout)
    line = _session_line(lines)
    assert " complete" in line and "incomplete" not in line, (lines, board.tail())
    return _seq(line), lines


def test_emulated_pico_reads_a_dlms_meter_and_the_laptop_downloads_it(pico, tmp_path):
    """The one short end-to-end case in ``make test``: direct HDLC (no sign-on answer), a plan with
    registers and 12 profile rows, committed on the emulated flash, downloaded and compared."""
    meter = _dlms_meter(pico)
    pico.cmd("config set heapwatch on")
    try:
        seq, lines = _read(pico, "devtest")
    finally:
        meter.stop()
        pico.cmd("config set heapwatch off")
    assert any("direct HDLC" in x for x in lines), lines
    # the device's RAM margin in the first reading after boot, measured on the board (a
    # collection at every row block); later readings in the same boot have less (see the note)
    low = [int(x.split()[3]) for x in lines if x.startswith("heap: lowest free ")]
    assert low and low[0] >= 64 * 1024, lines
    pico.release()
    db = str(tmp_path / "r.sqlite")
    rc, out = emu.download(pico.path, db)
    pico.attach()
    assert rc == 0, out
    s = _sessions(db)[seq]
    assert s["complete"]
    check_dlms_session(s, meter.model, rows_wanted=12)


def test_an_image_for_another_board_is_refused_before_booting(tmp_path):
    from optoread_tools import deploy

    img = str(tmp_path / "esp32.img")
    deploy.build_image("esp32", img)
    with pytest.raises(emu.EmuError, match="esp32"):
        emu.Pico(img).start()
    with open(tmp_path / "junk.img", "wb") as f:
        f.write(b"\xff" * 4096)
    with pytest.raises(emu.EmuError):
        emu.run_scripts(str(tmp_path / "junk.img"), [])


@pytest.mark.device
def test_mode_e_iec_sign_on_hands_over_to_hdlc_on_the_same_stream(pico, tmp_path):
    meter = _dlms_meter(pico, mode_e=True)
    try:
        seq, lines = _read(pico, "devtest")
    finally:
        meter.stop()
    assert not any("direct HDLC" in x for x in lines), lines
    pico.release()
    db = str(tmp_path / "r.sqlite")
    rc, out = emu.download(pico.path, db)
    pico.attach()
    assert rc == 0, out
    check_dlms_session(_sessions(db)[seq], meter.model, rows_wanted=12)


@pytest.mark.device
def test_iec_readout_over_uart0(pico, tmp_path):
    from optoread_tools import tcpline

    meter = tcpline.connect_iec21(pico.uart_port, **_SLOW_BOARD)
    try:
        seq, lines = _read(pico, "readout")
    finally:
        meter.stop()
    assert "71234567" in _session_line(lines)
    pico.release()
    db = str(tmp_path / "r.sqlite")
    rc, out = emu.download(pico.path, db)
    pico.attach()
    assert rc == 0, out
    assert check_iec_session(_sessions(db)[seq], meter.meter) >= 5


@pytest.mark.device
def test_no_meter_at_the_probe_is_committed_incomplete_and_the_console_goes_on(pico):
    lines = pico.cmd("read devtest", timeout=600)
    text = "\n".join(lines)
    assert "incomplete" in text or "no answer" in text or "read failed" in text, text
    assert pico.cmd("status")[0].startswith("optoread")


@pytest.mark.device
def test_ctrl_c_does_not_reach_the_repl_and_maintenance_needs_the_pin(pico):
    """Issue 17: a USB cable alone never reaches the REPL (where config.json could be read)."""
    import os

    os.write(pico.fd, b"\x03\x03")  # ^C twice: on the stock firmware, KeyboardInterrupt and the REPL
    out = pico.cmd("status")  # the console still answers (after the boot prompt, if nothing took it)
    assert any(x.lstrip("> ").startswith("optoread ") for x in out), out
    out = pico.cmd("maintenance")
    assert out and out[0].startswith("error: console: maintenance needs the device PIN"), out
    assert "optoread" in pico.cmd("status")[0]  # still the firmware, not the REPL


@pytest.mark.device
def test_interrupted_download_resumes(pico, tmp_path):
    """A longer session; the laptop's download is interrupted (Ctrl-C) part-way through it, keeps
    the verified bytes, and the next run resumes from them and stores the session byte-exact."""
    pico.release()  # earlier tests' sessions out of the way: this one is the only one pending
    assert emu.download(pico.path, str(tmp_path / "before.sqlite"))[0] == 0
    pico.attach()
    meter = _dlms_meter(pico, rows=LONG_PLAN["steps"][0]["entries"] + 24)
    try:
        seq, _ = _read(pico, "devlong", timeout=1200)
    finally:
        meter.stop()
    pico.cmd("@hello")
    pico.release()
    db = str(tmp_path / "r.sqlite")
    sent = pico.bridge.stats["from_program"]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([os.path.join(ROOT, "tools"),
                                                         os.path.join(ROOT, "firmware")]))
    p = subprocess.Popen([sys.executable, "-m", "optoread_tools.cli", "download", "--port", pico.path,
                          "--out", db, "--device", "pico-emu"], env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        end = time.monotonic() + 300
        # Interrupt once a few frames of the session have come from the device (the bridge counts).
        while time.monotonic() < end and p.poll() is None:
            if pico.bridge.stats["from_program"] - sent >= 1200:
                p.send_signal(signal.SIGINT)
                break
            time.sleep(0.02)
        out = p.communicate(timeout=60)[0].decode()
    finally:
        if p.poll() is None:
            p.kill()
    assert p.returncode == 130, out
    assert "run again to resume" in out
    c = sqlite3.connect(db)
    staged = c.execute("SELECT COALESCE(SUM(LENGTH(data)), 0) FROM staging").fetchone()[0]
    assert c.execute("SELECT COUNT(*) FROM sessions").fetchone()[0] == 0
    c.close()
    assert staged > 0
    rc, out = emu.download(pico.path, db)
    pico.attach()
    assert rc == 0, out
    s = _sessions(db)
    assert s[seq]["complete"]
    assert sum(len(p["rows"]) for p in s[seq]["profiles"]) == LONG_PLAN["steps"][0]["entries"]
    c = sqlite3.connect(db)
    assert c.execute("SELECT COUNT(*) FROM staging").fetchone()[0] == 0
    c.close()
    assert "pending=0" in pico.cmd("@hello")[0]


# Issue #18 on the board: what a utility bills from, from the meter through the Pico to the export.
BILL_PLAN = {
    "name": "devbill",
    "description": "device tests: instantaneous values, 4 block-load rows, the voltage event log",
    "utc_offset_min": 330,
    "steps": [
        {"profile": "1.0.94.91.0.255", "scaler_profile": "1.0.94.91.3.255"},
        {"profile": "1.0.99.1.0.255", "entries": 4, "scaler_profile": "1.0.94.91.4.255"},
        {"profile": "0.0.99.98.0.255", "scaler_profile": "1.0.94.91.7.255"},
    ],
}


def _csv(path):
    import csv

    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


@pytest.mark.device
def test_billing_data_from_the_pico_to_the_export(pico, tmp_path):
    """Two IS 15959 meters (the clock's deviation +05:30, and none: the plan's +05:30) and the IEC
    meter read on the board, downloaded with the device PIN (which sets the board's clock, never
    set since power-up) and exported: meter ids, scaled values with units, local and UTC times,
    named events, the device's id and clock source, checked against literal physical values."""
    from optoread.dlms.axdr import decode as axdr
    from optoread_tools import sim_dlms, tcpline

    pico.cmd("pin set 2468")
    seqs = {}
    for name, model, meter in (
            ("ist", sim_dlms.MeterModel(rows=96, serial="IN12345678", deviation=-330), ""),
            ("nodev", sim_dlms.MeterModel(rows=96, serial="IN87654321", deviation=axdr.DEVIATION_UNSPECIFIED),
             " --meter IN00000001")):
        line = tcpline.connect_dlms_line(pico.uart_port, model=model, meter_kw=dict(_SLOW_BOARD))
        try:
            seqs[name], lines = _read(pico, "devbill" + meter)
        finally:
            line.stop()
            # The emulator's UART0 forgets a socket when its close event arrives: a meter connected
            # before the last one's close was seen would be cut off from the board's bytes.
            time.sleep(1.0)
        if meter:
            assert any("wrong meter at the probe? expected IN00000001, read IN87654321" in x for x in lines)
    iec = tcpline.connect_iec21(pico.uart_port, **_SLOW_BOARD)
    try:
        seqs["iec"], _ = _read(pico, "readout")
    finally:
        iec.stop()
    shown = "\n".join(pico.cmd("show %d" % seqs["ist"]))
    assert "230.12 V" in shown and "device time unknown" in shown, shown
    pico.release()
    db = str(tmp_path / "r.sqlite")
    rc, out = emu.download(pico.path, db, device=None, env_extra={"OPTOREAD_PIN": "2468"},
                           extra=["--csv", str(tmp_path / "csv")])
    pico.attach()
    assert rc == 0, out
    assert "device clock set to" in out and "it was unknown: never set" in out, out
    sessions = {int(s["seq"]): s for s in _csv(str(tmp_path / "csv" / "sessions.csv"))}
    ist, nodev, iec_s = (sessions[seqs[k]] for k in ("ist", "nodev", "iec"))
    assert (ist["meter_id"], ist["meter_ldn"], ist["utc_offset_min"], ist["utc_offset_source"]) == (
        "IN12345678", "SIMIN12345678", "330", "meter")
    assert (nodev["meter_id"], nodev["meter_expected"], nodev["utc_offset_source"]) == (
        "IN87654321", "IN00000001", "configuration")
    assert (iec_s["meter_id"], iec_s["meter_id_source"]) == ("71234567", "0.0.0")
    for s in (ist, nodev, iec_s):
        # the board's clock was never set before this download: no device time, never 2021
        assert (s["device_time"], s["device_clock_source"]) == ("", "unknown"), s
        assert len(s["device_id"]) == 16 and s["device"] == s["device_id"]
    rows = _csv(str(tmp_path / "csv" / "profile_rows.csv"))

    def cells(seq, profile, obis):
        return [r for r in rows
                if r["seq"] == str(seq) and r["profile"] == profile and r["column_obis"] == obis]

    for name in ("ist", "nodev"):
        v = cells(seqs[name], "1.0.94.91.0.255", "1.0.32.7.0.255")
        assert [(r["value"], r["unit"], float(r["scaled"])) for r in v] == [("23012", "V", 230.12)]
        # block-load row 92 (the 4 newest of 96): 2026-01-01T23:00 meter-local
        v = cells(seqs[name], "1.0.99.1.0.255", "1.0.12.27.0.255")[0]
        assert (v["clock_local"], v["clock_utc"], float(v["scaled"]), v["unit"]) == (
            "2026-01-01T23:00:00+05:30", "2026-01-01T17:30:00Z", 234.04, "V")
        v = cells(seqs[name], "1.0.99.1.0.255", "1.0.11.27.0.255")[0]
        assert (float(v["scaled"]), v["unit"]) == (4.76, "A")
    events = [e for e in _csv(str(tmp_path / "csv" / "events.csv")) if e["seq"] == str(seqs["ist"])]
    assert len(events) == 5 and all(e["name"] and e["name"] != "unknown event" for e in events)
    first = events[0]
    assert first["time_local"] == "2026-01-01T01:00:00+05:30" and first["time_utc"] == "2025-12-31T19:30:00Z"
    snap = {x["obis"]: (x["scaled"], x["unit"]) for x in json.loads(first["snapshot_json"])}
    assert snap == {"1.0.31.7.0.255": (1.0, "A"), "1.0.32.7.0.255": (220.0, "V")}
    vals = [v for v in _csv(str(tmp_path / "csv" / "register_values.csv")) if v["seq"] == str(seqs["iec"])]
    md = [(v["value"], v["unit"], v["time_local"]) for v in vals if v["obis"] == "1.6.0"]
    assert md == [("02.468", "kW", "2025-03-10T09:30:00")]
