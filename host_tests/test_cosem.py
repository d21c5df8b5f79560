"""COSEM object model (optoread.cosem) against a small fake session answering from canned values."""

import gc

from optoread.dlms.axdr import decode as axdr
from optoread.dlms.axdr import encode as axdr_encode
from optoread.dlms.axdr import types as axdr_types
from optoread.dlms.cosem import association as cosem_association
from optoread.dlms.cosem import base as cosem
from optoread.dlms.cosem import profile as cosem_profile
from optoread.dlms.cosem import register as cosem_register
from optoread.dlms.xdlms import apdu as xdlms
from optoread.errors import DataAccessError, OptoreadError
from portable import IS_MICROPYTHON, raises

PORTABLE = True

CLOCK = b"\x00\x00\x01\x00\x00\xff"
BLOCK_LOAD = b"\x01\x00\x63\x01\x00\xff"  # 1.0.99.1.0.255
SCALER_PROFILE = b"\x01\x00\x5e\x5b\x04\xff"  # 1.0.94.91.4.255
V_L1 = b"\x01\x00\x20\x1b\x00\xff"  # 1.0.32.27.0.255 block voltage
I_L1 = b"\x01\x00\x1f\x1b\x00\xff"
KWH = b"\x01\x00\x01\x1d\x00\xff"  # 1.0.1.29.0.255 block energy
ENERGY = b"\x01\x00\x01\x08\x00\xff"  # 1.0.1.8.0.255


def _drop(x):
    pass


def denied():
    return DataAccessError("get: read-write-denied (3)", result=3)


class FakeSession:
    """Answers get/get_many from ``attrs`` {(class, obis6, attr): value or exception instance};
    ``buffers`` {(class, obis6, attr): fn(selector, params) -> iterator of rows} stream lazily."""

    def __init__(self, attrs=None, buffers=None):
        self.attrs = attrs or {}
        self.buffers = buffers or {}
        self.calls = []
        self.sets = []
        self.actions = []

    def _value(self, key):
        if key not in self.attrs:
            return DataAccessError("object undefined", result=4)
        return self.attrs[key]

    def get(self, class_id, obis, attr, selector=0, params=None, sink=None):
        key = (class_id, bytes(obis), attr)
        self.calls.append(("get", key, selector, params))
        if key in self.buffers:
            rows = self.buffers[key](selector, params)
        else:
            rows = self._value(key)
            if isinstance(rows, Exception):
                raise rows
            if sink is None:
                return rows
        if sink is None:
            return list(rows)
        n = 0
        for r in rows:
            sink(r)
            n += 1
        return n

    def get_many(self, items):
        self.calls.append(("get_many", list(items)))
        return [self._value((c, bytes(o), a)) for c, o, a in items]

    def set(self, class_id, obis, attr, tag, value):
        key = (class_id, bytes(obis), attr)
        self.sets.append((key, tag, value))
        v = self.attrs.get(("set",) + key)
        if isinstance(v, Exception):
            raise v

    def action(self, class_id, obis, method, tag=None, value=None):
        self.actions.append((class_id, bytes(obis), method, tag, value))


def dt(y, mo, d, h, mi, s=0, dev=-60, status=0):
    return axdr.DateTime(y, mo, d, h, mi, s, 0, dev, status, axdr.weekday(y, mo, d))


# ---------------------------------------------------------------- values, registers


def test_obis6_forms():
    assert cosem.obis6("1.0.1.8.0.255") == ENERGY
    assert cosem.obis6("1-0:1.8.0") == ENERGY
    assert cosem.obis6(bytearray(ENERGY)) == ENERGY
    assert cosem.obis6((1, 0, 1, 8, 0, 255)) == ENERGY
    raises(OptoreadError, cosem.obis6, b"\x01\x02")
    raises(OptoreadError, cosem.obis6, 5)


def test_value_negative_and_positive_scalers():
    v = cosem.Value(2307, -1, 35)
    assert v.unit == "V" and v.text == "230.7" and abs(v.scaled - 230.7) < 1e-9
    v = cosem.Value(-5, -2, 33)
    assert v.text == "-0.05" and v.unit == "A" and abs(v.scaled + 0.05) < 1e-12
    v = cosem.Value(12, 3, 30)
    assert v.scaled == 12000 and isinstance(v.scaled, int) and v.text == "12000" and v.unit == "Wh"
    v = cosem.Value(7, 0, 255)
    assert v.scaled == 7 and v.text == "7" and v.unit == "count"
    assert cosem.Value("ABC").text == "ABC" and cosem.Value(b"\x01\xab").text == "01 AB"
    assert cosem.Value(2307, -1, 35) == cosem.Value(2307, -1, 35)
    assert cosem.Value(2307, -1, 35) != cosem.Value(2307, -2, 35)


def test_read_register_reads_scaler_once():
    s = FakeSession({(3, ENERGY, 2): 123456, (3, ENERGY, 3): (-2, 30)})
    cache = {}
    v = cosem_register.read_register(s, "1.0.1.8.0.255", cache=cache)
    assert v.raw == 123456 and v.scaler == -2 and v.unit == "Wh" and v.text == "1234.56"
    assert s.calls[-1][0] == "get_many" and cache[ENERGY] == (-2, 30)
    n = len(s.calls)
    v = cosem_register.read_register(s, ENERGY, cache=cache)
    assert v.text == "1234.56"
    assert len(s.calls) == n + 1 and s.calls[-1] == ("get", (3, ENERGY, 2), 0, None)


def test_read_extended_and_demand_register():
    t = dt(2026, 3, 1, 12, 15)
    s = FakeSession({
        (4, ENERGY, 2): 55, (4, ENERGY, 3): (1, 30), (4, ENERGY, 4): 0, (4, ENERGY, 5): t.to_bytes(),
        (5, ENERGY, 2): 999, (5, ENERGY, 3): 888, (5, ENERGY, 4): (-3, 27), (5, ENERGY, 5): 8,
        (5, ENERGY, 6): t,
    })
    v = cosem_register.read_register(s, ENERGY, cosem.CLASS_EXTENDED_REGISTER)
    assert v.scaled == 550 and v.status == 0 and v.capture_time == t
    v = cosem_register.read_register(s, ENERGY, cosem.CLASS_DEMAND_REGISTER)
    assert v.text == "0.999" and v.unit == "W" and v.status == 8 and v.capture_time == t
    v = cosem_register.read_register(s, ENERGY, cosem.CLASS_DEMAND_REGISTER, value_attr=3)
    assert v.text == "0.888"
    raises(OptoreadError, cosem_register.read_register, s, ENERGY, 1)


def test_read_register_errors():
    s = FakeSession({(3, ENERGY, 2): 1, (3, ENERGY, 3): denied()})
    e = raises(DataAccessError, cosem_register.read_register, s, ENERGY)
    assert e.result == 3
    for bad in ((1,), (1, 2, 3), (200, 30), (1, -1), (True, 30), None, "x"):
        s = FakeSession({(3, ENERGY, 2): 1, (3, ENERGY, 3): bad})
        raises(cosem.CosemError, cosem_register.read_register, s, ENERGY)


def test_read_registers_one_round_trip():
    s = FakeSession({
        (3, ENERGY, 2): 10, (3, ENERGY, 3): (0, 30),
        (3, V_L1, 2): 2301, (3, V_L1, 3): (-1, 35),
        (3, I_L1, 2): 5, (3, I_L1, 3): denied(),
        (4, KWH, 2): 7, (4, KWH, 3): (3, 30), (4, KWH, 4): 1, (4, KWH, 5): None,
    })
    cache = {V_L1: (-1, 35)}
    out = cosem_register.read_registers(s, [ENERGY, "1.0.32.27.0.255", I_L1, (4, KWH), ENERGY, I_L1], cache)
    assert len(s.calls) == 1 and s.calls[0][0] == "get_many"
    # scaler_unit of ENERGY and I_L1 asked once although both appear twice; V_L1 was cached
    asked = [it for it in s.calls[0][1] if it[2] == 3 and it[0] == 3]
    assert sorted(it[1] for it in asked) == sorted([ENERGY, I_L1])
    assert out[0].scaled == 10 and out[1].text == "230.1" and out[3].scaled == 7000
    assert isinstance(out[2], DataAccessError) and out[2].result == 3
    assert out[3].status == 1 and out[3].capture_time is None
    assert out[4].scaled == 10
    assert isinstance(out[5], OptoreadError)
    assert cosem_register.read_registers(s, []) == []


def test_data_and_generic_access():
    s = FakeSession({(1, b"\x00\x00\x60\x01\x00\xff", 2): "SER123"})
    assert cosem_register.read_data(s, "0.0.96.1.0.255") == "SER123"
    assert cosem.get_attribute(s, 1, "0.0.96.1.0.255", 2) == "SER123"
    cosem.set_attribute(s, 1, "0.0.96.1.0.255", 2, axdr_encode.VISIBLE_STRING, "X")
    assert s.sets[-1] == ((1, b"\x00\x00\x60\x01\x00\xff", 2), axdr_encode.VISIBLE_STRING, "X")
    cosem.invoke(s, 9, "0.0.10.0.0.255", 1, axdr_encode.LONG_UNSIGNED, 3)
    assert s.actions[-1] == (9, b"\x00\x00\x0a\x00\x00\xff", 1, axdr_encode.LONG_UNSIGNED, 3)


# ---------------------------------------------------------------- profile generic

# Block-load-like profile: the clock is the SECOND column (sort column not first).
COLS = (
    (3, V_L1, 2, 0),
    (8, CLOCK, 2, 0),
    (3, I_L1, 2, 0),
    (3, KWH, 2, 0),
)


def row_values(i):
    return (2300 + i % 7, 100 + i, -(i % 5))


def row_time(i, start=None):
    base = (start or dt(2026, 1, 1, 0, 0)).local_epoch()
    t = axdr.DateTime.from_epoch(base + 900 * i, axdr.DEVIATION_UNSPECIFIED, 0, 0)
    t.deviation = -60
    return t


class Profile:
    """A fake buffer of ``n`` rows (clock column 1), generated lazily; optional compressed
    clock (None for every row but each ``explicit_every``-th) and a deviation check."""

    def __init__(self, n, explicit_every=1, reject_deviation=False):
        self.n = n
        self.explicit_every = explicit_every
        self.reject_deviation = reject_deviation
        self.produced = 0
        self.delivered = 0
        self.params = []

    def row(self, i):
        t = row_time(i)
        cell = t.to_bytes() if i % self.explicit_every == 0 else None
        v = row_values(i)
        return (v[0], cell, v[1], v[2])

    def __call__(self, selector, params):
        self.params.append((selector, params))
        lo, hi, cols = 1, self.n, None
        if selector == 1:
            p = axdr.decode(params)[0]
            restricting, f, t, cols = p
            assert restricting == COLS[1]  # the clock, although not first
            if self.reject_deviation and (f[9:11] != b"\x80\x00" or t[9:11] != b"\x80\x00"):
                raise DataAccessError("get: other-reason (250)", result=250)
            f = axdr.DateTime.from_bytes(f).local_epoch()
            t = axdr.DateTime.from_bytes(t).local_epoch()
            base = row_time(0).local_epoch()
            lo = max(1, (f - base + 899) // 900 + 1)
            hi = min(self.n, (t - base) // 900 + 1)
            cols = [COLS.index(c) for c in cols] or None
        elif selector == 2:
            p = axdr.decode(params)[0]
            lo, hi = p[0], p[1] or self.n
            last = p[3] or len(COLS)
            cols = list(range(p[2] - 1, last))
        for i in range(lo - 1, hi):
            r = self.row(i)
            self.produced += 1
            # streaming: the previous row must have reached the sink before this one is made
            assert self.delivered == self.produced - 1
            yield tuple(r[c] for c in cols) if cols else r


def profile_session(prof, period=900):
    attrs = {
        (7, BLOCK_LOAD, 3): [c for c in COLS], (7, BLOCK_LOAD, 4): period,
        (7, BLOCK_LOAD, 7): prof.n, (7, BLOCK_LOAD, 8): 2880, (7, BLOCK_LOAD, 5): 1,
        (7, BLOCK_LOAD, 6): COLS[1],
    }
    return FakeSession(attrs, {(7, BLOCK_LOAD, 2): prof})


def collector(prof=None):
    rows = []

    def sink(r):
        rows.append(r)
        if prof is not None:
            prof.delivered += 1

    return rows, sink


def test_profile_attributes():
    s = profile_session(Profile(10))
    pg = cosem_profile.ProfileGeneric("1.0.99.1.0.255")
    assert pg.capture_objects(s) == list(COLS)
    assert pg.capture_period(s) == 900 and pg.entries_in_use(s) == 10 and pg.profile_entries(s) == 2880
    assert pg.sort_object(s) == COLS[1] and pg.sort_method(s) == 1 and pg.clock_column(s) == 1
    n = len(s.calls)
    pg.capture_objects(s)
    pg.capture_period(s)
    assert len(s.calls) == n  # cached
    s.attrs[(7, BLOCK_LOAD, 6)] = (0, b"\x00" * 6, 0, 0)
    assert pg.sort_object(s) is None
    s.attrs[(7, BLOCK_LOAD, 3)] = [(3, V_L1, 2)]
    raises(cosem.CosemError, pg.capture_objects, s, True)
    s.attrs[(7, BLOCK_LOAD, 3)] = 5
    raises(cosem.CosemError, pg.capture_objects, s, True)
    s.attrs[(7, BLOCK_LOAD, 4)] = -1
    raises(cosem.CosemError, pg.capture_period, s, True)


def test_range_params_with_and_without_deviation():
    prof = Profile(96)
    s = profile_session(prof)
    pg = cosem_profile.ProfileGeneric(BLOCK_LOAD)
    rows, sink = collector(prof)
    f = dt(2026, 1, 1, 1, 0)
    t = dt(2026, 1, 1, 2, 0)
    n = pg.read_range(s, f, t, sink)
    assert n == 5 and len(rows) == 5
    expect = (bytes([0x02, 0x04, 0x02, 0x04, 0x12, 0x00, 0x08, 0x09, 0x06]) + CLOCK
              + bytes([0x0F, 0x02, 0x12, 0x00, 0x00, 0x09, 0x0C]) + f.to_bytes()
              + bytes([0x09, 0x0C]) + t.to_bytes() + bytes([0x01, 0x00]))
    assert prof.params[-1] == (1, expect)
    assert f.to_bytes()[9:11] == b"\xff\xc4"  # -60
    for k in range(5):
        r = rows[k]
        assert r[1] == row_time(4 + k) and isinstance(r[1], axdr.DateTime)
        assert (r[0], r[2], r[3]) == row_values(4 + k)
    # no_deviation: 0x8000 in both bounds, the rest unchanged
    rows2, sink2 = collector(prof)
    prof.delivered = prof.produced = 0
    # bounds as a tuple (y, m, d, h, mi, s, hundredths, deviation, status, weekday) and raw octets
    pg.read_range(s, (2026, 1, 1, 1, 0, 0, 0, -60, 0, 4), t.to_bytes(), sink2, no_deviation=True)
    p = prof.params[-1][1]
    assert p[31:33] == b"\x80\x00" and p[45:47] == b"\x80\x00"
    assert p[:31] == expect[:31] and p[33:45] == expect[33:45]
    assert len(rows2) == 5


def test_range_auto_retries_without_deviation():
    prof = Profile(20, reject_deviation=True)
    s = profile_session(prof)
    pg = cosem_profile.ProfileGeneric(BLOCK_LOAD)
    rows, sink = collector(prof)
    f, t = dt(2026, 1, 1, 0, 0), dt(2026, 1, 1, 0, 30)
    e = raises(DataAccessError, pg.read_range, s, f, t, sink)
    assert e.result == 250
    assert pg.read_range(s, f, t, sink, no_deviation="auto") == 3
    assert [p[1][31:33] for p in prof.params[-2:]] == [b"\xff\xc4", b"\x80\x00"]


def test_profile_read_once_drops_its_capture_objects_before_the_rows():
    # keep=False (the reader): the rows stream with no capture objects on the heap; the
    # auto-deviation retry still works from the parameters encoded up front.
    prof = Profile(20, reject_deviation=True)
    s = profile_session(prof)
    pg = cosem_profile.ProfileGeneric(BLOCK_LOAD, keep=False)
    seen = []
    rows, sink = collector(prof)

    def watching(row):
        seen.append(pg._cos)
        sink(row)

    assert pg.read_range(s, dt(2026, 1, 1, 0, 0), dt(2026, 1, 1, 0, 30), watching, no_deviation="auto") == 3
    assert seen == [None, None, None] and len(rows) == 3
    assert [p[1][31:33] for p in prof.params[-2:]] == [b"\xff\xc4", b"\x80\x00"]
    kept = cosem_profile.ProfileGeneric(BLOCK_LOAD)
    prof4 = Profile(4)
    kept.read_all(profile_session(prof4), collector(prof4)[1])
    assert kept._cos is not None  # the default keeps them for the next read


def test_range_with_selected_columns_and_explicit_sort_column():
    prof = Profile(10)
    s = profile_session(prof)
    pg = cosem_profile.ProfileGeneric(BLOCK_LOAD)
    rows, sink = collector(prof)
    n = pg.read_range(s, dt(2026, 1, 1, 0, 0), dt(2026, 1, 1, 0, 45), sink, sort_column=COLS[1],
                      columns=[3, COLS[1]])
    assert n == 4
    params = prof.params[-1][1]
    sel = axdr.decode(params)[0][3]
    assert sel == [COLS[3], COLS[1]]
    assert rows[2] == (row_values(2)[2], row_time(2))
    raises(cosem.CosemError, pg.read_range, s, dt(2026, 1, 1, 0, 0), dt(2026, 1, 1, 1, 0), sink, columns=[9])
    raises(cosem.CosemError, pg.read_range, s, dt(2026, 1, 1, 0, 0), dt(2026, 1, 1, 1, 0), sink,
           columns=[(3, ENERGY, 2, 0)])
    raises(cosem.CosemError, pg.read_range, s, b"\x00" * 5, dt(2026, 1, 1, 1, 0), sink)


def test_range_needs_a_clock_column():
    s = FakeSession({(7, BLOCK_LOAD, 3): [COLS[0], COLS[2]]})
    pg = cosem_profile.ProfileGeneric(BLOCK_LOAD)
    raises(cosem.CosemError, pg.read_range, s, dt(2026, 1, 1, 0, 0), dt(2026, 1, 1, 1, 0), _drop)


def test_entry_reads():
    prof = Profile(50)
    s = profile_session(prof)
    pg = cosem_profile.ProfileGeneric(BLOCK_LOAD)
    rows, sink = collector(prof)
    assert pg.read_entries(s, 3, 5, sink) == 3
    buf = bytearray(20)
    k = xdlms.encode_entry_descriptor(buf, 0, 3, 5, 1, 0)
    assert prof.params[-1] == (2, bytes(buf[:k]))
    assert prof.params[-1][1] == bytes([2, 4, 6, 0, 0, 0, 3, 6, 0, 0, 0, 5, 0x12, 0, 1, 0x12, 0, 0])
    assert rows[0][1] == row_time(2) and rows[2][3] == row_values(4)[2]
    # columns 2..3: the clock is now the first delivered column
    del rows[:]
    assert pg.read_entries(s, 48, 0, sink, from_col=2, to_col=3) == 3
    assert rows[0] == (row_time(47), row_values(47)[1])
    for bad in ((0, 5, 1, 0), (5, 3, 1, 0), (1, 2, 0, 0), (1, 2, 3, 9), (1, 2, 3, 2)):
        raises(cosem.CosemError, pg.read_entries, s, bad[0], bad[1], sink, bad[2], bad[3])


def test_read_all_and_row_shape_errors():
    prof = Profile(7)
    s = profile_session(prof)
    pg = cosem_profile.ProfileGeneric(BLOCK_LOAD)
    rows, sink = collector(prof)
    assert pg.read_all(s, sink) == 7 and prof.params[-1] == (0, None)
    assert rows[6][1] == row_time(6)
    s.buffers[(7, BLOCK_LOAD, 2)] = lambda sel, p: iter([(1, None, 2)])
    raises(cosem.CosemError, pg.read_all, s, sink)
    s.buffers[(7, BLOCK_LOAD, 2)] = lambda sel, p: iter([5])
    raises(cosem.CosemError, pg.read_all, s, sink)


def test_compressed_clock_rebuilt_from_capture_period():
    prof = Profile(30, explicit_every=10)
    s = profile_session(prof)
    pg = cosem_profile.ProfileGeneric(BLOCK_LOAD)
    rows, sink = collector(prof)
    assert pg.read_all(s, sink) == 30
    for i in range(30):
        assert rows[i][1] == row_time(i), (i, rows[i][1])
    # an entry read starting inside a compressed run: the first clock is unknown, then explicit
    del rows[:]
    pg.read_entries(s, 6, 12, sink)
    assert rows[0][1] is None and rows[4][1] is None
    assert rows[5][1] == row_time(10) and rows[6][1] == row_time(11)


def test_compressed_clock_across_dst_change():
    # Explicit CET cells, then an explicit CEST cell (deviation -120, DST status bit) after the
    # spring change; null cells take the deviation/status of the last explicit cell.
    cet = axdr.DateTime(2026, 3, 29, 1, 30, 0, 0, -60, 0, 7)
    cest = axdr.DateTime(2026, 3, 29, 3, 15, 0, 0, -120, 0x80, 7)
    buf = [(1, cet.to_bytes(), 0, 0), (2, None, 0, 0), (3, None, 0, 0), (4, cest.to_bytes(), 0, 0),
           (5, None, 0, 0), (6, None, 0, 0)]
    s = FakeSession({(7, BLOCK_LOAD, 3): [COLS[0], COLS[1], COLS[2], COLS[3]], (7, BLOCK_LOAD, 4): 900},
                    {(7, BLOCK_LOAD, 2): lambda sel, p: iter(buf)})
    rows, sink = collector()
    cosem_profile.ProfileGeneric(BLOCK_LOAD).read_all(s, sink)
    clocks = [r[1] for r in rows]
    assert clocks[1] == axdr.DateTime(2026, 3, 29, 1, 45, 0, 0, -60, 0, 7)
    assert clocks[2] == axdr.DateTime(2026, 3, 29, 2, 0, 0, 0, -60, 0, 7)  # 01:00 UTC
    assert clocks[4] == axdr.DateTime(2026, 3, 29, 3, 30, 0, 0, -120, 0x80, 7)
    assert clocks[5].iso() == "2026-03-29T03:45:00.00+02:00" and clocks[5].status == 0x80
    utc = [c.epoch() for c in clocks]
    assert [utc[i + 1] - utc[i] for i in range(5)] == [900] * 5
    # across midnight and month end with unspecified weekday/deviation kept unspecified
    last = axdr.DateTime(2026, 1, 31, 23, 45, 0, 0xFF, axdr.DEVIATION_UNSPECIFIED, 0, 0xFF)
    n = cosem_profile.add_seconds(last, 900)
    assert n == axdr.DateTime(2026, 2, 1, 0, 0, 0, 0xFF, axdr.DEVIATION_UNSPECIFIED, 0, 0xFF)
    assert cosem_profile.add_seconds(axdr.DateTime(0xFFFF, 1, 1, 0, 0, 0), 900) is None


def test_null_clock_kept_when_period_zero_or_wildcard():
    wild = axdr.DateTime(0xFFFF, 0xFF, 0xFF, 0, 0, 0)
    buf = [(1, wild.to_bytes(), 0, 0), (2, None, 0, 0)]
    s = FakeSession({(7, BLOCK_LOAD, 3): list(COLS), (7, BLOCK_LOAD, 4): 900},
                    {(7, BLOCK_LOAD, 2): lambda sel, p: iter(buf)})
    rows, sink = collector()
    cosem_profile.ProfileGeneric(BLOCK_LOAD).read_all(s, sink)
    assert rows[0][1] == wild and rows[1][1] is None
    buf[0] = (1, dt(2026, 1, 1, 0, 0).to_bytes(), 0, 0)
    rows, sink = collector()
    cosem_profile.ProfileGeneric(BLOCK_LOAD, capture_period=0).read_all(s, sink)
    assert rows[1][1] is None


def test_scalers_from_registers():
    prof = Profile(3)
    s = profile_session(prof)
    s.attrs.update({(3, V_L1, 3): (-1, 35), (3, I_L1, 3): (-3, 33), (3, KWH, 3): denied()})
    pg = cosem_profile.ProfileGeneric(BLOCK_LOAD)
    cache = {}
    sc = pg.column_scalers(s, cache=cache)
    assert sc == [(-1, 35), None, (-3, 33), None]
    assert s.calls[-1][0] == "get_many" and len(s.calls[-1][1]) == 3
    n = len(s.calls)
    assert pg.column_scalers(s, cache=cache) == sc[:3] + [None]
    assert s.calls[-1] == ("get_many", [(3, KWH, 3)]) and len(s.calls) == n + 1
    rows, sink = collector(prof)
    pg.read_all(s, sink, scalers=sc)
    r = rows[2]
    assert r[0].text == "230.2" and r[0].unit == "V" and r[2].text == "0.102" and r[2].unit == "A"
    assert r[3] == -2 and r[1] == row_time(2)
    rows, sink = collector()
    prof.produced = prof.delivered = 0
    pg.read_entries(s, 1, 1, sink, from_col=3, to_col=3, scalers=sc)
    assert rows[0][0].text == "0.100"


def test_scalers_from_is15959_scaler_profile():
    prof = Profile(2)
    s = profile_session(prof)
    # scaler profile: columns name the registers' scaler_unit (attr 3); one row of structures.
    s.attrs[(7, SCALER_PROFILE, 3)] = [(3, V_L1, 3, 0), (3, I_L1, 3, 0), (3, KWH, 3, 0)]
    s.attrs[(7, SCALER_PROFILE, 2)] = [((-1, 35), (-2, 33), (1, 30))]
    pg = cosem_profile.ProfileGeneric(BLOCK_LOAD)
    sc = pg.column_scalers(s, SCALER_PROFILE)
    assert sc == [(-1, 35), None, (-2, 33), (1, 30)]
    rows, sink = collector(prof)
    pg.read_all(s, sink, scalers=sc)
    assert rows[1][0].text == "230.1" and rows[1][2].text == "1.01" and rows[1][3].scaled == -10
    assert rows[1][3].unit == "Wh"


def test_profile_methods():
    s = FakeSession()
    pg = cosem_profile.ProfileGeneric(BLOCK_LOAD)
    pg.reset(s)
    pg.capture(s)
    assert [a[2] for a in s.actions] == [1, 2]


def _heap():
    gc.collect()
    if IS_MICROPYTHON:
        return gc.mem_alloc()  # pyright: ignore[reportAttributeAccessIssue]
    import tracemalloc

    return tracemalloc.get_traced_memory()[0]


def _peak_growth(n):
    prof = Profile(n, explicit_every=4)
    s = profile_session(prof)
    pg = cosem_profile.ProfileGeneric(BLOCK_LOAD)
    pg.capture_objects(s)
    pg.capture_period(s)
    marks = []

    def sink(r):
        prof.delivered += 1
        if prof.delivered in (20, n):
            marks.append(_heap())

    pg.read_all(s, sink)
    return marks[1] - marks[0]


def test_streaming_memory_does_not_grow_with_rows():
    if not IS_MICROPYTHON:
        import tracemalloc

        tracemalloc.start()
    try:
        small = _peak_growth(100)
        large = _peak_growth(2000)
    finally:
        if not IS_MICROPYTHON:
            tracemalloc.stop()
    # Nothing is kept per row: the heap at row n equals the heap at row 20 within noise.
    assert small < 1024 and large < 1024, (small, large)


# ---------------------------------------------------------------- clock


def test_clock_read_set_shift():
    now = dt(2026, 5, 4, 10, 20, 30, -120, 0x80)
    s = FakeSession({(8, CLOCK, 2): now.to_bytes(), (8, CLOCK, 3): -60, (8, CLOCK, 4): 0x80})
    c = cosem.Clock()
    assert c.read(s) == now and c.time_zone(s) == -60 and c.status(s) == 0x80
    s.attrs[(8, CLOCK, 2)] = now  # a date-time (tag 25) answer is accepted too
    assert c.read(s) == now
    s.attrs[(8, CLOCK, 2)] = b"\x00" * 5
    raises(cosem.CosemError, c.read, s)
    c.set(s, now)
    assert s.sets[-1] == ((8, CLOCK, 2), axdr_encode.OCTET_STRING, now.to_bytes())
    c.set(s, now.to_bytes())
    assert s.sets[-1][2] == now.to_bytes()
    c.shift_time(s, -30)
    assert s.actions[-1] == (8, CLOCK, 6, axdr_encode.LONG, -30)
    for bad in (901, -901, 1.5, True):
        raises(cosem.CosemError, c.shift_time, s, bad)
    s.attrs[("set", 8, CLOCK, 2)] = denied()
    e = raises(DataAccessError, c.set, s, now)
    assert e.result == 3 and "privileged association" in str(e)
    s.attrs[("set", 8, CLOCK, 2)] = DataAccessError("set: type-unmatched (12)", result=12)
    e = raises(DataAccessError, c.set, s, now)
    assert e.result == 12


# ---------------------------------------------------------------- object list


def test_browse_ln_streams_and_normalises_access_rights():
    elems = [
        (8, 0, CLOCK, (((1, 1, None), (2, 3, None), (3, 1, None)), ((1, False), (6, True)))),
        (7, 1, BLOCK_LOAD, (((1, 1, None), (2, 1, [1, 2])), ((1, 1),))),
        (3, 0, ENERGY, (((2, 1, None),), ())),
    ]
    produced = [0]
    seen = []

    def gen(sel, p):
        for e in elems:
            produced[0] += 1
            assert len(seen) == produced[0] - 1  # one element at a time
            yield e

    s = FakeSession(buffers={(15, b"\x00\x00\x28\x00\x00\xff", 2): gen})
    assert cosem_association.browse(s, seen.append) == 3
    assert seen[0] == (8, 0, CLOCK, (((1, 1, None), (2, 3, None), (3, 1, None)), ((1, 0), (6, 1))))
    assert seen[1][3] == (((1, 1, None), (2, 1, (1, 2))), ((1, 1),))
    assert seen[2][:3] == (3, 0, ENERGY)


def test_browse_sn():
    elems = [(-1536, 15, 0, b"\x00\x00\x28\x00\x00\xff"), (0x2000, 3, 0, ENERGY)]
    s = FakeSession({(12, b"\x00\x00\x28\x00\x00\xff", 2): elems})
    seen = []
    assert cosem_association.browse(s, seen.append, ln=False) == 2
    assert seen == [(15, 0, b"\x00\x00\x28\x00\x00\xff", 0xFA00), (3, 0, ENERGY, 0x2000)]


def test_browse_rejects_malformed_elements():
    bad = (
        5, (8, 0, CLOCK), (8, 0, b"\x00", ((), ())), ("x", 0, CLOCK, ((), ())), (8, 0, CLOCK, 5),
        (8, 0, CLOCK, ((), 3)), (8, 0, CLOCK, (((1,),), ())), (8, 0, CLOCK, (((1, 1, 5),), ())),
        (8, 0, CLOCK, (((1, 1, ["a"]),), ())), (8, 0, CLOCK, ((), ((1, "x"),))),
        (8, 0, CLOCK, ((), (5,))),
    )
    for e in bad:
        s = FakeSession({(15, b"\x00\x00\x28\x00\x00\xff", 2): [e]})
        err = raises(OptoreadError, cosem_association.browse, s, _drop)
        assert isinstance(err, cosem.CosemError) and err.offset == 0, e
    s = FakeSession({(12, b"\x00\x00\x28\x00\x00\xff", 2): [("x", 1, 0, CLOCK)]})
    raises(cosem.CosemError, cosem_association.browse, s, _drop, False)


# ---------------------------------------------------------------- hostile values

def _garbage(seed):
    # Deterministic odd values of the shapes a decoder can produce.
    pool = (None, True, 0, -1, 70000, 1.5, "x", b"", b"\x00" * 6, b"\x00" * 12, bytearray(12), (), [],
            (1,), (1, 2), (1, 2, 3), (1, 2, 3, 4), [(1, 2)], ((1, 1, None),),
            axdr_types.BitString(b"\x80", 1),
            (8, CLOCK, 2, 0), (3, b"\x00", 2, 0), ((), ()), (((1, 1, 7),), ()), axdr.DONT_CARE_VALUE)
    x = seed * 2654435761 & 0xFFFFFFFF
    out = []
    for _ in range(4):
        out.append(pool[x % len(pool)])
        x = (x * 1103515245 + 12345) & 0xFFFFFFFF
    return out


def _hostile_calls(s, g):
    period = g[2] if isinstance(g[2], int) else 900
    return (
        lambda: cosem_register.read_register(s, ENERGY).text,
        lambda: cosem_register.read_register(s, ENERGY, 4),
        lambda: cosem_register.read_registers(s, [ENERGY, (4, ENERGY)]),
        lambda: cosem.Clock().read(s),
        lambda: cosem_association.browse(s, _drop),
        lambda: cosem_association.browse(s, _drop, False),
        lambda: cosem_profile.ProfileGeneric(BLOCK_LOAD).sort_object(s),
        lambda: cosem_profile.ProfileGeneric(BLOCK_LOAD).read_all(s, lambda r: None),
        lambda: cosem_profile.ProfileGeneric(BLOCK_LOAD, list(COLS), period).read_all(s, lambda r: None),
        lambda: cosem_profile.ProfileGeneric(BLOCK_LOAD).column_scalers(s),
    )


def test_hostile_values_raise_only_optoread_errors():
    assoc = b"\x00\x00\x28\x00\x00\xff"
    for seed in range(300):
        g = _garbage(seed)
        v = g[0]
        s = FakeSession({
            (3, ENERGY, 2): v, (3, ENERGY, 3): g[1], (4, ENERGY, 2): v, (4, ENERGY, 3): g[1],
            (4, ENERGY, 4): g[2], (4, ENERGY, 5): g[3], (8, CLOCK, 2): v,
            (7, BLOCK_LOAD, 3): g[1], (7, BLOCK_LOAD, 4): g[2], (7, BLOCK_LOAD, 6): v,
            (15, assoc, 2): [tuple(g)], (12, assoc, 2): [tuple(g)],
        }, {(7, BLOCK_LOAD, 2): lambda sel, p, g=g: iter(g)})
        for fn in _hostile_calls(s, g):
            try:
                fn()
            except OptoreadError:
                pass
