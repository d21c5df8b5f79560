"""The reader: protocol detection, plans, one committed session per reading, remembered meters.

In process on CPython (virtual line / in-process DLMS server, a store in a temp directory),
and on the MicroPython unix port end to end (firmware/unix_read.py, a LittleFS image file,
the simulators on ptys).
"""

import json
import os
import subprocess

import mpbin
import pytest
from optoread.device import reader
from optoread.errors import SessionError
from optoread.store import store
from optoread_tools import sim_dlms
from optoread_tools.simcli import make_meter
from optoread_tools.vline import VirtualLine

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MICROPYTHON = mpbin.MICROPYTHON  # $OPTOREAD_MICROPYTHON, else .venv/bin/micropython
PLANS = os.path.join(ROOT, "firmware", "plans")


def _plans():
    out = {}
    for name in os.listdir(PLANS):
        p = reader.load_plan(os.path.join(PLANS, name))
        out[p["name"]] = p
    return out


@pytest.fixture
def st(tmp_path):
    s = store.Store(root=str(tmp_path / "store"))
    os.makedirs(str(tmp_path / "store"))
    s.mount()
    return s


def _dump(s, seq):
    from optoread.device import services as device

    return device.session_json(s, seq)


def _reader(transport, s, tmp_path=None, **kw):
    prof = reader.MeterProfiles(str(tmp_path / "meters.json")) if tmp_path else reader.MeterProfiles()
    msgs = []
    r = reader.Reader(transport, s, plans=_plans(), profiles=prof, clock=lambda: 1700000000,
                      progress=msgs.append, **kw)
    return r, msgs


@pytest.mark.parametrize("quirk", ["echo", "no_switch", "lf_only", "slow_reaction", "lowercase_id", "emh_r1"])
def test_mode_c_meter_is_detected_and_committed(st, quirk):
    line = VirtualLine(make_meter([quirk]))
    r, msgs = _reader(line.reader, st)
    summary = r.read("readout")
    assert summary.complete, summary.error
    d = _dump(st, summary.seq)
    assert d["meter"] == "71234567" and d["outcome"] == "complete"
    assert {"obis": "1.8.0", "value": "012345.678", "scaler": None, "unit": "kWh"} in d["values"]


def test_bad_bcc_commits_an_incomplete_session_naming_the_cause(st):
    line = VirtualLine(make_meter(["bad_bcc"]))
    r, _ = _reader(line.reader, st)
    summary = r.read("readout")
    assert not summary.complete and "BCC mismatch" in summary.error
    assert _dump(st, summary.seq)["outcome"] == "incomplete"


def test_mode_e_meter_reads_is15959_plan(st):
    model = sim_dlms.MeterModel(rows=2880)
    line = VirtualLine(sim_dlms.ModeEMeter(sim_dlms.DlmsServer(model)))
    r, msgs = _reader(line.reader, st)
    summary = r.read("is15959")
    assert summary.complete, summary.error
    d = _dump(st, summary.seq)
    assert d["meter"] == "IN12345678"
    assert any("mode E offered" in m for m in msgs)
    block = [p for p in d["profiles"] if p["obis"] == "1.0.99.1.0.255"][0]
    assert len(block["rows"]) == 2 * 96 and len(block["columns"]) == len(block["rows"][0]) - 1
    assert len([p for p in d["profiles"] if p["obis"].startswith("0.0.99.98.")]) == 7


def test_direct_hdlc_meter_then_known_profile_is_used_first(st, tmp_path):
    model = sim_dlms.MeterModel(rows=300)
    t = sim_dlms.ServerTransport(sim_dlms.DlmsServer(model))
    r, msgs = _reader(t, st, tmp_path)
    first = r.read("energy")
    assert first.complete, first.error
    assert any("no sign-on answer" in m for m in msgs)
    remembered = json.load(open(str(tmp_path / "meters.json")))
    assert remembered["IN12345678"]["protocol"] == "dlms" and remembered["IN12345678"]["ln"] is True
    d = _dump(st, first.seq)
    value, scaler, unit = model.expected_register("1.0.1.8.0.255")
    assert {"obis": "1.0.1.8.0.255", "value": value, "scaler": scaler, "unit": unit} in d["values"]
    t2 = sim_dlms.ServerTransport(sim_dlms.DlmsServer(model))
    r2, msgs2 = _reader(t2, st, tmp_path)
    second = r2.read("energy", meter_id="IN12345678")
    assert second.complete and any("known meter IN12345678" in m for m in msgs2)
    assert not any("signing on" in m for m in msgs2)  # no detection needed


def test_sn_only_meter_is_read_with_short_names(st):
    t = sim_dlms.ServerTransport(sim_dlms.DlmsServer(sim_dlms.MeterModel(rows=100), quirks={"sn_only"}))
    r, msgs = _reader(t, st)
    summary = r.read("energy")
    assert summary.complete, summary.error
    assert any("short names" in m for m in msgs)


def test_silent_meter_commits_incomplete_with_check_probe(st):
    class Silent:
        now = 0

        def write(self, d):
            pass

        def drain(self):
            pass

        def set_line(self, *a):
            pass

        def readinto(self, b, t):
            self.now += t
            return 0

        def sleep_ms(self, ms):
            self.now += ms

        def ticks_ms(self):
            return self.now

        def close(self):
            pass

    r, _ = _reader(Silent(), st)
    summary = r.read("energy")
    assert not summary.complete and "check the probe" in summary.error
    assert "IEC 62056-21 sign-on at 300 baud: no answer" in summary.error


def test_plans_are_validated():
    with pytest.raises(SessionError):
        reader.load_plan('{"steps": []}')
    with pytest.raises(SessionError):
        reader.load_plan('{"name": "x", "steps": [{"nothing": 1}]}')
    assert set(_plans()) >= {"is15959", "generic", "readout", "energy"}


def _plan_dirs(tmp_path, energy_steps):
    own = tmp_path / "plans"
    own.mkdir()
    plan = {"name": "energy", "steps": energy_steps}
    (own / "energy.json").write_text(json.dumps(plan))
    from optoread.device import services as device

    return device.Plans(PLANS, str(own)), own


def test_plans_on_flash_are_read_step_by_step(st, tmp_path):
    # device.Plans keeps no plan in RAM: the reader keeps the name and re-reads each step when
    # the reading gets to it; a later folder overrides an earlier one.
    steps = [{"registers": ["1.0.1.8.0.255"]}, {"profile": "1.0.99.1.0.255", "days": 1}]
    plans, own = _plan_dirs(tmp_path, steps)
    assert "energy" in plans and "is15959" in plans and "nope" not in plans and "../x" not in plans
    assert list(plans) == sorted(plans) and len(plans) == len(list(plans))
    assert plans["energy"]["steps"] == steps and plans.step("energy", 1) == steps[1]
    model = sim_dlms.MeterModel(rows=300)
    r = reader.Reader(sim_dlms.ServerTransport(sim_dlms.DlmsServer(model)), st, plans=plans,
                      clock=lambda: 1700000000)
    handle = r.plan("energy")
    assert handle["name"] == "energy" and len(handle["steps"]) == 2 and "registers" not in str(handle)
    summary = r.read("energy")
    assert summary.complete, summary.error
    d = _dump(st, summary.seq)
    assert [p["obis"] for p in d["profiles"]] == ["1.0.99.1.0.255"]
    assert [v["obis"] for v in d["values"]][-1] == "1.0.1.8.0.255"


def test_a_plan_that_changes_during_the_reading_fails_it_instead_of_ending_early(st, tmp_path):
    plans, own = _plan_dirs(tmp_path, [{"registers": ["1.0.1.8.0.255"]},
                                       {"profile": "1.0.99.1.0.255", "days": 1}])

    class Shrinking:  # the plan file loses its second step while the first one is read
        def __init__(self, inner):
            self.inner = inner

        def __getattr__(self, name):
            return getattr(self.inner, name)

        def step(self, name, i):
            if i == 1:
                (own / "energy.json").write_text(json.dumps(
                    {"name": "energy", "steps": [{"registers": ["1.0.1.8.0.255"]}]}))
            return self.inner.step(name, i)

        def get(self, name, default=None):
            return self.inner.get(name, default)

    r = reader.Reader(sim_dlms.ServerTransport(sim_dlms.DlmsServer(sim_dlms.MeterModel(rows=50))), st,
                      plans=Shrinking(plans), clock=lambda: 1700000000)
    summary = r.read("energy")
    assert not summary.complete and "changed during the reading" in summary.error


def test_plans_do_not_hide_a_memory_error(tmp_path, monkeypatch):
    plans, _ = _plan_dirs(tmp_path, [{"profile": "1.0.99.1.0.255"}])

    def no_memory(path):
        raise MemoryError

    monkeypatch.setattr(reader, "load_plan", no_memory)
    with pytest.raises(MemoryError):
        plans.get("energy")
    with pytest.raises(MemoryError):
        plans.step("energy", 0)


# --- the unix port, end to end -----------------------------------------------------------------

def _unix_read(probe, img, *extra):
    args = [MICROPYTHON, "-X", "heapsize=1m", os.path.join(ROOT, "firmware", "unix_read.py"),
            "--probe", probe, "--flash", img, "--json", *extra]
    p = subprocess.run(args, capture_output=True, text=True, timeout=300)
    return p.returncode, p.stdout, p.stderr


@pytest.mark.slow
def test_unix_port_detects_and_reads_each_kind_of_meter(tmp_path):
    from optoread_tools.ptyline import start_pty_thread

    img = str(tmp_path / "flash.img")
    cases = [("mode C", lambda: start_pty_thread(make_meter(["echo"])), "readout", "71234567"),
             ("mode E", lambda: sim_dlms.start_pty(sim_dlms.DlmsServer(sim_dlms.MeterModel(rows=2880)),
                                                   mode_e=True), "is15959", "IN12345678"),
             ("direct HDLC", lambda: sim_dlms.start_pty(sim_dlms.DlmsServer(sim_dlms.MeterModel(rows=200))),
              "energy", "IN12345678"),
             ("SN only", lambda: sim_dlms.start_pty(sim_dlms.DlmsServer(sim_dlms.MeterModel(rows=200),
                                                                        quirks={"sn_only"})), "energy",
              "IN12345678")]
    for label, start, plan, meter in cases:
        path, stop = start()
        try:
            rc, out, err = _unix_read("pty:" + path, img, "--read", plan)
        finally:
            stop()
        assert rc == 0, (label, out[-500:], err[-2000:])
        d = json.loads(out.strip().splitlines()[-1])
        assert d["complete"] and d["meter"] == meter, label
        if plan == "energy":  # device --json: raw, scaler, unit code and symbol, scaled (#18)
            v = [x for x in d["values"] if x["obis"] == "1.0.32.7.0.255"][0]
            assert (v["value"], v["scaler"], v["unit"], v["unit_symbol"], v["scaled"]) == (
                23012, -2, 35, "V", "230.12"), v
    # the known meter is read with its stored profile (no detection), from the same image
    path, stop = sim_dlms.start_pty(sim_dlms.DlmsServer(sim_dlms.MeterModel(rows=200)))
    try:
        cmd = [MICROPYTHON, os.path.join(ROOT, "firmware", "unix_read.py"), "--probe", "pty:" + path,
               "--flash", img, "--read", "energy", "--meter", "IN12345678"]
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    finally:
        stop()
    assert p.returncode == 0, p.stdout + p.stderr
    assert "known meter IN12345678" in p.stdout and "signing on" not in p.stdout
    rc, out, _ = _unix_read("pty:/nonexistent", img, "--list")
    assert len(out.strip().splitlines()) == 5
