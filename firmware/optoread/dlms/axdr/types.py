"""The Data types meters rarely send (IEC 62056-6-2): :class:`BitString`, :class:`Date`,
:class:`Time`, the strict UTF-8 check of utf8-strings and the float64 rule of single-precision
boards (:func:`float64`).

One optional feature, loaded by the decoder at the first of them ("loaded on first use" in
docs/architecture.md) and by the encoder: a reading of ordinary registers and profiles never holds
it (RAM on a board). :class:`~optoread.dlms.axdr.decode.DateTime`, which clocks and profile
timestamps use, stays with the decoder; both build on
:class:`~optoread.dlms.axdr.data.FixedOctets`.
"""

from struct import pack, pack_into, unpack_from

from optoread import compat
from optoread.dlms.axdr.data import (
    NOT_SPECIFIED,
    FixedOctets,
    check_byte,
    check_year,
    need_in,
    need_out,
    two_digits,
)
from optoread.errors import AxdrError


class BitString:
    """A bit-string: ``data`` bytes (first bit = MSB of data[0]) and ``nbits`` bits used."""

    def __init__(self, data, nbits=None):
        data = bytes(data)
        if nbits is None:
            nbits = 8 * len(data)
        if nbits < 0 or (nbits + 7) // 8 != len(data):
            raise AxdrError("bit-string data does not match its bit count", "bit-string")
        self.data = data
        self.nbits = nbits

    @classmethod
    def from_str(cls, bits):
        """BitString from a string of '0'/'1' characters (first character = first bit)."""
        data = bytearray((len(bits) + 7) // 8)
        for i in range(len(bits)):
            c = bits[i]
            if c == "1":
                data[i >> 3] |= 0x80 >> (i & 7)
            elif c != "0":
                raise AxdrError("not a bit string", "bit-string", i)
        return cls(data, len(bits))

    def bit(self, i):
        """Bit ``i`` (0 = first) as bool."""
        if i < 0 or i >= self.nbits:
            raise AxdrError("bit index out of range", "bit-string", i)
        return bool(self.data[i >> 3] & (0x80 >> (i & 7)))

    def __len__(self):
        return self.nbits

    def __str__(self):
        return "".join("1" if self.bit(i) else "0" for i in range(self.nbits))

    def __repr__(self):
        return "BitString('%s')" % self

    def __eq__(self, other):
        return isinstance(other, BitString) and self.nbits == other.nbits and self.data == other.data

    def __ne__(self, other):
        return not self.__eq__(other)

    def __hash__(self):
        return hash((self.data, self.nbits))


class Date(FixedOctets):
    """COSEM date (5 octets): year (0xFFFF = not specified), month, day, weekday (0xFF = not specified).

    Month 0xFD/0xFE mean DST end/begin and day 0xFD/0xFE second-last/last day of month; kept raw.
    """

    SIZE = 5

    def __init__(self, year, month, day, weekday=NOT_SPECIFIED):
        self.year = year
        self.month = month
        self.day = day
        self.weekday = weekday

    @classmethod
    def from_bytes(cls, b, off=0):
        """Read 5 octets at ``off`` (ranges are not judged: any octets are a Date)."""
        need_in(b, off, len(b), 5, "date")
        return cls((b[off] << 8) | b[off + 1], b[off + 2], b[off + 3], b[off + 4])

    def write(self, buf, off):
        """Write the 5 octets at ``off``; returns the next offset."""
        check_year(self.year)
        check_byte(self.month, "month")
        check_byte(self.day, "day")
        check_byte(self.weekday, "weekday")
        need_out(buf, off, 5)
        pack_into(">HBBB", buf, off, self.year, self.month, self.day, self.weekday)
        return off + 5

    def as_tuple(self):
        """``(year, month, day)`` raw (0xFFFF / 0xFF where not specified)."""
        return (self.year, self.month, self.day)

    def iso(self):
        """``YYYY-MM-DD``; unspecified fields as ``*``."""
        y = "****" if self.year == 0xFFFF else "%04d" % self.year
        return "%s-%s-%s" % (y, two_digits(self.month), two_digits(self.day))

    def _key(self):
        return (self.year, self.month, self.day, self.weekday)

    def __repr__(self):
        return "Date(%d, %d, %d, weekday=%d)" % (self.year, self.month, self.day, self.weekday)


class Time(FixedOctets):
    """COSEM time (4 octets): hour, minute, second, hundredths (0xFF = not specified)."""

    SIZE = 4

    def __init__(self, hour, minute, second, hundredths=NOT_SPECIFIED):
        self.hour = hour
        self.minute = minute
        self.second = second
        self.hundredths = hundredths

    @classmethod
    def from_bytes(cls, b, off=0):
        """Read 4 octets at ``off``."""
        need_in(b, off, len(b), 4, "time")
        return cls(b[off], b[off + 1], b[off + 2], b[off + 3])

    def write(self, buf, off):
        """Write the 4 octets at ``off``; returns the next offset."""
        check_byte(self.hour, "hour")
        check_byte(self.minute, "minute")
        check_byte(self.second, "second")
        check_byte(self.hundredths, "hundredths")
        need_out(buf, off, 4)
        pack_into(">BBBB", buf, off, self.hour, self.minute, self.second, self.hundredths)
        return off + 4

    def as_tuple(self):
        """``(hour, minute, second)`` raw (0xFF where not specified)."""
        return (self.hour, self.minute, self.second)

    def iso(self):
        """``hh:mm:ss`` (``.hh`` added when hundredths are given); unspecified fields as ``*``."""
        s = "%s:%s:%s" % (two_digits(self.hour), two_digits(self.minute), two_digits(self.second))
        if self.hundredths != 0xFF:
            s += ".%02d" % self.hundredths
        return s

    def _key(self):
        return (self.hour, self.minute, self.second, self.hundredths)

    def __repr__(self):
        return "Time(%d, %d, %d, %d)" % (self.hour, self.minute, self.second, self.hundredths)


def check_utf8(buf, off, end):
    """Raise AxdrError unless ``buf[off:end]`` is strict UTF-8 (no overlongs, no surrogates,
    <= U+10FFFF), so CPython and MicroPython agree on what a utf8-string may hold."""
    i = off
    while i < end:
        c = buf[i]
        if c < 0x80:
            i += 1
            continue
        if 0xC2 <= c <= 0xDF:
            n, lo, hi = 1, 0x80, 0xBF
        elif 0xE0 <= c <= 0xEF:
            n = 2
            lo = 0xA0 if c == 0xE0 else 0x80
            hi = 0x9F if c == 0xED else 0xBF
        elif 0xF0 <= c <= 0xF4:
            n = 3
            lo = 0x90 if c == 0xF0 else 0x80
            hi = 0x8F if c == 0xF4 else 0xBF
        else:
            raise AxdrError("invalid UTF-8", "utf8-string", i)
        if i + n >= end:
            raise AxdrError("truncated UTF-8 sequence", "utf8-string", i)
        b = buf[i + 1]
        if b < lo or b > hi:
            raise AxdrError("invalid UTF-8", "utf8-string", i)
        for j in range(i + 2, i + 1 + n):
            if buf[j] & 0xC0 != 0x80:
                raise AxdrError("invalid UTF-8", "utf8-string", i)
        i += 1 + n


def float64(buf, off):
    """The A-XDR float64 at ``buf[off:off + 8]`` as this board can hold it.

    Where ``float`` is double precision (CPython, the unix ports) it is that float. Where it is
    single precision (the rp2 and esp32 builds, ``compat.SINGLE_FLOAT``) no value silently
    becomes inf or loses an integer digit:

    - a value a float32 holds exactly is that ``float`` (230.25, 1e10, 0.5, inf, nan);
    - else an integer value is the exact ``int`` (a counter such as 123456789.0, and every
      finite value beyond float32's range, since a float64 from 2**52 up is an integer);
    - else (a fraction needing more than float32's 24 bits, e.g. 0.1) the nearest float32:
      about 7 significant digits, all that the board's float holds.
    """
    v = unpack_from(">d", buf, off)[0]
    if not compat.SINGLE_FLOAT:
        return v
    b0 = buf[off]
    e = ((b0 & 0x7F) << 4) | (buf[off + 1] >> 4)
    m = buf[off + 1] & 0x0F
    for i in range(off + 2, off + 8):
        m = (m << 8) | buf[i]
    if e == 0x7FF:
        # made here: the rp2 build's unpack turns a float64 nan into inf
        if m:
            return float("nan")
        return float("-inf") if b0 & 0x80 else float("inf")
    if e:
        m |= 1 << 52
    else:
        e = 1  # subnormal
    if not m:  # +-0.0
        return v
    e -= 1075  # the value is m * 2**e
    while not m & 1:
        m >>= 1
        e += 1
    # m odd now: a float32 is m * 2**e with m < 2**24, e >= -149, below 2**128
    if m < 1 << 24 and e >= -149 and (e <= 104 or (e < 128 and m < 1 << (128 - e))):
        return v
    if e >= 0:
        return -(m << e) if b0 & 0x80 else m << e
    # A fraction: on the board v already is the nearest float32; on a host that only pretends
    # (tests) round it the same way.
    return unpack_from(">f", pack(">f", v))[0]
