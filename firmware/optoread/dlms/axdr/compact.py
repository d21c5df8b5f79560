"""A-XDR compact-array (tag 19, IEC 62056-6-2): type descriptions and rows, decode and encode.

Apart from :mod:`optoread.axdr` because few meters send compact arrays: ``axdr.decode``,
``skip`` and ``encode`` load this module at the first compact-array they meet, so a reading
of ordinary arrays never holds it (RAM on a board). The representation of type descriptions
is in axdr's module docstring.
"""

from struct import pack_into

from optoread.compat import const
from optoread.dlms.axdr import decode as axdr
from optoread.dlms.axdr.decode import (
    AxdrTruncated,
    _need_in,
    _need_out,
    _simple,
    _skip_simple,
    decode_length,
    encode_length,
    length_size,
)
from optoread.dlms.axdr.encode import (  # the Data tags (public there) and the encode half below
    ARRAY,
    COMPACT_ARRAY,
    STRUCTURE,
    _bad,
    _simple_len,
    _write_simple,
)
from optoread.errors import AxdrError

_VAR = const(0xFE)  # as in axdr: length-prefixed or container
_BAD = const(0xFF)  # as in axdr: not a Data tag
_SIZES = axdr._SIZES


def _read_td(buf, off, end, depth):
    # TypeDescription -> (td, next_off); see the module docstring for the representation.
    if off >= end:
        raise AxdrTruncated("data ends inside a type description", "type-description", off)
    t = buf[off]
    off += 1
    if t == ARRAY or t == STRUCTURE:
        if depth <= 0:
            raise AxdrError("nesting too deep", "depth", off - 1)
        if t == ARRAY:
            _need_in(buf, off, end, 2, "type-description")
            count = (buf[off] << 8) | buf[off + 1]
            td, off2 = _read_td(buf, off + 2, end, depth - 1)
            if count and _td_min(td) == 0:
                # would let a few octets expand into 65535 values per cell
                raise AxdrError("array of zero-size type", "type-description", off)
            return (ARRAY, count, td), off2
        n, off = decode_length(buf, off, end)
        items = []
        for _ in range(n):
            td, off = _read_td(buf, off, end, depth - 1)
            items.append(td)
        return (STRUCTURE, tuple(items)), off
    if _SIZES[t] == _BAD or t == COMPACT_ARRAY:
        raise AxdrError("bad type in type description: %d" % t, "type-description", off - 1)
    return t, off


def decode_type_description(buf, off=0, end=None, max_depth=8):
    """Read a compact-array TypeDescription; returns ``(td, next_off)`` (representation: module doc)."""
    if end is None or end > len(buf):
        end = len(buf)
    return _read_td(buf, off, end, max_depth)


def _cell(td, buf, off, end, build):
    # One untagged value of type td inside compact-array contents (value None when not build).
    if isinstance(td, int):
        if build:
            return _simple(td, buf, off, end)
        return None, _skip_simple(td, buf, off, end)
    items = []
    if td[0] == STRUCTURE:
        for sub in td[1]:
            v, off = _cell(sub, buf, off, end, build)
            if build:
                items.append(v)
        return (tuple(items) if build else None), off
    count, sub = td[1], td[2]
    if count * _td_min(sub) > end - off:
        raise AxdrError("array type count exceeds the contents", "compact-array", off)
    for _ in range(count):
        v, off = _cell(sub, buf, off, end, build)
        if build:
            items.append(v)
    return (items if build else None), off


def _td_min(td):
    # Smallest encoding of a value of type td (0 only for null/dont-care-only types).
    if isinstance(td, int):
        s = _SIZES[td]
        return 1 if s >= _VAR else s
    if td[0] == STRUCTURE:
        n = 0
        for sub in td[1]:
            n += _td_min(sub)
        return n
    return td[1] * _td_min(td[2])


def read(buf, off, end, depth, build):
    """Compact-array contents after the tag: ``(rows, next_off)`` (rows None-filled unless ``build``)."""
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
            v, off = _cell(td, buf, off, stop, build)
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
        raise _bad(COMPACT_ARRAY, "compact-array needs (type_description, rows)") from None
    return td, rows


def _td_len(td, depth):
    # Size of a type description, checking its shape.
    if isinstance(td, int):
        if td < 0 or td > 255 or _SIZES[td] == _BAD or td in (ARRAY, STRUCTURE, COMPACT_ARRAY):
            raise AxdrError("bad type in type description: %r" % (td,), "type-description")
        return 1
    if depth <= 0:
        raise AxdrError("nesting too deep", "depth")
    if isinstance(td, tuple) and len(td) == 2 and td[0] == STRUCTURE and isinstance(td[1], tuple):
        n = 1 + length_size(len(td[1]))
        for sub in td[1]:
            n += _td_len(sub, depth - 1)
        return n
    if (
        isinstance(td, tuple) and len(td) == 3 and td[0] == ARRAY and isinstance(td[1], int)
        and 0 <= td[1] <= 0xFFFF
    ):
        n = 3 + _td_len(td[2], depth - 1)
        if td[1] and _td_min(td[2]) == 0:
            raise AxdrError("array of zero-size type", "type-description")  # decode refuses it
        return n
    raise AxdrError("bad type description %r" % (td,), "type-description")


def _write_td(buf, off, td):
    if isinstance(td, int):
        _need_out(buf, off, 1)
        buf[off] = td
        return off + 1
    if td[0] == STRUCTURE:
        _need_out(buf, off, 1)
        buf[off] = STRUCTURE
        off = encode_length(buf, off + 1, len(td[1]))
        for sub in td[1]:
            off = _write_td(buf, off, sub)
        return off
    _need_out(buf, off, 3)
    buf[off] = ARRAY
    pack_into(">H", buf, off + 1, td[1])
    return _write_td(buf, off + 3, td[2])


def _cell_items(td, v):
    try:
        items = list(v)
    except TypeError:
        raise _bad(COMPACT_ARRAY, "compact-array value does not match its type") from None
    if len(items) != (len(td[1]) if td[0] == STRUCTURE else td[1]):
        raise _bad(COMPACT_ARRAY, "compact-array value does not match its type")
    return items


def _cell_len(td, v):
    if isinstance(td, int):
        return _simple_len(td, v)
    items = _cell_items(td, v)
    n = 0
    for i in range(len(items)):
        n += _cell_len(td[1][i] if td[0] == STRUCTURE else td[2], items[i])
    return n


def _write_cell(buf, off, td, v):
    if isinstance(td, int):
        return _write_simple(buf, off, td, v)
    items = list(v)
    for i in range(len(items)):
        off = _write_cell(buf, off, td[1][i] if td[0] == STRUCTURE else td[2], items[i])
    return off


def encoded_len(v, depth):
    """Size of a compact-array element (tag included) for ``axdr.encoded_len``."""
    if depth <= 0:
        raise AxdrError("nesting too deep", "depth")
    td, rows = _compact_parts(v)
    n = _td_len(td, depth - 1)
    if rows and _td_min(td) == 0:
        # rows of zero octets cannot be counted back by a decoder
        raise _bad(COMPACT_ARRAY, "compact-array rows of a zero-size type")
    size = 0
    for row in rows:
        size += _cell_len(td, row)
    return 1 + n + length_size(size) + size


def write(buf, off, v):
    """Write a compact-array's contents at ``off`` (its tag is written); checked by :func:`encoded_len`."""
    td, rows = _compact_parts(v)
    off = _write_td(buf, off, td)
    size = 0
    for row in rows:
        size += _cell_len(td, row)
    off = encode_length(buf, off, size)
    for row in rows:
        off = _write_cell(buf, off, td, row)
    return off
