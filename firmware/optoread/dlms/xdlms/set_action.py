"""xDLMS SET and ACTION APDUs (IEC 62056-5-3, LN referencing): requests and responses.

Apart from :mod:`.get` because a reading only GETs: the SET and ACTION codecs are loaded when
a session first writes (e.g. sets the meter clock), not on every board's heap. Conventions as
in :mod:`.apdu` (encoders write into the caller's buffer and return the new offset; decoders
return offsets into the caller's buffer); ACTION's return parameters are GET's Get-Data-Result.
"""

from optoread.compat import const
from optoread.dlms.axdr import decode as axdr
from optoread.dlms.xdlms.apdu import (
    NORMAL,
    check_result,
    encode_descriptor,
    need,
    put_access,
    put_bytes,
    put_data,
    put_descriptor_list,
    put_octets,
    put_u32,
    read_length,
    u8,
    u32,
    write_length,
)
from optoread.dlms.xdlms.get import get_data_result
from optoread.dlms.xdlms.service import service_head
from optoread.errors import ApduError

# Used by this module (and the tests and the simulator), not by a reading: kept off its heap.
SET_REQUEST = const(0xC1)
ACTION_REQUEST = const(0xC3)
SET_RESPONSE = const(0xC5)
ACTION_RESPONSE = const(0xC7)
SET_FIRST_DATABLOCK = const(2)
SET_WITH_DATABLOCK = const(3)
SET_WITH_LIST = const(4)
SET_RESPONSE_DATABLOCK = const(2)
SET_RESPONSE_LAST_DATABLOCK = const(3)
SET_RESPONSE_LAST_DATABLOCK_WITH_LIST = const(4)
SET_RESPONSE_WITH_LIST = const(5)

def encode_set_request(buf, off, invoke, class_id, obis, attr, data, selector=0, params=None):
    """SET-Request-Normal: ``data`` = pre-encoded A-XDR bytes or (tag, value)."""
    off = put_bytes(buf, off, SET_REQUEST, NORMAL, invoke)
    off = encode_descriptor(buf, off, class_id, obis, attr)
    if selector and params is None:
        raise ApduError("selective set needs params", "access-selection", off)
    off = put_access(buf, off, selector, params)
    return put_data(buf, off, data)


def _put_datablock_sa(buf, off, last, block_number, raw):
    off = put_bytes(buf, off, 1 if last else 0)
    off = put_u32(buf, off, block_number)
    return put_octets(buf, off, raw)


def encode_set_request_first_block(buf, off, invoke, class_id, obis, attr, last, block_number, raw,
                                   selector=0, params=None):
    """SET-Request-With-First-Datablock: ``raw`` = first slice of the value's A-XDR encoding."""
    off = put_bytes(buf, off, SET_REQUEST, SET_FIRST_DATABLOCK, invoke)
    off = encode_descriptor(buf, off, class_id, obis, attr)
    if selector and params is None:
        raise ApduError("selective set needs params", "access-selection", off)
    off = put_access(buf, off, selector, params)
    return _put_datablock_sa(buf, off, last, block_number, raw)


def encode_set_request_block(buf, off, invoke, last, block_number, raw):
    """SET-Request-With-Datablock: the following slices."""
    off = put_bytes(buf, off, SET_REQUEST, SET_WITH_DATABLOCK, invoke)
    return _put_datablock_sa(buf, off, last, block_number, raw)


def encode_set_request_list(buf, off, invoke, items, values):
    """SET-Request-With-List: items as for :func:`encode_get_request_list`, one value per item."""
    if len(items) != len(values):
        raise ApduError("one value per item", "set-request", off)
    off = put_bytes(buf, off, SET_REQUEST, SET_WITH_LIST, invoke)
    off = put_descriptor_list(buf, off, items)
    off = write_length(buf, off, len(values))
    for v in values:
        off = put_data(buf, off, v)
    return off


class SetResponse:
    """A decoded SET-Response: ``kind`` (1 normal, 2 datablock, 3 last-datablock,
    4 last-datablock-with-list, 5 with-list), ``invoke``, ``dar`` (normal / last-datablock),
    ``block`` (datablock kinds), ``results`` (list of dar codes for the list kinds)."""

    def __init__(self, kind, invoke):
        self.kind = kind
        self.invoke = invoke
        self.dar = None  # type: int | None
        self.block = None  # type: int | None
        self.results = None  # type: list | None


def _dar_list(mv, off, end):
    n, off = read_length(mv, off, end, "list-count")
    need(mv, off, end, n, "list")
    return [mv[off + i] for i in range(n)], off + n


def parse_set_response(mv, off=0, end=None, strict=True):
    """Decode a SET-Response; with ``strict`` a non-success single result raises DataAccessError."""
    kind, invoke, off, end = service_head(mv, off, end, SET_RESPONSE, "set-response")
    r = SetResponse(kind, invoke)
    if kind == NORMAL:
        r.dar, off = u8(mv, off, end, "data-access-result")
    elif kind == SET_RESPONSE_DATABLOCK:
        r.block, off = u32(mv, off, end, "block-number")
    elif kind == SET_RESPONSE_LAST_DATABLOCK:
        r.dar, off = u8(mv, off, end, "data-access-result")
        r.block, off = u32(mv, off, end, "block-number")
    elif kind == SET_RESPONSE_LAST_DATABLOCK_WITH_LIST:
        r.results, off = _dar_list(mv, off, end)
        r.block, off = u32(mv, off, end, "block-number")
    elif kind == SET_RESPONSE_WITH_LIST:
        r.results, off = _dar_list(mv, off, end)
    else:
        raise ApduError("unknown set-response type %d" % kind, "set-response-type", off - 2)
    if strict and r.dar:
        check_result(r.dar, "set")
    return r


# ---------------------------------------------------------------- ACTION
def encode_action_request(buf, off, invoke, class_id, obis, method, params=None):
    """ACTION-Request-Normal; ``params`` = method-invocation-parameters (bytes or (tag, value)) or None."""
    off = put_bytes(buf, off, ACTION_REQUEST, NORMAL, invoke)
    off = encode_descriptor(buf, off, class_id, obis, method)
    if params is None:
        return put_bytes(buf, off, 0)
    off = put_bytes(buf, off, 1)
    return put_data(buf, off, params)


class ActionResponse:
    """A decoded ACTION-Response-Normal: ``invoke``, ``result`` (action-result code), and the
    optional return parameters: ``data_off``/``data_end`` or ``dar``."""

    def __init__(self, mv, invoke, result):
        self.mv = mv
        self.invoke = invoke
        self.result = result
        self.dar = None  # type: int | None
        self.data_off = None  # type: int | None
        self.data_end = None  # type: int | None

    def value(self, max_depth=8):
        """The decoded return data, or None when the meter returned none."""
        if self.data_off is None:
            return None
        return axdr.decode(self.mv, self.data_off, self.data_end, max_depth)[0]


def parse_action_response(mv, off=0, end=None, strict=True):
    """Decode an ACTION-Response-Normal; with ``strict`` a failure result raises DataAccessError."""
    kind, invoke, off, end = service_head(mv, off, end, ACTION_RESPONSE, "action-response")
    if kind != NORMAL:
        raise ApduError("unsupported action-response type %d" % kind, "action-response-type", off - 2)
    result, off = u8(mv, off, end, "action-result")
    r = ActionResponse(mv, invoke, result)
    if off < end:
        flag, off = u8(mv, off, end, "return-parameters")
        if flag == 1:
            item, off = get_data_result(mv, off, end, "return-parameters")
            r.dar = item.dar
            r.data_off, r.data_end = item.off, item.end
        elif flag != 0:
            raise ApduError("bad return-parameters flag", "return-parameters", off - 1)
    if strict:
        check_result(result, "action", True)
        if r.dar:
            check_result(r.dar, "action")
    return r
