"""COSEM Clock (class 8): read, set, shift_time, time_zone, status. Sans-IO."""

from optoread.compat import const
from optoread.dlms.axdr import decode as axdr
from optoread.dlms.cosem.base import CLASS_CLOCK, CosemError, as_datetime_arg, is_int, obis6, to_datetime
from optoread.errors import DataAccessError

_CLOCK_TIME = const(2)  # as in base (private: compiled away)

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
