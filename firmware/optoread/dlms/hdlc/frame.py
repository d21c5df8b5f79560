"""HDLC frame format for DLMS/COSEM (IEC 62056-46, frame format type 3), both directions. Sans-IO.

Wire format (no byte stuffing: 0x7E/0x7D are literal inside a frame)::

    7E | A0|S|len(11 bit) | dst (1,2,4) | src (1,2,4) | control | [HCS | info] | FCS | 7E

``length`` counts everything between the flags. HCS covers format..control and is
present only when an information field follows; FCS covers format..end of info.
Both are CRC-16/X.25, low byte first. Address fields end at the first byte whose
LSB is 1. Client addresses are 1 byte; server addresses 1, 2 or 4 bytes (upper =
logical device, lower = physical device).

Here (client and server side alike):

* addresses: ``encode_client_address``, ``encode_server_address``, ``server_address_from_serial``;
* the control field: ``encode_control``, ``control_kind``;
* :class:`Frame` (one decoded frame) and the checks every decoder makes: ``header_len``, ``crc_ok``;
* ``encode_frame(buf, off, dst, src, control, info=None, info_off=0, info_len=None,
  segmented=False) -> off`` and the shortcuts ``encode_snrm/ua/disc/dm/rr/i/ui``;
  ``frame_begin``/``frame_end`` let a caller build the info field in place.
  Addresses are passed already encoded;
* ``encode_params`` / ``parse_params``: the SNRM/UA negotiation field;
* ``strip_llc`` / ``add_llc``: the 3-byte LLC header in front of an APDU;
* frames out of a byte stream: :class:`FrameReceiver` (framing by the length field, re-hunting
  after a bad frame, no allocation per byte or frame) and :class:`Reassembler` (the information
  fields of segmented I/UI frames joined into one buffer): bytes in, :class:`Frame` objects and
  whole information fields out.

The connection state machine is :mod:`.connection`; one frame of a capture and the FRMR reasons
are :mod:`.parse`.
"""

from optoread.compat import buffer, const, viper
from optoread.crc import crc16_x25
from optoread.errors import LinkError

FLAG = const(0x7E)
_FLAG = const(0x7E)
_FMT_TYPE3 = const(0xA0)
_SEG_BIT = const(0x08)
_PF = const(0x10)
_MAX_LENGTH = const(0x7FF)  # 11-bit length field
_MIN_LENGTH = const(7)  # format(2) + dst(1) + src(1) + control(1) + FCS(2)

# Bytes between the flags beyond the information field: format 2, addresses
# up to 4 + 4, control 1, HCS 2, FCS 2.
_FRAME_OVERHEAD = const(15)

DEFAULT_MAX_INFO = const(128)
_DEFAULT_WINDOW = const(1)

# Control field values with P/F = 0 (I and S frames carry sequence numbers).
_C_SNRM = const(0x83)
_C_DISC = const(0x43)
_C_UA = const(0x63)
_C_DM = const(0x0F)
_C_FRMR = const(0x87)
_C_UI = const(0x03)
_C_RR = const(0x01)
_C_RNR = const(0x05)

_U_KINDS = {"SNRM": _C_SNRM, "DISC": _C_DISC, "UA": _C_UA, "DM": _C_DM, "FRMR": _C_FRMR, "UI": _C_UI}

# Parameter negotiation (IEC 62056-46 6.4.4.4.3.2 / ISO/IEC 13239)
_PARAM_FORMAT = const(0x81)
_PARAM_GROUP = const(0x80)
_P_MAX_TX = const(0x05)
_P_MAX_RX = const(0x06)
_P_WIN_TX = const(0x07)
_P_WIN_RX = const(0x08)

LLC_REQUEST = b"\xe6\xe6\x00"  # client -> server
LLC_RESPONSE = b"\xe6\xe7\x00"  # server -> client (also pushes)

# header_len's error codes (FrameReceiver and parse.py read them: as there)
_E_ADDRESS = const(-1)
_E_CONTROL = const(-2)
_E_LENGTH = const(-3)


def frame_capacity(max_info):
    """Largest length-field value of a frame carrying ``max_info`` info bytes (size a FrameReceiver)."""
    return max_info + _FRAME_OVERHEAD


def tx_buffer_size(info, window=1):
    """Transmit buffer for ``window`` frames of ``info`` information bytes each, flags included."""
    n = window * (info + _FRAME_OVERHEAD + 2)
    return n if n > 64 else 64


# ---------------------------------------------------------------- addresses


def encode_client_address(addr):
    """One-byte client address (e.g. 16 = public client -> ``b"\\x21"``)."""
    if not 0 <= addr <= 0x7F:
        raise LinkError("client address %d out of range 0..127" % addr, "address")
    return bytes(((addr << 1) | 1,))


def encode_server_address(upper, lower=None, size=2):
    """Server address bytes: ``size`` 1 (upper only), 2 (7+7 bits) or 4 (14+14 bits).

    Every byte carries 7 address bits shifted left; only the last byte has LSB = 1.
    """
    if size == 1:
        if lower:
            raise LinkError("a 1-byte server address has no lower (physical) part", "address")
        if not 0 <= upper <= 0x7F:
            raise LinkError("upper address %d out of range for 1 byte" % upper, "address")
        return bytes(((upper << 1) | 1,))
    if lower is None:
        lower = 0
    if size == 2:
        if not (0 <= upper <= 0x7F and 0 <= lower <= 0x7F):
            raise LinkError("address %d/%d out of range for 2 bytes" % (upper, lower), "address")
        return bytes((upper << 1, (lower << 1) | 1))
    if size == 4:
        if not (0 <= upper <= 0x3FFF and 0 <= lower <= 0x3FFF):
            raise LinkError("address %d/%d out of range for 4 bytes" % (upper, lower), "address")
        return bytes(((upper >> 7) << 1, (upper & 0x7F) << 1, (lower >> 7) << 1, ((lower & 0x7F) << 1) | 1))
    raise LinkError("server address size must be 1, 2 or 4, not %r" % (size,), "address")


def server_address_from_serial(serial_number, offset=1000):
    """Physical (lower) server address computed from the meter serial number.

    ``lower = SN mod 10000 + offset``; the DLMS UA Green Book (DLMS UA 1000-2,
    HDLC addressing, "physical device address calculated from the serial number")
    gives the default formula ``SN % 10000 + 1000``, which is also what Gurux
    (``GXDLMSClient.getServerAddressFromSerialNumber``) applies. The result
    (1000..10999) needs 4-byte addressing: ``encode_server_address(1, lower, 4)``.
    ``offset`` exists for meters whose maker documents another base.
    """
    if serial_number < 0:
        raise LinkError("serial number must not be negative", "serial")
    lower = serial_number % 10000 + offset
    if not 0x10 <= lower <= 0x3FFD:
        raise LinkError("computed physical address %d is outside 0x10..0x3FFD" % lower, "serial")
    return lower


# ---------------------------------------------------------------- control field


def encode_control(kind, ns=0, nr=0, pf=1):
    """Control byte for ``kind`` ('I', 'RR', 'RNR', 'SNRM', 'DISC', 'UA', 'DM', 'FRMR', 'UI')."""
    p = _PF if pf else 0
    if kind == "I":
        return ((nr & 7) << 5) | p | ((ns & 7) << 1)
    if kind == "RR":
        return ((nr & 7) << 5) | p | _C_RR
    if kind == "RNR":
        return ((nr & 7) << 5) | p | _C_RNR
    c = _U_KINDS.get(kind)
    if c is None:
        raise LinkError("unknown frame kind %r" % (kind,), "control")
    return c | p


def control_kind(c):
    # Frame kind of a control byte, or None when DLMS HDLC does not use it.
    if not c & 1:
        return "I"
    if c & 3 == 1:
        s = c & 0x0F
        if s == _C_RR:
            return "RR"
        if s == _C_RNR:
            return "RNR"
        return None
    u = c & 0xEF
    if u == _C_SNRM:
        return "SNRM"
    if u == _C_UA:
        return "UA"
    if u == _C_DISC:
        return "DISC"
    if u == _C_DM:
        return "DM"
    if u == _C_FRMR:
        return "FRMR"
    if u == _C_UI:
        return "UI"
    return None

# ---------------------------------------------------------------- frame decoding


class Frame:
    """One decoded frame; a receiver reuses one instance (fields updated in place).

    ``buf`` is the buffer the frame lives in; ``start`` the offset of its format
    byte, ``end`` the offset after it (after the closing flag when :func:`.parse.parse_frame`
    consumed one). ``dst``/``src`` are the address bits packed (1 byte: the
    address; 2 bytes: upper << 7 | lower; 4 bytes: upper << 14 | lower) with
    ``*_size`` the wire size and ``*_upper``/``*_lower`` split out (lower None for
    1 byte). ``ns``/``nr`` are None for frames without them. ``hcs_ok`` is None when
    the frame has no information field (so no HCS).
    """

    def __init__(self):
        self.buf = bytearray(0)
        self.start = 0
        self.end = 0
        self.segmented = False
        self.length = 0
        self.dst = 0
        self.dst_size = 0
        self.dst_upper = 0
        self.dst_lower = None
        self.src = 0
        self.src_size = 0
        self.src_upper = 0
        self.src_lower = None
        self.control = 0
        self.kind = None
        self.ns = None
        self.nr = None
        self.pf = 0
        self.info_off = 0
        self.info_len = 0
        self.hcs_ok = None
        self.fcs_ok = False

    def info(self):
        """The information field as a memoryview (valid until the buffer is reused)."""
        return memoryview(self.buf)[self.info_off : self.info_off + self.info_len]

    def raw(self):
        """Bytes from format byte to FCS (a copy)."""
        return bytes(self.buf[self.start : self.start + self.length])

    def fill(self, b, p, ln, h, hcs_ok, fcs_ok, end):
        # Decode the fields of an already length/address/control-checked frame.
        f = self
        f.buf = b
        f.start = p
        f.length = ln
        f.segmented = (b[p] & _SEG_BIT) != 0
        # Addresses of 1, 2 or 4 bytes (header_len checked them), each byte's upper 7 bits
        # packed as parse.decode_address does; inline, as is the I frame's kind: every received frame
        # passes here, and a call costs as much as a dozen bytecodes on a board.
        i = p + 2
        v = 0
        c = 0
        while not c & 1:
            c = b[i]
            v = (v << 7) | (c >> 1)
            i += 1
        size = i - p - 2
        f.dst = v
        f.dst_size = size
        f.dst_upper = v if size == 1 else v >> 7 if size == 2 else v >> 14
        f.dst_lower = None if size == 1 else v & 0x7F if size == 2 else v & 0x3FFF
        s = i
        v = 0
        c = 0
        while not c & 1:
            c = b[i]
            v = (v << 7) | (c >> 1)
            i += 1
        size = i - s
        f.src = v
        f.src_size = size
        f.src_upper = v if size == 1 else v >> 7 if size == 2 else v >> 14
        f.src_lower = None if size == 1 else v & 0x7F if size == 2 else v & 0x3FFF
        c = b[i]
        f.control = c
        k = "I" if not c & 1 else control_kind(c)
        f.kind = k
        f.pf = (c >> 4) & 1
        if k == "I":
            f.ns = (c >> 1) & 7
            f.nr = c >> 5
        elif k == "RR" or k == "RNR":
            f.ns = None
            f.nr = c >> 5
        else:
            f.ns = None
            f.nr = None
        if ln > h + 2:
            f.info_off = p + h + 2
            f.info_len = ln - h - 4
        else:
            f.info_off = p + h
            f.info_len = 0
        f.hcs_ok = hcs_ok
        f.fcs_ok = fcs_ok
        f.end = end

    def __repr__(self):
        return "<Frame %s ctrl=%02X dst=%d/%d src=%d/%d info=%d%s>" % (
            self.kind, self.control, self.dst, self.dst_size, self.src, self.src_size,
            self.info_len, " seg" if self.segmented else "")


def header_len(b, p, n, ln):
    """Bytes from the format byte to after the control byte, checked against ``ln``.

    0 = more bytes needed (only ``b[p:n]`` is present), < 0 = an _E_* error code.
    The answer for a prefix never changes once decided, so byte-wise and whole
    feeding reach the same verdict.
    """
    lim = p + ln - 2  # the FCS occupies the last two bytes
    i = p + 2
    for _ in (0, 1):  # destination, then source address
        s = i
        while True:
            if i >= lim:
                return _E_ADDRESS
            if i >= n:
                return 0
            c = b[i]
            i += 1
            if c & 1:
                break
            if i - s >= 4:
                return _E_ADDRESS
        if i - s == 3:
            return _E_ADDRESS
    if i >= lim:
        return _E_LENGTH
    if i >= n:
        return 0
    if control_kind(b[i]) is None:
        return _E_CONTROL
    h = i + 1 - p
    # Either no info field (FCS right after control) or HCS + info + FCS.
    if ln != h + 2 and ln < h + 4:
        return _E_LENGTH
    return h


def crc_ok(b, start, end):
    # CRC over b[start:end] equals the two bytes at end (low byte first)
    return crc16_x25(b, start, end) == (b[end] | (b[end + 1] << 8))

# ---------------------------------------------------------------- frame encoding


def _put_crc(buf, start, end):
    c = crc16_x25(buf, start, end)
    buf[end] = c & 0xFF
    buf[end + 1] = c >> 8
    return end + 2


def frame_begin(buf, off, dst, src, control, info_len=0, segmented=False):
    """Write flag, header and HCS for a frame with ``info_len`` info bytes; return the info offset.

    The caller writes exactly ``info_len`` bytes there and calls :func:`frame_end`.
    """
    da = len(dst)
    sa = len(src)
    if da not in (1, 2, 4) or sa not in (1, 2, 4):
        raise LinkError("address must be 1, 2 or 4 bytes", "address")
    if not dst[da - 1] & 1 or not src[sa - 1] & 1:
        raise LinkError("address not encoded (last byte needs LSB = 1)", "address")
    if info_len < 0:
        raise LinkError("negative info length", "info")
    h = 2 + da + sa + 1
    ln = h + 2 if info_len == 0 else h + 2 + info_len + 2
    if ln > _MAX_LENGTH:
        raise LinkError("frame length %d exceeds the 11-bit length field" % ln, "length")
    if off < 0 or off + ln + 2 > len(buf):
        raise LinkError("frame of %d bytes does not fit the buffer" % (ln + 2), "buf", off)
    buf[off] = _FLAG
    p = off + 1
    buf[p] = _FMT_TYPE3 | (_SEG_BIT if segmented else 0) | (ln >> 8)
    buf[p + 1] = ln & 0xFF
    i = p + 2
    for j in range(da):
        buf[i] = dst[j]
        i += 1
    for j in range(sa):
        buf[i] = src[j]
        i += 1
    buf[i] = control
    i += 1
    if info_len:
        i = _put_crc(buf, p, i)
    return i


def frame_end(buf, off, info_end):
    """Write FCS and closing flag of the frame begun at ``off``; return the offset after it."""
    i = _put_crc(buf, off + 1, info_end)
    buf[i] = _FLAG
    return i + 1


def encode_frame(buf, off, dst, src, control, info=None, info_off=0, info_len=None, segmented=False):
    """Write a complete frame (both flags) into ``buf`` at ``off``; return the new offset.

    ``dst``/``src`` are encoded address bytes; ``info[info_off:info_off+info_len]``
    is the information field (none when ``info`` is None or empty).
    """
    if info is None:
        return frame_end(buf, off, frame_begin(buf, off, dst, src, control, 0, segmented))
    if info_len is None:
        info_len = len(info) - info_off
    if info_len and (info_off < 0 or info_off + info_len > len(info)):
        raise LinkError("info slice outside the data", "info", info_off)
    i = frame_begin(buf, off, dst, src, control, info_len, segmented)
    for j in range(info_len):
        buf[i + j] = info[info_off + j]
    return frame_end(buf, off, i + info_len)


def _param_size(v):
    return 1 if v < 0x100 else 2 if v < 0x10000 else 4


def params_size(max_tx, max_rx, win_tx, win_rx):
    """Bytes :func:`encode_params` writes for these values."""
    return 3 + 2 * 4 + _param_size(max_tx) + _param_size(max_rx) + 4 + 4


def encode_params(buf, off, max_tx, max_rx, win_tx, win_rx):
    """SNRM/UA information field 81 80 len {05 max-tx, 06 max-rx, 07 win-tx, 08 win-rx}.

    Max info lengths take 1 or 2 bytes, windows 4 bytes (as meters send them).
    Values are from the sender's point of view. Returns the new offset.
    """
    for v in (max_tx, max_rx):
        if not 1 <= v <= 0xFFFF:
            raise LinkError("max info length %d out of range" % v, "params")
    for v in (win_tx, win_rx):
        if not 1 <= v <= 7:
            raise LinkError("window size %d out of range 1..7" % v, "params")
    n = params_size(max_tx, max_rx, win_tx, win_rx)
    if off < 0 or off + n > len(buf):
        raise LinkError("parameters do not fit the buffer", "buf", off)
    buf[off] = _PARAM_FORMAT
    buf[off + 1] = _PARAM_GROUP
    buf[off + 2] = n - 3
    i = off + 3
    for pid, v, size in (
        (_P_MAX_TX, max_tx, _param_size(max_tx)),
        (_P_MAX_RX, max_rx, _param_size(max_rx)),
        (_P_WIN_TX, win_tx, 4),
        (_P_WIN_RX, win_rx, 4),
    ):
        buf[i] = pid
        buf[i + 1] = size
        i += 2
        for k in range(size - 1, -1, -1):
            buf[i] = (v >> (8 * k)) & 0xFF
            i += 1
    return i


def parse_params(mv, off=0, end=None):
    """``(max_tx, max_rx, win_tx, win_rx)`` from an SNRM/UA info field (sender's view).

    An empty field gives the defaults 128/128/1/1; parameters not present keep
    their default; unknown parameters are skipped.
    """
    if end is None:
        end = len(mv)
    max_tx = max_rx = DEFAULT_MAX_INFO
    win_tx = win_rx = _DEFAULT_WINDOW
    if end <= off:
        return max_tx, max_rx, win_tx, win_rx
    if end - off < 3:
        raise LinkError("parameter field truncated", "params", off)
    if mv[off] != _PARAM_FORMAT or mv[off + 1] != _PARAM_GROUP:
        raise LinkError("parameter field must start 81 80, not %02X %02X" % (mv[off], mv[off + 1]),
                        "params", off)
    glen = mv[off + 2]
    i = off + 3
    gend = i + glen
    if gend > end:
        raise LinkError("parameter group length %d exceeds the %d bytes present" % (glen, end - i),
                        "params", off + 2)
    while i < gend:
        if gend - i < 2:
            raise LinkError("parameter header truncated", "params", i)
        pid = mv[i]
        plen = mv[i + 1]
        i += 2
        if i + plen > gend:
            raise LinkError("parameter 0x%02X length %d overruns the group" % (pid, plen), "params", i - 1)
        if pid in (_P_MAX_TX, _P_MAX_RX, _P_WIN_TX, _P_WIN_RX):
            if not 1 <= plen <= 4:
                raise LinkError("parameter 0x%02X has %d value bytes" % (pid, plen), "params", i - 1)
            v = 0
            for k in range(plen):
                v = (v << 8) | mv[i + k]
            if pid == _P_MAX_TX:
                max_tx = v
            elif pid == _P_MAX_RX:
                max_rx = v
            elif pid == _P_WIN_TX:
                win_tx = v
            else:
                win_rx = v
        i += plen
    return max_tx, max_rx, win_tx, win_rx


def _encode_u(buf, off, dst, src, control, params):
    if params is None:
        return encode_frame(buf, off, dst, src, control)
    n = params_size(params[0], params[1], params[2], params[3])
    i = frame_begin(buf, off, dst, src, control, n)
    encode_params(buf, i, params[0], params[1], params[2], params[3])
    return frame_end(buf, off, i + n)


def encode_snrm(buf, off, dst, src, params=None):
    """SNRM (P=1); ``params`` = (max_tx, max_rx, win_tx, win_rx) from the client's view, or None."""
    return _encode_u(buf, off, dst, src, _C_SNRM | _PF, params)


def encode_ua(buf, off, dst, src, params=None):
    """UA (F=1), optionally with the negotiated parameters from the server's view."""
    return _encode_u(buf, off, dst, src, _C_UA | _PF, params)


def encode_disc(buf, off, dst, src):
    """DISC (P=1)."""
    return encode_frame(buf, off, dst, src, _C_DISC | _PF)


def encode_dm(buf, off, dst, src):
    """DM (F=1): the server's answer when it is not connected."""
    return encode_frame(buf, off, dst, src, _C_DM | _PF)


def encode_rr(buf, off, dst, src, nr, pf=1):
    """RR with N(R) = ``nr``."""
    return encode_frame(buf, off, dst, src, encode_control("RR", 0, nr, pf))


def encode_i(buf, off, dst, src, ns, nr, info, info_off=0, info_len=None, segmented=False, pf=1):
    """I-frame with N(S)/N(R); ``segmented`` sets the S bit (more segments follow)."""
    control = encode_control("I", ns, nr, pf)
    return encode_frame(buf, off, dst, src, control, info, info_off, info_len, segmented)


def encode_ui(buf, off, dst, src, info, info_off=0, info_len=None, segmented=False, pf=1):
    """UI frame (unnumbered information, e.g. pushes)."""
    return encode_frame(buf, off, dst, src, _C_UI | (_PF if pf else 0), info, info_off, info_len, segmented)


# ---------------------------------------------------------------- LLC


def strip_llc(mv, off, end, response=None):
    """Offset after the LLC header at ``off``; ``response`` True wants E6 E7 00, False E6 E6 00."""
    if end - off < 3:
        raise LinkError("LLC header truncated", "llc", off)
    if mv[off] != 0xE6 or mv[off + 2] != 0x00 or mv[off + 1] not in (0xE6, 0xE7):
        raise LinkError("no LLC header (E6 E6 00 / E6 E7 00)", "llc", off)
    if response is not None and (mv[off + 1] == 0xE7) != bool(response):
        raise LinkError("LLC header of the wrong direction", "llc", off)
    return off + 3


def add_llc(buf, off, response=False):
    """Write the LLC header (E6 E6 00 request, E6 E7 00 response); return the new offset."""
    if off < 0 or off + 3 > len(buf):
        raise LinkError("LLC header does not fit the buffer", "buf", off)
    buf[off] = 0xE6
    buf[off + 1] = 0xE7 if response else 0xE6
    buf[off + 2] = 0
    return off + 3


# The frame format's constants, as in frame.py (compiled into the byte loop).


def _copy_py(dst, d, src, s, n):
    for j in range(n):
        dst[d + j] = src[s + j]


# dst[d:d + n] = src[s:s + n] without allocating (a memoryview slice is an object, and the
# receiver runs under heap_lock): every received byte is copied twice (frame, reassembly), so
# machine code where the port has a native emitter (compat.viper). Forward, byte by byte: also
# right within one buffer when d <= s.
_copy = viper(_copy_py, "@micropython.viper\n"
              "def f(t:ptr8,d:int,r:ptr8,s:int,n:int):\n"
              " n+=s\n"
              " while s<n:\n"
              "  t[d]=r[s]\n"
              "  d+=1\n"
              "  s+=1")


class Reassembler:
    """Joins the information fields of segmented I/UI frames into one fixed buffer.

    ``add(frame)`` copies the info field and returns True when the frame closed
    the sequence (S bit clear); the result is ``buf[:length]`` (LLC, if any, is
    still in front: see :func:`.frame.strip_llc`). The next ``add`` after a complete
    result starts a new one.
    """

    def __init__(self, capacity, buf=None):
        self.buf = buffer(capacity, buf)  # buf: the caller's, if large enough
        self.length = 0
        self.segments = 0
        self.complete = False

    def reset(self):
        self.length = 0
        self.segments = 0
        self.complete = False

    def add(self, frame):
        """Append ``frame``'s info field; True when the reassembled field is complete."""
        return self.add_bytes(frame.buf, frame.info_off, frame.info_len, not frame.segmented)

    def add_bytes(self, data, off, n, last):
        """Append ``data[off:off+n]``; ``last`` closes the sequence."""
        if self.complete:
            self.reset()
        b = self.buf
        o = self.length
        if o + n > len(b):
            self.reset()
            raise LinkError("reassembled information exceeds %d bytes" % len(b), "info")
        if off < 0 or off + n > len(data):
            _copy_py(b, o, data, off, n)  # as before (IndexError...): _copy checks nothing
        else:
            _copy(b, o, data, off, n)
        self.length = o + n
        self.segments += 1
        self.complete = bool(last)
        return self.complete

    def data(self):
        """memoryview of the reassembled bytes."""
        return memoryview(self.buf)[: self.length]


# ---------------------------------------------------------------- receiver


class FrameReceiver:
    """Bytes in, frames out; framing by the length field, never by scanning for 0x7E.

    ``capacity`` is the largest accepted length field (see :func:`.frame.frame_capacity`);
    the buffer is allocated once here. ``feed(data, off=0, end=None)`` consumes
    bytes until one frame is complete (``ready`` True, fields in ``frame``, valid
    until the next feed) and returns the offset it reached. Call it again (same
    data, returned offset) until ``ready`` is False: only then is everything,
    including bytes replayed from a rejected candidate, consumed::

        while True:
            off = rx.feed(chunk, off, n)
            if not rx.ready:
                break
            handle(rx.frame)

    Garbage, impossible lengths, bad headers and bad HCS/FCS are counted in
    ``errors`` (reason in ``last_error``) and the discarded bytes in
    ``dropped_bytes``; the receiver then re-hunts for a flag from the byte after
    the bad frame's start. Chunking never changes the result. No allocation per
    byte or per frame.
    """

    def __init__(self, capacity, buf=None):
        if not _MIN_LENGTH <= capacity <= _MAX_LENGTH:
            raise LinkError("receiver capacity %d outside %d..%d" % (capacity, _MIN_LENGTH, _MAX_LENGTH),
                            "capacity")
        self.capacity = capacity
        self.buf = buffer(capacity, buf)  # buf: the caller's (session.LinkBuffers), if large enough
        self.frame = Frame()
        self.frame.buf = self.buf
        self.ready = False
        self.frames = 0
        self.errors = 0
        self.dropped_bytes = 0
        self.last_error = None
        self.reset()

    def reset(self):
        """Forget any partial frame and hunt for a flag again (counters kept)."""
        # Candidate frame (format byte onwards) in buf[0:_n]; bytes to replay after
        # a bad candidate in buf[_ps:_pe], always with _n <= _ps.
        self._n = 0
        self._need = 2
        self._chk = 0
        self._len = 0
        self._hdr = 0
        self._ps = 0
        self._pe = 0
        self._hunting = True
        self._want_flag = False
        self.ready = False

    @property
    def pending(self):
        """Bytes held in the buffer: a partial frame plus bytes waiting to be re-hunted."""
        return self._n + self._pe - self._ps

    def feed(self, data, off=0, end=None):
        """Consume ``data[off:end]`` up to the end of one frame; return the offset reached."""
        if end is None or end > len(data):
            end = len(data)  # as the A-XDR decoders do; it also bounds what _copy reads
        if off < 0:
            raise LinkError("negative offset %d" % off, "offset")
        self.ready = False
        b = self.buf
        while True:
            if self._ps < self._pe:  # replay bytes of a rejected candidate first
                src = b
                i = self._ps
                e = self._pe
                replay = True
            elif off < end:
                src = data
                i = off
                e = end
                replay = False
            else:
                return off
            c = src[i]
            if self._want_flag:
                # The closing flag of the frame just delivered (it may also open the next).
                self._want_flag = False
                if c == _FLAG:
                    i += 1
                    while i < e and src[i] == _FLAG:  # back-to-back flags, as below, at once
                        i += 1
                else:
                    self.errors += 1
                    self.last_error = "flag"
                    self._hunting = True
                k = 0
            elif self._hunting:
                if c == _FLAG:
                    self._hunting = False
                else:
                    self.dropped_bytes += 1
                i += 1
                k = 0
            elif self._n == 0 and c == _FLAG:  # back-to-back flags
                i += 1
                k = 0
            else:
                n = self._n
                k = self._need - n
                if k > e - i:
                    k = e - i
                _copy(b, n, src, i, k)  # n + k <= _need <= capacity; i + k <= e <= len(src)
                i += k
                self._n = n + k
            if replay:
                self._ps = i
            else:
                off = i
            if k:
                r = self._check()
                if r > 0:
                    self.ready = True
                    self.frames += 1
                    self._want_flag = True
                    return off
                if r < 0:
                    self._reject()

    def _reject(self):
        # Drop the candidate's first byte and replay the rest: the next frame may
        # start at any later flag, even one inside the rejected bytes.
        self.errors += 1
        self.dropped_bytes += 1
        b = self.buf
        m = self._n - 1
        if self._ps < self._pe:
            ps = self._ps - m
            for j in range(m - 1, -1, -1):  # backwards: the regions may overlap, ps >= 1
                b[ps + j] = b[1 + j]
            self._ps = ps
        else:
            self._ps = 1
            self._pe = 1 + m
        self._n = 0
        self._chk = 0
        self._need = 2
        self._hunting = True

    def _bad(self, reason):
        self.last_error = reason
        return -1

    def _check(self):
        # 1 = frame complete and good, 0 = need more bytes, -1 = bad candidate.
        b = self.buf
        n = self._n
        if self._chk == 0:
            if n < 2:
                self._need = 2
                return 0
            fmt = b[0]
            if fmt & 0xF0 != _FMT_TYPE3:
                return self._bad("format")
            ln = ((fmt & 7) << 8) | b[1]
            if ln < _MIN_LENGTH or ln > self.capacity:
                return self._bad("length")
            self._len = ln
            self._need = ln
            self._chk = 1
            if n == 2:
                return 0  # _need was 2: header_len needs a byte more (it would answer 0)
        ln = self._len
        if self._chk == 1:
            h = header_len(b, 0, n, ln)
            if h == 0:
                return 0
            if h < 0:
                return self._bad("address" if h == _E_ADDRESS else "control" if h == _E_CONTROL else "length")
            self._hdr = h
            self._chk = 2
        h = self._hdr
        if self._chk == 2:
            if ln > h + 2:
                if n < h + 2:
                    return 0
                if not crc_ok(b, 0, h):
                    return self._bad("HCS")
            self._chk = 3
        if n < ln:
            return 0
        if not crc_ok(b, 0, ln - 2):
            return self._bad("FCS")
        self.frame.fill(b, 0, ln, h, True if ln > h + 2 else None, True, ln)
        self._n = 0
        self._chk = 0
        self._need = 2
        return 1
