"""Flash figures for the store: how many meters' load profiles fit in a Pico's file system.

    .venv/bin/micropython -X heapsize=4m host_tests/bench_store.py     (VfsLfs2 on a RAM block device)
    .venv/bin/python host_tests/bench_store.py                         (littlefs-python, same geometry)

Each meter is one session: a register set (20 values) and 45 days of 15-minute load
profile, written until the store reports "store full". The Pico's default file
system is 1408 KiB (352 blocks of 4 KiB). Profile data is synthetic but
deterministic (a household day curve with noise).
"""

import sys

HERE = __file__.rsplit("/", 1)[0] if "/" in __file__ else "."
sys.path.insert(0, HERE + "/../firmware")
sys.path.insert(0, HERE + "/../tools")
sys.path.insert(0, HERE)

from optoread.errors import StoreError  # noqa: E402
from test_store import Env  # noqa: E402

BLOCKS = 352
BS = 4096
DAYS = 45
PER_DAY = 96
T0 = 1700000000


class Rng:
    def __init__(self, seed):
        self.x = seed

    def next(self, n):
        self.x = (self.x * 1103515245 + 12345) & 0x7FFFFFFF
        return (self.x >> 8) % n


def household_wh(rng, slot):
    """Energy (Wh) in one 15-minute slot: base load, morning and evening peaks, noise."""
    h = slot // 4
    base = 60
    if 6 <= h < 9:
        base = 250
    elif 17 <= h < 22:
        base = 400
    elif 9 <= h < 17:
        base = 150
    return base + rng.next(base + 1)


def one_column(w, rng, rows=DAYS * PER_DAY):
    w.profile_begin("1.0.99.1.0.255", [("1.0.1.8.0.255", 0, 30)], 900, T0)
    total = 5000000 + rng.next(10 ** 6)
    for i in range(rows):
        total += household_wh(rng, i % PER_DAY)
        w.row(None, (total,))


def is15959_block_load(w, rng, rows=DAYS * PER_DAY):
    # IS 15959 block load profile: clock + avg voltage, avg current, block energies
    # kWh import/export, kVArh lag/lead, kVAh import/export (per interval, not cumulative).
    cols = (("1.0.12.27.0.255", -1, 35), ("1.0.11.27.0.255", -2, 33), ("1.0.1.29.0.255", 0, 30),
            ("1.0.2.29.0.255", 0, 30), ("1.0.5.29.0.255", 0, 32), ("1.0.8.29.0.255", 0, 32),
            ("1.0.9.29.0.255", 0, 31), ("1.0.10.29.0.255", 0, 31))
    w.profile_begin("1.0.99.1.0.255", cols, 900, T0)
    row = [0] * 8
    for i in range(rows):
        wh = household_wh(rng, i % PER_DAY)
        row[0] = 2300 + rng.next(80)       # 0.1 V
        row[1] = wh * 100 * 4 // 230       # 0.01 A
        row[2] = wh
        row[3] = 0 if rng.next(10) else rng.next(30)
        row[4] = wh // 5 + rng.next(10)
        row[5] = rng.next(5)
        row[6] = wh + wh // 20
        row[7] = row[3]
        w.row(None, row)


def registers(w, rng, n=20):
    for i in range(n):
        w.value("1.0.%d.8.0.255" % (i + 1), 1000000 + rng.next(10 ** 7), -1, 30)


def fill(kind, profile):
    env = Env(kind, blocks=BLOCKS, block_size=BS)
    try:
        s = env.store(reserve=2 * BS)
        s.mount()
        free0 = s.free_space()
        meters = 0
        rows = 0
        rng = Rng(7)
        while True:
            try:
                w = s.begin("METER-%04d" % meters, "bench", T0 + meters)
                registers(w, rng)
                profile(w, rng)
                x = w.commit()
            except StoreError:
                break
            meters += 1
            rows += x.rows
            stored = x.size
        sp = s.space()
        return meters, rows, sp["stored"], free0, stored
    finally:
        env.close()


def main():
    kind = "vfs" if sys.implementation.name == "micropython" else "lfspy"
    print("store benchmark: %s, %d blocks x %d B = %d KiB file system, %d days x %d rows/day per meter"
          % ("VfsLfs2 (unix port)" if kind == "vfs" else "littlefs-python", BLOCKS, BS,
             BLOCKS * BS // 1024, DAYS, PER_DAY))
    for name, prof in (("clock + 1 energy column", one_column),
                       ("IS 15959 block load, clock + 8 columns", is15959_block_load)):
        meters, rows, stored, free0, one = fill(kind, prof)
        print("%-40s: %3d meters fit (45 days + 20 registers each); %.2f B/row in records, "
              "%d B per meter session, %.2f B/row on flash incl. file system" % (
                  name, meters, stored / max(rows, 1), one, free0 / max(rows, 1) if meters else 0))
    print("(on flash figure = free space at start / rows stored until 'store full')")


if __name__ == "__main__":
    main()
