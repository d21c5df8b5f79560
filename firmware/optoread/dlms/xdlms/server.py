"""The server side of xDLMS (IEC 62056-5-3): parse requests, encode responses.

The meter's half of xDLMS (the client's is :mod:`.get`, :mod:`.set_action`, :mod:`.sn`) --
GET/SET/ACTION responses (normal, with-list, datablocks), exception and confirmed-service-error
responses, data-notification and general-block-transfer encoders, and the GET request parser.
The simulated meter (``tools/optoread_tools/sim_dlms.py``), the laptop's capture decoder and the
tests use it; the reader never does, so it is not deployed to a board and costs a reading no RAM.
"""

from optoread.dlms.xdlms.apdu import (
    CONFIRMED_SERVICE_ERROR,
    DATA_NOTIFICATION,
    EXCEPTION_RESPONSE,
    GENERAL_BLOCK_TRANSFER,
    GET_REQUEST,
    GET_RESPONSE,
    NEXT,
    NORMAL,
    WITH_DATABLOCK,
    WITH_LIST,
    need,
    put,
    put_bytes,
    put_data,
    put_octets,
    put_u16,
    put_u32,
    read_length,
    room,
    skip_data,
    u8,
    u32,
    write_length,
)
from optoread.dlms.xdlms.service import service_head
from optoread.dlms.xdlms.set_action import ACTION_RESPONSE, SET_RESPONSE
from optoread.errors import ApduError


def parse_descriptor(mv, off, end):
    """``(class_id, obis_bytes, attr, off)`` of a Cosem-Attribute/Method-Descriptor."""
    need(mv, off, end, 9, "descriptor")
    cls = (mv[off] << 8) | mv[off + 1]
    a = mv[off + 8]
    return cls, bytes(mv[off + 2:off + 8]), a - 256 if a > 127 else a, off + 9


def encode_exception_response(buf, off, state_error, service_error, invocation_counter=None):
    """exception-response (server side, for the simulated meter)."""
    off = put_bytes(buf, off, EXCEPTION_RESPONSE, state_error, service_error)
    if service_error == 6:
        off = put_u32(buf, off, invocation_counter or 0)
    return off


def encode_confirmed_service_error(buf, off, service, error_type, code):
    """confirmed-service-error (server side), e.g. (1, 6, 1) = initiate / dlms-version-too-low."""
    return put_bytes(buf, off, CONFIRMED_SERVICE_ERROR, service, error_type, code)


class GetRequest:
    """A decoded GET-Request (server side). ``items`` = list of (class_id, obis, attr, selector,
    params_off, params_end) for normal and with-list; ``block`` for next."""

    def __init__(self, kind, invoke):
        self.kind = kind
        self.invoke = invoke
        self.items = []
        self.block = None


def _parse_selection(mv, off, end):
    flag, off = u8(mv, off, end, "access-selection")
    if flag == 0:
        return 0, None, None, off
    if flag != 1:
        raise ApduError("bad access-selection flag", "access-selection", off - 1)
    sel, off = u8(mv, off, end, "access-selector")
    p_end = skip_data(mv, off, end, "access-parameters")
    return sel, off, p_end, p_end


def parse_get_request(mv, off=0, end=None):
    """Decode a GET-Request (normal, next, with-list) into a :class:`GetRequest`."""
    kind, invoke, off, end = service_head(mv, off, end, GET_REQUEST, "get-request")
    r = GetRequest(kind, invoke)
    if kind == NEXT:
        r.block, off = u32(mv, off, end, "block-number")
        return r
    if kind == NORMAL:
        n = 1
    elif kind == WITH_LIST:
        n, off = read_length(mv, off, end, "list-count")
        need(mv, off, end, n * 10, "list")  # each item takes at least 10 bytes
    else:
        raise ApduError("unknown get-request type %d" % kind, "get-request-type", off - 2)
    for _ in range(n):
        cls, obis, attr, off = parse_descriptor(mv, off, end)
        sel, p_off, p_end, off = _parse_selection(mv, off, end)
        r.items.append((cls, obis, attr, sel, p_off, p_end))
    return r


def encode_get_response(buf, off, invoke, data=None, dar=None):
    """GET-Response-Normal (server side): ``data`` (bytes or (tag, value)) or ``dar`` code."""
    off = put_bytes(buf, off, GET_RESPONSE, NORMAL, invoke)
    if data is None:
        return put_bytes(buf, off, 1, dar or 0)
    off = put_bytes(buf, off, 0)
    return put_data(buf, off, data)


def encode_get_response_block(buf, off, invoke, last, block_number, raw=None, dar=None):
    """GET-Response-With-Datablock (server side): ``raw`` block bytes or ``dar``."""
    off = put_bytes(buf, off, GET_RESPONSE, WITH_DATABLOCK, invoke, 1 if last else 0)
    off = put_u32(buf, off, block_number)
    if raw is None:
        return put_bytes(buf, off, 1, dar or 0)
    off = put_bytes(buf, off, 0)
    return put_octets(buf, off, raw)


def encode_get_response_list(buf, off, invoke, results):
    """GET-Response-With-List (server side): results are data (bytes or (tag, value)) or int dar."""
    off = put_bytes(buf, off, GET_RESPONSE, WITH_LIST, invoke)
    off = write_length(buf, off, len(results))
    for x in results:
        if isinstance(x, int):
            off = put_bytes(buf, off, 1, x)
        else:
            off = put_bytes(buf, off, 0)
            off = put_data(buf, off, x)
    return off


def encode_set_response(buf, off, invoke, dar=0):
    """SET-Response-Normal (server side)."""
    return put_bytes(buf, off, SET_RESPONSE, NORMAL, invoke, dar)


def encode_action_response(buf, off, invoke, result=0, data=None, dar=None):
    """ACTION-Response-Normal (server side) with optional return data or dar."""
    off = put_bytes(buf, off, ACTION_RESPONSE, NORMAL, invoke, result)
    if data is None and dar is None:
        return put_bytes(buf, off, 0)
    if data is None:
        return put_bytes(buf, off, 1, 1, dar)
    off = put_bytes(buf, off, 1, 0)
    return put_data(buf, off, data)


def encode_data_notification(buf, off, long_invoke, dt=None, body=None):
    """data-notification (server side): ``dt`` = axdr.DateTime, 12 bytes or None; ``body`` = Data."""
    off = put_bytes(buf, off, DATA_NOTIFICATION)
    off = put_u32(buf, off, long_invoke)
    if dt is None:
        off = put_bytes(buf, off, 0)
    else:
        off = put_bytes(buf, off, 12)
        if hasattr(dt, "write"):
            room(buf, off, 12)
            off = dt.write(buf, off)
        else:
            off = put(buf, off, dt)
    return put_data(buf, off, body if body is not None else b"\x00")


def encode_gbt(buf, off, last, block, ack, data, streaming=False, window=1):
    """general-block-transfer APDU (also used empty, as the client's acknowledgement)."""
    control = (0x80 if last else 0) | (0x40 if streaming else 0) | (window & 0x3F)
    off = put_bytes(buf, off, GENERAL_BLOCK_TRANSFER, control)
    off = put_u16(buf, off, block)
    off = put_u16(buf, off, ack)
    return put_octets(buf, off, data)
