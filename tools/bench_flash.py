"""Flash cost per item and write amplification of the store, on the unix port (VfsLfs2).

    .venv/bin/micropython -X heapsize=4m tools/bench_flash.py

Complements host_tests/bench_store.py (meters that fit in 1.4 MB). Each case is one store
session in a fresh 352 x 4 KiB LittleFS (the Pico's file system) on a RAM block device
that counts what LittleFS writes to it:

* bytes per reading: (session with 20 register values - empty session) / 20;
* bytes per profile row: (session with 20 registers + 2880 rows - session with 20
  registers) / 2880, for a 1-column energy profile and the IS 15959 block load (8 columns);
* write amplification: bytes programmed into the block device while the session is
  written and committed / the session's record bytes (``commit().size``, the payload the
  store asked the file system to keep). Erases are counted apart (blocks).
"""

import sys

HERE = __file__.rsplit("/", 1)[0] if "/" in __file__ else "."
sys.path.insert(0, HERE + "/../firmware")
sys.path.insert(0, HERE + "/../host_tests")

import bench_store  # noqa: E402
from bench_store import T0, Rng, registers  # noqa: E402  (the same workloads as bench_store)
from test_store import Env  # noqa: E402

BLOCKS = 352
BS = 4096
ROWS = 2880


class WriteCounter:
    """Stands in for RamBdev.log: counts programmed bytes and erased blocks, keeps nothing."""

    def __init__(self, bs):
        self.bs = bs
        self.programmed = 0
        self.erased = 0

    def append(self, item):
        a, data = item
        if len(data) == self.bs and a % self.bs == 0 and data == b"\xff" * self.bs:
            self.erased += 1
        else:
            self.programmed += len(data)


def one_column(w, rng):
    bench_store.one_column(w, rng, ROWS)


def block_load(w, rng):
    bench_store.is15959_block_load(w, rng, ROWS)


def session(regs, profile):
    """One session in a fresh file system: (record bytes, bytes programmed, blocks erased)."""
    env = Env("vfs", blocks=BLOCKS, block_size=BS)
    try:
        s = env.store(reserve=2 * BS)
        s.mount()
        cnt = WriteCounter(BS)
        env.bdev.log = cnt
        rng = Rng(7)
        w = s.begin("METER-0001", "bench", T0)
        if regs:
            registers(w, rng, regs)
        if profile is not None:
            profile(w, rng)
        x = w.commit()
        env.bdev.log = None
        return x.size, cnt.programmed, cnt.erased
    finally:
        env.close()


def main():
    if sys.implementation.name != "micropython":
        print("run me on the unix port: .venv/bin/micropython -X heapsize=4m tools/bench_flash.py")
        return
    empty = session(0, None)
    regs = session(20, None)
    one = session(20, one_column)
    bl = session(20, block_load)
    print("store on VfsLfs2, %d x %d B blocks; one session each, %d-row profiles" % (BLOCKS, BS, ROWS))
    print("bytes per register reading (value, scaler, unit, OBIS) : %.1f" % ((regs[0] - empty[0]) / 20))
    print("bytes per profile row, clock + 1 energy column         : %.2f" % ((one[0] - regs[0]) / ROWS))
    print("bytes per profile row, IS 15959 block load (8 columns) : %.2f" % ((bl[0] - regs[0]) / ROWS))
    print("%-42s %10s %12s %8s %8s" % ("session", "records B", "programmed B", "erased", "WA"))
    for name, r in (("empty (header + commit)", empty), ("20 registers", regs),
                    ("20 registers + 1-column profile", one), ("20 registers + block load", bl)):
        print("%-42s %10d %12d %8d %8.2f" % (name, r[0], r[1], r[2], r[1] / r[0]))
    print("WA = bytes programmed into the block device / record bytes of the session")
    print("JSON {\"bytes_per_reading\": %.1f, \"bytes_per_row_1col\": %.2f, \"bytes_per_row_is15959\": %.2f, "
          "\"write_amplification\": %.2f, \"write_amplification_is15959\": %.2f}"
          % ((regs[0] - empty[0]) / 20, (one[0] - regs[0]) / ROWS, (bl[0] - regs[0]) / ROWS,
             one[1] / one[0], bl[1] / bl[0]))


main()
