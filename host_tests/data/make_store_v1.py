"""Writes host_tests/data/store_v1/: a small store written by store format version 1.

The committed files were made by this script with the firmware of commit
29ad884f9e3c53181d31070539b69993d7e6ef95 (store.VERSION 1), on CPython, through ``OsFs``:

    .venv/bin/python host_tests/data/make_store_v1.py

They are the flash contents a device running that firmware leaves behind (sessions not yet
downloaded): host_tests/test_store_versions.py mounts them with the current firmware and
checks every value, event and profile row. Do not regenerate them with a newer firmware:
the point is that they stay the old format. ``EXPECTED`` below is what they hold (the test
imports it).
"""

import os
import sys

T0 = 1767225600  # 2026-01-01 00:00:00: epoch seconds above 2**30 (big ints on a 32-bit board)

HEAD1 = ("KFM-0001", "is15959", T0 + 5, T0 - 2)
VALUES1 = (
    ("1.0.1.8.0.255", 1234567890123, -1, 30),  # beyond 32 bits
    ("1.0.2.8.0.255", 3000000000, 0, 30),  # a u32 above 2**31
    ("1.0.1.7.0.255", -1500, 0, 27),
    ("0.0.96.1.0.255", "SN\u00e9 42", None, None),
    ("0.0.42.0.0.255", b"\x00\xffKFM", None, None),
    ("1.0.32.7.0.255", 230.25, 0, "V"),
    ("1.0.14.7.0.255", None, -2, 44),
    ("1.0.1.8.1.255", -(2 ** 63), 0, 30),
)
EVENTS1 = ((T0 - 3600, 7, "power down"), (None, 8, None), (T0 - 60, 1 << 40, "big code"))
PROFILE1 = ("1.0.99.1.0.255", 900, T0 - 300 * 900,
            (("1.0.1.29.0.255", -2, 30), ("1.0.2.29.0.255", -2, 30), ("0.0.96.10.1.255", None, None)))
PROFILE2 = ("1.0.99.2.0.255", 86400, None, (("1.0.1.8.0.255", 0, 30),))
PROFILE3 = ("0.0.99.98.0.255", None, None, ())


def _rows1():
    """300 rows of PROFILE1: regular, a gap with an explicit clock, a clock step back, nulls."""
    out = []
    clock = PROFILE1[2]
    a, b = 2 ** 31 - 5000, 10
    x = 7
    for i in range(300):
        x = (x * 1103515245 + 12345) & 0x7FFFFFFF
        a += (x >> 5) % 500
        b += (x >> 9) % 3 - 1
        if i == 150:
            clock += 7200  # two hours missing: the row carries its clock
        if i == 220:
            clock -= 1800  # the meter's clock was set back
        status = None if i % 50 == 7 else (x >> 3) & 0xFF
        out.append((clock, (a, b, status)))
        clock += 900
    return out


ROWS1 = _rows1()
ROWS2 = [(T0 - 86400 * 3, (5000,)), (T0 - 86400 * 2, (5100,)), (T0 - 86400 - 17, (None,)),
         (T0, (5400,))]
ROWS3 = [(T0 - 10, ()), (T0 + 20, ())]

HEAD2 = ("KFM-0002", "daily", 1000, None)
VALUES2 = (("1.0.1.8.0.255", 42, 0, 30),)
ERROR2 = "hdlc: no answer [frame]"

HEAD3 = ("KFM-0003", "is15959", T0 + 86400, T0 + 86400)
VALUES3 = (("1.0.1.8.0.255", 1073741824, 0, 30),)  # 2**30
ROWS3B = [(T0 + 86400 - 1800, (1,)), (T0 + 86400 - 900, (2,))]  # torn after these

EXPECTED = {
    # seq: (complete, error, [(kind, data), ...]) as Store.read gives them (commit excluded)
    1: (True, None,
        [("head", HEAD1)] + [("value", v) for v in VALUES1] + [("event", e) for e in EVENTS1]
        + [("profile", PROFILE1)] + [("row", r) for r in ROWS1]
        + [("profile", PROFILE2)] + [("row", r) for r in ROWS2]
        + [("profile", PROFILE3)] + [("row", r) for r in ROWS3]),
    2: (False, ERROR2, [("head", HEAD2)] + [("value", v) for v in VALUES2]),
    3: (False, None,  # torn: no COMMIT, the mount calls it interrupted
        [("head", HEAD3)] + [("value", v) for v in VALUES3]
        + [("profile", ("1.0.99.1.0.255", 900, None, (("1.0.1.8.0.255", 0, 30),)))]
        + [("row", r) for r in ROWS3B]),
}
ACKED = 1


def make(root, fs=None):
    """Write the fixture's sessions into a new store directory ``root`` (its parent exists) on
    ``fs`` (the store's file-system interface; default ``OsFs``)."""
    from optoread.store import records as sr
    from optoread.store import store as st

    assert sr.VERSION == 1, "the fixture is the version 1 format"
    fs = fs or st.OsFs()
    fs.mkdir(root)
    s = st.Store(fs, root, reserve=0)
    s.mount()
    w = s.begin(*HEAD1)
    for v in VALUES1:
        w.value(*v)
    for e in EVENTS1:
        w.event(*e)
    for prof, rows in ((PROFILE1, ROWS1), (PROFILE2, ROWS2), (PROFILE3, ROWS3)):
        w.profile_begin(prof[0], prof[3], prof[1], prof[2])
        pred = prof[2]
        for i, (clock, cols) in enumerate(rows):
            # every third row that the capture period implies goes without its clock
            implied = pred is not None and clock == pred
            w.row(None if implied and i % 3 == 1 else clock, list(cols))
            pred = clock + (prof[1] or 0)
    w.commit()
    w = s.begin(*HEAD2)
    for v in VALUES2:
        w.value(*v)
    w.abort(ERROR2)
    s.ack(ACKED)
    w = s.begin(*HEAD3)
    for v in VALUES3:
        w.value(*v)
    w.profile_begin("1.0.99.1.0.255", [("1.0.1.8.0.255", 0, 30)], 900)
    for clock, cols in ROWS3B:
        w.row(clock, list(cols))
    w._flush_rows()  # the rows reach the file; then power is cut before the COMMIT
    w._write_out()
    w._sync()
    w.discard()


if __name__ == "__main__":
    here = os.path.dirname(os.path.abspath(__file__))
    sys.path.insert(0, os.path.join(here, "..", "..", "firmware"))
    make(os.path.join(here, "store_v1"))
