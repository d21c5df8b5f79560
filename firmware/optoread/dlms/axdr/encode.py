"""The A-XDR encoder (IEC 62056-6-2): Python values to Data elements, checked before writing.

One optional feature ("loaded on first use" in docs/architecture.md): a reading only decodes, so
the encoder is loaded by the first SET, ACTION or selective access with a ``(tag, value)``
parameter (RAM on a board). The Python value each tag takes is the one the decoder returns (the
table in :mod:`optoread.dlms.axdr.decode`); the Data tags are public here for callers that build
values.
"""

from struct import pack_into, unpack_from

from optoread import compat
from optoread.compat import const
from optoread.dlms.axdr.data import FORMATS, SIZES, encode_length, length_size, need_out, tag_name
from optoread.dlms.axdr.decode import DateTime
from optoread.dlms.axdr.types import BitString, Date, Time, check_utf8
from optoread.errors import AxdrError

_NOT_A_TAG = const(0xFF)  # as in data (private: compiled away)
_VARIABLE = const(0xFE)  # as in data (private: compiled away)

# The Data tags (Blue Book 4.1.5), for callers that build values (the other modules keep them private).
NULL = const(0)
ARRAY = const(1)
STRUCTURE = const(2)
BOOLEAN = const(3)
BIT_STRING = const(4)
DOUBLE_LONG = const(5)
DOUBLE_LONG_UNSIGNED = const(6)
OCTET_STRING = const(9)
VISIBLE_STRING = const(10)
UTF8_STRING = const(12)
BCD = const(13)
INTEGER = const(15)
LONG = const(16)
UNSIGNED = const(17)
LONG_UNSIGNED = const(18)
COMPACT_ARRAY = const(19)
LONG64 = const(20)
LONG64_UNSIGNED = const(21)
ENUM = const(22)
FLOAT32 = const(23)
FLOAT64 = const(24)
DATE_TIME = const(25)
DATE = const(26)
TIME = const(27)
DONT_CARE = const(255)

# inclusive ranges of the integer types, checked before packing
_RANGE = {
    DOUBLE_LONG: (-0x80000000, 0x7FFFFFFF), DOUBLE_LONG_UNSIGNED: (0, 0xFFFFFFFF),
    INTEGER: (-0x80, 0x7F), LONG: (-0x8000, 0x7FFF), UNSIGNED: (0, 0xFF),
    LONG_UNSIGNED: (0, 0xFFFF), LONG64: (-0x8000000000000000, 0x7FFFFFFFFFFFFFFF),
    LONG64_UNSIGNED: (0, 0xFFFFFFFFFFFFFFFF), ENUM: (0, 0xFF),
}
_F32_MAX = unpack_from(">f", b"\x7f\x7f\xff\xff")[0]

# Sizes are computed before anything is written (so a length prefix is known up front);
# the same checks run for encoded_len and encode.


def _bad(t, what, off=None):
    name = tag_name(t) or "tag"
    return AxdrError(what, name, off)


def _check_tag(t):
    if not isinstance(t, int) or t < 0 or t > 255 or SIZES[t] == _NOT_A_TAG:
        raise AxdrError("unknown tag %r" % (t,), "tag")


def _bytes_of(t, v):
    # Octets of a string-like value for tag t (validated).
    if t == OCTET_STRING:
        if isinstance(v, (DateTime, Date, Time)):
            return v.to_bytes()
        if isinstance(v, (bytes, bytearray, memoryview)):
            return v
        raise _bad(t, "octet-string needs bytes")
    if t == VISIBLE_STRING:
        if isinstance(v, (bytes, bytearray, memoryview)):
            return v
        if not isinstance(v, str):
            raise _bad(t, "visible-string needs str")
        out = bytearray(len(v))
        i = 0
        for c in v:
            o = ord(c)
            if o > 0xFF:
                raise _bad(t, "character above U+00FF in visible-string", i)
            out[i] = o
            i += 1
        return out
    # UTF8_STRING
    if isinstance(v, (bytes, bytearray, memoryview)):
        check_utf8(v, 0, len(v))
        return v
    if not isinstance(v, str):
        raise _bad(t, "utf8-string needs str")
    try:
        return v.encode("utf-8")
    except UnicodeError:
        raise _bad(t, "string cannot be UTF-8 encoded") from None


def _simple_len(t, v):
    # Contents size (no tag) of a non-container value, after checking the value fits.
    # Compact-array cells are sized with it too (handed to compact.encoded_len and write).
    size = SIZES[t]
    if size < _VARIABLE:
        if t in _RANGE:
            if not isinstance(v, int):
                raise _bad(t, "%s needs an int" % tag_name(t))
            lo, hi = _RANGE[t]
            if v < lo or v > hi:
                raise _bad(t, "%d does not fit %s" % (v, tag_name(t)))
        elif t == FLOAT32 or t == FLOAT64:
            if not isinstance(v, (int, float)):
                raise _bad(t, "%s needs a float" % tag_name(t))
            if isinstance(v, float) and (v != v or v - v != 0):
                # inf and nan: no meter reading or setting is one (and 1e39 is inf on a board)
                raise _bad(t, "%s cannot take %r: not a finite number" % (tag_name(t), v))
            # too large (CPython's struct would raise OverflowError, a board write inf)
            if t == FLOAT32 and abs(v) > _F32_MAX:
                raise _bad(t, "%r does not fit float32" % (v,))
            if t == FLOAT64 and isinstance(v, int) and _f64_of_int(v)[1] > 0x7FE:
                raise _bad(t, "%d does not fit float64" % v)
        elif t == BCD:
            if not isinstance(v, int) or v < 0 or v > 99:
                raise _bad(t, "bcd holds 0..99")
        elif t == DATE_TIME or t == DATE or t == TIME:
            if isinstance(v, (bytes, bytearray, memoryview)):
                if len(v) != size:
                    raise _bad(t, "%s needs %d octets" % (tag_name(t), size))
            elif not isinstance(v, DateTime if t == DATE_TIME else (Date if t == DATE else Time)):
                raise _bad(t, "%s needs its class or raw octets" % tag_name(t))
            else:
                v.write(bytearray(size), 0)  # field checks (small, fixed allocation)
        return size
    if t == BIT_STRING:
        if not isinstance(v, BitString):
            raise _bad(t, "bit-string needs a BitString")
        return length_size(v.nbits) + len(v.data)
    n = len(_bytes_of(t, v))
    return length_size(n) + n


def _write_simple(buf, off, t, v):
    # Contents (no tag) of a non-container value whose size was checked by _simple_len.
    # Compact-array cells are written with it too (handed to compact.write).
    size = SIZES[t]
    if size < _VARIABLE:
        need_out(buf, off, size)
        fmt = FORMATS.get(t)
        if fmt is not None:
            if t == FLOAT64 and compat.SINGLE_FLOAT and isinstance(v, int):
                _pack_f64_int(buf, off, v)  # float(v) would keep only 24 bits of it
            else:
                pack_into(fmt, buf, off, v)
        elif t == BOOLEAN:
            buf[off] = 1 if v else 0
        elif t == BCD:
            buf[off] = ((v // 10) << 4) | (v % 10)
        elif t == DATE_TIME or t == DATE or t == TIME:
            if isinstance(v, (bytes, bytearray, memoryview)):
                buf[off:off + size] = v
            else:
                v.write(buf, off)
        return off + size
    if t == BIT_STRING:
        off = encode_length(buf, off, v.nbits)
        data = v.data
    else:
        data = _bytes_of(t, v)
        off = encode_length(buf, off, len(data))
    n = len(data)
    need_out(buf, off, n)
    buf[off:off + n] = data
    return off + n


def _f64_of_int(v):
    # (sign, biased exponent, 52-bit fraction) of the float64 nearest to int v (ties to even),
    # in integer arithmetic: exact on a board whose float is single precision.
    sign = 1 if v < 0 else 0
    m = -v if sign else v
    if not m:
        return 0, 0, 0
    if m >> 1100:  # far beyond float64: do not count its bits one by one
        return sign, 0x7FF, 0
    n = 0  # bit length of m
    while m >> n:
        n += 1
    e = 0
    if n > 53:
        shift = n - 53
        rem = m & ((1 << shift) - 1)
        half = 1 << (shift - 1)
        m >>= shift
        e = shift
        if rem > half or (rem == half and m & 1):
            m += 1
            if m >> 53:  # rounded up to the next power of two
                m >>= 1
                e += 1
        n = 53
    return sign, n - 1 + e + 1023, (m << (53 - n)) & ((1 << 52) - 1)


def _pack_f64_int(buf, off, v):
    # The float64 nearest to int v, big-endian at buf[off:off + 8] (checked by _simple_len).
    sign, exp, frac = _f64_of_int(v)
    buf[off] = (sign << 7) | (exp >> 4)
    buf[off + 1] = ((exp & 0x0F) << 4) | (frac >> 48)
    for i in range(2, 8):
        buf[off + i] = (frac >> (8 * (7 - i))) & 0xFF


def _items(t, v):
    # Elements of an ARRAY/STRUCTURE value as a list of (tag, value) pairs.
    try:
        items = list(v)
    except TypeError:
        raise _bad(t, "%s needs a sequence of (tag, value)" % tag_name(t)) from None
    for item in items:
        if not isinstance(item, (tuple, list)) or len(item) != 2:
            raise _bad(t, "element is not a (tag, value) pair")
    return items


def _len(t, v, depth):
    _check_tag(t)
    if t == ARRAY or t == STRUCTURE:
        if depth <= 0:
            raise AxdrError("nesting too deep", "depth")
        items = _items(t, v)
        n = 1 + length_size(len(items))
        for st, sv in items:
            n += _len(st, sv, depth - 1)
        return n
    if t == COMPACT_ARRAY:
        from optoread.dlms.axdr import compact as axdr_compact

        return axdr_compact.encoded_len(v, depth, _simple_len)
    return 1 + _simple_len(t, v)


def _enc(buf, off, t, v, depth):
    # Values were checked by _len before the first octet is written.
    need_out(buf, off, 1)
    buf[off] = t
    off += 1
    if t == ARRAY or t == STRUCTURE:
        items = list(v)
        off = encode_length(buf, off, len(items))
        for st, sv in items:
            off = _enc(buf, off, st, sv, depth - 1)
        return off
    if t == COMPACT_ARRAY:
        from optoread.dlms.axdr import compact as axdr_compact

        return axdr_compact.write(buf, off, v, _simple_len, _write_simple)
    return _write_simple(buf, off, t, v)


def encode(buf, off, tag, value, max_depth=8):
    """Write one Data element (``tag`` + contents) into ``buf`` at ``off``; returns the next offset.

    ARRAY/STRUCTURE take a sequence of ``(tag, value)`` pairs; COMPACT_ARRAY takes
    ``(type_description, rows)`` (:mod:`optoread.dlms.axdr.compact`); DATE_TIME/DATE/TIME take
    the class or raw octets; OCTET_STRING takes bytes-like or a DateTime/Date/Time (written as
    its octets). The whole value is checked first; AxdrError (nothing written) if a value does
    not fit its type or the element does not fit ``buf`` from ``off``.
    """
    n = _len(tag, value, max_depth)
    need_out(buf, off, n)
    end = _enc(buf, off, tag, value, max_depth)
    if end != off + n:  # a value changed under us (e.g. a mutable sequence); never expected
        raise AxdrError("encoded size differs from the computed size", "encode", off)
    return end


def encoded_len(tag, value, max_depth=8):
    """Number of octets :func:`encode` writes for ``(tag, value)`` (same checks, no output)."""
    return _len(tag, value, max_depth)


def encode_to_bytes(tag, value, max_depth=8):
    """Convenience (allocates): the encoding of one element as ``bytes``."""
    buf = bytearray(_len(tag, value, max_depth))
    _enc(buf, 0, tag, value, max_depth)
    return bytes(buf)
