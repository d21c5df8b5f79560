"""xDLMS short-name (SN) APDUs (IEC 62056-5-3): ReadRequest/ReadResponse, WriteRequest/WriteResponse.

Apart from :mod:`.get` because most meters are read with logical names: the SN codecs are
loaded only when a session talks to an SN-only meter. Conventions as in :mod:`.apdu`.
"""

from optoread.compat import const
from optoread.dlms.axdr import decode as axdr
from optoread.dlms.xdlms.apdu import (
    ITEM_BLOCK,
    ITEM_DATA,
    ITEM_ERROR,
    Result,
    check_result,
    need,
    octets,
    put_bytes,
    put_data,
    put_u16,
    read_length,
    skip_data,
    u8,
    u16,
    write_length,
)
from optoread.dlms.xdlms.service import expect
from optoread.errors import ApduError

# Used by this module (and the tests and the simulator), not by a reading: kept off its heap.
READ_REQUEST = const(0x05)
WRITE_REQUEST = const(0x06)
READ_RESPONSE = const(0x0C)
WRITE_RESPONSE = const(0x0D)
ITEM_BLOCK_NUMBER = const(3)  # SN block-number (read) / write block-number

def _put_variable_access(buf, off, name):
    # Variable-Access-Specification: [2] variable-name | [4] parameterized-access
    if isinstance(name, int):
        off = put_bytes(buf, off, 2)
        return put_u16(buf, off, name)
    off = put_bytes(buf, off, 4)
    off = put_u16(buf, off, name[0])
    off = put_bytes(buf, off, name[1])
    return put_data(buf, off, name[2])


def encode_read_request(buf, off, names):
    """ReadRequest (SN): names are short names (int) or (short_name, selector, params) tuples."""
    off = put_bytes(buf, off, READ_REQUEST)
    off = write_length(buf, off, len(names))
    for n in names:
        off = _put_variable_access(buf, off, n)
    return off


def encode_read_request_block(buf, off, block_number):
    """ReadRequest with block-number-access: ask for the next block of a long read."""
    off = put_bytes(buf, off, READ_REQUEST, 1, 5)
    return put_u16(buf, off, block_number)


def encode_write_request(buf, off, names, values):
    """WriteRequest (SN): one value (bytes or (tag, value)) per name."""
    if len(names) != len(values):
        raise ApduError("one value per name", "write-request", off)
    off = put_bytes(buf, off, WRITE_REQUEST)
    off = write_length(buf, off, len(names))
    for n in names:
        off = _put_variable_access(buf, off, n)
    off = write_length(buf, off, len(values))
    for v in values:
        off = put_data(buf, off, v)
    return off


class SnResponse:
    """A decoded ReadResponse / WriteResponse: ``items`` = list of :class:`Result`."""

    def __init__(self, mv, items):
        self.mv = mv
        self.items = items

    def value(self, i=0, max_depth=8):
        """Decoded data of item ``i`` (raises DataAccessError if it is an error); None for a
        WriteResponse success, which carries no data."""
        it = self.items[i] if 0 <= i < len(self.items) else None
        if it is None:
            raise ApduError("no such item", "read-response")
        if it.kind == ITEM_ERROR:
            check_result(it.dar, "read")
        if it.kind != ITEM_DATA:
            raise ApduError("item is not data", "read-response")
        if it.off is None:  # write success (found by the 1,000,000-input fuzz run: a TypeError)
            return None
        return axdr.decode(self.mv, it.off, it.end, max_depth)[0]


def parse_read_response(mv, off=0, end=None):
    """Decode a ReadResponse (0x0C): items are data, data-access-error, data-block-result, block-number."""
    off, end = expect(mv, off, end, READ_RESPONSE, "read-response")
    n, off = read_length(mv, off, end, "list-count")
    need(mv, off, end, n * 2, "list")
    items = []
    for _ in range(n):
        choice, off = u8(mv, off, end, "read-result")
        if choice == 0:
            d_end = skip_data(mv, off, end, "data")
            items.append(Result(ITEM_DATA, None, off, d_end))
            off = d_end
        elif choice == 1:
            dar, off = u8(mv, off, end, "data-access-error")
            items.append(Result(ITEM_ERROR, dar))
        elif choice == 2:
            last, off = u8(mv, off, end, "last-block")
            block, off = u16(mv, off, end, "block-number")
            d_off, d_end = octets(mv, off, end, "raw-data")
            items.append(Result(ITEM_BLOCK, None, d_off, d_end, last != 0, block))
            off = d_end
        elif choice == 3:
            block, off = u16(mv, off, end, "block-number")
            items.append(Result(ITEM_BLOCK_NUMBER, None, None, None, False, block))
        else:
            raise ApduError("bad read-result choice %d" % choice, "read-result", off - 1)
    return SnResponse(mv, items)


def parse_write_response(mv, off=0, end=None):
    """Decode a WriteResponse (0x0D): items are success (ITEM_DATA with no data), errors, block numbers."""
    off, end = expect(mv, off, end, WRITE_RESPONSE, "write-response")
    n, off = read_length(mv, off, end, "list-count")
    need(mv, off, end, n, "list")
    items = []
    for _ in range(n):
        choice, off = u8(mv, off, end, "write-result")
        if choice == 0:
            items.append(Result(ITEM_DATA))
        elif choice == 1:
            dar, off = u8(mv, off, end, "data-access-error")
            items.append(Result(ITEM_ERROR, dar))
        elif choice == 2:
            block, off = u16(mv, off, end, "block-number")
            items.append(Result(ITEM_BLOCK_NUMBER, None, None, None, False, block))
        else:
            raise ApduError("bad write-result choice %d" % choice, "write-result", off - 1)
    return SnResponse(mv, items)
