"""Stand-alone HDLC decoding (IEC 62056-46): one frame from a capture, address and control
fields, FRMR reasons.

A reading never needs these: its :class:`~optoread.dlms.hdlc.frame.FrameReceiver` checks frames as
the bytes arrive. They serve the laptop tools (captures), the tests and diagnostics, and are
loaded on first use ("loaded on first use" in docs/architecture.md: RAM on a board); the
connection loads this module to name the reasons of an FRMR.
"""

from optoread.compat import const
from optoread.crc import crc16_x25
from optoread.dlms.hdlc.frame import Frame, control_kind, crc_ok, header_len
from optoread.errors import LinkError

_FLAG = const(0x7E)  # as in frame.py
_FMT_TYPE3 = const(0xA0)
_MIN_LENGTH = const(7)
_E_ADDRESS = const(-1)  # header_len's error codes, as in frame.py
_E_CONTROL = const(-2)
_E_LENGTH = const(-3)


def _addr_value(b, s, size):
    # 7 bits per byte, packed: size 2 -> upper << 7 | lower, size 4 -> upper << 14 | lower
    if size == 1:
        return b[s] >> 1
    if size == 2:
        return ((b[s] >> 1) << 7) | (b[s + 1] >> 1)
    return ((b[s] >> 1) << 21) | ((b[s + 1] >> 1) << 14) | ((b[s + 2] >> 1) << 7) | (b[s + 3] >> 1)


def _addr_upper(v, size):
    if size == 1:
        return v
    if size == 2:
        return v >> 7
    return v >> 14


def _addr_lower(v, size):
    if size == 1:
        return None
    if size == 2:
        return v & 0x7F
    return v & 0x3FFF


def decode_address(data, off=0, end=None):
    """``(upper, lower, size)`` of the address field at ``off`` (lower is None for 1 byte)."""
    if end is None:
        end = len(data)
    i = off
    while True:
        if i >= end:
            raise LinkError("address field has no end byte (LSB = 1)", "address", off)
        c = data[i]
        i += 1
        if c & 1:
            break
        if i - off >= 4:
            raise LinkError("address field longer than 4 bytes", "address", off)
    size = i - off
    if size == 3:
        raise LinkError("3-byte address field", "address", off)
    v = _addr_value(data, off, size)
    return _addr_upper(v, size), _addr_lower(v, size), size


def decode_control(c):
    """``(kind, ns, nr, pf)`` of a control byte; ns/nr are None where the kind has none."""
    kind = control_kind(c)
    if kind is None:
        raise LinkError("control field 0x%02X is not a DLMS HDLC frame" % c, "control")
    pf = (c >> 4) & 1
    if kind == "I":
        return kind, (c >> 1) & 7, c >> 5, pf
    if kind == "RR" or kind == "RNR":
        return kind, None, c >> 5, pf
    return kind, None, None, pf


_HDR_ERRORS = {
    _E_ADDRESS: ("address field malformed (no end bit within 4 bytes, 3 bytes, or runs into the FCS)",
                 "address"),
    _E_CONTROL: ("control field is not a DLMS HDLC frame", "control"),
    _E_LENGTH: ("length field does not fit the header", "length"),
}


def parse_frame(mv, off=0, end=None, strict=True, frame=None):
    """Decode one frame from ``mv[off:end]`` (opening flag optional) into a :class:`Frame`.

    With an opening flag the closing flag must follow the FCS. ``strict`` raises
    LinkError (field ``"HCS"``/``"FCS"``) on a checksum mismatch; otherwise the
    verdicts are in ``hcs_ok``/``fcs_ok``. Pass ``frame`` to reuse an instance.
    Framing comes from the length field only; 0x7E inside the frame is data.
    """
    if end is None:
        end = len(mv)
    if off < 0 or off > end or end > len(mv):
        raise LinkError("bad bounds %d..%d for %d bytes" % (off, end, len(mv)), "bounds", off)
    p = off
    flagged = p < end and mv[p] == _FLAG
    if flagged:
        p += 1
    if end - p < 2:
        raise LinkError("frame truncated before the length field", "length", p)
    fmt = mv[p]
    if fmt & 0xF0 != _FMT_TYPE3:
        raise LinkError("format byte 0x%02X is not frame format type 3" % fmt, "format", p)
    ln = ((fmt & 7) << 8) | mv[p + 1]
    if ln < _MIN_LENGTH:
        raise LinkError("length %d shorter than the minimal frame" % ln, "length", p)
    if p + ln > end:
        raise LinkError("length field says %d bytes, %d present" % (ln, end - p), "length", p)
    h = header_len(mv, p, p + ln, ln)
    if h <= 0:
        msg, field = _HDR_ERRORS.get(h, ("truncated header", "length"))
        raise LinkError(msg, field, p)
    hcs_ok = None
    if ln > h + 2:
        hcs_ok = crc_ok(mv, p, p + h)
        if strict and not hcs_ok:
            raise LinkError("HCS mismatch (header check sequence)", "HCS", p + h)
    fcs_ok = crc_ok(mv, p, p + ln - 2)
    if strict and not fcs_ok:
        raise LinkError(
            "FCS mismatch: computed %04X, frame has %02X%02X (low byte first)"
            % (crc16_x25(mv, p, p + ln - 2), mv[p + ln - 2], mv[p + ln - 1]), "FCS", p + ln - 2)
    q = p + ln
    if flagged:
        if q >= end or mv[q] != _FLAG:
            raise LinkError("closing flag missing after the FCS", "flag", q)
        q += 1
    f = frame if frame is not None else Frame()
    f.fill(mv, p, ln, h, hcs_ok, fcs_ok, q)
    return f


_FRMR_REASONS = ((0x01, "invalid control field"), (0x02, "info field not permitted"),
                 (0x04, "info field too long"), (0x08, "invalid N(R)"), (0x10, "invalid N(S)"))


def describe_frmr(mv, off, n):
    """Text for an FRMR information field (rejected control, V(S)/V(R), reason bits)."""
    if n < 3:
        return "FRMR without reason"
    reasons = [t for bit, t in _FRMR_REASONS if mv[off + 2] & bit]
    return "FRMR: rejected control 0x%02X, peer V(S)=%d V(R)=%d: %s" % (
        mv[off], (mv[off + 1] >> 1) & 7, mv[off + 1] >> 5, ", ".join(reasons) or "no reason bits")
