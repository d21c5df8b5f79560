"""A-XDR floats on a board whose ``float`` is single precision (rp2, esp32: 1e39 is inf there).

The rule (axdr_types.float64, docs/architecture.md): a float64 a float32 holds exactly is that
float; else an integer value is the exact int; else the nearest float32. The encoders refuse
inf and nan. The tests set ``compat.SINGLE_FLOAT`` so the rule is checked on CPython and on both
unix ports (double precision), and the wire bytes are written out, not computed with the host's
floats, so the expectations hold on every interpreter, the emulated board included.
"""

import struct

from optoread import compat
from optoread.dlms.axdr import decode as A
from optoread.dlms.axdr import encode as T  # the encoder and the Data tags
from optoread.errors import AxdrError
from portable import IS_MICROPYTHON, raises

PORTABLE = True

_INF = float("inf")


def h(text):
    return bytes.fromhex(text.replace(" ", ""))


def _f64(hex8):
    return A.decode(h("18" + hex8))[0]


def _single(fn):
    saved = compat.SINGLE_FLOAT
    compat.SINGLE_FLOAT = True
    try:
        fn()
    finally:
        compat.SINGLE_FLOAT = saved


def _f32_nearest(hex4):
    # The float32 with these bits, as this host's float (exact: every float32 is a double too)
    return struct.unpack(">f", h(hex4))[0]


def test_flag_matches_this_interpreter():
    assert compat.SINGLE_FLOAT == (1e39 == _INF)
    assert compat.SINGLE_FLOAT == (float(16777217) == float(16777216))


def test_float64_on_a_single_precision_board():
    def run():
        # exact in float32: the float itself
        for hex8, want in (("406cc80000000000", 230.25), ("3ff8000000000000", 1.5),
                           ("4202a05f20000000", 10000000000.0), ("c3b0000000000000", -float(1 << 60))):
            v = _f64(hex8)
            assert isinstance(v, float) and v == want, (hex8, v)
        # float32's largest value is exact too
        v = _f64("47efffffe0000000")
        assert isinstance(v, float) and v == _f32_nearest("7f7fffff") and v != _INF
        # integer values a float32 cannot hold: the exact int, never rounded, never inf
        for hex8, want in (
            ("419d6f3454000000", 123456789),
            ("c19d6f3454000000", -123456789),
            ("4170000010000000", 16777217),
            ("43b0000000000004", 1152921504606848000),  # 2**60 + 1024
            ("47f0000000000000", 1 << 128),  # just beyond float32: inf there
            ("4c70000000000000", 1 << 200),  # a short mantissa far beyond float32's range
            ("48078287f49c4a1d", 999999999999999939709166371603178586112),  # 1e39
            ("7fefffffffffffff", ((1 << 53) - 1) << 971),  # the largest float64
        ):
            v = _f64(hex8)
            assert isinstance(v, int) and not isinstance(v, bool) and v == want, (hex8, v)
        # a fraction float32 cannot hold: its nearest float32 (0.1 -> 0.100000001490116...)
        v = _f64("3fb999999999999a")
        assert isinstance(v, float) and v == _f32_nearest("3dcccccd")
        # inf, nan and signed zero stay what they are
        assert _f64("7ff0000000000000") == _INF and _f64("fff0000000000000") == -_INF
        v = _f64("7ff8000000000000")
        assert v != v
        v = _f64("8000000000000000")
        assert v == 0 and isinstance(v, float)
        # the rule also applies inside containers (profile rows) and compact arrays
        assert A.decode(h("0202 18419d6f3454000000 18406cc80000000000"))[0] == (123456789, 230.25)
        ca = A.decode(h("13 18 10 419d6f3454000000 3ff8000000000000"))[0]
        assert ca == [123456789, 1.5], ca

    _single(run)


def test_float64_on_a_double_precision_host_is_the_double():
    if compat.SINGLE_FLOAT:
        return  # the board itself: the rule above is all there is
    v = _f64("419d6f3454000000")
    assert isinstance(v, float) and v == 123456789.0
    assert _f64("3fb999999999999a") == 0.1
    assert _f64("47f0000000000000") == float(1 << 128)


def test_encoders_refuse_inf_and_nan_naming_the_value():
    nan = _INF - _INF
    for tag in (T.FLOAT32, T.FLOAT64):
        for v, name in ((_INF, "inf"), (-_INF, "-inf"), (nan, "nan")):
            e = raises(AxdrError, T.encode_to_bytes, tag, v)
            assert name in str(e) and e.field in ("float32", "float64"), str(e)
            raises(AxdrError, T.encoded_len, tag, v)
    raises(AxdrError, T.encode_to_bytes, T.FLOAT32, 1 << 128)
    e = raises(AxdrError, T.encode_to_bytes, T.FLOAT64, 1 << 1024)
    assert "does not fit float64" in str(e)
    raises(AxdrError, T.encode_to_bytes, T.FLOAT64, -(1 << 1024))
    raises(AxdrError, T.encode_to_bytes, T.FLOAT64, 1 << 5000)
    # finite values still encode
    assert T.encode_to_bytes(T.FLOAT32, 1.5) == h("17 3fc00000")
    assert T.encode_to_bytes(T.FLOAT64, -0.5) == h("18 bfe0000000000000")


def test_float64_encoder_keeps_integers_on_a_single_precision_board():
    cases = (
        (123456789, "419d6f3454000000"), (-123456789, "c19d6f3454000000"), (0, "0000000000000000"),
        (1, "3ff0000000000000"), (16777217, "4170000010000000"),
        ((1 << 53) + 1, "4340000000000000"),  # a tie: to even
        ((1 << 53) + 3, "4340000000000002"),  # a tie: to even, upwards
        ((1 << 64) + 1, "43f0000000000000"),
        (-((1 << 60) + 1024), "c3b0000000000004"),
        (((1 << 53) - 1) << 971, "7fefffffffffffff"),
    )

    def run():
        for v, hex8 in cases:
            assert T.encode_to_bytes(T.FLOAT64, v) == h("18" + hex8), v
            if abs(v) <= 1 << 53:
                back = _f64(hex8)
                assert back == v, (v, back)
        # just past the largest float64 once rounded: refused before a byte is written
        raises(AxdrError, T.encode_to_bytes, T.FLOAT64, ((1 << 54) - 1) << 970)

    _single(run)
    if not IS_MICROPYTHON:  # the same bytes as CPython's own conversion
        for v, hex8 in cases:
            assert struct.pack(">d", float(v)) == h(hex8), v
        x = 12345
        for _ in range(300):
            x = (x * 6364136223846793005 + 1442695040888963407) & ((1 << 64) - 1)
            v = x >> (x & 63)
            compat.SINGLE_FLOAT = True
            try:
                got = T.encode_to_bytes(T.FLOAT64, v)
            finally:
                compat.SINGLE_FLOAT = False
            assert got == b"\x18" + struct.pack(">d", float(v)), v
