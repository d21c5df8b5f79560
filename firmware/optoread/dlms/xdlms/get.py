"""xDLMS GET (IEC 62056-5-3, LN referencing): GET-Request normal, next and with-list, and the
GET-Response (normal, datablock, with-list) with its Get-Data-Result items.

What a reading asks of a meter. Conventions as in :mod:`.apdu`: encoders write into the
caller's buffer and return the new offset; the decoded response holds offsets into the
caller's buffer (``data_off``/``data_end``), so a profile buffer can be streamed to the A-XDR
decoder instead of being copied. A meter's refusal raises
:class:`~optoread.errors.DataAccessError` carrying the result code; an exception-response or
confirmed-service-error in place of the response raises its error (:mod:`.service`).
"""

from optoread.dlms.axdr import decode as axdr
from optoread.dlms.xdlms.apdu import (
    GET_REQUEST,
    GET_RESPONSE,
    ITEM_DATA,
    ITEM_ERROR,
    NEXT,
    NORMAL,
    WITH_DATABLOCK,
    WITH_LIST,
    Result,
    check_result,
    encode_descriptor,
    need,
    octets,
    put_access,
    put_bytes,
    put_descriptor_list,
    put_u32,
    read_length,
    skip_data,
    u8,
    u32,
)
from optoread.dlms.xdlms.service import service_head
from optoread.errors import ApduError


def encode_get_request(buf, off, invoke, class_id, obis, attr, selector=0, params=None):
    """GET-Request-Normal. ``invoke`` is the Invoke-Id-And-Priority byte.

    With ``selector`` (1 range, 2 entry) the access-selection is written; ``params`` is
    the pre-encoded parameter (bytes or (tag, value)). With ``params=None`` the caller
    writes it at the returned offset, e.g. with :func:`.apdu.encode_range_descriptor`.
    """
    off = put_bytes(buf, off, GET_REQUEST, NORMAL, invoke)
    off = encode_descriptor(buf, off, class_id, obis, attr)
    return put_access(buf, off, selector, params)


def encode_get_request_next(buf, off, invoke, block_number):
    """GET-Request-Next: ask for the block after ``block_number`` (the last one received)."""
    off = put_bytes(buf, off, GET_REQUEST, NEXT, invoke)
    return put_u32(buf, off, block_number)


def encode_get_request_list(buf, off, invoke, items):
    """GET-Request-With-List; items as for :func:`.apdu.put_descriptor_list`."""
    off = put_bytes(buf, off, GET_REQUEST, WITH_LIST, invoke)
    return put_descriptor_list(buf, off, items)


class GetResponse:
    """A decoded GET-Response.

    ``kind``: NORMAL, WITH_DATABLOCK or WITH_LIST; ``invoke``: the invoke-id byte.
    Normal: ``data_off``/``data_end`` (one A-XDR Data element) or ``dar``.
    Datablock: ``last``, ``block`` (verify the sequence!), raw-data at ``data_off``/``data_end``
    (a slice of the A-XDR encoding, to be concatenated with the other blocks) or ``dar``.
    With-list: ``items`` = list of :class:`Result`.
    """

    def __init__(self, mv, kind, invoke):
        self.mv = mv
        self.kind = kind
        self.invoke = invoke
        self.dar = None  # type: int | None
        self.data_off = None  # type: int | None
        self.data_end = None  # type: int | None
        self.last = True
        self.block = None  # type: int | None
        self.items = None  # type: list | None

    def value(self, max_depth=8):
        """The decoded Data of a normal response (A-XDR)."""
        if self.data_off is None:
            raise ApduError("response carries no data", "get-response")
        return axdr.decode(self.mv, self.data_off, self.data_end, max_depth)[0]

    def data(self):
        """A memoryview of the data (normal) or raw block data (datablock)."""
        if self.data_off is None:
            raise ApduError("response carries no data", "get-response")
        return memoryview(self.mv)[self.data_off:self.data_end]


def get_data_result(mv, off, end, field):
    """``(Result, offset after it)`` of a Get-Data-Result: 00 Data | 01 Data-Access-Result (the
    items of a GET-Response-With-List, and ACTION's return parameters)."""
    choice, off = u8(mv, off, end, field)
    if choice == 0:
        d_end = skip_data(mv, off, end, field)
        return Result(ITEM_DATA, None, off, d_end), d_end
    if choice == 1:
        dar, off = u8(mv, off, end, "data-access-result")
        return Result(ITEM_ERROR, dar), off
    raise ApduError("bad Get-Data-Result choice %d" % choice, field, off - 1)


def parse_get_response(mv, off=0, end=None, strict=True):
    """Decode a GET-Response into a :class:`GetResponse`.

    With ``strict`` (default) a normal or datablock response carrying a
    data-access-result raises :class:`DataAccessError`; with-list items never raise
    (check each with :func:`check_result`). An exception-response or
    confirmed-service-error raises :class:`ApduError`.
    """
    kind, invoke, off, end = service_head(mv, off, end, GET_RESPONSE, "get-response")
    r = GetResponse(mv, kind, invoke)
    if kind == NORMAL:
        choice, off = u8(mv, off, end, "result")
        if choice == 0:
            # The Data element is the rest of the APDU; the caller decodes or streams it.
            if off >= end:
                raise ApduError("truncated", "data", off)
            r.data_off, r.data_end = off, end
        elif choice == 1:
            r.dar, off = u8(mv, off, end, "data-access-result")
        else:
            raise ApduError("bad Get-Data-Result choice %d" % choice, "result", off - 1)
    elif kind == WITH_DATABLOCK:
        last, off = u8(mv, off, end, "last-block")
        r.last = last != 0
        r.block, off = u32(mv, off, end, "block-number")
        choice, off = u8(mv, off, end, "result")
        if choice == 0:
            r.data_off, r.data_end = octets(mv, off, end, "raw-data")
        elif choice == 1:
            r.dar, off = u8(mv, off, end, "data-access-result")
        else:
            raise ApduError("bad DataBlock-G result choice %d" % choice, "result", off - 1)
    elif kind == WITH_LIST:
        n, off = read_length(mv, off, end, "list-count")
        need(mv, off, end, n * 2, "list")  # each result takes at least 2 bytes
        items = []
        for _ in range(n):
            item, off = get_data_result(mv, off, end, "result")
            items.append(item)
        r.items = items
    else:
        raise ApduError("unknown get-response type %d" % kind, "get-response-type", off - 2)
    if strict and r.dar is not None:
        check_result(r.dar, "get")
    return r
