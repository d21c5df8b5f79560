"""``make demo`` (tools/demo.py) as a test: simulated meters, main.py on the unix port, console reads,
verified download, and the comparison with what the simulators served (CPython only)."""

import copy
import os
import subprocess
import sys

import demo
import mpbin
import pytest
from optoread_tools import sim_dlms
from optoread_tools.simcli import make_meter

MICROPYTHON = mpbin.MICROPYTHON  # $OPTOREAD_MICROPYTHON, else .venv/bin/micropython
needs_unix_port = pytest.mark.skipif(not (os.path.exists(MICROPYTHON) and hasattr(os, "openpty")),
                                     reason="needs the micropython unix port and ptys")


def _iec_session(meter):
    return {"values": [{"obis": a, "value": v, "unit": u, "scaler": None, "unit_code": None}
                       for a, v, u in demo.expected_readout(meter)], "profiles": []}


def _dlms_session(model):
    values = [{"obis": o, "value": v, "scaler": s, "unit_code": u}
              for o, (v, s, u) in sorted(demo.expected_registers(model).items())]
    p = model.profile(demo.PROFILE)
    first = p.rows - 192
    rows = [[model.row_time(demo.PROFILE, first + k)] + demo._value_cells(r)
            for k, r in enumerate(model.expected_rows(demo.PROFILE, first))]
    return {"values": values, "profiles": [{"obis": demo.PROFILE, "rows": rows}]}


def test_checks_accept_what_was_served():
    meter = make_meter([])
    failures = []
    assert demo.check_iec(_iec_session(meter), meter, failures) == 12  # 1.6.0 and its time are one value
    model = sim_dlms.MeterModel(rows=400)
    n_reg, n_rows = demo.check_dlms(_dlms_session(model), model, failures)
    assert failures == []
    assert n_reg == len(demo.expected_registers(model)) and n_rows == 192


def test_checks_catch_every_kind_of_difference():
    meter = make_meter([])
    model = sim_dlms.MeterModel(rows=400)
    good_iec, good_dlms = _iec_session(meter), _dlms_session(model)

    def failures_of(mutate, kind):
        s = copy.deepcopy(good_iec if kind == "iec" else good_dlms)
        mutate(s)
        f = []
        if kind == "iec":
            demo.check_iec(s, meter, f)
        else:
            demo.check_dlms(s, model, f)
        return f

    assert failures_of(lambda s: s["values"][4].update(value="012345.679"), "iec")
    assert failures_of(lambda s: s["values"].pop(), "iec")
    assert failures_of(lambda s: s["values"].append(s["values"][0]), "iec")
    assert failures_of(lambda s: s["values"][0].update(scaler=9), "dlms")
    assert failures_of(lambda s: s["values"].pop(0), "dlms")  # a register went missing
    rows = lambda s: s["profiles"][0]["rows"]  # noqa: E731
    assert failures_of(lambda s: rows(s)[5].__setitem__(2, rows(s)[5][2] + 1), "dlms")
    assert failures_of(lambda s: rows(s).pop(), "dlms")  # the newest row is missing
    assert failures_of(lambda s: rows(s).pop(0), "dlms")  # fewer than 2 days
    assert failures_of(lambda s: rows(s).insert(3, list(rows(s)[3])), "dlms")  # a duplicated row
    assert failures_of(lambda s: s["profiles"].clear(), "dlms")


@needs_unix_port
def test_demo_fails_loudly_when_the_device_cannot_start(tmp_path):
    # 16k of heap cannot even import the firmware: the demo must say so and exit 1.
    r = subprocess.run([sys.executable, os.path.join(demo.ROOT, "tools", "demo.py"), "--out", str(tmp_path),
                        "--heap", "16k"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 1, r.stdout
    assert "DEMO FAILED" in r.stdout and "DEMO OK" not in r.stdout
    assert "MemoryError" in r.stdout  # the device's own traceback is shown


@pytest.mark.slow
@needs_unix_port
def test_demo_end_to_end(tmp_path):
    lines = []
    failures = demo.run(str(tmp_path / "out"), log=lines.append)
    text = "\n".join(lines)
    assert failures == [], text
    assert "DEMO OK" in text
    assert (tmp_path / "out" / "readings.sqlite").exists()
    assert (tmp_path / "out" / "csv" / "register_values.csv").exists()
