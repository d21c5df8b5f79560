"""What every A-XDR module builds on (IEC 62056-6-2, Blue Book 4.1.5 and 4.1.6.1): the Data
tags' contents sizes and struct formats, their names, the length octets, the bounds checks,
and the fixed-octet base of the COSEM date/time values.

The decoder, the encoder, compact arrays and the rare types all import this module and it
imports none of them: that is what keeps the package free of cycles. It is loaded with the
decoder (every reading), so it holds only what two of them share; the Data tags themselves
are ``_private`` consts in each module that switches on them (compiled away), public in
:mod:`optoread.dlms.axdr.encode` for callers that build values.

Input is checked against ``end`` before use: data that ends too early raises
:class:`AxdrTruncated` (a streaming caller waits for more), anything malformed AxdrError.
"""

from optoread.compat import const
from optoread.errors import AxdrError

# The Data tags this module's tables are made of
_NULL = const(0)
_ARRAY = const(1)
_STRUCTURE = const(2)
_BOOLEAN = const(3)
_BIT_STRING = const(4)
_DOUBLE_LONG = const(5)
_DOUBLE_LONG_UNSIGNED = const(6)
_OCTET_STRING = const(9)
_VISIBLE_STRING = const(10)
_UTF8_STRING = const(12)
_BCD = const(13)
_INTEGER = const(15)
_LONG = const(16)
_UNSIGNED = const(17)
_LONG_UNSIGNED = const(18)
_COMPACT_ARRAY = const(19)
_LONG64 = const(20)
_LONG64_UNSIGNED = const(21)
_ENUM = const(22)
_FLOAT32 = const(23)
_FLOAT64 = const(24)
_DATE_TIME = const(25)
_DATE = const(26)
_TIME = const(27)
_DONT_CARE = const(255)

# The Blue Book names of the Data tags (error messages), one string indexed by tag, "-" where
# no tag is: a table of them would put ~25 short interned names and a dict on the heap.
_TAG_NAMES = ("null-data array structure boolean bit-string double-long double-long-unsigned - - "
              "octet-string visible-string - utf8-string bcd - integer long unsigned long-unsigned "
              "compact-array long64 long64-unsigned enum float32 float64 date-time date time dont-care")


def tag_name(t):
    """The name of Data tag ``t`` ("octet-string", ...); None if ``t`` is no Data tag."""
    if not isinstance(t, int):
        return None
    names = _TAG_NAMES.split()
    if t == _DONT_CARE:
        t = len(names) - 1
    return names[t] if 0 <= t < len(names) and names[t] != "-" else None


# ---------------------------------------------------------------- sizes and formats

_VARIABLE = const(0xFE)  # SIZES marker: length-prefixed contents or a container
_NOT_A_TAG = const(0xFF)  # SIZES marker: not a Data tag

# Contents size per tag (one byte each, indexed by tag) so the hot path is one lookup: the
# octets of a fixed-size tag, else _VARIABLE or _NOT_A_TAG.
SIZES = bytearray(b"\xff" * 256)
for _t, _n in (
    (_NULL, 0), (_ARRAY, _VARIABLE), (_STRUCTURE, _VARIABLE), (_BOOLEAN, 1), (_BIT_STRING, _VARIABLE),
    (_DOUBLE_LONG, 4), (_DOUBLE_LONG_UNSIGNED, 4), (_OCTET_STRING, _VARIABLE), (_VISIBLE_STRING, _VARIABLE),
    (_UTF8_STRING, _VARIABLE), (_BCD, 1), (_INTEGER, 1), (_LONG, 2), (_UNSIGNED, 1), (_LONG_UNSIGNED, 2),
    (_COMPACT_ARRAY, _VARIABLE), (_LONG64, 8), (_LONG64_UNSIGNED, 8), (_ENUM, 1), (_FLOAT32, 4),
    (_FLOAT64, 8), (_DATE_TIME, 12), (_DATE, 5), (_TIME, 4), (_DONT_CARE, 0),
):
    SIZES[_t] = _n
SIZES = bytes(SIZES)
del _t, _n

# struct formats of the fixed-size numbers
FORMATS = {
    _DOUBLE_LONG: ">i", _DOUBLE_LONG_UNSIGNED: ">I", _INTEGER: ">b", _LONG: ">h", _UNSIGNED: ">B",
    _LONG_UNSIGNED: ">H", _LONG64: ">q", _LONG64_UNSIGNED: ">Q", _ENUM: ">B", _FLOAT32: ">f",
    _FLOAT64: ">d",
}


# ---------------------------------------------------------------- bounds


class AxdrTruncated(AxdrError):
    """The data ended inside an element: more bytes may complete it (streaming callers wait)."""


def need_in(buf, off, end, n, field):
    """AxdrTruncated unless ``n`` octets are present at ``off`` (before ``end``).

    ``field``: a name, or a Data tag (named only when the data is short: no lookup per value).
    """
    if off + n > end:
        if not isinstance(field, str):
            field = tag_name(field) or "tag"
        raise AxdrTruncated("data ends inside " + field, field, off)


def need_out(buf, off, n):
    """AxdrError unless ``n`` octets fit ``buf`` from ``off``."""
    if off < 0 or off + n > len(buf):
        raise AxdrError("output buffer too small", "buffer", off)


# ---------------------------------------------------------------- lengths


def raw_length(buf, off, end):
    """The length octets at ``off``, not judged against the octets present (a bit-string's
    length counts bits): ``(n, next_off)``."""
    if off >= end:
        raise AxdrTruncated("data ends before a length", "length", off)
    b = buf[off]
    if b < 0x80:
        return b, off + 1
    k = b & 0x7F
    if k == 0 or k > 4:
        raise AxdrError("unsupported length form 0x%02X" % b, "length", off)
    if off + 1 + k > end:
        raise AxdrTruncated("data ends inside a length", "length", off)
    n = 0
    for i in range(off + 1, off + 1 + k):
        n = (n << 8) | buf[i]
    return n, off + 1 + k


def decode_length(buf, off, end):
    """Read an A-XDR length (``<0x80`` one octet; ``0x81..0x84`` + 1..4 octets big-endian).

    Returns ``(n, next_off)``. Raises AxdrTruncated if ``n`` is larger than the bytes present
    after the length (``end - next_off``), AxdrError for 0x80 or 0x85.. forms.
    """
    if end is None or end > len(buf):
        end = len(buf)
    n, off2 = raw_length(buf, off, end)
    if n > end - off2:
        raise AxdrTruncated("length %d exceeds the %d bytes present" % (n, end - off2), "length", off)
    return n, off2


def length_size(n):
    """Octets :func:`encode_length` uses for ``n``."""
    if n < 0x80:
        return 1
    if n < 0x100:
        return 2
    if n < 0x10000:
        return 3
    if n < 0x1000000:
        return 4
    return 5


def encode_length(buf, off, n):
    """Write length ``n`` in the shortest form; returns the next offset."""
    if not isinstance(n, int) or n < 0 or n > 0xFFFFFFFF:
        raise AxdrError("length out of range", "length", off)
    k = length_size(n)
    need_out(buf, off, k)
    if k == 1:
        buf[off] = n
        return off + 1
    buf[off] = 0x7F + k
    for i in range(k - 1, 0, -1):
        buf[off + i] = n & 0xFF
        n >>= 8
    return off + k


# ---------------------------------------------------------------- date/time octets (4.1.6.1)
# DateTime (the decoder: clocks and profile timestamps) and Date, Time (the rare types).

NOT_SPECIFIED = const(0xFF)  # byte fields of date/time
YEAR_NOT_SPECIFIED = const(0xFFFF)


def two_digits(v):
    """A date/time byte field as two digits, ``**`` when not specified."""
    return "**" if v == 0xFF else "%02d" % v


def check_byte(v, field):
    """AxdrError unless date/time field ``v`` fits one octet."""
    if not isinstance(v, int) or v < 0 or v > 0xFF:
        raise AxdrError("value does not fit one octet", field)


def check_year(v):
    """AxdrError unless year ``v`` fits 16 bits."""
    if not isinstance(v, int) or v < 0 or v > 0xFFFF:
        raise AxdrError("year does not fit 16 bits", "year")


class FixedOctets:
    """Shared behaviour of the fixed-size COSEM date/time values: encoding and equality by
    their fields (``SIZE``, ``write`` and ``_key`` come from the subclass)."""

    SIZE = 0

    def to_bytes(self):
        """The encoding (``SIZE`` octets)."""
        b = bytearray(self.SIZE)
        self.write(b, 0)  # pyright: ignore[reportAttributeAccessIssue]
        return bytes(b)

    def _key(self):
        return ()

    def __eq__(self, other):
        return type(other) is type(self) and self._key() == other._key()

    def __ne__(self, other):
        return not self.__eq__(other)

    def __hash__(self):
        return hash(self._key())
