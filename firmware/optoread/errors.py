"""One exception hierarchy for the whole firmware.

Every parser and state machine raises a subclass of :class:`OptoreadError` for
bad input, naming the layer, the field that was wrong and, where it applies,
the byte offset. Nothing else (IndexError, ValueError, ...) may escape a parser.
"""


INTERRUPTED = "interrupted by the user"  # the error of a reading stopped by ^C or the button


class OptoreadError(Exception):
    """Base class: ``layer``, ``field`` and ``offset`` say where the problem is."""

    layer = "optoread"

    def __init__(self, message, field=None, offset=None):
        super().__init__(message)
        self.message = message
        self.field = field
        self.offset = offset

    def __str__(self):
        where = ""
        if self.field is not None:
            where = " [" + str(self.field)
            if self.offset is not None:
                where += " @ %d" % self.offset
            where += "]"
        elif self.offset is not None:
            where = " [@ %d]" % self.offset
        return "%s: %s%s" % (self.layer, self.message, where)


class ObisError(OptoreadError):
    layer = "obis"


class Iec21Error(OptoreadError):
    """IEC 62056-21 (optical sign-on, readout, programming mode)."""

    layer = "iec62056-21"


class ChecksumError(Iec21Error):
    """A readout whose BCC or CRC does not verify: nothing of it is valid."""


class NoAnswerError(OptoreadError):
    """The meter stayed silent; ``tried`` lists what was attempted."""

    layer = "line"

    def __init__(self, message, tried=None, field=None, offset=None):
        OptoreadError.__init__(self, message, field, offset)
        self.tried = tried or []


class TransportError(OptoreadError):
    layer = "transport"


class DeadlineError(OptoreadError):
    """An answer that never ended, or a reading past its overall deadline (``driver``)."""

    layer = "line"


class LinkError(OptoreadError):
    """HDLC (IEC 62056-46) framing and connection errors."""

    layer = "hdlc"


class AxdrError(OptoreadError):
    layer = "a-xdr"


class ApduError(OptoreadError):
    """ACSE / xDLMS APDU encoding and decoding."""

    layer = "apdu"


class DataAccessError(ApduError):
    """The meter answered a request with a data-access-result other than success."""

    def __init__(self, message, result=None, field=None, offset=None):
        ApduError.__init__(self, message, field, offset)
        self.result = result


class SecurityError(OptoreadError):
    """Ciphering / authentication (GCM tag, system title, invocation counter)."""

    layer = "security"


class SessionError(OptoreadError):
    layer = "session"


class StoreError(OptoreadError):
    layer = "store"


class ConsoleError(OptoreadError):
    layer = "console"
