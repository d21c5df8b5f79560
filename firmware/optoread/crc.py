"""Checksums: IEC 62056-21 BCC, DSMR CRC-16/ARC, HDLC CRC-16/X.25, and CRC-32 for stored records.

Tables are built once into ``array`` objects (512 bytes each: X.25 at import, ARC at its first
use) so the per-byte cost is one lookup; nothing is allocated per call.
"""

from array import array

from optoread.compat import const, viper

_POLY_ARC_REFLECTED = const(0xA001)  # x^16 + x^15 + x^2 + 1, reflected
_POLY_X25_REFLECTED = const(0x8408)  # x^16 + x^12 + x^5 + 1, reflected


def _table(poly):
    t = array("H", bytes(512))
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ poly if c & 1 else c >> 1
        t[i] = c
    return t


_X25 = _table(_POLY_X25_REFLECTED)
_ARC = []  # built by the first crc16_arc (mode D readouts only): not on a DLMS reading's heap


def bcc(data, start=0, end=None, value=0):
    """IEC 62056-21 block check: XOR of the bytes (after STX up to and including ETX)."""
    if end is None:
        end = len(data)
    for i in range(start, end):
        value ^= data[i]
    return value


def crc16_arc(data, start=0, end=None, crc=0):
    """CRC-16/ARC (DSMR P1 telegram CRC over "/" .. "!"); pass ``crc`` to continue a running value."""
    if end is None:
        end = len(data)
    if not _ARC:
        _ARC.append(_table(_POLY_ARC_REFLECTED))
    t = _ARC[0]
    for i in range(start, end):
        crc = (crc >> 8) ^ t[(crc ^ data[i]) & 0xFF]
    return crc


def _x25_py(crc, data, start, end, t):
    for i in range(start, end):
        crc = (crc >> 8) ^ t[(crc ^ data[i]) & 0xFF]
    return crc


# The register over data[start:end]. Every byte of every HDLC frame goes through it (HCS, FCS):
# machine code where the port has a native emitter (compat.viper; ~40x faster on an RP2040).
_x25_run = viper(_x25_py, "@micropython.viper\n"
                 "def f(c:int,d:ptr8,i:int,e:int,t:ptr16)->int:\n"
                 " while i<e:\n"
                 "  c=(c>>8)^t[(c^d[i])&255]\n"
                 "  i+=1\n"
                 " return c")


def crc16_x25_update(crc, data, start=0, end=None):
    """Running CRC-16/X.25 register (start with 0xFFFF; finish with ``^ 0xFFFF``)."""
    n = len(data)
    if end is None:
        end = n
    if start < 0 or end > n or not 0 <= crc <= 0xFFFF:
        return _x25_py(crc, data, start, end, _X25)  # as before (IndexError...): viper checks nothing
    return _x25_run(crc, data, start, end, _X25)


def crc16_x25(data, start=0, end=None):
    """HDLC HCS/FCS value: CRC-16/X.25, sent low byte first."""
    n = len(data)
    if end is None:
        end = n
    if start < 0 or end > n:
        return _x25_py(0xFFFF, data, start, end, _X25) ^ 0xFFFF
    return _x25_run(0xFFFF, data, start, end, _X25) ^ 0xFFFF  # not via crc16_x25_update: a call less


try:
    from binascii import crc32 as _crc32_native
except ImportError:  # a port built without binascii.crc32
    _crc32_native = None


def _crc32_soft(data, crc=0):
    crc ^= 0xFFFFFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ 0xEDB88320 if crc & 1 else crc >> 1
    return crc ^ 0xFFFFFFFF


def crc32(data, crc=0):
    """CRC-32 (IEEE, as zlib/binascii); pass ``crc`` to continue a running value."""
    if _crc32_native is not None:
        return _crc32_native(data, crc) & 0xFFFFFFFF
    return _crc32_soft(data, crc)


def _crc32_tables():
    lo = array("H", bytes(512))
    hi = array("H", bytes(512))
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0xEDB88320 if c & 1 else c >> 1
        lo[i] = c & 0xFFFF
        hi[i] = c >> 16
    return lo, hi


_C32LO, _C32HI = _crc32_tables()


def crc32_write(buf, start, end, out):
    """Write the CRC-32 of ``buf[start:end]`` little-endian at ``buf[out:out + 4]``, allocating
    nothing: the register is kept as two 16-bit halves, so every intermediate value is a small
    int even on a 32-bit board (small ints end at 2**30), and no result object is returned.
    The store's append path uses it under ``micropython.heap_lock()``.
    """
    tlo = _C32LO
    thi = _C32HI
    lo = 0xFFFF
    hi = 0xFFFF
    for i in range(start, end):
        x = (lo ^ buf[i]) & 0xFF
        lo = ((lo >> 8) | ((hi & 0xFF) << 8)) ^ tlo[x]
        hi = (hi >> 8) ^ thi[x]
    lo ^= 0xFFFF
    hi ^= 0xFFFF
    buf[out] = lo & 0xFF
    buf[out + 1] = lo >> 8
    buf[out + 2] = hi & 0xFF
    buf[out + 3] = hi >> 8
