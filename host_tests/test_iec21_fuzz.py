"""Hypothesis: IEC 62056-21 parsers accept any bytes and raise only OptoreadError."""

import os

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from optoread.errors import OptoreadError
from optoread.iec62056_21 import readout as iec_readout
from optoread.iec62056_21 import signon as iec

N = int(os.getenv("FUZZ_EXAMPLES", "300"))
SETTINGS = settings(max_examples=N, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Bytes that matter to the grammar, so random input reaches deep states often.
SPECIAL = b"/?!()*&.:-\\\r\n\x02\x03\x06\x15\x01\x7f\xff019AZaz "
ALPHABET = st.sampled_from(list(SPECIAL)) | st.integers(0, 255)
TELEGRAM = st.lists(ALPHABET, max_size=600).map(bytes)
SAMPLE = (b"/ISk5\\2MT174-0001\r\n\x06050\r\n\x021-0:1.8.1*01(0006334.294*kWh)(1703100930)\r\n"
          b"0.9.1(201455)9.4(088*C&082*C)\r\nF.F()\r\n!\r\n\x03\x00")


@SETTINGS
@given(TELEGRAM, st.integers(1, 17))
def test_parse_readout_any_bytes(data, chunk):
    r = iec_readout.parse_readout(data, chunk=chunk)
    assert r.datasets == iec_readout.parse_readout(data).datasets
    assert len(r.errors) <= 17
    for addr, values in r.datasets:
        assert len(addr) <= iec.MAX_ADDRESS
        for v, _u in values:
            assert len(v) <= 1024
        vt = iec_readout.value_time(values)
        assert vt is None or (len(values) == 2 and (vt[0], vt[1]) in values and vt[3] in (None, "S", "W"))


@SETTINGS
@given(st.lists(st.tuples(st.text("0123456789SW*.x", max_size=14),
                          st.none() | st.sampled_from(["kW", ""])), max_size=3))
def test_value_time_any_groups(values):
    vt = iec_readout.value_time(values)
    if vt is not None:
        assert len(values) == 2 and (vt[0], vt[1]) in values
        assert len(vt[2]) == 19 or vt[3] is not None  # ISO text, or the meter's with its season


@SETTINGS
@given(st.integers(0, len(SAMPLE) - 1), st.integers(0, 255), st.integers(0, len(SAMPLE)))
def test_mutated_real_readout(pos, value, cut):
    data = bytearray(SAMPLE)
    data[pos] = value
    iec_readout.parse_readout(bytes(data[:cut]))


@SETTINGS
@given(st.binary(max_size=80))
def test_identification(data):
    try:
        iec.Identification(data)
    except OptoreadError:
        pass


@SETTINGS
@given(TELEGRAM)
def test_receivers(data):
    for rx in (iec.IdentReceiver(), iec_readout.MessageReceiver(), iec_readout.ReadoutReceiver(ident=True)):
        for i in range(len(data)):
            if rx.feed(data[i:i + 1]):
                break


@SETTINGS
@given(st.text(max_size=60))
def test_parse_data_line(text):
    try:
        iec_readout.parse_data_line(text.encode("utf-8"))
    except OptoreadError:
        pass


@SETTINGS
@given(st.text(max_size=40), st.integers(-2, 9), st.text(max_size=2), st.integers(-2, 9))
def test_builders(addr, pc, z, mode):
    for fn, args in ((iec.sign_on_request, (addr,)), (iec.option_select, (pc, z or "0", mode)),
                     (iec_readout.command, (addr[:3], b"x"))):
        try:
            fn(*args)
        except OptoreadError:
            pass
