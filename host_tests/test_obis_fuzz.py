"""OBIS property tests (CPython, hypothesis): round trips, and nothing but ObisError on any input."""

import os

from hypothesis import given, settings
from hypothesis import strategies as st
from optoread import obis
from optoread.errors import ObisError

EXAMPLES = int(os.getenv("FUZZ_EXAMPLES", "300"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None)

codes = st.binary(min_size=6, max_size=6)
# Text drawn from the OBIS alphabet reaches the structural checks far more often than random text.
obis_ish = st.text(alphabet="0123456789.-:*&CFLPcflpX ", max_size=30)
groups = st.integers(0, 255) | st.sampled_from((0, 1, 96, 97, 98, 99, 255))


@FUZZ
@given(codes)
def test_dlms_and_edis_round_trip(code):
    assert obis.parse(obis.format(code, "dlms")) == code
    assert obis.parse(obis.format(code, "edis")) == code
    assert obis.parse(obis.format(code, "edis", letters=True)) == code
    assert obis.to_tuple(code) == tuple(code)


@FUZZ
@given(st.tuples(groups, groups, groups, groups, groups, groups), st.booleans())
def test_short_round_trip_with_known_a_b(g, letters):
    code = bytes(g)
    text = obis.format(code, "short", letters=letters)
    assert obis.parse(text, default_a=g[0], default_b=g[1]) == code


def _only_obis_error(fn, *args, **kwargs):
    try:
        out = fn(*args, **kwargs)
    except ObisError as e:
        assert e.field is not None
        return None
    return out


def _check_parsed(text, code):
    if code is None:
        return
    assert isinstance(code, bytes) and len(code) == 6
    # whatever was accepted has a canonical form that reads back the same
    assert obis.parse(obis.format(code, "edis")) == code
    n = obis.name(code)
    assert n is None or isinstance(n, str)


@FUZZ
@given(obis_ish)
def test_obis_like_text_raises_only_obis_error(text):
    _check_parsed(text, _only_obis_error(obis.parse, text))


@FUZZ
@given(st.text(max_size=60))
def test_any_text_raises_only_obis_error(text):
    _check_parsed(text, _only_obis_error(obis.parse, text))


@FUZZ
@given(st.binary(max_size=60), st.integers(-3, 70), st.integers(-3, 70) | st.none())
def test_any_bytes_and_bounds_raise_only_obis_error(data, start, end):
    code = _only_obis_error(obis.parse, data, None, 0, start, end)
    _check_parsed(data, code)
    _only_obis_error(obis.from_bytes, data, start)


@FUZZ
@given(obis_ish, st.integers(-2, 300) | st.none(), st.integers(-2, 300))
def test_bad_defaults_raise_only_obis_error(text, a, b):
    _only_obis_error(obis.parse, text, a, b)


@FUZZ
@given(codes, st.sampled_from((None, 1, 3, 12, 15)))
def test_name_total(code, class_id):
    n = obis.name(code, class_id)
    assert n is None or (isinstance(n, str) and n)


try:
    from gurux_dlms.internal._GXCommon import _GXCommon
except ImportError:  # the peer is optional
    _GXCommon = None


@FUZZ
@given(codes)
def test_gurux_peer_agrees_on_dotted_form(code):
    """gurux-dlms reads and writes logical names as A.B.C.D.E.F: both sides agree both ways."""
    if _GXCommon is None:
        import pytest

        pytest.skip("gurux-dlms not installed")
    text = obis.format(code)
    assert _GXCommon.toLogicalName(bytearray(code)) == text
    assert bytes(_GXCommon.logicalNameToBytes(text)) == code
    assert obis.parse(_GXCommon.toLogicalName(bytearray(code))) == code
