"""xDLMS push APDUs (IEC 62056-5-3): data-notification and general-block-transfer.

Apart from :mod:`.get` because the reader asks and the meter answers: pushes are decoded by the
laptop tools (captures of P1/HAN ports) and by code that listens to a push port, never on a
reading's heap. Conventions as in :mod:`.apdu`.
"""

from optoread.dlms.axdr import decode as axdr
from optoread.dlms.xdlms.apdu import DATA_NOTIFICATION, GENERAL_BLOCK_TRANSFER, need, octets, u8, u16, u32
from optoread.dlms.xdlms.service import expect
from optoread.errors import ApduError


def parse_data_notification(mv, off=0, end=None):
    """Decode a data-notification (0x0F): ``(long_invoke_id, date_time_or_None, body_off, body_end)``.

    ``long_invoke_id`` is the whole Long-Invoke-Id-And-Priority (see :func:`long_invoke_id`).
    The date-time may be absent (00), ``0C`` + 12 bytes, or Kaifa's ``09 0C`` + 12 bytes; it is
    returned as an ``axdr.DateTime``. The body is one A-XDR Data element.
    """
    off, end = expect(mv, off, end, DATA_NOTIFICATION, "data-notification")
    inv, off = u32(mv, off, end, "long-invoke-id")
    n, off = u8(mv, off, end, "date-time")
    dt = None
    if n == 0x09:  # Kaifa: an A-XDR octet-string tag before the length
        n, off = u8(mv, off, end, "date-time")
        if n != 12:
            raise ApduError("date-time must be 12 bytes", "date-time", off - 1)
    if n:
        if n != 12:
            raise ApduError("date-time must be 12 bytes", "date-time", off - 1)
        need(mv, off, end, 12, "date-time")
        dt = _datetime(mv, off)
        off += 12
    if off >= end:
        raise ApduError("missing notification body", "notification-body", off)
    return inv, dt, off, end


def _datetime(mv, off):
    # Any 12 octets make a DateTime (fields are kept raw); the caller checked they are present.
    return axdr.DateTime.from_bytes(mv, off)


class Gbt:
    """One general-block-transfer APDU: ``last``, ``streaming``, ``window``, ``block``, ``ack``,
    block data at ``data_off``/``data_end``."""

    def __init__(self, control, block, ack, data_off, data_end):
        self.last = bool(control & 0x80)
        self.streaming = bool(control & 0x40)
        self.window = control & 0x3F
        self.block = block
        self.ack = ack
        self.data_off = data_off
        self.data_end = data_end


def parse_gbt(mv, off=0, end=None):
    """Decode a general-block-transfer APDU (0xE0) into a :class:`Gbt`."""
    off, end = expect(mv, off, end, GENERAL_BLOCK_TRANSFER, "general-block-transfer")
    control, off = u8(mv, off, end, "block-control")
    block, off = u16(mv, off, end, "block-number")
    ack, off = u16(mv, off, end, "block-number-ack")
    d_off, d_end = octets(mv, off, end, "block-data")
    return Gbt(control, block, ack, d_off, d_end)


class GbtAssembler:
    """Reassembles general-block-transfer blocks into a caller-provided ``bytearray``.

    Blocks must arrive in order starting at 1 (E450/E570 pushes); a gap, a repeat, or
    more data than ``buf`` holds raises :class:`ApduError` and resets the assembler.
    """

    def __init__(self, buf):
        self.buf = buf
        self.reset()

    def reset(self):
        """Forget any partial transfer."""
        self.n = 0
        self.block = 0
        self.done = False

    def feed(self, mv, off=0, end=None):
        """Add one GBT APDU; returns True when the last block has been added."""
        g = parse_gbt(mv, off, end)
        if self.done:
            self.reset()
        if g.block != self.block + 1:
            expected = self.block + 1
            self.reset()
            raise ApduError("GBT block %d out of order (expected %d)" % (g.block, expected),
                            "block-number", off + 2)
        k = g.data_end - g.data_off
        if self.n + k > len(self.buf):
            self.reset()
            raise ApduError("GBT data exceeds the %d-byte buffer" % len(self.buf), "block-data", off)
        memoryview(self.buf)[self.n:self.n + k] = memoryview(mv)[g.data_off:g.data_end]
        self.n += k
        self.block = g.block
        self.done = g.last
        return g.last

    def apdu(self):
        """A memoryview of the reassembled APDU (valid once :meth:`feed` returned True)."""
        return memoryview(self.buf)[:self.n]
