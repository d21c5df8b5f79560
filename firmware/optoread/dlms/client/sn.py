"""Short-name (SN) referencing: GET and SET of SN-only meters through READ and WRITE.

Procedures of :class:`optoread.dlms.client.session.Session` (generators run by its driver, taking the
session as ``s``): the association's SN object list maps a logical name to its base name
once per session (``s.sn_map``). Apart from the session because most meters take logical
names: this module is loaded only when a session talks to an SN-only meter.
"""

from optoread.compat import const
from optoread.dlms.axdr import decode as axdr
from optoread.dlms.client.requests import block_progress, stream_done
from optoread.dlms.xdlms import apdu as xdlms
from optoread.dlms.xdlms import sn as xdlms_sn
from optoread.driver import PROGRESS
from optoread.errors import DataAccessError, SessionError

_SN_ASSOCIATION_LIST = const(0xFA08)  # association SN base name 0xFA00, attribute 2
_PROGRESS_BLOCKS = const(16)  # as in session.py: a progress message every 16 blocks


def short_name_proc(s, class_id, code, attr):
    """The SN address of an attribute (reads the association's SN object list once)."""
    if s.sn_map is None:
        m = {}

        def add(e):
            # {base_name long, class_id long-unsigned, version unsigned, logical_name octet-string}
            if isinstance(e, tuple) and len(e) >= 4 and isinstance(e[3], bytes):
                m[e[3]] = (e[0] & 0xFFFF, e[1])

        yield (PROGRESS, "reading the SN object list")
        yield from sn_read(s, [_SN_ASSOCIATION_LIST], add, "association SN object list")
        s.sn_map = m
    ent = s.sn_map.get(code)
    if ent is None:
        raise DataAccessError("%s: not in the meter's SN object list" % s.what(code, attr), result=4)
    if ent[1] != class_id:
        raise DataAccessError("%s: the meter lists it as class %d, not %d" % (
            s.what(code, attr), ent[1], class_id), result=9)
    return (ent[0] + (attr - 1) * 8) & 0xFFFF


def sn_get(s, class_id, code, attr, selector, params, sink):
    """GET of an SN meter: a ReadRequest of the attribute's short name."""
    sn = yield from short_name_proc(s, class_id, code, attr)
    name = (sn, selector, params) if selector else sn
    try:
        return (yield from sn_read(s, [name], sink, s.what(code, attr)))
    except DataAccessError as e:
        raise s.access_error(code, attr, e.result)


def sn_read(s, names, sink, what):
    """ReadRequest for one name (with blocks); value, or element count with ``sink``."""
    end = xdlms_sn.encode_read_request(s.tx, s.apo, names)
    mv, off, e = yield from s.transact(end, "READ")
    r = xdlms_sn.parse_read_response(mv, off, e)
    it = r.items[0] if len(r.items) == 1 else None
    if it is None:
        raise SessionError("READ: %d results for 1 name" % len(r.items), "read-response")
    if it.kind == xdlms.ITEM_ERROR:
        raise DataAccessError("%s: %s" % (what, xdlms.dar_name(it.dar)), result=it.dar)
    stream = s.stream() if sink is not None else None
    if it.kind == xdlms.ITEM_DATA:
        if stream is None:
            return axdr.decode(mv, it.off, it.end)[0]
        stream.feed(memoryview(mv)[it.off:it.end], sink)
        return stream_done(stream, what)
    acc = bytearray()
    expect = 1
    while True:
        if it.kind == xdlms.ITEM_ERROR:
            raise DataAccessError("%s: %s" % (what, xdlms.dar_name(it.dar)), result=it.dar)
        if it.kind != xdlms.ITEM_BLOCK:
            raise SessionError("READ block transfer: unexpected result kind %d" % it.kind,
                               "read-response")
        if it.block != expect:
            raise SessionError("READ: block %r received, %d expected" % (it.block, expect),
                               "block-number")
        s.take_block(memoryview(mv)[it.off:it.end], stream, sink, acc)
        if it.last:
            break
        if expect % _PROGRESS_BLOCKS == 0:
            yield (PROGRESS, block_progress(what, expect, stream))
        end = xdlms_sn.encode_read_request_block(s.tx, s.apo, it.block)
        mv, off, e = yield from s.transact(end, "READ next block")
        r = xdlms_sn.parse_read_response(mv, off, e)
        if len(r.items) != 1:
            raise SessionError("READ block: %d results" % len(r.items), "read-response")
        it = r.items[0]
        expect += 1
    if stream is not None:
        return stream_done(stream, what)
    return axdr.decode(acc, 0, len(acc))[0]


def sn_write(s, class_id, code, attr, data):
    """SET of an SN meter: a WriteRequest of the attribute's short name (no blocks)."""
    sn = yield from short_name_proc(s, class_id, code, attr)
    if len(data) + 12 > s.tx_limit:
        raise SessionError("%s: value of %d bytes exceeds the meter's PDU size (SN block write is "
                           "not supported)" % (s.what(code, attr), len(data)), "pdu")
    end = xdlms_sn.encode_write_request(s.tx, s.apo, [sn], [data])
    mv, off, e = yield from s.transact(end, "WRITE")
    r = xdlms_sn.parse_write_response(mv, off, e)
    if len(r.items) != 1:
        raise SessionError("WRITE: %d results for 1 name" % len(r.items), "write-response")
    it = r.items[0]
    if it.kind == xdlms.ITEM_ERROR:
        raise s.access_error(code, attr, it.dar)
    return None
