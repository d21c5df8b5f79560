"""The xDLMS APDU vocabulary (IEC 62056-5-3) every service module builds on: APDU tags and
sub-types, data-access-result names, ciphered tags, invoke-id, the encoding and decoding
primitives (lengths, integers, octet strings, A-XDR Data in an APDU), attribute descriptors with
selective access, and result items.

The services are beside it: GET in :mod:`.get`; SET and ACTION (:mod:`.set_action`), short-name
READ/WRITE (:mod:`.sn`) and data-notification / general-block-transfer (:mod:`.notification`) are
loaded only when used (RAM on a board); the meter's side is :mod:`.server`.

Encoders write into a caller-provided ``bytearray`` at ``off`` and return the new
offset. Decoders take ``(mv, off=0, end=None)`` and return small objects holding
values and *offsets into the caller's buffer* (``data_off``/``data_end``), so
large results (profile buffers) can be streamed to the A-XDR decoder instead of
being copied. Bad input raises :class:`~optoread.errors.ApduError` (or
``AxdrError`` from the data decoder); a meter's refusal raises
:class:`~optoread.errors.DataAccessError` carrying the result code.

Ciphered APDUs are only recognised and routed here (:func:`is_ciphered`); the
security layer decrypts them and hands the plain APDU back to these parsers.
"""

import struct

from optoread.compat import const
from optoread.dlms.axdr import decode as axdr
from optoread.dlms.axdr.data import encode_length, length_size
from optoread.errors import ApduError, DataAccessError

# ---------------------------------------------------------------- APDU tags
INITIATE_REQUEST = const(0x01)
INITIATE_RESPONSE = const(0x08)
CONFIRMED_SERVICE_ERROR = const(0x0E)
DATA_NOTIFICATION = const(0x0F)
_UNCONFIRMED_WRITE_REQUEST = const(0x16)
_INFORMATION_REPORT_REQUEST = const(0x18)
AARQ = const(0x60)
AARE = const(0x61)
RLRQ = const(0x62)
RLRE = const(0x63)
GET_REQUEST = const(0xC0)
_EVENT_NOTIFICATION_REQUEST = const(0xC2)
GET_RESPONSE = const(0xC4)
EXCEPTION_RESPONSE = const(0xD8)
_ACCESS_REQUEST = const(0xD9)
_ACCESS_RESPONSE = const(0xDA)
GENERAL_BLOCK_TRANSFER = const(0xE0)

# Ciphered APDUs: global key (glo-*) and dedicated key (ded-*).
_GLO_INITIATE_REQUEST = const(0x21)
_GLO_READ_REQUEST = const(0x25)
_GLO_WRITE_REQUEST = const(0x26)
GLO_INITIATE_RESPONSE = const(0x28)
_GLO_READ_RESPONSE = const(0x2C)
_GLO_WRITE_RESPONSE = const(0x2D)
_GLO_CONFIRMED_SERVICE_ERROR = const(0x2E)
_GLO_UNCONFIRMED_WRITE_REQUEST = const(0x36)
_GLO_INFORMATION_REPORT_REQUEST = const(0x38)
_DED_INITIATE_REQUEST = const(0x41)
_DED_READ_REQUEST = const(0x45)
_DED_WRITE_REQUEST = const(0x46)
_DED_INITIATE_RESPONSE = const(0x48)
_DED_READ_RESPONSE = const(0x4C)
_DED_WRITE_RESPONSE = const(0x4D)
_DED_CONFIRMED_SERVICE_ERROR = const(0x4E)
_DED_UNCONFIRMED_WRITE_REQUEST = const(0x56)
_DED_INFORMATION_REPORT_REQUEST = const(0x58)
_GLO_GET_REQUEST = const(0xC8)
_GLO_SET_REQUEST = const(0xC9)
_GLO_EVENT_NOTIFICATION_REQUEST = const(0xCA)
_GLO_ACTION_REQUEST = const(0xCB)
_GLO_GET_RESPONSE = const(0xCC)
_GLO_SET_RESPONSE = const(0xCD)
_GLO_ACTION_RESPONSE = const(0xCF)
_DED_GET_REQUEST = const(0xD0)
_DED_SET_REQUEST = const(0xD1)
_DED_EVENT_NOTIFICATION_REQUEST = const(0xD2)
_DED_ACTION_REQUEST = const(0xD3)
_DED_GET_RESPONSE = const(0xD4)
_DED_SET_RESPONSE = const(0xD5)
_DED_ACTION_RESPONSE = const(0xD7)
GENERAL_GLO_CIPHERING = const(0xDB)
GENERAL_DED_CIPHERING = const(0xDC)
GENERAL_CIPHERING = const(0xDD)
GENERAL_SIGNING = const(0xDF)

# Request/response sub-types (the byte after the LN service tag).
NORMAL = const(1)
NEXT = const(2)  # GET-Request-Next
WITH_DATABLOCK = const(2)  # GET-Response / SET-Response datablock
WITH_LIST = const(3)  # GET request/response with-list

# Kinds of one result item (GET with-list, SN Read/Write responses).
ITEM_DATA = const(0)
ITEM_ERROR = const(1)
ITEM_BLOCK = const(2)  # SN data-block-result

# Selective access selectors for profile-generic buffers.
SELECT_BY_RANGE = const(1)
SELECT_BY_ENTRY = const(2)
# exception-response and confirmed-service-error: decoded and named in service_errors.py

# Data-Access-Result (and Action-Result; 15/16 read "long-action-..." there).
_SUCCESS = const(0)
_DAR = {
    0: "success",
    1: "hardware-fault",
    2: "temporary-failure",
    3: "read-write-denied",
    4: "object-undefined",
    9: "object-class-inconsistent",
    11: "object-unavailable",
    12: "type-unmatched",
    13: "scope-of-access-violated",
    14: "data-block-unavailable",
    15: "long-get-aborted",
    16: "no-long-get-in-progress",
    17: "long-set-aborted",
    18: "no-long-set-in-progress",
    19: "data-block-number-invalid",
    250: "other-reason",
}
_ACTION_ONLY = {15: "long-action-aborted", 16: "no-long-action-in-progress"}

_U16 = ">H"
_U32 = ">I"


# ---------------------------------------------------------------- names
def dar_name(code, action=False):
    """Name of a data-access-result (or, with ``action``, an action-result) code."""
    if action and code in _ACTION_ONLY:
        return _ACTION_ONLY[code]
    return _DAR.get(code, "result-%d" % code)


def check_result(code, what="get", action=False):
    """Raise :class:`DataAccessError` unless ``code`` is success (0)."""
    if code:
        raise DataAccessError("%s: %s (%d)" % (what, dar_name(code, action), code), result=code)


# ---------------------------------------------------------------- tags
def is_ciphered(tag):
    """True when ``tag`` is a ciphered APDU (glo-*, ded-*, general-*-ciphering, general-signing)."""
    if 0xC8 <= tag <= 0xD7:
        return tag not in (0xCE, 0xD6)
    if tag in (0x21, 0x25, 0x26, 0x28, 0x2C, 0x2D, 0x2E, 0x36, 0x38):
        return True
    if tag in (0x41, 0x45, 0x46, 0x48, 0x4C, 0x4D, 0x4E, 0x56, 0x58):
        return True
    return 0xDB <= tag <= 0xDF and tag != 0xDE


def is_dedicated(tag):
    """True for ded-* ciphered tags (protected with the dedicated key of the association)."""
    return is_ciphered(tag) and (0xD0 <= tag <= 0xD7 or 0x41 <= tag <= 0x58 or tag == 0xDC)


def plain_tag(tag):
    """The unciphered service tag a glo-/ded- tag protects, or None (general-* wrappers, unknown)."""
    if not is_ciphered(tag):
        return None
    if 0xC8 <= tag <= 0xCF:
        return tag - 8
    if 0xD0 <= tag <= 0xD7:
        return tag - 16
    if tag < 0x40:
        return tag - 0x20
    if tag < 0x60:
        return tag - 0x40
    return None


def glo_tag(tag):
    """The glo- tag that protects plain service tag ``tag`` (global key), or None if it has none."""
    t = tag + 8 if 0xC0 <= tag <= 0xC7 else tag + 0x20
    return t if plain_tag(t) == tag and not is_dedicated(t) else None


# ---------------------------------------------------------------- invoke-id
def invoke_id_and_priority(invoke_id, confirmed=True, high=True):
    """The Invoke-Id-And-Priority byte: id 0..15, bit 6 confirmed, bit 7 high priority."""
    return (invoke_id & 0x0F) | (0x40 if confirmed else 0) | (0x80 if high else 0)


def split_invoke(b):
    """``(invoke_id, confirmed, high_priority)`` of an Invoke-Id-And-Priority byte."""
    return b & 0x0F, bool(b & 0x40), bool(b & 0x80)


def long_invoke_id(v):
    """``(invoke_id, self_descriptive, break_on_error, confirmed, high)`` of a long-invoke-id (u32)."""
    return (v & 0xFFFFFF, bool(v & 0x10000000), bool(v & 0x20000000), bool(v & 0x40000000),
            bool(v & 0x80000000))


# ---------------------------------------------------------------- primitives
def bounds(mv, off, end):
    """Validated ``end`` (``None`` means the whole buffer); raises if off/end are outside it."""
    n = len(mv)
    if end is None or end > n:
        end = n
    if off < 0 or off > end:
        raise ApduError("offset outside the data", "apdu", off)
    return end


def need(mv, off, end, n, field):
    """Raise unless ``n`` bytes are present at ``off`` (before ``end``)."""
    if n < 0 or off + n > end:
        raise ApduError("truncated", field, off)


def room(buf, off, n):
    """Raise unless the output buffer has ``n`` bytes free at ``off``."""
    if off < 0 or off + n > len(buf):
        raise ApduError("output buffer too small", "buffer", off)


def u8(mv, off, end, field):
    """One byte: ``(value, off + 1)``."""
    if off >= end:
        raise ApduError("truncated", field, off)
    return mv[off], off + 1


def u16(mv, off, end, field):
    if off + 2 > end:
        raise ApduError("truncated", field, off)
    return (mv[off] << 8) | mv[off + 1], off + 2


def u32(mv, off, end, field):
    if off + 4 > end:
        raise ApduError("truncated", field, off)
    return struct.unpack_from(_U32, mv, off)[0], off + 4


def read_length(mv, off, end, field="length"):
    """A-XDR / BER definite length (short form, or 0x81..0x84 long form): ``(n, off)``.

    The length is checked against nothing but its own encoding; callers check it
    against the bytes present.
    """
    if off >= end:
        raise ApduError("truncated length", field, off)
    b = mv[off]
    off += 1
    if b < 0x80:
        return b, off
    k = b & 0x7F
    if k == 0 or k > 4:
        raise ApduError("bad length form 0x%02X" % b, field, off - 1)
    if off + k > end:
        raise ApduError("truncated length", field, off)
    n = 0
    for i in range(k):
        n = (n << 8) | mv[off + i]
    return n, off + k


def write_length(buf, off, n):
    """Encode a definite length (short or long form) at ``off``; returns the new offset. Lengths
    are written by the A-XDR codec: one BER definite-length encoder for the whole stack."""
    room(buf, off, length_size(n))
    return encode_length(buf, off, n)


def octets(mv, off, end, field):
    """Length-prefixed octet string: ``(data_off, data_end)``, checked against ``end``."""
    n, off = read_length(mv, off, end, field)
    need(mv, off, end, n, field)
    return off, off + n


def put(buf, off, data):
    """Copy bytes-like ``data`` into ``buf`` at ``off``; returns the new offset."""
    n = len(data)
    room(buf, off, n)
    buf[off:off + n] = data
    return off + n


def put_octets(buf, off, data):
    """Length-prefixed octet string (no A-XDR type tag)."""
    off = write_length(buf, off, len(data))
    return put(buf, off, data)


def put_bytes(buf, off, *values):
    """Bytes (ints, each taken mod 256) at ``off``; returns the new offset."""
    room(buf, off, len(values))
    for v in values:
        buf[off] = v & 0xFF
        off += 1
    return off


def put_u16(buf, off, v):
    """A big-endian u16; returns the new offset."""
    room(buf, off, 2)
    struct.pack_into(_U16, buf, off, v & 0xFFFF)
    return off + 2


def put_u32(buf, off, v):
    """A big-endian u32; returns the new offset."""
    room(buf, off, 4)
    struct.pack_into(_U32, buf, off, v & 0xFFFFFFFF)
    return off + 4


def put_data(buf, off, data):
    """A Data element: pre-encoded A-XDR bytes, or a (tag, value) pair for the A-XDR encoder."""
    if isinstance(data, tuple):
        from optoread.dlms.axdr import encode as axdr_encode  # loaded by the first (tag, value) (RAM)

        try:
            return axdr_encode.encode(buf, off, data[0], data[1])
        except (IndexError, ValueError, TypeError):
            raise ApduError("cannot encode data", "data", off)
    return put(buf, off, data)


def skip_data(mv, off, end, field):
    """The offset after the A-XDR Data element at ``off``."""
    if off >= end:
        raise ApduError("truncated", field, off)
    return axdr.skip(mv, off, end)


def expect_tag(mv, off, end, tag, field):
    """The offset after the tag byte at ``off``, which must be ``tag`` (``end`` already bounded).

    Decoders of what a meter answers use :func:`.service.expect`, which also raises the meter's
    error answer (exception-response, confirmed-service-error) in place of the expected APDU.
    """
    t, off2 = u8(mv, off, end, field)
    if t != tag:
        raise ApduError("expected tag 0x%02X, got 0x%02X" % (tag, t), field, off)
    return off2


def _obis(obis, off):
    if len(obis) != 6:
        raise ApduError("OBIS code must be 6 bytes", "obis", off)
    return obis


# ---------------------------------------------------------------- descriptors
def encode_descriptor(buf, off, class_id, obis, attr):
    """Cosem-Attribute- (or Method-) Descriptor: class id u16, 6-byte OBIS, attribute/method int8."""
    off = put_u16(buf, off, class_id)
    off = put(buf, off, _obis(obis, off))
    return put_bytes(buf, off, attr)


def put_access(buf, off, selector, params):
    """access-selection OPTIONAL: 00 absent, or 01 selector parameters (see :func:`put_data`)."""
    if not selector:
        return put_bytes(buf, off, 0)
    off = put_bytes(buf, off, 1, selector)
    if params is not None:
        off = put_data(buf, off, params)
    return off


def _put_capture_object(buf, off, obj):
    # capture_object_definition: {class-id long-unsigned, logical-name, attribute integer, data-index}
    cls, obis, attr, idx = obj
    off = put_bytes(buf, off, 0x02, 0x04, 0x12)
    off = put_u16(buf, off, cls)
    off = put_bytes(buf, off, 0x09, 0x06)
    off = put(buf, off, _obis(obis, off))
    off = put_bytes(buf, off, 0x0F, attr, 0x12)
    return put_u16(buf, off, idx)


def _put_datetime(buf, off, dt, no_deviation):
    off = put_bytes(buf, off, 0x09, 0x0C)
    start = off
    if hasattr(dt, "write"):
        room(buf, off, 12)
        off = dt.write(buf, off)
    else:
        if len(dt) != 12:
            raise ApduError("date-time must be 12 bytes", "date-time", off)
        off = put(buf, off, dt)
    if no_deviation:
        # Meters that reject a deviation accept 0x8000 "not specified" (gurux.dlms.java PR #25).
        buf[start + 9] = 0x80
        buf[start + 10] = 0x00
    return off


def encode_range_descriptor(buf, off, restricting, from_dt, to_dt, columns=None, no_deviation=False):
    """range_descriptor parameters (selector 1) for a profile-generic buffer.

    ``restricting`` = (class_id, obis6, attr, data_index) of the sort column (usually
    the clock), ``from_dt``/``to_dt`` = axdr.DateTime or 12 raw bytes, written as
    octet-string(12); ``columns`` = list of capture objects or None for all.
    """
    off = put_bytes(buf, off, 0x02, 0x04)
    off = _put_capture_object(buf, off, restricting)
    off = _put_datetime(buf, off, from_dt, no_deviation)
    off = _put_datetime(buf, off, to_dt, no_deviation)
    cols = columns or ()
    off = put_bytes(buf, off, 0x01)
    off = write_length(buf, off, len(cols))
    for c in cols:
        off = _put_capture_object(buf, off, c)
    return off


def encode_entry_descriptor(buf, off, from_entry, to_entry=0, from_col=1, to_col=0):
    """entry_descriptor parameters (selector 2): entries and columns 1-based, 0 = to the last."""
    off = put_bytes(buf, off, 0x02, 0x04, 0x06)
    off = put_u32(buf, off, from_entry)
    off = put_bytes(buf, off, 0x06)
    off = put_u32(buf, off, to_entry)
    off = put_bytes(buf, off, 0x12)
    off = put_u16(buf, off, from_col)
    off = put_bytes(buf, off, 0x12)
    return put_u16(buf, off, to_col)


def put_descriptor_list(buf, off, items):
    """The count and the attribute descriptors (each with its access selection) of a with-list
    request; items are (class_id, obis, attr) or (class_id, obis, attr, selector, params)."""
    off = write_length(buf, off, len(items))
    for it in items:
        off = encode_descriptor(buf, off, it[0], it[1], it[2])
        if len(it) > 3:
            off = put_access(buf, off, it[3], it[4])
        else:
            off = put_bytes(buf, off, 0)
    return off


# ---------------------------------------------------------------- result items
class Result:
    """One result item: ``kind`` (ITEM_*), ``dar`` (error code or None), data ``off``/``end``,
    and for blocks ``last``/``block``."""

    def __init__(self, kind, dar=None, off=None, end=None, last=False, block=None):
        self.kind = kind
        self.dar = dar
        self.off = off
        self.end = end
        self.last = last
        self.block = block

    def __repr__(self):
        return "Result(kind=%d, dar=%r, off=%r, end=%r, last=%r, block=%r)" % (
            self.kind, self.dar, self.off, self.end, self.last, self.block)
