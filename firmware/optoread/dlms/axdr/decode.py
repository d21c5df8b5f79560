"""The A-XDR decoder (IEC 62056-6-2): Data elements to Python values, checked as they are read.

What a reading runs, so it is always loaded: :func:`decode`, :func:`skip`, :class:`ArrayStream`
(a huge array arriving in blocks, one element at a time), :class:`DateTime` with the calendar
and epoch helpers (clocks and profile timestamps). The rest loads on first use ("loaded on first use" in
docs/architecture.md): :mod:`.types` at the first bit-string, date, time, utf8-string or float64,
:mod:`.compact` at the first compact-array; the encoder is :mod:`.encode`.

One element is ``tag`` (1 byte) + contents. The Python values of each Data type, as
:func:`decode` returns them and :func:`optoread.dlms.axdr.encode.encode` takes them:

=====================  =====================================================
null-data              ``None``
boolean                ``bool``
integer types, enum    ``int``
float32 / float64      ``float`` (float64 on rp2/esp32: :func:`.types.float64`)
octet-string           ``bytes``
visible-string         ``str`` (one char per byte, 0..255; never fails)
utf8-string            ``str`` (invalid UTF-8 -> AxdrError)
bcd                    ``int`` 0..99 (one octet, two decimal digits)
bit-string             :class:`.types.BitString`
array                  ``list``
structure              ``tuple``
compact-array          ``list`` of row values (tuples for a structure type; :mod:`.compact`)
date-time / date/time  :class:`DateTime` / :class:`.types.Date` / :class:`.types.Time`
dont-care              :data:`DONT_CARE_VALUE` (``DONT_CARE`` is the tag 255)
=====================  =====================================================

Decoders take ``buf`` (bytes, bytearray or memoryview), ``off`` and ``end`` and
check every length against the bytes present before using it. Data that ends too
early raises :class:`~.data.AxdrTruncated` (a subclass of AxdrError) so a streaming
caller can tell "wait for more" from "malformed"; :class:`ArrayStream` relies on it.
Nesting is bounded by ``max_depth`` (containers: array, structure, compact-array).
"""

from struct import pack_into, unpack_from

from optoread.compat import buffer, const
from optoread.dlms.axdr.data import (
    FORMATS,
    NOT_SPECIFIED,
    SIZES,
    AxdrTruncated,
    FixedOctets,
    check_byte,
    check_year,
    decode_length,
    need_in,
    need_out,
    raw_length,
    two_digits,
)
from optoread.errors import AxdrError

_VARIABLE = const(0xFE)  # as in data (private: compiled away)

# The Data tags (Blue Book 4.1.5): private here (compiled away, no interned names);
# optoread.dlms.axdr.encode has them public for callers that build values.
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

# Deviation value meaning "not specified" (wire 0x8000). -0x8000 is accepted on input too.
DEVIATION_UNSPECIFIED = const(0x8000)
# Clock status bits (Blue Book 4.1.6.1).
_STATUS_INVALID = const(0x01)
_STATUS_DOUBTFUL = const(0x02)
_STATUS_DIFFERENT_BASE = const(0x04)
_STATUS_INVALID_STATUS = const(0x08)
_STATUS_DST_ACTIVE = const(0x80)


class _DontCare:
    """Decoded value of the ``dont-care`` element (tag 255)."""

    def __repr__(self):
        return "DONT_CARE_VALUE"


DONT_CARE_VALUE = _DontCare()


# ---------------------------------------------------------------- calendar (no datetime module)


def _days_from_civil(y, m, d):
    # Days since 1970-01-01 of a proleptic Gregorian date; eras of 400 years (146097 days).
    if m <= 2:
        y -= 1
    era = y // 400
    yoe = y - era * 400
    mp = m - 3 if m > 2 else m + 9
    doy = (153 * mp + 2) // 5 + d - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


def _civil_from_days(z):
    z += 719468
    era = z // 146097
    doe = z - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    y = yoe + era * 400
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    d = doy - (153 * mp + 2) // 5 + 1
    m = mp + 3 if mp < 10 else mp - 9
    if m <= 2:
        y += 1
    return y, m, d


def days_in_month(year, month):
    """Number of days of ``month`` (1..12) in ``year`` (Gregorian)."""
    if month == 2:
        return 29 if (year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)) else 28
    return 30 if month in (4, 6, 9, 11) else 31


def _valid_civil(y, m, d, h, mi, s):
    return (
        1 <= m <= 12 and 1 <= d <= days_in_month(y, m) and 0 <= h <= 23 and 0 <= mi <= 59 and 0 <= s <= 59
    )


def to_epoch(y, m, d, h=0, mi=0, s=0):
    """Seconds since 1970-01-01 00:00:00 of the given date and time (pure integer arithmetic).

    Fields are checked (month 1..12, day within the month, 0..23, 0..59, 0..59); AxdrError otherwise.
    """
    if not _valid_civil(y, m, d, h, mi, s):
        raise AxdrError("invalid calendar date/time", "date-time")
    return _days_from_civil(y, m, d) * 86400 + h * 3600 + mi * 60 + s


def from_epoch(secs):
    """``(year, month, day, hour, minute, second, weekday)`` of epoch seconds; weekday 1=Monday..7=Sunday."""
    days = secs // 86400
    rem = secs - days * 86400
    y, m, d = _civil_from_days(days)
    # 1970-01-01 was a Thursday (DLMS weekday 4).
    return y, m, d, rem // 3600, (rem // 60) % 60, rem % 60, (days + 3) % 7 + 1


def weekday(y, m, d):
    """DLMS day of week (1=Monday..7=Sunday) of a date."""
    return (_days_from_civil(y, m, d) + 3) % 7 + 1


class DateTime(FixedOctets):
    """COSEM date-time (12 octets): local date and time, ``deviation`` and clock ``status``.

    ``deviation`` is minutes with the Blue Book sign: UTC = local + deviation (CET: -60);
    :data:`DEVIATION_UNSPECIFIED` (0x8000) when not given. Not-specified byte fields are 0xFF,
    year 0xFFFF. Fields are kept raw (wildcards, DST markers, even nonsense from a meter);
    :meth:`utc_tuple` and :meth:`epoch` answer None unless the value is a real instant.
    """

    SIZE = 12

    def __init__(
        self, year, month, day, hour, minute, second, hundredths=NOT_SPECIFIED,
        deviation=DEVIATION_UNSPECIFIED, status=0, weekday=NOT_SPECIFIED,
    ):
        self.year = year
        self.month = month
        self.day = day
        self.hour = hour
        self.minute = minute
        self.second = second
        self.hundredths = hundredths
        if deviation == -0x8000:
            deviation = DEVIATION_UNSPECIFIED
        self.deviation = deviation
        self.status = status
        self.weekday = weekday

    @classmethod
    def from_bytes(cls, b, off=0):
        """Read 12 octets at ``off`` (ranges are not judged: any 12 octets are a DateTime)."""
        need_in(b, off, len(b), 12, "date-time")
        year, month, day, wd, h, mi, s, hs, dev, st = unpack_from(">HBBBBBBBHB", b, off)
        if dev != 0x8000 and dev & 0x8000:
            dev -= 0x10000
        return cls(year, month, day, h, mi, s, hs, dev, st, wd)

    @classmethod
    def from_epoch(cls, secs, deviation=DEVIATION_UNSPECIFIED, status=0, hundredths=0):
        """DateTime for UTC epoch ``secs`` expressed as local time for ``deviation``
        (local = UTC - deviation; with deviation unspecified the fields are ``secs`` as is)."""
        local = secs if deviation in (DEVIATION_UNSPECIFIED, -0x8000) else secs - deviation * 60
        y, m, d, h, mi, s, wd = from_epoch(local)
        return cls(y, m, d, h, mi, s, hundredths, deviation, status, wd)

    def write(self, buf, off):
        """Write the 12 octets at ``off``; returns the next offset. AxdrError if a field does not fit."""
        check_year(self.year)
        for v, name in (
            (self.month, "month"), (self.day, "day"), (self.weekday, "weekday"), (self.hour, "hour"),
            (self.minute, "minute"), (self.second, "second"), (self.hundredths, "hundredths"),
            (self.status, "status"),
        ):
            check_byte(v, name)
        dev = self.deviation
        if dev == DEVIATION_UNSPECIFIED or dev == -0x8000:
            dev = 0x8000
        elif not isinstance(dev, int) or dev < -0x7FFF or dev > 0x7FFF:
            raise AxdrError("deviation does not fit int16", "deviation")
        need_out(buf, off, 12)
        pack_into(
            ">HBBBBBBBHB", buf, off, self.year, self.month, self.day, self.weekday, self.hour,
            self.minute, self.second, self.hundredths, dev & 0xFFFF, self.status,
        )
        return off + 12

    def as_tuple(self):
        """``(year, month, day, hour, minute, second)`` of the local time, raw (wildcards kept)."""
        return (self.year, self.month, self.day, self.hour, self.minute, self.second)

    def local_epoch(self):
        """Seconds since 1970 of the local fields as if they were UTC, or None if not a valid instant."""
        if not _valid_civil(self.year, self.month, self.day, self.hour, self.minute, self.second):
            return None
        return to_epoch(self.year, self.month, self.day, self.hour, self.minute, self.second)

    def epoch(self):
        """UTC seconds since 1970 (UTC = local + deviation), or None if the deviation or a field is
        not specified or not a valid calendar value."""
        if self.deviation == DEVIATION_UNSPECIFIED:
            return None
        t = self.local_epoch()
        return None if t is None else t + self.deviation * 60

    def utc_tuple(self):
        """``(year, month, day, hour, minute, second)`` in UTC, or None (see :meth:`epoch`)."""
        t = self.epoch()
        if t is None:
            return None
        return from_epoch(t)[:6]

    def iso(self):
        """ISO 8601 text of the local time: ``2022-01-24T18:58:50`` plus ``.hh`` when hundredths are
        given and ``+01:00`` when the deviation is (offset = -deviation); wildcards as ``*``."""
        y = "****" if self.year == 0xFFFF else "%04d" % self.year
        s = "%s-%s-%sT%s:%s:%s" % (
            y, two_digits(self.month), two_digits(self.day),
            two_digits(self.hour), two_digits(self.minute), two_digits(self.second),
        )
        if self.hundredths != 0xFF:
            s += ".%02d" % self.hundredths
        if self.deviation != DEVIATION_UNSPECIFIED:
            off = -self.deviation
            sign = "+" if off >= 0 else "-"
            off = abs(off)
            s += "%s%02d:%02d" % (sign, off // 60, off % 60)
        return s

    def _key(self):
        return (
            self.year, self.month, self.day, self.hour, self.minute, self.second, self.hundredths,
            self.deviation, self.status, self.weekday,
        )

    def __repr__(self):
        return "DateTime(%d, %d, %d, %d, %d, %d, hundredths=%d, deviation=%d, status=%d, weekday=%d)" % (
            self.year, self.month, self.day, self.hour, self.minute, self.second, self.hundredths,
            self.deviation, self.status, self.weekday,
        )


# ---------------------------------------------------------------- content checks shared by skip/decode


def _check_bcd(b, off):
    if (b >> 4) > 9 or (b & 0x0F) > 9:
        raise AxdrError("bcd octet 0x%02X is not two decimal digits" % b, "bcd", off)


def _visible(buf, off, end):
    ascii_only = True
    for i in range(off, end):
        if buf[i] >= 0x80:
            ascii_only = False
            break
    if ascii_only:
        return str(bytes(buf[off:end]), "utf-8")
    # MicroPython ignores codec names, so map octets to code points one by one (latin-1).
    return "".join([chr(buf[i]) for i in range(off, end)])


# ---------------------------------------------------------------- skip


def _skip_simple(t, buf, off, end):
    # Contents of a non-container tag at off (tag already consumed); returns next offset.
    # Compact-array cells are checked with it too (handed to compact.skip).
    size = SIZES[t]
    if size < _VARIABLE:
        need_in(buf, off, end, size, t)
        if t == _BCD:
            _check_bcd(buf[off], off)
        return off + size
    if t == _BIT_STRING:
        nbits, off2 = raw_length(buf, off, end)
        nbytes = (nbits + 7) >> 3
        need_in(buf, off2, end, nbytes, "bit-string")
        return off2 + nbytes
    if t == _OCTET_STRING or t == _VISIBLE_STRING or t == _UTF8_STRING:
        n, off2 = decode_length(buf, off, end)
        if t == _UTF8_STRING:
            from optoread.dlms.axdr import types as axdr_types  # utf8-strings are rare on meters (RAM)

            axdr_types.check_utf8(buf, off2, off2 + n)
        return off2 + n
    raise AxdrError("unknown tag %d" % t, "tag", off - 1)


def _skip(buf, off, end, depth):
    if off >= end:
        raise AxdrTruncated("data ends before a tag", "tag", off)
    t = buf[off]
    off += 1
    if t == _ARRAY or t == _STRUCTURE:
        if depth <= 0:
            raise AxdrError("nesting too deep", "depth", off - 1)
        n, off = decode_length(buf, off, end)  # every element takes >= 1 octet
        for _ in range(n):
            off = _skip(buf, off, end, depth - 1)
        return off
    if t == _COMPACT_ARRAY:
        from optoread.dlms.axdr import compact as axdr_compact  # loaded by the first compact-array (RAM)

        return axdr_compact.skip(buf, off, end, depth, _skip_simple)
    return _skip_simple(t, buf, off, end)


def skip(buf, off=0, end=None, max_depth=8):
    """Validate one Data element at ``off`` and return the offset after it, building no values.

    Accepts exactly what :func:`decode` accepts (same checks, same errors).
    """
    if end is None or end > len(buf):
        end = len(buf)
    return _skip(buf, off, end, max_depth)


# ---------------------------------------------------------------- decode


def _simple(t, buf, off, end):
    # Value of a non-container tag whose contents start at off; returns (value, next_off).
    # Compact-array cells are read with it too (handed to compact.read).
    size = SIZES[t]
    if size < _VARIABLE:
        need_in(buf, off, end, size, t)
        fmt = FORMATS.get(t)
        if fmt is not None:
            if t != _FLOAT64:
                return unpack_from(fmt, buf, off)[0], off + size
            from optoread.dlms.axdr import (
                types as axdr_types,  # float64: what a single-precision board makes of it
            )

            return axdr_types.float64(buf, off), off + 8
        if t == _NULL:
            return None, off
        if t == _BOOLEAN:
            return buf[off] != 0, off + 1
        if t == _BCD:
            b = buf[off]
            _check_bcd(b, off)
            return (b >> 4) * 10 + (b & 0x0F), off + 1
        if t == _DATE_TIME:
            return DateTime.from_bytes(buf, off), off + 12
        if t == _DATE or t == _TIME:
            from optoread.dlms.axdr import (
                types as axdr_types,  # dates and times alone are rare on meters (RAM)
            )

            return (axdr_types.Date if t == _DATE else axdr_types.Time).from_bytes(buf, off), off + SIZES[t]
        return DONT_CARE_VALUE, off  # DONT_CARE
    if t == _OCTET_STRING:
        n, off = decode_length(buf, off, end)
        return bytes(buf[off:off + n]), off + n
    if t == _VISIBLE_STRING:
        n, off = decode_length(buf, off, end)
        return _visible(buf, off, off + n), off + n
    if t == _UTF8_STRING:
        n, off = decode_length(buf, off, end)
        from optoread.dlms.axdr import types as axdr_types

        axdr_types.check_utf8(buf, off, off + n)
        try:
            return str(bytes(buf[off:off + n]), "utf-8"), off + n
        except UnicodeError:  # not expected after the check; keep the error contract regardless
            raise AxdrError("invalid UTF-8", "utf8-string", off) from None
    if t == _BIT_STRING:
        nbits, off = raw_length(buf, off, end)
        nbytes = (nbits + 7) >> 3
        need_in(buf, off, end, nbytes, "bit-string")
        from optoread.dlms.axdr import types as axdr_types

        return axdr_types.BitString(buf[off:off + nbytes], nbits), off + nbytes
    raise AxdrError("unknown tag %d" % t, "tag", off - 1)


# The list the last flat structure's values were gathered in (_decode): a profile row's tuple
# is made from it, not from a list allocated per row.
_SPARE = [None]  # type: list
_NSPARE = const(16)  # at most this many values: what the list keeps alive is bounded


def _decode(buf, off, end, depth):
    if off >= end:
        raise AxdrTruncated("data ends before a tag", "tag", off)
    t = buf[off]
    off += 1
    if t == _ARRAY or t == _STRUCTURE:
        if depth <= 0:
            raise AxdrError("nesting too deep", "depth", off - 1)
        n = buf[off] if off < end else 0x80
        if n < 0x80 and n < end - off:  # the one-octet length, inline (one per profile row)
            off += 1
        else:
            n, off = decode_length(buf, off, end)  # every element takes >= 1 octet
        # A structure's values are gathered in the spare list when it has the structure's size,
        # then copied into its tuple: a profile row allocates its tuple, not a list as well. The
        # list is taken out while in use (a structure inside gets a list of its own) and put
        # back only after a flat structure (ints and short octet-strings: it keeps that
        # structure's values alive until the next one, so they must be small).
        items = _SPARE[0]
        if t == _STRUCTURE and items is not None and len(items) == n:
            _SPARE[0] = None
        else:
            items = [None] * n  # type: list  # n <= the octets present (checked above)
        depth -= 1
        lim = end - 5
        flat = n <= _NSPARE
        # Profile rows are structures of the values below: decoded here, not by a call to
        # _decode and _simple per value, and without allocating (unpack_from's tuple): rows are
        # most of a reading's CPU time on a board, where every block allocated also costs its
        # share of a collection (gc.threshold). Same values as _simple (on a 32-bit board an int
        # from 2**30 is a long one, allocated as unpack_from's is); anything else, or an element
        # that may end beyond ``end``, takes the general path, which raises the errors.
        for i in range(n):
            if off <= lim:
                e = buf[off]
                if e == _DOUBLE_LONG_UNSIGNED:
                    items[i] = ((buf[off + 1] << 8 | buf[off + 2]) << 8 | buf[off + 3]) << 8 | buf[off + 4]
                    off += 5
                    continue
                if e == _LONG_UNSIGNED:
                    items[i] = buf[off + 1] << 8 | buf[off + 2]
                    off += 3
                    continue
                if e == _OCTET_STRING:
                    k = buf[off + 1]
                    if k < 0x80 and off + 2 + k <= end:
                        off += 2
                        items[i] = bytes(buf[off:off + k])
                        off += k
                        continue
                elif e == _DOUBLE_LONG:
                    k = buf[off + 1]
                    if k & 0x80:
                        k -= 0x100
                    items[i] = ((k << 8 | buf[off + 2]) << 8 | buf[off + 3]) << 8 | buf[off + 4]
                    off += 5
                    continue
                elif e == _LONG:
                    k = buf[off + 1] << 8 | buf[off + 2]
                    items[i] = k - 0x10000 if k & 0x8000 else k
                    off += 3
                    continue
                elif e == _UNSIGNED or e == _ENUM:
                    items[i] = buf[off + 1]
                    off += 2
                    continue
            items[i], off = _decode(buf, off, end, depth)
            flat = False
        if t == _ARRAY:
            return items, off
        v = tuple(items)
        if flat:
            _SPARE[0] = items  # for the next structure of this size (the next profile row)
        return v, off
    if t == _COMPACT_ARRAY:
        from optoread.dlms.axdr import compact as axdr_compact

        return axdr_compact.read(buf, off, end, depth, _simple)
    return _simple(t, buf, off, end)


def decode(buf, off=0, end=None, max_depth=8):
    """Decode ONE Data element at ``off`` (up to ``end``); returns ``(value, next_off)``.

    ``max_depth`` bounds nested containers (array, structure, compact-array). Raises
    AxdrTruncated when the data ends inside the element, AxdrError for anything malformed.
    """
    if end is None or end > len(buf):
        end = len(buf)
    return _decode(buf, off, end, max_depth)


# ---------------------------------------------------------------- streaming


class ArrayStream:
    """Decode a (possibly huge) top-level array arriving in pieces, one element at a time.

    ``feed(chunk, sink)`` calls ``sink(value)`` for every complete element; only the
    incomplete tail is kept, in one bytearray of ``capacity`` octets allocated here
    (AxdrError when one element is larger). The array tag and length are read first
    (``expected`` is the element count after that, None before) unless ``count`` is
    given, for callers that already consumed the header. ``done`` turns true after the
    last element; any byte after it is an AxdrError. ``received`` counts elements given
    to the sink. Elements nest at most ``max_depth - 1`` containers deep.
    """

    def __init__(self, capacity=512, max_depth=8, count=None, buf=None):
        if capacity < 16:
            capacity = 16
        self._buf = buffer(capacity, buf)  # buf: the caller's (session.LinkBuffers), if large enough
        self._mv = memoryview(self._buf)
        self._n = 0
        self._depth = max_depth - 1
        self.expected = count
        self.received = 0
        self.consumed = 0  # bytes accepted so far (header included)
        self.done = count == 0

    def _run(self, buf, off, end, sink, stop):
        # Consume whole units (the header, elements) from buf[off:end], the last one the first
        # that ends after ``stop``; returns the offset of the incomplete rest.
        if self.expected is None and off < end:
            if buf[off] != _ARRAY:
                raise AxdrError("stream does not start with an array", "tag", self.consumed)
            try:
                n, nxt = raw_length(buf, off + 1, end)
            except AxdrTruncated:
                return off
            self.expected = n
            self.done = n == 0
            self.consumed += nxt - off
            off = nxt
        depth = self._depth
        while off < end and off < stop:
            if self.done:
                raise AxdrError("bytes after the end of the array", "array", self.consumed)
            # One pass per element: _decode raises AxdrTruncated for an element that is not all
            # here, which is then decoded again from its start with more bytes (once per feed).
            # Checking each element with _skip first cost a second pass over every row.
            try:
                value, nxt = _decode(buf, off, end, depth)
            except AxdrTruncated:
                return off
            self.received += 1
            if self.received == self.expected:
                self.done = True
            sink(value)  # outside the try: an error of the sink's own is never "wait for more"
            self.consumed += nxt - off
            off = nxt
        return off

    def feed(self, chunk, sink):
        """Consume ``chunk`` (any bytes-like); call ``sink(element)`` for each completed element."""
        src = memoryview(chunk)
        clen = len(src)
        cap = len(self._buf)
        coff = 0
        n = self._n
        if n:
            # Complete the held element with bytes from the chunk and decode it from the buffer;
            # the elements after it are decoded straight from the chunk (no copy, no retry at
            # the end of every buffer's worth).
            if coff == clen:
                return
            take = min(cap - n, clen - coff)
            self._mv[n:n + take] = src[coff:coff + take]
            pos = self._run(self._mv, 0, n + take, sink, n)  # a view: octet-strings slice it
            if not pos:  # still incomplete (a complete element ends beyond the n held octets)
                if n + take == cap:
                    raise AxdrError("element larger than the stream capacity", "capacity", self.consumed)
                self._n = n + take
                return
            coff = pos - n
            self._n = 0
        if coff < clen:
            # Nothing held: decode straight from the chunk, keep only its incomplete tail.
            pos = self._run(src, coff, clen, sink, clen)
            rest = clen - pos
            if rest > cap:
                raise AxdrError("element larger than the stream capacity", "capacity", self.consumed)
            if rest:
                self._mv[0:rest] = src[pos:clen]
                self._n = rest

    def pending(self):
        """Number of octets held of an incomplete element (0 at an element boundary)."""
        return self._n
