"""COSEM interface classes on top of a DLMS session (IEC 62056-6-2, Blue Book). Sans-IO.

Everything here talks to the meter only through the session API
(``sess.get(class_id, obis, attr, selector=0, params=None, sink=None)``, ``sess.get_many``,
``sess.set``, ``sess.action``), so it runs unchanged against the real session, the
simulator or a test double. It turns attribute values into meaning:

* Data (1), Register (3), Extended Register (4), Demand Register (5): in
  :mod:`optoread.cosem_register`, whose ``read_data``, ``read_register`` and ``read_registers``
  give :class:`Value` (raw x 10^scaler in a DLMS unit, exact text via
  :func:`optoread.units.scaled_text`).
* Profile Generic (7): :class:`ProfileGeneric` reads the buffer by range, by entry or
  whole, delivering rows one at a time to a sink (never the buffer in RAM). Clock cells
  become :class:`optoread.axdr.DateTime`; null clock cells of compressed buffers are rebuilt
  from the previous row + capture_period. Register columns may be scaled from the
  registers' scaler_unit or from an IS 15959 scaler profile.
* Clock (8): :class:`Clock` read / set / shift_time / time_zone / status.
* Association LN (15) / SN (12): ``browse`` in :mod:`optoread.cosem_association` streams
  the object_list.

The register and association modules are loaded only by readings that use them (RAM: an
IS 15959 plan reads profiles, never loads either).
* Any class: :func:`get_attribute`, :func:`set_attribute`, :func:`invoke`.

Values a meter sends in an unexpected shape raise :class:`CosemError` (field and index named).
"""

from optoread import obis as _obis
from optoread.compat import const, hexstr
from optoread.dlms.axdr import decode as axdr
from optoread.dlms.xdlms import apdu as xdlms
from optoread.errors import ApduError, DataAccessError

CLASS_DATA = const(1)
CLASS_REGISTER = const(3)
CLASS_EXTENDED_REGISTER = const(4)
CLASS_DEMAND_REGISTER = const(5)
_CLASS_PROFILE_GENERIC = const(7)
CLASS_CLOCK = const(8)

CLOCK_OBIS = b"\x00\x00\x01\x00\x00\xff"  # 0.0.1.0.0.255

_ATTR_VALUE = const(2)
_ATTR_BUFFER = const(2)
_ATTR_CAPTURE_OBJECTS = const(3)
_ATTR_CAPTURE_PERIOD = const(4)
_ATTR_SORT_METHOD = const(5)
_ATTR_SORT_OBJECT = const(6)
_ATTR_ENTRIES_IN_USE = const(7)
_ATTR_PROFILE_ENTRIES = const(8)
_ATTR_TIME = const(2)
_ATTR_TIME_ZONE = const(3)
_ATTR_STATUS = const(4)
_ATTR_OBJECT_LIST = const(2)
_METHOD_SHIFT_TIME = const(6)
_MAX_SHIFT = const(900)  # shift_time takes -900..900 s (Blue Book class 8, method 6)
_CAPTURE_OBJECT_SIZE = const(18)  # encoded capture_object_definition (xdlms._put_capture_object)
_OCTET_STRING = const(9)  # Data tags (axdr keeps them private, axdr_encode has them public)
_INTEGER = const(15)
_LONG = const(16)


class CosemError(ApduError):
    """A COSEM attribute value has a shape its interface class does not allow."""

    layer = "cosem"


# ---------------------------------------------------------------- small helpers


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


def _is_int(v):
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
    if not _is_int(s) or s < -128 or s > 127 or not _is_int(u) or u < 0 or u > 255:
        raise CosemError("scaler_unit values out of range: %r" % (v,), field, index)
    return s, u


def to_datetime(v):
    """A clock value as :class:`axdr.DateTime`: octet-string(12) is converted, a DateTime is
    returned as is, anything else (None, other types) unchanged."""
    if isinstance(v, (bytes, bytearray, memoryview)) and len(v) == 12:
        return axdr.DateTime.from_bytes(v)
    return v


def add_seconds(dt, secs):
    """``dt`` moved by ``secs`` seconds, keeping its deviation, status, hundredths and (when not
    specified) weekday; None when ``dt`` is not a real calendar instant (wildcards)."""
    t = dt.local_epoch()
    if t is None or dt.year == axdr.YEAR_NOT_SPECIFIED:  # local_epoch() accepts year 0xFFFF
        return None
    # Same deviation before and after, so local arithmetic equals UTC arithmetic.
    n = axdr.DateTime.from_epoch(t + secs, axdr.DEVIATION_UNSPECIFIED, dt.status, dt.hundredths)
    n.deviation = dt.deviation
    if dt.weekday == axdr.NOT_SPECIFIED:
        n.weekday = axdr.NOT_SPECIFIED
    return n


def _as_datetime_arg(v, field):
    # Range bounds: DateTime, 12 raw octets, or (y, m, d, h, mi, s[, ...]) tuple.
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


def set_attribute(sess, class_id, obis, attr, tag, value):
    """Write any attribute: ``tag`` is the A-XDR tag, ``value`` as :func:`axdr.encode` takes it."""
    return sess.set(class_id, obis6(obis), attr, tag, value)


def invoke(sess, class_id, obis, method, tag=None, value=None):
    """Call any method (ACTION); returns the method's return value or None."""
    return sess.action(class_id, obis6(obis), method, tag, value)


# ---------------------------------------------------------------- Register (cosem_register)

# class_id -> (scaler_unit attr, status attr, capture_time attr); value is attribute 2.
_REGISTER_ATTRS = {
    CLASS_REGISTER: (3, 0, 0),
    CLASS_EXTENDED_REGISTER: (3, 4, 5),
    CLASS_DEMAND_REGISTER: (4, 5, 6),
}


def _check_answers(answers, reqs):
    if not isinstance(answers, (list, tuple)) or len(answers) != len(reqs):
        raise CosemError("get_many gave %d answers to %d requests" % (len(answers), len(reqs)),
                         "get_many")


# ---------------------------------------------------------------- Profile Generic


def _capture_object(v, index):
    # capture_object_definition {class_id, logical_name, attribute_index, data_index}
    if not isinstance(v, (tuple, list)) or len(v) != 4:
        raise CosemError("capture object is not a structure of four", "capture_objects", index)
    cls, ln, attr, idx = v
    if (not _is_int(cls) or not isinstance(ln, (bytes, bytearray)) or len(ln) != 6
            or not _is_int(attr) or not _is_int(idx)):
        raise CosemError("capture object fields have wrong types", "capture_objects", index)
    return (cls, bytes(ln), attr, idx)


def _is_clock(co):
    return co[0] == CLASS_CLOCK and co[2] == _ATTR_TIME


def _is_register_value(co):
    # Register-like value attribute: 3/4 attr 2, 5 attr 2 or 3 (current/last average).
    return co[0] in _REGISTER_ATTRS and (co[2] == 2 or (co[0] == CLASS_DEMAND_REGISTER and co[2] == 3))


class _RowSink:
    """Per-row conversion while the buffer streams: clock cells to DateTime, null clock cells
    rebuilt from the previous row, register cells scaled. Holds one previous clock per clock
    column and nothing proportional to the row count."""

    def __init__(self, cols, sink, period, scalers):
        self.sink = sink
        self.period = period or 0
        self.ncols = len(cols)
        self.clock = []
        self.scale = []
        for i in range(len(cols)):
            if _is_clock(cols[i]):
                self.clock.append(i)
            elif scalers is not None and scalers[i] is not None:
                self.scale.append((i, scalers[i][0], scalers[i][1]))
        self.prev = []  # last DateTime seen per clock column
        for _ in self.clock:
            self.prev.append(axdr.DateTime(0xFFFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF))
        self.count = 0

    def __call__(self, row):
        if not isinstance(row, (tuple, list)):
            raise CosemError("buffer entry is not a structure", "buffer", self.count)
        if len(row) != self.ncols:
            raise CosemError("buffer entry has %d values, %d columns expected" % (len(row), self.ncols),
                             "buffer", self.count)
        if self.clock or self.scale:
            row = list(row)
            for k in range(len(self.clock)):
                i = self.clock[k]
                v = to_datetime(row[i])
                if v is None and self.period > 0:  # the initial wildcard prev gives None
                    v = add_seconds(self.prev[k], self.period)
                if isinstance(v, axdr.DateTime):
                    self.prev[k] = v
                row[i] = v
            for i, s, u in self.scale:
                row[i] = Value(row[i], s, u)
            row = tuple(row)
        self.count += 1
        self.sink(row)


class ProfileGeneric:
    """A Profile Generic object (class 7) at ``obis``. Attribute values read once are kept
    (capture_objects, capture_period); pass them to the constructor to skip reading them.
    ``keep=False`` drops the capture objects once a buffer read has what it needs from them,
    before the rows stream in (a reader that reads each profile once: ~130 bytes a column).
    """

    def __init__(self, obis, capture_objects=None, capture_period=None, keep=True):
        self.obis = obis6(obis)
        self._cos = capture_objects
        self._period = capture_period
        self._keep = keep

    # -- attributes

    def capture_objects(self, sess, refresh=False):
        """Columns as ``[(class_id, obis6, attr, data_index), ...]`` (attribute 3, cached)."""
        if self._cos is None or refresh:
            v = sess.get(_CLASS_PROFILE_GENERIC, self.obis, _ATTR_CAPTURE_OBJECTS)
            if not isinstance(v, (list, tuple)):
                raise CosemError("capture_objects is not an array", "capture_objects")
            self._cos = [_capture_object(v[i], i) for i in range(len(v))]
        return self._cos

    def capture_period(self, sess, refresh=False):
        """Seconds between captures (attribute 4, cached); 0 = asynchronous capture."""
        if self._period is None or refresh:
            v = sess.get(_CLASS_PROFILE_GENERIC, self.obis, _ATTR_CAPTURE_PERIOD)
            if not _is_int(v) or v < 0:
                raise CosemError("capture_period is not an unsigned number", "capture_period")
            self._period = v
        return self._period

    def sort_method(self, sess):
        """Attribute 5: 1 fifo, 2 lifo, 3 largest, 4 smallest, 5 nearest_to_zero, 6 farest_from_zero."""
        return sess.get(_CLASS_PROFILE_GENERIC, self.obis, _ATTR_SORT_METHOD)

    def sort_object(self, sess):
        """Attribute 6 as ``(class_id, obis6, attr, data_index)``, or None when not set (class 0)."""
        co = _capture_object(sess.get(_CLASS_PROFILE_GENERIC, self.obis, _ATTR_SORT_OBJECT), 0)
        return None if co[0] == 0 else co

    def entries_in_use(self, sess):
        """Attribute 7: number of rows in the buffer."""
        return sess.get(_CLASS_PROFILE_GENERIC, self.obis, _ATTR_ENTRIES_IN_USE)

    def profile_entries(self, sess):
        """Attribute 8: capacity of the buffer in rows."""
        return sess.get(_CLASS_PROFILE_GENERIC, self.obis, _ATTR_PROFILE_ENTRIES)

    def clock_column(self, sess):
        """0-based index of the clock column (class 8 attribute 2) in capture_objects, or None."""
        cos = self.capture_objects(sess)
        for i in range(len(cos)):
            if _is_clock(cos[i]):
                return i
        return None

    # -- scaling

    def column_scalers(self, sess, scaler_profile=None, cache=None):
        """Per-column ``(scaler, unit)`` (None for columns that are not register values), aligned
        with capture_objects; pass it as ``scalers=`` to the read methods.

        Without ``scaler_profile`` the registers' scaler_unit attributes are read (one
        ``get_many``; ``cache`` as in :func:`read_register`). With ``scaler_profile`` (an OBIS,
        e.g. IS 15959 1.0.94.91.4.255) that profile's single row of scaler_unit structures is
        read and matched to these columns by OBIS.
        """
        cos = self.capture_objects(sess)
        out = [None] * len(cos)
        if scaler_profile is not None:
            sp = ProfileGeneric(scaler_profile)
            spcos = sp.capture_objects(sess)
            found = {}

            def take(row):
                # Cells that are not scaler_unit structures (e.g. a clock) carry no scaler.
                for i in range(min(len(row), len(spcos))):
                    try:
                        found[spcos[i][1]] = parse_scaler_unit(row[i])
                    except CosemError:
                        pass

            # Read raw: no clock handling wanted, and a scaler profile holds a single row.
            sess.get(_CLASS_PROFILE_GENERIC, sp.obis, _ATTR_BUFFER, sink=take)
            for i in range(len(cos)):
                if _is_register_value(cos[i]):
                    out[i] = found.get(cos[i][1])
            return out
        if cache is None:
            cache = {}
        reqs = []
        where = []
        for i in range(len(cos)):
            co = cos[i]
            if _is_register_value(co):
                if co[1] in cache:
                    out[i] = cache[co[1]]
                else:
                    reqs.append((co[0], co[1], _REGISTER_ATTRS[co[0]][0]))
                    where.append(i)
        if reqs:
            answers = sess.get_many(reqs)
            _check_answers(answers, reqs)
            for k in range(len(reqs)):
                a = answers[k]
                if isinstance(a, Exception):
                    continue
                su = parse_scaler_unit(a, "scaler_unit", where[k])
                cache[reqs[k][1]] = su
                out[where[k]] = su
        return out

    # -- buffer

    def _check_scalers(self, cos, scalers):
        if scalers is not None and len(scalers) != len(cos):
            raise CosemError("scalers has %d entries for %d columns" % (len(scalers), len(cos)), "scalers")

    def _row_sink(self, sess, cols, sink, scalers):
        period = self._period
        if period is None:
            for co in cols:
                if _is_clock(co):
                    # Needed before streaming: no other request may run inside the GET.
                    period = self.capture_period(sess)
                    break
        return _RowSink(cols, sink, period, scalers)

    def _stream(self, sess, selector, params, rs):
        # The callers hold no capture objects any more: without keep, none are left on the heap.
        if not self._keep:
            self._cos = None
        sess.get(_CLASS_PROFILE_GENERIC, self.obis, _ATTR_BUFFER, selector=selector, params=params,
                 sink=rs)
        return rs.count

    def _column(self, cos, c, field):
        if _is_int(c):
            if c < 0 or c >= len(cos):
                raise CosemError("no column %d (profile has %d)" % (c, len(cos)), field)
            return c, cos[c]
        co = _capture_object(c, 0)
        for i in range(len(cos)):
            if cos[i][:3] == co[:3]:
                return i, co
        raise CosemError("not a capture object of this profile: %r" % (c,), field)

    def read_range(self, sess, from_dt, to_dt, sink, no_deviation=False, sort_column=None, columns=None,
                   scalers=None):
        """Rows whose sort column lies in ``from_dt .. to_dt`` (selector 1, range_descriptor).

        ``from_dt``/``to_dt``: DateTime, 12 octets or a ``(y, m, d, h, mi, s)`` tuple.
        ``no_deviation``: True sends deviation 0x8000 ("not specified") for meters that reject
        a deviation; ``"auto"`` first tries as given and retries so when the meter refuses
        before any row arrived. ``sort_column``: restricting column as an index into
        capture_objects or a capture object; default the clock column wherever it is.
        ``columns``: indexes or capture objects to read (None: all). ``scalers``: from
        :meth:`column_scalers`. Calls ``sink(row)`` per row; returns the row count.
        """
        # The set-up runs in its own frame: MicroPython scans a frame's whole value stack, so
        # what it used (capture objects, dates, encoding buffer) would stay alive while rows stream.
        first, retry, rs = self._range_setup(sess, from_dt, to_dt, sink, no_deviation, sort_column,
                                             columns, scalers)
        if retry is None:
            return self._stream(sess, 1, first, rs)
        try:
            return self._stream(sess, 1, first, rs)
        except DataAccessError:
            if rs.count:
                raise  # rows were delivered: a retry would repeat them
        return self._stream(sess, 1, retry, rs)

    def _range_setup(self, sess, from_dt, to_dt, sink, no_deviation, sort_column, columns, scalers):
        # (parameters, parameters without deviation for "auto" or None, row sink) of read_range
        cos = self.capture_objects(sess)
        if sort_column is None:
            i = self.clock_column(sess)
            if i is None:
                raise CosemError("profile has no clock column to select a range on", "sort_column")
            sort_co = cos[i]
        else:
            sort_co = self._column(cos, sort_column, "sort_column")[1]
        self._check_scalers(cos, scalers)
        f = _as_datetime_arg(from_dt, "from")
        t = _as_datetime_arg(to_dt, "to")
        sel = []
        if columns:
            for c in columns:
                sel.append(self._column(cos, c, "columns"))
        cols = [p[1] for p in sel] if sel else cos
        scl = None
        if scalers is not None:
            scl = [scalers[p[0]] for p in sel] if sel else scalers
        buf = bytearray(48 + _CAPTURE_OBJECT_SIZE * (len(sel) + 1))
        picked = [p[1] for p in sel]
        auto = no_deviation == "auto"
        n = xdlms.encode_range_descriptor(buf, 0, sort_co, f, t, picked, bool(no_deviation) and not auto)
        first = bytes(buf[:n])
        retry = None
        if auto:  # deviation as given first; "not specified" if the meter refuses that
            retry = bytes(buf[:xdlms.encode_range_descriptor(buf, 0, sort_co, f, t, picked, True)])
        return first, retry, self._row_sink(sess, cols, sink, scl)

    def read_entries(self, sess, from_entry, to_entry, sink, from_col=1, to_col=0, scalers=None):
        """Rows ``from_entry .. to_entry`` (1-based, 0 = to the last), columns ``from_col ..
        to_col`` (1-based, 0 = to the last) with selector 2; returns the row count."""
        cos = self.capture_objects(sess)
        for v in (from_entry, to_entry, from_col, to_col):
            if not _is_int(v):
                raise CosemError("entry and column numbers are integers", "entries")
        if from_entry < 1 or to_entry < 0 or (to_entry and to_entry < from_entry):
            raise CosemError("bad entry range %d..%d" % (from_entry, to_entry), "entries")
        self._check_scalers(cos, scalers)
        last = to_col if to_col else len(cos)
        if from_col < 1 or last > len(cos) or last < from_col:
            raise CosemError("bad column range %d..%d of %d" % (from_col, to_col, len(cos)), "columns")
        cols = cos[from_col - 1:last]
        scl = scalers[from_col - 1:last] if scalers is not None else None
        buf = bytearray(20)
        n = xdlms.encode_entry_descriptor(buf, 0, from_entry, to_entry, from_col, to_col)
        rs = self._row_sink(sess, cols, sink, scl)
        cos = cols = scl = None  # the rows stream without them
        return self._stream(sess, 2, bytes(buf[:n]), rs)

    def read_all(self, sess, sink, scalers=None):
        """The whole buffer (no selective access); returns the row count."""
        cos = self.capture_objects(sess)
        self._check_scalers(cos, scalers)
        rs = self._row_sink(sess, cos, sink, scalers)
        cos = None  # the rows stream without them
        return self._stream(sess, 0, None, rs)

    # -- methods

    def reset(self, sess):
        """Method 1: clear the buffer (needs a privileged association)."""
        return sess.action(_CLASS_PROFILE_GENERIC, self.obis, 1, _INTEGER, 0)

    def capture(self, sess):
        """Method 2: capture one row now."""
        return sess.action(_CLASS_PROFILE_GENERIC, self.obis, 2, _INTEGER, 0)


# ---------------------------------------------------------------- Clock


class Clock:
    """The Clock object (class 8), by default 0.0.1.0.0.255."""

    def __init__(self, obis=CLOCK_OBIS):
        self.obis = obis6(obis)

    def read(self, sess):
        """Attribute 2 (time) as :class:`axdr.DateTime`."""
        v = to_datetime(sess.get(CLASS_CLOCK, self.obis, _ATTR_TIME))
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
        dt = _as_datetime_arg(dt, "time")
        raw = dt.to_bytes() if isinstance(dt, axdr.DateTime) else dt
        try:
            sess.set(CLASS_CLOCK, self.obis, _ATTR_TIME, _OCTET_STRING, raw)
        except DataAccessError as e:
            if e.result == 3:  # read-write-denied: say what the user can change
                raise DataAccessError(
                    "setting the clock was denied (%s): it needs a privileged association "
                    "(a client with LLS or HLS authentication)" % e.message, result=e.result)
            raise

    def shift_time(self, sess, seconds):
        """Method 6: move the clock by ``seconds`` (-900..900)."""
        if not _is_int(seconds) or seconds < -_MAX_SHIFT or seconds > _MAX_SHIFT:
            raise CosemError("shift_time takes -900..900 seconds", "shift_time")
        return sess.action(CLASS_CLOCK, self.obis, _METHOD_SHIFT_TIME, _LONG, seconds)
