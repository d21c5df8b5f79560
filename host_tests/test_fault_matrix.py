"""Fault matrix against the simulators (issue #7): every fault in every phase of a reading.

CPython only, in process, virtual clocks (the whole matrix takes a few seconds). Each cell
runs ``optoread.reader.Reader`` through ``optoread_tools.faultline.FaultLine`` into a real
``optoread.store.Store`` in a temp dir and checks: complete with the simulator's values and
rows, OR committed incomplete with an error naming the cause; the simulated link closed;
store and summary agree. A cell that reveals a firmware bug is listed in KNOWN with the bug
(xfail(strict=True)), so it stays visible and flips to a failure once fixed.
"""

import pytest
from optoread_tools import faultline as F
from optoread_tools import sim_dlms

# Both firmware bugs this matrix first found are fixed (the HDLC client polled a lost answer
# forever; the reader let errors before store.begin escape). KNOWN lists cells still failing.
KNOWN = {}
KNOWN_SPECIAL = {}


def _cells():
    out = []
    for mode in ("once", "always"):
        for fault in F.ROWS_OF_FAULTS:
            for phase in F.PHASES:
                reason = KNOWN.get((fault, phase, mode))
                marks = (pytest.mark.xfail(strict=True, reason=reason),) if reason else ()
                out.append(pytest.param(fault, phase, mode, marks=marks,
                                        id="%s-%s-%s" % (fault, phase, mode)))
    return out


@pytest.mark.parametrize("fault,phase,mode", _cells())
def test_cell(fault, phase, mode):
    o = F.run_cell(fault, phase, 1 if mode == "once" else None)
    assert o.passed, o.short()


def _special():
    out = []
    for name in F.SPECIAL:
        reason = KNOWN_SPECIAL.get(name)
        marks = (pytest.mark.xfail(strict=True, reason=reason),) if reason else ()
        out.append(pytest.param(name, marks=marks, id=name.replace(" ", "_")))
    return out


@pytest.mark.parametrize("name", _special())
def test_special_cell(name):
    o = F.run_special(name)
    assert o.passed, o.short()


# -- the wrapper itself ----------------------------------------------------------------------------


def test_phases_are_recognised_from_the_traffic():
    server = sim_dlms.DlmsServer(sim_dlms.MeterModel(rows=F.ROWS))
    t = F.FaultLine(sim_dlms.ServerTransport(server))
    st = F._new_store()
    o = F.Outcome(None, None)
    summary = F._read(o, F._reader(t, st), F.PLAN["name"])
    F.check(o, st, summary, server.model, server)
    assert o.status == "ok", o.short()
    seen = [p for i, p in enumerate(t.phases) if i == 0 or t.phases[i - 1] != p]
    assert seen == ["signon", "snrm", "aarq", "get", "block", "release"]


def test_classify_frames():
    assert F.classify(b"/?!\r\n") == "signon"
    assert F.classify(b"\x06050\r\n") == "signon"
    assert F.classify(b"junk", "get") == "get"


class _Echo:
    """A transport that answers every write with b'ABCDEFGHIJKLMNOP' at once."""

    def __init__(self):
        self.now = 0
        self.q = bytearray()

    def write(self, d):
        self.q += b"ABCDEFGHIJKLMNOP"

    def readinto(self, buf, timeout_ms):
        if not self.q:
            self.now += timeout_ms
            return 0
        n = min(len(buf), len(self.q))
        buf[:n] = self.q[:n]
        del self.q[:n]
        return n

    def sleep_ms(self, ms):
        self.now += ms

    def ticks_ms(self):
        return self.now


def _answer(fault):
    t = F.FaultLine(_Echo(), fault, "signon")
    t.write(b"/?!\r\n")
    buf = bytearray(64)
    got = bytearray()
    while True:
        n = t.readinto(buf, 3000)
        if not n:
            return bytes(got), t.inner.now
        got += buf[:n]


def test_byte_faults_do_what_they_say():
    good = b"ABCDEFGHIJKLMNOP"
    assert _answer(None) == (good, 3000)
    assert _answer("echo")[0] == b"/?!\r\n" + good
    assert _answer("drop")[0] == good[:9] + good[10:]
    assert _answer("duplicate")[0] == good[:10] + good[9:]
    got = _answer("bit_error")[0]
    assert len(got) == 16 and got != good and got[9] == good[9] ^ 0x04
    assert _answer("truncate")[0] == good[:9]
    assert _answer("missing")[0] == b""
    got, now = _answer("delay")
    assert got == good and now == 2500 + 3000
    got, now = _answer("late")
    assert got == b"" and now == 3000  # not within this read; it comes later


def test_print_table():
    results = F.run_matrix()
    text = F.table(results)
    print()
    print(text)
    assert "| fault | mode |" in text
    assert len(results) == 2 * len(F.ROWS_OF_FAULTS) * len(F.PHASES) + len(F.SPECIAL)
