"""The viper byte loops (compat.viper): CRC-16/X.25 and the HDLC copy agree with their Python
versions, are the ones in use on MicroPython, and are never handed a range beyond the buffer."""

import portable
from optoread import compat, crc
from optoread.dlms.hdlc import frame as hdlc
from optoread.errors import LinkError

PORTABLE = True


def _bytes(n, seed):
    # deterministic pseudo-random octets (no random.Random on every port)
    out = bytearray(n)
    x = seed
    for i in range(n):
        x = (x * 1103515245 + 12345) & 0x7FFFFFFF
        out[i] = x >> 16 & 0xFF
    return out


def test_machine_code_is_in_use_on_micropython():
    if not portable.IS_MICROPYTHON:
        assert crc._x25_run is crc._x25_py and hdlc._copy is hdlc._copy_py
        return
    # a source that stopped compiling would fall back silently (correct, but 40x slower on a board)
    assert crc._x25_run is not crc._x25_py
    assert hdlc._copy is not hdlc._copy_py


def test_viper_falls_back_when_the_source_does_not_compile():
    def fallback():
        return 1

    assert compat.viper(fallback, "@micropython.viper\ndef f(:\n") is fallback
    assert not hasattr(compat, "f")


def test_x25_agrees_with_python():
    data = _bytes(300, 7)
    for buf in (bytes(data), data, memoryview(data), memoryview(data)[13:250]):
        n = len(buf)
        for start, end in ((0, n), (0, 0), (5, 6), (n - 1, n), (17, n - 3), (9, 9)):
            for c in (0xFFFF, 0, 0x1234):
                assert crc._x25_run(c, buf, start, end, crc._X25) == crc._x25_py(c, buf, start, end, crc._X25)
        assert crc.crc16_x25(buf) == crc._x25_py(0xFFFF, buf, 0, n, crc._X25) ^ 0xFFFF


def test_x25_out_of_range_is_python_not_machine_code():
    data = b"123456789"
    portable.raises(IndexError, crc.crc16_x25, data, 0, 10)
    portable.raises(IndexError, crc.crc16_x25_update, 0xFFFF, data, 0, 10)
    # a negative start reads from the end, as Python indexing does; never before the buffer
    assert crc.crc16_x25(data, -1, 5) == crc._x25_py(0xFFFF, data, -1, 5, crc._X25) ^ 0xFFFF


def test_copy_agrees_with_slices():
    src = _bytes(200, 3)
    for s in (bytes(src), src, memoryview(src)[7:150]):
        for d, o, n in ((0, 0, len(s)), (3, 5, 40), (0, len(s) - 1, 1), (10, 20, 0)):
            dst = bytearray(len(s) + 16)
            want = bytearray(dst)
            want[d:d + n] = bytes(s[o:o + n])
            hdlc._copy(dst, d, s, o, n)
            assert dst == want
    # within one buffer, forward (the receiver's replay: destination before source)
    b = bytearray(b"0123456789")
    hdlc._copy(b, 1, b, 4, 6)
    assert b == bytearray(b"0456789789")


def test_receiver_clamps_end_and_refuses_a_negative_offset():
    buf = bytearray(40)
    end = hdlc.encode_frame(buf, 0, hdlc.encode_client_address(16), hdlc.encode_server_address(1, 17, 2),
                            0x93)
    rx = hdlc.FrameReceiver(64)
    assert rx.feed(buf, 0, end + 100) == end - 1 and rx.ready  # the closing flag is left for next
    portable.raises(LinkError, rx.feed, buf, -1, end)


def test_reassembler_never_copies_beyond_its_source():
    ra = hdlc.Reassembler(64)
    portable.raises(IndexError, ra.add_bytes, b"abc", 1, 5, True)
    assert ra.add_bytes(b"abcdef", 1, 4, True) and bytes(ra.data()) == b"bcde"
