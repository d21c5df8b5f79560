"""`optoread read --tcp ... --json` reads the simulated DLMS meter: registers and a profile range
carry exactly the values the simulator serves; `optoread sim --protocol dlms` serves it."""

import json
import os
import subprocess
import sys

import pytest
from optoread import obis as obislib
from optoread.dlms.axdr import decode as axdr
from optoread_tools import sim_dlms
from optoread_tools.dlmsread import jsonable

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ENV = dict(os.environ, PYTHONPATH=os.pathsep.join([os.path.join(ROOT, "tools"),
                                                   os.path.join(ROOT, "firmware")]))


def _cli(*args, timeout=120):
    return subprocess.run([sys.executable, "-m", "optoread_tools.cli", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT, env=ENV)


@pytest.fixture
def tcp_meter():
    model = sim_dlms.MeterModel(rows=2880)
    port, stop = sim_dlms.serve_tcp(lambda: sim_dlms.DlmsServer(model))
    yield model, "127.0.0.1:%d" % port
    stop()


def test_registers_and_clock_over_tcp(tcp_meter):
    model, where = tcp_meter
    regs = ["1.0.1.8.0.255", "1.0.32.7.0.255", "1.0.31.7.0.255"]
    p = _cli("read", "--tcp", where, *sum((["--obis", r] for r in regs), []), "--obis", "0.0.1.0.0.255",
             "--json")
    assert p.returncode == 0, p.stderr
    lines = [json.loads(x) for x in p.stdout.splitlines()]
    for r, got in zip(regs, lines):
        value, scaler, unit_code = model.expected_register(r)
        assert got["obis"] == r and got["raw"] == value and got["scaler"] == scaler
        from optoread import units

        assert got["unit"] == units.unit_name(unit_code)
        assert got["value"] == units.apply_scaler(value, scaler) if scaler else value
    assert lines[-1]["obis"] == "0.0.1.0.0.255" and lines[-1]["value"][:4] == "2026"


def test_profile_range_over_tcp(tcp_meter):
    model, where = tcp_meter
    p = _cli("read", "--tcp", where, "--profile", "1.0.99.1.0.255", "--from", "2026-01-01T00:00",
             "--to", "2026-01-01T05:45", "--json")
    assert p.returncode == 0, p.stderr
    rows = [json.loads(x)["row"] for x in p.stdout.splitlines()]
    expected = model.expected_rows(obislib.parse("1.0.99.1.0.255"), 0, 24)
    assert len(rows) == 24
    for got, exp in zip(rows, expected):
        clock = axdr.DateTime.from_bytes(exp[0]).iso() if isinstance(exp[0], bytes) else jsonable(exp[0])
        assert got == [clock] + [jsonable(c) for c in exp[1:]]


def test_last_entries_and_browse_over_wrapper():
    model = sim_dlms.MeterModel(rows=200)
    port, stop = sim_dlms.serve_tcp(lambda: sim_dlms.DlmsServer(model, link="wrapper"))
    try:
        p = _cli("read", "--tcp", "127.0.0.1:%d" % port, "--wrapper", "--profile", "1.0.99.1.0.255",
                 "--last-entries", "5", "--browse", "--json")
    finally:
        stop()
    assert p.returncode == 0, p.stderr
    out = [json.loads(x) for x in p.stdout.splitlines()]
    objects = [o for o in out if "object" in o]
    rows = [o["row"] for o in out if "row" in o]
    assert {"object": "1.0.99.1.0.255", "class": 7, "version": 1} in objects
    assert len(rows) == 5
    last = model.expected_rows(obislib.parse("1.0.99.1.0.255"), 195, 200)[-1]
    assert rows[-1][1:] == jsonable(list(last[1:]))


def test_errors_name_the_cause():
    model = sim_dlms.MeterModel(rows=10)
    port, stop = sim_dlms.serve_tcp(lambda: sim_dlms.DlmsServer(model, client=32, auth="low",
                                                                password=b"secret12"))
    try:
        p = _cli("read", "--tcp", "127.0.0.1:%d" % port, "--client", "32", "--auth", "low", "--password",
                 "wrong", "--obis", "1.0.1.8.0.255")
    finally:
        stop()
    assert p.returncode != 0 and "authentication" in p.stderr.lower(), p.stderr


def test_sim_cli_serves_dlms_on_tcp():
    cmd = [sys.executable, "-m", "optoread_tools.cli", "sim", "--protocol", "dlms", "--tcp", "0",
           "--rows", "96", "--seconds", "60"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT, env=ENV)
    try:
        where = proc.stdout.readline().strip()
        p = _cli("read", "--tcp", where, "--obis", "1.0.1.8.0.255", "--json")
    finally:
        proc.terminate()
        proc.wait(10)
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["unit"] == "Wh"


def test_class_4_and_5_registers_and_profile_rows_come_scaled_with_units(tcp_meter):
    """Issue #18: --obis on an extended/demand register gives its scaler, unit and capture time;
    profile rows carry each column scaled with its unit (values written literally here)."""
    model, where = tcp_meter
    p = _cli("read", "--tcp", where, "--obis", "4/1.0.1.6.0.255", "--obis", "1.0.1.4.0.255",
             "--obis", "1.0.32.7.0.255", "--json")
    assert p.returncode == 0, p.stderr
    md, demand, volt = [json.loads(x) for x in p.stdout.splitlines()]
    assert (md["class"], md["raw"], md["scaler"], md["unit"]) == (4, 4875, 0, "W")
    assert md["time"] == "2026-01-01T09:15:00.00+05:30"
    assert (demand["class"], demand["raw"], demand["unit"]) == (5, 3380, "W")
    assert (volt["value"], volt["unit"]) == (230.12, "V")
    p = _cli("read", "--tcp", where, "--profile", "1.0.99.1.0.255", "--from", "2026-01-01T00:00",
             "--to", "2026-01-01T00:00", "--json")
    assert p.returncode == 0, p.stderr
    first = json.loads(p.stdout.splitlines()[0])["scaled"]
    # row 0 of the simulator's block load: 22000 (-2, V), 100 (-2, A), 100 Wh, 0 Wh, 10 varh, 120 VAh
    assert first[1:] == ["220.00 V", "1.00 A", "100 Wh", "0 Wh", "10 varh", "120 VAh"]
