"""COSEM Profile Generic (class 7): :class:`ProfileGeneric`. Sans-IO.

Reads the buffer by range, by entry or whole, delivering rows one at a time to a sink (never the
buffer in RAM). Clock cells become :class:`optoread.dlms.axdr.decode.DateTime`; null clock cells
of compressed buffers are rebuilt from the previous row + capture_period. Register columns may
be scaled from the registers' scaler_unit or from an IS 15959 scaler profile.
"""

from optoread.compat import const
from optoread.dlms.axdr import decode as axdr
from optoread.dlms.axdr.data import NOT_SPECIFIED, YEAR_NOT_SPECIFIED
from optoread.dlms.cosem.base import (
    CLASS_CLOCK,
    CLASS_DEMAND_REGISTER,
    REGISTER_ATTRS,
    CosemError,
    Value,
    as_datetime_arg,
    get_attributes,
    is_int,
    obis6,
    parse_scaler_unit,
    to_datetime,
)
from optoread.dlms.xdlms import apdu as xdlms
from optoread.errors import DataAccessError

_CLOCK_TIME = const(2)  # as in base (private: compiled away)

_CLASS_PROFILE_GENERIC = const(7)
_ATTR_BUFFER = const(2)
_ATTR_CAPTURE_OBJECTS = const(3)
_ATTR_CAPTURE_PERIOD = const(4)
_ATTR_SORT_METHOD = const(5)
_ATTR_SORT_OBJECT = const(6)
_ATTR_ENTRIES_IN_USE = const(7)
_ATTR_PROFILE_ENTRIES = const(8)
_CAPTURE_OBJECT_SIZE = const(18)  # an encoded capture_object_definition (selective access)
_INTEGER = const(15)  # A-XDR tag of a method's integer parameter


def add_seconds(dt, secs):
    """``dt`` moved by ``secs`` seconds, keeping its deviation, status, hundredths and (when not
    specified) weekday; None when ``dt`` is not a real calendar instant (wildcards)."""
    t = dt.local_epoch()
    if t is None or dt.year == YEAR_NOT_SPECIFIED:  # local_epoch() accepts year 0xFFFF
        return None
    # Same deviation before and after, so local arithmetic equals UTC arithmetic.
    n = axdr.DateTime.from_epoch(t + secs, axdr.DEVIATION_UNSPECIFIED, dt.status, dt.hundredths)
    n.deviation = dt.deviation
    if dt.weekday == NOT_SPECIFIED:
        n.weekday = NOT_SPECIFIED
    return n


def _capture_object(v, index):
    # capture_object_definition {class_id, logical_name, attribute_index, data_index}
    if not isinstance(v, (tuple, list)) or len(v) != 4:
        raise CosemError("capture object is not a structure of four", "capture_objects", index)
    cls, ln, attr, idx = v
    if (not is_int(cls) or not isinstance(ln, (bytes, bytearray)) or len(ln) != 6
            or not is_int(attr) or not is_int(idx)):
        raise CosemError("capture object fields have wrong types", "capture_objects", index)
    return (cls, bytes(ln), attr, idx)


def _is_clock(co):
    return co[0] == CLASS_CLOCK and co[2] == _CLOCK_TIME


def _is_register_value(co):
    # Register-like value attribute: 3/4 attr 2, 5 attr 2 or 3 (current/last average).
    return co[0] in REGISTER_ATTRS and (co[2] == 2 or (co[0] == CLASS_DEMAND_REGISTER and co[2] == 3))


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
            if not is_int(v) or v < 0:
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
        ``get_many``; ``cache`` as in :func:`.register.read_register`). With ``scaler_profile`` (an OBIS,
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
                    reqs.append((co[0], co[1], REGISTER_ATTRS[co[0]][0]))
                    where.append(i)
        if reqs:
            answers = get_attributes(sess, reqs)
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
        if is_int(c):
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
        f = as_datetime_arg(from_dt, "from")
        t = as_datetime_arg(to_dt, "to")
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
            if not is_int(v):
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
