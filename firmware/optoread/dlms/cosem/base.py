"""What every reading needs of the COSEM interface classes (IEC 62056-6-2, Blue Book), and what
the class modules share. Sans-IO.

The Clock (class 8: read, set, shift_time, time_zone, status); class ids, :class:`CosemError`,
the shapes of attribute values (OBIS code, integer, scaler_unit, date-time), the register
:class:`Value` (raw x 10^scaler in a DLMS unit, exact text via
:func:`optoread.units.scaled_text`), access to any attribute or method of any class
(:func:`get_attribute`, :func:`get_attributes`, :func:`set_attribute`, :func:`invoke`), and
any value as the text the store keeps (:func:`value_text`: dates in ISO form, printable octet
strings as text, others in hex).

Everything here talks to the meter only through the session API
(``sess.get(class_id, obis, attr, selector=0, params=None, sink=None)``, ``sess.get_many``,
``sess.set``, ``sess.action``), so it runs unchanged against the real session, the
simulator or a test double.
"""

from optoread import obis as _obis
from optoread.compat import const, hexstr
from optoread.dlms.axdr import decode as axdr
from optoread.errors import ApduError, DataAccessError

CLASS_DATA = const(1)
CLASS_REGISTER = const(3)
CLASS_EXTENDED_REGISTER = const(4)
CLASS_DEMAND_REGISTER = const(5)
CLASS_CLOCK = const(8)
_CLOCK_TIME = const(2)  # the Clock's attribute 2, time (a profile's clock column captures it)

# The register classes: class_id -> (scaler_unit attr, status attr, capture_time attr); the
# value is attribute 2 (class 5: 2 current, 3 last average).
REGISTER_ATTRS = {
    CLASS_REGISTER: (3, 0, 0),
    CLASS_EXTENDED_REGISTER: (3, 4, 5),
    CLASS_DEMAND_REGISTER: (4, 5, 6),
}


class CosemError(ApduError):
    """A COSEM attribute value has a shape its interface class does not allow."""

    layer = "cosem"


# ---------------------------------------------------------------- value shapes


def obis6(code):
    """The 6-byte form of an OBIS code given as 6 bytes, text (any :func:`obis.parse` form) or a
    6-tuple of ints."""
    if isinstance(code, (bytes, bytearray, memoryview)):
        if len(code) != 6:
            raise CosemError("an OBIS code is 6 bytes", "obis")
        return bytes(code)
    if isinstance(code, str):
        return _obis.parse(code)
    if isinstance(code, tuple) and len(code) == 6:
        return _obis.make(*code)
    raise CosemError("not an OBIS code: %r" % (code,), "obis")


def is_int(v):
    """True for an int that is not a bool (an A-XDR integer of any size)."""
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v):
    return (isinstance(v, int) and not isinstance(v, bool)) or isinstance(v, float)


def parse_scaler_unit(v, field="scaler_unit", index=None):
    """``(scaler, unit_code)`` of a decoded scaler_unit structure ``{integer, enum}``; CosemError
    if ``v`` is not one."""
    if not isinstance(v, (tuple, list)) or len(v) != 2:
        raise CosemError("scaler_unit is not a structure of two", field, index)
    s = v[0]
    u = v[1]
    if not is_int(s) or s < -128 or s > 127 or not is_int(u) or u < 0 or u > 255:
        raise CosemError("scaler_unit values out of range: %r" % (v,), field, index)
    return s, u


def to_datetime(v):
    """A clock value as :class:`axdr.DateTime`: octet-string(12) is converted, a DateTime is
    returned as is, anything else (None, other types) unchanged."""
    if isinstance(v, (bytes, bytearray, memoryview)) and len(v) == 12:
        return axdr.DateTime.from_bytes(v)
    return v


def as_datetime_arg(v, field):
    """A date-time argument (a range bound, a time to set): a DateTime as is, 12 raw octets as
    bytes, a ``(y, m, d, h, mi, s[, ...])`` tuple as a DateTime; CosemError otherwise."""
    if isinstance(v, axdr.DateTime):
        return v
    if isinstance(v, (bytes, bytearray, memoryview)):
        if len(v) != 12:
            raise CosemError("a date-time is 12 octets", field)
        return bytes(v)
    if isinstance(v, tuple) and 6 <= len(v) <= 10:
        return axdr.DateTime(*v)
    raise CosemError("not a date-time: %r" % (v,), field)


# ---------------------------------------------------------------- values


class Value:
    """A register value: ``raw`` as read, ``scaler`` (0 when the object has none), ``unit_code``
    (DLMS unit enum or None), ``unit`` (symbol), ``scaled`` (raw x 10^scaler), ``text`` (exact
    decimal text), plus ``status`` and ``capture_time`` (DateTime) for classes 4 and 5."""

    def __init__(self, raw, scaler=0, unit_code=None, status=None, capture_time=None, obis=None,
                 class_id=None):
        self.raw = raw
        self.scaler = scaler
        self.unit_code = unit_code
        self.status = status
        self.capture_time = capture_time
        self.obis = obis
        self.class_id = class_id

    @property
    def unit(self):
        """Unit symbol (``"Wh"``) or None."""
        from optoread import units  # the unit tables are loaded only when a symbol is asked for (RAM)

        return units.unit_name(self.unit_code)

    @property
    def scaled(self):
        """``raw * 10**scaler`` for numbers (int for scaler >= 0, else float); other raw values
        unchanged."""
        if not _is_number(self.raw) or not self.scaler:
            return self.raw
        from optoread import units

        return units.apply_scaler(self.raw, self.scaler)

    @property
    def text(self):
        """Exact decimal text of the scaled value (no float rounding); str() of other values."""
        if _is_number(self.raw):
            from optoread import units

            return units.scaled_text(self.raw, self.scaler or 0)
        if isinstance(self.raw, (bytes, bytearray)):
            return hexstr(self.raw)
        return str(self.raw)

    def __eq__(self, other):
        return (isinstance(other, Value) and self.raw == other.raw and self.scaler == other.scaler
                and self.unit_code == other.unit_code and self.status == other.status
                and self.capture_time == other.capture_time)

    def __ne__(self, other):
        return not self.__eq__(other)

    def __repr__(self):
        u = self.unit
        return "Value(%s%s)" % (self.text, " " + u if u else "")


# ---------------------------------------------------------------- generic access


def get_attribute(sess, class_id, obis, attr, selector=0, params=None, sink=None):
    """Any attribute of any class, as the session decodes it (``sink`` streams an array)."""
    return sess.get(class_id, obis6(obis), attr, selector=selector, params=params, sink=sink)


def get_attributes(sess, reqs):
    """Several attributes, ``reqs`` = ``[(class_id, obis6, attr), ...]``, in as few round trips
    as the session allows (``sess.get_many``): one answer per request, the value or the error
    of that attribute. CosemError if the session's answers do not match the requests."""
    answers = sess.get_many(reqs)
    if not isinstance(answers, (list, tuple)) or len(answers) != len(reqs):
        raise CosemError("get_many gave %d answers to %d requests" % (len(answers), len(reqs)),
                         "get_many")
    return answers


def set_attribute(sess, class_id, obis, attr, tag, value):
    """Write any attribute: ``tag`` is the A-XDR tag, ``value`` as the A-XDR encoder takes it."""
    return sess.set(class_id, obis6(obis), attr, tag, value)


def invoke(sess, class_id, obis, method, tag=None, value=None):
    """Call any method (ACTION); returns the method's return value or None."""
    return sess.action(class_id, obis6(obis), method, tag, value)


def value_text(v):
    """``v`` (a decoded A-XDR value) as the text the store keeps: the reader's meter serial and
    clock, profile cells and register values that are no number."""
    if isinstance(v, axdr.DateTime):
        return v.iso()
    if isinstance(v, (bytes, bytearray)) and len(v) == 12 and v[0] != 0xFF:
        # date-time cells of profiles (billing dates) arrive as octet-string(12)
        return axdr.DateTime.from_bytes(bytes(v)).iso()
    if isinstance(v, (bytes, bytearray)):
        if v and all(0x20 <= b < 0x7F for b in v):
            return bytes(v).decode()
        return "".join("%02x" % b for b in v)
    return str(v)


CLOCK_OBIS = b"\x00\x00\x01\x00\x00\xff"  # 0.0.1.0.0.255

_ATTR_TIME_ZONE = const(3)
_ATTR_STATUS = const(4)
_METHOD_SHIFT_TIME = const(6)
_MAX_SHIFT = const(900)  # shift_time takes -900..900 s (Blue Book class 8, method 6)
_OCTET_STRING = const(9)  # the A-XDR tags of the time set and of the shift
_LONG = const(16)


class Clock:
    """The Clock object (class 8), by default 0.0.1.0.0.255."""

    def __init__(self, obis=CLOCK_OBIS):
        self.obis = obis6(obis)

    def read(self, sess):
        """Attribute 2 (time) as :class:`axdr.DateTime`."""
        v = to_datetime(sess.get(CLASS_CLOCK, self.obis, _CLOCK_TIME))
        if not isinstance(v, axdr.DateTime):
            raise CosemError("clock time is not a date-time: %r" % (v,), "time")
        return v

    def time_zone(self, sess):
        """Attribute 3: deviation of local standard time from UTC in minutes (Blue Book sign)."""
        return sess.get(CLASS_CLOCK, self.obis, _ATTR_TIME_ZONE)

    def status(self, sess):
        """Attribute 4: clock status bits (axdr.STATUS_*)."""
        return sess.get(CLASS_CLOCK, self.obis, _ATTR_STATUS)

    def set(self, sess, dt):
        """Write attribute 2 (needs a privileged association: LLS/HLS)."""
        dt = as_datetime_arg(dt, "time")
        raw = dt.to_bytes() if isinstance(dt, axdr.DateTime) else dt
        try:
            sess.set(CLASS_CLOCK, self.obis, _CLOCK_TIME, _OCTET_STRING, raw)
        except DataAccessError as e:
            if e.result == 3:  # read-write-denied: say what the user can change
                raise DataAccessError(
                    "setting the clock was denied (%s): it needs a privileged association "
                    "(a client with LLS or HLS authentication)" % e.message, result=e.result)
            raise

    def shift_time(self, sess, seconds):
        """Method 6: move the clock by ``seconds`` (-900..900)."""
        if not is_int(seconds) or seconds < -_MAX_SHIFT or seconds > _MAX_SHIFT:
            raise CosemError("shift_time takes -900..900 seconds", "shift_time")
        return sess.action(CLASS_CLOCK, self.obis, _METHOD_SHIFT_TIME, _LONG, seconds)
