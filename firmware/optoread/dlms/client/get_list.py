"""GET-with-list (LN) and ReadRequest with several names (SN): :meth:`Session.get_many`.

Procedures of :class:`optoread.dlms.client.session.Session` (generators run by its driver, taking the
session as ``s``), apart from it because a reading GETs one attribute at a time: this module
is loaded by the first ``get_many``, not on every reading's heap.
"""

from optoread.dlms.acse import apdu as acse
from optoread.dlms.axdr import decode as axdr
from optoread.dlms.client.requests import obis_bytes
from optoread.dlms.xdlms import apdu as xdlms
from optoread.dlms.xdlms.get import encode_get_request_list, encode_get_request_next
from optoread.errors import ApduError, DataAccessError, SessionError


def get_many(s, items):
    """:meth:`Session.get_many`: normalise the items and run the list procedure."""
    norm = []
    for it in items:
        t = (it[0], obis_bytes(it[1]), it[2])
        if len(it) > 3 and it[3]:
            t = t + (it[3], it[4] if len(it) > 4 else None)
        norm.append(t)
    return s.driver.run(get_many_proc(s, norm))


def get_many_proc(s, items):
    """The list read: GET-with-list in PDU-sized chunks, one GET per item without multiple-references."""
    st = s.settings
    out = []
    multi = s.negotiated.conformance & acse.CONF_MULTIPLE_REFERENCES
    i = 0
    while i < len(items):
        if not multi or len(items) - i == 1:
            it = items[i]
            try:
                v = yield from s.get_proc(it[0], it[1], it[2], it[3] if len(it) > 3 else 0,
                                           it[4] if len(it) > 3 else None, None)
            except DataAccessError as e:
                v = e
            out.append(v)
            i += 1
            continue
        # As many items as fit the meter's PDU (request side; the answer may come in blocks).
        j = i
        size = 8
        while j < len(items):
            it = items[j]
            need = 10 if len(it) <= 3 else 12 + (len(it[4]) if isinstance(it[4], (bytes, bytearray))
                                                else 64)
            if j > i and size + need > s.tx_limit:
                break
            size += need
            j += 1
        chunk = items[i:j]
        if st.ln:
            vals = yield from _get_list(s, chunk)
        else:
            vals = yield from sn_read_list(s, chunk)
        out.extend(vals)
        i = j
    return out


def _get_list(s, chunk):
    """One GET-Request-With-List; the answer may come in blocks."""
    invoke = s.next_invoke()
    end = encode_get_request_list(s.tx, s.apo, invoke, chunk)
    mv, off, e = yield from s.transact(end, "GET with list")
    r = s.get_response(mv, off, e, invoke)
    if r.kind == xdlms.WITH_LIST:
        items = r.items or []
        if len(items) != len(chunk):
            raise SessionError("GET with list: %d results for %d items" % (len(items), len(chunk)),
                               "list")
        return [item_value(s, mv, res, it) for res, it in zip(items, chunk)]
    if r.kind == xdlms.NORMAL:
        raise SessionError("GET with list answered by a normal response", "get-response")
    acc = bytearray()
    expect = 1
    while True:
        if r.dar is not None:
            raise s.access_error(chunk[0][1], chunk[0][2], r.dar)
        if r.block != expect:
            raise SessionError("GET with list: block %r received, %d expected" % (r.block, expect),
                               "block-number")
        s.accumulate(acc, memoryview(mv)[r.data_off:r.data_end])
        if r.last:
            break
        end = encode_get_request_next(s.tx, s.apo, invoke, r.block)
        mv, off, e = yield from s.transact(end, "GET next block")
        r = s.get_response(mv, off, e, invoke)
        if r.kind != xdlms.WITH_DATABLOCK:
            raise SessionError("block transfer interrupted", "get-response")
        expect += 1
    return _result_list(s, acc, chunk)


def _result_list(s, buf, chunk):
    """The SEQUENCE OF Get-Data-Result of a block-transferred list answer."""
    # SEQUENCE OF Get-Data-Result, reassembled from blocks.
    n, off = xdlms.read_length(buf, 0, len(buf), "list-count")
    if n != len(chunk):
        raise SessionError("GET with list: %d results for %d items" % (n, len(chunk)), "list")
    out = []
    for it in chunk:
        choice, off = xdlms.u8(buf, off, len(buf), "result")
        if choice == 0:
            v, off = axdr.decode(buf, off, len(buf))
            out.append(v)
        elif choice == 1:
            dar, off = xdlms.u8(buf, off, len(buf), "data-access-result")
            out.append(s.access_error(it[1], it[2], dar))
        else:
            raise ApduError("bad Get-Data-Result choice %d" % choice, "result", off - 1)
    if off != len(buf):
        raise ApduError("%d bytes after the result list" % (len(buf) - off), "list", off)
    return out


def item_value(s, mv, res, it):
    """The value of one list result, or its DataAccessError."""
    if res.kind == xdlms.ITEM_ERROR:
        return s.access_error(it[1], it[2], res.dar)
    if res.kind != xdlms.ITEM_DATA:
        raise SessionError("unexpected result kind %d" % res.kind, "result")
    return axdr.decode(mv, res.off, res.end)[0]


def sn_read_list(s, chunk):
    """One ReadRequest with several names (SN); per-name reads when the meter answers in blocks."""
    from optoread.dlms.client import sn as session_sn  # SN meters only

    names = []
    for it in chunk:
        sn = yield from session_sn.short_name_proc(s, it[0], it[1], it[2])
        names.append((sn, it[3], it[4]) if len(it) > 3 else sn)
    end = session_sn.xdlms_sn.encode_read_request(s.tx, s.apo, names)
    mv, off, e = yield from s.transact(end, "READ list")
    r = session_sn.xdlms_sn.parse_read_response(mv, off, e)
    if len(r.items) != len(chunk):
        raise SessionError("READ: %d results for %d names" % (len(r.items), len(chunk)), "read-response")
    out = []
    for res, it in zip(r.items, chunk):
        if res.kind == xdlms.ITEM_BLOCK:
            # The meter wants block transfer for the list: read those one at a time.
            out = []
            for it2 in chunk:
                try:
                    v = yield from session_sn.sn_get(s, it2[0], it2[1], it2[2],
                                                     it2[3] if len(it2) > 3 else 0,
                                                     it2[4] if len(it2) > 3 else None, None)
                except DataAccessError as e2:
                    v = e2
                out.append(v)
            return out
        out.append(item_value(s, mv, res, it))
    return out
