"""Simulated DLMS/COSEM meter (CPython): a COSEM server behind HDLC or the IEC 62056-47 wrapper.

Built on the firmware codecs (hdlc, wrapper, acse, xdlms, axdr, security) so the
simulator and the reader share one implementation of every encoding; the request
parsers the firmware lacks (SET, ACTION, SN Read/Write) are here.

::

    model = MeterModel(rows=2880)                    # sim_dlms_model.py: deterministic values
    server = DlmsServer(model, client=16, auth="none", max_info=128)
    reply = server.receive(request_bytes)            # sans-IO: bytes in, bytes out
    transport = ServerTransport(server)              # in-process transport, virtual clock
    meter = ModeEMeter(server)                       # IEC sign-on then HDLC (VirtualLine, pty)
    meter = HdlcMeter(server)                        # direct HDLC at 9600 8N1 (VirtualLine, pty)
    port, stop = serve_tcp(lambda: DlmsServer(model, link="wrapper"))

Clients and authentication (IS 15959): the public client 16 always associates with no
authentication (read-only); the configured ``client`` uses ``auth``: "none", "low" (LLS
``password``) or "hls" (HLS-GMAC, mechanism 5, ``ek``/``ak``/``system_title``). Clock
SET and shift_time need an authenticated (low/hls) association. A ciphered application
context (``ciphered=True`` in the client's AARQ) needs ``ek``/``ak``; every request must
then be a glo-/general-glo-ciphered APDU and replies are ciphered the same way.

Quirks (``quirks=`` names, from ../shared/notes/field-notes.md):

* ``echo``: the reader's bytes come back before the reply (u9n/dlms-cosem #62).
* ``silent_wrong_address``: a wrong server or unknown client address gets silence
  (latonita/esphome-dlms-cosem #2-#5); without it the simulator answers DM, so a reader
  fails fast.
* ``four_byte_address``: the meter only answers 4-byte server addresses (physical address
  from the serial number unless ``physical`` is given).
* ``rejects_deviation``: a range selection whose from/to carry a deviation other than
  0x8000 is refused (gurux.dlms.java PR #25) with data-access-result other-reason (250),
  or with an empty array when ``deviation_reject="empty"``.
* ``sort_not_first``: the block-load clock (sort) column is the 2nd capture object
  (gurux.dlms.java PR #13); set on the model (``MeterModel(sort_not_first=True)``) --
  the server sets it when given the quirk and no model.
* ``sn_only``: only short-name referencing; an LN AARQ is rejected (u9n/dlms-cosem #50).
* ``frmr_on_bad_frame``: a frame with a bad HCS/FCS or an over-long info field is
  answered with FRMR (without the quirk it is dropped silently).
* ``dm_when_disconnected``: any frame but SNRM while disconnected gets DM (without the
  quirk only DISC does; I/RR frames are ignored).
* ``slow``: replies come ``slow_ms`` (1500) after the request (ServerTransport, ModeEMeter,
  HdlcMeter and TCP honour it).
* ``reset_mid_session``: after ``reset_after`` (6) APDUs the meter resets once: that
  request gets no answer and the link and association are gone (DM to what follows).
* ``endless_blocks``: a block transfer never ends: an array answer claims 2**31 - 1 elements
  and its elements come round again and again, every block "not the last" (issue 17: a meter
  that filled a reader's flash).
* ``blocks_out_of_order``: the second block of a transfer carries block number 3.
"""

import select
import socket
import struct
import threading
import time

from optoread.dlms import security, wrapper
from optoread.dlms.acse import apdu as acse
from optoread.dlms.acse import names as acse_names
from optoread.dlms.acse import server as acse_server
from optoread.dlms.axdr import data as axdr_data
from optoread.dlms.axdr import decode as axdr
from optoread.dlms.axdr import encode as axdr_encode
from optoread.dlms.axdr import types as axdr_types
from optoread.dlms.hdlc import connection as hdlc_conn
from optoread.dlms.hdlc import frame as hdlc
from optoread.dlms.xdlms import apdu as xdlms
from optoread.dlms.xdlms import server as xdlms_server
from optoread.dlms.xdlms import set_action as xdlms_set
from optoread.dlms.xdlms import sn as xdlms_sn
from optoread.errors import LinkError, OptoreadError

from .sim_dlms_model import MeterModel, ob
from .sim_iec21 import Iec21Meter, char_ms

__all__ = ["DlmsServer", "MeterModel", "ServerTransport", "ModeEMeter", "HdlcMeter", "serve_tcp",
           "QUIRKS"]

QUIRKS = ("echo", "silent_wrong_address", "four_byte_address", "rejects_deviation", "sort_not_first",
          "sn_only", "frmr_on_bad_frame", "dm_when_disconnected", "slow", "reset_mid_session",
          "endless_blocks", "blocks_out_of_order")

A = axdr
T = axdr_encode  # the Data tags
DAR_READ_WRITE_DENIED = 3
DAR_OBJECT_UNDEFINED = 4
DAR_OBJECT_UNAVAILABLE = 11
DAR_TYPE_UNMATCHED = 12
DAR_SCOPE = 13
DAR_NO_LONG_GET = 16
DAR_LONG_SET_ABORTED = 17
DAR_BLOCK_NUMBER_INVALID = 19
DAR_OTHER = 250

_N = acse_names
_CONF_LN = (_N.CONF_GET | _N.CONF_SET | _N.CONF_ACTION | _N.CONF_SELECTIVE_ACCESS | _N.CONF_BLOCK_TRANSFER_GET
            | acse.CONF_BLOCK_TRANSFER_SET | acse.CONF_MULTIPLE_REFERENCES | _N.CONF_ATTRIBUTE0_WITH_GET
            | _N.CONF_PRIORITY_MGMT)
_CONF_SN = (_N.CONF_READ | _N.CONF_WRITE | _N.CONF_PARAMETERIZED_ACCESS | acse.CONF_MULTIPLE_REFERENCES
            | _N.CONF_BLOCK_TRANSFER_GET | _N.CONF_INFORMATION_REPORT)

_MECH = {"none": None, "low": 1, "hls": 5}


class SimError(OptoreadError):
    layer = "sim"


class _Assoc:
    """State of one application association."""

    def __init__(self, client, ln, auth, ciphered):
        self.client = client
        self.ln = ln
        self.auth = auth  # "none" | "low" | "hls"
        self.ciphered = ciphered
        self.authenticated = auth != "hls"
        self.conformance = 0
        self.max_pdu = 0xFFFF
        self.client_title = None
        self.ctos = b""
        self.stoc = b""
        self.sc = security.SC_AUTH_ENC
        self.last_ic = None
        self.general = False  # the client uses general-glo-ciphering

    @property
    def privileged(self):
        return self.auth in ("low", "hls") and self.authenticated


class _Endless:
    """An A-XDR array answer whose elements never end: the count says 2**31 - 1 and the encoded
    elements of ``raw`` (an array) repeat for ever (``endless_blocks``)."""

    def __init__(self, raw):
        _n, off = _read_len(raw, 1)
        self.head = b"\x01\x84\x7f\xff\xff\xff"
        self.body = bytes(raw[off:]) or b"\x00"

    def __len__(self):
        return 1 << 62

    def __getitem__(self, sl):
        out = bytearray()
        for i in range(sl.start, sl.stop):
            if i < len(self.head):
                out.append(self.head[i])
            else:
                out.append(self.body[(i - len(self.head)) % len(self.body)])
        return bytes(out)


def _read_len(b, off):
    """A-XDR length at ``off``: (length, offset after it)."""
    first = b[off]
    if first < 0x80:
        return first, off + 1
    k = first & 0x7F
    return int.from_bytes(bytes(b[off + 1:off + 1 + k]), "big"), off + 1 + k


class DlmsServer:
    """The simulated meter's protocol engine: ``receive(data) -> bytes`` (sans-IO).

    Arguments: ``model`` (a MeterModel; default ``MeterModel()``), ``client`` and ``auth``
    (the non-public client and its authentication), ``server``/``physical``/``address_size``
    (HDLC server address; size None = 1 byte without physical, else 2; 4 with the
    four_byte_address quirk), ``password`` (LLS), ``ek``/``ak``/``system_title`` (HLS-GMAC and
    ciphering; the server's invocation counter starts at ``invocation_counter``), ``ln`` (False:
    SN only), ``link`` ("hdlc" | "wrapper"), ``max_info``/``window`` (what the UA grants at
    most), ``max_pdu`` (server max receive/send PDU), ``quirks`` (see the module doc),
    ``compressed`` (null clock cells in profile buffers after the first row of a response),
    ``slow_ms``, ``reset_after``, ``deviation_reject`` ("error" | "empty").

    Counters for tests: ``stats`` (frames_rx, frames_tx, apdus, bad_frames, ignored,
    associations, releases, blocks_sent, resets); ``assoc`` is the live association or None;
    ``connected`` says whether the HDLC link is up.
    """

    def __init__(self, model=None, client=16, server=1, physical=None, auth="none", password=b"12345678",
                 ek=None, ak=None, system_title=b"SIMMETER", ln=True, link="hdlc", max_info=128, window=1,
                 quirks=(), address_size=None, max_pdu=1024, compressed=False, slow_ms=1500, reset_after=6,
                 deviation_reject="error", invocation_counter=0x1000):
        quirks = set(quirks)
        bad = quirks - set(QUIRKS)
        if bad:
            raise SimError("unknown quirk(s): %s" % ", ".join(sorted(bad)), "quirks")
        if auth not in _MECH:
            raise SimError("auth must be none, low or hls", "auth")
        if link not in ("hdlc", "wrapper"):
            raise SimError("link must be hdlc or wrapper", "link")
        if model is None:
            model = MeterModel(sort_not_first="sort_not_first" in quirks, compressed=compressed)
        self.model = model
        self.quirks = quirks
        self.client = client
        self.auth = auth
        self.clients = {16: "none"}
        self.clients[client] = auth
        self.password = bytes(password)
        self.ek = ek
        self.ak = ak
        self.system_title = bytes(system_title)
        self.ic = invocation_counter
        self.ln = ln and "sn_only" not in quirks
        self.link = link
        self.max_pdu = max_pdu
        self.compressed = compressed or model.compressed
        self.slow_ms = slow_ms if "slow" in quirks else 0
        self.reset_after = reset_after
        self.deviation_reject = deviation_reject
        self.server = server
        if "four_byte_address" in quirks:
            address_size = 4
            if physical is None:
                physical = hdlc.server_address_from_serial(12345678)
        if address_size is None:
            address_size = 1 if physical is None else 2
        self.physical = physical
        self.address_size = address_size
        self.server_address = hdlc.encode_server_address(server, physical if address_size > 1 else None,
                                                         address_size)
        self.max_info = max_info
        self.window = window
        self.stats = {"frames_rx": 0, "frames_tx": 0, "apdus": 0, "bad_frames": 0, "ignored": 0,
                      "associations": 0, "releases": 0, "blocks_sent": 0, "resets": 0, "rejected": 0}
        self.log = []  # (direction, short text) of APDUs, for debugging tests
        self._rx = hdlc.FrameReceiver(0x7FF)
        self._wrx = wrapper.WrapperReceiver(max(4096, max_pdu + 64))
        self.conn = None  # HdlcConnection of the current client
        self.conn_client = None
        self.assoc = None
        self._out_apdu = None
        self._blocks = None  # GET block transfer in progress: [raw, size, next_no, invoke, sn]
        self._set = None  # SET block transfer in progress: [desc, bytearray, next_no]
        self._reset_done = False
        self._dead = False  # after reset_mid_session, until the next SNRM

    # ------------------------------------------------------------------ link layer
    @property
    def connected(self):
        return self.conn is not None and self.conn.state == hdlc_conn.CONNECTED

    def receive(self, data):
        """Feed bytes from the reader; return the bytes the meter sends (possibly empty)."""
        out = bytearray()
        if "echo" in self.quirks:
            out += data
        out += self.process(data)
        return bytes(out)

    def process(self, data):
        """As :meth:`receive` without the optical echo (carriers that model echo themselves)."""
        if self.link == "wrapper":
            return self._receive_wrapper(data)
        out = bytearray()
        rx = self._rx
        mv = memoryview(bytes(data))
        off = 0
        n = len(mv)
        while True:
            errs = rx.errors
            off = rx.feed(mv, off, n)
            if rx.errors != errs:
                self.stats["bad_frames"] += rx.errors - errs
                if "frmr_on_bad_frame" in self.quirks and self.connected:
                    out += self._frmr(0x00, 0x01)
            if not rx.ready:
                break
            self.stats["frames_rx"] += 1
            out += self._frame(rx.frame)
        return bytes(out)

    def _frmr(self, control, reason):
        c = self.conn
        info = bytes((control, ((c.vr & 7) << 5) | ((c.vs & 7) << 1) if c else 0, reason))
        buf = bytearray(64)
        n = hdlc.encode_frame(buf, 0, c.remote, self.server_address, hdlc.encode_control("FRMR"), info)
        self.stats["frames_tx"] += 1
        return bytes(buf[:n])

    def _dm_to(self, f):
        # DM back to whoever sent f (addresses swapped as they were on the wire).
        dst = bytes(f.buf[f.start + 2 + f.dst_size:f.start + 2 + f.dst_size + f.src_size])
        src = bytes(f.buf[f.start + 2:f.start + 2 + f.dst_size])
        buf = bytearray(32)
        n = hdlc.encode_dm(buf, 0, dst, src)
        self.stats["frames_tx"] += 1
        return bytes(buf[:n])

    def _wire(self, mv):
        # The HDLC codecs write frames with their flags; count them.
        self.stats["frames_tx"] += max(1, bytes(mv).count(b"\x7e") // 2)
        return bytes(mv)

    def _frame(self, f):
        ok_addr = (f.dst_size == self.address_size
                   and f.dst_upper == self.server
                   and (self.address_size == 1 or f.dst_lower == self.physical)
                   and f.src_size == 1 and f.src in self.clients)
        if not ok_addr:
            self.stats["ignored"] += 1
            if "silent_wrong_address" in self.quirks or f.src_size != 1:
                return b""
            return self._dm_to(f)
        client = f.src
        if f.kind == "SNRM":
            self._dead = False
            if self.conn is None or self.conn_client != client:
                self.conn = hdlc_conn.HdlcConnection(
                    self.server_address, hdlc.encode_client_address(client), server=True,
                    max_info_tx=self.max_info, max_info_rx=self.max_info, window_tx=self.window,
                    window_rx=self.window, rx_capacity=max(2048, self.max_pdu + 64))
                self.conn_client = client
            self.assoc = None
            self._blocks = None
            self._set = None
        if self._dead:
            return self._dm_to(f)
        conn = self.conn
        if f.kind != "SNRM" and (conn is None or self.conn_client != client
                                 or conn.state != hdlc_conn.CONNECTED):
            if f.kind == "DISC" or "dm_when_disconnected" in self.quirks:
                return self._dm_to(f)
            self.stats["ignored"] += 1
            return b""
        if f.kind == "I" and f.info_len > conn.max_info_rx and "frmr_on_bad_frame" in self.quirks:
            return self._frmr(f.control, 0x04)
        try:
            ev = conn.receive_frame(f)
        except OptoreadError:
            self.stats["bad_frames"] += 1
            if "frmr_on_bad_frame" in self.quirks:
                return self._frmr(f.control, 0x08)
            return b""
        out = bytearray()
        if conn.out_len:
            out += self._wire(conn.output())
        if ev == hdlc_conn.EV_DISCONNECTED:
            self.assoc = None
            self._blocks = None
        elif ev == hdlc_conn.EV_DATA:
            data = conn.data()
            try:
                p = hdlc.strip_llc(data, 0, len(data), False)
            except OptoreadError:
                return bytes(out)
            reply = self._apdu(client, bytes(data[p:]))
            if self._dead:  # reset while processing: no answer, link gone
                self.conn = None
                return b""
            if reply is None:
                return bytes(out)
            self._out_apdu = bytearray(hdlc.LLC_RESPONSE) + reply
            try:
                conn.send(self._out_apdu)
            except LinkError:  # a request while our last answer's segments still wait for RR: ignored
                return bytes(out)
            out += self._wire(conn.output())
        return bytes(out)

    def _receive_wrapper(self, data):
        out = bytearray()
        off = 0
        data = bytes(data)
        while off < len(data):
            try:
                off = self._wrx.feed(data, off)
            except OptoreadError:
                self._wrx.reset()
                self.stats["bad_frames"] += 1
                return bytes(out)
            if not self._wrx.ready:
                break
            src, dst = self._wrx.source, self._wrx.destination
            apdu = bytes(self._wrx.apdu())
            self.stats["frames_rx"] += 1
            if dst != self.server or src not in self.clients:
                self.stats["ignored"] += 1
                continue
            if self._dead and apdu[:1] == b"\x60":
                self._dead = False  # the wrapper has no SNRM: a new AARQ finds the meter back up
            if self._dead:
                continue
            reply = self._apdu(src, apdu)
            if reply is None or self._dead:
                continue
            self.stats["frames_tx"] += 1
            out += wrapper.wrap(dst, src, reply)
        return bytes(out)

    # ------------------------------------------------------------------ application layer
    def _apdu(self, client, apdu):
        self.stats["apdus"] += 1
        if ("reset_mid_session" in self.quirks and not self._reset_done
                and self.stats["apdus"] >= self.reset_after):
            self._reset_done = True
            self._dead = True
            self.stats["resets"] += 1
            self.assoc = None
            self._blocks = None
            return None
        if not apdu:
            return None
        tag = apdu[0]
        self.log.append(("rx", "%02X" % tag))
        try:
            if tag == xdlms.AARQ:
                return self._aarq(client, apdu)
            a = self.assoc
            if tag == xdlms.RLRQ:
                self.stats["releases"] += 1
                self.assoc = None
                self._blocks = None
                buf = bytearray(64)
                return bytes(buf[:acse_server.encode_rlre(buf, 0, acse.RELEASE_NORMAL)])
            if a is None or a.client != client:
                return self._exception(1, 1)
            if a.ciphered:
                return self._ciphered(a, apdu)
            if xdlms.is_ciphered(tag) or tag in (0xDB, 0xDC):
                return self._exception(1, 2)
            return self._service(a, apdu)
        except (OptoreadError, ValueError, TypeError, IndexError, KeyError) as e:
            # A simulator answers garbage like a meter would: exception-response, never a crash.
            self.log.append(("err", str(e)))
            return self._exception(2, 1)

    def _exception(self, state_error, service_error):
        buf = bytearray(16)
        return bytes(buf[:xdlms_server.encode_exception_response(buf, 0, state_error, service_error)])

    def _next_ic(self):
        self.ic += 1
        return self.ic

    def _ciphered(self, a, apdu):
        tag = apdu[0]
        if not (xdlms.is_ciphered(tag) or tag in (0xDB, 0xDC)):
            return self._exception(1, 2)  # a ciphered association takes no plain requests
        try:
            plain, info = security.unwrap(apdu, self.ek, self.ak, a.client_title)
            a.last_ic = security.check_invocation_counter(info["ic"], a.last_ic)
        except OptoreadError:
            buf = bytearray(16)
            return bytes(buf[:xdlms_server.encode_exception_response(buf, 0, 2, 5)])  # deciphering-error
        a.sc = info["sc"] & 0x3F
        a.general = info["kind"] == "general-glo"
        reply = self._service(a, plain)
        if reply is None:
            return None
        return self._protect(a, reply)

    def _protect(self, a, reply):
        if a.general:
            return security.wrap_general_glo(self.system_title, a.sc, self._next_ic(), self.ek, self.ak,
                                             reply)
        t = xdlms.glo_tag(reply[0])
        if t is None:  # exception-response has no glo form
            return reply
        return security.wrap_service(t, a.sc, self._next_ic(), self.ek, self.ak, reply, self.system_title)

    def _limit(self, a):
        # Largest APDU we may send: client's max receive PDU, ours, minus the ciphering overhead.
        n = min(a.max_pdu or 0xFFFF, self.max_pdu)
        if a.ciphered:
            n -= 8 + 2 + 3 + 5 + 12
        return n

    # -- association
    def _aarq(self, client, apdu):
        mv = memoryview(apdu)
        r = acse_server.parse_aarq(mv)
        self._blocks = None
        self.assoc = None
        auth = self.clients.get(client, "none")
        ln = r.ln
        ciphered = r.ciphered

        def reject(diag, source=acse.SOURCE_USER, result=acse.RESULT_REJECTED_PERMANENT):
            self.stats["rejected"] += 1
            buf = bytearray(256)
            n = acse_server.encode_aare(buf, 0, ln=bool(ln) if ln is not None else True, result=result,
                                 diagnostic_source=source, diagnostic=diag, conformance=0,
                                 max_pdu=self.max_pdu)
            return bytes(buf[:n])

        if ln is None or (ln and not self.ln):
            return reject(2)  # application-context-name-not-supported
        if ciphered and (self.ek is None or self.ak is None):
            return reject(2)
        want = _MECH[auth]
        mech = r.mechanism or None
        if mech != want:
            return reject(11 if mech is not None else 12)  # mechanism not recognised / required
        if auth == "low" and bytes(r.auth_value or b"") != self.password:
            return reject(acse.DIAG_AUTHENTICATION_FAILURE)
        a = _Assoc(client, ln, auth, ciphered)
        a.client_title = r.ap_title
        if (ciphered or auth == "hls") and (a.client_title is None or len(a.client_title) != 8):
            return reject(acse.DIAG_AUTHENTICATION_FAILURE)
        if auth == "hls":
            if r.auth_value is None or not 8 <= len(r.auth_value) <= 64:
                return reject(acse.DIAG_AUTHENTICATION_FAILURE)
            a.ctos = bytes(r.auth_value)
            a.stoc = bytes((0x30 + (i * 7 + self.ic) % 40) for i in range(16))
        initiate = r.initiate
        if r.ciphered_user_info:
            try:
                plain, info = security.unwrap(r.user_info(mv), self.ek, self.ak, a.client_title)
            except OptoreadError:
                return reject(acse.DIAG_AUTHENTICATION_FAILURE)
            a.last_ic = info["ic"]
            a.sc = info["sc"] & 0x3F
            initiate = acse_server.parse_initiate_request(plain)
        if initiate is None:
            return reject(1)
        if initiate.dlms_version is not None and initiate.dlms_version < 6:
            buf = bytearray(8)
            n = xdlms_server.encode_confirmed_service_error(buf, 0, 1, 6, 1)
            ui = bytes(buf[:n])
            buf = bytearray(256)
            n = acse_server.encode_aare(buf, 0, ln=ln, result=1, diagnostic=1, user_information=ui)
            return bytes(buf[:n])
        ours = _CONF_LN if ln else _CONF_SN
        a.conformance = initiate.conformance & ours
        a.max_pdu = initiate.max_pdu or 0xFFFF
        ui = None
        vaa = acse_server.VAA_LN if ln else acse_server.VAA_SN
        if ciphered:
            buf = bytearray(32)
            n = acse_server.encode_initiate_response(buf, 0, a.conformance, self.max_pdu, vaa_name=vaa)
            ui = security.wrap_service(0x28, a.sc or security.SC_AUTH_ENC, self._next_ic(), self.ek, self.ak,
                                       bytes(buf[:n]), self.system_title)
        self.assoc = a
        self.stats["associations"] += 1
        buf = bytearray(512)
        n = acse_server.encode_aare(
            buf, 0, ln=ln, ciphered=ciphered, result=0,
            diagnostic=acse.DIAG_AUTHENTICATION_REQUIRED if auth == "hls" else 0,
            responding_ap_title=self.system_title if (ciphered or auth == "hls") else None,
            mechanism=want if auth == "hls" else None,
            auth_value=a.stoc if auth == "hls" else None,
            conformance=a.conformance, max_pdu=self.max_pdu, vaa_name=vaa, user_information=ui)
        return bytes(buf[:n])

    # -- services
    def _service(self, a, apdu):
        tag = apdu[0]
        mv = memoryview(apdu)
        if a.ln:
            if tag == xdlms.GET_REQUEST:
                return self._get(a, mv)
            if tag == xdlms_set.SET_REQUEST:
                return self._set_req(a, mv)
            if tag == xdlms_set.ACTION_REQUEST:
                return self._action(a, mv)
        else:
            if tag == xdlms_sn.READ_REQUEST:
                return self._read(a, mv)
            if tag == xdlms_sn.WRITE_REQUEST:
                return self._write(a, mv)
        return self._exception(2, 2)  # service-unknown / service-not-supported

    def _value(self, a, cls, obis, attr, sel=0, params=None, first_row=True):
        """Encoded Data bytes of an attribute, or an int data-access-result."""
        if not a.authenticated:
            return DAR_READ_WRITE_DENIED
        m = self.model
        o = m.find(cls, obis)
        if o is None:
            return DAR_OBJECT_UNDEFINED if m.find_obis(obis) is None else 9
        if attr not in o.attrs:
            return DAR_OBJECT_UNDEFINED
        if cls in (12, 15):
            v = self._assoc_attr(a, o, attr)
        elif cls == 7 and attr == 2:
            return self._buffer(o, sel, params)
        else:
            if sel:
                return DAR_OTHER
            v = m.get_attr(o, attr)
        if isinstance(v, int):
            return v
        return T.encode_to_bytes(v[0], v[1], 16)

    def _assoc_attr(self, a, o, attr):
        m = self.model
        if attr == 7:
            return DAR_READ_WRITE_DENIED
        if o.class_id == 15:
            if attr == 2:
                items = []
                for x in m.all_objects(sn=False):
                    am, mm = m.access(x, a.privileged)
                    items.append((T.STRUCTURE, (
                        (T.LONG_UNSIGNED, x.class_id), (T.UNSIGNED, x.version), (T.OCTET_STRING, x.obis),
                        (T.STRUCTURE, (
                            (T.ARRAY, [(T.STRUCTURE, ((T.INTEGER, at), (T.ENUM, md), (T.NULL, None)))
                                       for at, md in am]),
                            (T.ARRAY, [(T.STRUCTURE, ((T.INTEGER, mt), (T.ENUM, md))) for mt, md in mm]))))))
                return (T.ARRAY, items)
            if attr == 3:
                return (T.STRUCTURE, ((T.INTEGER, a.client), (T.LONG_UNSIGNED, self.server)))
            if attr == 4:
                return (T.OCTET_STRING, b"\x60\x85\x74\x05\x08\x01" + bytes((1 if not a.ciphered else 3,)))
            if attr == 5:
                bits = axdr_types.BitString(a.conformance.to_bytes(3, "big"), 24)
                return (T.STRUCTURE, ((T.BIT_STRING, bits),
                                      (T.LONG_UNSIGNED, self.max_pdu), (T.LONG_UNSIGNED, self.max_pdu),
                                      (T.UNSIGNED, 6), (T.INTEGER, 0), (T.OCTET_STRING, b"")))
            if attr == 6:
                return (T.OCTET_STRING, b"\x60\x85\x74\x05\x08\x02" + bytes((_MECH[a.auth] or 0,)))
            if attr == 8:
                return (T.ENUM, 2)
            if attr == 9:
                return (T.OCTET_STRING, ob("0.0.43.0.0.255"))
            return DAR_OBJECT_UNDEFINED
        if attr == 2:
            items = []
            for x in m.all_objects(sn=True):
                bn = x.base_name - 0x10000 if x.base_name >= 0x8000 else x.base_name
                items.append((T.STRUCTURE, ((T.LONG, bn), (T.LONG_UNSIGNED, x.class_id),
                                            (T.UNSIGNED, x.version), (T.OCTET_STRING, x.obis))))
            return (T.ARRAY, items)
        if attr == 3:
            return (T.ARRAY, [])
        if attr == 4:
            return (T.OCTET_STRING, ob("0.0.43.0.0.255"))
        return DAR_OBJECT_UNDEFINED

    # -- profile buffer and selective access
    def _buffer(self, p, sel, params):
        m = self.model
        ncol = len(p.columns)
        lo, hi = 0, p.rows
        cols = list(range(ncol))
        if sel == xdlms.SELECT_BY_RANGE:
            try:
                v = A.decode(params[0], params[1], params[2])[0]
                restrict, frm, to, selected = v
                if len(frm) != 12 or len(to) != 12:
                    return DAR_TYPE_UNMATCHED
                fdt = A.DateTime.from_bytes(frm)
                tdt = A.DateTime.from_bytes(to)
            except (OptoreadError, ValueError, TypeError):
                return DAR_TYPE_UNMATCHED
            rcls, robis, rattr = restrict[0], bytes(restrict[1]), restrict[2]
            col = None
            for i, c in enumerate(p.columns):
                if c[0] == rcls and c[1] == robis and c[2] == rattr:
                    col = i
            if col is None or col != p.sort_col or p.time_of is None:
                return DAR_OTHER
            if "rejects_deviation" in self.quirks and (fdt.deviation != A.DEVIATION_UNSPECIFIED
                                                       or tdt.deviation != A.DEVIATION_UNSPECIFIED):
                if self.deviation_reject == "empty":
                    return b"\x01\x00"
                return DAR_OTHER
            f_ep = self._local(fdt)
            t_ep = self._local(tdt)
            if f_ep is None or t_ep is None:
                return DAR_OTHER
            lo, hi = m.rows_in_range(p.obis, f_ep, t_ep)
            if selected:
                cols = []
                for s in selected:
                    for i, c in enumerate(p.columns):
                        if c[0] == s[0] and c[1] == bytes(s[1]) and c[2] == s[2]:
                            cols.append(i)
                            break
                    else:
                        return DAR_OTHER
        elif sel == xdlms.SELECT_BY_ENTRY:
            try:
                v = A.decode(params[0], params[1], params[2])[0]
                fe, te, fc, tc = v
            except (OptoreadError, ValueError, TypeError):
                return DAR_TYPE_UNMATCHED
            if te == 0 or te > p.rows:
                te = p.rows
            if tc == 0 or tc > ncol:
                tc = ncol
            if fe < 1 or fc < 1 or fc > tc:
                return DAR_OTHER
            lo, hi = fe - 1, max(fe - 1, te)
            cols = list(range(fc - 1, tc))
        elif sel:
            return DAR_OTHER
        return self._encode_rows(p, lo, hi, cols)

    def _local(self, dt):
        # The meter compares in its own local time; a specified deviation is converted.
        t = dt.local_epoch()
        if t is None:
            return None
        if dt.deviation != A.DEVIATION_UNSPECIFIED:
            t = t + dt.deviation * 60 - self.model.deviation * 60
        return t

    def _encode_rows(self, p, lo, hi, cols):
        n = max(0, hi - lo)
        head = bytearray(6)
        head[0] = T.ARRAY
        k = axdr_data.encode_length(head, 1, n)
        parts = [bytes(head[:k])]
        clock_col = p.sort_col if (self.compressed and p.period_s and p.sort_col is not None) else None
        for i in range(lo, hi):
            row = []
            for c in cols:
                if c == clock_col and i > lo:
                    row.append((T.NULL, None))
                else:
                    row.append(p.cell(i, c))
            parts.append(T.encode_to_bytes(T.STRUCTURE, row))
        return b"".join(parts)

    # -- GET (LN)
    def _get(self, a, mv):
        r = xdlms_server.parse_get_request(mv)
        inv = r.invoke
        buf = bytearray(64)
        if r.kind == xdlms.NEXT:
            b = self._blocks
            if b is None or b[4]:
                n = xdlms_server.encode_get_response_block(buf, 0, inv, True, r.block, dar=DAR_NO_LONG_GET)
                return bytes(buf[:n])
            if r.block != b[2] - 1:
                self._blocks = None
                return bytes(buf[:xdlms_server.encode_get_response_block(buf, 0, inv, True, r.block,
                                                                  dar=DAR_BLOCK_NUMBER_INVALID)])
            return self._next_block(inv)
        if r.kind == xdlms.NORMAL:
            cls, obis, attr, sel, p_off, p_end = r.items[0]
            v = self._value(a, cls, obis, attr, sel, (mv, p_off, p_end) if sel else None)
            if isinstance(v, int):
                return bytes(buf[:xdlms_server.encode_get_response(buf, 0, inv, dar=v)])
            whole = bytearray(len(v) + 16)
            n = xdlms_server.encode_get_response(whole, 0, inv, data=v)
            if n <= self._limit(a):
                return bytes(whole[:n])
            return self._start_blocks(a, inv, v)
        # with-list
        results = []
        raw = bytearray()
        for cls, obis, attr, sel, p_off, p_end in r.items:
            v = self._value(a, cls, obis, attr, sel, (mv, p_off, p_end) if sel else None)
            results.append(v)
            raw += bytes((1, v)) if isinstance(v, int) else b"\x00" + v
        out = bytearray(len(raw) + 16)
        n = xdlms_server.encode_get_response_list(out, 0, inv, results)
        if n <= self._limit(a):
            return bytes(out[:n])
        head = bytearray(6)
        k = xdlms.write_length(head, 0, len(results))
        return self._start_blocks(a, inv, bytes(head[:k]) + bytes(raw))

    def _start_blocks(self, a, inv, raw, sn=False):
        if not (a.conformance & acse_names.CONF_BLOCK_TRANSFER_GET):
            buf = bytearray(16)
            if sn:
                return self._read_response([DAR_OTHER])
            return bytes(buf[:xdlms_server.encode_get_response(buf, 0, inv, dar=DAR_OTHER)])
        size = max(16, self._limit(a) - 16)
        if "endless_blocks" in self.quirks and raw[:1] == b"\x01":
            raw = _Endless(raw)
        self._blocks = [raw, size, 1, inv, sn]
        return self._next_block(inv)

    def _next_block(self, inv):
        raw, size, no, _inv, sn = self._blocks
        start = (no - 1) * size
        chunk = raw[start:start + size]
        last = start + size >= len(raw)
        self._blocks[2] = no + 1
        if last:
            self._blocks = None
        self.stats["blocks_sent"] += 1
        if no == 2 and "blocks_out_of_order" in self.quirks:
            no = 3
        buf = bytearray(len(chunk) + 24)
        if sn:
            buf[0] = xdlms_sn.READ_RESPONSE
            buf[1] = 1
            buf[2] = 2
            buf[3] = 1 if last else 0
            struct.pack_into(">H", buf, 4, no)
            n = xdlms.put_octets(buf, 6, chunk)
            return bytes(buf[:n])
        return bytes(buf[:xdlms_server.encode_get_response_block(buf, 0, inv, last, no, raw=chunk)])

    # -- SET (LN)
    def _writable(self, a, cls, obis, attr):
        o = self.model.find(cls, obis)
        if o is None:
            return None, DAR_OBJECT_UNDEFINED
        if attr not in o.attrs:
            return None, DAR_OBJECT_UNDEFINED
        if not a.privileged or attr not in o.writable:
            return None, DAR_READ_WRITE_DENIED
        return o, 0

    def _store(self, a, cls, obis, attr, data):
        """Apply a SET of encoded ``data``; returns a data-access-result."""
        o, dar = self._writable(a, cls, obis, attr)
        if o is None:
            return dar
        try:
            v, end = A.decode(data, 0, len(data))
        except OptoreadError:
            return DAR_TYPE_UNMATCHED
        if end != len(data):
            return DAR_TYPE_UNMATCHED
        m = self.model
        tag = data[0]
        if cls == 8 and attr == 2:
            if tag != T.OCTET_STRING or len(v) != 12:
                return DAR_TYPE_UNMATCHED
            dt = A.DateTime.from_bytes(v)
            t = self._local(dt)
            if t is None:
                return DAR_OTHER
            m.clock_epoch = t
        elif cls == 8 and attr == 3:
            if tag != T.LONG:
                return DAR_TYPE_UNMATCHED
            m.time_zone = v
        elif cls == 1:
            if tag != o.value[0]:
                return DAR_TYPE_UNMATCHED
            o.value = (tag, v)
        m.writes.append((bytes(obis), attr, v))
        return 0

    def _set_req(self, a, mv):
        end = len(mv)
        off, end = 1, end
        kind, off = xdlms.u8(mv, off, end, "set-request-type")
        inv, off = xdlms.u8(mv, off, end, "invoke-id")
        buf = bytearray(64)
        if not a.authenticated:
            return bytes(buf[:xdlms_server.encode_set_response(buf, 0, inv, DAR_READ_WRITE_DENIED)])
        if kind == xdlms.NORMAL:
            cls, obis, attr, off = xdlms_server.parse_descriptor(mv, off, end)
            sel, off = self._skip_selection(mv, off, end)
            dar = self._store(a, cls, obis, attr, bytes(mv[off:end])) if not sel else DAR_OTHER
            return bytes(buf[:xdlms_server.encode_set_response(buf, 0, inv, dar)])
        if kind in (xdlms_set.SET_FIRST_DATABLOCK, xdlms_set.SET_WITH_DATABLOCK):
            if kind == xdlms_set.SET_FIRST_DATABLOCK:
                cls, obis, attr, off = xdlms_server.parse_descriptor(mv, off, end)
                sel, off = self._skip_selection(mv, off, end)
                self._set = [(cls, obis, attr), bytearray(), 1]
            last, off = xdlms.u8(mv, off, end, "last-block")
            no, off = xdlms.u32(mv, off, end, "block-number")
            d_off, d_end = xdlms.octets(mv, off, end, "raw-data")
            s = self._set
            if s is None or no != s[2]:
                self._set = None
                buf[0:3] = bytes((xdlms_set.SET_RESPONSE, xdlms_set.SET_RESPONSE_LAST_DATABLOCK, inv))
                buf[3] = DAR_LONG_SET_ABORTED if s is not None else 18
                struct.pack_into(">I", buf, 4, no)
                return bytes(buf[:8])
            s[1] += mv[d_off:d_end]
            s[2] += 1
            if not last:
                buf[0:3] = bytes((xdlms_set.SET_RESPONSE, xdlms_set.SET_RESPONSE_DATABLOCK, inv))
                struct.pack_into(">I", buf, 3, no)
                return bytes(buf[:7])
            self._set = None
            cls, obis, attr = s[0]
            dar = self._store(a, cls, obis, attr, bytes(s[1]))
            buf[0:4] = bytes((xdlms_set.SET_RESPONSE, xdlms_set.SET_RESPONSE_LAST_DATABLOCK, inv, dar))
            struct.pack_into(">I", buf, 4, no)
            return bytes(buf[:8])
        if kind == xdlms_set.SET_WITH_LIST:
            n, off = xdlms.read_length(mv, off, end, "list-count")
            xdlms.need(mv, off, end, n * 10, "list")
            descs = []
            for _ in range(n):
                cls, obis, attr, off = xdlms_server.parse_descriptor(mv, off, end)
                sel, off = self._skip_selection(mv, off, end)
                descs.append((cls, obis, attr))
            k, off = xdlms.read_length(mv, off, end, "value-count")
            if k != n:
                return self._exception(2, 1)
            dars = []
            for cls, obis, attr in descs:
                d_end = A.skip(mv, off, end)
                dars.append(self._store(a, cls, obis, attr, bytes(mv[off:d_end])))
                off = d_end
            out = bytearray(8 + n)
            out[0:3] = bytes((xdlms_set.SET_RESPONSE, xdlms_set.SET_RESPONSE_WITH_LIST, inv))
            o = xdlms.write_length(out, 3, n)
            for d in dars:
                out[o] = d
                o += 1
            return bytes(out[:o])
        return self._exception(2, 2)

    def _skip_selection(self, mv, off, end):
        flag, off = xdlms.u8(mv, off, end, "access-selection")
        if flag == 0:
            return 0, off
        sel, off = xdlms.u8(mv, off, end, "access-selector")
        return sel, A.skip(mv, off, end)

    # -- ACTION (LN)
    def _action(self, a, mv):
        end = len(mv)
        kind, off = xdlms.u8(mv, 1, end, "action-request-type")
        inv, off = xdlms.u8(mv, off, end, "invoke-id")
        buf = bytearray(64)
        if kind != xdlms.NORMAL:
            return bytes(buf[:xdlms_server.encode_action_response(buf, 0, inv, DAR_OTHER)])
        cls, obis, method, off = xdlms_server.parse_descriptor(mv, off, end)
        flag, off = xdlms.u8(mv, off, end, "parameters")
        params = bytes(mv[off:end]) if flag else None
        result, data = self._method(a, cls, obis, method, params)
        out = bytearray(96)
        return bytes(out[:xdlms_server.encode_action_response(out, 0, inv, result, data)])

    def _method(self, a, cls, obis, method, params):
        """Run a method: ``(action_result, return_data_bytes_or_None)``."""
        m = self.model
        o = m.find(cls, obis)
        if o is None:
            return DAR_OBJECT_UNDEFINED, None
        if method not in o.methods:
            return DAR_OBJECT_UNDEFINED, None
        if cls in (12, 15) and method == (1 if cls == 15 else 8):
            if a.auth != "hls" or params is None:
                return DAR_READ_WRITE_DENIED, None
            try:
                v, _e = A.decode(params, 0, len(params))
                security.verify_hls_gmac(bytes(v), a.client_title, self.ek, self.ak, a.stoc)
            except (OptoreadError, TypeError):
                self.log.append(("err", "HLS f(StoC) rejected"))
                return DAR_READ_WRITE_DENIED, None
            a.authenticated = True
            reply = security.hls_gmac(self.system_title, self._next_ic(), self.ek, self.ak, a.ctos)
            return 0, T.encode_to_bytes(T.OCTET_STRING, reply)
        if not a.authenticated or not a.privileged:
            return DAR_READ_WRITE_DENIED, None
        if cls == 8:
            if method == 1:  # adjust_to_quarter
                q = 900
                m.clock_epoch = (m.clock_epoch + q // 2) // q * q
                return 0, None
            if method == 6:  # shift_time(long seconds, -900..900)
                try:
                    v, _e = A.decode(params or b"", 0, len(params or b""))
                except OptoreadError:
                    return DAR_TYPE_UNMATCHED, None
                if params[0] != T.LONG or not -900 <= v <= 900:
                    return DAR_OTHER, None
                m.clock_epoch += v
                m.writes.append((bytes(obis), -6, v))
                return 0, None
        return DAR_READ_WRITE_DENIED, None

    # -- SN services
    def _sn_target(self, name):
        t = self.model.by_base_name(name)
        return t

    def _read_response(self, items):
        buf = bytearray(sum(len(x) + 2 if not isinstance(x, int) else 2 for x in items) + 8)
        buf[0] = xdlms_sn.READ_RESPONSE
        off = xdlms.write_length(buf, 1, len(items))
        for x in items:
            if isinstance(x, int):
                buf[off] = 1
                buf[off + 1] = x
                off += 2
            else:
                buf[off] = 0
                off = xdlms.put(buf, off + 1, x)
        return bytes(buf[:off])

    def _read(self, a, mv):
        end = len(mv)
        n, off = xdlms.read_length(mv, 1, end, "list-count")
        xdlms.need(mv, off, end, n * 3, "list")
        items = []
        for _ in range(n):
            kind, off = xdlms.u8(mv, off, end, "variable-access")
            if kind == 5:  # block-number-access: the next block of a long read
                no, off = xdlms.u16(mv, off, end, "block-number")
                b = self._blocks
                if b is None or not b[4] or no != b[2] - 1:
                    self._blocks = None
                    return self._read_response([DAR_NO_LONG_GET])
                return self._next_block(0)
            if kind == 2:
                name, off = xdlms.u16(mv, off, end, "variable-name")
                sel, params = 0, None
            elif kind == 4:
                name, off = xdlms.u16(mv, off, end, "variable-name")
                sel, off = xdlms.u8(mv, off, end, "selector")
                p_end = A.skip(mv, off, end)
                params = (mv, off, p_end)
                off = p_end
            else:
                raise SimError("unsupported variable-access %d" % kind, "variable-access", off - 1)
            t = self._sn_target(name)
            if t is None:
                items.append(DAR_OBJECT_UNDEFINED)
                continue
            o, what, k = t
            if what == "method":
                pdata = bytes(mv[params[1]:params[2]]) if params is not None else None
                if kind == 4:
                    # parameterized access to a method address: selector is unused; params = argument
                    pass
                res, data = self._method(a, o.class_id, o.obis, k, pdata)
                items.append(data if (res == 0 and data is not None) else (res if res else b"\x00"))
                continue
            v = self._value(a, o.class_id, o.obis, k, sel, params)
            items.append(v)
        out = self._read_response(items)
        if len(out) <= self._limit(a):
            return out
        raw = bytearray()
        for x in items:
            raw += bytes((1, x)) if isinstance(x, int) else x
        if len(items) == 1 and not isinstance(items[0], int):
            raw = bytearray(items[0])
        return self._start_blocks(a, 0, bytes(raw), sn=True)

    def _write(self, a, mv):
        end = len(mv)
        n, off = xdlms.read_length(mv, 1, end, "list-count")
        xdlms.need(mv, off, end, n * 3, "list")
        names = []
        for _ in range(n):
            kind, off = xdlms.u8(mv, off, end, "variable-access")
            if kind != 2:
                raise SimError("unsupported variable-access %d" % kind, "variable-access", off - 1)
            name, off = xdlms.u16(mv, off, end, "variable-name")
            names.append(name)
        k, off = xdlms.read_length(mv, off, end, "value-count")
        if k != n:
            raise SimError("one value per name", "write-request", off)
        results = []
        for name in names:
            d_end = A.skip(mv, off, end)
            data = bytes(mv[off:d_end])
            off = d_end
            t = self._sn_target(name)
            if t is None:
                results.append(DAR_OBJECT_UNDEFINED)
                continue
            o, what, idx = t
            if what == "method":
                res, _d = self._method(a, o.class_id, o.obis, idx, data)
                results.append(res)
            else:
                results.append(self._store(a, o.class_id, o.obis, idx, data))
        buf = bytearray(8 + 2 * n)
        buf[0] = xdlms_sn.WRITE_RESPONSE
        o = xdlms.write_length(buf, 1, n)
        for r in results:
            if r == 0:
                buf[o] = 0
                o += 1
            else:
                buf[o] = 1
                buf[o + 1] = r
                o += 2
        return bytes(buf[:o])


# ---------------------------------------------------------------- in-process transport


class ServerTransport:
    """Transport (write/drain/set_line/readinto/sleep_ms/ticks_ms/close) onto a DlmsServer.

    Runs on a virtual clock: each reply becomes readable ``latency_ms`` (plus the server's
    ``slow_ms``) after the request plus its transmission time at ``baud``; ``readinto``
    advances the clock to the reply or by its timeout. ``echo`` (the server quirk) is
    part of the reply bytes. ``written``/``received`` count bytes; ``closed`` after close().
    """

    def __init__(self, server, baud=9600, latency_ms=20, chunk=None):
        self.server = server
        self.baud = baud
        self.latency_ms = latency_ms
        self.chunk = chunk  # deliver at most this many bytes per readinto (None = all)
        self.now = 0.0
        self.line = (baud, 8, "N", 1)
        self._q = []  # [(ready_time, bytes)]
        self._rx = bytearray()
        self.written = 0
        self.received = 0
        self.closed = False
        self.writes = []

    def _char_ms(self):
        return 10000.0 / self.line[0] if self.server.link == "hdlc" else 0.0

    def write(self, data):
        data = bytes(data)
        self.writes.append(data)
        self.written += len(data)
        self.now += len(data) * self._char_ms()
        out = self.server.receive(data)
        if out:
            t = self.now + self.latency_ms + self.server.slow_ms + len(out) * self._char_ms()
            self._q.append((t, out))
        return len(data)

    def drain(self):
        pass

    def set_line(self, baud, bits, parity, stop=1):
        self.line = (baud, bits, parity, stop)

    def readinto(self, buf, timeout_ms):
        if not self._rx:
            if self._q and self._q[0][0] <= self.now + timeout_ms:
                t, data = self._q.pop(0)
                self.now = max(self.now, t)
                self._rx += data
                while self._q and self._q[0][0] <= self.now:
                    self._rx += self._q.pop(0)[1]
            else:
                self.now += timeout_ms
                return 0
        n = min(len(buf), len(self._rx))
        if self.chunk:
            n = min(n, self.chunk)
        buf[:n] = self._rx[:n]
        del self._rx[:n]
        self.received += n
        return n

    def sleep_ms(self, ms):
        self.now += ms

    def ticks_ms(self):
        return int(self.now) & ((1 << 30) - 1)

    def close(self):
        self.closed = True


# ---------------------------------------------------------------- time-driven meters (VirtualLine, pty)


class _TimeDrivenHdlc:
    """Shared by ModeEMeter/HdlcMeter: bytes in state "hdlc" go to the server; the reply is
    sent ``reaction_ms`` (+ slow_ms) after the last byte of a request."""

    def _hdlc_byte(self, t, b):
        out = self.dlms.process(bytes((b,)))
        if out:
            delay = self.dlms_reaction_ms + self.dlms.slow_ms
            self._send(max(t + delay, self._tx_end), out)


class ModeEMeter(Iec21Meter, _TimeDrivenHdlc):
    """IEC 62056-21 sign-on (mode E: ``\\2`` in the identification, ACK ``2 Z 2``) handing over to
    HDLC at the proposed baud 8N1, then the DlmsServer. Time-driven (on_rx/poll) for
    VirtualLine and ptyline.start_pty_thread. ``echo`` follows the server's quirk.
    Extra keyword arguments go to Iec21Meter (maker, model, baud_char, ...)."""

    def __init__(self, server, reaction_ms=20, **kw):
        kw.setdefault("maker", "SIM")
        kw.setdefault("model", "DLMS-E")
        kw.setdefault("echo", "echo" in server.quirks)
        kw["mode"] = "E"
        self.dlms = server
        self.dlms_reaction_ms = reaction_ms
        Iec21Meter.__init__(self, **kw)

    def on_rx(self, t_ms, b, clean=True):
        if self.state == "hdlc":
            self._hdlc_last = t_ms
            if clean:
                self._hdlc_byte(t_ms, b)
            return
        Iec21Meter.on_rx(self, t_ms, b, clean)


class HdlcMeter(Iec21Meter, _TimeDrivenHdlc):
    """A direct-HDLC meter (IS 15959 optical port: no sign-on) at ``baud`` 8N1, time-driven
    for VirtualLine and ptyline.start_pty_thread; an IEC sign-on request gets no answer."""

    def __init__(self, server, baud=9600, reaction_ms=20, **kw):
        kw.setdefault("echo", "echo" in server.quirks)
        self.dlms = server
        self.dlms_reaction_ms = reaction_ms
        self.hdlc_baud = baud
        Iec21Meter.__init__(self, **kw)

    def reset(self):
        Iec21Meter.reset(self)
        self.line = (self.hdlc_baud, 8, "N")
        self._planned_line = self.line
        self.state = "hdlc"

    def _go_idle(self, t, why):
        self._note(t, "stays in HDLC: " + why)

    def on_rx(self, t_ms, b, clean=True):
        start = t_ms - char_ms(*self.line)
        if start < self._listen_from - 1e-3:
            self.stats["ignored"] += 1
            return
        if clean:
            self._hdlc_byte(t_ms, b)


# ---------------------------------------------------------------- TCP


LOOPBACK = ("127.0.0.1", "localhost", "::1")


def check_loopback(host, what):
    """SimError unless ``host`` is a loopback name: the simulators never touch another address."""
    if host not in LOOPBACK:
        raise SimError("the simulator %s loopback only" % what, "host")


def serve_tcp(server_factory, port=0, host="127.0.0.1"):
    """Serve ``server_factory()`` (a new DlmsServer per connection) on loopback TCP in a thread.

    Returns ``(port, stop)``; ``stop()`` closes the listener and every connection and joins
    the thread. HDLC-over-TCP or wrapper, as the server's ``link`` says.
    """
    check_loopback(host, "listens on")
    ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind((host, port))
    ls.listen(4)
    ls.setblocking(False)
    stop_ev = threading.Event()
    conns = {}

    def run():
        while not stop_ev.is_set():
            socks = [ls] + list(conns)
            try:
                r, _w, _x = select.select(socks, [], [], 0.05)
            except (OSError, ValueError):
                break
            for s in r:
                if s is ls:
                    try:
                        c, _addr = ls.accept()
                    except OSError:
                        continue
                    c.setblocking(True)
                    conns[c] = server_factory()
                    continue
                try:
                    data = s.recv(4096)
                except OSError:
                    data = b""
                if not data:
                    conns.pop(s, None)
                    s.close()
                    continue
                srv = conns[s]
                out = srv.receive(data)
                if out:
                    if srv.slow_ms:
                        time.sleep(srv.slow_ms / 1000.0)
                    try:
                        s.sendall(out)
                    except OSError:
                        conns.pop(s, None)
                        s.close()
        for s in list(conns):
            s.close()
        ls.close()

    th = threading.Thread(target=run, name="sim-dlms-tcp", daemon=True)
    th.start()

    def stop(timeout=5.0):
        stop_ev.set()
        th.join(timeout)

    return ls.getsockname()[1], stop


def start_pty(server, mode_e=False, **kw):
    """Serve ``server`` on a pty (direct HDLC at 9600 8N1, or mode E sign-on first) in a thread:
    returns what ``ptyline.start_pty_thread`` returns (the slave path and a stopper)."""
    from .ptyline import start_pty_thread

    meter = ModeEMeter(server, **kw) if mode_e else HdlcMeter(server, **kw)
    return start_pty_thread(meter)

