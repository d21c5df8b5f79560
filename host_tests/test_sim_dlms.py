"""CPython only: the simulated DLMS/COSEM meter (tools/optoread_tools/sim_dlms.py).

Scripted frames built from the firmware codecs drive ``DlmsServer.receive``; a tiny
client (``Client`` below, firmware codecs only) checks values against the model's
``expected_*`` helpers; every quirk is exercised. gurux-dlms's client is the independent
peer in ``test_gurux_*`` at the end.
"""

import os
import socket

import pytest
from optoread.dlms import security, wrapper
from optoread.dlms.acse import apdu as acse
from optoread.dlms.axdr import decode as axdr
from optoread.dlms.axdr import encode as axdr_encode
from optoread.dlms.hdlc import connection as hdlc_conn
from optoread.dlms.hdlc import frame as hdlc
from optoread.dlms.xdlms import apdu as xdlms
from optoread.dlms.xdlms import get as xdlms_get
from optoread.dlms.xdlms import set_action as xdlms_set
from optoread.dlms.xdlms import sn as xdlms_sn
from optoread.errors import LinkError, OptoreadError
from optoread_tools.sim_dlms import DlmsServer, HdlcMeter, ModeEMeter, ServerTransport, serve_tcp
from optoread_tools.sim_dlms_model import MeterModel, ob

A = axdr
T = axdr_encode  # the Data tags
EK = bytes(range(16))
AK = bytes(range(16, 32))
CLIENT_ST = b"OPTOREAD"


class Client:
    """Minimal DLMS client on the firmware codecs: HDLC (or wrapper) + AARQ + GET/SET/ACTION/SN."""

    def __init__(self, server, client=16, max_info=128, window=1, address=None, auth=None,
                 password=None, ln=True, ciphered=False, max_pdu=0xFFFF, link=None):
        self.s = server
        self.client = client
        self.link = link or server.link
        self.addr = address if address is not None else server.server_address
        self.conn = hdlc_conn.HdlcConnection(hdlc.encode_client_address(client), self.addr,
                                             max_info_tx=max_info, max_info_rx=max_info,
                                             window_tx=window, window_rx=window, rx_capacity=70000)
        self.rx = hdlc.FrameReceiver(0x7FF)
        self.auth = auth
        self.password = password
        self.ln = ln
        self.ciphered = ciphered
        self.max_pdu = max_pdu
        self.ic = 1
        self.invoke = 0xC1
        self.aare = None
        self.blocks = 0

    # -- link
    def _pump(self, data):
        """Send bytes, run the reply through the connection until an event other than NONE."""
        reply = self.s.receive(bytes(data))
        events = []
        off = 0
        while True:
            off = self.rx.feed(reply, off)
            if not self.rx.ready:
                break
            ev = self.conn.receive_frame(self.rx.frame)
            if self.conn.out_len:
                more = bytes(self.conn.output())
                events += self._pump(more)
            events.append(ev)
        return events

    def connect(self):
        if self.link == "wrapper":
            return
        n = self.conn.connect()
        evs = self._pump(self.conn.out[:n])
        assert hdlc_conn.EV_CONNECTED in evs, evs

    def request(self, apdu):
        if self.ciphered and apdu[0] not in (0x60, 0x62):
            glo = {0xC0: 0xC8, 0xC1: 0xC9, 0xC3: 0xCB, 0x05: 0x25, 0x06: 0x26}[apdu[0]]
            self.ic += 1
            apdu = security.wrap_service(glo, 0x30, self.ic, EK, AK, apdu, CLIENT_ST)
        if self.link == "wrapper":
            reply = self.s.receive(wrapper.wrap(self.client, 1, apdu))
            r = wrapper.WrapperReceiver(70000)
            r.feed(reply)
            assert r.ready
            data = bytes(r.apdu())
        else:
            self.conn.send(bytearray(hdlc.LLC_REQUEST) + apdu)
            evs = self._pump(bytes(self.conn.output()))
            assert hdlc_conn.EV_DATA in evs, evs
            d = self.conn.data()
            data = bytes(d[hdlc.strip_llc(d, 0, len(d), True):])
        if self.ciphered and data and (xdlms.is_ciphered(data[0]) or data[0] == 0xDB):
            data, _info = security.unwrap(data, EK, AK, self.s.system_title)
        return data

    def associate(self, expect_ok=True):
        self.connect()
        buf = bytearray(512)
        mech = {None: None, "low": "lls", "hls": "hls-gmac"}[self.auth]
        ui = None
        conf = acse.DEFAULT_CONFORMANCE if self.ln else acse.DEFAULT_CONFORMANCE_SN
        if self.ciphered:
            b = bytearray(32)
            k = acse.encode_initiate_request(b, 0, conf, self.max_pdu)
            ui = security.wrap_service(0x21, 0x30, self.ic, EK, AK, bytes(b[:k]), CLIENT_ST)
        n = acse.encode_aarq(buf, 0, ln=self.ln, ciphered=self.ciphered, mechanism=mech,
                             calling_ap_title=CLIENT_ST if (self.ciphered or self.auth == "hls") else None,
                             auth_value=self.password if self.auth == "low"
                             else (b"C" * 16 if self.auth == "hls" else None),
                             conformance=conf, max_pdu=self.max_pdu, user_information=ui)
        reply = self.request(bytes(buf[:n]))
        self.aare = acse.parse_aare(reply)
        if expect_ok:
            self.aare.check()
        if self.auth == "hls" and self.aare.accepted:
            self.ic += 1
            f = security.hls_gmac(CLIENT_ST, self.ic, EK, AK, self.aare.auth_value)
            r = self.action(15, "0.0.40.0.0.255", 1, T.encode_to_bytes(T.OCTET_STRING, f))
            security.verify_hls_gmac(r, self.s.system_title, EK, AK, b"C" * 16)
        return self.aare

    def release(self):
        buf = bytearray(16)
        reply = self.request(bytes(buf[:acse.encode_rlrq(buf, 0)]))
        assert reply[0] == xdlms.RLRE
        if self.link == "hdlc":
            n = self.conn.disconnect()
            evs = self._pump(self.conn.out[:n])
            assert hdlc_conn.EV_DISCONNECTED in evs

    # -- services
    def get_raw(self, cls, obis, attr, selector=0, params=None):
        """The complete A-XDR encoding of the attribute (blocks joined)."""
        if isinstance(obis, str):
            obis = ob(obis)
        buf = bytearray(256)
        n = xdlms_get.encode_get_request(buf, 0, self.invoke, cls, obis, attr, selector, params)
        r = xdlms_get.parse_get_response(self.request(bytes(buf[:n])))
        if r.kind == xdlms.NORMAL:
            return bytes(r.data())
        raw = bytearray()
        while True:
            self.blocks += 1
            raw += r.data()
            if r.last:
                return bytes(raw)
            n = xdlms_get.encode_get_request_next(buf, 0, self.invoke, r.block)
            r = xdlms_get.parse_get_response(self.request(bytes(buf[:n])))

    def get(self, cls, obis, attr, selector=0, params=None):
        raw = self.get_raw(cls, obis, attr, selector, params)
        v, end = A.decode(raw, 0, len(raw), 16)
        assert end == len(raw)
        return v

    def get_list(self, items):
        buf = bytearray(1024)
        items = [(c, ob(o) if isinstance(o, str) else o, a) for c, o, a in items]
        n = xdlms_get.encode_get_request_list(buf, 0, self.invoke, items)
        r = xdlms_get.parse_get_response(self.request(bytes(buf[:n])))
        out = []
        for it in r.items:
            out.append(it.dar if it.kind == xdlms.ITEM_ERROR else A.decode(r.mv, it.off, it.end)[0])
        return out

    def set(self, cls, obis, attr, data):
        buf = bytearray(len(data) + 64)
        n = xdlms_set.encode_set_request(buf, 0, self.invoke, cls, ob(obis), attr, data)
        return xdlms_set.parse_set_response(self.request(bytes(buf[:n])), strict=False).dar

    def action(self, cls, obis, method, params=None):
        buf = bytearray(256)
        n = xdlms_set.encode_action_request(buf, 0, self.invoke, cls, ob(obis), method, params)
        r = xdlms_set.parse_action_response(self.request(bytes(buf[:n])), strict=False)
        if r.result:
            return ("result", r.result)
        return r.value()


def range_params(obis_restrict_col, from_dt, to_dt, no_deviation=False, columns=None):
    buf = bytearray(512)
    n = xdlms.encode_range_descriptor(buf, 0, obis_restrict_col, from_dt, to_dt, columns, no_deviation)
    return bytes(buf[:n])


def entry_params(fe, te=0, fc=1, tc=0):
    buf = bytearray(32)
    return bytes(buf[:xdlms.encode_entry_descriptor(buf, 0, fe, te, fc, tc)])


CLOCK_COL = (8, ob("0.0.1.0.0.255"), 2, 0)


def local_dt(model, epoch, deviation=None):
    y, mo, d, h, mi, s, wd = A.from_epoch(epoch)
    return A.DateTime(y, mo, d, h, mi, s, 0, model.deviation if deviation is None else deviation, 0, wd)


# ---------------------------------------------------------------- basics


def test_registers_clock_and_serial():
    m = MeterModel(rows=96)
    s = DlmsServer(m)
    c = Client(s)
    c.associate()
    for cls, _v, obis, _a in m.objects:
        if cls in (3, 4, 5):
            value, scaler, unit = m.expected_register(obis)
            su_attr = 4 if cls == 5 else 3
            assert c.get(cls, obis, 2) == value
            assert c.get(cls, obis, su_attr) == (scaler, unit)
    assert c.get(1, "0.0.96.1.0.255", 2) == m.serial.encode()
    clk = c.get(8, "0.0.1.0.0.255", 2)
    dt = A.DateTime.from_bytes(clk)
    assert dt.local_epoch() == m.clock_epoch and dt.deviation == -330
    assert c.get(3, "1.0.1.8.0.255", 1) == ob("1.0.1.8.0.255")
    c.release()
    assert not s.connected and s.assoc is None


def test_get_errors_and_list():
    s = DlmsServer(MeterModel(rows=8))
    c = Client(s)
    c.associate()
    with pytest.raises(OptoreadError) as e:
        c.get(3, "1.0.99.99.0.255", 2)
    assert e.value.result == 4
    res = c.get_list([(3, "1.0.32.7.0.255", 2), (3, "9.9.9.9.9.9", 2), (8, "0.0.1.0.0.255", 4)])
    assert res == [23012, 4, 0]


def test_profile_full_read_block_transfer_max_info_128():
    m = MeterModel(rows=2880)
    s = DlmsServer(m, max_info=128)
    c = Client(s, max_info=128)
    c.associate()
    assert c.get(7, "1.0.99.1.0.255", 7) == 2880
    assert c.get(7, "1.0.99.1.0.255", 4) == 900
    rows = c.get(7, "1.0.99.1.0.255", 2)
    assert len(rows) == 2880 and c.blocks > 100
    assert rows == m.expected_rows("1.0.99.1.0.255", 0, 2880)
    cols = c.get(7, "1.0.99.1.0.255", 3)
    assert cols[0] == (8, ob("0.0.1.0.0.255"), 2, 0) and len(cols) == 7


def test_profile_largest_max_info_and_window():
    m = MeterModel(rows=300)
    s = DlmsServer(m, max_info=2030, window=7, max_pdu=0xFFFF)
    c = Client(s, max_info=2030, window=7)
    c.associate()
    assert c.conn.max_info_tx == 2030 and c.conn.window_tx == 7
    assert c.get(7, "1.0.99.1.0.255", 2) == m.expected_rows("1.0.99.1.0.255")


def test_profile_by_range_and_entry():
    m = MeterModel(rows=2880)
    s = DlmsServer(m)
    c = Client(s)
    c.associate()
    t0 = m.start_epoch
    frm, to = local_dt(m, t0 + 96 * 900), local_dt(m, t0 + 191 * 900)
    rows = c.get(7, "1.0.99.1.0.255", 2, 1, range_params(CLOCK_COL, frm, to))
    assert rows == m.expected_rows("1.0.99.1.0.255", 96, 192)
    # unspecified deviation is meter local time too
    rows = c.get(7, "1.0.99.1.0.255", 2, 1, range_params(CLOCK_COL, frm, to, no_deviation=True))
    assert len(rows) == 96
    # a UTC instant (deviation 0) is converted to the meter's local time
    rows = c.get(7, "1.0.99.1.0.255", 2, 1, range_params(
        CLOCK_COL, local_dt(m, t0 + 96 * 900 - 330 * 60, 0), local_dt(m, t0 + 96 * 900 - 330 * 60, 0)))
    assert rows == m.expected_rows("1.0.99.1.0.255", 96, 97)
    # selected columns
    rows = c.get(7, "1.0.99.1.0.255", 2, 1, range_params(CLOCK_COL, frm, frm, columns=[
        (3, ob("1.0.1.29.0.255"), 2, 0)]))
    assert rows == m.expected_rows("1.0.99.1.0.255", 96, 97, columns=[3])
    # by entry: entries 1-based, columns 1-based
    rows = c.get(7, "1.0.99.1.0.255", 2, 2, entry_params(10, 19, 2, 3))
    assert rows == m.expected_rows("1.0.99.1.0.255", 9, 19, columns=[1, 2])
    rows = c.get(7, "1.0.98.1.0.255", 2, 2, entry_params(1, 0))
    assert rows == m.expected_rows("1.0.98.1.0.255") and len(rows) == 12


def test_every_profile_readable_and_matches_model():
    m = MeterModel(rows=192)
    s = DlmsServer(m)
    c = Client(s)
    c.associate()
    n = 0
    for cls, _v, obis, _a in m.objects:
        if cls != 7:
            continue
        n += 1
        rows = c.get(7, obis, 2)
        exp = m.expected_rows(obis)
        assert rows == exp, obis
        caps = c.get(7, obis, 3)
        assert len(caps) == len(rows[0])
    assert n == 17  # instantaneous, block, daily, billing, 7 event logs, name plate, 5 scaler profiles (3..7)


# ---------------------------------------------------------------- authentication, SET, ACTION


def test_lls_password_and_clock_set():
    m = MeterModel(rows=8)
    s = DlmsServer(m, client=32, auth="low", password=b"ABCDEFGH")
    bad = Client(s, client=32, auth="low", password=b"wrong")
    aare = bad.associate(expect_ok=False)
    assert not aare.accepted and aare.diagnostic == acse.DIAG_AUTHENTICATION_FAILURE
    c = Client(s, client=32, auth="low", password=b"ABCDEFGH")
    c.associate()
    new = local_dt(m, m.start_epoch + 12345)
    assert c.set(8, "0.0.1.0.0.255", 2, T.encode_to_bytes(T.OCTET_STRING, new.to_bytes())) == 0
    assert A.DateTime.from_bytes(c.get(8, "0.0.1.0.0.255", 2)).local_epoch() == m.start_epoch + 12345
    assert c.action(8, "0.0.1.0.0.255", 6, T.encode_to_bytes(T.LONG, -45)) is None
    assert m.clock_epoch == m.start_epoch + 12300
    assert c.action(8, "0.0.1.0.0.255", 6, T.encode_to_bytes(T.LONG, 5000)) == ("result", 250)
    # object list access rights differ between the clients
    ol = {o[2]: o[3] for o in c.get(15, "0.0.40.0.0.255", 2)}
    assert (2, 3, None) in ol[ob("0.0.1.0.0.255")][0]
    c.release()
    # the public client may read but not set
    p = Client(s, client=16)
    p.associate()
    assert p.set(8, "0.0.1.0.0.255", 2, T.encode_to_bytes(T.OCTET_STRING, new.to_bytes())) == 3
    assert p.action(8, "0.0.1.0.0.255", 6, T.encode_to_bytes(T.LONG, 1)) == ("result", 3)
    ol = {o[2]: o[3] for o in p.get(15, "0.0.40.0.0.255", 2)}
    assert (2, 1, None) in ol[ob("0.0.1.0.0.255")][0]


def test_hls_gmac_and_ciphered_association():
    m = MeterModel(rows=500)
    s = DlmsServer(m, client=48, auth="hls", ek=EK, ak=AK)
    c = Client(s, client=48, auth="hls", ciphered=True, max_pdu=512)
    c.associate()
    assert s.assoc.authenticated and s.assoc.ciphered
    assert c.get(3, "1.0.1.8.0.255", 2) == m.expected_register("1.0.1.8.0.255")[0]
    assert c.get(7, "1.0.99.1.0.255", 2) == m.expected_rows("1.0.99.1.0.255")
    assert c.blocks > 10
    # a plain request inside a ciphered association is refused
    c.ciphered = False
    buf = bytearray(64)
    n = xdlms_get.encode_get_request(buf, 0, 0xC1, 3, ob("1.0.1.8.0.255"), 2)
    assert c.request(bytes(buf[:n]))[0] == xdlms.EXCEPTION_RESPONSE


def test_hls_wrong_reply_denied():
    s = DlmsServer(MeterModel(rows=8), client=48, auth="hls", ek=EK, ak=AK)
    c = Client(s, client=48, auth=None)
    c.connect()
    buf = bytearray(256)
    n = acse.encode_aarq(buf, 0, mechanism="hls-gmac", calling_ap_title=CLIENT_ST, auth_value=b"C" * 16)
    aare = acse.parse_aare(c.request(bytes(buf[:n])))
    assert aare.accepted and aare.diagnostic == acse.DIAG_AUTHENTICATION_REQUIRED
    # before pass 3/4 nothing is readable
    with pytest.raises(OptoreadError):
        c.get(3, "1.0.1.8.0.255", 2)
    f = security.hls_gmac(CLIENT_ST, 5, EK, bytes(16), aare.auth_value)  # wrong AK
    assert c.action(15, "0.0.40.0.0.255", 1, T.encode_to_bytes(T.OCTET_STRING, f)) == ("result", 3)
    assert not s.assoc.authenticated


def test_set_block_transfer_and_with_list():
    m = MeterModel(rows=8)
    s = DlmsServer(m, client=32, auth="low", password=b"ABCDEFGH", max_pdu=256)
    c = Client(s, client=32, auth="low", password=b"ABCDEFGH")
    c.associate()
    big = bytes(range(256)) * 3
    data = T.encode_to_bytes(T.OCTET_STRING, big)
    buf = bytearray(2048)
    step = 200
    chunks = [data[i:i + step] for i in range(0, len(data), step)]
    for k, ch in enumerate(chunks, 1):
        last = k == len(chunks)
        if k == 1:
            n = xdlms_set.encode_set_request_first_block(buf, 0, 0xC1, 1, ob("0.0.96.128.0.255"), 2, last, k,
                                                         ch)
        else:
            n = xdlms_set.encode_set_request_block(buf, 0, 0xC1, last, k, ch)
        r = xdlms_set.parse_set_response(c.request(bytes(buf[:n])))
        assert r.block == k
    assert r.kind == xdlms_set.SET_RESPONSE_LAST_DATABLOCK and r.dar == 0
    assert c.get(1, "0.0.96.128.0.255", 2) == big
    n = xdlms_set.encode_set_request_list(buf, 0, 0xC1,
                                      [(1, ob("0.0.96.128.0.255"), 2), (3, ob("1.0.1.8.0.255"), 2)],
                                      [T.encode_to_bytes(T.OCTET_STRING, b"x"), T.encode_to_bytes(T.LONG, 1)])
    r = xdlms_set.parse_set_response(c.request(bytes(buf[:n])))
    assert r.results == [0, 3]


def test_sn_referencing():
    m = MeterModel(rows=400)
    s = DlmsServer(m, quirks={"sn_only"})
    lnc = Client(s, ln=True)
    aare = lnc.associate(expect_ok=False)
    assert not aare.accepted
    c = Client(s, ln=False)
    c.associate()
    assert c.aare.initiate.vaa_name == 0xFA00
    buf = bytearray(256)

    def read(names):
        n = xdlms_sn.encode_read_request(buf, 0, names)
        r = xdlms_sn.parse_read_response(c.request(bytes(buf[:n])))
        if r.items[0].kind == xdlms.ITEM_BLOCK:
            raw = bytearray()
            while True:
                it = r.items[0]
                raw += r.mv[it.off:it.end]
                if it.last:
                    return [A.decode(raw, 0, len(raw), 16)[0]]
                n = xdlms_sn.encode_read_request_block(buf, 0, it.block)
                r = xdlms_sn.parse_read_response(c.request(bytes(buf[:n])))
        return [r.value(i) if it.kind == xdlms.ITEM_DATA else it.dar for i, it in enumerate(r.items)]

    ol = read([0xFA00 + 8])[0]
    names = {bytes(o[3]): (o[0] & 0xFFFF, o[1]) for o in ol}
    assert names[ob("0.0.40.0.0.255")] == (0xFA00, 12)
    bn, cls = names[ob("1.0.1.8.0.255")]
    assert read([bn + 8, bn + 16]) == [m.expected_register("1.0.1.8.0.255")[0], (0, 30)]
    bn, cls = names[ob("1.0.99.1.0.255")]
    assert read([bn + 8]) == [m.expected_rows("1.0.99.1.0.255")]
    t0 = m.start_epoch
    p = range_params(CLOCK_COL, local_dt(m, t0), local_dt(m, t0 + 9 * 900))
    assert read([(bn + 8, 1, p)]) == [m.expected_rows("1.0.99.1.0.255", 0, 10)]
    assert read([(bn + 8, 2, entry_params(3, 4))]) == [m.expected_rows("1.0.99.1.0.255", 2, 4)]
    n = xdlms_sn.encode_write_request(buf, 0, [names[ob("0.0.1.0.0.255")][0] + 8],
                                   [T.encode_to_bytes(T.OCTET_STRING, bytes(12))])
    r = xdlms_sn.parse_write_response(c.request(bytes(buf[:n])))
    assert r.items[0].dar == 3  # public client: read only


def test_wrapper_link():
    m = MeterModel(rows=300)
    s = DlmsServer(m, link="wrapper", max_pdu=512)
    c = Client(s)
    c.associate()
    assert c.get(7, "1.0.99.1.0.255", 2) == m.expected_rows("1.0.99.1.0.255")
    c.release()
    assert s.stats["releases"] == 1


# ---------------------------------------------------------------- gurux-dlms as the independent client


class GuruxReader:
    """gurux-dlms's GXDLMSClient talking to ``server.receive`` in process."""

    def __init__(self, server, client=16, auth=None, password=None, ln=True):
        g = pytest.importorskip("gurux_dlms")
        from gurux_dlms.enums import Authentication, InterfaceType

        self.g = g
        self.s = server
        a = {None: Authentication.NONE, "low": Authentication.LOW}[auth]
        iface = InterfaceType.HDLC if server.link == "hdlc" else InterfaceType.WRAPPER
        self.c = g.GXDLMSClient(ln, client, 1, a, password, iface)

    def _packet(self, data, reply):
        g = self.g
        notify = g.GXReplyData()
        rx = g.GXByteBuffer(self.s.receive(bytes(data)))
        assert self.c.getData(rx, reply, notify), "incomplete reply"

    def _block(self, data, reply):
        from gurux_dlms.enums import RequestTypes

        if data is None:
            return
        if not isinstance(data, list):
            data = [data]
        for d in data:
            reply.clear()
            self._packet(d, reply)
            while reply.isMoreData():
                if reply.isStreaming():
                    nxt = None
                else:
                    nxt = self.c.receiverReady(reply)
                if nxt is None and reply.moreData == RequestTypes.NONE:
                    break
                self._packet(nxt, reply)

    def open(self):
        g = self.g
        reply = g.GXReplyData()
        if self.s.link == "hdlc":
            self._packet(self.c.snrmRequest(), reply)
            self.c.parseUAResponse(reply.data)
            reply.clear()
        self._block(self.c.aarqRequest(), reply)
        self.c.parseAareResponse(reply.data)

    def read(self, obj, attr):
        reply = self.g.GXReplyData()
        self._block(self.c.read(obj, attr), reply)
        return self.c.updateValue(obj, attr, reply.value)

    def objects(self):
        reply = self.g.GXReplyData()
        self._block(self.c.getObjectsRequest(), reply)
        return self.c.parseObjects(reply.data, True)

    def rows_by_range(self, pg, start, end):
        reply = self.g.GXReplyData()
        self._block(self.c.readRowsByRange(pg, start, end), reply)
        return self.c.updateValue(pg, 2, reply.value)

    def rows_by_entry(self, pg, index, count):
        reply = self.g.GXReplyData()
        self._block(self.c.readRowsByEntry(pg, index, count), reply)
        return self.c.updateValue(pg, 2, reply.value)

    def close(self):
        reply = self.g.GXReplyData()
        self._block(self.c.releaseRequest(), reply)
        reply.clear()
        if self.s.link == "hdlc":
            self._packet(self.c.disconnectRequest(), reply)


def _gurux_profile(r, obis):
    from gurux_dlms.objects import GXDLMSProfileGeneric

    pg = GXDLMSProfileGeneric(obis)
    r.read(pg, 3)
    r.read(pg, 4)
    return pg


def test_gurux_reads_registers_clock_object_list():
    from gurux_dlms.objects import GXDLMSClock, GXDLMSData, GXDLMSRegister

    m = MeterModel(rows=96)
    s = DlmsServer(m, max_info=128)
    r = GuruxReader(s)
    r.open()
    objs = r.objects()
    got = sorted((o.objectType.value if hasattr(o.objectType, "value") else int(o.objectType), o.logicalName)
                 for o in objs)
    want = sorted((cls, ".".join(str(x) for x in obis)) for cls, _v, obis, _a in m.objects if cls != 12)
    assert got == want
    for obis in ("1.0.1.8.0.255", "1.0.32.7.0.255", "1.0.13.7.0.255", "1.0.31.7.0.255"):
        reg = GXDLMSRegister(obis)
        r.read(reg, 3)
        r.read(reg, 2)
        value, scaler, unit = m.expected_register(obis)
        assert reg.scaler == 10 ** scaler or reg.scaler == scaler
        assert reg.unit == unit or int(reg.unit) == unit
        assert abs(reg.value - value * 10 ** scaler) < 1e-9
    clk = GXDLMSClock("0.0.1.0.0.255")
    r.read(clk, 2)
    t = clk.time.value
    assert (t.year, t.month, t.day, t.hour, t.minute) == A.from_epoch(m.clock_epoch)[:5]
    d = GXDLMSData("0.0.96.1.0.255")
    r.read(d, 2)
    assert bytes(d.value) == m.serial.encode() or d.value == m.serial
    r.close()
    assert not s.connected


def test_gurux_reads_profile_by_range_and_entry():
    import datetime

    m = MeterModel(rows=2880)
    s = DlmsServer(m, max_info=128)
    r = GuruxReader(s)
    r.open()
    pg = _gurux_profile(r, "1.0.99.1.0.255")
    assert len(pg.captureObjects) == 7
    # gurux writes the zone of an aware datetime as the deviation; IST is the meter's own zone
    t0 = datetime.datetime(*m.start, tzinfo=datetime.timezone(datetime.timedelta(minutes=330)))
    rows = r.rows_by_range(pg, t0 + datetime.timedelta(hours=24), t0 + datetime.timedelta(hours=30))
    exp = m.expected_rows("1.0.99.1.0.255", 96, 96 + 25)
    assert len(pg.buffer) == len(exp) == 25
    for row, e in zip(pg.buffer, exp):
        assert list(row[1:]) == list(e[1:])
        ts = A.DateTime.from_bytes(e[0])
        assert (row[0].value.day, row[0].value.hour, row[0].value.minute) == (ts.day, ts.hour, ts.minute)
    r.rows_by_entry(pg, 2881 - 10, 10)
    exp = m.expected_rows("1.0.99.1.0.255", 2870, 2880)
    assert [list(x[1:]) for x in pg.buffer] == [list(e[1:]) for e in exp]
    bill = _gurux_profile(r, "1.0.98.1.0.255")
    r.rows_by_entry(bill, 1, 12)
    assert [list(x[1:4]) for x in bill.buffer] == [list(e[1:4]) for e in m.expected_rows("1.0.98.1.0.255")]
    r.close()
    del rows


def test_gurux_reads_over_wrapper_with_lls():
    from gurux_dlms.objects import GXDLMSRegister

    m = MeterModel(rows=8)
    s = DlmsServer(m, client=32, auth="low", password=b"ABCDEFGH", link="wrapper")
    r = GuruxReader(s, client=32, auth="low", password=b"ABCDEFGH")
    r.open()
    reg = GXDLMSRegister("1.0.1.8.0.255")
    r.read(reg, 2)
    assert reg.value == m.expected_register("1.0.1.8.0.255")[0]
    r.close()


# ---------------------------------------------------------------- quirks


def _snrm(server_addr, client=16):
    buf = bytearray(64)
    n = hdlc.encode_snrm(buf, 0, server_addr, hdlc.encode_client_address(client))
    return bytes(buf[:n])


def _frames(data):
    rx = hdlc.FrameReceiver(0x7FF)
    out = []
    off = 0
    while True:
        off = rx.feed(data, off)
        if not rx.ready:
            return out
        out.append((rx.frame.kind, rx.frame.raw()))


def test_quirk_echo():
    s = DlmsServer(MeterModel(rows=4), quirks={"echo"})
    req = _snrm(s.server_address)
    out = s.receive(req)
    assert out.startswith(req)
    assert [k for k, _r in _frames(out)] == ["SNRM", "UA"]
    # the firmware connection recognises its own echo
    c = Client(s)
    c.associate()
    assert c.conn.echoes > 0
    assert c.get(3, "1.0.1.8.0.255", 2) == s.model.expected_register("1.0.1.8.0.255")[0]


def test_quirk_silent_wrong_address():
    wrong = hdlc.encode_server_address(2, None, 1)
    s = DlmsServer(MeterModel(rows=4))
    assert [k for k, _r in _frames(s.receive(_snrm(wrong)))] == ["DM"]
    assert [k for k, _r in _frames(s.receive(_snrm(s.server_address, client=99)))] == ["DM"]
    q = DlmsServer(MeterModel(rows=4), quirks={"silent_wrong_address"})
    assert q.receive(_snrm(wrong)) == b""
    assert q.receive(_snrm(q.server_address, client=99)) == b""
    assert [k for k, _r in _frames(q.receive(_snrm(q.server_address)))] == ["UA"]


def test_quirk_four_byte_address():
    s = DlmsServer(MeterModel(rows=4), quirks={"four_byte_address", "silent_wrong_address"})
    assert len(s.server_address) == 4
    assert s.physical == hdlc.server_address_from_serial(12345678)
    assert s.receive(_snrm(hdlc.encode_server_address(1, None, 1))) == b""
    assert s.receive(_snrm(hdlc.encode_server_address(1, 17, 2))) == b""
    c = Client(s, address=hdlc.encode_server_address(1, s.physical, 4))
    c.associate()
    assert c.get(8, "0.0.1.0.0.255", 4) == 0


def test_quirk_rejects_deviation():
    m = MeterModel(rows=200)
    for mode, expect in (("error", 250), ("empty", [])):
        s = DlmsServer(m, quirks={"rejects_deviation"}, deviation_reject=mode)
        c = Client(s)
        c.associate()
        frm, to = local_dt(m, m.start_epoch), local_dt(m, m.start_epoch + 3600)
        if mode == "error":
            with pytest.raises(OptoreadError) as e:
                c.get(7, "1.0.99.1.0.255", 2, 1, range_params(CLOCK_COL, frm, to))
            assert e.value.result == expect
        else:
            assert c.get(7, "1.0.99.1.0.255", 2, 1, range_params(CLOCK_COL, frm, to)) == expect
        rows = c.get(7, "1.0.99.1.0.255", 2, 1, range_params(CLOCK_COL, frm, to, no_deviation=True))
        assert rows == m.expected_rows("1.0.99.1.0.255", 0, 5)


def test_quirk_sort_not_first():
    s = DlmsServer(quirks={"sort_not_first"}, model=None)
    m = s.model
    c = Client(s)
    c.associate()
    caps = c.get(7, "1.0.99.1.0.255", 3)
    assert caps[1] == CLOCK_COL and caps[0] != CLOCK_COL
    assert c.get(7, "1.0.99.1.0.255", 6) == CLOCK_COL
    frm, to = local_dt(m, m.start_epoch + 900), local_dt(m, m.start_epoch + 1800)
    rows = c.get(7, "1.0.99.1.0.255", 2, 1, range_params(CLOCK_COL, frm, to))
    assert rows == m.expected_rows("1.0.99.1.0.255", 1, 3)
    assert A.DateTime.from_bytes(rows[0][1]).local_epoch() == m.start_epoch + 900
    # restricting on a column that is not the sort object is refused
    with pytest.raises(OptoreadError):
        c.get(7, "1.0.99.1.0.255", 2, 1, range_params((3, ob("1.0.12.27.0.255"), 2, 0), frm, to))


def test_compressed_buffer_nulls_clock_after_first_row():
    m = MeterModel(rows=50)
    s = DlmsServer(m, compressed=True)
    c = Client(s)
    c.associate()
    rows = c.get(7, "1.0.99.1.0.255", 2, 2, entry_params(5, 9))
    exp = m.expected_rows("1.0.99.1.0.255", 4, 9)
    assert rows[0] == exp[0]
    assert all(r[0] is None for r in rows[1:])
    assert [r[1:] for r in rows] == [e[1:] for e in exp]
    # rebuilt from capture_period, the clock cells agree with the model
    t = A.DateTime.from_bytes(rows[0][0]).local_epoch()
    assert [t + i * c.get(7, "1.0.99.1.0.255", 4) for i in range(5)] == [
        m.row_time("1.0.99.1.0.255", i) for i in range(4, 9)]


def test_quirk_frmr_on_bad_frame():
    for quirk in (False, True):
        s = DlmsServer(MeterModel(rows=4), quirks={"frmr_on_bad_frame"} if quirk else ())
        c = Client(s)
        c.associate()
        buf = bytearray(64)
        n = hdlc.encode_i(buf, 0, s.server_address, hdlc.encode_client_address(16), 1, 1, b"\xe6\xe6\x00\xc0")
        bad = bytearray(buf[:n])
        bad[-3] ^= 0xFF  # FCS
        out = s.receive(bytes(bad))
        if quirk:
            assert [k for k, _r in _frames(out)] == ["FRMR"]
        else:
            assert out == b""


def test_quirk_dm_when_disconnected():
    s = DlmsServer(MeterModel(rows=4))
    buf = bytearray(32)
    n = hdlc.encode_rr(buf, 0, s.server_address, hdlc.encode_client_address(16), 0)
    assert s.receive(bytes(buf[:n])) == b""
    n2 = hdlc.encode_disc(buf, 0, s.server_address, hdlc.encode_client_address(16))
    assert [k for k, _r in _frames(s.receive(bytes(buf[:n2])))] == ["DM"]
    q = DlmsServer(MeterModel(rows=4), quirks={"dm_when_disconnected"})
    assert [k for k, _r in _frames(q.receive(bytes(buf[:n])))] == ["DM"]
    c = Client(q)
    c.connect()
    c.conn.state = hdlc_conn.DISCONNECTING
    evs = c._pump(bytes(c.conn.out[:c.conn.disconnect()]))
    assert hdlc_conn.EV_DISCONNECTED in evs
    with pytest.raises(LinkError):
        c.conn.state = hdlc_conn.CONNECTED
        c.request(b"\xc0\x01\xc1\x00\x08\x00\x00\x01\x00\x00\xff\x02\x00")


def test_quirk_slow_on_server_transport():
    s = DlmsServer(MeterModel(rows=4), quirks={"slow"}, slow_ms=1500)
    t = ServerTransport(s)
    t.write(_snrm(s.server_address))
    buf = bytearray(256)
    start = t.ticks_ms()
    assert t.readinto(buf, 1000) == 0
    n = t.readinto(buf, 1000)
    assert n > 0 and [k for k, _r in _frames(bytes(buf[:n]))] == ["UA"]
    assert 1500 <= t.ticks_ms() - start <= 1700


def test_quirk_reset_mid_session():
    s = DlmsServer(MeterModel(rows=4), quirks={"reset_mid_session"}, reset_after=3)
    c = Client(s)
    c.associate()  # APDU 1
    c.get(8, "0.0.1.0.0.255", 4)  # APDU 2
    c.conn.send(bytearray(hdlc.LLC_REQUEST) + b"\xc0\x01\xc1\x00\x08\x00\x00\x01\x00\x00\xff\x02\x00")
    assert s.receive(bytes(c.conn.output())) == b""  # APDU 3: reset while processing
    assert s.stats["resets"] == 1 and not s.connected
    with pytest.raises(LinkError):
        c.conn.timeout()
        c._pump(bytes(c.conn.output()))
    # it comes back: a new connection works and the reset happens only once
    c2 = Client(s)
    c2.associate()
    assert c2.get(8, "0.0.1.0.0.255", 4) == 0


# ---------------------------------------------------------------- carriers: transport, virtual line, pty, TCP


def _raw_session(transport, server, max_info=128):
    """Associate and read the energy register through a transport (SNRM, AARQ, GET, RLRQ, DISC)."""
    conn = hdlc_conn.HdlcConnection(hdlc.encode_client_address(16), server.server_address,
                                    max_info_tx=max_info, max_info_rx=max_info)
    rx = hdlc.FrameReceiver(hdlc.frame_capacity(max_info))
    chunk = bytearray(512)

    def wait(want):
        for _ in range(200):
            n = transport.readinto(chunk, 3000)
            if n == 0:
                raise AssertionError("timeout")
            off = 0
            while True:
                off = rx.feed(chunk, off, n)
                if not rx.ready:
                    break
                ev = conn.receive_frame(rx.frame)
                if conn.out_len:
                    transport.write(bytes(conn.output()))
                if ev == want:
                    return
        raise AssertionError("no event")

    transport.write(bytes(conn.out[:conn.connect()]))
    wait(hdlc_conn.EV_CONNECTED)
    buf = bytearray(256)
    results = []
    for apdu in (
            bytes(buf[:acse.encode_aarq(buf, 0)]),
            bytes(buf[:xdlms_get.encode_get_request(buf, 0, 0xC1, 3, ob("1.0.1.8.0.255"), 2)]),
            bytes(buf[:acse.encode_rlrq(buf, 0)])):
        conn.send(bytearray(hdlc.LLC_REQUEST) + apdu)
        transport.write(bytes(conn.output()))
        wait(hdlc_conn.EV_DATA)
        d = conn.data()
        results.append(bytes(d[3:]))
    transport.write(bytes(conn.out[:conn.disconnect()]))
    wait(hdlc_conn.EV_DISCONNECTED)
    assert acse.parse_aare(results[0]).accepted
    return xdlms_get.parse_get_response(results[1]).value()


def test_server_transport_chunked():
    m = MeterModel(rows=4)
    s = DlmsServer(m)
    t = ServerTransport(s, chunk=7)
    assert _raw_session(t, s) == m.expected_register("1.0.1.8.0.255")[0]
    assert not s.connected


def test_mode_e_meter_on_virtual_line():
    from optoread.driver import Driver
    from optoread.iec62056_21 import signon as iec
    from optoread_tools.vline import VirtualLine

    m = MeterModel(rows=4)
    s = DlmsServer(m, quirks={"echo"})
    meter = ModeEMeter(s)
    line = VirtualLine(meter)
    tr = line.reader
    opts = iec.Options() if hasattr(iec, "Options") else None
    if opts is None or not hasattr(iec, "mode_e"):
        pytest.skip("iec62056_21.mode_e not available")
    Driver(tr).run(iec.mode_e(opts))
    assert meter.state == "hdlc" and line.meter_line[2] == "N"
    assert _raw_session(tr, s) == m.expected_register("1.0.1.8.0.255")[0]
    assert line.stats["echoed"] > 0


def test_direct_hdlc_meter_on_virtual_line():
    from optoread_tools.vline import VirtualLine

    m = MeterModel(rows=4)
    s = DlmsServer(m)
    line = VirtualLine(HdlcMeter(s), reader_line=(9600, 8, "N"))
    assert _raw_session(line.reader, s) == m.expected_register("1.0.1.8.0.255")[0]


def test_direct_hdlc_meter_on_pty():
    from optoread_tools.ptyline import start_pty_thread
    from optoread_tools.transports import SerialTransport

    pytest.importorskip("serial")
    m = MeterModel(rows=4)
    s = DlmsServer(m)
    path, stop = start_pty_thread(HdlcMeter(s))
    try:
        t = SerialTransport(path, 9600, 8, "N")
        try:
            assert _raw_session(t, s) == m.expected_register("1.0.1.8.0.255")[0]
        finally:
            t.close()
    finally:
        stop()


@pytest.mark.parametrize("link", ["hdlc", "wrapper"])
def test_serve_tcp(link):
    from optoread_tools.transports import TcpTransport

    m = MeterModel(rows=300)
    port, stop = serve_tcp(lambda: DlmsServer(m, link=link), port=0)
    try:
        t = TcpTransport("127.0.0.1", port)
        try:
            if link == "hdlc":
                assert _raw_session(t, DlmsServer(m)) == m.expected_register("1.0.1.8.0.255")[0]
            else:
                buf = bytearray(256)
                t.write(wrapper.wrap(16, 1, bytes(buf[:acse.encode_aarq(buf, 0)])))
                r = wrapper.WrapperReceiver(4096)
                chunk = bytearray(4096)
                while not r.ready:
                    n = t.readinto(chunk, 3000)
                    assert n
                    r.feed(chunk, 0, n)
                assert acse.parse_aare(bytes(r.apdu())).accepted
        finally:
            t.close()
    finally:
        stop()
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()


def test_server_rejects_unknown_quirk_and_hostile_bytes():
    with pytest.raises(OptoreadError):
        DlmsServer(quirks={"nonsense"})
    s = DlmsServer(MeterModel(rows=4))
    c = Client(s)
    c.associate()
    rnd = bytes((i * 97 + 13) & 0xFF for i in range(3000))
    s.receive(rnd)
    junks = (b"\xc0", b"\xc0\x01", b"\xc1\x01\xc1\x00", b"\xc3\x01\xc1", b"\x60\x03\xa1\x01", b"\xff\x00")
    for junk in junks:
        out = c.request(junk)
        assert out[0] in (xdlms.EXCEPTION_RESPONSE, xdlms.AARE, xdlms.GET_RESPONSE, xdlms_set.SET_RESPONSE,
                          xdlms_set.ACTION_RESPONSE), junk


FUZZ = int(os.getenv("FUZZ_EXAMPLES", "300"))


def test_fuzz_server_never_crashes():
    hyp = pytest.importorskip("hypothesis")
    st = hyp.strategies

    m = MeterModel(rows=30)

    tags = st.sampled_from([0xC0, 0xC1, 0xC3, 0x60, 0x62, 0x05, 0x06])

    @hyp.settings(max_examples=FUZZ, deadline=None)
    @hyp.given(st.binary(min_size=1, max_size=80), tags)
    def run(body, tag):
        for ln in (True, False):
            s = DlmsServer(m, link="wrapper")
            c = Client(s, ln=ln)
            c.associate()
            out = c.request(bytes((tag,)) + body)
            assert out

    run()
    # and random link bytes
    s = DlmsServer(m, quirks={"frmr_on_bad_frame", "dm_when_disconnected"})

    @hyp.settings(max_examples=FUZZ, deadline=None)
    @hyp.given(st.binary(max_size=300))
    def run2(data):
        s.receive(b"\x7e\xa0" + data)

    run2()


def test_reset_mid_session_on_wrapper():
    s = DlmsServer(MeterModel(rows=4), link="wrapper", quirks={"reset_mid_session"}, reset_after=2)
    c = Client(s)
    c.associate()
    buf = bytearray(64)
    n = xdlms_get.encode_get_request(buf, 0, 0xC1, 8, ob("0.0.1.0.0.255"), 4)
    assert s.receive(wrapper.wrap(16, 1, bytes(buf[:n]))) == b""
    assert s.receive(wrapper.wrap(16, 1, bytes(buf[:n]))) == b""
    c.associate()
    assert c.get(8, "0.0.1.0.0.255", 4) == 0
