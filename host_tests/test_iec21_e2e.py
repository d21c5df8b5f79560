"""The firmware's IEC 62056-21 client reads the simulated meter, every quirk on.

CPython: in process, over the virtual line (virtual clock: no real waiting).
MicroPython unix port: the same firmware modules read the simulator over a pty.
The `optoread read` and `optoread sim` commands are exercised on a pty too.
"""

import json
import os
import subprocess
import sys

import mpbin
import pytest
from optoread import driver
from optoread.errors import ChecksumError, NoAnswerError
from optoread.iec62056_21 import readout as iec_readout
from optoread.iec62056_21 import signon as iec
from optoread_tools.ptyline import start_pty_thread
from optoread_tools.simcli import make_meter
from optoread_tools.vline import VirtualLine

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MICROPYTHON = mpbin.MICROPYTHON  # $OPTOREAD_MICROPYTHON, else .venv/bin/micropython

# The reader options a user sets for each quirk (the documented knob for that meter).
READER = {
    "echo": {},
    "switch_guard": {"settle_ms": 150},  # CE102-style: quiet before re-initialising the UART
    "no_switch": {},  # auto: falls back to staying at 300
    "wakeup": {"wakeup": True},
    "lf_only": {},
    "slow_reaction": {},
    "lowercase_id": {},
    "mode_e": {},
    "emh_r1": {},
}
EXPECTED = [("F.F", [("00000000", None)]), ("0.0.0", [("71234567", None)])]


def _vline_read(quirks, **opts):
    meter = make_meter(quirks)
    line = VirtualLine(meter)
    progress = []
    r = driver.Driver(line.reader, progress=progress.append).run(iec_readout.readout(iec.Options(**opts)))
    return r, line, progress


@pytest.mark.parametrize("quirk", sorted(READER))
def test_mode_c_read_with_each_quirk(quirk):
    r, line, progress = _vline_read([quirk], **READER[quirk])
    assert r.datasets[:2] == EXPECTED
    assert ("1.8.0", [("012345.678", "kWh")]) in r.datasets
    assert r.bcc_ok is True
    assert any(p.startswith("identification /") for p in progress)
    if quirk not in ("no_switch",):
        # the 300 -> 9600 switch happened and the data came at 9600
        assert any(e[1] == "R:set_line" and e[3][0] == 9600 for e in line.trace)


def test_no_switch_retries_at_300_and_says_so():
    r, line, progress = _vline_read(["no_switch"])
    sets = [e[3][0] for e in line.trace if e[1] == "R:set_line"]
    assert 4800 in sets and sets[-1] == 300
    assert any("reading at 4800" in p for p in progress) and any("reading at 300" in p for p in progress)


def test_switch_guard_without_settle_fails_with_a_named_cause():
    with pytest.raises(NoAnswerError) as e:
        _vline_read(["switch_guard"], retries=0)
    assert "readout at 9600 baud: no data" in str(e.value)


def test_wakeup_meter_without_wakeup_names_the_probe():
    with pytest.raises(NoAnswerError) as e:
        _vline_read(["wakeup"])
    assert "check the probe" in str(e.value) and "--wakeup" in str(e.value)


def test_bad_bcc_is_an_error_and_nothing_is_returned():
    with pytest.raises(ChecksumError) as e:
        _vline_read(["bad_bcc"])
    assert "BCC mismatch" in str(e.value)


def test_mode_e_hand_over_reaches_the_meters_hdlc_state():
    meter = make_meter(["mode_e"])
    line = VirtualLine(meter)
    h = driver.run(iec.mode_e(iec.Options()), line.reader)
    line.run(50)
    assert h.baud == 9600 and meter.state == "hdlc" and meter.line == (9600, 8, "N")
    assert line.reader_line == (9600, 8, "N")


def test_programming_mode_emh_r1_falls_back_to_r5():
    meter = make_meter(["emh_r1"])
    line = VirtualLine(meter)
    proc = iec_readout.read_registers(iec.Options(), ["1.8.0", "0.0.0"], "00000000")
    values = driver.run(proc, line.reader)
    assert values == [("1.8.0", [("012345.678", "kWh")]), ("0.0.0", [("71234567", None)])]


def test_modes_a_b_d():
    for mode in ("A", "B"):
        meter = make_meter([], mode=mode)
        line = VirtualLine(meter)
        r = driver.run(iec_readout.readout(iec.Options(mode=mode)), line.reader)
        assert r.datasets[:2] == EXPECTED and r.bcc_ok
    meter = make_meter([], mode="D")
    line = VirtualLine(meter)
    r = driver.run(iec_readout.readout(iec.Options(mode="D")), line.reader)
    assert r.datasets[:2] == EXPECTED and r.crc_ok is True


def test_a_real_capture_replayed_by_the_simulator_reads_back_identically():
    from portable import shared_dir

    d = shared_dir("captures", "iec62056-21")
    if d is None:
        pytest.skip("../shared absent")
    path = os.path.join(d, "iskra_mt174_smartmeter_obis.txt")
    expected = iec_readout.parse_readout(open(path, "rb").read())
    meter = make_meter(["echo"], readout=path)
    line = VirtualLine(meter)
    r = driver.run(iec_readout.readout(iec.Options()), line.reader)
    assert r.datasets == expected.datasets and r.bcc_ok


# --- on ptys, real time -----------------------------------------------------------------------

# Real-time runs: switch_guard's 50 ms window between guard and reaction time is checked on the
# virtual clock above (deterministic); on a loaded machine a pty's scheduling jitter can exceed it.
PTY_QUIRKS = ["echo", "no_switch", "lowercase_id", "lf_only", "mode_e", "slow_reaction"]


def _mp_read(path, **opts):
    args = [MICROPYTHON, os.path.join(ROOT, "host_tests", "mp_iec21_read.py"), path]
    args += ["%s=%s" % kv for kv in opts.items()]
    p = subprocess.run(args, capture_output=True, text=True, timeout=60)
    return p.returncode, p.stdout.strip(), p.stderr


@pytest.mark.slow
@pytest.mark.parametrize("quirk", PTY_QUIRKS)
def test_unix_port_reads_the_simulator_on_a_pty(quirk):
    # Real time on a pty: a second try is allowed (as a meter reader would press again) because a
    # loaded machine's scheduling can miss a 20-200 ms protocol window; the timing logic itself is
    # checked deterministically on the virtual clock above.
    for _attempt in range(2):
        meter = make_meter([quirk])
        path, stop = start_pty_thread(meter)
        try:
            rc, out, err = _mp_read(path, **READER.get(quirk, {}))
        finally:
            stop()
        if rc == 0:
            break
    assert rc == 0, out + err
    d = json.loads(out.splitlines()[-1])
    assert d["bcc_ok"] is True
    assert d["datasets"][0] == {"address": "F.F", "values": [["00000000", None]]}
    assert {"address": "1.8.0", "values": [["012345.678", "kWh"]]} in d["datasets"]


@pytest.mark.slow
def test_unix_port_reports_bad_bcc_and_no_answer():
    meter = make_meter(["bad_bcc"])
    path, stop = start_pty_thread(meter)
    try:
        rc, out, _ = _mp_read(path)
    finally:
        stop()
    assert rc == 3 and "ChecksumError" in out and "BCC mismatch" in out
    meter = make_meter(["wakeup"])
    path, stop = start_pty_thread(meter)
    try:
        rc, out, _ = _mp_read(path, ident_timeout_ms=600)
    finally:
        stop()
    assert rc == 3 and "no answer to the sign-on request at 300 baud" in out


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "optoread_tools.cli", *args], capture_output=True,
                          text=True, timeout=60, cwd=ROOT,
                          env=dict(os.environ, PYTHONPATH=os.pathsep.join(
                              [os.path.join(ROOT, "tools"), os.path.join(ROOT, "firmware")])))


@pytest.mark.slow
def test_optoread_read_cli_on_a_pty():
    meter = make_meter(["echo"])
    path, stop = start_pty_thread(meter)
    try:
        p = _cli("read", "--port", path, "--iec21", "--json")
    finally:
        stop()
    assert p.returncode == 0, p.stderr
    d = json.loads(p.stdout)
    assert d["identification"] == "/ISK5SIM174-01" and d["bcc_ok"] is True
    assert d["datasets"][0] == {"address": "F.F", "values": [["00000000", None]]}
    assert {"address": "1.6.0", "values": [["02.468", "kW"], ["2503100930", None]], "value": "02.468",
            "unit": "kW", "time": "2025-03-10T09:30:00"} in d["datasets"]  # maximum demand and its time
    assert "reading at 9600 baud" in p.stderr  # progress feedback


@pytest.mark.slow
def test_optoread_read_cli_programming_mode_and_errors():
    meter = make_meter(["emh_r1"])
    path, stop = start_pty_thread(meter)
    try:
        p = _cli("read", "--port", path, "--iec21", "--password", "00000000", "--register", "1.8.0",
                 "--json", "--quiet")
        bad = make_meter(["bad_bcc"])
        path2, stop2 = start_pty_thread(bad)
        try:
            q = _cli("read", "--port", path2, "--iec21")
        finally:
            stop2()
    finally:
        stop()
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["datasets"] == [{"address": "1.8.0", "values": [["012345.678", "kWh"]]}]
    assert q.returncode != 0 and "BCC mismatch" in q.stderr


@pytest.mark.slow
def test_optoread_sim_cli_serves_a_pty():
    proc = subprocess.Popen([sys.executable, "-m", "optoread_tools.cli", "sim", "--protocol", "iec21",
                             "--pty", "--quirk", "echo", "--seconds", "20"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=ROOT,
                            env=dict(os.environ, PYTHONPATH=os.pathsep.join(
                                [os.path.join(ROOT, "tools"), os.path.join(ROOT, "firmware")])))
    try:
        path = proc.stdout.readline().strip()
        rc, out, err = _mp_read(path)
    finally:
        proc.terminate()
        proc.wait(10)
    assert rc == 0, out + err
    assert json.loads(out)["bcc_ok"] is True


def test_parse_cli_json_shape(tmp_path):
    from optoread_tools import cli

    f = tmp_path / "r.txt"
    f.write_bytes(b"/ABC5X\r\n\x021.8.0(1*kWh)\r\n!\r\n\x03" + bytes([0x02 ^ 0x02]))
    import contextlib
    import io

    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        rc = cli.main(["parse", str(f), "--json"])
    d = json.loads(out.getvalue())
    assert set(d) >= {"identification", "bcc_ok", "datasets", "errors"}
    assert d["datasets"] == [{"address": "1.8.0", "values": [["1", "kWh"]]}]
    assert rc == (0 if d["bcc_ok"] else 1)


def test_parse_cli_shows_a_value_with_its_time(tmp_path):
    import contextlib
    import io

    from optoread_tools import cli

    f = tmp_path / "r.txt"
    body = (b"1-0:1.6.0*255(02.468*kW)(1703100930)\r\n0-1:24.2.1(101209112500W)(12785.123*m3)\r\n"
            b"1-0:99.97.0(0)(0-0:96.7.19)\r\n!\r\n\x03")
    bcc = 0
    for b in body:
        bcc ^= b
    f.write_bytes(b"/ABC5X\r\n\x02" + body + bytes([bcc]))
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert cli.main(["parse", str(f), "--json"]) == 0
    d = json.loads(out.getvalue())
    assert d["datasets"] == [
        {"address": "1-0:1.6.0*255", "values": [["02.468", "kW"], ["1703100930", None]],
         "value": "02.468", "unit": "kW", "time": "2017-03-10T09:30:00"},
        {"address": "0-1:24.2.1", "values": [["101209112500W", None], ["12785.123", "m3"]],
         "value": "12785.123", "unit": "m3", "time": "2010-12-09T11:25:00", "season": "W"},
        {"address": "1-0:99.97.0", "values": [["0", None], ["0-0:96.7.19", None]]}]
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        assert cli.main(["parse", str(f)]) == 0
    text = out.getvalue().splitlines()
    assert text[1:4] == ["1-0:1.6.0*255        02.468 kW  at 2017-03-10T09:30:00",
                         "0-1:24.2.1           12785.123 m3  at 2010-12-09T11:25:00 (winter time)",
                         "1-0:99.97.0          0  0-0:96.7.19"]
