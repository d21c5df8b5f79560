"""Object model of the simulated DLMS/COSEM meter (IS 15959-style; CPython only).

Every value is a deterministic function of its configuration and of the row
index, so tests compare exactly. Attribute values are ``(axdr_tag, value)``
pairs for :func:`optoread.dlms.axdr.encode.encode`. The server (``sim_dlms.py``) owns the
protocol; this module only says what the meter holds.

Profile time base: row ``i`` of a load profile is stamped ``start + i *
period_s`` (local time; the clock's deviation is ``deviation`` minutes, UTC =
local + deviation, so IST is -330). The clock reads the time just after the
last block-load row, plus whatever SET/shift_time changed.
"""

from optoread.dlms.axdr import decode as axdr
from optoread.dlms.axdr import encode as axdr_encode

from .is15959_events import codes_of as is15959_codes_of

A = axdr
T = axdr_encode  # the Data tags
_U8, _U16, _U32, _I16, _I32 = T.UNSIGNED, T.LONG_UNSIGNED, T.DOUBLE_LONG_UNSIGNED, T.LONG, T.DOUBLE_LONG
_OCT = T.OCTET_STRING

# DLMS unit codes (Blue Book table): the ones an IS 15959 meter uses.
WH, W, V, AMP, VAR, VARH, VA, VAH, HZ, NO_UNIT = 30, 27, 35, 33, 29, 32, 28, 31, 44, 255


def ob(text):
    """6 OBIS bytes from ``a.b.c.d.e.f`` text."""
    parts = [int(x) for x in text.split(".")]
    if len(parts) != 6:
        raise ValueError("OBIS needs 6 groups: %r" % text)
    return bytes(parts)


def obis_text(b):
    return ".".join(str(x) for x in b)


def _dt(local_epoch, deviation):
    y, mo, d, h, mi, s, wd = A.from_epoch(local_epoch)
    return A.DateTime(y, mo, d, h, mi, s, 0, deviation, 0, wd)


def dt_bytes(local_epoch, deviation):
    """12-byte COSEM date-time of a local epoch with ``deviation``."""
    return _dt(local_epoch, deviation).to_bytes()


def plain(tv):
    """The decoded Python value of a (tag, value) pair, as axdr.decode returns it."""
    t, v = tv
    if t == T.STRUCTURE:
        return tuple(plain(x) for x in v)
    if t == T.ARRAY:
        return [plain(x) for x in v]
    return v


def capture_def(cls, obis6, attr, idx=0):
    """A capture_object_definition as a (tag, value) structure."""
    return (T.STRUCTURE, ((_U16, cls), (_OCT, obis6), (T.INTEGER, attr), (_U16, idx)))


def scaler_unit(scaler, unit):
    return (T.STRUCTURE, ((T.INTEGER, scaler), (T.ENUM, unit)))


class CosemObject:
    """One object: class, version, logical name; ``attrs`` = attribute ids it has;
    ``methods`` = method ids; ``writable`` = attributes a privileged client may set."""

    def __init__(self, class_id, version, obis6, attrs, methods=(), writable=(), name=""):
        self.class_id = class_id
        self.version = version
        self.obis = obis6
        self.attrs = tuple(attrs)
        self.methods = tuple(methods)
        self.writable = tuple(writable)
        self.name = name
        self.base_name = None  # SN base name, assigned by the model


class DataObject(CosemObject):
    def __init__(self, obis6, value, name="", writable=False):
        CosemObject.__init__(self, 1, 0, obis6, (1, 2), (), (2,) if writable else (), name)
        self.value = value  # (tag, value)


class RegisterObject(CosemObject):
    """Register (3), Extended (4) or Demand (5) register."""

    def __init__(self, class_id, obis6, tag, value, scaler, unit, name="", capture_time=None):
        attrs = {3: (1, 2, 3), 4: (1, 2, 3, 4, 5), 5: (1, 2, 3, 4, 5, 6, 7, 8, 9)}[class_id]
        CosemObject.__init__(self, class_id, 0, obis6, attrs, (1,), (), name)
        self.tag = tag
        self.value = value
        self.scaler = scaler
        self.unit = unit
        self.capture_time = capture_time


class ClockObject(CosemObject):
    def __init__(self, obis6):
        CosemObject.__init__(self, 8, 0, obis6, range(1, 10), (1, 2, 3, 4, 5, 6), (2, 3), "clock")


class ProfileObject(CosemObject):
    """Profile generic (7): ``columns`` = capture objects (class, obis6, attr, idx);
    ``cell(i, c)`` = (tag, value) of row i column c; ``sort_col`` = 0-based index of the
    sort object (the clock column) or None; ``time_of(i)`` = local epoch of row i."""

    def __init__(self, obis6, columns, rows, period_s, cell, sort_col=None, time_of=None, name=""):
        CosemObject.__init__(self, 7, 1, obis6, range(1, 9), (1, 2), (), name)
        self.columns = list(columns)
        self.rows = rows
        self.period_s = period_s
        self.cell = cell
        self.sort_col = sort_col
        self.time_of = time_of


class AssociationObject(CosemObject):
    def __init__(self, class_id, obis6):
        if class_id == 15:
            CosemObject.__init__(self, 15, 1, obis6, range(1, 10), (1, 2), (), "association LN")
        else:
            CosemObject.__init__(self, 12, 2, obis6, (1, 2, 3, 4), (8,), (), "association SN")


CLOCK = ob("0.0.1.0.0.255")
SERIAL = ob("0.0.96.1.0.255")
LDN = ob("0.0.42.0.0.255")
ASSOC_LN = ob("0.0.40.0.0.255")
ASSOC_SN = ob("0.0.40.0.0.255")
BLOCK_LOAD = ob("1.0.99.1.0.255")
DAILY_LOAD = ob("1.0.99.2.0.255")
BILLING = ob("1.0.98.1.0.255")
INSTANT = ob("1.0.94.91.0.255")
NAME_PLATE = ob("0.0.94.91.10.255")
SCRATCH = ob("0.0.96.128.0.255")  # writable octet-string for big SET tests

# Instantaneous registers: obis, tag, value, scaler, unit
_INSTANT_REGS = (
    ("1.0.32.7.0.255", _U16, 23012, -2, V, "voltage L1"),
    ("1.0.52.7.0.255", _U16, 23105, -2, V, "voltage L2"),
    ("1.0.72.7.0.255", _U16, 22987, -2, V, "voltage L3"),
    ("1.0.31.7.0.255", _I32, 512, -2, AMP, "current L1"),
    ("1.0.51.7.0.255", _I32, 498, -2, AMP, "current L2"),
    ("1.0.71.7.0.255", _I32, 505, -2, AMP, "current L3"),
    ("1.0.91.7.0.255", _I32, 12, -2, AMP, "neutral current"),
    ("1.0.13.7.0.255", _I16, 987, -3, NO_UNIT, "power factor"),
    ("1.0.14.7.0.255", _U16, 5001, -2, HZ, "frequency"),
    ("1.0.9.7.0.255", _I32, 3521, 0, VA, "apparent power"),
    ("1.0.1.7.0.255", _I32, 3456, 0, W, "active power"),
    ("1.0.3.7.0.255", _I32, 612, 0, VAR, "reactive power"),
)

# Block load columns after the clock: obis, tag, scaler, unit, name, cell function of row i
_BLOCK_COLS = (
    ("1.0.12.27.0.255", _U16, -2, V, "average voltage", lambda i: 22000 + (i * 37) % 2000),
    ("1.0.11.27.0.255", _U16, -2, AMP, "average current", lambda i: 100 + (i * 53) % 900),
    ("1.0.1.29.0.255", _U32, 0, WH, "block energy import", lambda i: 100 + (i * 7) % 400),
    ("1.0.2.29.0.255", _U32, 0, WH, "block energy export", lambda i: (i * 3) % 20),
    ("1.0.5.29.0.255", _U32, 0, VARH, "block reactive lag", lambda i: 10 + (i * 11) % 90),
    ("1.0.9.29.0.255", _U32, 0, VAH, "block apparent energy", lambda i: 120 + (i * 13) % 400),
)

_NAME_PLATE = (
    ("0.0.96.1.0.255", "serial"),
    ("0.0.96.1.1.255", "manufacturer"),
    ("1.0.0.2.0.255", "firmware"),
    ("0.0.94.91.9.255", "meter type"),
    ("0.0.94.91.11.255", "category"),
    ("0.0.94.91.12.255", "current rating"),
    ("0.0.96.1.4.255", "year of manufacture"),
)


class MeterModel:
    """The meter's objects and their deterministic values.

    ``rows``: block-load entries (15-minute ``period_s``); ``start``: local time of row 0;
    ``deviation``: clock deviation in minutes (UTC = local + deviation; IST = -330);
    ``sort_not_first``: the block-load clock column is the 2nd capture object (quirk,
    gurux.dlms.java PR #13); ``compressed``: profile buffers leave the clock cell null after
    the first row of each response (rebuild from capture_period); ``billing_rows``,
    ``event_rows`` (events k get ``event_rows + k`` rows).
    """

    def __init__(self, rows=2880, start=(2026, 1, 1, 0, 0, 0), period_s=900, deviation=-330,
                 serial="IN12345678", sort_not_first=False, compressed=False, billing_rows=12,
                 event_rows=5, daily_period_s=86400):
        self.rows = rows
        self.start = tuple(start)
        self.period_s = period_s
        self.deviation = deviation
        self.serial = serial
        self.sort_not_first = sort_not_first
        self.compressed = compressed
        self.start_epoch = A.to_epoch(*self.start)
        self.clock_epoch = self.start_epoch + rows * period_s  # local time the meter clock shows
        self.clock_status = 0
        self.time_zone = deviation
        self.writes = []  # (obis, attr, value) log of SETs
        self._billing_rows = billing_rows
        self._event_rows = event_rows
        self.objects = []  # [(class_id, version, obis6, access)] -- filled below
        self._objs = []
        self._by_key = {}
        self._build()

    # ------------------------------------------------------------------ construction
    def _add(self, o):
        self._objs.append(o)
        self._by_key[(o.class_id, o.obis)] = o
        return o

    def _build(self):
        self._add(AssociationObject(15, ASSOC_LN))
        self._add(AssociationObject(12, ASSOC_SN))
        self._add(ClockObject(CLOCK))
        self._add(DataObject(SERIAL, (_OCT, self.serial.encode()), "serial number"))
        self._add(DataObject(LDN, (_OCT, b"SIM" + self.serial.encode()), "logical device name"))
        self._add(DataObject(ob("0.0.96.1.1.255"), (_OCT, b"OPTOREAD SIMULATOR"), "manufacturer"))
        self._add(DataObject(ob("1.0.0.2.0.255"), (_OCT, b"SIM-1.0"), "firmware version"))
        self._add(DataObject(ob("0.0.94.91.9.255"), (_OCT, b"3P-4W"), "meter type"))
        self._add(DataObject(ob("0.0.94.91.11.255"), (_OCT, b"C1"), "category"))
        self._add(DataObject(ob("0.0.94.91.12.255"), (_OCT, b"10-60A"), "current rating"))
        self._add(DataObject(ob("0.0.96.1.4.255"), (_U16, 2025), "year of manufacture"))
        self._add(DataObject(SCRATCH, (_OCT, b""), "scratch", writable=True))
        for obis, tag, val, sc, unit, name in _INSTANT_REGS:
            self._add(RegisterObject(3, ob(obis), tag, val, sc, unit, name))
        # Cumulative energies: value = what the block load added up to.
        n = self.rows
        self._add(RegisterObject(3, ob("1.0.1.8.0.255"), _U32, self.energy_import(n), 0, WH,
                                 "energy import"))
        self._add(RegisterObject(3, ob("1.0.2.8.0.255"), _U32, self.energy_export(n), 0, WH,
                                 "energy export"))
        self._add(RegisterObject(3, ob("1.0.5.8.0.255"), _U32, 456789, 0, VARH, "reactive lag"))
        self._add(RegisterObject(3, ob("1.0.8.8.0.255"), _U32, 12345, 0, VARH, "reactive lead"))
        self._add(RegisterObject(3, ob("1.0.9.8.0.255"), _U32, 1357913, 0, VAH, "apparent energy"))
        self._add(RegisterObject(3, ob("0.0.94.91.14.255"), _U32, 4321, 0, NO_UNIT, "power-on minutes"))
        md_time = dt_bytes(self.start_epoch + 9 * 3600 + 15 * 60, self.deviation)
        self._add(RegisterObject(4, ob("1.0.1.6.0.255"), _U32, 4875, 0, W, "maximum demand kW",
                                 capture_time=md_time))
        self._add(RegisterObject(5, ob("1.0.1.4.0.255"), _U32, 3380, 0, W, "current demand",
                                 capture_time=dt_bytes(self.clock_epoch, self.deviation)))
        for obis, tag, sc, unit, name, _f in _BLOCK_COLS:
            self._add(RegisterObject(3, ob(obis), tag, _f(max(0, n - 1)), sc, unit, name))
        self._build_profiles()
        # SN base names: association SN fixed at 0xFA00, the rest in 0x100 steps.
        bn = 0x1000
        for o in self._objs:
            if o.class_id == 12:
                o.base_name = 0xFA00
            else:
                o.base_name = bn
                bn += 0x100
        self.objects = [(o.class_id, o.version, o.obis, self.access(o, True)) for o in self._objs]

    def _build_profiles(self):
        clock_col = (8, CLOCK, 2, 0)
        cols = [(3, ob(c[0]), 2, 0) for c in _BLOCK_COLS]
        fns = [c[5] for c in _BLOCK_COLS]
        tags = [c[1] for c in _BLOCK_COLS]
        dev = self.deviation
        t0, per = self.start_epoch, self.period_s
        if self.sort_not_first:
            columns = [cols[0], clock_col] + cols[1:]
            sort_col = 1
        else:
            columns = [clock_col] + cols
            sort_col = 0

        def block_cell(i, c, _sc=sort_col):
            if c == _sc:
                return (_OCT, dt_bytes(t0 + i * per, dev))
            k = c - 1 if c > _sc else c
            return (tags[k], fns[k](i))

        self._add(ProfileObject(BLOCK_LOAD, columns, self.rows, per, block_cell, sort_col,
                                lambda i: t0 + i * per, "block load"))
        days = max(1, self.rows * per // 86400)

        def daily_cell(i, c):
            if c == 0:
                return (_OCT, dt_bytes(t0 + i * 86400, dev))
            k = i * 86400 // per
            return (_U32, self.energy_import(k) if c == 1 else self.energy_export(k))

        self._add(ProfileObject(DAILY_LOAD, [clock_col, (3, ob("1.0.1.8.0.255"), 2, 0),
                                             (3, ob("1.0.2.8.0.255"), 2, 0)],
                                days, 86400, daily_cell, 0, lambda i: t0 + i * 86400, "daily load"))
        nb = self._billing_rows

        def bill_time(i):
            y, m = 2025, 1 + i
            y += (m - 1) // 12
            m = (m - 1) % 12 + 1
            return A.to_epoch(y, m, 1, 0, 0, 0)

        def bill_cell(i, c):
            if c == 0:
                return (_OCT, dt_bytes(bill_time(i), dev))
            if c == 1:
                return (_U32, 100000 + 30000 * i)
            if c == 2:
                return (_U32, 500 + 20 * i)
            if c == 3:
                return (_U32, 4000 + 37 * i)
            return (_OCT, dt_bytes(bill_time(i) + 86400 * 3 + 3600 * (i % 24), dev))

        self._add(ProfileObject(BILLING, [(3, ob("0.0.0.1.2.255"), 2, 0), (3, ob("1.0.1.8.0.255"), 2, 0),
                                          (3, ob("1.0.2.8.0.255"), 2, 0), (4, ob("1.0.1.6.0.255"), 2, 0),
                                          (4, ob("1.0.1.6.0.255"), 5, 0)],
                                nb, 0, bill_cell, 0, bill_time, "billing"))
        self._add(DataObject(ob("0.0.0.1.2.255"), (_OCT, dt_bytes(bill_time(nb - 1), dev)), "billing date"))
        # Event logs 0.0.99.98.k.255 (IS 15959 categories: voltage, current, power, transaction, other,
        # non-rollover, control): row i of log k carries the i-th code of category k, cycling through the
        # category's codes (is15959_events); the event code object 0.0.96.11.k.255 holds the code of the
        # log's latest row. Snapshot columns: current L1 and voltage L1.
        ev_snap = [(3, ob("1.0.31.7.0.255"), 2, 0), (3, ob("1.0.32.7.0.255"), 2, 0)]
        for k in range(7):
            codes = is15959_codes_of(k)
            n_ev = self._event_rows + k
            code_obis = ob("0.0.96.11.%d.255" % k)
            latest = codes[max(n_ev - 1, 0) % len(codes)]
            self._add(DataObject(code_obis, (_U16, latest), "event code %d" % k))

            def ev_time(i, _k=k):
                return t0 + 3600 * (7 * i + _k + 1)

            def ev_cell(i, c, _k=k, _et=ev_time, _codes=codes):
                if c == 0:
                    return (_OCT, dt_bytes(_et(i), dev))
                if c == 1:
                    return (_U16, _codes[i % len(_codes)])
                if c == 2:
                    return (_I32, 100 + 10 * i + _k)
                return (_U16, 22000 + 13 * i + _k)

            self._add(ProfileObject(ob("0.0.99.98.%d.255" % k), [clock_col, (1, code_obis, 2, 0)] + ev_snap,
                                    n_ev, 0, ev_cell, 0, ev_time, "events %d" % k))
        # One-row profiles: instantaneous, name plate, scaler profiles.
        inst_cols = [clock_col] + [(3, ob(r[0]), 2, 0) for r in _INSTANT_REGS] + [
            (3, ob("1.0.1.8.0.255"), 2, 0), (3, ob("1.0.2.8.0.255"), 2, 0)]
        self._add(ProfileObject(INSTANT, inst_cols, 1, 0, lambda i, c, _cols=inst_cols: self._live(_cols[c]),
                                None, None, "instantaneous"))
        np_cols = [(1, ob(o), 2, 0) for o, _n in _NAME_PLATE]
        self._add(ProfileObject(NAME_PLATE, np_cols, 1, 0, lambda i, c, _cols=np_cols: self._live(_cols[c]),
                                None, None, "name plate"))
        # Scaler profiles 1.0.94.91.e.255: 3 instantaneous, 4 block load, 5 daily load, 6 billing,
        # 7 events (the event logs' snapshot columns; the event code has no scaler).
        for e, src in ((3, inst_cols[1:]), (4, cols), (5, [(3, ob("1.0.1.8.0.255"), 2, 0),
                                                          (3, ob("1.0.2.8.0.255"), 2, 0)]),
                       (6, [(3, ob("1.0.1.8.0.255"), 2, 0), (3, ob("1.0.2.8.0.255"), 2, 0)]),
                       (7, ev_snap)):
            scols = [(c[0], c[1], 3, 0) for c in src]
            self._add(ProfileObject(ob("1.0.94.91.%d.255" % e), scols, 1, 0,
                                    lambda i, c, _cols=scols: self._live(_cols[c]), None, None,
                                    "scaler profile %d" % e))

    # ------------------------------------------------------------------ values
    def energy_import(self, n):
        """Cumulative import energy (Wh) after ``n`` block-load rows."""
        # sum over i < n of 100 + (7 i mod 400): closed form over full cycles of 400
        full, rest = divmod(n, 400)
        cyc = sum(100 + (7 * i) % 400 for i in range(400))
        return 1000000 + full * cyc + sum(100 + (7 * i) % 400 for i in range(rest))

    def energy_export(self, n):
        full, rest = divmod(n, 20)
        return 5000 + full * sum((3 * i) % 20 for i in range(20)) + sum((3 * i) % 20 for i in range(rest))

    def _live(self, col):
        cls, obis6, attr, _idx = col
        o = self._by_key.get((cls, obis6))
        if o is None:
            return (T.NULL, None)
        v = self.get_attr(o, attr)
        return v if isinstance(v, tuple) else (T.NULL, None)

    def find(self, class_id, obis6):
        """The object (class, obis) or None."""
        return self._by_key.get((class_id, bytes(obis6)))

    def find_obis(self, obis6):
        for o in self._objs:
            if o.obis == bytes(obis6) and o.class_id != 12:
                return o
        return None

    def all_objects(self, sn=False):
        """Objects visible in the LN object list (``sn``: in the SN object list)."""
        return [o for o in self._objs if (o.class_id != 12 if not sn else o.class_id != 15)]

    def by_base_name(self, name):
        """``(object, kind, n)`` for an SN address: kind 'attr' or 'method', or None."""
        for o in self._objs:
            if o.class_id == 15 or o.base_name is None:
                continue
            d = name - o.base_name
            if 0 <= d < 0x100 and d % 8 == 0:
                first_m = SN_METHOD_OFFSET.get(o.class_id)
                if first_m is not None and d >= first_m:
                    return o, "method", (d - first_m) // 8 + 1
                return o, "attr", d // 8 + 1
        return None

    def access(self, o, privileged):
        """Access rights: ([(attr, mode)], [(method, mode)]) for the object list."""
        am = []
        for a in o.attrs:
            mode = 1
            if a in o.writable and privileged:
                mode = 3
            if o.class_id in (12, 15) and a == 7:
                mode = 0
            am.append((a, mode))
        mm = []
        for m in o.methods:
            ok = privileged or o.class_id in (12, 15)
            mm.append((m, 1 if ok else 0))
        return am, mm

    def clock_bytes(self):
        return dt_bytes(self.clock_epoch, self.deviation)

    def get_attr(self, o, attr):
        """(tag, value) of a plain attribute, or an int DAR (4 object-undefined...).

        Profile buffers (7/2) and association attributes are produced by the server."""
        if attr == 1:
            return (_OCT, o.obis)
        if attr not in o.attrs:
            return 4
        c = o.class_id
        if c == 1:
            return o.value
        if c in (3, 4, 5):
            if c == 5:
                if attr in (2, 3):
                    return (o.tag, o.value if attr == 2 else o.value - 120)
                if attr == 4:
                    return scaler_unit(o.scaler, o.unit)
                if attr == 5:
                    return (T.UNSIGNED, 0)
                if attr in (6, 7):
                    return (_OCT, o.capture_time)
                if attr == 8:
                    return (_U32, 900)
                return (_U16, 1)
            if attr == 2:
                return (o.tag, o.value)
            if attr == 3:
                return scaler_unit(o.scaler, o.unit)
            if attr == 4:
                return (T.UNSIGNED, 0)
            return (_OCT, o.capture_time)
        if c == 8:
            return {2: (_OCT, self.clock_bytes()), 3: (_I16, self.time_zone),
                    4: (T.UNSIGNED, self.clock_status),
                    5: (_OCT, b"\xff\xff\x03\xff\xff\x02\x00\x00\x00\x80\x00\x00"),
                    6: (_OCT, b"\xff\xff\x0a\xff\xff\x03\x00\x00\x00\x80\x00\x00"),
                    7: (T.INTEGER, 0), 8: (T.BOOLEAN, False), 9: (T.ENUM, 1)}[attr]
        if c == 7:
            if attr == 3:
                return (T.ARRAY, [capture_def(*col) for col in o.columns])
            if attr == 4:
                return (_U32, o.period_s)
            if attr == 5:
                return (T.ENUM, 1)
            if attr == 6:
                if o.sort_col is None:
                    return capture_def(0, b"\x00" * 6, 0, 0)
                return capture_def(*o.columns[o.sort_col])
            if attr in (7, 8):
                return (_U32, o.rows)
        return 4

    # ------------------------------------------------------------------ expectations
    def expected_register(self, obis):
        """``(value, scaler, unit_code)`` of register ``obis`` (6 bytes or text)."""
        if isinstance(obis, str):
            obis = ob(obis)
        for cls in (3, 4, 5):
            o = self.find(cls, obis)
            if o is not None:
                return o.value, o.scaler, o.unit
        raise KeyError(obis_text(obis))

    def profile(self, obis):
        if isinstance(obis, str):
            obis = ob(obis)
        o = self.find(7, obis)
        if o is None:
            raise KeyError(obis_text(obis))
        return o

    def expected_rows(self, obis, from_idx=0, to_idx=None, columns=None):
        """Rows ``from_idx <= i < to_idx`` (0-based, Python slice rules) of profile ``obis`` as
        the client should deliver them: tuples of decoded A-XDR values (the clock column as its
        12 raw octet-string bytes, rebuilt when the buffer was sent compressed). ``columns``:
        0-based column indices to keep (None = all)."""
        p = self.profile(obis)
        if to_idx is None or to_idx > p.rows:
            to_idx = p.rows
        cols = range(len(p.columns)) if columns is None else columns
        return [tuple(plain(p.cell(i, c)) for c in cols) for i in range(max(0, from_idx), to_idx)]

    def row_time(self, obis, i):
        """Local epoch of row ``i`` of profile ``obis`` (None for profiles without a clock)."""
        p = self.profile(obis)
        return None if p.time_of is None else p.time_of(i)

    def rows_in_range(self, obis, from_local_epoch, to_local_epoch):
        """``(from_idx, to_idx)`` (slice) of the rows stamped within [from, to] (local time)."""
        p = self.profile(obis)
        lo, hi = None, None
        for i in range(p.rows):
            t = p.time_of(i)
            if from_local_epoch <= t <= to_local_epoch:
                if lo is None:
                    lo = i
                hi = i + 1
        if lo is None:
            return 0, 0
        return lo, hi


# SN: offset of method 1 from the base name, per class (Blue Book "SN method offsets").
SN_METHOD_OFFSET = {8: 0x60, 12: 0x20, 7: 0x58, 3: 0x28, 4: 0x38, 5: 0x48}
