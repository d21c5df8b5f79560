"""The DLMS session on the MicroPython unix port against the simulated meter (loopback TCP):
a full readout (object list, every register with scaler/unit, clock, the whole 2880-row
profile) for every link and authentication, and with each quirk on; the link is closed
afterwards (the simulator saw the release and the disconnect)."""

import binascii
import json
import os
import subprocess

import mpbin
import pytest
from optoread import obis as obislib
from optoread.dlms.axdr import decode as axdr
from optoread.dlms.hdlc import frame as hdlc

sim = pytest.importorskip("optoread_tools.sim_dlms")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MICROPYTHON = mpbin.MICROPYTHON  # $OPTOREAD_MICROPYTHON, else .venv/bin/micropython
EK = bytes(range(16))
AK = bytes(range(0x10, 0x20))
HEX = lambda b: "hex:" + binascii.hexlify(b).decode()  # noqa: E731

CONFIGS = {
    "hdlc-128": ({"max_info": 128}, {"max_info": 128}),
    "hdlc-largest": ({"max_info": 2030, "max_pdu": 2048}, {}),
    "wrapper": ({"link": "wrapper"}, {"link": "wrapper"}),
    "lls": ({"client": 32, "auth": "low", "password": b"ABCDEFGH"},
            {"client": 32, "auth": "low", "password": HEX(b"ABCDEFGH")}),
    "hls-ciphered": ({"client": 48, "auth": "hls", "ek": EK, "ak": AK},
                     {"client": 48, "auth": "hls", "ek": HEX(EK), "ak": HEX(AK), "ciphered": True}),
    "sn": ({"ln": False}, {"ln": False}),
}
QUIRKS = {
    "echo": {},
    "four_byte_address": {"physical": hdlc.server_address_from_serial(12345678), "address_size": 4},
    "rejects_deviation": {},
    "sort_not_first": {},
    "sn_only": {"ln": False},
    "frmr_on_bad_frame": {},
    "dm_when_disconnected": {},
    "silent_wrong_address": {},
    "slow": {"timeout_ms": 4000},
}


def _run(server_kw, client_kw, rows=2880):
    model = sim.MeterModel(rows=rows)
    servers = []

    def factory():
        s = sim.DlmsServer(model, **server_kw)
        servers.append(s)
        return s

    port, stop = sim.serve_tcp(factory)
    try:
        script = os.path.join(ROOT, "host_tests", "mp_full_readout.py")
        args = [MICROPYTHON, "-X", "heapsize=2m", script, str(port)]
        args += ["%s=%s" % kv for kv in client_kw.items()]
        p = subprocess.run(args, capture_output=True, text=True, timeout=300)
    finally:
        stop()
    assert p.returncode == 0, p.stdout[-800:] + p.stderr[-2000:]
    out = json.loads(p.stdout.strip().splitlines()[-1])
    return model, servers, out


def _check(model, servers, out, rows=2880):
    assert out["rows"] == rows
    assert len(out["registers"]) >= 20
    for name, (raw, scaler, unit) in out["registers"].items():
        assert [raw, scaler, unit] == list(model.expected_register(name)), name
    first = model.expected_rows(obislib.parse("1.0.99.1.0.255"), 0, 1)[0]
    assert out["first_row"][0] == axdr.DateTime.from_bytes(first[0]).iso()
    assert out["first_row"][1:] == list(first[1:])
    # by range: one day of 15-minute rows (2026-01-02), by entry: rows 101..200
    day = model.expected_rows(obislib.parse("1.0.99.1.0.255"), 96, 192)
    assert out["by_range"] == 96
    assert out["range_last"][1:] == list(day[-1][1:])
    assert out["range_last"][0] == axdr.DateTime.from_bytes(day[-1][0]).iso()
    assert out["by_entry"] == 100
    row101 = model.expected_rows(obislib.parse("1.0.99.1.0.255"), 100, 101)[0]
    assert out["entry_first"][1:] == list(row101[1:])
    assert not servers[-1].connected  # RLRQ and DISC were sent: the link is closed


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_unix_port_full_readout(name):
    skw, ckw = CONFIGS[name]
    _check(*_run(skw, ckw))


@pytest.mark.slow
@pytest.mark.parametrize("quirk", sorted(QUIRKS))
def test_unix_port_full_readout_with_quirk(quirk):
    skw = {"quirks": {quirk}}
    if quirk == "four_byte_address":
        skw["physical"] = QUIRKS[quirk]["physical"]
    if quirk == "slow":
        skw["slow_ms"] = 100  # every answer late (the default 1.5 s would make this test minutes long)
    _check(*_run(skw, QUIRKS[quirk], rows=300), rows=300)
