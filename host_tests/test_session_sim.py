"""Session against the simulated DLMS meter (tools/optoread_tools/sim_dlms.py), CPython only.

In process over ServerTransport (virtual clock): every link, authentication and
quirk, checking values against the model and that the link is closed afterwards.
On the unix port: a whole 2880-row and a 720-row profile read through Session with a
sink over loopback TCP (host_tests/mp_session_heap.py), checking that the live heap
does not grow with the row count.
"""

import json
import os
import subprocess

import mpbin
import pytest
from optoread.device.services import DLMS_BUFFERS
from optoread.dlms.acse import names as acse_names
from optoread.dlms.axdr import encode as axdr_encode
from optoread.dlms.client.session import LinkBuffers, Session, Settings
from optoread.dlms.hdlc import frame as hdlc
from optoread.dlms.xdlms import apdu as xdlms
from optoread.errors import DataAccessError, NoAnswerError, SessionError

sim = pytest.importorskip("optoread_tools.sim_dlms")
model_mod = pytest.importorskip("optoread_tools.sim_dlms_model")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MICROPYTHON = mpbin.MICROPYTHON  # $OPTOREAD_MICROPYTHON, else .venv/bin/micropython
EK = bytes(range(16))
AK = bytes(range(0x10, 0x20))
BLOCK_LOAD = bytes((1, 0, 99, 1, 0, 255))
VOLTAGE = "1.0.32.7.0.255"


def _entry(first, last):
    b = bytearray(32)
    return bytes(b[:xdlms.encode_entry_descriptor(b, 0, first, last)])


def _make(rows=96, server_kw=None, chunk=None, **kw):
    server_kw = dict(server_kw or {})
    model = sim.MeterModel(rows=rows)
    srv = sim.DlmsServer(model, **server_kw)
    t = sim.ServerTransport(srv, chunk=chunk)
    kw.setdefault("timeout_ms", 2000)
    return model, srv, t, Session(Settings(**kw), t)


def _check_readout(model, s, rows, full=False):
    v = s.get(3, VOLTAGE, 2)
    assert v == model.expected_register(VOLTAGE)[0]
    su = s.get(3, VOLTAGE, 3)
    assert tuple(su) == model.expected_register(VOLTAGE)[1:]
    got = []
    if full:
        n = s.get(7, BLOCK_LOAD, 2, sink=got.append)
        assert n == rows
        assert got == model.expected_rows(BLOCK_LOAD)
    else:
        n = s.get(7, BLOCK_LOAD, 2, selector=2, params=_entry(3, 12), sink=got.append)
        assert n == 10
        assert got == model.expected_rows(BLOCK_LOAD, 2, 12)


CONFIGS = {
    "ln-none-128": ({"max_info": 128}, {}),
    # ServerTransport delivers a reply after its whole wire time: 2 KB at 9600 baud > 2 s
    "ln-none-largest": ({"max_info": 2030, "max_pdu": 2048}, {"timeout_ms": 5000}),
    "window-3": ({"max_info": 128, "window": 3}, {"window": 3}),
    "wrapper": ({"link": "wrapper"}, {"link": "wrapper"}),
    "lls": ({"client": 32, "auth": "low", "password": b"ABCDEFGH"},
            {"client": 32, "auth": "low", "password": b"ABCDEFGH"}),
    "hls": ({"client": 48, "auth": "hls", "ek": EK, "ak": AK},
            {"client": 48, "auth": "hls", "ek": EK, "ak": AK}),
    "hls-ciphered": ({"client": 48, "auth": "hls", "ek": EK, "ak": AK},
                     {"client": 48, "auth": "hls", "ek": EK, "ak": AK, "ciphered": True}),
    "wrapper-hls-ciphered": ({"link": "wrapper", "client": 48, "auth": "hls", "ek": EK, "ak": AK},
                             {"link": "wrapper", "client": 48, "auth": "hls", "ek": EK, "ak": AK,
                              "ciphered": True}),
    # the device's own buffer sizes (device.DLMS_BUFFERS: 512-byte frames, a one-frame PDU, 256-byte requests)
    "device-buffers-hls-ciphered": ({"client": 48, "auth": "hls", "ek": EK, "ak": AK},
                                    dict(DLMS_BUFFERS, client=48, auth="hls", ek=EK, ak=AK, ciphered=True)),
    "device-buffers-sn": ({"ln": False}, dict(DLMS_BUFFERS, ln=False)),
    # ... lent by LinkBuffers, as on the device (device.LINK_BUFFERS)
    "link-buffers-ln": ({}, dict(DLMS_BUFFERS, buffers=LinkBuffers(**DLMS_BUFFERS))),
    "link-buffers-sn-128": ({"ln": False, "max_info": 128}, dict(DLMS_BUFFERS, ln=False,
                                                                 buffers=LinkBuffers(**DLMS_BUFFERS))),
    "link-buffers-hls-ciphered": ({"client": 48, "auth": "hls", "ek": EK, "ak": AK},
                                  dict(DLMS_BUFFERS, client=48, auth="hls", ek=EK, ak=AK, ciphered=True,
                                       buffers=LinkBuffers(**DLMS_BUFFERS))),
}


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_readout_and_close(name):
    skw, ckw = CONFIGS[name]
    model, srv, t, s = _make(96, skw, **ckw)
    with s:
        _check_readout(model, s, 96, full=True)
    if srv.link == "hdlc":
        assert not srv.connected
    assert srv.assoc is None


def test_link_buffers_are_used_and_lent_to_one_open_session_at_a_time():
    bufs = LinkBuffers(**DLMS_BUFFERS)
    model, srv, t, s = _make(96, {}, **dict(DLMS_BUFFERS, buffers=bufs))
    s.open()
    # the session reads, frames and reassembles in the lent buffers: it allocated none of these
    assert s.tx is bufs.tx and s.driver._buf is bufs.read and s.reader.keep is bufs.keep
    assert s.reader.rx.buf is bufs.frame and s._conn.out is bufs.out and s._conn.rx.buf is bufs.reassembly
    assert bufs.user is s
    _m2, _srv2, _t2, other = _make(96, {}, **dict(DLMS_BUFFERS, buffers=bufs))
    with pytest.raises(SessionError, match="in use"):
        other.open()
    assert bufs.user is s  # the refused session did not take them over
    got = []
    assert s.get(7, BLOCK_LOAD, 2, sink=got.append) == 96 and got == model.expected_rows(BLOCK_LOAD)
    s.close()
    assert bufs.user is None and not srv.connected
    with other:  # free again
        _check_readout(_m2, other, 96)
    assert bufs.user is None


def test_link_buffers_too_small_for_the_settings_are_not_used():
    bufs = LinkBuffers(max_info=128, max_pdu=256, element_max=64, tx_pdu=256)
    model, srv, t, s = _make(96, {}, **dict(DLMS_BUFFERS, max_info=1024, max_pdu=2048, buffers=bufs))
    with s:
        assert s.reader.rx.buf is not bufs.frame and s._conn.rx.buf is not bufs.reassembly
        _check_readout(model, s, 96, full=True)
    assert bufs.user is None


def test_full_2880_row_profile_by_entry_with_max_info_128():
    model, srv, t, s = _make(2880, {"max_info": 128})
    got = []
    with s:
        assert s.get(7, BLOCK_LOAD, 2, sink=got.append) == 2880
        assert s.negotiated.max_info_rx == 128
        tail = []
        assert s.get(7, BLOCK_LOAD, 2, selector=2, params=_entry(2801, 2880), sink=tail.append) == 80
    assert got == model.expected_rows(BLOCK_LOAD)
    assert tail == model.expected_rows(BLOCK_LOAD, 2800, 2880)
    assert not srv.connected


def test_get_many_against_the_simulator():
    model, srv, t, s = _make(8)
    items = [(3, o, 2) for o in ("1.0.32.7.0.255", "1.0.52.7.0.255", "1.0.72.7.0.255")]
    items.append((3, "9.9.9.9.9.9", 2))
    with s:
        vals = s.get_many(items)
    for o, v in zip(("1.0.32.7.0.255", "1.0.52.7.0.255", "1.0.72.7.0.255"), vals):
        assert v == model.expected_register(o)[0]
    assert isinstance(vals[3], DataAccessError)


def test_sn_referencing():
    model, srv, t, s = _make(48, {"ln": False}, ln=False)
    with s:
        assert s.get(3, VOLTAGE, 2) == model.expected_register(VOLTAGE)[0]
        got = []
        assert s.get(7, BLOCK_LOAD, 2, sink=got.append) == 48
        assert got == model.expected_rows(BLOCK_LOAD)
    assert not srv.connected


def test_lls_wrong_password_is_named_and_link_closed():
    model, srv, t, s = _make(8, {"client": 32, "auth": "low", "password": b"ABCDEFGH"},
                             client=32, auth="low", password=b"nope")
    with pytest.raises(SessionError) as e:
        s.open()
    assert "association rejected: authentication failure" in str(e.value)
    assert not srv.connected


def test_hls_wrong_key_fails_and_link_closed():
    model, srv, t, s = _make(8, {"client": 48, "auth": "hls", "ek": EK, "ak": AK},
                             client=48, auth="hls", ek=EK, ak=bytes(16))
    with pytest.raises((SessionError,)) as e:
        s.open()
    assert "authentication failure" in str(e.value)
    assert not srv.connected


QUIRK_CLIENT = {
    "echo": {},
    "silent_wrong_address": {},
    "four_byte_address": {"physical": hdlc.server_address_from_serial(12345678), "address_size": 4},
    "rejects_deviation": {},
    "sort_not_first": {},
    "sn_only": {"ln": False},
    "frmr_on_bad_frame": {},
    "dm_when_disconnected": {},
    "slow": {"timeout_ms": 3000},
    "reset_mid_session": {},
}


@pytest.mark.parametrize("quirk", sorted(QUIRK_CLIENT))
def test_each_quirk(quirk):
    model, srv, t, s = _make(96, {"quirks": {quirk}}, **QUIRK_CLIENT[quirk])
    if quirk == "reset_mid_session":
        # The meter drops the link mid-session: the session reports it, closes, and a new one reads.
        s.open()
        err = None
        try:
            for _ in range(10):
                s.get(3, VOLTAGE, 2)
        except (NoAnswerError, SessionError, hdlc.LinkError) as e:
            err = e
        s.close()
        assert err is not None
        s2 = Session(s.settings, t)
        with s2:
            _check_readout(model, s2, 96)
    else:
        with s:
            _check_readout(model, s, 96)
    assert not srv.connected


def test_silent_wrong_address_names_the_addresses():
    model, srv, t, s = _make(8, {"quirks": {"silent_wrong_address"}, "physical": 17}, physical=18,
                             retries=1, timeout_ms=500)
    with pytest.raises(NoAnswerError) as e:
        s.open()
    assert "no answer from server address 1/18 with client 16" in str(e.value)
    assert e.value.tried


def test_set_and_action_against_the_simulator():
    model, srv, t, s = _make(8, {"client": 32, "auth": "low", "password": b"ABCDEFGH"},
                             client=32, auth="low", password=b"ABCDEFGH")
    big = bytes(range(256)) * 6
    with s:
        s.set(1, model_mod.SCRATCH, 2, axdr_encode.OCTET_STRING, big)
        assert s.get(1, model_mod.SCRATCH, 2) == big
        s.action(8, model_mod.CLOCK, 6, axdr_encode.LONG, 60)  # shift_time
    assert not srv.connected


def test_conformance_and_pdu_negotiated():
    model, srv, t, s = _make(8, {"max_pdu": 512})
    with s:
        assert s.negotiated.max_pdu == 512
        assert s.negotiated.conformance & acse_names.CONF_BLOCK_TRANSFER_GET


def _serve(rows, link="hdlc", max_info=128):
    model = sim.MeterModel(rows=rows)
    return sim.serve_tcp(lambda: sim.DlmsServer(model, link=link, max_info=max_info, max_pdu=1024)), model


def _mp_read(port, *args):
    script = os.path.join(ROOT, "host_tests", "mp_session_heap.py")
    r = subprocess.run([MICROPYTHON, "-X", "heapsize=4m", script, str(port)] + [str(a) for a in args],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout + r.stderr
    return json.loads(r.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(not os.path.exists(MICROPYTHON), reason="no micropython unix port")
def test_unix_port_profile_read_heap_does_not_grow_with_rows():
    peaks = {}
    for rows in (720, 2880):
        (port, stop), model = _serve(rows)
        try:
            res = _mp_read(port, "hdlc", 128)
        finally:
            stop()
        assert res["rows"] == rows == res["sunk"]
        exp = model.expected_rows(BLOCK_LOAD)
        assert res["last"] == _hexed(exp[-1]) and res["first"] == _hexed(exp[0])
        peaks[rows] = res["peak"]
    # Live heap during the read: the same for 4x the rows (a few hundred bytes of noise).
    assert peaks[2880] <= peaks[720] + 1024, peaks


@pytest.mark.skipif(not os.path.exists(MICROPYTHON), reason="no micropython unix port")
def test_unix_port_wrapper_read():
    (port, stop), model = _serve(200, link="wrapper")
    try:
        res = _mp_read(port, "wrapper")
    finally:
        stop()
    assert res["rows"] == 200


def _hexed(v):
    if isinstance(v, (bytes, bytearray)):
        return v.hex()
    if isinstance(v, (tuple, list)):
        return [_hexed(x) for x in v]
    return v


def test_mode_e_sign_on_then_hdlc_over_the_virtual_line():
    from optoread_tools.vline import VirtualLine

    model = sim.MeterModel(rows=24)
    srv = sim.DlmsServer(model)
    line = VirtualLine(sim.ModeEMeter(srv))
    progress = []
    with Session(Settings(mode_e=True, timeout_ms=2000), line.reader, progress=progress.append) as s:
        assert s.handover is not None and s.handover.baud == 9600
        _check_readout(model, s, 24, full=True)
    assert not srv.connected
    assert any(p.startswith("identification") for p in progress)
