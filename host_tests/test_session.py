"""Session against a small scripted DLMS server built from our own codecs (both interpreters).

The server here is deliberately tiny (it is not the simulator in tools/): HDLC server
role of HdlcConnection, AARQ/AARE, GET (normal, blocks, with-list), SET (normal, blocks),
ACTION, HLS-GMAC pass 3/4 and glo-ciphering. It runs in process on a virtual clock.
"""

from optoread.dlms import security, wrapper
from optoread.dlms.acse import apdu as acse
from optoread.dlms.acse import server as acse_server
from optoread.dlms.axdr import data as axdr_data
from optoread.dlms.axdr import decode as axdr
from optoread.dlms.axdr import encode as axdr_encode
from optoread.dlms.client.session import Session, Settings
from optoread.dlms.hdlc import connection as hdlc_conn
from optoread.dlms.hdlc import frame as hdlc
from optoread.dlms.xdlms import apdu as xdlms
from optoread.dlms.xdlms import server as xdlms_server
from optoread.dlms.xdlms import set_action as xdlms_set
from optoread.errors import (
    DataAccessError,
    LinkError,
    NoAnswerError,
    OptoreadError,
    SecurityError,
    SessionError,
)
from portable import raises

PORTABLE = True

EK = bytes(range(16))
AK = bytes(range(16, 32))
CLIENT_ST = b"OPTOREAD"
SERVER_ST = b"MINISRV1"

ENERGY = bytes((1, 0, 1, 8, 0, 255))
SERIAL = bytes((0, 0, 96, 1, 0, 255))
PROFILE = bytes((1, 0, 99, 1, 0, 255))
DENIED = bytes((1, 0, 99, 2, 0, 255))
CLOCK = bytes((0, 0, 1, 0, 0, 255))
ASSOC = bytes((0, 0, 40, 0, 0, 255))

_GLO_RESP = {0xC4: 0xCC, 0xC5: 0xCD, 0xC7: 0xCF, 0x08: 0x28, 0x0C: 0x2C, 0x0D: 0x2D}


def profile_row(i):
    return (axdr_encode.STRUCTURE, ((axdr_encode.DOUBLE_LONG_UNSIGNED, 1000 + i),
                                    (axdr_encode.LONG_UNSIGNED, i & 0xFFFF),
                                    (axdr_encode.OCTET_STRING, bytes((i & 0xFF,)) * 6)))


def expected_row(i):
    return (1000 + i, i & 0xFFFF, bytes((i & 0xFF,)) * 6)


# One response buffer for every simulated server of this file: each answer is copied out of it at
# once, and on a board a fresh 8 KB block per test pair fails once earlier tests have fragmented
# the heap (the emulated Pico, tools/emu_portable.py).
_RESPONSE = bytearray(8192)
# The simulated server's HDLC buffers, for the same reason: one set for every test pair.
_SERVER_OUT = bytearray(hdlc.tx_buffer_size(256, 2))
_SERVER_RX = bytearray(4096)
_SERVER_FRAME = bytearray(hdlc.frame_capacity(2030))
_ROW = 18  # one profile_row's encoding: structure 2 + double-long-unsigned 5 + long-unsigned 3 + octets 8
_PROFILE = bytearray(16 + _ROW * 300)  # the simulated profile's encoding, 300 rows at most


class MiniServer:
    """Bytes in, bytes out. ``log`` records what happened (SNRM, AARQ, GET, DISC, ...)."""

    def __init__(self, client=16, server=1, physical=None, size=1, link="hdlc", max_info=128,
                 window=1, auth="none", password=b"secret", ciphered=False, rows=300,
                 block=200, max_pdu=512, conformance=acse.DEFAULT_CONFORMANCE, silent=False,
                 silent_after=None, sn=False):
        self.client = client
        self.server = server
        self.link = link
        self.auth = auth
        self.password = password
        self.ciphered = ciphered
        self.rows = rows
        self.block = block
        self.max_pdu = max_pdu
        self.conformance = conformance
        self.silent = silent
        self.silent_after = silent_after
        self.sn = sn
        self.log = []
        self.values = {
            (3, ENERGY, 2): (axdr_encode.DOUBLE_LONG_UNSIGNED, 123456),
            (3, ENERGY, 3): (axdr_encode.STRUCTURE, ((axdr_encode.INTEGER, -1), (axdr_encode.ENUM, 30))),
            (1, SERIAL, 2): (axdr_encode.OCTET_STRING, b"SN0001"),
            (8, CLOCK, 2): (axdr_encode.OCTET_STRING, bytes(12)),
        }
        self.writes = []
        self.ic = 100
        self.client_st = None
        self.associated = False
        self.stoc = b"S2C-CHALLENGE-16"
        self._pending = None  # (data, pos, block) of a GET in blocks
        self._set = None
        if link == "hdlc":
            local = hdlc.encode_server_address(server, physical, size)
            out = _SERVER_OUT if hdlc.tx_buffer_size(max_info, window) <= len(_SERVER_OUT) else None
            self.conn = hdlc_conn.HdlcConnection(local, hdlc.encode_client_address(client), server=True,
                                                 max_info_tx=max_info, max_info_rx=max_info, window_tx=window,
                                                 window_rx=window, rx_capacity=4096, bufs=(out, _SERVER_RX))
            self.rx = hdlc.FrameReceiver(hdlc.frame_capacity(2030), _SERVER_FRAME)
        else:
            self.rx = wrapper.WrapperReceiver(4096)
        self.out = _RESPONSE

    # -- link
    def receive(self, data):
        if self.silent or (self.silent_after is not None and len(self.log) >= self.silent_after):
            self._note_silent(data)
            return b""
        res = b""
        off = 0
        while True:
            off = self.rx.feed(data, off, len(data))
            if not self.rx.ready:
                break
            if self.link == "hdlc":
                res += self._frame(self.rx.frame)
            else:
                apdu = bytes(self.rx.apdu())
                resp = self._apdu(apdu)
                if resp:
                    res += wrapper.wrap(self.server, self.client, resp)
        return res

    def _note_silent(self, data):
        # Still record DISC frames sent to a silent server (close() must try).
        if self.link == "hdlc" and b"\x53" in data:
            self.log.append("DISC?")

    def _frame(self, f):
        c = self.conn
        kind = f.kind
        if kind == "SNRM":
            self.log.append("SNRM")
        elif kind == "DISC":
            self.log.append("DISC")
        ev = c.receive_frame(f)
        res = bytes(c.output()) if c.out_len else b""
        if ev == hdlc_conn.EV_DATA:
            mv = c.data()
            apdu = bytes(mv[3:])
            resp = self._apdu(apdu)
            if resp:
                c.send(b"\xe6\xe7\x00" + resp)
                res += bytes(c.output())
        return res

    # -- application
    def _wrap(self, resp):
        if not self.ciphered:
            return resp
        self.ic += 1
        return security.wrap_service(_GLO_RESP[resp[0]], 0x30, self.ic, EK, AK, resp, SERVER_ST)

    def _apdu(self, apdu):
        tag = apdu[0]
        if tag == xdlms.AARQ:
            return self._aarq(apdu)
        if tag == xdlms.RLRQ:
            self.log.append("RLRQ")
            self.associated = False
            b = bytearray(16)
            return bytes(b[:acse_server.encode_rlre(b, 0)])
        if xdlms.is_ciphered(tag):
            apdu, info = security.unwrap(apdu, EK, AK, self.client_st)
            tag = apdu[0]
        elif self.ciphered:
            return self._exc()
        if tag == xdlms.GET_REQUEST:
            return self._wrap(self._get(apdu))
        if tag == xdlms_set.SET_REQUEST:
            return self._wrap(self._setreq(apdu))
        if tag == xdlms_set.ACTION_REQUEST:
            return self._wrap(self._action(apdu))
        return self._exc()

    def _exc(self):
        b = bytearray(8)
        return bytes(b[:xdlms_server.encode_exception_response(b, 0, 1, 2)])

    def _aarq(self, apdu):
        self.log.append("AARQ")
        q = acse_server.parse_aarq(apdu)
        self.client_st = q.ap_title
        b = bytearray(256)
        mech = None
        stoc = None
        result, diag = 0, 0
        if self.auth == "low":
            mech = "lls"
            if q.mechanism != 1 or q.auth_value != self.password:
                result, diag = 1, acse.DIAG_AUTHENTICATION_FAILURE
        elif self.auth == "hls":
            mech = "hls-gmac"
            self.ctos = q.auth_value
            stoc = self.stoc
            diag = acse.DIAG_AUTHENTICATION_REQUIRED
        ui = None
        if self.ciphered:
            plain, info = security.unwrap(q.user_info(apdu), EK, AK, self.client_st)
            assert acse_server.parse_initiate_request(plain).max_pdu
            p = bytearray(16)
            n = acse_server.encode_initiate_response(p, 0, self.conformance, self.max_pdu)
            ui = self._wrap(bytes(p[:n]))
        else:
            assert q.initiate is not None
        n = acse_server.encode_aare(b, 0, ln=not self.sn, ciphered=self.ciphered, result=result,
                                    diagnostic=diag,
                                    responding_ap_title=SERVER_ST if (self.ciphered or stoc) else None,
                                    mechanism=mech, auth_value=stoc, conformance=self.conformance,
                                    max_pdu=self.max_pdu, user_information=ui)
        self.associated = result == 0
        return bytes(b[:n])

    def _value_bytes(self, cls, obis, attr, sel):
        if (cls, obis, attr) == (7, PROFILE, 2):
            rows = self.rows
            first = 0
            if sel == 2:
                first, rows = 9, 10  # entries 10..19
            b = _PROFILE if 16 + _ROW * rows <= len(_PROFILE) else bytearray(16 + _ROW * rows)
            o = axdr_data.encode_length(b, 1, rows)
            b[0] = axdr_encode.ARRAY
            for i in range(first, first + rows):
                t, v = profile_row(i)
                o = axdr_encode.encode(b, o, t, v)
            return memoryview(b)[:o]  # no copy: a board's heap has no room for two
        if (cls, obis, attr) == (7, DENIED, 2):
            return 3
        tv = self.values.get((cls, obis, attr))
        if tv is None:
            return 4
        return axdr_encode.encode_to_bytes(tv[0], tv[1])

    def _get(self, apdu):
        r = xdlms_server.parse_get_request(apdu)
        b = self.out
        if r.kind == xdlms.NEXT:
            self.log.append("GET-NEXT")
            data, pos, blk = self._pending
            if r.block != blk:
                return bytes(b[:xdlms_server.encode_get_response_block(b, 0, r.invoke, True, blk, dar=19)])
            return self._next_block(r.invoke, data, pos, blk + 1)
        if r.kind == xdlms.WITH_LIST:
            self.log.append("GET-LIST %d" % len(r.items))
            res = []
            for it in r.items:
                v = self._value_bytes(it[0], it[1], it[2], it[3])
                res.append(v)
            n = xdlms_server.encode_get_response_list(b, 0, r.invoke, res)
            if n > self.block:
                # the list answer goes in blocks: raw data = the result sequence after the header
                return self._next_block(r.invoke, bytes(b[3:n]), 0, 1)
            return bytes(b[:n])
        cls, obis, attr, sel, p0, p1 = r.items[0]
        self.log.append("GET %d %s %d" % (cls, ".".join(str(x) for x in obis), attr))
        v = self._value_bytes(cls, obis, attr, sel)
        if isinstance(v, int):
            return bytes(b[:xdlms_server.encode_get_response(b, 0, r.invoke, dar=v)])
        if len(v) > self.block:
            return self._next_block(r.invoke, v, 0, 1)
        return bytes(b[:xdlms_server.encode_get_response(b, 0, r.invoke, v)])

    def _next_block(self, invoke, data, pos, blk):
        k = min(self.block, len(data) - pos)
        last = pos + k >= len(data)
        self._pending = (data, pos + k, blk)
        b = self.out
        return bytes(b[:xdlms_server.encode_get_response_block(b, 0, invoke, last, blk, data[pos:pos + k])])

    def _setreq(self, apdu):
        b = self.out
        kind = apdu[1]
        invoke = apdu[2]
        if kind == xdlms.NORMAL:
            cls, obis, attr, off = xdlms_server.parse_descriptor(apdu, 3, len(apdu))
            self.log.append("SET")
            if (cls, obis, attr) == (7, DENIED, 2):
                return bytes(b[:xdlms_server.encode_set_response(b, 0, invoke, 3)])
            self.writes.append((cls, obis, attr, axdr.decode(apdu, off + 1)[0]))
            return bytes(b[:xdlms_server.encode_set_response(b, 0, invoke, 0)])
        if kind == xdlms_set.SET_FIRST_DATABLOCK:
            cls, obis, attr, off = xdlms_server.parse_descriptor(apdu, 3, len(apdu))
            off += 1  # no access selection
            self._set = [(cls, obis, attr), bytearray()]
        else:
            off = 3
        last = apdu[off]
        blk = int.from_bytes(apdu[off + 1:off + 5], "big")
        d0, d1 = xdlms.octets(apdu, off + 5, len(apdu), "raw")
        self._set[1] += apdu[d0:d1]
        self.log.append("SET-BLOCK %d" % blk)
        if last:
            cls, obis, attr = self._set[0]
            self.writes.append((cls, obis, attr, axdr.decode(self._set[1])[0]))
            return bytes((0xC5, 3, invoke, 0)) + blk.to_bytes(4, "big")
        return bytes((0xC5, 2, invoke)) + blk.to_bytes(4, "big")

    def _action(self, apdu):
        b = self.out
        invoke = apdu[2]
        cls, obis, method, off = xdlms_server.parse_descriptor(apdu, 3, len(apdu))
        self.log.append("ACTION %d" % method)
        param = axdr.decode(apdu, off + 1)[0] if apdu[off] == 1 else None
        if (cls, obis, method) == (15, ASSOC, 1) and self.auth == "hls":
            try:
                security.verify_hls_gmac(param, self.client_st, EK, AK, self.stoc)
            except SecurityError:
                return bytes(b[:xdlms_server.encode_action_response(b, 0, invoke, 250)])
            self.ic += 1
            f = security.hls_gmac(SERVER_ST, self.ic, EK, AK, self.ctos)
            return bytes(b[:xdlms_server.encode_action_response(b, 0, invoke, 0,
                    (axdr_encode.OCTET_STRING, f))])
        if (cls, obis, method) == (8, CLOCK, 6):
            self.writes.append(("shift", param))
            return bytes(b[:xdlms_server.encode_action_response(b, 0, invoke, 0)])
        return bytes(b[:xdlms_server.encode_action_response(b, 0, invoke, 11)])


class LoopTransport:
    """In-process transport on a virtual clock; ``chunk`` limits bytes per readinto."""

    def __init__(self, server, chunk=None, echo=False):
        self.server = server
        self.chunk = chunk
        self.echo = echo
        self.inbox = b""
        self.now = 0
        self.writes = 0
        self.lines = []

    def write(self, data):
        self.writes += 1
        if self.echo:  # the optical head sees our own transmission first
            self.inbox += bytes(data)
        self.inbox += self.server.receive(bytes(data))

    def drain(self):
        pass

    def set_line(self, baud, bits, parity, stop=1):
        self.lines.append((baud, bits, parity))

    def readinto(self, buf, timeout_ms):
        if not self.inbox:
            self.now += timeout_ms
            return 0
        n = min(len(buf), len(self.inbox))
        if self.chunk:
            n = min(n, self.chunk)
        buf[:n] = self.inbox[:n]
        self.inbox = self.inbox[n:]
        self.now += 1
        return n

    def sleep_ms(self, ms):
        self.now += ms

    def ticks_ms(self):
        return self.now

    def close(self):
        pass


def _pair(server_kw=None, chunk=None, echo=False, **kw):
    srv = MiniServer(**(server_kw or {}))
    t = LoopTransport(srv, chunk, echo)
    kw.setdefault("timeout_ms", 500)
    return srv, t, Session(Settings(**kw), t)


# ---------------------------------------------------------------- tests


def test_open_get_close_negotiates_and_releases():
    srv, t, s = _pair()
    with s:
        assert s.get(3, ENERGY, 2) == 123456
        assert s.get(3, "1.0.1.8.0.255", 3) == (-1, 30)
        assert s.get(1, "0.0.96.1.0.255", 2) == b"SN0001"
        n = s.negotiated
        assert n.max_info_tx == 128 and n.max_info_rx == 128 and n.window_tx == 1
        assert n.max_pdu == 512 and n.conformance == acse.DEFAULT_CONFORMANCE
    assert srv.log[:2] == ["SNRM", "AARQ"]
    assert srv.log[-2:] == ["RLRQ", "DISC"]
    assert srv.conn.state == hdlc_conn.DISCONNECTED
    assert (9600, 8, "N") in t.lines
    st = s.stats
    assert st.frames_tx >= 5 and st.frames_rx >= 5 and st.bytes_tx > 0 and st.bytes_rx > 0


def test_profile_streams_through_a_sink_in_blocks_and_segments():
    srv, t, s = _pair({"rows": 300, "block": 200, "max_info": 64})
    seen = [0, None, None]  # count, first, last: what a store keeps of a stream is not a list

    def sink(row):
        if seen[0] == 0:
            seen[1] = row
        seen[0] += 1
        seen[2] = row
        assert row == expected_row(seen[0] - 1)

    with s:
        n = s.get(7, PROFILE, 2, sink=sink)
        assert s.negotiated.max_info_rx == 64
    assert n == 300 and seen[0] == 300
    assert seen[1] == expected_row(0) and seen[2] == expected_row(299)
    assert srv.log.count("GET-NEXT") > 10


def test_profile_by_entry_without_sink_returns_the_list():
    srv, t, s = _pair()
    params = bytearray(32)
    end = xdlms.encode_entry_descriptor(params, 0, 10, 19)
    with s:
        v = s.get(7, PROFILE, 2, selector=2, params=bytes(params[:end]))
    assert v == [expected_row(i) for i in range(9, 19)]


def test_bytes_after_a_frame_in_the_same_chunk_are_kept():
    # window 2: the server sends two I-frames in one write; the reader gets them in one chunk
    for chunk in (None, 1, 7, 100):
        srv, t, s = _pair({"window": 2, "max_info": 32, "rows": 40}, chunk=chunk, window=2)
        rows = []
        with s:
            assert s.negotiated.window_rx == 2
            assert s.get(7, PROFILE, 2, sink=rows.append) == 40
        assert rows == [expected_row(i) for i in range(40)]


def test_get_many_uses_with_list_and_reports_errors_per_item():
    srv, t, s = _pair()
    with s:
        vals = s.get_many([(3, ENERGY, 2), (7, DENIED, 2), (1, SERIAL, 2), (3, ENERGY, 9)])
    assert vals[0] == 123456 and vals[2] == b"SN0001"
    assert isinstance(vals[1], DataAccessError) and vals[1].result == 3
    assert "object 1.0.99.2.0.255 attr 2: read-write-denied" in str(vals[1])
    assert isinstance(vals[3], DataAccessError) and vals[3].result == 4
    assert "GET-LIST 4" in srv.log


def test_get_many_chunks_and_reassembles_list_blocks():
    srv, t, s = _pair({"block": 40})
    items = [(3, ENERGY, 2), (1, SERIAL, 2)] * 20
    with s:
        s.tx_limit = 120  # a small meter PDU: 40 items need several requests
        vals = s.get_many(items)
    assert vals == [123456, b"SN0001"] * 20
    lists = [x for x in srv.log if x.startswith("GET-LIST")]
    assert len(lists) > 1 and "GET-NEXT" in srv.log


def test_get_many_without_multiple_references_reads_one_by_one():
    conf = acse.DEFAULT_CONFORMANCE & ~acse.CONF_MULTIPLE_REFERENCES
    srv, t, s = _pair({"conformance": conf})
    with s:
        vals = s.get_many([(3, ENERGY, 2), (7, DENIED, 2)])
    assert vals[0] == 123456 and isinstance(vals[1], DataAccessError)
    assert not [x for x in srv.log if x.startswith("GET-LIST")]


def test_denied_attribute_names_object_and_cause():
    srv, t, s = _pair()
    with s:
        e = raises(DataAccessError, s.get, 7, DENIED, 2)
        assert e.result == 3
        assert "object 1.0.99.2.0.255 attr 2: read-write-denied" in str(e)
        assert s.get(3, ENERGY, 2) == 123456  # the session goes on
    assert srv.log[-1] == "DISC"


def test_set_normal_and_in_blocks():
    srv, t, s = _pair()
    big = bytes(range(256)) * 4
    with s:
        s.set(1, SERIAL, 2, axdr_encode.OCTET_STRING, b"NEW")
        s.set(1, SERIAL, 2, axdr_encode.OCTET_STRING, big)
        e = raises(DataAccessError, s.set, 7, DENIED, 2, axdr_encode.UNSIGNED, 1)
        assert "read-write-denied" in str(e)
    assert srv.writes[0] == (1, SERIAL, 2, b"NEW")
    assert srv.writes[1] == (1, SERIAL, 2, big)
    assert "SET-BLOCK 1" in srv.log and "SET-BLOCK 2" in srv.log


def test_action_with_and_without_parameters():
    srv, t, s = _pair()
    with s:
        assert s.action(8, CLOCK, 6, axdr_encode.LONG, 30) is None
        e = raises(DataAccessError, s.action, 8, CLOCK, 1)
        assert "object 0.0.1.0.0.255 method 1: object-unavailable" in str(e)
    assert ("shift", 30) in srv.writes


def test_lls_password_ok_and_rejected():
    srv, t, s = _pair({"auth": "low"}, auth="low", password=b"secret")
    with s:
        assert s.get(3, ENERGY, 2) == 123456
    srv, t, s = _pair({"auth": "low"}, auth="low", password=b"wrong")
    e = raises(SessionError, s.open)
    assert "association rejected: authentication failure" in str(e)
    assert srv.log[-1] == "DISC" and srv.conn.state == hdlc_conn.DISCONNECTED


def test_hls_gmac_with_ciphering():
    srv, t, s = _pair({"auth": "hls", "ciphered": True}, auth="hls", ciphered=True, ek=EK, ak=AK,
                      invocation_counter=5)
    with s:
        assert s.get(3, ENERGY, 2) == 123456
        rows = []
        assert s.get(7, PROFILE, 2, sink=rows.append) == 300
        assert rows[150] == expected_row(150)
        assert s.negotiated.server_system_title == SERVER_ST
        assert s.invocation_counter > 8
        assert s.server_invocation_counter is not None
    assert "ACTION 1" in srv.log and srv.log[-1] == "DISC"


def test_hls_gmac_plain_apdus():
    srv, t, s = _pair({"auth": "hls"}, auth="hls", ek=EK, ak=AK)
    with s:
        assert s.get(3, ENERGY, 2) == 123456


def test_hls_wrong_key_is_an_authentication_failure_and_link_closed():
    srv, t, s = _pair({"auth": "hls"}, auth="hls", ek=EK, ak=bytes(16))
    e = raises(SessionError, s.open)
    assert "authentication failure" in str(e)
    assert srv.log[-2:] == ["RLRQ", "DISC"]


def test_silent_meter_names_addresses_and_what_was_tried():
    srv, t, s = _pair({"silent": True, "physical": 17, "size": 2}, physical=17, retries=2)
    e = raises(NoAnswerError, s.open)
    msg = str(e)
    assert "no answer from server address 1/17 with client 16" in msg
    assert "SNRM" in msg and e.tried and "9600 baud" in e.tried[0]
    assert "DISC?" in srv.log  # close() still tried to release the link
    assert t.now < 10000


def test_wrong_address_is_silence():
    srv, t, s = _pair({"physical": 17, "size": 2}, physical=18, retries=1)
    e = raises(NoAnswerError, s.open)
    assert "1/18" in str(e)


def test_timeout_mid_session_then_close_sends_disc():
    srv, t, s = _pair(retries=1)
    s.open()
    srv.silent_after = len(srv.log)  # the meter stops answering
    e = raises(NoAnswerError, s.get, 3, ENERGY, 2)
    assert "GET" in str(e)
    srv.silent_after = None  # it is back for the release
    s.close()
    assert srv.log[-1] == "DISC" and srv.conn.state == hdlc_conn.DISCONNECTED


def test_error_inside_with_block_still_releases():
    srv, t, s = _pair()

    def body():
        with s:
            s.get(3, ENERGY, 2)
            raise OptoreadError("user abort")

    raises(OptoreadError, body)
    assert srv.log[-2:] == ["RLRQ", "DISC"] and not s.is_open
    s.close()  # twice is fine


def test_wrapper_link():
    srv = MiniServer(link="wrapper")
    t = LoopTransport(srv, chunk=5)
    rows = []
    with Session(Settings(link="wrapper", timeout_ms=500), t) as s:
        assert s.get(3, ENERGY, 2) == 123456
        assert s.get(7, PROFILE, 2, sink=rows.append) == 300
    assert srv.log[0] == "AARQ" and srv.log[-1] == "RLRQ"
    assert rows[-1] == expected_row(299)


def test_four_byte_address_and_max_info_proposal():
    srv, t, s = _pair({"physical": 1234, "size": 4, "max_info": 256}, physical=1234, address_size=4)
    with s:
        assert s.negotiated.max_info_tx == 256  # UA granted less than our 2030: we take it
        assert s.get(3, ENERGY, 2) == 123456


def test_settings_errors():
    raises(SessionError, Settings, auth="md5")
    raises(SessionError, Settings, auth="hls")  # no keys
    raises(SessionError, Settings, link="udp")
    srv, t, s = _pair()
    raises(SessionError, s.get, 3, ENERGY, 2)  # not open
    raises(OptoreadError, s.get, 3, "not-obis", 2)


def test_dm_mid_session_is_a_link_error_and_close_is_safe():
    srv, t, s = _pair(retries=1)
    s.open()
    srv.conn.state = hdlc_conn.DISCONNECTED  # meter reset: it answers I-frames with DM
    e = raises(LinkError, s.get, 3, ENERGY, 2)
    assert "DM" in str(e)
    s.close()
    assert srv.log[-1] == "DISC"


def test_probe_echo_is_ignored():
    for chunk in (None, 3):
        srv, t, s = _pair({"physical": 17, "size": 2, "rows": 50}, chunk=chunk, echo=True, physical=17)
        rows = []
        with s:
            assert s.get(3, ENERGY, 2) == 123456
            assert s.get(7, PROFILE, 2, sink=rows.append) == 50
            s.set(1, SERIAL, 2, axdr_encode.OCTET_STRING, bytes(300))  # long frames: echoed too
        assert rows[49] == expected_row(49) and srv.log[-1] == "DISC"
