"""xDLMS errors from the meter (IEC 62056-5-3): exception-response (0xD8) and
confirmed-service-error (0x0E), decoded and named.

Apart from :mod:`.apdu` because a meter that answers normally never sends them: the decoders
and their name tables are loaded at the first such answer (:func:`.service.expect`; "loaded on first use" in
docs/architecture.md: RAM on a board).
"""

from optoread.dlms.xdlms.apdu import CONFIRMED_SERVICE_ERROR, EXCEPTION_RESPONSE, bounds, expect_tag, u8, u32
from optoread.errors import ApduError

_STATE_ERRORS = ("?", "service-not-allowed", "service-unknown")
_SERVICE_ERRORS = ("?", "operation-not-possible", "service-not-supported", "other-reason",
                   "pdu-too-long", "deciphering-error", "invocation-counter-error")
_CSE_SERVICES = ("?", "initiate", "get-status", "get-name-list", "get-variable-attribute", "read",
                 "write", "get-data-set-attribute", "get-ti-attribute", "change-scope", "start",
                 "stop", "resume", "make-usable", "initiate-load", "load-segment", "terminate-load",
                 "initiate-upload", "upload-segment", "terminate-upload")
_CSE_TYPES = ("application-reference", "hardware-resource", "vde-state-error", "service",
              "definition", "access", "initiate", "load-data-set", "change-scope", "task", "other")
_CSE_CODES = {
    0: ("other", "time-elapsed", "application-unreachable", "application-reference-invalid",
        "application-context-unsupported", "provider-communication-error", "deciphering-error"),
    1: ("other", "memory-unavailable", "processor-resource-unavailable",
        "mass-storage-unavailable", "other-resource-unavailable"),
    3: ("other", "pdu-size", "service-unsupported"),
    4: ("other", "object-undefined", "object-class-inconsistent", "object-attribute-inconsistent"),
    5: ("other", "scope-of-access-violated", "object-access-violated", "hardware-fault",
        "object-unavailable"),
    6: ("other", "dlms-version-too-low", "incompatible-conformance", "pdu-size-too-short",
        "refused-by-the-vde-handler"),
}


def _name(table, i):
    return table[i] if 0 <= i < len(table) else str(i)


def _expect(mv, off, end, tag, field):
    # apdu.expect_tag, and the other error answer in its place raises its error (as service.expect)
    end = bounds(mv, off, end)
    if off < end and mv[off] != tag:
        err = error_from_apdu(mv, off, end)
        if err is not None:
            raise err
    return expect_tag(mv, off, end, tag, field), end


def parse_exception_response(mv, off=0, end=None):
    """``(state_error, service_error, invocation_counter_or_None)`` of an exception-response (0xD8)."""
    off, end = _expect(mv, off, end, EXCEPTION_RESPONSE, "exception-response")
    state, off = u8(mv, off, end, "state-error")
    service, off = u8(mv, off, end, "service-error")
    counter = None
    if service == 6:
        counter, off = u32(mv, off, end, "invocation-counter")
    return state, service, counter


def parse_confirmed_service_error(mv, off=0, end=None):
    """``(service, error_type, code)`` of a confirmed-service-error (0x0E)."""
    off, end = _expect(mv, off, end, CONFIRMED_SERVICE_ERROR, "confirmed-service-error")
    service, off = u8(mv, off, end, "service")
    kind, off = u8(mv, off, end, "service-error")
    code, off = u8(mv, off, end, "service-error")
    return service, kind, code


def confirmed_service_error_text(service, kind, code):
    """Readable text, e.g. ``initiate: initiate/dlms-version-too-low``."""
    codes = _CSE_CODES.get(kind)
    return "%s: %s/%s" % (_name(_CSE_SERVICES, service), _name(_CSE_TYPES, kind),
                          _name(codes, code) if codes else str(code))


class ExceptionResponseError(ApduError):
    """The meter answered with an exception-response (0xD8)."""

    def __init__(self, message, state_error, service_error, invocation_counter=None, offset=None):
        ApduError.__init__(self, message, "exception-response", offset)
        self.state_error = state_error
        self.service_error = service_error
        self.invocation_counter = invocation_counter


class ConfirmedServiceError(ApduError):
    """The meter answered with a confirmed-service-error (0x0E)."""

    def __init__(self, message, service, error_type, code, offset=None):
        ApduError.__init__(self, message, "confirmed-service-error", offset)
        self.service = service
        self.error_type = error_type
        self.code = code


def error_from_apdu(mv, off=0, end=None):
    """An :class:`ApduError` describing an exception-response or confirmed-service-error, else None.

    The error is an :class:`ExceptionResponseError` (``state_error``, ``service_error``,
    ``invocation_counter``) or a :class:`ConfirmedServiceError` (``service``, ``error_type``,
    ``code``).
    """
    end = bounds(mv, off, end)
    if off >= end:
        return None
    tag = mv[off]
    if tag == EXCEPTION_RESPONSE:
        state, service, counter = parse_exception_response(mv, off, end)
        msg = "exception-response: %s, %s" % (_name(_STATE_ERRORS, state),
                                               _name(_SERVICE_ERRORS, service))
        if counter is not None:
            msg += " (meter invocation counter %d)" % counter
        return ExceptionResponseError(msg, state, service, counter, off)
    if tag == CONFIRMED_SERVICE_ERROR:
        service, kind, code = parse_confirmed_service_error(mv, off, end)
        return ConfirmedServiceError("confirmed-service-error "
                                     + confirmed_service_error_text(service, kind, code),
                                     service, kind, code, off)
    return None
