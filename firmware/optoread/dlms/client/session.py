"""DLMS/COSEM client session: link, association, GET/SET/ACTION with block transfer. Sans-IO core.

The protocol work is done by generators that yield the same actions as the
IEC 62056-21 procedures (``SEND``, ``READ``, ``SET_LINE``, ``PROGRESS`` ...);
:class:`optoread.driver.Driver` performs them on a transport. So a mode E
sign-on (``iec62056_21.mode_e``) and the HDLC session run on one driver, and
everything here can be tested on a virtual clock.

Usage::

    st = Settings(client=16, server=1, physical=17, auth="low", password=b"12345678")
    with Session(st, transport) as sess:
        v = sess.get(3, "1.0.1.8.0.255", 2)
        n = sess.get(7, "1.0.99.1.0.255", 2, sink=rows.append)   # streamed, row by row

Links: HDLC (IEC 62056-46) with an optional mode E sign-on first, or the
IEC 62056-47 wrapper (TCP). Memory: the transmit buffer is allocated once in
:meth:`Session.open` (APDUs are built in place, ciphered into the same buffer);
responses are reassembled in the HDLC connection's (or wrapper receiver's)
single buffer; a GET with a sink streams the array element by element
(``axdr.ArrayStream``), so a 2880-row profile never sits in RAM.

close() releases the association (RLRQ) and the link (DISC) on every exit path;
:meth:`Session.open` closes by itself when it fails half-way.
"""

from optoread.compat import buffer, const, ticks_add, ticks_diff
from optoread.dlms.acse import apdu as acse
from optoread.dlms.acse.apdu import (
    DEFAULT_CONFORMANCE,
    DEFAULT_CONFORMANCE_SN,
    RELEASE_NORMAL,
    SOURCE_USER,
    parse_initiate_response,
)
from optoread.dlms.axdr import decode as axdr
from optoread.dlms.client.requests import block_progress, obis_bytes, stream_done
from optoread.dlms.hdlc import frame as hdlc
from optoread.dlms.hdlc.connection import CONNECTED, EV_CONNECTED, EV_DATA, EV_DISCONNECTED, HdlcConnection
from optoread.dlms.hdlc.frame import FrameReceiver
from optoread.dlms.xdlms import apdu as xdlms
from optoread.dlms.xdlms.get import encode_get_request, encode_get_request_next, parse_get_response
from optoread.driver import PROGRESS, READ, SEND, SET_LINE, Driver
from optoread.errors import (
    DataAccessError,
    LinkError,
    NoAnswerError,
    OptoreadError,
    SecurityError,
    SessionError,
)

_AP = const(8)  # APDU offset in the tx buffer: room for the wrapper header / the LLC in front
_LLC = const(3)
_SC = const(0x30)  # security suite 0, authenticated and encrypted
_CIPHER_ROOM = const(24)  # glo tag + length + SC + IC + GCM tag (12), rounded up
_DEFAULT_MAX_INFO = const(2030)  # largest info field a 2047-byte HDLC frame carries
_TX_PDU = const(1024)  # largest request APDU we build (SET values beyond it go in blocks)
_CLOSE_MS = const(10000)  # RLRQ and DISC after a reading's deadline: two exchanges, a retry each
_READ_CHUNK = const(128)  # driver read buffer (and the bytes kept after a frame): ~13 ms of 9600 baud
_PROGRESS_BLOCKS = const(16)




class Settings:
    """Everything needed to reach and associate with one meter (see the module docstring).

    ``client``/``server``/``physical``: client SAP, server logical and physical address;
    ``address_size`` None = 1 byte without a physical address, else 2 (4 for large ones).
    ``auth``: "none", "low" (LLS, ``password``) or "hls" (HLS-GMAC, mechanism 5, with
    ``system_title``, ``ek``, ``ak``, ``invocation_counter``); ``ciphered`` protects every
    APDU (glo-ciphering, suite 0). ``ln`` False = short-name referencing. ``link``:
    "hdlc" or "wrapper". ``mode_e`` signs on with IEC 62056-21 first (``iec`` options).
    ``max_info`` None = the largest our buffers allow; ``max_pdu`` is our receive PDU size
    (the response buffer is allocated to it: 2048 by default, block transfer carries more).
    ``element_max`` bounds one streamed array
    element; ``value_max`` bounds a non-streamed value assembled from blocks. ``buffers``: a
    :class:`LinkBuffers` whose buffers the session uses instead of allocating its own.
    """

    def __init__(self, client=16, server=1, physical=None, address_size=None, auth="none",
                 password=b"", system_title=b"OPTOREAD", ek=None, ak=None, invocation_counter=0,
                 ciphered=False, ln=True, link="hdlc", mode_e=False, baud=9600, max_info=None,
                 window=1, timeout_ms=3000, retries=3, max_pdu=2048, iec=None, conformance=None,
                 challenge=None, element_max=1024, value_max=0x10000, tx_pdu=_TX_PDU, echo=True,
                 buffers=None):
        self.client = client
        self.server = server
        self.physical = physical
        self.address_size = address_size
        self.auth = auth
        self.password = password
        self.system_title = system_title
        self.ek = ek
        self.ak = ak
        self.invocation_counter = invocation_counter
        self.ciphered = ciphered
        self.ln = ln
        self.link = link
        self.mode_e = mode_e
        self.baud = baud
        self.max_info = max_info
        self.window = window
        self.timeout_ms = timeout_ms
        self.retries = retries
        self.max_pdu = max_pdu
        self.iec = iec
        self.conformance = conformance
        self.challenge = challenge
        self.element_max = element_max
        self.value_max = value_max
        self.tx_pdu = tx_pdu
        self.echo = echo
        self.buffers = buffers
        if auth not in ("none", "low", "hls"):
            raise SessionError("auth must be none, low or hls, not %r" % (auth,), "auth")
        if link not in ("hdlc", "wrapper"):
            raise SessionError("link must be hdlc or wrapper, not %r" % (link,), "link")
        if (auth == "hls" or ciphered) and (ek is None or ak is None or len(system_title) != 8):
            raise SessionError("HLS-GMAC and ciphering need ek, ak and an 8-byte system title",
                               "security")
        if not 16 <= max_pdu <= 0xFFFF:
            raise SessionError("max_pdu %d outside 16..65535" % max_pdu, "max_pdu")

    def address_text(self):
        """The server address as the user gives it: ``1`` or ``1/17``."""
        if self.physical is None:
            return "%d" % self.server
        return "%d/%d" % (self.server, self.physical)


class LinkBuffers:
    """The HDLC link's fixed buffers, allocated once and lent to one open session at a time.

    A board allocates them at boot (``device.LINK_BUFFERS``): every reading then reuses the same
    ~2.5 KB instead of taking it from a heap that earlier readings may have fragmented. A session
    (``Settings(buffers=...)``) uses each buffer that is large enough for its settings and
    allocates the others itself; opening a second session on them while one is open is a
    SessionError. Sizes as in :class:`Settings` (``max_info``, ``max_pdu``, ``element_max``,
    ``tx_pdu``).
    """

    def __init__(self, max_info=hdlc.DEFAULT_MAX_INFO, max_pdu=2048, element_max=1024, tx_pdu=_TX_PDU):
        self.frame = bytearray(hdlc.frame_capacity(max_info))  # one received frame
        self.reassembly = bytearray(_rx_capacity(max_pdu))  # a response PDU from its segments
        self.element = bytearray(element_max)  # one streamed array element
        self.tx = bytearray(_AP + _tx_cap(max_pdu, tx_pdu))  # the request APDU (unciphered)
        self.out = bytearray(hdlc.tx_buffer_size(len(self.tx)))  # the request as an HDLC frame
        self.read = bytearray(_READ_CHUNK)  # the driver's reads
        self.keep = bytearray(_READ_CHUNK)  # bytes after a frame, kept for the next one
        self.user = None  # the open session using them


def _rx_capacity(max_pdu):
    # a response PDU as the HDLC link reassembles it: LLC in front, room for ciphering
    return max_pdu + _LLC + _CIPHER_ROOM


def _tx_cap(max_pdu, tx_pdu):
    cap = max_pdu if max_pdu < tx_pdu else tx_pdu
    return cap if cap > 256 else 256


class Negotiated:
    """Values agreed with the meter: HDLC (``max_info_tx/rx``, ``window_tx/rx``) and xDLMS
    (``max_pdu`` = the server's receive PDU size, ``conformance`` bits, ``dlms_version``,
    ``vaa_name``, ``server_system_title``)."""

    def __init__(self):
        self.max_info_tx = 0
        self.max_info_rx = 0
        self.window_tx = 0
        self.window_rx = 0
        self.max_pdu = 0
        self.conformance = 0
        self.dlms_version = None  # type: int | None
        self.vaa_name = None  # type: int | None
        self.server_system_title = None  # type: bytes | None


class Stats:
    """Counters: ``frames_tx``/``frames_rx`` (HDLC frames or wrapper messages), ``bytes_tx``/``bytes_rx``."""

    def __init__(self):
        self.frames_tx = 0
        self.frames_rx = 0
        self.bytes_tx = 0
        self.bytes_rx = 0


def _obis_text(code):
    return "%d.%d.%d.%d.%d.%d" % tuple(code)


def _random(n):
    try:
        import os

        return bytes(os.urandom(n))
    except (ImportError, AttributeError, NotImplementedError):  # a port without os.urandom
        import random

        return bytes(random.getrandbits(8) for _ in range(n))


class _Reader:
    """READ receiver for the driver: feeds a frame/message receiver and keeps the bytes after
    a complete frame for the next one (the driver hands over whole chunks)."""

    def __init__(self, rx, capacity, keep=None):
        self.rx = rx
        self.keep = buffer(capacity, keep)
        self.kpos = 0
        self.klen = 0
        self.frames = 0

    def feed(self, mv):
        off = self.rx.feed(mv, 0, len(mv))
        if not self.rx.ready:
            return False
        n = len(mv) - off
        self.keep[0:n] = mv[off:]
        self.kpos = 0
        self.klen = n
        self.frames += 1
        return True

    def step(self):
        """Try to complete a frame from kept bytes (and the receiver's own replay bytes)."""
        off = self.rx.feed(self.keep, self.kpos, self.klen)
        if self.rx.ready:
            self.kpos = off
            self.frames += 1
            return True
        self.kpos = self.klen = 0
        return False

    def reset(self):
        self.kpos = self.klen = 0
        self.rx.reset()


class Session:
    """A DLMS/COSEM client association over HDLC or the wrapper (API in the module docstring)."""

    def __init__(self, settings, transport, progress=None):
        st = settings
        self.settings = st
        self.transport = transport
        self.progress = progress
        bufs = st.buffers
        self.driver = Driver(transport, echo=st.echo and st.link == "hdlc", progress=progress,
                             bufsize=_READ_CHUNK, buf=bufs.read if bufs is not None else None,
                             baud=st.baud if st.link == "hdlc" else 115200)  # TCP: no line to wait for
        self.negotiated = Negotiated()
        self.counts = Stats()
        self.invocation_counter = st.invocation_counter
        self.server_invocation_counter = None
        self.handover = None
        self.sn_map = None  # obis bytes -> (base_name, class_id) for SN referencing
        self.is_open = False
        self._conn = None
        # What the procedure modules of this package (get_list, set_action, sn, tcp) work with:
        # the frame reader, the request buffer ``tx`` with the APDU at ``apo`` and at most
        # ``tx_limit`` bytes, the server's system title, ``counts`` (frames), and the methods
        # transact, silent, next_invoke, check_invoke, check_open, what, access_error, get_proc,
        # get_response, stream, take_block, accumulate. Not for callers of the session.
        self.reader = None
        self._linked = False  # an SNRM went out: DISC is owed
        self._associated = False  # an AARQ was accepted: RLRQ is owed
        self.tx = bytearray(0)
        self._tx_cap = 0
        self.apo = _AP
        self.tx_limit = 0
        self._ciphering = False
        self._invoke = 0
        self.server_st = None
        size = st.address_size
        if size is None:
            size = 1 if st.physical is None else 2
        self._address_size = size

    # ------------------------------------------------------------ public API

    @property
    def stats(self):
        s = self.counts
        s.bytes_tx = self.driver.bytes_out
        s.bytes_rx = self.driver.bytes_in
        return s

    def __enter__(self):
        self.open()
        return self

    def __exit__(self, exc_type, exc, tb):
        self.close()
        return False

    def open(self):
        """Sign on (mode E), connect the link (SNRM/UA) and associate (AARQ/AARE, HLS pass 3/4).

        On any failure the link is released before the error propagates.
        """
        if self.is_open:
            raise SessionError("session already open", "state")
        bufs = self.settings.buffers
        if bufs is not None:
            if bufs.user is not None and bufs.user is not self:
                raise SessionError("the link buffers are in use by another open session", "buffers")
            bufs.user = self
        try:
            self.driver.run(self._open_proc())
        except BaseException:
            self.close()
            raise
        self.is_open = True

    def close(self):
        """RLRQ (if associated), then DISC (HDLC). Always safe; never raises for a dead link.

        The release gets its few seconds even past the reading's deadline (``driver``): a meter
        left associated would refuse the next reading until its own inactivity time-out."""
        self.is_open = False
        t = self.transport
        dl = getattr(t, "deadline", None)
        try:
            if self._associated or self._linked:
                if dl is not None and ticks_diff(dl, t.ticks_ms()) < _CLOSE_MS:
                    t.deadline = ticks_add(t.ticks_ms(), _CLOSE_MS)
                self.driver.run(self._close_proc())
        except (OptoreadError, OSError):
            pass
        finally:
            if dl is not None:
                t.deadline = dl
            self._associated = False
            self._linked = False
            bufs = self.settings.buffers
            if bufs is not None and bufs.user is self:
                bufs.user = None

    def get(self, class_id, obis_code, attr, selector=0, params=None, sink=None):
        """Read one attribute; returns its value, or with ``sink`` the element count.

        ``params``: pre-encoded selective-access parameters (bytes or (tag, value)) for
        ``selector`` 1 (range) or 2 (entry). With ``sink`` the attribute must be an array:
        ``sink(element)`` is called per element as the blocks arrive.
        """
        code = obis_bytes(obis_code)
        self.check_open()
        return self.driver.run(self.get_proc(class_id, code, attr, selector, params, sink))

    def get_many(self, items):
        """Read several attributes ((class_id, obis, attr) each, optionally + (selector, params)).

        Uses GET-with-list (ReadRequest with several names for SN) when the meter allows it,
        in chunks that fit its PDU size. Returns one entry per item: the value or a
        :class:`DataAccessError` instance.
        """
        self.check_open()
        from optoread.dlms.client import get_list as session_list  # loaded by the first list read (RAM)

        return session_list.get_many(self, items)

    def set(self, class_id, obis_code, attr, tag, value):
        """Write one attribute: ``tag``/``value`` as the A-XDR encoder takes them, or tag None and
        ``value`` pre-encoded A-XDR bytes. Large values go in blocks."""
        from optoread.dlms.client import set_action as session_set  # loaded by the first write (RAM)

        return session_set.set_value(self, class_id, obis_code, attr, tag, value)

    def action(self, class_id, obis_code, method, tag=None, value=None):
        """Invoke a method (parameters ``tag``/``value`` or none); returns the return data or None."""
        from optoread.dlms.client import set_action as session_set

        return session_set.action(self, class_id, obis_code, method, tag, value)

    def short_name(self, class_id, obis_code, attr):
        """SN address of an attribute: base_name + (attr - 1) * 8 (reads the SN object list once)."""
        code = obis_bytes(obis_code)
        self.check_open()
        from optoread.dlms.client import sn as session_sn  # SN meters only (RAM)

        return self.driver.run(session_sn.short_name_proc(self, class_id, code, attr))

    # ------------------------------------------------------------ helpers

    def check_open(self):
        if not self.is_open:
            raise SessionError("session is not open", "state")

    def next_invoke(self):
        self._invoke = (self._invoke + 1) & 0x0F
        return xdlms.invoke_id_and_priority(self._invoke)

    def check_invoke(self, got, sent):
        if (got & 0x0F) != (sent & 0x0F):
            raise SessionError("response invoke-id %d does not match the request's %d"
                               % (got & 0x0F, sent & 0x0F), "invoke-id")

    def what(self, code, attr, method=False):
        return "object %s %s %d" % (_obis_text(code), "method" if method else "attr", attr)

    def access_error(self, code, attr, dar, method=False):
        return DataAccessError("%s: %s" % (self.what(code, attr, method), xdlms.dar_name(dar, method)),
                               result=dar)

    def _say(self, text):
        if self.progress is not None:
            self.progress(text)

    def _alloc_tx(self):
        st = self.settings
        cap = _tx_cap(st.max_pdu, st.tx_pdu)
        bufs = st.buffers
        if st.ciphered:
            # plain APDU built behind the room the ciphered one needs, then protected to _AP
            self.tx = bytearray(_AP + 2 * (cap + _CIPHER_ROOM))
            self.apo = _AP + cap + _CIPHER_ROOM
        else:
            self.tx = buffer(_AP + cap, bufs.tx if bufs is not None else None)
            self.apo = _AP
        self._tx_cap = cap
        self.tx_limit = cap

    # ------------------------------------------------------------ link: HDLC

    def _addresses(self):
        st = self.settings
        local = hdlc.encode_client_address(st.client)
        if self._address_size == 1:
            if st.physical is not None:
                raise SessionError("a 1-byte server address has no physical part", "address")
            remote = hdlc.encode_server_address(st.server, None, 1)
        else:
            remote = hdlc.encode_server_address(st.server, st.physical or 0, self._address_size)
        return local, remote

    def _new_conn(self, max_info, window):
        st = self.settings
        local, remote = self._addresses()
        b = st.buffers
        conn = HdlcConnection(local, remote, max_info_tx=max_info, max_info_rx=max_info,
                                        window_tx=window, window_rx=window, retries=st.retries,
                                        rx_capacity=_rx_capacity(st.max_pdu),
                                        tx_info=len(self.tx),  # no request is longer than the tx buffer
                                        bufs=(b.out, b.reassembly) if b is not None else None)
        self._conn = conn
        self.reader = _Reader(FrameReceiver(hdlc.frame_capacity(max_info), b.frame if b else None),
                               _READ_CHUNK, b.keep if b is not None else None)
        return conn

    def _send_out(self, conn):
        # conn.output() stays valid until the next conn call: the driver writes it at once.
        self.counts.frames_tx += 1
        yield (SEND, conn.output())

    def _next_frame(self):
        """Generator: the next good frame, or None after timeout_ms of silence."""
        r = self.reader
        if r is None:
            raise SessionError("link not set up", "state")
        if r.step():
            self.counts.frames_rx += 1
            return r.rx.frame
        ok = yield (READ, r, self.settings.timeout_ms)
        if not ok:
            return None
        self.counts.frames_rx += 1
        return r.rx.frame

    def silent(self, what):
        st = self.settings
        line = "" if st.link == "wrapper" else " at %d baud" % (
            self.handover.baud if self.handover is not None else st.baud)
        tried = ["%s to server address %s (%d-byte) from client %d%s: no answer after %d retries"
                 % (what, st.address_text(), self._address_size, st.client, line, st.retries)]
        return NoAnswerError("no answer from server address %s with client %d \u2014 tried %s%s "
                             "(%d tries, %d ms each); check the addresses and the probe"
                             % (st.address_text(), st.client, what, line, st.retries + 1,
                                st.timeout_ms), tried=tried)

    def _snrm_proc(self, max_info, window):
        conn = self._new_conn(max_info, window)
        conn.connect()
        self._linked = True
        yield from self._send_out(conn)
        while True:
            f = yield from self._next_frame()
            if f is None:
                try:
                    conn.timeout()
                except LinkError:
                    raise self.silent("SNRM")
                yield from self._send_out(conn)
                continue
            ev = conn.receive_frame(f)
            if conn.out_len:
                yield from self._send_out(conn)
            if ev == EV_CONNECTED:
                break
        n = self.negotiated
        n.max_info_tx = conn.max_info_tx
        n.max_info_rx = conn.max_info_rx
        n.window_tx = conn.window_tx
        n.window_rx = conn.window_rx

    def _hdlc_exchange(self, start, end, what):
        """Send tx[start:end] (LLC in front) and return (mv, off, end) of the response APDU."""
        conn = self._conn
        if conn is None:
            raise SessionError("HDLC link not set up", "state")
        hdlc.add_llc(self.tx, start - _LLC)
        conn.send(self.tx, start - _LLC, end - start + _LLC)
        yield from self._send_out(conn)
        while True:
            f = yield from self._next_frame()
            if f is None:
                try:
                    conn.timeout()
                except LinkError:
                    raise self.silent(what)
                yield from self._send_out(conn)
                continue
            ev = conn.receive_frame(f)
            if conn.out_len:
                yield from self._send_out(conn)
            if ev == EV_DATA:
                mv = conn.data()
                off = hdlc.strip_llc(mv, 0, len(mv))
                if off < len(mv) and mv[off] == xdlms.DATA_NOTIFICATION:
                    continue  # a push in the middle of our exchange: not our answer
                return mv, off, len(mv)

    # ------------------------------------------------------------ link: wrapper (session_wrapper)

    # ------------------------------------------------------------ APDU exchange

    def transact(self, end, what, protect=True):
        """Generator: send the APDU built at tx[_apo:end] (ciphered when the session is) and return
        ``(mv, off, end)`` of the plain response."""
        st = self.settings
        start = self.apo
        tx = self.tx
        if self._ciphering and protect:
            from optoread.dlms import security  # imported only by ciphered sessions (RAM)

            tag = tx[start]
            glo = xdlms.glo_tag(tag)  # global unicast encryption key (Green Book)
            if glo is None:
                raise SessionError("no ciphered form of APDU 0x%02X" % tag, "cipher")
            n = end - start
            clen = security.protected_len(_SC, n)
            p = xdlms.write_length(tx, _AP + 1, clen)
            tx[_AP] = glo
            security.protect_into(tx, p, _SC, st.system_title, self.invocation_counter, st.ek, st.ak,
                                  memoryview(tx)[start:end])
            self.invocation_counter += 1
            end = p + clen
            start = _AP
        elif start != _AP:
            # a plain APDU in a ciphering session (AARQ, RLRQ): move it in front
            n = end - start
            tx[_AP:_AP + n] = tx[start:end]
            start = _AP
            end = _AP + n
        if st.link == "hdlc":
            mv, off, e = yield from self._hdlc_exchange(start, end, what)
        else:
            from optoread.dlms.client import tcp as session_wrapper  # TCP sessions only (RAM)

            mv, off, e = yield from session_wrapper.exchange(self, start, end, what)
        if off < e and xdlms.is_ciphered(mv[off]):
            if not self._ciphering and self.server_st is None:
                raise SecurityError("ciphered response but no ciphering configured", "cipher", off)
            from optoread.dlms import security

            plain, info = security.unwrap(mv, st.ek, st.ak, self.server_st, off, e)
            self.server_invocation_counter = security.check_invocation_counter(
                info["ic"], self.server_invocation_counter)
            return plain, 0, len(plain)
        return mv, off, e

    # ------------------------------------------------------------ open / close

    def _open_proc(self):
        st = self.settings
        self._alloc_tx()
        if st.link == "hdlc":
            if st.mode_e:
                from optoread.iec62056_21 import signon as iec  # only mode E sessions sign on first

                self.handover = yield from iec.mode_e(st.iec if st.iec is not None else iec.Options())
            else:
                yield (SET_LINE, st.baud, 8, "N")
            max_info = st.max_info or _DEFAULT_MAX_INFO
            try:
                yield from self._snrm_proc(max_info, st.window)
            except LinkError as e:
                if e.field not in ("DM", "FRMR") or (max_info <= hdlc.DEFAULT_MAX_INFO and st.window == 1):
                    raise
                # Some meters refuse a large proposal outright: ask again with the defaults.
                yield (PROGRESS, "meter refused max info %d: retrying SNRM with 128" % max_info)
                yield from self._snrm_proc(hdlc.DEFAULT_MAX_INFO, 1)
        else:
            from optoread.dlms.client import tcp as session_wrapper

            self.reader = _Reader(session_wrapper.receiver(st.max_pdu + _CIPHER_ROOM), _READ_CHUNK)
            self._linked = False
        yield from self._associate()

    def _associate(self):
        st = self.settings
        tx = self.tx
        conformance = st.conformance
        if conformance is None:
            conformance = DEFAULT_CONFORMANCE if st.ln else DEFAULT_CONFORMANCE_SN
        mech = None
        auth_value = None
        ctos = None
        if st.auth == "low":
            mech = "lls"
            auth_value = bytes(st.password)
        elif st.auth == "hls":
            mech = "hls-gmac"
            ctos = st.challenge if st.challenge is not None else _random(16)
            auth_value = ctos
        ui = None
        if st.ciphered:
            from optoread.dlms import security  # only ciphered associations pay for the security module

            plain = bytearray(acse.initiate_request_size())
            acse.encode_initiate_request(plain, 0, conformance, st.max_pdu)
            ui = security.wrap_service(0x21, _SC, self.invocation_counter, st.ek, st.ak, plain,
                                       st.system_title)
            self.invocation_counter += 1
        title = st.system_title if (st.ciphered or st.auth == "hls") else None
        end = acse.encode_aarq(tx, self.apo, ln=st.ln, ciphered=st.ciphered, mechanism=mech,
                               calling_ap_title=title, auth_value=auth_value, conformance=conformance,
                               max_pdu=st.max_pdu, user_information=ui)
        mv, off, e = yield from self.transact(end, "AARQ", protect=False)
        if off < e and mv[off] != xdlms.AARE:
            from optoread.dlms.xdlms import service_errors as xdlms_errors

            err = xdlms_errors.error_from_apdu(mv, off, e)
            if err is not None:
                raise SessionError("association refused: " + err.message, "aare")
            raise SessionError("meter answered the AARQ with APDU 0x%02X, not an AARE" % mv[off], "aare")
        aare = acse.parse_aare(mv, off, e)
        if aare.service_error is not None:
            from optoread.dlms.xdlms import service_errors as xdlms_errors

            raise SessionError("association refused: confirmed-service-error "
                               + xdlms_errors.confirmed_service_error_text(*aare.service_error), "aare")
        if not aare.accepted:
            if (aare.diagnostic_source == SOURCE_USER
                    and aare.diagnostic == acse.DIAG_AUTHENTICATION_FAILURE):
                raise SessionError("association rejected: authentication failure (check the password / "
                                   "keys for client %d)" % st.client, "aare")
            raise SessionError("association rejected: %s (%s)" % (aare.diagnostic_name, aare.result_name),
                               "aare")
        self._associated = True
        self.server_st = aare.ap_title
        n = self.negotiated
        n.server_system_title = aare.ap_title
        ini = aare.initiate
        if aare.ciphered_user_info:
            if self.server_st is None or st.ek is None:
                raise SecurityError("ciphered AARE but no keys or server system title", "aare")
            from optoread.dlms import security

            plain, info = security.unwrap(aare.user_info(mv), st.ek, st.ak, self.server_st)
            self.server_invocation_counter = security.check_invocation_counter(
                info["ic"], self.server_invocation_counter)
            ini = parse_initiate_response(plain)
        if ini is None:
            raise SessionError("AARE carries no InitiateResponse", "aare")
        n.conformance = ini.conformance
        n.max_pdu = ini.max_pdu or 0xFFFF
        n.dlms_version = ini.dlms_version
        n.vaa_name = ini.vaa_name
        limit = self._tx_cap
        if n.max_pdu < limit:
            limit = n.max_pdu
        if st.ciphered:
            limit -= _CIPHER_ROOM
        self.tx_limit = limit
        self._ciphering = st.ciphered
        if st.auth == "hls":
            from optoread.dlms.client import set_action as session_set  # HLS pass 3/4 is an ACTION

            yield from session_set.hls_reply(self, aare, ctos)

    def _close_proc(self):
        st = self.settings
        conn = self._conn
        link_up = st.link == "wrapper" or (conn is not None and conn.state == CONNECTED)
        if self._associated and link_up:
            self._associated = False
            self._ciphering = False
            if not self.tx:
                self._alloc_tx()
            end = acse.encode_rlrq(self.tx, self.apo, RELEASE_NORMAL)
            if conn is not None:
                conn.retries = 1
            try:
                yield from self.transact(end, "RLRQ", protect=False)
            except OptoreadError:
                pass  # the DISC below releases the link anyway
        self._associated = False
        if st.link == "hdlc" and self._linked and conn is not None:
            self._linked = False
            conn.retries = 1
            if conn.state != CONNECTED:
                # After a timeout or a DM the connection forgot the link; the meter may not have.
                conn.state = CONNECTED
            conn.disconnect()
            yield from self._send_out(conn)
            while True:
                f = yield from self._next_frame()
                if f is None:
                    try:
                        conn.timeout()
                    except LinkError:
                        return
                    yield from self._send_out(conn)
                    continue
                try:
                    ev = conn.receive_frame(f)
                except LinkError:
                    return  # FRMR / DM: the link is down either way
                if ev == EV_DISCONNECTED:
                    return

    # ------------------------------------------------------------ GET

    def get_proc(self, class_id, code, attr, selector, params, sink):
        if not self.settings.ln:
            from optoread.dlms.client import sn as session_sn  # SN meters only (RAM)

            return (yield from session_sn.sn_get(self, class_id, code, attr, selector, params, sink))
        invoke = self.next_invoke()
        end = encode_get_request(self.tx, self.apo, invoke, class_id, code, attr, selector, params)
        if end - self.apo > self.tx_limit:
            raise SessionError("GET request of %d bytes exceeds the meter's PDU size %d"
                               % (end - self.apo, self.tx_limit), "pdu")
        mv, off, e = yield from self.transact(end, "GET")
        r = self.get_response(mv, off, e, invoke)
        if r.kind == xdlms.NORMAL:
            if r.dar is not None:
                raise self.access_error(code, attr, r.dar)
            if sink is None:
                return axdr.decode(mv, r.data_off or 0, r.data_end)[0]
            stream = self.stream()
            stream.feed(memoryview(mv)[r.data_off:r.data_end], sink)
            return self._stream_done(stream, code, attr)
        if r.kind != xdlms.WITH_DATABLOCK:
            raise SessionError("unexpected GET response type %d" % r.kind, "get-response")
        stream = self.stream() if sink is not None else None
        acc = bytearray()
        expect = 1
        while True:
            if r.dar is not None:
                raise self.access_error(code, attr, r.dar)
            if r.block != expect:
                raise SessionError("%s: block %r received, %d expected" % (self.what(code, attr), r.block,
                                                                          expect), "block-number")
            self.take_block(memoryview(mv)[r.data_off:r.data_end], stream, sink, acc)
            if r.last:
                break
            if expect % _PROGRESS_BLOCKS == 0:
                yield (PROGRESS, block_progress(self.what(code, attr), expect, stream))
            end = encode_get_request_next(self.tx, self.apo, invoke, r.block)
            mv, off, e = yield from self.transact(end, "GET next block")
            r = self.get_response(mv, off, e, invoke)
            if r.kind != xdlms.WITH_DATABLOCK:
                raise SessionError("block transfer interrupted by a GET response of type %d" % r.kind,
                                   "get-response")
            expect += 1
        if stream is not None:
            return self._stream_done(stream, code, attr)
        return axdr.decode(acc, 0, len(acc))[0]

    def stream(self):
        # The array stream for a GET with a sink, in the lent element buffer when there is one.
        st = self.settings
        b = st.buffers
        return axdr.ArrayStream(st.element_max, buf=b.element if b is not None else None)

    def get_response(self, mv, off, e, invoke):
        r = parse_get_response(mv, off, e, strict=False)
        self.check_invoke(r.invoke, invoke)
        return r

    def take_block(self, chunk, stream, sink, acc):
        # One block's data of a long value: into the array stream (sink) or onto ``acc``.
        if stream is not None:
            stream.feed(chunk, sink)
        else:
            self.accumulate(acc, chunk)

    def accumulate(self, acc, chunk):
        if len(acc) + len(chunk) > self.settings.value_max:
            raise SessionError("value larger than %d bytes: read it with a sink" % self.settings.value_max,
                               "value_max")
        acc.extend(chunk)

    def _stream_done(self, stream, code, attr):
        return stream_done(stream, self.what(code, attr))
