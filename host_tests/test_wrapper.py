"""IEC 62056-47 wrapper framing."""

import portable
from optoread.dlms import wrapper
from optoread.errors import LinkError

PORTABLE = True

# AARQ wrapped for server 1 from client 16 (header as in the Green Book examples).
FRAME = bytes([0, 1, 0, 16, 0, 1, 0, 3, 0x60, 0x01, 0x00])


def test_wrap_and_receive_whole_and_byte_by_byte():
    assert wrapper.wrap(16, 1, b"\x60\x01\x00") == FRAME
    for step in (len(FRAME) * 2, 1, 3):
        rx = wrapper.WrapperReceiver(64)
        data = FRAME + FRAME
        got = []
        i = 0
        while i < len(data):
            j = min(i + step, len(data))
            off = i
            while off < j:
                off = rx.feed(data, off, j)
                if rx.ready:
                    got.append((rx.source, rx.destination, bytes(rx.apdu())))
            i = j
        assert got == [(16, 1, b"\x60\x01\x00")] * 2, step


def test_bad_input_is_a_link_error():
    rx = wrapper.WrapperReceiver(4)
    e = portable.raises(LinkError, rx.feed, b"\x00\x02\x00\x10\x00\x01\x00\x01\x00")
    assert e.field == "version"
    rx = wrapper.WrapperReceiver(4)
    e = portable.raises(LinkError, rx.feed, b"\x00\x01\x00\x10\x00\x01\x00\x05")
    assert e.field == "length"
    portable.raises(LinkError, wrapper.encode_header, bytearray(9), 0, 1, 1, 5)
