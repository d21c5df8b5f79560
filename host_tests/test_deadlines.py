"""A line that is never silent must not hold a reading (issue 17, finding 4).

The read time-out restarts on every byte (the standards' inter-character time), so a line that
carries noise, or a meter that babbles, kept a reading waiting forever. The transport here sends
200 random bytes a second on a virtual clock; every reading must end, committed incomplete with
an error that names the cause, well within the plan's deadline, and (on MicroPython, both unix
ports) with its heap bounded all the while.
"""

import os

import portable
from optoread.device import reader
from test_store import Env, kinds

PORTABLE = True

HOUR_MS = 3600 * 1000
HEAP_GROWTH = 48 * 1024  # the most a babbled-at reading may hold beyond the heap at its start


class Hang(Exception):
    """The virtual clock ran for hours: the reading would never have ended."""


class Babble:
    """A transport whose line carries ``rate`` random bytes a second, whatever is sent."""

    def __init__(self, rate=200, seed=1, give_up_ms=4 * HOUR_MS, pattern=None):
        self.t = 0
        self.rate = rate
        self.rnd = 0x9E3779B9 ^ seed  # xorshift32: the same noise on every port
        self.give_up_ms = give_up_ms
        self.heap0 = self.heap_max = _heap()
        self.bytes = 0
        self.pattern = pattern
        self.sent = 0
        self._deadline = None
        self.deadlines = []

    def ticks_ms(self):
        return self.t

    @property
    def deadline(self):
        return self._deadline

    @deadline.setter
    def deadline(self, v):  # the reader sets it at the start of a reading (and clears it at the end)
        self._deadline = v
        if v is not None:
            self.deadlines.append(v)

    def _advance(self, ms):
        self.t += ms
        if self.t > self.give_up_ms:
            raise Hang("still reading after %d virtual hours" % (self.t // HOUR_MS))

    def write(self, data):
        self.sent += len(data)

    def drain(self):
        pass

    def set_line(self, baud, bits=8, parity="N", stop=1):
        pass

    def sleep_ms(self, ms):
        self._advance(ms)

    def readinto(self, buf, timeout_ms):
        gap = 1000 // self.rate
        if timeout_ms < gap:
            self._advance(timeout_ms)
            return 0
        self._advance(gap)
        x = self.rnd
        x ^= (x << 13) & 0xFFFFFFFF
        x ^= x >> 17
        x ^= (x << 5) & 0xFFFFFFFF
        self.rnd = x
        buf[0] = self.pattern[x % len(self.pattern)] if self.pattern is not None else x & 0xFF
        self.bytes += 1
        if self.bytes % 500 == 0:
            h = _heap()
            if h is not None and h > self.heap_max:
                self.heap_max = h
        return 1

    def close(self):
        pass


def _heap():
    """Live heap after a collection (MicroPython), else None."""
    if not portable.IS_MICROPYTHON:
        return None
    import gc

    gc.collect()
    return gc.mem_alloc()


def _plans():
    base = portable.project_root() + "/firmware/plans"
    try:
        os.stat(base)
    except OSError:  # a board: the deployed plans (optoread deploy puts them at /plans)
        base = "/plans"
    out = {}
    for name in os.listdir(base):
        p = reader.load_plan(base + "/" + name)
        out[p["name"]] = p
    return out


_KINDS = (("random", None), ("hdlc-ish", b"\x7e\xa0\x19\x03\x21\x13\x00\xe6\xe7"),
          ("iec-ish", b"/ISK5ME12(0.0)*\r\n\x02!\x03"))


def test_babbling_line_ends_the_reading_within_its_deadline():
    env = Env(kinds()[0])
    try:
        s = env.store(reserve=0)
        s.mount()
        plans = _plans()
        for plan in ("is15959", "readout", "energy"):
            for kind, pattern in _KINDS:
                t = Babble(pattern=pattern, seed=len(plan) + len(kind))
                summary = reader.Reader(t, s, plans=plans, clock=lambda: 1700000000).read(plan)
                where = (kind, plan, t.t, summary.error)
                assert not summary.complete and summary.error, where
                assert len(t.deadlines) == 1 and t.deadline is None, where  # set, then cleared
                assert t.t <= t.deadlines[0] + 10000, where  # the release's seconds past it at most
                if t.heap0 is not None:
                    assert t.heap_max - t.heap0 < HEAP_GROWTH, (where, t.heap_max - t.heap0)
    finally:
        env.close()


def test_the_deadline_comes_from_the_plan_or_the_config():
    """360 s to find the meter and for a readout, 3 s a register, 30 s and rows/6 per profile."""
    env = Env(kinds()[0])
    s = env.store(reserve=0)
    s.mount()
    plans = {"p": {"name": "p", "steps": [{"registers": ["1.8.0", "2.8.0"]},
                                        {"profile": "1.0.99.1.0.255", "days": 2},
                                        {"profile": "1.0.99.2.0.255", "entries": 600}]}}
    for deadline_s, want in ((None, 360 + 6 + 30 + 384 // 6 + 30 + 100), (45, 45)):
        t = Babble(pattern=b"\x00")  # never an answer: the reading ends by itself well before
        reader.Reader(t, s, plans=plans, clock=lambda: 1700000000, deadline_s=deadline_s).read("p")
        assert t.deadlines == [want * 1000], (t.deadlines, want)
    env.close()
