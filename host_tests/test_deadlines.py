"""A line that is never silent must not hold a reading (issue 17, finding 4).

The read time-out restarts on every byte (the standards' inter-character time), so a line that
carries noise, or a meter that babbles, kept a reading waiting forever. The transport here sends
200 random bytes a second on a virtual clock; every reading must end, committed incomplete with
an error that names the cause, well within the plan's deadline.
"""

import os
import random

import pytest
from optoread.device import reader
from optoread.store import store

PLANS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "firmware", "plans")
HOUR_MS = 3600 * 1000
DAY_MS = 24 * HOUR_MS


class Hang(Exception):
    """The virtual clock ran for hours: the reading would never have ended."""


class Babble:
    """A transport whose line carries ``rate`` random bytes a second, whatever is sent."""

    def __init__(self, rate=200, seed=1, give_up_ms=4 * HOUR_MS, pattern=None):
        self.t = 0
        self.rate = rate
        self.rnd = random.Random(seed)
        self.give_up_ms = give_up_ms
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
        if self.pattern is not None:
            buf[0] = self.pattern[self.rnd.randrange(len(self.pattern))]
        else:
            buf[0] = self.rnd.randrange(256)
        return 1

    def close(self):
        pass


def _plans():
    out = {}
    for name in os.listdir(PLANS):
        p = reader.load_plan(os.path.join(PLANS, name))
        out[p["name"]] = p
    return out


@pytest.mark.parametrize("plan", ["is15959", "readout", "energy"])
@pytest.mark.parametrize("kind", ["random", "hdlc-ish", "iec-ish"])
def test_babbling_line_ends_the_reading_within_its_deadline(tmp_path, plan, kind):
    pattern = {"random": None, "hdlc-ish": b"\x7e\xa0\x19\x03\x21\x13\x00\xe6\xe7",
               "iec-ish": b"/ISK5ME12(0.0)*\r\n\x02!\x03"}[kind]
    t = Babble(pattern=pattern, seed=len(plan) + len(kind))
    os.makedirs(str(tmp_path / "store"))
    s = store.Store(root=str(tmp_path / "store"))
    s.mount()
    r = reader.Reader(t, s, plans=_plans(), clock=lambda: 1700000000)
    summary = r.read(plan)
    assert not summary.complete
    assert len(t.deadlines) == 1 and t.deadline is None  # set for the reading, cleared after it
    assert t.t <= t.deadlines[0] + 10000, (t.t, t.deadlines)  # the release's seconds past it at most
    assert summary.error, summary


def test_the_deadline_comes_from_the_plan_or_the_config(tmp_path):
    """360 s to find the meter and for a readout, 3 s a register, 30 s and rows/6 per profile."""
    os.makedirs(str(tmp_path / "store"))
    s = store.Store(root=str(tmp_path / "store"))
    s.mount()
    plans = {"p": {"name": "p", "steps": [{"registers": ["1.8.0", "2.8.0"]},
                                        {"profile": "1.0.99.1.0.255", "days": 2},
                                        {"profile": "1.0.99.2.0.255", "entries": 600}]}}
    for deadline_s, want in ((None, 360 + 6 + 30 + 384 // 6 + 30 + 100), (45, 45)):
        t = Babble(pattern=b"\x00")  # never an answer: the reading ends by itself well before
        reader.Reader(t, s, plans=plans, clock=lambda: 1700000000, deadline_s=deadline_s).read("p")
        assert t.deadlines == [want * 1000]
