"""Power-cut matrix for the store: cut after every block write of a multi-session scenario.

The scenario runs once on a LittleFS whose block device logs every write (prog and
erase). Since writes after a cut are lost, the flash after a cut at write k is the
start image plus the first k logged writes, whatever the code did afterwards. For
each k that image is mounted again and checked: every session whose commit()
returned before the cut is intact, nothing incomplete is reported complete, no
unacknowledged session is gone and the acknowledgement level never goes back. A
"torn" variant applies only the first half of write k.

Unix port: VfsLfs2 on a RAM block device. CPython: littlefs-python. The portable
test samples the cut points; ``micropython host_tests/test_store_powercut.py full``
runs every one (the CPython test below launches it).
"""

import sys

if __name__ == "__main__":  # run as a script on the unix port: micropython host_tests/test_store_powercut.py
    _here = __file__.rsplit("/", 1)[0] if "/" in __file__ else "."
    sys.path.insert(0, _here + "/../firmware")
    sys.path.insert(0, _here)

import portable  # noqa: E402
from optoread.crc import crc32  # noqa: E402
from optoread.store import records as sr  # noqa: E402
from optoread.store import store as st  # noqa: E402

PORTABLE = True

IS_MP = portable.IS_MICROPYTHON
BS = 4096
BLOCKS = 32
ROUNDS = 6
T0 = 1700000000


class _Medium:
    """A LittleFS image plus a way to mount it as the store's file system."""

    def __init__(self, data, log=None):
        self.data = data
        self.log = log
        self.point = None
        if IS_MP:
            from test_store import RamBdev

            self.bdev = RamBdev(BS, BLOCKS, data)
            self.bdev.log = log
        else:
            from littlefs import UserContext

            medium = self

            class Ctx(UserContext):
                def prog(self, cfg, block, off, d):
                    if medium.log is not None:
                        medium.log.append((block * BS + off, bytes(d)))
                    return UserContext.prog(self, cfg, block, off, d)

                def erase(self, cfg, block):
                    if medium.log is not None:
                        medium.log.append((block * BS, b"\xff" * BS))
                    return UserContext.erase(self, cfg, block)

            self.ctx = Ctx(buffer=data)

    def format(self):
        if IS_MP:
            import vfs

            vfs.VfsLfs2.mkfs(self.bdev)
        else:
            from littlefs import LittleFS

            LittleFS(context=self.ctx, block_size=BS, block_count=BLOCKS, mount=False).format()

    def mount(self):
        """Return (fs, root) for a Store."""
        if IS_MP:
            import vfs

            self.point = "/pcut"
            vfs.mount(vfs.VfsLfs2(self.bdev), self.point)
            return st.OsFs(), self.point + "/store"
        from littlefs import LittleFS
        from optoread_tools.flashdump import LittleFsAdapter

        lfs = LittleFS(context=self.ctx, block_size=BS, block_count=BLOCKS, mount=False)
        lfs.mount()
        self.lfs = lfs
        return LittleFsAdapter(lfs, BS), "/store"

    def umount(self):
        if IS_MP and self.point:
            import vfs

            vfs.umount(self.point)
            self.point = None


def _collect(store, seq):
    """Session ``seq`` read back as (running CRC-32 after each record, last record).

    Running digests instead of the records themselves keep the unix port's heap small;
    two reads agree on a prefix of n records iff their n-th running digests agree.
    """
    from array import array

    acc = array("I")
    state = [0, None]

    def sink(kind, data):
        state[0] = crc32(repr((kind, data)).encode(), state[0])
        state[1] = (kind, data)
        acc.append(state[0])

    store.read(seq, sink)
    return acc, state[1]


def _same(a, b):
    return len(a[0]) == len(b[0]) and a[0][-1] == b[0][-1] and a[1] == b[1]


def scenario(fs, root, mark):
    """Sessions, an abort, acks and a reclaim. ``mark(event, *args)`` notes progress."""
    s = st.Store(fs, root, reserve=0)
    s.mount()
    mark("mounted")

    def session(meter, rows, ncols, outcome, nvals=4):
        w = s.begin(meter, "plan", T0, T0 + 3)
        mark("begin", w.seq)
        for i in range(nvals):
            w.value("1.0.%d.8.0.255" % i, 1000 * i + 7, -1, 30)
        w.event(T0 - 60, 17, "cover opened")
        if rows:
            w.profile_begin("1.0.99.1.0.255", ["1.0.%d.29.0.255" % c for c in range(ncols)], 900, T0)
            v = [c * 11 for c in range(ncols)]
            for r in range(rows):
                for c in range(ncols):
                    v[c] += (r * 37 + c * 13) % 500
                w.row(None if r % 5 else T0 + r * 900, v)
        if outcome == "complete":
            summ = w.commit()
        else:
            summ = w.abort(outcome)
        mark("commit", summ.seq, summ.complete, _collect(s, summ.seq))

    for rnd in range(ROUNDS):
        session("A%d" % rnd, 400 + 300 * rnd, 1, "complete")
        session("B%d" % rnd, 60, 8, "timeout")
        mark("ack-start", s.ack(0) + 1)
        n = s.ack(s.acked + 1)
        mark("ack", n)
        session("C%d" % rnd, 200, 2, "complete", nvals=20)
        if rnd % 2:
            mark("reclaim-start", n)
            s.reclaim(None)
            mark("reclaim", n)
    mark("ack-start", 1000)
    s.ack(1000)
    mark("ack", s.acked)
    mark("reclaim-start", s.acked)
    s.reclaim(None)
    mark("reclaim", s.acked)
    session("D", 1500, 1, "complete")
    mark("done")


def record(data=None, start=None):
    """Run the scenario once with logging; return (start image, writes, marks).

    ``data`` (the medium) and ``start`` (gets the formatted image) may be given, so the
    big buffers are allocated before the log fragments the unix port's heap.
    """
    if data is None:
        data = bytearray(BS * BLOCKS)
    if start is None:
        start = bytearray(BS * BLOCKS)
    data[:] = b"\xff" * len(data)
    m = _Medium(data)
    m.format()
    start[:] = data
    log = []
    m.log = log
    if IS_MP:
        m.bdev.log = log
    marks = []
    fs, root = m.mount()
    try:
        scenario(fs, root, lambda ev, *a: marks.append((len(log), ev) + a))
    finally:
        m.umount()
    return start, log, marks


def check_cut(image, k, marks, deep, scratch=None, torn=None):
    """Mount the image of a cut after write k and check the invariants; return a short state tag.

    The image is copied into ``scratch`` (allocated once: the unix port's heap is small);
    ``torn`` = (address, bytes) is applied on top (a half-done write).
    """
    if scratch is None:
        scratch = bytearray(len(image))
    scratch[:] = image
    if torn is not None:
        a, d = torn
        scratch[a:a + len(d)] = d
    m = _Medium(scratch)
    try:
        fs, root = m.mount()
    except Exception as e:
        raise AssertionError("cut %d: file system does not mount: %r" % (k, e))
    try:
        s = st.Store(fs, root, reserve=0)
        rep = s.mount()
        present = {x.seq: x for x in s.sessions()}
        done = {}  # seq -> (complete, records) for commits that returned before the cut
        everything = {}
        acked_lo = acked_hi = 0
        reclaim_started = False
        for mk in marks:
            at, ev, args = mk[0], mk[1], mk[2:]
            if ev == "commit":
                everything[args[0]] = (args[1], args[2])
                if at <= k:
                    done[args[0]] = (args[1], args[2])
            if ev == "ack-start" and at <= k:
                acked_hi = args[0]
            if ev == "ack" and at <= k:
                acked_lo = args[0]
            if ev == "reclaim-start" and at <= k:
                reclaim_started = True
        for seq, (complete, recs) in done.items():
            if seq not in present:
                assert reclaim_started and seq <= acked_lo, "cut %d: committed session %d lost" % (k, seq)
                continue
            assert present[seq].complete == complete, "cut %d: session %d outcome changed" % (k, seq)
            assert _same(_collect(s, seq), recs), "cut %d: session %d content changed" % (k, seq)
        for seq, x in present.items():
            if x.complete:
                assert seq in everything and everything[seq][0], "cut %d: bogus complete %d" % (k, seq)
                assert _same(_collect(s, seq), everything[seq][1]), "cut %d: partial %d complete" % (k, seq)
            elif seq not in done:
                got = _collect(s, seq)
                assert got[1][0] == "commit" and got[1][1][0] == "incomplete"
                if seq in everything:  # interrupted: a prefix of what was written
                    exp = everything[seq][1]
                    if not _same(got, exp):
                        n = len(got[0]) - 1  # records before the (sealing) commit
                        assert n >= 1 and n < len(exp[0]), "cut %d: session %d too long" % (k, seq)
                        assert got[0][n - 1] == exp[0][n - 1], "cut %d: session %d not a prefix" % (k, seq)
                        assert got[1][1][1] == sr.INTERRUPTED
        assert acked_lo <= s.acked <= acked_hi, "cut %d: acked %d not in [%d, %d]" % (
            k, s.acked, acked_lo, acked_hi)
        if deep:
            # the repair is final, and the store takes a new session afterwards
            s2 = st.Store(fs, root, reserve=0)
            rep2 = s2.mount()
            assert rep2.torn == 0 and rep2.trimmed_bytes == 0, "cut %d: repair not final" % k
            assert [x.seq for x in s2.sessions()] == sorted(present)
            w = s2.begin("Z", "p", T0)
            w.value("1.8.0", 1, 0, 30)
            z = w.commit()
            assert z.seq > max(list(present) + [s.acked])
        return "torn" if rep.torn else "clean"
    finally:
        m.umount()


def run_matrix(stride=1, torn_stride=0, deep_stride=10, offset=0):
    """Check cut points offset, offset+stride, ... (and half-applied writes every torn_stride)."""
    import gc

    gc.collect()  # big contiguous images first: the log fragments the unix port's 4 MB test heap
    image = bytearray(BS * BLOCKS)
    scratch = bytearray(BS * BLOCKS)
    start, log, marks = record(image, scratch)
    image[:] = start  # replay from the formatted image; scratch is free again
    checked = 0
    tags = {}
    for k in range(len(log) + 1):
        if k:
            a, d = log[k - 1]
            image[a:a + len(d)] = d
        if k % stride == offset % stride or k == len(log):
            t = check_cut(image, k, marks, (k // stride) % deep_stride == 0, scratch)
            tags[t] = tags.get(t, 0) + 1
            checked += 1
        if torn_stride and k < len(log) and k % torn_stride == 0:
            a, d = log[k]
            check_cut(image, k, marks, False, scratch, (a, d[:len(d) // 2]))
            checked += 1
    return len(log), checked, tags


def test_powercut_sampled():
    """A sample of cut points (every one would take too long here; see the full-matrix test)."""
    if not IS_MP:
        try:
            import littlefs  # noqa: F401
        except ImportError:
            portable.skip("littlefs-python is not installed")
    writes, checked, tags = run_matrix(stride=7 if IS_MP else 13, torn_stride=29, offset=3)
    assert writes > 100 and checked > writes // 30
    assert tags.get("torn", 0) > 0 and tags.get("clean", 0) > 0


def test_powercut_full_matrix_on_unix_port():
    """CPython launches the unix port for every cut point (and every torn write's half)."""
    if IS_MP:
        portable.skip("the CPython side launches the unix port")
    import os
    import subprocess
    import time

    import mpbin

    here = os.path.dirname(os.path.abspath(__file__))
    mp = mpbin.MICROPYTHON  # $OPTOREAD_MICROPYTHON, else .venv/bin/micropython
    if not os.path.exists(mp):
        portable.skip("no MicroPython at %s" % mp)
    t = time.time()
    r = subprocess.run([mp, "-X", "heapsize=8m", os.path.join(here, "test_store_powercut.py"), "full"],
                       capture_output=True, text=True, timeout=600)
    print(r.stdout.strip(), "(%.1f s)" % (time.time() - t))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "all ok" in r.stdout


# ---------------------------------------------------------------- cuts in the mount's own repair


def corrupt_file_blocks(data, content, bs=BS):
    """Make the file whose bytes are ``content`` unreadable in the LittleFS image ``data``, as a
    bad flash block does: the CTZ skip-list pointer of each of its blocks but the first points
    nowhere, so LittleFS reports corruption (OSError 84) reading it. Returns the blocks changed."""
    nblocks = len(data) // bs
    first = bytes(data).find(content[:64])
    assert first >= 0 and first % bs == 0
    changed = []
    for b in range(nblocks):
        a = b * bs
        chunk = bytes(data[a + 16:a + 80])  # past up to 4 pointer words: the file's bytes
        if a != first and chunk in content and (data[a] | data[a + 1] << 8 | data[a + 2] << 16) < nblocks \
                and data[a + 3] == 0:
            data[a:a + 4] = b"\xee\xee\xee\xee"
            changed.append(b)
    return changed


def _read_file(fs, path):
    with fs.open(path, "rb") as f:
        return f.read()


def _write_file(fs, path, data):
    with fs.open(path, "wb") as f:
        f.write(data)


def repair_image(data):
    """A store that needs every kind of repair at its next mount, in the image ``data``:
    1 committed; 2 committed with a flipped bit (damaged: nothing to write); 3 torn with a torn
    record after its last whole one (sealed by a copy and a rename); 4 torn on a record boundary
    (sealed by an append); 5 committed, unreadable (quarantined by a rename); the acks file torn
    (rewritten). Returns the image's 5th file's bytes (to make it unreadable after unmounting)."""
    data[:] = b"\xff" * len(data)
    m = _Medium(data)
    m.format()
    fs, root = m.mount()
    try:
        s = st.Store(fs, root, reserve=0)
        s.mount()

        def session(meter, rows, commit=True):
            w = s.begin(meter, "plan", T0, T0 + 3)
            for i in range(3):
                w.value("1.0.%d.8.0.255" % i, 1000 * i + 7, -1, 30)
            w.profile_begin("1.0.99.1.0.255", ["1.0.1.29.0.255", "1.0.2.29.0.255"], 900, T0)
            for r in range(rows):
                w.row(None if r % 5 else T0 + r * 900, [r * 37 + len(meter), r * r % 1000])
            if commit:
                return w.commit()
            w._sync()
            w.discard()
            return None

        session("A", 900)
        session("B", 900)
        path = "%s/%08d.ses" % (root, 2)
        whole = bytearray(_read_file(fs, path))
        whole[len(whole) // 2] ^= 0x08
        _write_file(fs, path, whole)
        session("C", 700, commit=False)
        path = "%s/%08d.ses" % (root, 3)
        _write_file(fs, path, _read_file(fs, path) + b"\xa7\x02\x05\x00\x03\x00\x00\x00\x00\x02abc")
        session("D", 300, commit=False)
        session("E", 2500)
        s.ack(1)
        s.ack(2)
        acks = _read_file(fs, root + "/acks")
        _write_file(fs, root + "/acks", acks[:-3])
        fifth = _read_file(fs, "%s/%08d.ses" % (root, 5))
    finally:
        m.umount()
    assert corrupt_file_blocks(data, fifth)
    return fifth


def _all_read(s):
    out = {}
    for x in s.sessions():
        acc = _collect(s, x.seq)
        if x.error and x.error.startswith("unreadable on flash"):  # it names the file: .ses, or .bad
            out[x.seq] = (x.complete, x.damaged, "unreadable", len(acc[0]), acc[1][0])
        else:
            out[x.seq] = (x.complete, x.damaged, x.error, len(acc[0]), acc[0][-1], acc[1][0])
    return out


def check_repair_cut(image, k, want, scratch, torn=None):
    """Mount (repairing) the image of a cut at write k of the repair: everything reads as the
    read-only mount of the unrepaired store said, and a second mount has nothing left to do."""
    scratch[:] = image
    if torn is not None:
        a, d = torn
        scratch[a:a + len(d)] = d
    m = _Medium(scratch)
    fs, root = m.mount()
    try:
        names = fs.listdir(root)  # how far the cut repair had come
        tag = "quarantined" if "00000005.bad" in names else "not yet"
        s = st.Store(fs, root, reserve=0)
        s.mount()
        got = _all_read(s)
        assert got == want, "repair cut %d: %r != %r" % (k, got, want)
        assert s.acked == 1, "repair cut %d: acked %d" % (k, s.acked)
        s2 = st.Store(fs, root, reserve=0)
        rep = s2.mount()
        assert rep.torn == 0 and rep.trimmed_bytes == 0 and rep.unreadable == 1, (k, rep)
        assert not [n for n in fs.listdir(root) if n.endswith(sr.TMP)]
        w = s2.begin("Z", "p", T0)
        w.value("1.8.0", 1, 0, 30)
        assert w.commit().seq == 6
        return tag
    finally:
        m.umount()


def run_repair_matrix(torn=True):
    """Record the repairing mount's block writes, then cut after each (and half-way through each)."""
    image = bytearray(BS * BLOCKS)
    scratch = bytearray(BS * BLOCKS)
    repair_image(image)
    # what the unrepaired store reads as (read-only mount): the repair must never change it
    scratch[:] = image
    m = _Medium(scratch)
    fs, root = m.mount()
    try:
        s = st.Store(fs, root, reserve=0)
        rep = s.mount(repair=False)
        assert rep.torn == 2 and rep.damaged == 1 and rep.unreadable == 1, rep
        want = _all_read(s)
        assert s.acked == 1
    finally:
        m.umount()
    assert [want[q][0] for q in (1, 2, 3, 4, 5)] == [True, False, False, False, False]
    assert want[2][1] == 1 and want[5][1] == 1
    # the repairing mount, logged
    log = []
    scratch[:] = image
    m = _Medium(scratch, log)
    if IS_MP:
        m.bdev.log = log
    fs, root = m.mount()
    try:
        st.Store(fs, root, reserve=0).mount()
    finally:
        m.umount()
    assert len(log) > 3
    start = bytearray(image)
    checked = 0
    tags = {}
    for k in range(len(log) + 1):
        if k:
            a, d = log[k - 1]
            image[a:a + len(d)] = d
        t = check_repair_cut(image, k, want, scratch)
        tags[t] = tags.get(t, 0) + 1
        checked += 1
        if torn and k < len(log):
            a, d = log[k]
            check_repair_cut(image, k, want, scratch, (a, d[:len(d) // 2]))
            checked += 1
    del start
    return len(log), checked, tags


def test_powercut_in_the_mount_repair():
    """Every block write of a repairing mount (seal by copy and rename, seal by append, the
    quarantine rename, the acks rewrite) cut, and half-done: nothing committed is lost, every
    session reads as before the repair, and the next mount finishes it."""
    if IS_MP:
        from test_store import small_heap

        if small_heap():  # two 128 KB images beside the imports: more than a board's heap
            portable.skip("two 128 KB flash images in RAM: the unix ports and CPython run it")
    else:
        try:
            import littlefs  # noqa: F401
        except ImportError:
            portable.skip("littlefs-python is not installed")
    writes, checked, tags = run_repair_matrix(torn=not IS_MP or "full" in sys.argv)
    assert writes > 3 and checked >= writes + 1
    assert tags.get("quarantined", 0) > 0 and tags.get("not yet", 0) > 0


if __name__ == "__main__":
    mode = sys.argv[1] if len(sys.argv) > 1 else "full"
    if mode == "full":
        n, c, tags = run_matrix(stride=1, torn_stride=1, deep_stride=10)
    else:
        n, c, tags = run_matrix(stride=int(mode), torn_stride=0)
    print("powercut: %d block writes, %d cut images checked (%s): all ok" % (n, c, tags))
    n, c, tags = run_repair_matrix()
    print("powercut in the mount's repair: %d block writes, %d cut images checked (%s): all ok"
          % (n, c, tags))
