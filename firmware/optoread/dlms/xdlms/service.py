"""The head of an xDLMS service APDU (IEC 62056-5-3), as every decoder of a meter's answer reads
it: :func:`expect` (the tag, or the meter's exception-response / confirmed-service-error raised
in its place) and :func:`service_head` (tag, service type and invoke-id of a GET, SET or ACTION
APDU).

The error answers are decoded and named by :mod:`.service_errors`, loaded at the first one
("loaded on first use" in docs/architecture.md: a meter that answers normally never sends them).
"""

from optoread.dlms.xdlms.apdu import CONFIRMED_SERVICE_ERROR, EXCEPTION_RESPONSE, bounds, expect_tag, u8


def expect(mv, off, end, tag, field):
    """``(offset after the tag, end)`` of an APDU that must start with ``tag`` (``end`` None: the
    whole buffer). An exception-response or confirmed-service-error there raises its
    :class:`~optoread.dlms.xdlms.service_errors.ExceptionResponseError` /
    :class:`~optoread.dlms.xdlms.service_errors.ConfirmedServiceError`; another tag ApduError."""
    end = bounds(mv, off, end)
    if off < end:
        t = mv[off]
        if t != tag and (t == EXCEPTION_RESPONSE or t == CONFIRMED_SERVICE_ERROR):
            from optoread.dlms.xdlms import service_errors  # the meter refused the request: name why

            err = service_errors.error_from_apdu(mv, off, end)
            if err is not None:
                raise err
    return expect_tag(mv, off, end, tag, field), end


def service_head(mv, off, end, tag, field):
    """``(kind, invoke, offset after them, end)``: the tag (as :func:`expect`), then the
    ``field``-type choice and the invoke-id byte of a GET/SET/ACTION APDU."""
    off, end = expect(mv, off, end, tag, field)
    kind, off = u8(mv, off, end, field + "-type")
    invoke, off = u8(mv, off, end, "invoke-id")
    return kind, invoke, off, end
