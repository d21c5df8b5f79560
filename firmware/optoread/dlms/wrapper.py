"""IEC 62056-47 wrapper (DLMS over TCP/UDP without HDLC): an 8-byte header before each APDU.

    version (2) = 0x0001 | source wPort (2) | destination wPort (2) | length (2) | APDU

wPorts are the DLMS client and server addresses (client 16 = public, server 1 =
management logical device). Sans-IO: ``encode_header`` writes into a caller's
buffer; ``WrapperReceiver`` is fed bytes and yields one APDU at a time from a
buffer allocated once.
"""

import struct

from optoread.compat import const
from optoread.errors import LinkError

VERSION = const(1)
HEADER_LEN = const(8)


def encode_header(buf, off, source, destination, length):
    """Write the wrapper header for an APDU of ``length`` bytes; returns the APDU offset."""
    if not 0 <= length <= 0xFFFF:
        raise LinkError("APDU too long for the wrapper", field="length")
    if len(buf) < off + HEADER_LEN + length:
        raise LinkError("buffer too small for the wrapped APDU", field="length", offset=off)
    struct.pack_into(">HHHH", buf, off, VERSION, source, destination, length)
    return off + HEADER_LEN


def wrap(source, destination, apdu):
    """The wrapped bytes of ``apdu`` (allocates; for tools and tests)."""
    buf = bytearray(HEADER_LEN + len(apdu))
    off = encode_header(buf, 0, source, destination, len(apdu))
    buf[off:] = apdu
    return bytes(buf)


class WrapperReceiver:
    """Reassembles wrapped APDUs from a byte stream (TCP delivers them in arbitrary pieces).

    ``feed(data, off=0, end=None) -> off`` consumes bytes up to the end of one APDU;
    when ``ready`` is true, ``apdu()`` is a memoryview of it and ``source`` /
    ``destination`` name the wPorts. A bad version or an APDU longer than
    ``capacity`` raises LinkError (a TCP stream cannot be resynchronised).
    """

    def __init__(self, capacity=2048):
        self._buf = bytearray(HEADER_LEN + capacity)
        self._mv = memoryview(self._buf)
        self.capacity = capacity
        self.reset()

    def reset(self):
        self._n = 0
        self._need = HEADER_LEN
        self.ready = False
        self.source = self.destination = self.length = 0

    def feed(self, data, off=0, end=None):
        if end is None:
            end = len(data)
        if self.ready:
            self.reset()
        buf = self._buf
        while off < end:
            take = min(self._need - self._n, end - off)
            buf[self._n : self._n + take] = data[off : off + take]
            self._n += take
            off += take
            if self._n < self._need:
                continue
            if self._need == HEADER_LEN:
                version, self.source, self.destination, self.length = struct.unpack_from(">HHHH", buf, 0)
                if version != VERSION:
                    raise LinkError("wrapper version %d, expected 1" % version, field="version", offset=0)
                if self.length > self.capacity:
                    raise LinkError("wrapped APDU of %d bytes exceeds %d" % (self.length, self.capacity),
                                    field="length", offset=6)
                self._need = HEADER_LEN + self.length
                if self.length:
                    continue
            self.ready = True
            return off
        return off

    def apdu(self):
        return self._mv[HEADER_LEN : HEADER_LEN + self.length]
