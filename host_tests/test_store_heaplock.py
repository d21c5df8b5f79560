"""The store's append path allocates nothing: profile rows go to LittleFS under heap_lock.

On the unix port this runs with ``micropython.heap_lock()`` around 3000 appended rows (records
fill, CRC-32 is computed, LittleFS is written and synced); on CPython it checks the same data
round-trips.
"""

import os

import portable
from optoread.store import store

PORTABLE = True


class _QuietBdev:
    """A RAM block device that itself allocates nothing per call (plain byte loops)."""

    def __init__(self, bs=4096, n=64):
        self.bs = bs
        self.n = n
        # zeroed: LittleFS erases a block before it programs it (b"\xff" * n would take a
        # second buffer as large, beyond a board's heap)
        self.data = bytearray(bs * n)

    def readblocks(self, b, buf, off=0):
        a = b * self.bs + off
        d = self.data
        for i in range(len(buf)):
            buf[i] = d[a + i]

    def writeblocks(self, b, buf, off=None):
        a = b * self.bs + (off or 0)
        d = self.data
        for i in range(len(buf)):
            d[a + i] = buf[i]

    def ioctl(self, op, arg):
        if op == 4:
            return self.n
        if op == 5:
            return self.bs
        if op == 6:
            a = arg * self.bs
            d = self.data
            for i in range(self.bs):
                d[a + i] = 0xFF
        return 0


def _store():
    if portable.IS_MICROPYTHON:
        import gc

        import vfs  # pyright: ignore[reportMissingImports]

        # 12 blocks (48 KB) where the heap is a board's (~240 KB; a 64 KB block no longer fits
        # after the imports), 64 elsewhere
        bd = _QuietBdev(n=12 if gc.mem_free() + gc.mem_alloc() < (1 << 20) else 64)
        vfs.VfsLfs2.mkfs(bd)
        vfs.mount(vfs.VfsLfs2(bd), "/heaplock")
        os.mkdir("/heaplock/s")
        return store.Store(root="/heaplock/s", reserve=1024), lambda: vfs.umount("/heaplock")
    import tempfile

    d = tempfile.mkdtemp()
    return store.Store(root=d, reserve=1024), lambda: None


def _read_rows(st, seq, keep):
    """(number of rows of session ``seq``, {index: row} for the indices in ``keep``): the rows
    are not all kept, 3000 of them would not fit a board's heap."""
    n = [0]
    rows = {}

    def sink(kind, d):
        if kind == "row":
            if n[0] in keep:
                rows[n[0]] = d
            n[0] += 1

    st.read(seq, sink)
    return n[0], rows


def test_profile_rows_append_without_allocating():
    st, done = _store()
    try:
        st.mount()
        w = st.begin("m1", "p", 1)
        w.profile_begin("1.0.99.1.0.255", [("1.0.1.8.0.255", 0, 30)], 900, 1700000000)
        cols = [1000]
        w.row(None, cols)
        total = 1000
        if portable.IS_MICROPYTHON:
            import gc

            import micropython

            gc.collect()
            micropython.heap_lock()
        try:
            for i in range(3000):
                total += 7 + (i % 13)
                cols[0] = total
                w.row(None, cols)
        finally:
            if portable.IS_MICROPYTHON:
                micropython.heap_unlock()
        s = w.commit()
        assert s.complete and s.rows == 3001
        n, rows = _read_rows(st, s.seq, (1, 3000))
        assert n == 3001 and rows[3000][1][0] == total
        assert rows[1][0] == 1700000000 + 900
    finally:
        done()


def test_rows_after_an_explicit_first_clock_append_without_allocating():
    # The reader's case: no first_time, the first row carries the meter's clock (epoch seconds,
    # a long int on a 32-bit board); the rows it implies then cost no allocation either.
    st, done = _store()
    try:
        st.mount()
        w = st.begin("m1", "p", 1)
        w.profile_begin("1.0.99.1.0.255", ["1.0.1.8.0.255", "1.0.2.8.0.255"], 900)
        t0 = 1767225600
        cols = [5, None]
        w.row(t0, cols)
        if portable.IS_MICROPYTHON:
            import gc

            import micropython

            gc.collect()
            micropython.heap_lock()
        try:
            for i in range(1500):
                cols[0] = 5 + i
                cols[1] = None if i % 5 else i
                w.row(None, cols)
        finally:
            if portable.IS_MICROPYTHON:
                micropython.heap_unlock()
        w.row(t0 + 1501 * 900 + 60, [0, 0])  # a clock off the grid: explicit again
        s = w.commit()
        assert s.rows == 1502
        n, rows = _read_rows(st, s.seq, (0, 1496, 1500, 1501))
        assert n == 1502
        assert rows[0] == (t0, (5, None))
        assert rows[1500] == (t0 + 1500 * 900, (1504, None))
        assert rows[1496] == (t0 + 1496 * 900, (1500, 1495))
        assert rows[1501] == (t0 + 1501 * 900 + 60, (0, 0))
    finally:
        done()
