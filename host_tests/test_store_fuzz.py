"""Hypothesis fuzz of the store's record decoders (CPython only): only StoreError escapes."""

import os

from hypothesis import given, settings
from hypothesis import strategies as hs
from optoread.crc import crc32
from optoread.errors import StoreError
from optoread.store import decode as sd
from optoread.store import records as sr
from optoread.store import writer as sw

EXAMPLES = int(os.getenv("FUZZ_EXAMPLES", "300"))


def _decode_all(data):
    """Walk ``data`` as a record stream the way mount/read do; return the kinds decoded."""
    kinds = []
    rows = sd.RowDecoder()
    off = 0
    while off < len(data):
        rtype, flags, seq, pay, nxt = sd.check_record(data, off, len(data))
        if rtype == sr.T_ROWS:
            rows.block(data, pay, nxt - sr.CRC_SIZE, lambda c, v: None)
            kinds.append("rows")
        else:
            kind, d = sd.decode_payload(rtype, data, pay, nxt - sr.CRC_SIZE)
            if kind == "profile":
                rows.reset(len(d[3]), d[1], d[2])
            kinds.append(kind)
        off = nxt
    return kinds


def _reseal(data, off=0):
    """Fix the CRC of the record at ``off`` so mutations reach the payload decoders."""
    if len(data) < off + sr.HEADER_SIZE + sr.CRC_SIZE:
        return data
    n = min(int.from_bytes(data[off + 8:off + 10], "little"), len(data) - off - 14)
    data = bytearray(data)
    data[off + 8:off + 10] = n.to_bytes(2, "little")
    end = off + sr.HEADER_SIZE + n
    data[end:end + 4] = crc32(bytes(data[off:end])).to_bytes(4, "little")
    return bytes(data[:end + 4])


@settings(max_examples=EXAMPLES, deadline=None)
@given(hs.binary(max_size=300))
def test_random_bytes_only_store_error(data):
    try:
        _decode_all(data)
    except StoreError:
        pass


@settings(max_examples=EXAMPLES, deadline=None)
@given(hs.integers(1, 7), hs.binary(max_size=200))
def test_valid_crc_random_payload_only_store_error(rtype, payload):
    hdr = bytes([sr.MAGIC, sr.VERSION, rtype, 0, 1, 0, 0, 0]) + len(payload).to_bytes(2, "little")
    data = _reseal(hdr + payload + b"\0\0\0\0")
    try:
        _decode_all(data)
    except StoreError:
        pass


_item = hs.one_of(hs.none(), hs.integers(-(2 ** 64), 2 ** 64), hs.text(max_size=20),
                  hs.binary(max_size=20), hs.floats(allow_nan=False))


@settings(max_examples=EXAMPLES, deadline=None)
@given(hs.lists(_item, max_size=8), hs.integers(0, 400), hs.integers(0, 255))
def test_mutated_valid_records(items, pos, byte):
    buf = bytearray(2000)
    end = sr.encode_record(buf, 0, sr.T_VALUE, 3, (items + [None] * 4)[:4])
    assert sd.decode_payload(sr.T_VALUE, buf, sr.HEADER_SIZE, end - sr.CRC_SIZE)[1] == \
        tuple((items + [None] * 4)[:4])
    data = bytearray(buf[:end])
    data[pos % len(data)] = byte
    for d in (bytes(data), _reseal(bytes(data))):
        try:
            _decode_all(d)
        except StoreError:
            pass


@settings(max_examples=EXAMPLES, deadline=None)
@given(hs.integers(1, 4), hs.lists(hs.tuples(hs.one_of(hs.none(), hs.integers(-10 ** 6, 10 ** 9)),
                                             hs.lists(hs.one_of(hs.none(), hs.integers(-2 ** 40, 2 ** 40)),
                                                      min_size=4, max_size=4)), max_size=40))
def test_row_codec_roundtrip(ncols, rows):
    enc = sw.RowEncoder()
    enc.reset(ncols, 900, 0)
    dec_rows = []
    expect = []
    prev = [0] * ncols
    clock = None
    for c, vals in rows:
        vals = vals[:ncols]
        if not enc.room():
            break
        enc.add(c, vals)
        pred = 0 if clock is None else clock + 900
        clock = pred if c is None else c
        prev = [p if v is None else v for p, v in zip(prev, vals)]
        expect.append((clock, tuple(vals)))
    pay = bytearray(16)
    n = sr.put_uvarint(pay, 0, 16, enc.rows)
    pay = bytes(pay[:n]) + bytes(enc.buf[:enc.off])
    dec = sd.RowDecoder()
    dec.reset(ncols, 900, 0)
    dec.block(pay, 0, len(pay), lambda c, v: dec_rows.append((c, v)))
    assert dec_rows == expect
