"""The on-device store: record codec, sessions, torn tails, acks and reclaim.

Runs on the unix port against a real VfsLfs2 mounted on a RAM block device, and on
CPython against a host directory and against littlefs-python's LittleFS.
"""

import os
import sys

import portable
from optoread.errors import StoreError
from optoread.store import decode as sd
from optoread.store import records as sr
from optoread.store import store as st
from optoread.store import writer as sw

PORTABLE = True

IS_MP = portable.IS_MICROPYTHON


def small_heap():
    """True on a board: a heap of a few hundred KB (the unix port runs the tests in 16 MB)."""
    import gc

    return IS_MP and gc.mem_free() + gc.mem_alloc() < (1 << 20)


# ---------------------------------------------------------------- test file systems


class RamBdev:
    """RAM block device for VfsLfs2 (extended interface). ``log`` records every write when set."""

    def __init__(self, block_size=4096, blocks=64, data=None):
        self.bs = block_size
        self.n = blocks
        if data is None:
            # LittleFS erases a block before it programs it, so a zeroed buffer formats as well;
            # b"\xff" * n would need a second buffer as large, beyond a board's heap.
            n = block_size * blocks
            data = _board_disk(n) if small_heap() else bytearray(b"\xff" * n)
        self.data = data
        self.log = None
        self.writes = 0

    def readblocks(self, n, buf, off=0):
        a = n * self.bs + off
        buf[:] = self.data[a:a + len(buf)]

    def writeblocks(self, n, buf, off=None):
        a = n * self.bs + (off or 0)
        self.writes += 1
        if self.log is not None:
            self.log.append((a, bytes(buf)))
        self.data[a:a + len(buf)] = buf

    def ioctl(self, op, arg):
        if op == 4:
            return self.n
        if op == 5:
            return self.bs
        if op == 6:  # erase: real NOR flash reads 0xFF afterwards; a cut point too
            a = arg * self.bs
            self.writes += 1
            if self.log is not None:
                self.log.append((a, b"\xff" * self.bs))
            self.data[a:a + self.bs] = b"\xff" * self.bs
            return 0
        return 0


_mounts = [0]

# A board's RAM disk: one buffer taken by setup_module while the heap is still whole, and lent
# to each RamBdev in turn (after a dozen tests no 64 KB hole is left on the Pico's ~240 KB heap).
BOARD_DISK_BYTES = 16 * 4096
_disk = [None]


def setup_module():
    if small_heap():
        _disk[0] = bytearray(BOARD_DISK_BYTES)


def teardown_module():
    _disk[0] = None


def _board_disk(n):
    """The first ``n`` bytes of the board's RAM disk, zeroed (a fresh buffer when this module's
    setup_module did not run, as when another test file imports it)."""
    buf = _disk[0]
    if buf is None or n > len(buf):
        return bytearray(n)
    mv = memoryview(buf)[:n]
    zero = bytes(256)
    for a in range(0, n, 256):
        mv[a:a + 256] = zero
    return mv


def _rmtree(path):
    try:
        names = os.listdir(path)
    except OSError:
        return
    for name in names:
        p = path + "/" + name
        if os.stat(p)[0] & 0x4000:
            _rmtree(p)
        else:
            os.remove(p)
    os.rmdir(path)


class Env:
    """A fresh file system for one test: kind "vfs" (unix port), "flash" (a board: a folder on
    its own flash file system, whose heap holds no 256 KB RAM disk), "dir" or "lfspy" (CPython)."""

    def __init__(self, kind=None, blocks=64, block_size=4096, data=None):
        self.kind = kind or kinds()[0]
        self.blocks = blocks
        self.block_size = block_size
        if self.kind == "flash":
            _mounts[0] += 1
            self.top = "store-test%d" % _mounts[0]  # relative: under / on a board
            _rmtree(self.top)
            os.mkdir(self.top)
            self.fs = st.OsFs()
            self.root = self.top + "/store"
        elif self.kind == "vfs":
            import vfs

            self.bdev = RamBdev(block_size, blocks, data)
            if data is None:
                vfs.VfsLfs2.mkfs(self.bdev)
            _mounts[0] += 1
            self.point = "/ramstore%d" % _mounts[0]
            vfs.mount(vfs.VfsLfs2(self.bdev), self.point)
            self.fs = st.OsFs()
            self.root = self.point + "/store"
        elif self.kind == "dir":
            import tempfile

            self.tmp = tempfile.mkdtemp(prefix="optoread-store-")
            self.fs = st.OsFs()
            self.root = self.tmp + "/store"
        else:
            from littlefs import LittleFS, UserContext
            from optoread_tools.flashdump import LittleFsAdapter

            self.buf = data if data is not None else bytearray(b"\xff" * (block_size * blocks))
            self.lfs = LittleFS(context=UserContext(buffer=self.buf), block_size=block_size,
                                block_count=blocks, mount=False)
            if data is None:
                self.lfs.format()
            self.lfs.mount()
            self.fs = LittleFsAdapter(self.lfs, block_size)
            self.root = "/store"

    def store(self, **kw):
        return st.Store(self.fs, self.root, **kw)

    def remount(self):
        """Simulate a reboot: unmount and mount the same medium again."""
        if self.kind == "vfs":
            import vfs

            vfs.umount(self.point)
            vfs.mount(vfs.VfsLfs2(self.bdev), self.point)
        elif self.kind == "lfspy":
            from littlefs import LittleFS, UserContext
            from optoread_tools.flashdump import LittleFsAdapter

            self.lfs.unmount()
            self.lfs = LittleFS(context=UserContext(buffer=self.buf), block_size=self.block_size,
                                block_count=self.blocks, mount=False)  # True would format on failure
            self.lfs.mount()
            self.fs = LittleFsAdapter(self.lfs, self.block_size)

    def path(self, seq):
        return "%s/%08d.ses" % (self.root, seq)

    def read_file(self, path):
        with self.fs.open(path, "rb") as f:
            return f.read()

    def write_file(self, path, data):
        with self.fs.open(path, "wb") as f:
            f.write(data)

    def close(self):
        if self.kind == "vfs":
            import vfs

            vfs.umount(self.point)
        elif self.kind == "flash":
            _rmtree(self.top)
        elif self.kind == "dir":
            import shutil

            shutil.rmtree(self.tmp, ignore_errors=True)


def kinds():
    """The file systems every behavioural test runs on here."""
    if IS_MP:
        return ("flash",) if small_heap() else ("vfs",)
    try:
        import littlefs  # noqa: F401

        return ("dir", "lfspy")
    except ImportError:
        return ("dir",)


def each_env(fn, **kw):
    for kind in kinds():
        env = Env(kind, **kw)
        try:
            fn(env)
        finally:
            env.close()


def collect(store, seq):
    out = []
    store.read(seq, lambda kind, data: out.append((kind, data)))
    return out


# A session with every kind of record: returned as what read() must give back.
T0 = 1700000000


def write_sample(store, meter="MTR-1", rows=300, outcome="complete", ncols=1, seed=1):
    w = store.begin(meter, "plan-A", T0, T0 - 7)
    exp = [("head", (meter, "plan-A", T0, T0 - 7))]
    vals = [("1.0.1.8.0.255", 12345678, -1, 30), ("0.0.96.1.0.255", "SN\u00e9 42", None, None),
            ("1.0.32.7.0.255", 230.5, 0, "V"), ("0.0.42.0.0.255", b"\x00\xff", None, None),
            ("1.0.2.8.0.255", None, 3, 30), ("1.0.1.8.1.255", -(2 ** 63), 0, 30)]
    for v in vals:
        w.value(*v)
        exp.append(("value", v))
    w.event(T0 - 3600, 7, "power down")
    exp.append(("event", (T0 - 3600, 7, "power down")))
    w.event(None, 8, None)
    exp.append(("event", (None, 8, None)))
    cols = tuple(("1.0.%d.29.0.255" % (i + 1), -2, 30) for i in range(ncols))
    w.profile_begin("1.0.99.1.0.255", cols, 900, T0 - rows * 900)
    exp.append(("profile", ("1.0.99.1.0.255", 900, T0 - rows * 900, cols)))
    x = seed
    acc = [1000 * (i + 1) for i in range(ncols)]
    clock = T0 - rows * 900
    for i in range(rows):
        x = (x * 1103515245 + 12345) & 0x7FFFFFFF
        for c in range(ncols):
            acc[c] += (x >> (c + 3)) % 400
        row_clock = clock
        if i == rows // 2:
            clock += 3600  # a gap: explicit timestamp
            row_clock = clock
        vals_row = list(acc)
        if i == 7:
            vals_row[0] = None  # null column
        # a null clock is implied from the capture period (not at the gap, where it is needed)
        given = None if i % 3 == 1 and i != rows // 2 else row_clock
        w.row(given, vals_row)
        exp.append(("row", (row_clock, tuple(vals_row))))
        clock += 900
    w.profile_begin("1.0.99.2.0.255", ["1.0.1.8.0.255"], 0, None)
    exp.append(("profile", ("1.0.99.2.0.255", 0, None, (("1.0.1.8.0.255", None, None),))))
    for i, t in enumerate((T0 - 86400 * 2, T0 - 86400 - 5, T0)):
        w.row(t, [100000 + i * 9000])
        exp.append(("row", (t, (100000 + i * 9000,))))
    nrec = len(exp) - rows - 3  # rows travel in blocks: compare the commit separately
    if outcome == "complete":
        s = w.commit()
        exp.append(("commit", ("complete", None, s.records - 1, s.rows)))
    else:
        s = w.abort(outcome)
        exp.append(("commit", ("incomplete", outcome, s.records - 1, s.rows)))
    assert s.records - 1 >= nrec
    return s, exp


# ---------------------------------------------------------------- codec


def test_varint_zigzag_roundtrip():
    buf = bytearray(16)
    for v in (0, 1, -1, 63, -64, 64, 127, 128, 300, -300, 2 ** 31, -(2 ** 31), 2 ** 63 - 1, -(2 ** 63),
              2 ** 64 - 1):
        z = sr.zigzag(v)
        assert z >= 0
        end = sr.put_uvarint(buf, 0, len(buf), z)
        got, off = sd.get_uvarint(buf, 0, end)
        assert off == end and sd.unzigzag(got) == v
    assert sr.put_uvarint(buf, 0, 16, 0) == 1
    assert sr.put_uvarint(buf, 0, 16, 16383) == 2
    portable.raises(StoreError, sr.put_uvarint, buf, 0, 16, 1 << 80)
    portable.raises(StoreError, sr.put_uvarint, buf, 0, 1, 300)
    portable.raises(StoreError, sd.get_uvarint, b"\x80\x80", 0, 2)
    portable.raises(StoreError, sd.get_uvarint, b"\x80" * 11 + b"\x01", 0, 12)


def test_items_roundtrip():
    buf = bytearray(200)
    items = (None, 0, -5, 2 ** 64 - 1, "", "kWh \u00b0C", b"", b"\x00\x7e", 1.5, -0.25)
    off = 0
    for v in items:
        off = sr.put_item(buf, off, len(buf), v)
    got = sd.get_items(buf, 0, off, len(items))
    assert tuple(got) == items
    assert sd.get_items(buf, 0, 1, 1) == [None]
    portable.raises(StoreError, sd.get_items, buf, 0, off, len(items) - 1)  # bytes left over
    portable.raises(StoreError, sd.get_items, buf, 0, off - 1, len(items))  # truncated float
    portable.raises(StoreError, sd.get_item, b"\x09", 0, 1)  # unknown tag
    portable.raises(StoreError, sd.get_item, b"\x02\x05ab", 0, 4)  # string longer than record
    portable.raises(StoreError, sd.get_item, b"\x02\x02\xff\xfe", 0, 4)  # bad UTF-8
    portable.raises(StoreError, sr.put_item, buf, 0, len(buf), [1])  # unsupported type
    portable.raises(StoreError, sr.put_item, buf, 0, 3, "long text")


def test_float_items_keep_inf_and_nan():
    # The rp2 build's struct turns a float64 nan into inf when unpacking: the store's own decoder
    # must not (the bytes are written here, so this holds whatever the host's float is).
    inf = float("inf")
    for wire, check in (("04 000000000000f87f", lambda v: v != v), ("04 010000000000f0ff", lambda v: v != v),
                        ("04 000000000000f07f", lambda v: v == inf),
                        ("04 000000000000f0ff", lambda v: v == -inf),
                        ("04 0000000000000c40", lambda v: v == 3.5)):
        v, off = sd.get_item(bytes.fromhex(wire.replace(" ", "")), 0, 9)
        assert off == 9 and isinstance(v, float) and check(v), (wire, v)
    buf = bytearray(20)
    n = sr.put_item(buf, 0, 20, inf - inf)
    v = sd.get_item(buf, 0, n)[0]
    assert v != v


def test_record_roundtrip_and_every_corruption():
    buf = bytearray(64)
    end = sr.encode_record(buf, 0, sr.T_VALUE, 9, ("1.8.0", 5, -1, 30))
    rec = bytes(buf[:end])
    rtype, flags, seq, pay, nxt = sd.check_record(rec, 0, len(rec))
    assert (rtype, flags, seq, nxt) == (sr.T_VALUE, 0, 9, len(rec))
    assert sd.decode_payload(rtype, rec, pay, nxt - 4) == ("value", ("1.8.0", 5, -1, 30))
    # Every truncation and every single-bit flip is detected.
    for n in range(len(rec)):
        portable.raises(StoreError, sd.check_record, rec[:n], 0, n)
    for i in range(len(rec)):
        for bit in (0, 3, 7):
            bad = bytearray(rec)
            bad[i] ^= 1 << bit
            portable.raises(StoreError, sd.check_record, bad, 0, len(bad))
    big = bytearray(rec)
    big[8:10] = b"\xff\xff"
    e = portable.raises(StoreError, sd.parse_header, big, 0, len(big))
    assert e.field == "length"
    portable.raises(StoreError, sr.encode_record, bytearray(2000), 0, sr.T_VALUE, 1, ("x" * 1100, 0, 0, 0))


def test_row_codec_sizes_and_roundtrip():
    enc = sw.RowEncoder()
    enc.reset(1, 900, T0)
    for i in range(50):
        enc.add(T0 + i * 900, [10 ** 6 + i * 50])
    # implied clock (1 byte) + delta 50 -> zigzag 100 + 1 (1 byte); the first delta is large
    assert enc.off <= 50 * 2 + 3
    dec = sd.RowDecoder()
    dec.reset(1, 900, T0)
    out = []
    pay = bytearray(4) + enc.buf[:enc.off]
    n = sr.put_uvarint(pay, 0, 4, enc.rows)
    pay = pay[:n] + enc.buf[:enc.off]
    assert dec.block(pay, 0, len(pay), lambda c, v: out.append((c, v))) == 50
    assert out[0] == (T0, (10 ** 6,)) and out[-1] == (T0 + 49 * 900, (10 ** 6 + 49 * 50,))
    portable.raises(StoreError, dec.block, pay, 0, len(pay) - 1)
    portable.raises(StoreError, dec.block, b"\x7f\x00", 0, 2)  # count larger than the block
    portable.raises(StoreError, enc.add, T0, [1, 2])  # wrong column count
    portable.raises(StoreError, enc.add, T0, ["1"])


# ---------------------------------------------------------------- sessions


def test_session_roundtrip_and_remount():
    def run(env):
        s = env.store()
        rep = s.mount()
        assert (rep.sessions, rep.torn, rep.trimmed_bytes) == (0, 0, 0)
        rows = 200 if small_heap() else 1000  # two copies of its records fit a board's heap
        s1, exp1 = write_sample(s, rows=rows)
        s2, exp2 = write_sample(s, meter="MTR-2", rows=50, ncols=8, outcome="no answer from meter")
        assert collect(s, s1.seq) == exp1
        assert collect(s, s2.seq) == exp2
        env.remount()
        s = env.store()
        rep = s.mount()
        assert (rep.sessions, rep.torn, rep.trimmed_bytes) == (2, 0, 0)
        assert collect(s, 1) == exp1 and collect(s, 2) == exp2
        a, b = list(s.sessions())
        assert (a.seq, a.meter, a.complete, a.error, a.rows, a.values, a.events) == \
            (1, "MTR-1", True, None, rows + 3, 6, 2)
        assert (b.seq, b.complete, b.error) == (2, False, "no answer from meter")
        assert a.size == len(env.read_file(env.path(1)))
        # ~2 bytes per row for the 1-column profile, plus the values.
        assert a.size < (rows + 3) * 3 + 600
        raw = []
        s.read_raw(1, lambda mv: raw.append(bytes(mv)))
        assert b"".join(raw) == env.read_file(env.path(1))
    each_env(run)


def test_queries_ack_and_reclaim():
    def run(env):
        s = env.store(reserve=0)
        s.mount()
        for i in range(5):
            w = s.begin("M%d" % (i % 2), "p", T0 + i * 100)
            w.value("1.8.0", i, 0, 30)
            w.commit()
        assert [x.seq for x in s.sessions(meter="M0")] == [1, 3, 5]
        assert [x.seq for x in s.sessions(since=T0 + 100, until=T0 + 300)] == [2, 3, 4]
        assert s.ack(3) == 3
        assert [x.seq for x in s.sessions(downloaded=False)] == [4, 5]
        assert s.ack(99) == 5 and s.ack(2) == 5  # clamped; never goes back
        env.remount()
        s = env.store(reserve=0)
        s.mount()
        assert s.acked == 5 and [x.downloaded for x in s.sessions()] == [True] * 5
        sp = s.space()
        assert sp["reclaimable"] == sp["stored"] and sp["unacked"] == 0 and sp["sessions"] == 5
        w = s.begin("M9", "p", T0)
        w.commit()
        assert s.reclaim(None) == 5
        assert [x.seq for x in s.sessions()] == [6]
        env.remount()
        s = env.store(reserve=0)
        s.mount()
        assert [x.seq for x in s.sessions()] == [6]
        assert s.begin("M9", "p", T0).commit().seq == 7  # sequence numbers never go back
        portable.raises(StoreError, s.session, 3)
        portable.raises(StoreError, s.ack, -1)
    each_env(run)


def _fields(x):
    return (x.seq, x.meter, x.plan, x.device_time, x.meter_time, x.complete, x.sealed, x.error,
            x.values, x.events, x.profiles, x.rows, x.records, x.size, x.downloaded)


def test_index_summaries_match_what_was_committed():
    """The index keeps each session as a fixed entry plus a table of distinct values: the
    summaries made from it equal the writer's, before and after a remount, whatever the types."""
    def run(env):
        s = env.store(reserve=0)
        s.mount()
        committed = []
        odd = [(T0, T0 - 5), (None, None), (T0 + 0.5, "2025-11-01"), (-(1 << 40), 1 << 40), (0, -1)]
        for i, (dt, mt) in enumerate(odd):
            w = s.begin("M%d" % (i % 2) if i != 3 else None, "plan%d" % (i % 2), dt, mt)
            w.value("1.8.0", i, 0, 30)
            committed.append(w.commit() if i % 2 == 0 else w.abort("failed %d" % i))
        want = [_fields(c) for c in committed]
        assert [_fields(x) for x in s.sessions()] == want
        assert _fields(s.session(3)) == want[2] and s.count() == 5
        env.remount()
        s = env.store(reserve=0)
        s.mount()
        assert [_fields(x) for x in s.sessions()] == want
        assert isinstance(s.session(3).device_time, float) and s.session(3).meter_time == "2025-11-01"
        # reclaiming forgets the values only the deleted sessions used (errors are often unique)
        s.ack(2)
        assert s.reclaim(None) == 2
        assert [_fields(x) for x in s.sessions()] == want[2:]
        assert "failed 1" not in s._table and "failed 3" in s._table
    each_env(run)


def test_index_ram_per_session_on_micropython():
    """Hundreds of stored sessions must leave the heap to the reading: the index costs tens of
    bytes a session (a summary object was ~400 on the 64-bit unix port)."""
    if not IS_MP:
        portable.skip("heap figures: MicroPython only")
    import gc

    n = 60 if small_heap() else 120  # a board: the index arrays grow by copying, beside the RAM disk

    def run(env):
        s = env.store(reserve=0)
        s.mount()
        for i in range(n):
            w = s.begin("MTR-%d" % (i % 10), "is15959", T0 + i * 86400, T0 + i * 86400 - 7)
            w.value("1.8.0", i, 0, 30)
            if i % 5 == 0:
                w.abort("no answer from the meter (attempt %d)" % i)
            else:
                w.commit()
        env.remount()
        s = None
        gc.collect()
        before = gc.mem_alloc()
        s = env.store(reserve=0)
        s.mount()
        gc.collect()
        per = (gc.mem_alloc() - before - 2048) // n  # less the store's own object and buffer
        assert s.count() == n and per < 100, per
    each_env(run)


def test_store_full_reclaims_only_acknowledged():
    def run(env):
        s = env.store(reserve=24 * 1024)
        s.mount()
        done = []
        e = None
        for i in range(200):
            try:
                w = s.begin("M", "p", T0 + i)
            except StoreError as x:
                e = x
                break
            w.profile_begin("1.0.99.1.0.255", ["a", "b", "c", "d"], 900, T0)
            for r in range(1500):
                w.row(None, [r * 7, r * 300, r % 5, r * r])
            done.append(w.commit().seq)
        assert e is not None and "store full: download first" in str(e)
        assert [x.seq for x in s.sessions()] == done  # nothing unacknowledged was deleted
        s.ack(done[1])
        w = s.begin("M", "p", T0)  # reclaims session 1 (and 2 if needed), oldest first
        w.commit()
        left = [x.seq for x in s.sessions()]
        assert left[0] in (2, 3) and done[-1] in left
    # 32 blocks of 4 KiB: fills in a few sessions (a board: 16 blocks of RAM, not its flash)
    for kind in kinds():
        if kind == "dir":  # a host directory never fills up
            continue
        env = Env("vfs", blocks=16) if kind == "flash" else Env(kind, blocks=32)
        try:
            run(env)
        finally:
            env.close()


def test_writer_misuse_raises_store_error():
    def run(env):
        s = env.store(reserve=0)
        s.mount()
        w = s.begin("M", "p", T0)
        portable.raises(StoreError, s.begin, "M", "p", T0)  # one writer at a time
        portable.raises(StoreError, w.row, T0, [1])  # row outside a profile
        portable.raises(StoreError, w.profile_begin, "x", [("a", 0)])
        portable.raises(StoreError, w.profile_begin, "x", ["c"] * 33)
        w.profile_begin("x", ["a", "b"], 900, T0)
        # The writer stages records in the store's one record buffer: reading back, acking or
        # remounting meanwhile is refused rather than clobbering it.
        portable.raises(StoreError, s.read, 1, lambda k, d: None)
        portable.raises(StoreError, s.read_raw, 1, lambda mv: None)
        portable.raises(StoreError, s.ack, 1)
        portable.raises(StoreError, s.mount)
        portable.raises(StoreError, w.row, T0, [1])
        portable.raises(StoreError, w.row, T0, [1, "2"])
        portable.raises(StoreError, w.row, "noon", [1, 2])
        portable.raises(StoreError, w.value, "x", "v" * 2000)
        portable.raises(StoreError, w.commit, "maybe")
        w.row(T0, [1, 2])
        s1 = w.commit()
        assert s1.complete and s1.rows == 1
        portable.raises(StoreError, w.commit)
        portable.raises(StoreError, w.value, "x", 1)
        assert collect(s, 1)[-1] == ("commit", ("complete", None, 3, 1))  # head, profile, rows
        portable.raises(StoreError, st.Store(env.fs, env.root).begin, "M", "p", T0)  # not mounted
    each_env(run)


def _expect_prefix(got, exp):
    """``got`` (an interrupted session read back) = a prefix of ``exp`` + the synthetic commit."""
    assert got[-1][0] == "commit" and got[-1][1][0] == "incomplete"
    body = got[:-1]
    assert body == exp[:len(body)], (body[-3:], exp[len(body) - 3:len(body)])
    return len(body)


def test_torn_tail_is_trimmed_at_every_cut():
    """Cut a committed session's file at byte offsets: never complete, always a clean prefix."""
    def run(env):
        s = env.store(reserve=0)
        s.mount()
        s1, exp = write_sample(s, rows=120, ncols=2)
        whole = env.read_file(env.path(1))
        head_len = sr.HEADER_SIZE + sd.parse_header(whole, 0, len(whole))[3] + sr.CRC_SIZE
        step = 1 if env.kind == "dir" else 7
        cuts = list(range(0, len(whole), step)) + [len(whole) - 1, len(whole)]
        for cut in cuts:
            env.write_file(env.path(1), whole[:cut])
            s = env.store(reserve=0)
            rep = s.mount()
            if cut == len(whole):
                assert rep.torn == 0 and collect(s, 1) == exp
                continue
            if cut < head_len:  # the HEAD record is incomplete: the file is removed
                assert rep.sessions == 0 and rep.torn == 1 and rep.removed == 1
                continue
            assert rep.torn == 1 and rep.sessions == 1
            x = s.session(1)
            assert not x.complete and x.error == sr.INTERRUPTED
            n = _expect_prefix(collect(s, 1), exp)
            assert 0 <= rep.trimmed_bytes < sr.HEADER_SIZE + sr.MAX_PAYLOAD + sr.CRC_SIZE
            # sealed: a second mount finds nothing to repair and the same records
            s = env.store(reserve=0)
            rep2 = s.mount()
            assert rep2.torn == 0 and rep2.trimmed_bytes == 0
            assert _expect_prefix(collect(s, 1), exp) == n
    each_env(run)


def test_interrupted_writer_and_garbage():
    def run(env):
        s = env.store(reserve=0)
        s.mount()
        w = s.begin("M", "p", T0)
        w.value("1.8.0", 1, 0, 30)
        w._sync()
        w.discard()  # as if the reset came here: no COMMIT
        env.remount()
        s = env.store(reserve=0)
        rep = s.mount()
        assert rep.torn == 1 and rep.trimmed_bytes == 0
        got = collect(s, 1)
        assert got[1] == ("value", ("1.8.0", 1, 0, 30))
        assert got[-1] == ("commit", ("incomplete", sr.INTERRUPTED, 2, 0))  # a real, sealed COMMIT now
        # garbage appended after a COMMIT is counted and ignored (committed bytes are never rewritten)
        s.begin("M", "p", T0).commit()
        data = env.read_file(env.path(2))
        env.write_file(env.path(2), data + b"\xa7\x01garbage")
        env.write_file(env.root + "/00000009.tmp", b"half")
        env.write_file(env.root + "/notes.txt", b"x")
        s = env.store(reserve=0)
        rep = s.mount()
        assert rep.trimmed_bytes == 9 and rep.removed == 1 and s.session(2).complete
        # a session file whose records belong to another sequence number is not data
        env.write_file(env.path(3), data)
        s = env.store(reserve=0)
        rep = s.mount()
        assert rep.torn == 1 and rep.removed == 1 and [x.seq for x in s.sessions()] == [1, 2]
        # a torn acks file keeps the last whole ack
        s.ack(1)
        s.ack(2)
        acks = env.read_file(env.root + "/acks")
        env.write_file(env.root + "/acks", acks[:-3])
        s = env.store(reserve=0)
        s.mount()
        assert s.acked == 1
    each_env(run)


def test_read_only_mount_changes_nothing():
    def run(env):
        s = env.store(reserve=0)
        s.mount()
        _, exp = write_sample(s, rows=40)
        whole = env.read_file(env.path(1))
        env.write_file(env.path(1), whole[:-30])
        s = env.store()
        rep = s.mount(repair=False)
        assert rep.torn == 1
        assert not s.session(1).sealed
        _expect_prefix(collect(s, 1), exp)
        assert env.read_file(env.path(1)) == whole[:-30]
        # an absent store reads as empty and is not created
        rep = st.Store(env.fs, env.root + "x").mount(repair=False)
        assert rep.sessions == 0
    each_env(run)


def test_flash_dump_decoder():
    if IS_MP:
        portable.skip("littlefs-python is CPython-only")
    try:
        import littlefs  # noqa: F401
    except ImportError:
        portable.skip("littlefs-python is not installed")
    import io
    import json
    import tempfile

    from optoread_tools import flashdump

    env = Env("lfspy", blocks=64)
    s = env.store(reserve=0)
    s.mount()
    write_sample(s, rows=20)
    write_sample(s, meter="M-2", rows=10, outcome="timeout")
    s.ack(1)
    w = s.begin("M-3", "p", T0)
    w.value("1.8.0", 5, 0, 30)
    w._sync()  # left open: the dump shows it as interrupted, not complete
    env.lfs.unmount()
    with tempfile.NamedTemporaryFile(suffix=".bin", delete=False) as f:
        f.write(bytes(env.buf))
        path = f.name
    try:
        sessions = flashdump.decode_flash(path, block_size=4096)
        assert [(d["seq"], d["meter"], d["complete"], d["downloaded"]) for d in sessions] == \
            [(1, "MTR-1", True, True), (2, "M-2", False, False), (3, "M-3", False, False)]
        assert sessions[2]["error"] == sr.INTERRUPTED
        assert len(sessions[0]["profiles_list"][0]["rows"]) == 20
        out = io.StringIO()
        assert flashdump.run(path, 4096, as_json=True, out=out) == 0
        assert json.loads(out.getvalue())[1]["error"] == "timeout"
        out = io.StringIO()
        flashdump.run(path, 4096, out=out)
        assert "INCOMPLETE" in out.getvalue() and "session 1" in out.getvalue()
        with open(path, "wb") as f:
            f.write(b"\x00" * 8192)
        assert flashdump.run(path, 4096, out=io.StringIO()) == 1
    finally:
        os.remove(path)


def test_mounted_on_the_unix_port_through_os():
    """On the unix port the store works through ``os`` on a VfsLfs2 mounted in the VFS."""
    if not IS_MP:
        portable.skip("unix port only")
    env = Env("vfs", blocks=16 if small_heap() else 64)
    try:
        s = env.store()
        s.mount()
        s.begin("M", "p", T0).commit()
        assert "00000001.ses" in os.listdir(env.root) and s.free_space() > 0
        assert sys.implementation.name == "micropython"
    finally:
        env.close()
