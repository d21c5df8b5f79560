"""A-XDR Data: lengths, every type, errors, date/time and calendar, ArrayStream, real captures."""

import gc
import random

from optoread.dlms.axdr import compact as axdr_compact
from optoread.dlms.axdr import data as D  # lengths, AxdrTruncated
from optoread.dlms.axdr import decode as A
from optoread.dlms.axdr import encode as T  # the encoder and the Data tags
from optoread.dlms.axdr import types as axdr_types
from optoread.errors import AxdrError
from portable import IS_MICROPYTHON, raises, read_bytes, shared_or_skip

PORTABLE = True


def h(text):
    return bytes.fromhex(text.replace(" ", "").replace("\n", ""))


# ------------------------------------------------------------------ lengths


def test_length_forms_round_trip():
    for n, wire in (
        (0, "00"), (0x7F, "7F"), (0x80, "81 80"), (0xFF, "81 FF"), (0x100, "82 01 00"),
        (0x49E, "82 04 9E"), (0xFFFF, "82 FF FF"), (0x10000, "83 01 00 00"), (0x1000000, "84 01 00 00 00"),
        (0xFFFFFFFF, "84 FF FF FF FF"),
    ):
        buf = bytearray(8)
        end = D.encode_length(buf, 1, n)
        assert bytes(buf[1:end]) == h(wire), (n, buf)
        assert D.length_size(n) == end - 1
        # decode_length insists the announced bytes are present: supply them only for small n
        if n < 300:
            data = h(wire) + bytes(n)
            assert D.decode_length(data, 0, len(data)) == (n, len(h(wire)))


def test_length_rejects_bad_forms_and_missing_bytes():
    for bad in ("80", "85 00 00 00 00 00", "FF"):
        e = raises(AxdrError, D.decode_length, h(bad), 0, len(h(bad)))
        assert e.field == "length"
    # announced > present: AxdrTruncated (a subclass of AxdrError)
    raises(D.AxdrTruncated, D.decode_length, h("05 01 02"), 0, 3)
    raises(D.AxdrTruncated, D.decode_length, h("84 FF FF FF FF 00"), 0, 6)
    raises(D.AxdrTruncated, D.decode_length, h("82 01"), 0, 2)
    raises(D.AxdrTruncated, D.decode_length, b"", 0, 0)
    raises(AxdrError, D.encode_length, bytearray(8), 0, -1)
    raises(AxdrError, D.encode_length, bytearray(8), 0, 1 << 32)
    raises(AxdrError, D.encode_length, bytearray(2), 0, 0x100)  # 3 octets do not fit


# ------------------------------------------------------------------ known vectors


VECTORS = (
    # (tag, value, wire) -- hand-encoded from the Blue Book Data CHOICE
    (T.NULL, None, "00"),
    (T.BOOLEAN, True, "03 01"),
    (T.BOOLEAN, False, "03 00"),
    (T.BIT_STRING, axdr_types.BitString.from_str("1011001110"), "04 0A B3 80"),
    (T.DOUBLE_LONG, -2, "05 FF FF FF FE"),
    (T.DOUBLE_LONG_UNSIGNED, 1517, "06 00 00 05 ED"),
    (T.OCTET_STRING, h("0100010800FF"), "09 06 01 00 01 08 00 FF"),
    (T.VISIBLE_STRING, "Kamstrup", "0A 08 4B 61 6D 73 74 72 75 70"),
    (T.UTF8_STRING, "\u20ac1", "0C 04 E2 82 AC 31"),
    (T.BCD, 59, "0D 59"),
    (T.INTEGER, -1, "0F FF"),
    (T.LONG, -32768, "10 80 00"),
    (T.UNSIGNED, 255, "11 FF"),
    (T.LONG_UNSIGNED, 2292, "12 08 F4"),
    (T.LONG64, -2, "14 FF FF FF FF FF FF FF FE"),
    (T.LONG64_UNSIGNED, 2607383, "15 00 00 00 00 00 27 C9 17"),
    (T.ENUM, 35, "16 23"),
    (T.FLOAT32, 1.5, "17 3F C0 00 00"),
    (T.FLOAT64, -0.5, "18 BF E0 00 00 00 00 00 00"),
    (T.DATE_TIME, A.DateTime(2019, 12, 19, 2, 0, 0, 0, -60, 0, 4), "19 07 E3 0C 13 04 02 00 00 00 FF C4 00"),
    (T.DATE, axdr_types.Date(2024, 2, 29, 4), "1A 07 E8 02 1D 04"),
    (T.TIME, axdr_types.Time(23, 59, 59, 99), "1B 17 3B 3B 63"),
    (T.DONT_CARE, A.DONT_CARE_VALUE, "FF"),
    (T.ARRAY, [], "01 00"),
    (T.STRUCTURE, (), "02 00"),
)


def test_vectors_decode_encode_skip():
    for tag, value, wire in VECTORS:
        data = h(wire)
        got, off = A.decode(data)
        assert off == len(data), (tag, off)
        assert got == value, (tag, got, value)
        assert type(got) is type(value), (tag, type(got))
        assert A.skip(data) == len(data)
        assert T.encode_to_bytes(tag, value) == data, (tag, T.encode_to_bytes(tag, value))
        assert T.encoded_len(tag, value) == len(data)
        buf = bytearray(len(data) + 4)
        assert T.encode(buf, 2, tag, value) == 2 + len(data)
        assert bytes(buf[2:2 + len(data)]) == data


def test_nested_structure_from_a_real_push():
    # Salzburg Netz push element: {obis, long-unsigned 2292, {scaler -1, unit 35 (V)}}
    data = h("02 03 09 06 01 00 20 07 00 FF 12 08 F4 02 02 0F FF 16 23")
    value, off = A.decode(data)
    assert off == len(data)
    assert value == (h("0100200700FF"), 2292, (-1, 35))
    enc = T.encode_to_bytes(T.STRUCTURE, [
        (T.OCTET_STRING, h("0100200700FF")), (T.LONG_UNSIGNED, 2292),
        (T.STRUCTURE, [(T.INTEGER, -1), (T.ENUM, 35)]),
    ])
    assert enc == data


def test_decode_respects_off_and_end():
    data = h("AA 11 05 12 00 07 BB")
    assert A.decode(data, 1) == (5, 3)
    assert A.decode(data, 3, 6) == (7, 6)
    raises(D.AxdrTruncated, A.decode, data, 3, 5)
    raises(D.AxdrTruncated, A.decode, data, 7)


def test_visible_string_never_fails_and_keeps_bytes():
    data = h("0A 04 41 00 E9 FF")
    value, _ = A.decode(data)
    assert value == "A\x00\xe9\xff"
    assert T.encode_to_bytes(T.VISIBLE_STRING, value) == data
    raises(AxdrError, T.encode_to_bytes, T.VISIBLE_STRING, "\u20ac")


def test_utf8_invalid_is_axdr_error():
    for bad in ("C3", "C0 80", "E0 80 80", "ED A0 80", "F4 90 80 80", "FF", "80", "E2 82", "F0 9F 98"):
        body = h(bad)
        data = bytes([T.UTF8_STRING, len(body)]) + body
        e = raises(AxdrError, A.decode, data)
        assert e.field == "utf8-string", bad
        raises(AxdrError, A.skip, data)
    assert A.decode(h("0C 04 F0 9F 98 80"))[0] == "\U0001F600"


def test_bcd_digits():
    assert A.decode(h("0D 00"))[0] == 0
    assert A.decode(h("0D 99"))[0] == 99
    raises(AxdrError, A.decode, h("0D 9A"))
    raises(AxdrError, A.skip, h("0D A0"))
    raises(AxdrError, T.encode_to_bytes, T.BCD, 100)


def test_bit_string_lengths():
    bs, off = A.decode(h("04 00"))
    assert bs == axdr_types.BitString(b"", 0) and off == 2
    bs, _ = A.decode(h("04 09 FF 80"))
    assert bs.nbits == 9 and bs.bit(0) and bs.bit(8) and str(bs) == "111111111"
    b = axdr_types.BitString.from_str("0001")
    assert len(b) == 4 and not b.bit(0)
    raises(D.AxdrTruncated, A.decode, h("04 09 FF"))
    raises(AxdrError, axdr_types.BitString, b"\x00\x00", 3)


def test_compact_array_simple_and_structure():
    # compact-array of long-unsigned: 13 12 <contents 6 octets>
    data = h("13 12 06 00 01 00 02 FF FF")
    assert A.decode(data) == ([1, 2, 0xFFFF], len(data))
    assert T.encode_to_bytes(T.COMPACT_ARRAY, (T.LONG_UNSIGNED, [1, 2, 0xFFFF])) == data
    td = (T.STRUCTURE, (T.UNSIGNED, T.OCTET_STRING, (T.ARRAY, 2, T.INTEGER)))
    rows = [(1, b"ab", [-1, 2]), (2, b"", [3, 4])]
    enc = T.encode_to_bytes(T.COMPACT_ARRAY, (td, rows))
    assert enc == h("13 02 03 11 09 01 00 02 0F 0A 01 02 61 62 FF 02 02 00 03 04")
    value, off = A.decode(enc)
    assert off == len(enc)
    assert value == [(1, b"ab", [-1, 2]), (2, b"", [3, 4])]
    assert axdr_compact.decode_type_description(enc, 1) == (td, 9)
    assert A.skip(enc) == len(enc)


def test_compact_array_malformed():
    # row crosses the end of the contents: malformed, not "truncated"
    e = raises(AxdrError, A.decode, h("13 12 03 00 01 00 FF"))
    assert not isinstance(e, D.AxdrTruncated)
    # contents length larger than the data present
    raises(D.AxdrTruncated, A.decode, h("13 12 08 00 01"))
    # zero-size element type with contents would loop forever
    raises(AxdrError, A.decode, h("13 00 02 00 00"))
    raises(AxdrError, A.decode, h("13 01 FF FF 00 00"))  # array of 65535 null per cell
    raises(AxdrError, A.decode, h("13 13 00"))  # compact-array inside a type description
    raises(AxdrError, T.encode_to_bytes, T.COMPACT_ARRAY, ((T.STRUCTURE, (T.UNSIGNED,)), [(1, 2)]))


# ------------------------------------------------------------------ encode checks


def test_encode_rejects_values_that_do_not_fit():
    for tag, value in (
        (T.UNSIGNED, 300), (T.UNSIGNED, -1), (T.INTEGER, 128), (T.LONG, 40000), (T.LONG_UNSIGNED, -1),
        (T.DOUBLE_LONG, 1 << 31), (T.DOUBLE_LONG_UNSIGNED, 1 << 32), (T.LONG64, 1 << 63),
        (T.LONG64_UNSIGNED, -1), (T.ENUM, 256), (T.FLOAT32, 1e39), (T.UNSIGNED, "1"),
        (T.OCTET_STRING, "text"), (T.DATE_TIME, b"\x00" * 11), (T.DATE, axdr_types.Time(1, 2, 3)),
        (T.BIT_STRING, b"\x01"), (T.ARRAY, 5), (T.STRUCTURE, [(T.UNSIGNED,)]), (7, 0), (256, 0),
        (T.DATE_TIME, A.DateTime(2020, 1, 1, 0, 0, 0, deviation=40000)),
        (T.DATE_TIME, A.DateTime(70000, 1, 1, 0, 0, 0)),
    ):
        e = raises(AxdrError, T.encoded_len, tag, value)
        assert isinstance(e, AxdrError)
        buf = bytearray(64)
        raises(AxdrError, T.encode, buf, 0, tag, value)
        assert buf == bytearray(64), (tag, value)  # nothing written


def test_encode_buffer_too_small_writes_nothing():
    buf = bytearray(4)
    e = raises(AxdrError, T.encode, buf, 0, T.DOUBLE_LONG_UNSIGNED, 1)
    assert e.field == "buffer"
    assert buf == bytearray(4)
    assert T.encode(buf, 0, T.LONG_UNSIGNED, 0x1234) == 3
    raises(AxdrError, T.encode, buf, 3, T.UNSIGNED, 1)


def test_encode_long_lengths_and_depth():
    big = bytes(range(256)) * 2
    enc = T.encode_to_bytes(T.OCTET_STRING, big)
    assert enc[:4] == h("09 82 02 00") and A.decode(enc)[0] == big
    nested = (T.UNSIGNED, 1)
    for _ in range(8):
        nested = (T.STRUCTURE, [nested])
    assert T.encoded_len(nested[0], nested[1]) == 8 * 2 + 2  # 8 containers: the default limit
    nested = (T.STRUCTURE, [nested])
    raises(AxdrError, T.encode_to_bytes, nested[0], nested[1])
    assert T.encode_to_bytes(nested[0], nested[1], max_depth=9)[:2] == h("02 01")


# ------------------------------------------------------------------ hostile input


def test_every_truncation_of_a_valid_encoding_is_axdr_truncated():
    enc = T.encode_to_bytes(T.ARRAY, [(T.STRUCTURE, [(a, b) for a, b, _ in VECTORS])])
    assert A.decode(enc)[1] == len(enc)
    for cut in range(len(enc)):
        raises(D.AxdrTruncated, A.decode, enc, 0, cut)
        raises(D.AxdrTruncated, A.skip, enc, 0, cut)


def test_hostile_lengths_fail_before_allocating():
    for data in (
        h("09 84 FF FF FF FF 00"), h("01 84 7F FF FF FF 00"), h("02 83 FF FF FF"),
        h("0A 84 FF FF FF FF"), h("04 84 FF FF FF FF 00"), h("13 12 84 FF FF FF FF"),
    ):
        raises(D.AxdrTruncated, A.decode, data)
        raises(D.AxdrTruncated, A.skip, data)


def test_unknown_tags_and_depth():
    for t in (7, 8, 11, 14, 28, 100, 254):
        e = raises(AxdrError, A.decode, bytes([t, 0, 0]))
        assert e.field == "tag" and e.offset == 0
    deep = h("01 01") * 9 + h("00")
    raises(AxdrError, A.decode, deep)
    raises(AxdrError, A.skip, deep)
    assert A.decode(deep, max_depth=9)[1] == len(deep)
    assert A.skip(deep, max_depth=9) == len(deep)
    # depth in a type description counts too
    raises(AxdrError, A.decode, h("13") + h("02 01") * 9 + h("11 00"))


def test_random_bytes_raise_only_axdr_error():
    rnd = random.Random(7) if hasattr(random, "Random") else random
    if not hasattr(random, "Random"):
        random.seed(7)
    base = T.encode_to_bytes(T.ARRAY, [(T.STRUCTURE, [(a, b) for a, b, _ in VECTORS])])
    for i in range(400):
        if i % 2:
            data = bytearray(base)
            for _ in range(1 + rnd.getrandbits(3)):
                data[rnd.getrandbits(16) % len(data)] = rnd.getrandbits(8)
        else:
            data = bytes(rnd.getrandbits(8) for _ in range(rnd.getrandbits(5)))
        ok_skip = ok_dec = None
        try:
            ok_skip = A.skip(data)
        except AxdrError:
            pass
        try:
            ok_dec = A.decode(data)[1]
        except AxdrError:
            pass
        assert ok_skip == ok_dec, (data, ok_skip, ok_dec)


# ------------------------------------------------------------------ date / time / calendar


def test_datetime_bytes_fields_and_utc():
    dt = A.DateTime.from_bytes(h("07 E6 0B 0C 06 10 36 00 00 FF C4 00"))
    assert dt.as_tuple() == (2022, 11, 12, 16, 54, 0)
    assert dt.deviation == -60 and dt.hundredths == 0 and dt.weekday == 6 and dt.status == 0
    assert dt.utc_tuple() == (2022, 11, 12, 15, 54, 0)  # UTC = local + deviation (CET: -60)
    assert dt.iso() == "2022-11-12T16:54:00.00+01:00"
    assert dt.to_bytes() == h("07 E6 0B 0C 06 10 36 00 00 FF C4 00")
    unspec = A.DateTime.from_bytes(h("07 E6 01 18 01 12 3A 32 FF 80 00 00"))
    assert unspec.deviation == A.DEVIATION_UNSPECIFIED == 0x8000
    assert unspec.utc_tuple() is None and unspec.epoch() is None
    assert unspec.iso() == "2022-01-24T18:58:50"
    assert unspec.to_bytes() == h("07 E6 01 18 01 12 3A 32 FF 80 00 00")
    # -0x8000 given by a caller means the same and is written as 0x8000
    assert A.DateTime(2022, 1, 1, 0, 0, 0, deviation=-0x8000).to_bytes()[9:11] == h("80 00")
    # positive deviation (west of UTC) and crossing the date line backwards
    west = A.DateTime(2024, 3, 1, 0, 30, 0, deviation=300)  # UTC-05:00
    assert west.utc_tuple() == (2024, 3, 1, 5, 30, 0)
    east = A.DateTime(2024, 3, 1, 0, 30, 0, deviation=-120)
    assert east.utc_tuple() == (2024, 2, 29, 22, 30, 0)
    assert east.iso() == "2024-03-01T00:30:00+02:00"
    assert west.iso() == "2024-03-01T00:30:00-05:00"


def test_datetime_wildcards_and_nonsense_are_kept():
    wild = A.DateTime.from_bytes(h("FF FF FF FF FF 02 FF FF FF 80 00 FF"))
    assert wild.as_tuple() == (0xFFFF, 0xFF, 0xFF, 2, 0xFF, 0xFF)
    assert wild.utc_tuple() is None and wild.local_epoch() is None
    assert wild.iso() == "****-**-**T02:**:**"
    assert wild.to_bytes() == h("FF FF FF FF FF 02 FF FF FF 80 00 FF")
    zero = A.DateTime.from_bytes(bytes(12))  # some meters send all zeros
    assert zero.utc_tuple() is None
    assert A.DateTime(2023, 2, 29, 0, 0, 0, deviation=0).utc_tuple() is None
    raises(AxdrError, A.DateTime.from_bytes, bytes(11))
    raises(AxdrError, A.DateTime.from_bytes, bytes(12), 1)


def test_datetime_from_epoch_and_equality():
    dt = A.DateTime.from_epoch(1576717200, deviation=-60)
    assert dt.as_tuple() == (2019, 12, 19, 2, 0, 0) and dt.weekday == 4 and dt.epoch() == 1576717200
    assert dt == A.DateTime(2019, 12, 19, 2, 0, 0, 0, -60, 0, 4)
    assert dt != A.DateTime(2019, 12, 19, 2, 0, 0, 0, -60, 0x80, 4)
    assert len({dt, A.DateTime(2019, 12, 19, 2, 0, 0, 0, -60, 0, 4)}) == 1


def test_date_and_time():
    d = axdr_types.Date.from_bytes(h("07 E8 02 1D 04"))
    assert d.as_tuple() == (2024, 2, 29) and d.weekday == 4 and d.iso() == "2024-02-29"
    assert d.to_bytes() == h("07 E8 02 1D 04")
    assert axdr_types.Date(0xFFFF, 0xFE, 0xFF).iso() == "****-254-**"
    t = axdr_types.Time.from_bytes(h("17 3B 3B FF"))
    assert t.as_tuple() == (23, 59, 59) and t.iso() == "23:59:59"
    assert axdr_types.Time(1, 2, 3, 4).iso() == "01:02:03.04"
    raises(AxdrError, axdr_types.Time(256, 0, 0).to_bytes)
    raises(AxdrError, axdr_types.Date.from_bytes, bytes(4))
    raises(AxdrError, axdr_types.Time.from_bytes, bytes(3))


def test_epoch_known_values():
    assert A.to_epoch(1970, 1, 1, 0, 0, 0) == 0
    assert A.to_epoch(2000, 3, 1) - A.to_epoch(2000, 2, 28) == 2 * 86400  # 2000 is a leap year
    assert A.to_epoch(2100, 3, 1) - A.to_epoch(2100, 2, 28) == 86400  # 2100 is not
    assert A.to_epoch(2038, 1, 19, 3, 14, 8) == 1 << 31
    assert A.to_epoch(2106, 2, 7, 6, 28, 16) == 1 << 32
    assert A.to_epoch(2024, 2, 29, 12, 0, 0) == 1709208000
    assert A.to_epoch(1969, 12, 31, 23, 59, 59) == -1
    assert A.from_epoch(-1) == (1969, 12, 31, 23, 59, 59, 3)
    assert A.from_epoch(1 << 31) == (2038, 1, 19, 3, 14, 8, 2)
    assert A.from_epoch(0) == (1970, 1, 1, 0, 0, 0, 4)
    raises(AxdrError, A.to_epoch, 2023, 2, 29)
    raises(AxdrError, A.to_epoch, 2024, 13, 1)
    raises(AxdrError, A.to_epoch, 2024, 1, 1, 24)


def test_weekdays():
    # DLMS weekday 1=Monday..7=Sunday
    assert A.weekday(2000, 1, 1) == 6
    assert A.weekday(2024, 2, 29) == 4
    assert A.weekday(2038, 1, 19) == 2
    assert A.weekday(2022, 1, 24) == 1  # the Kamstrup capture says dow 1
    assert A.weekday(2100, 12, 31) == 5
    assert A.weekday(1900, 1, 1) == 1


def test_epoch_round_trip_over_centuries():
    # every day around leap-rule edges, plus a stride through 1900..2200
    days = []
    for y in (1900, 2000, 2038, 2100):
        start = A.to_epoch(y - 1, 12, 1) // 86400
        days.extend(range(start, start + 120))
    days.extend(range(A.to_epoch(1900, 1, 1) // 86400, A.to_epoch(2200, 1, 1) // 86400, 37))
    prev = (None, None)
    for day in days:
        secs = day * 86400 + (day * 7919) % 86400
        y, m, d, hh, mi, ss, wd = A.from_epoch(secs)
        assert 1 <= d <= A.days_in_month(y, m)
        assert A.to_epoch(y, m, d, hh, mi, ss) == secs
        assert A.weekday(y, m, d) == wd
        if prev[0] == day - 1:
            assert wd == prev[1] % 7 + 1
        prev = (day, wd)


def test_container_values_decoded_inline_equal_the_general_path():
    # _decode decodes the usual profile values inside a structure itself: the same values and
    # errors as element by element (limits, signs, octet-strings around the one-octet length).
    elements = [
        (T.DOUBLE_LONG_UNSIGNED, 0), (T.DOUBLE_LONG_UNSIGNED, 0xFFFFFFFF),
        (T.DOUBLE_LONG_UNSIGNED, 0x40000000),
        (T.DOUBLE_LONG, -0x80000000), (T.DOUBLE_LONG, 0x7FFFFFFF), (T.DOUBLE_LONG, -1),
        (T.LONG_UNSIGNED, 0xFFFF), (T.LONG_UNSIGNED, 0), (T.LONG, -0x8000), (T.LONG, 0x7FFF), (T.LONG, -1),
        (T.UNSIGNED, 255), (T.ENUM, 0), (T.INTEGER, -128), (T.NULL, None),
        (T.OCTET_STRING, b""), (T.OCTET_STRING, bytes(range(12))), (T.OCTET_STRING, bytes(127)),
        (T.OCTET_STRING, bytes(128)), (T.LONG_UNSIGNED, 7),  # last: ends at the end of the data
    ]
    parts = [T.encode_to_bytes(t, v) for t, v in elements]
    want = tuple(A.decode(p)[0] for p in parts)
    assert want == tuple(v for _, v in elements)
    for tag in (T.STRUCTURE, T.ARRAY):
        data = T.encode_to_bytes(tag, elements)
        got, end = A.decode(data)
        assert end == len(data) and tuple(got) == want
        assert type(got) is (tuple if tag == T.STRUCTURE else list)
        for cut in range(len(data)):  # every prefix is truncated, never malformed or misread
            raises(D.AxdrTruncated, A.decode, data[:cut])
            raises(D.AxdrTruncated, A.decode, memoryview(data)[:cut])
    # the values of one structure are never those of the next (a list is reused between them),
    # nor of one nested in it with the same size, nor after one that ended in an error
    first = A.decode(h("02 02 11 01 11 02"))[0]
    assert A.decode(h("02 02 02 02 11 03 11 04 11 05"))[0] == ((3, 4), 5)
    raises(AxdrError, A.decode, h("02 02 11 09 07"))
    assert A.decode(h("02 02 11 06 09 01 AA"))[0] == (6, b"\xaa") and first == (1, 2)
    assert A.decode(h("01 02 02 02 11 07 11 08 02 02 11 09 11 0A"))[0] == [(7, 8), (9, 10)]
    # a structure claiming more elements than the octets present
    raises(D.AxdrTruncated, A.decode, h("02 05 11 01 11"))
    raises(AxdrError, A.decode, h("02 02 11 01 07 00"))  # a bad tag after an inline value


# ------------------------------------------------------------------ ArrayStream


def _profile_row(i):
    clock = A.DateTime.from_epoch(1576717200 + 900 * i, deviation=-60) if i % 96 == 0 else None
    return [
        (T.OCTET_STRING, clock) if clock is not None else (T.NULL, None),
        (T.UNSIGNED, i & 0xFF), (T.DOUBLE_LONG_UNSIGNED, 1517 + i), (T.LONG, -i % 30000),
    ]


def _profile_bytes(rows):
    return T.encode_to_bytes(T.ARRAY, [(T.STRUCTURE, _profile_row(i)) for i in range(rows)])


def test_stream_matches_decode_for_random_chunks():
    data = _profile_bytes(300)
    whole = A.decode(data)[0]
    rnd = random.Random(1) if hasattr(random, "Random") else random
    for max_chunk in (1, 2, 3, 7, 64, 1000, len(data)):
        s = A.ArrayStream(capacity=64)
        out = []
        off = 0
        while off < len(data):
            n = 1 + rnd.getrandbits(10) % max_chunk
            s.feed(data[off:off + n], out.append)
            off += n
        assert s.done and s.expected == 300 and s.received == 300 and s.pending() == 0
        assert out == whole, max_chunk


def test_stream_element_values_and_header_split():
    s = A.ArrayStream()
    out = []
    s.feed(h("01"), out.append)
    assert s.expected is None
    s.feed(h("82"), out.append)
    s.feed(h("00"), out.append)
    assert s.expected is None
    s.feed(h("02 11"), out.append)
    assert s.expected == 2 and out == []
    s.feed(h("05 12 00"), out.append)
    assert out == [5] and not s.done
    s.feed(h("06"), out.append)
    assert out == [5, 6] and s.done


def test_stream_without_header_and_extra_bytes():
    s = A.ArrayStream(count=2)
    out = []
    s.feed(h("11 01 11"), out.append)
    assert out == [1] and s.expected == 2
    e = raises(AxdrError, s.feed, h("02 00"), out.append)
    assert e.field == "array"
    assert out == [1, 2]
    s = A.ArrayStream()
    raises(AxdrError, s.feed, h("01 00 00"), out.append)
    s = A.ArrayStream(count=0)
    assert s.done
    raises(AxdrError, A.ArrayStream().feed, h("02 01 00"), out.append)  # not an array


def test_stream_passes_the_sinks_own_errors_on():
    # A sink that raises AxdrTruncated (decoding something of its own) is not "wait for more":
    # the element is not held and delivered again with the next bytes.
    got = []

    def sink(v):
        got.append(v)
        raise D.AxdrTruncated("the sink's own", "sink")

    s = A.ArrayStream()
    e = raises(D.AxdrTruncated, s.feed, h("01 02 11 05 11 06"), sink)
    assert e.field == "sink" and got == [5] and s.received == 1 and s.pending() == 0


def test_stream_capacity_and_malformed():
    s = A.ArrayStream(capacity=32)
    out = []
    s.feed(h("01 02 09 40") + bytes(20), out.append)
    e = raises(AxdrError, s.feed, bytes(20), out.append)
    assert e.field == "capacity"
    s = A.ArrayStream(capacity=32)
    raises(AxdrError, s.feed, h("01 02 09 40") + bytes(40), out.append)
    # hostile length: held until capacity, never allocated
    s = A.ArrayStream(capacity=32)
    s.feed(h("01 01 09 84 FF FF FF FF"), out.append)
    raises(AxdrError, s.feed, bytes(40), out.append)
    # malformed element inside the stream
    s = A.ArrayStream()
    raises(AxdrError, s.feed, h("01 02 11 00 07"), out.append)


def test_stream_buffer_is_fixed_and_memory_does_not_grow():
    s = A.ArrayStream(capacity=256)
    buf = s._buf
    count = [0]

    def sink(_value):
        count[0] += 1

    rows = 2880
    # The input is produced row by row as well so that only the decoder's memory is measured.
    head = bytearray(5)
    head[0] = T.ARRAY
    s.feed(head[:D.encode_length(head, 1, rows)], sink)
    row_buf = bytearray(64)
    samples = []
    if not IS_MICROPYTHON:
        import tracemalloc

        tracemalloc.start()
    for i in range(rows):
        n = T.encode(row_buf, 0, T.STRUCTURE, _profile_row(i))
        # split each row in two uneven pieces so elements straddle feeds
        s.feed(row_buf[:n // 3], sink)
        s.feed(row_buf[n // 3:n], sink)
        if i in (100, 2800):
            if IS_MICROPYTHON:
                gc.collect()
                samples.append(gc.mem_alloc())
            else:
                samples.append(tracemalloc.get_traced_memory()[1])  # peak so far
    if not IS_MICROPYTHON:
        tracemalloc.stop()
    assert s.done and count[0] == rows
    assert s._buf is buf and len(buf) == 256
    # peak/retained memory at row 2800 is within a few KB of row 100: nothing accumulates
    assert samples[1] - samples[0] < 4096, samples


# ------------------------------------------------------------------ real captures


def _frames(name):
    path = shared_or_skip("captures", "hdlc-dlms", name)
    out = []
    for line in read_bytes(path).decode().split("\n"):
        line = line.strip()
        if line[:3] in ("M> ", "C> "):
            out.append(h(line[3:]))
    return out


def test_capture_kamstrup_flat_push():
    # 7E A0 E2 2B 21 13 23 9A | E6 E7 00 (@8) | 0F (@11) invoke-id 00000000 | 0C + date-time (@16..28)
    # | Data at 29: structure of 25 (list id, then obis/value pairs) up to the FCS (3 bytes before the end)
    frame = _frames("kamstrup_omnipower_no_list_2022_amshan.hex")[0]
    assert frame[8:12] == h("E6 E7 00 0F") and frame[16] == 0x0C
    dt = A.DateTime.from_bytes(frame, 17)
    assert dt.iso() == "2022-01-24T18:58:50" and dt.weekday == 1 and dt.deviation == A.DEVIATION_UNSPECIFIED
    body, end = A.decode(frame, 29, len(frame) - 3)
    assert end == len(frame) - 3 and A.skip(frame, 29, len(frame) - 3) == end
    assert len(body) == 25 and body[0] == "Kamstrup_V0001"
    pairs = {}
    for i in range(1, 25, 2):
        pairs[".".join(str(b) for b in body[i])] = body[i + 1]
    assert pairs["1.1.0.0.5.255"] == "5706567326590407"
    assert pairs["1.1.96.1.1.255"] == "6841138BN245101090"
    for obis, value in (
        ("1.1.1.7.0.255", 826), ("1.1.2.7.0.255", 0), ("1.1.3.7.0.255", 104), ("1.1.4.7.0.255", 176),
        ("1.1.31.7.0.255", 237), ("1.1.51.7.0.255", 89), ("1.1.71.7.0.255", 75),
        ("1.1.32.7.0.255", 232), ("1.1.52.7.0.255", 233), ("1.1.72.7.0.255", 236),
    ):
        assert pairs[obis] == value, obis


def test_capture_salzburg_raw_apdu_scaled_values():
    # bare APDU: 0F | invoke 0017FA98 | 0C + date-time (@5..17) | Data at 18: structure of 16
    apdu = _frames("kaifa_salzburg_netz_raw_apdu_dlmsparser.hex")[0]
    assert apdu[0] == 0x0F and apdu[5] == 0x0C
    body, end = A.decode(apdu, 18)
    assert end == len(apdu) and len(body) == 16
    assert body[0] == h("0000010000FF")
    clock = A.DateTime.from_bytes(body[1])
    assert clock.iso() == "2022-11-12T16:54:00.00+01:00" and clock.deviation == -60 and clock.weekday == 6
    assert body[2] == (h("0000600100FF"), b"1KFM0200234804")
    assert body[3] == (h("00002A0000FF"), b"KFM1200200234804")
    scaled = {}
    for obis, raw, (scaler, unit) in body[4:]:
        scaled[".".join(str(b) for b in obis)] = (raw, scaler, unit)
    assert scaled["1.0.32.7.0.255"] == (2292, -1, 35)
    assert scaled["1.0.71.7.0.255"] == (37, -2, 33)
    assert scaled["1.0.1.8.0.255"] == (1327456, 0, 30)
    assert scaled["1.0.4.8.0.255"] == (376416, 0, 32)
    assert len(scaled) == 12


def test_capture_aidon_array_of_structures():
    # 7E A2 43 41 08 83 13 85 EB | E6 E7 00 (@9) | 0F (@12) 40000000 | 00 = no date-time (@17)
    # | Data at 18: array of 27 {obis, value[, {scaler, unit}]}
    frame = _frames("aidon_se_list_3phase_dlmsparser.hex")[0]
    assert frame[9:13] == h("E6 E7 00 0F") and frame[17] == 0
    body, end = A.decode(frame, 18, len(frame) - 3)
    assert end == len(frame) - 3 and len(body) == 27
    obis, clock = body[0]
    assert A.DateTime.from_bytes(clock).as_tuple() == (2019, 12, 16, 7, 59, 40)
    values = {".".join(str(b) for b in e[0]): e[1:] for e in body[1:]}
    assert values["1.0.1.7.0.255"] == (1122, (0, 27))
    assert values["1.0.51.7.0.255"] == (75, (-1, 33))
    assert values["1.0.52.7.0.255"] == (2499, (-1, 35))
    assert values["1.0.1.8.0.255"] == (10049926, (0, 30))
    assert values["1.0.4.8.0.255"] == (5, (0, 32))


def test_capture_e570_gbt_long64():
    # Four GBT blocks (E0 ctrl blk(2) ack(2) len) behind a 9-byte HDLC header; LLC only in frame 1.
    frames = _frames("landisgyr_e570_gbt_int64_vse2026_scs.hex")
    apdu = bytearray()
    for i, f in enumerate(frames):
        g = 12 if i == 0 else 9
        assert f[g] == 0xE0 and f[g + 2:g + 4] == bytes([0, i + 1])
        n = f[g + 6]
        block = f[g + 7:len(f) - 3]
        assert len(block) == n
        apdu += block
    # 0F | invoke 00140FE5 | 0C + date-time (@5) | Data at 18: structure of 14
    assert apdu[0] == 0x0F and apdu[5] == 0x0C
    assert A.DateTime.from_bytes(apdu, 6).as_tuple() == (2026, 6, 9, 16, 4, 40)
    body, end = A.decode(apdu, 18)
    assert end == len(apdu) and len(body) == 14
    assert body[0][0] == (40, h("0008190900FF"), 2, 0) and len(body[0]) == 14
    assert body[1] == b"LGZ1030769231250"  # an octet-string (09), not visible-string
    assert list(body[2:]) == [2607383, 641338, 956364, 2329593, 258874, 0, 229, 230, 229, 400, 200, 601]


def test_capture_get_block_profile_streams():
    # C4 02 C1 | last-block 00 | block-number 00000001 | result 00 (raw-data) | 82 04 9E | raw data at 12
    first, last = _frames("u9n_tests_get_response_block_profile_apdu.hex")
    assert first[:12] == h("C4 02 C1 00 00 00 00 01 00 82 04 9E")
    n, off = D.decode_length(first, 9, len(first))
    assert (n, off) == (1182, 12) and off + n == len(first)
    s = A.ArrayStream(capacity=64)
    rows = []
    for i in range(off, len(first), 50):  # as if the block arrived in 50-byte pieces
        s.feed(first[i:min(i + 50, len(first))], rows.append)
    assert s.expected == 1440 and len(rows) == 77 and not s.done
    assert s.pending() == 10  # 02 04 00 11 06 06 00 00 05 ED: the entry continues in block 2
    clock = A.DateTime.from_bytes(rows[0][0])
    assert clock.as_tuple() == (2019, 12, 19, 2, 0, 0) and clock.deviation == -60
    assert rows[0][1:] == (6, 1517, 1620)
    assert all(r == (None, 6, 1517, 1620) for r in rows[1:])
    # last block (19): raw data starts with the tail "06 00 00 06 54" of a split entry, then 25 entries
    assert last[:12] == h("C4 02 C1 01 00 00 00 13 00 82 01 7C")
    s2 = A.ArrayStream(count=25)
    rows2 = []
    s2.feed(last[12 + 5:], rows2.append)
    assert s2.done and rows2 == [(None, 6, 1517, 1620)] * 25
