"""SET and ACTION (LN, WRITE for SN meters): :meth:`Session.set` and :meth:`Session.action`,
and the ACTION that is HLS pass 3/4 of an association.

Procedures of :class:`optoread.dlms.client.session.Session` (generators run by its driver, taking the
session as ``s``), apart from it because a reading only GETs: this module is loaded when a
session first writes (e.g. sets the meter clock), not on every reading's heap.
"""

from optoread.compat import const
from optoread.dlms.acse import apdu as acse
from optoread.dlms.client.requests import obis_bytes
from optoread.dlms.xdlms import set_action as xdlms_set
from optoread.errors import DataAccessError, SecurityError, SessionError

_OCTET_STRING = const(9)  # the Data tag (private in axdr)
_ASSOCIATION_LN = b"\x00\x00\x28\x00\x00\xff"  # 0.0.40.0.0.255, the current association


def set_value(s, class_id, obis_code, attr, tag, value):
    """:meth:`Session.set`."""
    code = obis_bytes(obis_code)
    s.check_open()
    if tag is None:
        data = bytes(value)
    else:
        from optoread.dlms.axdr import encode as axdr_encode  # the encoder: loaded by the first (tag, value)

        data = axdr_encode.encode_to_bytes(tag, value)
    return s.driver.run(set_proc(s, class_id, code, attr, data))


def action(s, class_id, obis_code, method, tag=None, value=None):
    """:meth:`Session.action`."""
    code = obis_bytes(obis_code)
    s.check_open()
    params = None if tag is None else (tag, value)
    return s.driver.run(action_proc(s, class_id, code, method, params))


def set_proc(s, class_id, code, attr, data):
    """SET-Request-Normal, or the value in blocks when it exceeds the meter's PDU (WRITE for SN)."""
    if not s.settings.ln:
        from optoread.dlms.client import sn as session_sn  # SN meters only

        return (yield from session_sn.sn_write(s, class_id, code, attr, data))
    invoke = s.next_invoke()
    limit = s.tx_limit
    if 3 + 10 + len(data) <= limit:
        end = xdlms_set.encode_set_request(s.tx, s.apo, invoke, class_id, code, attr, data)
        mv, off, e = yield from s.transact(end, "SET")
        r = xdlms_set.parse_set_response(mv, off, e, strict=False)
        s.check_invoke(r.invoke, invoke)
        if r.dar:
            raise s.access_error(code, attr, r.dar)
        return None
    if not s.negotiated.conformance & acse.CONF_BLOCK_TRANSFER_SET:
        raise SessionError("%s: value of %d bytes exceeds the meter's PDU size %d and the meter does "
                           "not do block transfer for SET" % (s.what(code, attr), len(data), limit),
                           "pdu")
    step = limit - 24  # room for the descriptor, block number and the length of the slice
    pos = 0
    block = 1
    while True:
        k = len(data) - pos
        if k > step:
            k = step
        last = pos + k >= len(data)
        raw = memoryview(data)[pos:pos + k]
        if block == 1:
            end = xdlms_set.encode_set_request_first_block(s.tx, s.apo, invoke, class_id, code, attr,
                                                           last, block, raw)
        else:
            end = xdlms_set.encode_set_request_block(s.tx, s.apo, invoke, last, block, raw)
        mv, off, e = yield from s.transact(end, "SET block")
        r = xdlms_set.parse_set_response(mv, off, e, strict=False)
        s.check_invoke(r.invoke, invoke)
        if r.dar:
            raise s.access_error(code, attr, r.dar)
        if r.block != block:
            raise SessionError("SET block %d acknowledged as %r" % (block, r.block), "block-number")
        if last:
            if r.kind != xdlms_set.SET_RESPONSE_LAST_DATABLOCK:
                raise SessionError("meter did not confirm the last SET block", "set-response")
            return None
        if r.kind != xdlms_set.SET_RESPONSE_DATABLOCK:
            raise SessionError("SET block transfer ended early (response type %d)" % r.kind,
                               "set-response")
        pos += k
        block += 1


def action_proc(s, class_id, code, method, params):
    """ACTION-Request-Normal; the return data or None."""
    if not s.settings.ln:
        raise SessionError("ACTION with short-name referencing is not supported", "sn")
    invoke = s.next_invoke()
    end = xdlms_set.encode_action_request(s.tx, s.apo, invoke, class_id, code, method, params)
    if end - s.apo > s.tx_limit:
        raise SessionError("%s: parameters exceed the meter's PDU size %d"
                           % (s.what(code, method, True), s.tx_limit), "pdu")
    mv, off, e = yield from s.transact(end, "ACTION")
    r = xdlms_set.parse_action_response(mv, off, e, strict=False)
    s.check_invoke(r.invoke, invoke)
    if r.result:
        raise s.access_error(code, method, r.result, True)
    if r.dar:
        raise s.access_error(code, method, r.dar, True)
    return r.value()


def hls_reply(s, aare, ctos):
    """HLS pass 3/4: reply_to_HLS_authentication with f(StoC), check the server's f(CtoS)."""
    from optoread.dlms import security

    st = s.settings
    stoc = aare.auth_value
    if stoc is None or s.server_st is None:
        raise SessionError("HLS: the AARE carries no challenge or system title", "aare")
    if not st.ln:
        raise SessionError("HLS-GMAC with short-name referencing is not supported", "auth")
    f_stoc = security.hls_gmac(st.system_title, s.invocation_counter, st.ek, st.ak, stoc)
    s.invocation_counter += 1
    try:
        reply = yield from action_proc(s, 15, _ASSOCIATION_LN, 1, (_OCTET_STRING, f_stoc))
    except DataAccessError:
        raise SessionError("association rejected: authentication failure (meter refused our "
                           "HLS-GMAC reply; check the keys)", "hls")
    if not isinstance(reply, (bytes, bytearray)):
        raise SessionError("HLS: the meter returned no f(CtoS)", "hls")
    try:
        security.verify_hls_gmac(reply, s.server_st, st.ek, st.ak, ctos)
    except SecurityError:
        raise SecurityError("HLS: the meter's f(CtoS) does not verify: wrong keys or not the meter "
                            "we think", "f(CtoS)")
