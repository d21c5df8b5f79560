"""Checksums against published check values and real captures."""

from optoread import crc

PORTABLE = True


def test_check_values():
    # The standard "123456789" check values of the CRC catalogue.
    assert crc.crc16_arc(b"123456789") == 0xBB3D
    assert crc.crc16_x25(b"123456789") == 0x906E


def test_running_values_equal_whole():
    data = b"/ISK5\\2M550T-1012\r\n\r\n1-0:1.8.1(000671.578*kWh)\r\n!"
    part = crc.crc16_arc(data, 0, 10)
    assert crc.crc16_arc(data, 10, None, part) == crc.crc16_arc(data)
    r = crc.crc16_x25_update(0xFFFF, data, 0, 7)
    assert crc.crc16_x25_update(r, data, 7) ^ 0xFFFF == crc.crc16_x25(data)


def test_bcc():
    assert crc.bcc(b"\x01\x02\x03") == 0
    assert crc.bcc(b"\x02AB\x03", 1) == ord("A") ^ ord("B") ^ 3


def test_hdlc_fcs_of_a_real_frame():
    # UA from a Fiorentini gas meter (u9n/dlms-cosem tests): 7E A0 07 21 03 73 01 40 7E.
    frame = bytes([0xA0, 0x07, 0x21, 0x03, 0x73])
    fcs = crc.crc16_x25(frame)
    assert bytes([fcs & 0xFF, fcs >> 8]) == bytes([0x01, 0x40])


def test_crc32_check_value_and_running():
    assert crc.crc32(b"123456789") == 0xCBF43926
    assert crc.crc32(b"6789", crc.crc32(b"12345")) == 0xCBF43926
    assert crc._crc32_soft(b"123456789") == 0xCBF43926


def test_crc32_write_allocation_free_form():
    data = bytearray(b"xx123456789yy") + bytearray(4)
    crc.crc32_write(data, 2, 11, 13)
    assert data[13:] == bytearray((0x26, 0x39, 0xF4, 0xCB))  # 0xCBF43926 little-endian
    crc.crc32_write(data, 0, 0, 13)
    assert data[13:] == bytearray(4)
