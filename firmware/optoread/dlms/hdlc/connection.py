"""The HDLC connection (IEC 62056-46): :class:`HdlcConnection`, a sans-IO state machine: SNRM/UA
with parameter negotiation, I-frames segmented and acknowledged in windows, retransmission,
DISC/DM. Frames in come from a :class:`~optoread.dlms.hdlc.frame.FrameReceiver`; frames out
are encoded with :mod:`.frame`.

Driven by the session layer from an I/O pump::

    conn = HdlcConnection(local=frame.encode_client_address(16),
                          remote=frame.encode_server_address(1, 17, 2))
    rx = receiver.FrameReceiver(frame.frame_capacity(conn.max_info_rx))
    n = conn.connect()                      # SNRM is in conn.out[:n]
    write(conn.output())
    loop:
        got = transport.readinto(chunk, timeout_ms)
        if got == 0:                        # the pump owns the clock
            conn.timeout()                  # retransmits; LinkError after `retries`
        off = 0
        while True:
            off = rx.feed(chunk, off, got)
            if not rx.ready:
                break
            ev = conn.receive_frame(rx.frame)
            if conn.out_len: write(conn.output())   # RR, next segments, UA...
            if ev == EV_CONNECTED: ...  # conn.max_info_tx etc. are negotiated
            if ev == EV_DATA: apdu = conn.data()      # LLC still in front
    conn.send(apdu_with_llc)  # -> bytes in conn.output(), segmented to max_info_tx
    conn.disconnect()         # DISC; EV_DISCONNECTED on UA/DM

``receive_frame`` and ``timeout`` return one of ``EV_NONE``, ``EV_CONNECTED``,
``EV_DATA``, ``EV_DISCONNECTED``, ``EV_ECHO`` (the frame was the optical echo of
what we sent, u9n/dlms-cosem #62) and set ``out_len`` (0 = nothing to send). DM
and FRMR raise :class:`LinkError` naming them (field ``"DM"`` / ``"FRMR"``), except a
DM answering our DISC. ``server=True`` gives the meter side (answers SNRM with UA,
DISC with UA/DM) for the simulator.
"""

from optoread.compat import buffer, const
from optoread.dlms.hdlc.frame import (
    DEFAULT_MAX_INFO,
    Reassembler,
    encode_control,
    encode_disc,
    encode_dm,
    encode_frame,
    encode_rr,
    encode_snrm,
    encode_ua,
    parse_params,
    tx_buffer_size,
)
from optoread.errors import LinkError

# Connection events
EV_NONE = const(0)
EV_CONNECTED = const(1)
EV_DATA = const(2)
EV_DISCONNECTED = const(3)
EV_ECHO = const(4)

# Connection states
DISCONNECTED = const(0)
CONNECTING = const(1)
CONNECTED = const(2)
DISCONNECTING = const(3)

# As in frame.py.
_MAX_LENGTH = const(0x7FF)
_FRAME_OVERHEAD = const(15)
_DEFAULT_WINDOW = const(1)


def _same(b, off, addr):
    for j in range(len(addr)):
        if b[off + j] != addr[j]:
            return False
    return True


class HdlcConnection:
    """Sans-IO HDLC connection (client by default, ``server=True`` for the meter side).

    ``local``/``remote`` are encoded address bytes. The constructor allocates the
    transmit buffer (room for ``window_tx`` frames of ``max_info_tx``) and the
    reassembly buffer (``rx_capacity``); nothing grows later. The proposed
    ``max_info_*``/``window_*`` become the negotiated values on EV_CONNECTED
    (never larger than proposed). Outgoing bytes: ``out[:out_len]`` (or
    ``output()``); ``out_len`` is 0 when there is nothing to send. ``send()`` keeps
    a reference to the data: leave it unchanged until the reply arrives.
    ``retries`` is how many times ``timeout()`` retransmits before raising. ``tx_info``
    (default ``max_info_tx``) bounds the information field of the frames this side sends,
    and so the transmit buffer. ``bufs``: (transmit, reassembly) buffers of the caller's to use
    instead of new ones where they are large enough (a board's, allocated once at boot).
    """

    def __init__(self, local, remote, server=False, max_info_tx=DEFAULT_MAX_INFO,
                 max_info_rx=DEFAULT_MAX_INFO, window_tx=_DEFAULT_WINDOW, window_rx=_DEFAULT_WINDOW,
                 retries=3, rx_capacity=2048, negotiate=True, check_addresses=True, tx_info=None,
                 bufs=None):
        for w in (window_tx, window_rx):
            if not 1 <= w <= 7:
                raise LinkError("window size %d outside 1..7" % w, "params")
        for m in (max_info_tx, max_info_rx):
            if not 1 <= m <= _MAX_LENGTH - _FRAME_OVERHEAD:
                raise LinkError("max info length %d out of range" % m, "params")
        encode_frame(bytearray(16), 0, local, remote, 0x13)  # validates both addresses
        self.local = bytes(local)
        self.remote = bytes(remote)
        self.server = server
        self.retries = retries
        self.negotiate = negotiate
        self.check_addresses = check_addresses
        self._prop = (max_info_tx, max_info_rx, window_tx, window_rx)
        self.max_info_tx = max_info_tx
        self.max_info_rx = max_info_rx
        self.window_tx = window_tx
        self.window_rx = window_rx
        # tx_info: the longest information field this side ever sends (a client's largest
        # request): frames are cut to it too, so the buffer holds a window of those, not of
        # max_info_tx (a client that receives 512-byte frames sends ~260-byte ones).
        self._tx_info = tx_info or max_info_tx
        seg = min(max_info_tx, self._tx_info)
        out, rx = bufs if bufs is not None else (None, None)
        self.out = buffer(tx_buffer_size(seg, window_tx), out)
        self.out_mv = memoryview(self.out)
        self.out_len = 0
        self.rx = Reassembler(rx_capacity, rx)
        self.state = DISCONNECTED
        self.echoes = 0
        self.ignored = 0
        self._last_len = 0  # bytes of our last transmission (for echo and retransmission)
        self._awaiting = False
        self._tries = 0
        self._reset_seq()

    def _reset_seq(self):
        self.vs = 0
        self.vr = 0
        self._src = None
        self._pos = 0
        self._end = 0
        self._win_pos = 0
        self._win_vs = 0
        self._inflight = 0
        self.rx.reset()

    # -- output helpers

    def _seg(self):
        # Information bytes per I-frame: the negotiated limit, or less when we never send more.
        m = self.max_info_tx
        return m if m < self._tx_info else self._tx_info

    def output(self):
        """memoryview of the bytes to send now."""
        return self.out_mv[: self.out_len]

    def _emit(self, n, awaiting=True, fresh=True):
        self.out_len = n
        self._last_len = n
        self._awaiting = awaiting
        if fresh:  # a new transmission restarts the retry count; a repeated answer does not
            self._tries = 0
        return n

    def _emit_window(self):
        o = 0
        count = 0
        mx = self._seg()
        self._win_pos = self._pos
        self._win_vs = self.vs
        while count < self.window_tx and self._pos < self._end:
            k = self._end - self._pos
            if k > mx:
                k = mx
            last = self._pos + k >= self._end
            pf = 1 if (last or count + 1 == self.window_tx) else 0
            o = encode_frame(self.out, o, self.remote, self.local, encode_control("I", self.vs, self.vr, pf),
                             self._src, self._pos, k, not last)
            self.vs = (self.vs + 1) & 7
            self._pos += k
            count += 1
        self._inflight = count
        return self._emit(o)

    # -- commands

    def connect(self):
        """Start a connection (client): SNRM into ``out``; returns the byte count."""
        if self.server:
            raise LinkError("a server does not send SNRM", "state")
        self.max_info_tx, self.max_info_rx, self.window_tx, self.window_rx = self._prop
        self._reset_seq()
        self.state = CONNECTING
        params = self._prop if self.negotiate else None
        return self._emit(encode_snrm(self.out, 0, self.remote, self.local, params))

    def disconnect(self):
        """DISC into ``out`` (client); returns the byte count (0 when already disconnected)."""
        if self.state == DISCONNECTED:
            self.out_len = 0
            return 0
        self.state = DISCONNECTING
        return self._emit(encode_disc(self.out, 0, self.remote, self.local))

    def send(self, data, off=0, length=None):
        """Send an information field (LLC included by the caller), segmented to ``max_info_tx``.

        Returns the byte count of the first window of I-frames in ``out``; later
        segments go out as the peer acknowledges (RR) in ``receive_frame``.
        """
        if self.state != CONNECTED:
            raise LinkError("send while not connected", "state")
        if self._pos < self._end:
            raise LinkError("send while a previous information field is still going out", "state")
        if length is None:
            length = len(data) - off
        if length <= 0 or off < 0 or off + length > len(data):
            raise LinkError("nothing to send / slice outside the data", "info")
        self._src = data
        self._pos = off
        self._end = off + length
        return self._emit_window()

    def timeout(self):
        """The reply timer expired: retransmit our last frame(s), LinkError after ``retries``."""
        if not self._awaiting or self._last_len == 0:
            self.out_len = 0
            return EV_NONE
        if self._tries >= self.retries:
            st = self.state
            what = "SNRM" if st == CONNECTING else "DISC" if st == DISCONNECTING else "the last frame"
            self.state = DISCONNECTED
            self._awaiting = False
            self.out_len = 0
            raise LinkError("no answer to %s after %d retransmissions" % (what, self.retries), "timeout")
        self._tries += 1
        if not self.server and self.state == CONNECTED and self._inflight == 0:
            # Our frames were acknowledged but the answer is missing: poll (RR, P=1) so the
            # meter repeats its unacknowledged I-frames, instead of repeating a request it has.
            self._emit(encode_rr(self.out, 0, self.remote, self.local, self.vr), True, False)
            return EV_NONE
        self.out_len = self._last_len
        return EV_NONE

    def data(self):
        """The information field delivered with the last EV_DATA (memoryview)."""
        return self.rx.data()

    # -- input

    def _is_echo(self, f):
        b = self.out
        last = self._last_len
        o = 0
        ln = f.length
        fb = f.buf
        s = f.start
        while o + 3 <= last:
            tl = ((b[o + 1] & 7) << 8) | b[o + 2]
            if tl == ln and o + 1 + ln <= last:
                i = 0
                while i < ln and fb[s + i] == b[o + 1 + i]:
                    i += 1
                if i == ln:
                    return True
            o += tl + 2
        return False

    def receive_frame(self, f):
        """Process one received :class:`.frame.Frame` (good FCS); return an EV_* and set ``out_len``."""
        self.out_len = 0
        if self._last_len and self._is_echo(f):
            self.echoes += 1
            return EV_ECHO
        if self.check_addresses and not (
            f.dst_size == len(self.local) and _same(f.buf, f.start + 2, self.local)
            and f.src_size == len(self.remote) and _same(f.buf, f.start + 2 + f.dst_size, self.remote)
        ):
            self.ignored += 1
            return EV_NONE
        k = f.kind
        if k == "UI":
            self._tries = 0
            return EV_DATA if self.rx.add(f) else EV_NONE
        if self.server and k == "SNRM":
            return self._on_snrm(f)
        if k == "DISC":
            return self._on_disc()
        if k == "UA":
            return self._on_ua(f)
        if k == "DM":
            if self.state == DISCONNECTING:
                self.state = DISCONNECTED
                self._awaiting = False
                return EV_DISCONNECTED
            was = self.state
            self.state = DISCONNECTED
            self._awaiting = False
            if was == CONNECTING:
                raise LinkError("meter answered SNRM with DM (disconnected mode): connection refused", "DM")
            raise LinkError("meter sent DM (disconnected mode): link lost", "DM")
        if k == "FRMR":
            self.state = DISCONNECTED
            self._awaiting = False
            from optoread.dlms.hdlc import parse  # the meter rejected a frame: say why

            raise LinkError(parse.describe_frmr(f.buf, f.info_off, f.info_len), "FRMR")
        if self.state != CONNECTED:
            if self.server and f.pf and self.state == DISCONNECTED:
                # a disconnected server answers a poll with DM
                self._emit(encode_dm(self.out, 0, self.remote, self.local), False)
            self.ignored += 1
            return EV_NONE
        if k == "I":
            return self._on_i(f)
        if k == "RR" or k == "RNR":  # acknowledgement of our I-frames
            return self._on_ack(f.nr, k == "RR", f.pf)
        self.ignored += 1  # e.g. SNRM seen by a client
        return EV_NONE

    def _ack_ok(self, nr):
        d = (nr - self._win_vs) & 7
        if d > self._inflight:
            self.state = DISCONNECTED
            raise LinkError("N(R)=%d acknowledges frames never sent (V(S)=%d)" % (nr, self.vs), "nr")
        return d

    def _on_ack(self, nr, ready, pf):
        d = self._ack_ok(nr)
        if d:
            self._tries = 0  # progress: the peer acknowledged new frames
        if self._src is not None:
            # Go-back-N: continue at the first segment the peer has not acknowledged
            # (after a fully acknowledged window that is simply the next segment).
            pos = self._win_pos + d * self._seg()
            if pos > self._end:
                pos = self._end
            self._pos = pos
            self.vs = nr
            if pos < self._end:
                if ready:  # RNR: the peer is busy; our retransmission timer polls again
                    self._emit_window()
                return EV_NONE
            self._win_pos = pos
            self._win_vs = nr
            self._inflight = 0
        elif self.server and pf:
            # a client polling an idle server gets RR back
            self._emit(encode_rr(self.out, 0, self.remote, self.local, self.vr), False)
        return EV_NONE

    def _on_i(self, f):
        if f.ns != self.vr:
            # A duplicate (its N(R) may be stale: a repeated request, or an answer that arrived
            # late and again). A server whose answer the N(R) shows lost sends it again (go back
            # to the first unacknowledged segment); otherwise tell the peer what we expect.
            d = (f.nr - self._win_vs) & 7
            if self.server and self._src is not None and d < self._inflight:
                self._pos = self._win_pos + d * self._seg()
                self.vs = f.nr
                self._emit_window()
                return EV_NONE
            self._emit(encode_rr(self.out, 0, self.remote, self.local, self.vr), True, False)
            return EV_NONE
        self._ack_ok(f.nr)
        self._inflight = 0
        self._win_vs = f.nr
        if self._pos >= self._end:
            self._src = None
        self._tries = 0
        self.vr = (self.vr + 1) & 7
        if self.rx.add(f):
            self._awaiting = False
            return EV_DATA
        if f.pf:
            self._emit(encode_rr(self.out, 0, self.remote, self.local, self.vr), True)
        return EV_NONE

    def _on_ua(self, f):
        if self.state == CONNECTING:
            mtx, mrx, wtx, wrx = parse_params(f.buf, f.info_off, f.info_off + f.info_len)
            ptx, prx, pwtx, pwrx = self._prop
            # UA values are the server's view: its receive limit is our transmit limit.
            self.max_info_tx = max(1, min(ptx, mrx))
            self.max_info_rx = max(1, min(prx, mtx))
            self.window_tx = max(1, min(pwtx, wrx, 7))
            self.window_rx = max(1, min(pwrx, wtx, 7))
            self._reset_seq()
            self.state = CONNECTED
            self._awaiting = False
            return EV_CONNECTED
        if self.state == DISCONNECTING:
            self.state = DISCONNECTED
            self._awaiting = False
            return EV_DISCONNECTED
        self.ignored += 1
        return EV_NONE

    def _on_snrm(self, f):
        ctx, crx, cwtx, cwrx = parse_params(f.buf, f.info_off, f.info_off + f.info_len)
        ptx, prx, pwtx, pwrx = self._prop
        self.max_info_tx = max(1, min(ptx, crx))
        self.max_info_rx = max(1, min(prx, ctx))
        self.window_tx = max(1, min(pwtx, cwrx, 7))
        self.window_rx = max(1, min(pwrx, cwtx, 7))
        self._reset_seq()
        self.state = CONNECTED
        params = (self.max_info_tx, self.max_info_rx, self.window_tx, self.window_rx)
        self._emit(encode_ua(self.out, 0, self.remote, self.local, params), False)
        return EV_CONNECTED

    def _on_disc(self):
        if not self.server:
            self.ignored += 1
            return EV_NONE
        if self.state == DISCONNECTED:
            self._emit(encode_dm(self.out, 0, self.remote, self.local), False)
            return EV_NONE
        self.state = DISCONNECTED
        self._reset_seq()
        self._emit(encode_ua(self.out, 0, self.remote, self.local), False)
        return EV_DISCONNECTED
