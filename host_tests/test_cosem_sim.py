"""optoread.cosem through the real session against the simulated DLMS meter (CPython only).

Values are compared with the simulator model's own expectations (deterministic functions
of the row index), over several link/association configurations.
"""

import pytest
from optoread.dlms.client import session  # noqa: E402

sim = pytest.importorskip("optoread_tools.sim_dlms",
                          reason="optoread_tools.sim_dlms (SIMULATOR task) is not present")

from optoread.dlms.axdr import decode as axdr  # noqa: E402
from optoread.dlms.cosem import association as cosem_association  # noqa: E402
from optoread.dlms.cosem import base as cosem  # noqa: E402
from optoread.dlms.cosem import profile as cosem_profile  # noqa: E402
from optoread.dlms.cosem import register as cosem_register  # noqa: E402
from optoread.errors import DataAccessError  # noqa: E402

Settings, Session = session.Settings, session.Session
DlmsServer, MeterModel, ServerTransport = sim.DlmsServer, sim.MeterModel, sim.ServerTransport

EK = bytes(range(16))
AK = bytes(range(16, 32))
BLOCK_LOAD = "1.0.99.1.0.255"
IST = -330


def open_session(model=None, server_kw=None, **settings_kw):
    """(Session, server, transport) against a fresh simulator; the caller uses ``with``."""
    srv = DlmsServer(model if model is not None else MeterModel(rows=96), **(server_kw or {}))
    tr = ServerTransport(srv)
    return Session(Settings(**settings_kw), tr), srv, tr


def plain(row):
    """A delivered row in the simulator's expected_rows form (clock cells as 12 octets)."""
    return tuple(c.to_bytes() if isinstance(c, axdr.DateTime) else c for c in row)


def local(model, i):
    """DateTime of block-load row i in the meter's local time with its deviation."""
    t = axdr.DateTime.from_epoch(model.row_time(BLOCK_LOAD, i), axdr.DEVIATION_UNSPECIFIED, 0, 0)
    t.deviation = model.deviation
    return t


CONFIGS = {
    "hdlc-128": ({}, {"max_info": 128}),
    "hdlc-largest": ({"max_info": 2030}, {}),
    "wrapper": ({"link": "wrapper"}, {"link": "wrapper"}),
    "lls": ({"client": 32, "auth": "low", "password": b"12345678"},
            {"client": 32, "auth": "low", "password": b"12345678"}),
    "hls": ({"client": 48, "auth": "hls", "ek": EK, "ak": AK},
            {"client": 48, "auth": "hls", "ek": EK, "ak": AK}),
    "sn": ({"ln": False}, {"ln": False}),
}


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_full_readout(name):
    server_kw, settings_kw = CONFIGS[name]
    model = MeterModel(rows=96)
    sess, srv, tr = open_session(model, server_kw, **settings_kw)
    ln = settings_kw.get("ln", True)
    with sess:
        # object list
        objs = []
        assert cosem_association.browse(sess, objs.append, ln=ln) == len(objs) > 10
        listed = {(o[0], o[2]) for o in objs}
        for cls, _ver, ob, _acc in model.objects:
            if cls != (15 if not ln else 12):
                assert (cls, ob) in listed
        # every register
        regs = [(o[0], o[2]) for o in objs if o[0] in (3, 4, 5)]
        cache = {}
        values = cosem_register.read_registers(sess, regs, cache)
        for (_cls, ob), v in zip(regs, values):
            assert isinstance(v, cosem.Value), (ob, v)
            assert (v.raw, v.scaler, v.unit_code) == model.expected_register(ob), ob
        md = cosem_register.read_register(sess, "1.0.1.6.0.255", cosem.CLASS_EXTENDED_REGISTER, cache)
        assert isinstance(md.capture_time, axdr.DateTime) and md.status == 0
        # clock
        now = cosem.Clock().read(sess)
        assert now.to_bytes() == model.clock_bytes()
        # the profile by range and by entry
        pg = cosem_profile.ProfileGeneric(BLOCK_LOAD)
        rows = []
        n = pg.read_range(sess, local(model, 10), local(model, 19), rows.append)
        assert n == 10 and [plain(r) for r in rows] == model.expected_rows(BLOCK_LOAD, 10, 20)
        rows = []
        assert pg.read_entries(sess, 90, 0, rows.append) == 7
        assert [plain(r) for r in rows] == model.expected_rows(BLOCK_LOAD, 89, 96)
    assert not srv.connected and sess.is_open is False


def test_profile_2880_rows_by_range_entry_and_all_with_largest_frames():
    model = MeterModel(rows=2880)
    sess, srv, tr = open_session(model, {"max_info": 2030})
    with sess:
        pg = cosem_profile.ProfileGeneric(BLOCK_LOAD)
        count = [0]
        first = []

        def sink(row):
            if count[0] < 3:
                first.append(plain(row))
            assert plain(row) == model.expected_rows(BLOCK_LOAD, count[0], count[0] + 1)[0]
            count[0] += 1

        assert pg.read_all(sess, sink) == 2880 == count[0]
        count[0] = 0
        assert pg.read_range(sess, local(model, 0), local(model, 2879), sink) == 2880
        count[0] = 2000
        assert pg.read_entries(sess, 2001, 2880, sink) == 880 and count[0] == 2880
        assert pg.entries_in_use(sess) == 2880
    assert not srv.connected


def test_sort_column_not_first_and_compressed_clock():
    model = MeterModel(rows=200, sort_not_first=True, compressed=True)
    sess, srv, tr = open_session(model, {"quirks": {"sort_not_first"}, "compressed": True})
    with sess:
        pg = cosem_profile.ProfileGeneric(BLOCK_LOAD)
        assert pg.clock_column(sess) == 1
        rows = []
        assert pg.read_range(sess, local(model, 50), local(model, 99), rows.append) == 50
        assert [plain(r) for r in rows] == model.expected_rows(BLOCK_LOAD, 50, 100)
        assert all(isinstance(r[1], axdr.DateTime) for r in rows)
        rows = []
        pg.read_entries(sess, 1, 20, rows.append, from_col=2, to_col=3)
        assert [plain(r) for r in rows] == model.expected_rows(BLOCK_LOAD, 0, 20, columns=[1, 2])
    assert not srv.connected


@pytest.mark.parametrize("how", ["error", "empty"])
def test_meter_rejecting_deviation(how):
    model = MeterModel(rows=96)
    sess, srv, tr = open_session(model, {"quirks": {"rejects_deviation"}, "deviation_reject": how})
    with sess:
        pg = cosem_profile.ProfileGeneric(BLOCK_LOAD)
        f, t = local(model, 4), local(model, 7)
        want = model.expected_rows(BLOCK_LOAD, 4, 8)
        rows = []
        if how == "error":
            with pytest.raises(DataAccessError):
                pg.read_range(sess, f, t, rows.append)
            assert pg.read_range(sess, f, t, rows.append, no_deviation="auto") == 4
            assert [plain(r) for r in rows] == want
            rows = []
        assert pg.read_range(sess, f, t, rows.append, no_deviation=True) == 4
        assert [plain(r) for r in rows] == want


def test_column_scalers_from_registers_and_scaler_profile():
    model = MeterModel(rows=10)
    sess, srv, tr = open_session(model)
    with sess:
        pg = cosem_profile.ProfileGeneric(BLOCK_LOAD)
        a = pg.column_scalers(sess)
        b = pg.column_scalers(sess, "1.0.94.91.4.255")
        assert a == b
        cos = pg.capture_objects(sess)
        for co, sc in zip(cos, a):
            if co[0] == 8:
                assert sc is None
            else:
                assert sc == model.expected_register(co[1])[1:]
        rows = []
        pg.read_entries(sess, 3, 3, rows.append, scalers=a)
        raw = model.expected_rows(BLOCK_LOAD, 2, 3)[0]
        v = rows[0][1]
        assert isinstance(v, cosem.Value) and v.raw == raw[1] and v.scaler == -2 and v.unit == "V"
        # instantaneous profile scaled by its IS 15959 scaler profile (1.0.94.91.3.255)
        inst = cosem_profile.ProfileGeneric("1.0.94.91.0.255")
        sc = inst.column_scalers(sess, "1.0.94.91.3.255")
        rows = []
        assert inst.read_all(sess, rows.append, scalers=sc) == 1
        volts = rows[0][1]
        assert volts.text == "230.12" and volts.unit == "V"


def test_clock_set_needs_privileged_association_and_shift():
    model = MeterModel(rows=10)
    sess, srv, tr = open_session(model, {"client": 32, "auth": "low", "password": b"12345678"})
    new = axdr.DateTime(2026, 6, 1, 12, 0, 0, 0, IST, 0, axdr.weekday(2026, 6, 1))
    with sess:
        with pytest.raises(DataAccessError) as e:
            cosem.Clock().set(sess, new)
        assert "privileged" in str(e.value)
    sess, srv2, tr = open_session(model, {"client": 32, "auth": "low", "password": b"12345678"},
                                  client=32, auth="low", password=b"12345678")
    with sess:
        c = cosem.Clock()
        c.set(sess, new)
        assert c.read(sess).as_tuple() == new.as_tuple()
        c.shift_time(sess, 30)
        assert c.read(sess).as_tuple() == (2026, 6, 1, 12, 0, 30)
        assert c.time_zone(sess) == IST
    assert not srv2.connected


def test_browse_access_rights_and_sn_base_names():
    model = MeterModel(rows=10)
    sess, srv, tr = open_session(model)
    with sess:
        objs = []
        cosem_association.browse(sess, objs.append)
    clock = [o for o in objs if o[0] == 8][0]
    attrs, methods = clock[3]
    assert attrs[1][:2] == (2, 1) and all(len(a) == 3 for a in attrs)
    sess, srv, tr = open_session(model, {"ln": False}, ln=False)
    with sess:
        objs = []
        cosem_association.browse(sess, objs.append, ln=False)
    names = {o[2]: o[3] for o in objs}
    assert names[b"\x00\x00\x28\x00\x00\xff"] == 0xFA00
    assert all(0 <= bn <= 0xFFFF for bn in names.values())
