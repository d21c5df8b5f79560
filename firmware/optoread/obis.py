"""OBIS codes (IEC 62056-61) in every form: text, 6 bytes, tuple, and a short name.

A code is always held as 6 ``bytes`` A B C D E F. :func:`parse` accepts the
textual forms seen on real meters:

======================  ==============================================
``1.0.1.8.0.255``       DLMS dotted form, A.B.C.D.E.F
``1.0.1.8.0``           dotted A.B.C.D.E (F = 255), e.g. ``0.0.C.1.0``
``1-0:1.8.0*255``       EDIS full form; ``1-0:1.8.0.255`` and
                        ``1-0:1.8.0`` (F = 255) too
``0:1.8.0``             B given, A missing
``1.8.0``               IEC 62056-21 short form C.D.E (A, B missing)
``1.8.0*01``            ``*F`` or ``&F``: historical / billing value
``32.7``                two groups C.D: E = 0 (``32.7`` = 1-0:32.7.0)
``1`` / ``F``           one group C: D = E = 0, except C = 97 (``F``)
                        which is the error register F.F (97.97.0)
======================  ==============================================

Groups C and D may be the letters C = 96, F = 97, L = 98, P = 99 (either
case). Groups are decimal 0..255, leading zeros allowed. Rejected: spaces
(the caller strips), ``A-`` without ``B:``, more than six groups, F given
twice (``1.8.0.1*2``), letters in A, B, E or F.

A missing A (``default_a=None``) becomes 0 for C = 96..99 (abstract service,
error, list and profile objects: ``C.1.0`` = 0-0:96.1.0) and 1 otherwise.
That includes C = 0: in an IEC 62056-21 readout ``0.9.1`` is the meter's
local time 1-0:0.9.1 (IEC 62056-61 lists 0.9.1/0.9.2, 0.1.0, 0.2.0 ... as
electricity general-purpose objects, A = 1, and meters that write the full
form say so: Iskra MT174 sends ``1-0:0.9.1*255``). Pass ``default_a`` when
the medium is known (a heat meter readout: ``default_a=6``).

Codes in a readout of another medium parse by the same rules (a heat
meter's ``6.8`` becomes 1-0:6.8.0 unless ``default_a=6`` is given).

Only :class:`~optoread.errors.ObisError` leaves this module for bad input.
"""

from optoread.compat import const
from optoread.errors import ObisError

# Longest text accepted: six 3-digit groups and separators are 23 characters;
# the slack allows leading zeros and keeps hostile input cheap.
_MAX_TEXT = const(40)

# Separator codes (3 bits each in the packed separator word).
_S_DOT = const(1)
_S_DASH = const(2)
_S_COLON = const(3)
_S_STAR = const(4)
_S_AMP = const(5)

_OVER = const(256)  # a group value that did not fit in a byte
_FIELDS = "ABCDEF"
_BYTES_LIKE = (bytes, bytearray, memoryview)  # built once: a tuple in isinstance() would allocate per call
_LETTERS = "CFLP"  # values 96..99 in groups C and D


def _check_bounds(n, start, end):
    if start < 0 or end > n or start > end:
        raise ObisError("bad start/end %d..%d for %d characters" % (start, end, n), "text", start)
    if end - start > _MAX_TEXT:
        raise ObisError("text too long for an OBIS code", "text", start)


def _sep_code(c):
    if c == 0x2E:  # .
        return _S_DOT
    if c == 0x2D:  # -
        return _S_DASH
    if c == 0x3A:  # :
        return _S_COLON
    if c == 0x2A:  # *
        return _S_STAR
    if c == 0x26:  # &
        return _S_AMP
    return 0


def _letter_value(c):
    c |= 0x20  # fold to lower case
    if c == 0x63:  # c
        return 96
    if c == 0x66:  # f
        return 97
    if c == 0x6C:  # l
        return 98
    if c == 0x70:  # p
        return 99
    return 0


def parse(text, default_a=None, default_b=0, start=0, end=None):
    """Parse a textual OBIS code (any form in the module docstring) into 6 bytes A..F.

    ``text`` is a ``str`` or bytes-like; ``start``/``end`` select a part of it
    without slicing (offsets in errors are then offsets into ``text``).
    Missing groups: A from ``default_a`` (None: 0 for C = 96..99, else 1),
    B = ``default_b``, D = E = 0, F = 255. Raises ObisError, naming the group.
    """
    base = 0
    if isinstance(text, str):
        if end is None:
            end = len(text)
        _check_bounds(len(text), start, end)
        try:
            raw = text[start:end].encode()
        except UnicodeError:  # CPython: lone surrogates
            raise ObisError("text is not ASCII", "text", start) from None
        base = start
        start = 0
        end = len(raw)
    elif isinstance(text, _BYTES_LIKE):
        raw = text
        if end is None:
            end = len(raw)
        _check_bounds(len(raw), start, end)
    else:
        raise ObisError("OBIS text must be str or bytes", "text")

    # Error offsets: base + index into raw (base = 0 unless a str slice was encoded).
    # Pass 1: split into up to six groups; g[j] = value of group j (capped at
    # 255, overflow flagged in ``over``), letter groups flagged in ``letters``.
    g = bytearray(6)
    n = 0
    seps = 0  # separator after group j in bits 3j..3j+2
    letters = 0
    over = 0
    i = start
    while True:
        if i >= end:
            raise ObisError("empty OBIS code" if n == 0 else "group missing after separator", "text",
                            base + i)
        c = raw[i]
        if 0x30 <= c <= 0x39:
            v = 0
            while i < end:
                c = raw[i]
                if c < 0x30 or c > 0x39:
                    break
                v = v * 10 + c - 0x30
                if v > 255:
                    v = _OVER  # stays small however many digits follow
                i += 1
            if v > 255:
                over |= 1 << n
                v = 255
        else:
            v = _letter_value(c)
            if not v:
                raise ObisError("unexpected character 0x%02X" % c, "text", base + i)
            letters |= 1 << n
            i += 1
        g[n] = v
        n += 1
        if i >= end:
            break
        k = _sep_code(raw[i])
        if not k:
            raise ObisError("unexpected character 0x%02X" % raw[i], "text", base + i)
        if n == 6:
            raise ObisError("more than six groups", "text", base + i)
        seps |= k << (3 * (n - 1))
        i += 1

    # Pass 2: which group is which. Prefix "A-B:" or "B:" (groups 0..first-1),
    # body of m dotted groups, optional "*F"/"&F" suffix (group fi).
    first = 0
    s0 = seps & 7
    if s0 == _S_DASH:
        if n < 3 or (seps >> 3) & 7 != _S_COLON:
            raise ObisError("'A-' must be followed by 'B:'", "B", base + _group_offset(raw, start, 1))
        first = 2
    elif s0 == _S_COLON:
        first = 1
    fi = -1
    if n - first >= 2:
        s = (seps >> (3 * (n - 2))) & 7
        if s == _S_STAR or s == _S_AMP:
            fi = n - 1
    m = (n if fi < 0 else fi) - first
    for j in range(first, first + m - 1):
        if (seps >> (3 * j)) & 7 != _S_DOT:
            raise ObisError("unexpected separator", "text", base + _group_offset(raw, start, j + 1) - 1)
    if first or m <= 4:
        if m > 4 or (m == 4 and fi >= 0):
            raise ObisError("F given twice" if m == 4 else "too many groups after the B: prefix", "F",
                            base + _group_offset(raw, start, n - 1))
        fields = 2  # body is C[.D[.E[.F]]]
    else:
        if m == 6 and fi >= 0:
            raise ObisError("F given twice", "F", base + _group_offset(raw, start, n - 1))
        fields = 0  # body is A.B.C.D.E[.F]

    # Fill the result into g from F down to A: field f comes from group j <= f,
    # so no group is overwritten before it is read.
    c = g[first - fields + 2]
    for f in (5, 4, 3, 2, 1, 0):
        if fields <= f < fields + m:
            j = f - fields + first
        elif f == 5:
            j = fi
        elif f == 1 and first:
            j = first - 1
        elif f == 0 and first == 2:
            j = 0
        else:
            j = -1
        if j >= 0:
            if over & (1 << j):
                raise ObisError("group value above 255", _FIELDS[f], base + _group_offset(raw, start, j))
            if letters & (1 << j) and (f < 2 or f > 3):
                raise ObisError("letters are allowed in groups C and D only", _FIELDS[f],
                                base + _group_offset(raw, start, j))
            g[f] = g[j]
        elif f == 0:
            g[0] = (0 if 96 <= c <= 99 else 1) if default_a is None else _byte(default_a, "A")
        elif f == 1:
            g[1] = _byte(default_b, "B")
        elif f == 3:
            g[3] = 97 if m == 1 and c == 97 else 0  # a lone "F" is the error register F.F
        else:
            g[f] = 255 if f == 5 else 0
    return bytes(g)


def _group_offset(raw, i, j):
    # Index of group j, on text pass 1 has already accepted (error path only).
    while j:
        if _sep_code(raw[i]):
            j -= 1
        i += 1
    return i


def _byte(v, field):
    if not isinstance(v, int) or v < 0 or v > 255:
        raise ObisError("group value must be 0..255", field)
    return v


def _check(code):
    if not isinstance(code, _BYTES_LIKE) or len(code) != 6:
        raise ObisError("an OBIS code is 6 bytes", "obis")
    return code


def make(a, b, c, d, e=0, f=255):
    """Build a code from six group values (each 0..255)."""
    return bytes((_byte(a, "A"), _byte(b, "B"), _byte(c, "C"), _byte(d, "D"), _byte(e, "E"),
                  _byte(f, "F")))


def from_bytes(b, off=0):
    """The 6-byte code at ``b[off:]`` (e.g. an A-XDR octet-string body), as ``bytes``."""
    if not isinstance(b, _BYTES_LIKE):
        raise ObisError("expected bytes", "obis", off)
    if off < 0 or len(b) - off < 6:
        raise ObisError("OBIS code needs 6 bytes, %d present" % max(0, len(b) - max(off, 0)), "obis", off)
    return bytes(b[off:off + 6])


def encode_into(buf, off, code):
    """Write the 6 bytes of ``code`` into ``buf`` at ``off``; return the new offset."""
    _check(code)
    if off < 0 or len(buf) - off < 6:
        raise ObisError("no room for an OBIS code", "obis", off)
    buf[off:off + 6] = code
    return off + 6


def to_tuple(code):
    """``(A, B, C, D, E, F)`` as ints."""
    _check(code)
    return (code[0], code[1], code[2], code[3], code[4], code[5])


def _group(v, letter):
    if letter and 96 <= v <= 99:
        return _LETTERS[v - 96]
    return str(v)


def format(code, style="dlms", letters=False):
    """Text of ``code``: "dlms" ``1.0.1.8.0.255``, "edis" ``1-0:1.8.0*255``, "short" ``1.8.0``.

    "short" drops A and B (the reader knows them) and writes ``*FF`` only when
    F is not 255 (F always has at least two digits, as in readouts: ``*01``).
    With ``letters=True`` the "edis" and "short" styles write C = 96..99 as
    C/F/L/P, and D = 97 as F in the error register (``F.F.0``).
    """
    _check(code)
    if style == "dlms":
        return "%d.%d.%d.%d.%d.%d" % tuple(code)
    c = code[2]
    d = code[3]
    e = code[4]
    f = code[5]
    # Letters in D occur only in the error register F.F (97.97); "P.F" for 99.97 would puzzle.
    cd = _group(c, letters) + "." + _group(d, letters and c == 97 and d == 97)
    if style == "edis":
        return "%d-%d:%s.%d*%02d" % (code[0], code[1], cd, e, f)
    if style == "short":
        if f == 255:
            return "%s.%d" % (cd, e)
        return "%s.%d*%02d" % (cd, e, f)
    raise ObisError("unknown style %r" % (style,), "style")


def name(code, class_id=None):
    """A short English name for common codes, or None.

    Electricity quantities (A = 1, C = 1..92) are built from C, D and E
    ("active energy import rate 1", "voltage L1", "maximum demand active power
    import"), a historical F adds "(billing period N)". Abstract objects need
    F = 255. ``class_id`` only separates association LN (15) from SN (12).
    """
    _check(code)
    from optoread import obis_names  # the names tables are loaded only when a name is asked for (RAM)

    return obis_names.name(code, class_id)
