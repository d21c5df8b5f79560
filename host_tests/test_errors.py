"""The error hierarchy and the compat layer."""

from optoread import compat, errors

PORTABLE = True


def test_every_layer_error_is_an_optoread_error():
    for cls in (errors.Iec21Error, errors.ChecksumError, errors.LinkError, errors.AxdrError,
                errors.ApduError, errors.DataAccessError, errors.SecurityError, errors.ObisError,
                errors.NoAnswerError, errors.TransportError, errors.SessionError, errors.StoreError,
                errors.ConsoleError):
        e = cls("bad thing", field="length", offset=3)
        assert isinstance(e, errors.OptoreadError)
        text = str(e)
        assert "bad thing" in text and "length" in text and "3" in text
        assert text.startswith(cls.layer + ":")


def test_error_without_field():
    assert str(errors.LinkError("x")) == "hdlc: x"
    assert str(errors.LinkError("x", offset=7)) == "hdlc: x [@ 7]"


def test_no_answer_carries_what_was_tried():
    e = errors.NoAnswerError("no answer", tried=["300 baud", "9600 baud"])
    assert e.tried == ["300 baud", "9600 baud"]


def test_ticks_diff_wraps():
    t = compat.ticks_ms()
    later = compat.ticks_add(t, 1000)
    assert compat.ticks_diff(later, t) == 1000
    assert compat.ticks_diff(t, later) == -1000


def test_const_and_hexstr():
    assert compat.const(5) == 5
    assert compat.hexstr(b"\x7e\xa0") == "7E A0"
