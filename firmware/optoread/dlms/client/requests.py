"""What the session and its procedure modules (get_list, set_action, sn, tcp) share: the OBIS
argument of a request as 6 bytes, and block-transfer bookkeeping (progress text, the end of a
streamed array)."""

from optoread import obis
from optoread.errors import SessionError


def obis_bytes(code):
    """6-byte OBIS code from bytes or text (any form :func:`optoread.obis.parse` accepts)."""
    if isinstance(code, str):
        return obis.parse(code)
    if len(code) != 6:
        raise SessionError("OBIS code must be 6 bytes", "obis")
    return bytes(code)


def stream_done(stream, what):
    """The element count of a streamed array; SessionError if it ended before its count."""
    if not stream.done or stream.pending():
        raise SessionError("%s: array ended after %d of %r elements" % (what, stream.received,
                                                                        stream.expected), "array")
    return stream.received


def block_progress(what, n, stream):
    """Progress text after block ``n`` of a long value (with the entries so far when streaming)."""
    more = "" if stream is None else ", %d entries" % stream.received
    return "%s: block %d%s" % (what, n, more)
