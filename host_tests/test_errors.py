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


def _load(name):
    __import__("optoread." + name)


def test_unload_takes_a_module_off_the_heap_on_micropython():
    import gc
    import sys

    import optoread

    gc.collect()
    _load("obis_names")  # tables only: nothing else holds on to it
    if not compat.IS_MICROPYTHON:
        compat.unload("obis_names")  # CPython keeps its modules (tests hold references to them)
        assert "optoread.obis_names" in sys.modules
        return
    gc.collect()
    loaded = gc.mem_alloc()
    compat.unload("obis_names")
    gc.collect()
    assert "optoread.obis_names" not in sys.modules and not hasattr(optoread, "obis_names")
    assert loaded - gc.mem_alloc() > 1024  # its code and tables were freed
    _load("obis_names")  # the next import loads it again
    assert sys.modules["optoread.obis_names"] is optoread.obis_names
    compat.unload("no_such_module")  # nothing to forget: no error
