"""A-XDR compact-array (tag 19, IEC 62056-6-2): type descriptions and rows, decode and encode.

One optional feature ("loaded on first use" in docs/architecture.md): few meters send compact
arrays, so the decoder and the encoder load this module at the first one they meet and a reading
of ordinary arrays never holds it (RAM on a board). The cells of a row are simple values without
their tags, each coded as that tag's contents: the decoder and the encoder hand in their own
function for one cell, so this module sits below both and imports neither.

Type descriptions (``encode(..., COMPACT_ARRAY, (td, rows))``, :func:`decode_type_description`)
are written as: a simple type is its tag int (``LONG_UNSIGNED``); a structure is
``(STRUCTURE, (td, td, ...))``; an array is ``(ARRAY, count, td)``. Rows carry plain values
(no tags): a structure row is a sequence of values, an array row a sequence of ``count`` values.
"""

from struct import pack_into

from optoread.compat import const
from optoread.dlms.axdr.data import (
    SIZES,
    AxdrTruncated,
    decode_length,
    encode_length,
    length_size,
    need_in,
    need_out,
)
from optoread.errors import AxdrError

_NOT_A_TAG = const(0xFF)  # as in data (private: compiled away)
_VARIABLE = const(0xFE)  # as in data (private: compiled away)

# The Data tags a type description is made of (Blue Book 4.1.5)
_ARRAY = const(1)
_STRUCTURE = const(2)
_COMPACT_ARRAY = const(19)


def _read_td(buf, off, end, depth):
    # TypeDescription -> (td, next_off); see the module docstring for the representation.
    if off >= end:
        raise AxdrTruncated("data ends inside a type description", "type-description", off)
    t = buf[off]
    off += 1
    if t == _ARRAY or t == _STRUCTURE:
        if depth <= 0:
            raise AxdrError("nesting too deep", "depth", off - 1)
        if t == _ARRAY:
            need_in(buf, off, end, 2, "type-description")
            count = (buf[off] << 8) | buf[off + 1]
            td, off2 = _read_td(buf, off + 2, end, depth - 1)
            if count and _td_min(td) == 0:
                # would let a few octets expand into 65535 values per cell
                raise AxdrError("array of zero-size type", "type-description", off)
            return (_ARRAY, count, td), off2
        n, off = decode_length(buf, off, end)
        items = []
        for _ in range(n):
            td, off = _read_td(buf, off, end, depth - 1)
            items.append(td)
        return (_STRUCTURE, tuple(items)), off
    if SIZES[t] == _NOT_A_TAG or t == _COMPACT_ARRAY:
        raise AxdrError("bad type in type description: %d" % t, "type-description", off - 1)
    return t, off


def decode_type_description(buf, off=0, end=None, max_depth=8):
    """Read a compact-array TypeDescription; returns ``(td, next_off)`` (representation: module doc)."""
    if end is None or end > len(buf):
        end = len(buf)
    return _read_td(buf, off, end, max_depth)


def _cell(td, buf, off, end, simple, build):
    # One untagged value of type td inside compact-array contents (value None when not build);
    # simple: the decoder's function for one simple value (read or skip, see read and skip).
    if isinstance(td, int):
        if build:
            return simple(td, buf, off, end)
        return None, simple(td, buf, off, end)
    items = []
    if td[0] == _STRUCTURE:
        for sub in td[1]:
            v, off = _cell(sub, buf, off, end, simple, build)
            if build:
                items.append(v)
        return (tuple(items) if build else None), off
    count, sub = td[1], td[2]
    if count * _td_min(sub) > end - off:
        raise AxdrError("array type count exceeds the contents", "compact-array", off)
    for _ in range(count):
        v, off = _cell(sub, buf, off, end, simple, build)
        if build:
            items.append(v)
    return (items if build else None), off


def _td_min(td):
    # Smallest encoding of a value of type td (0 only for null/dont-care-only types).
    if isinstance(td, int):
        s = SIZES[td]
        return 1 if s >= _VARIABLE else s
    if td[0] == _STRUCTURE:
        n = 0
        for sub in td[1]:
            n += _td_min(sub)
        return n
    return td[1] * _td_min(td[2])


def read(buf, off, end, depth, simple):
    """Compact-array contents after the tag: ``(rows, next_off)``. ``simple(t, buf, off, end)``
    is the decoder's reader of one untagged value of simple type ``t``: ``(value, next_off)``."""
    return _rows(buf, off, end, depth, simple, True)


def skip(buf, off, end, depth, skip_simple):
    """Check compact-array contents after the tag, building no values; returns the next offset.
    ``skip_simple(t, buf, off, end)`` is the decoder's check of one untagged value: its end."""
    return _rows(buf, off, end, depth, skip_simple, False)[1]


def _rows(buf, off, end, depth, simple, build):
    if depth <= 0:
        raise AxdrError("nesting too deep", "depth", off - 1)
    td, off = _read_td(buf, off, end, depth - 1)
    n, off = decode_length(buf, off, end)
    stop = off + n
    if n and _td_min(td) == 0:
        raise AxdrError("compact-array of zero-size type with contents", "compact-array", off)
    rows = []
    try:
        while off < stop:
            v, off = _cell(td, buf, off, stop, simple, build)
            if build:
                rows.append(v)
    except AxdrTruncated as e:
        # Inside the contents the length is known and present: running out is malformed.
        raise AxdrError("compact-array row crosses the contents end", "compact-array", e.offset) from None
    return rows, stop


def _compact_parts(v):
    try:
        td, rows = v
        rows = list(rows)
    except (TypeError, ValueError):
        raise AxdrError("compact-array needs (type_description, rows)", "compact-array") from None
    return td, rows


def _td_len(td, depth):
    # Size of a type description, checking its shape.
    if isinstance(td, int):
        if td < 0 or td > 255 or SIZES[td] == _NOT_A_TAG or td in (_ARRAY, _STRUCTURE, _COMPACT_ARRAY):
            raise AxdrError("bad type in type description: %r" % (td,), "type-description")
        return 1
    if depth <= 0:
        raise AxdrError("nesting too deep", "depth")
    if isinstance(td, tuple) and len(td) == 2 and td[0] == _STRUCTURE and isinstance(td[1], tuple):
        n = 1 + length_size(len(td[1]))
        for sub in td[1]:
            n += _td_len(sub, depth - 1)
        return n
    if (
        isinstance(td, tuple) and len(td) == 3 and td[0] == _ARRAY and isinstance(td[1], int)
        and 0 <= td[1] <= 0xFFFF
    ):
        n = 3 + _td_len(td[2], depth - 1)
        if td[1] and _td_min(td[2]) == 0:
            raise AxdrError("array of zero-size type", "type-description")  # decode refuses it
        return n
    raise AxdrError("bad type description %r" % (td,), "type-description")


def _write_td(buf, off, td):
    if isinstance(td, int):
        need_out(buf, off, 1)
        buf[off] = td
        return off + 1
    if td[0] == _STRUCTURE:
        need_out(buf, off, 1)
        buf[off] = _STRUCTURE
        off = encode_length(buf, off + 1, len(td[1]))
        for sub in td[1]:
            off = _write_td(buf, off, sub)
        return off
    need_out(buf, off, 3)
    buf[off] = _ARRAY
    pack_into(">H", buf, off + 1, td[1])
    return _write_td(buf, off + 3, td[2])


def _cell_items(td, v):
    try:
        items = list(v)
    except TypeError:
        raise AxdrError("compact-array value does not match its type", "compact-array") from None
    if len(items) != (len(td[1]) if td[0] == _STRUCTURE else td[1]):
        raise AxdrError("compact-array value does not match its type", "compact-array")
    return items


def _cell_len(td, v, simple_len):
    if isinstance(td, int):
        return simple_len(td, v)
    items = _cell_items(td, v)
    n = 0
    for i in range(len(items)):
        n += _cell_len(td[1][i] if td[0] == _STRUCTURE else td[2], items[i], simple_len)
    return n


def _write_cell(buf, off, td, v, write_simple):
    if isinstance(td, int):
        return write_simple(buf, off, td, v)
    items = list(v)
    for i in range(len(items)):
        off = _write_cell(buf, off, td[1][i] if td[0] == _STRUCTURE else td[2], items[i], write_simple)
    return off


def encoded_len(v, depth, simple_len):
    """Size of a compact-array element (tag included) for the encoder's ``encoded_len``.

    ``simple_len(t, v)`` is the encoder's size of one untagged value of simple type ``t``
    (checking that ``v`` fits it).
    """
    if depth <= 0:
        raise AxdrError("nesting too deep", "depth")
    td, rows = _compact_parts(v)
    n = _td_len(td, depth - 1)
    if rows and _td_min(td) == 0:
        # rows of zero octets cannot be counted back by a decoder
        raise AxdrError("compact-array rows of a zero-size type", "compact-array")
    size = 0
    for row in rows:
        size += _cell_len(td, row, simple_len)
    return 1 + n + length_size(size) + size


def write(buf, off, v, simple_len, write_simple):
    """Write a compact-array's contents at ``off`` (its tag is written); checked by :func:`encoded_len`.

    ``write_simple(buf, off, t, v)`` is the encoder's writer of one untagged value (returns the
    next offset), ``simple_len`` as for :func:`encoded_len`.
    """
    td, rows = _compact_parts(v)
    off = _write_td(buf, off, td)
    size = 0
    for row in rows:
        size += _cell_len(td, row, simple_len)
    off = encode_length(buf, off, size)
    for row in rows:
        off = _write_cell(buf, off, td, row, write_simple)
    return off
