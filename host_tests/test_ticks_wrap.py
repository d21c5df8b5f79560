"""Millisecond ticks wrap (at 2**30 on RP2040 and ESP32, 2**62 on the 64-bit unix port): every
time-out and wire-time wait must hold across the wrap, i.e. use ticks_diff/ticks_add, never a
plain subtraction or comparison of ticks.

A fake clock starts a few milliseconds before the wrap of the ticks this interpreter's
``compat.ticks_diff`` uses and wraps like the real one; the probe (on a fake ``machine.UART``)
and the driver run their time-outs across it.
"""

import test_probe
from optoread.compat import ticks_add, ticks_diff
from optoread.driver import Driver

PORTABLE = True

PERIOD = ticks_add(0, -1) + 1  # 2**30 on a board and CPython's emulation, 2**62 on 64-bit unix


class WrapClock:
    """Ticks that wrap at PERIOD; ``elapsed`` counts the milliseconds slept."""

    def __init__(self, before_wrap):
        self.now = PERIOD - before_wrap
        self.elapsed = 0

    def ticks_ms(self):
        return self.now

    def sleep_ms(self, ms):
        self.now = ticks_add(self.now, ms)
        self.elapsed += ms
        # a plain subtraction of ticks waits for ever after the wrap: fail instead of hanging
        assert self.elapsed < 60000, "still waiting a minute after the wrap"


class WrapUART:
    """A UART whose bytes arrive at given ticks (compared with ticks_diff, as the clock wraps)."""

    INV_TX = 1
    INV_RX = 2
    clock = None

    def __init__(self, uart_id, **kw):
        self.pending = []  # (tick, bytes)
        self.rx = bytearray()

    def init(self, **kw):
        pass

    def deinit(self):
        pass

    def write(self, data):
        return len(data)

    def deliver(self, at, data):
        self.pending.append((at, bytes(data)))

    def any(self):
        keep = []
        for at, data in self.pending:
            if ticks_diff(self.clock.now, at) >= 0:
                self.rx += data
            else:
                keep.append((at, data))
        self.pending = keep
        return len(self.rx)

    def readinto(self, buf, n=None):
        n = min(len(buf) if n is None else n, len(self.rx))
        if not n:
            return None
        buf[:n] = self.rx[:n]
        self.rx = self.rx[n:]
        return n


def _probe(before_wrap):
    clock = WrapClock(before_wrap)
    WrapUART.clock = clock
    made = []

    def uart(*args, **kw):
        u = WrapUART(*args, **kw)
        made.append(u)
        return u

    uart.INV_TX = 1
    uart.INV_RX = 2
    p = test_probe._with_fake_machine(uart, test_probe.probe.Probe, test_probe.ESP32, clock=clock)
    return p, clock, made[-1]


def test_ticks_helpers_wrap():
    for start in (PERIOD - 1, PERIOD - 7, 0, PERIOD // 2 - 3):
        later = ticks_add(start, 10)
        assert 0 <= later < PERIOD
        assert ticks_diff(later, start) == 10 and ticks_diff(start, later) == -10
    assert ticks_add(PERIOD - 5, 10) == 5


def test_probe_timeout_across_the_wrap():
    p, clock, _ = _probe(20)
    assert p.readinto(bytearray(8), 50) == 0
    assert 50 <= clock.elapsed <= 51, clock.elapsed
    assert clock.now < PERIOD // 2  # the clock did wrap


def test_probe_reads_bytes_arriving_after_the_wrap():
    p, clock, u = _probe(5)
    u.deliver(ticks_add(clock.now, 30), b"/ISK5")
    buf = bytearray(8)
    assert p.readinto(buf, 1000) == 5 and bytes(buf[:5]) == b"/ISK5"
    assert 30 <= clock.elapsed <= 31, clock.elapsed


def test_probe_drain_waits_the_wire_time_across_the_wrap():
    p, clock, _ = _probe(100)
    p.write(b"\x06050\r\n")  # 6 chars x 10 bits at 300 Bd = 200 ms
    p.drain()
    assert 200 <= clock.elapsed <= 202, clock.elapsed
    p.write(b"x")  # the line is idle again: one character time from now, not from before the wrap
    before = clock.elapsed
    p.drain()
    assert 34 <= clock.elapsed - before <= 36, clock.elapsed - before


class _Silent:
    """A transport that never receives: the driver's silence time-out must end the read."""

    def __init__(self, clock):
        self.clock = clock

    def ticks_ms(self):
        return self.clock.now

    def readinto(self, buf, timeout_ms):
        self.clock.sleep_ms(max(1, min(timeout_ms, 7)))  # returns early, in small steps
        return 0


class _Receiver:
    def feed(self, mv):
        return False


def test_driver_silence_and_flush_time_outs_across_the_wrap():
    clock = WrapClock(30)
    d = Driver(_Silent(clock), echo=False)
    assert d._read(_Receiver(), 100) is False
    assert 100 <= clock.elapsed <= 107, clock.elapsed
    clock = WrapClock(10)
    t = _Silent(clock)
    t.readinto = lambda buf, ms: (clock.sleep_ms(ms), 1)[1]  # never quiet: the limit must end it
    d = Driver(t, echo=False)
    d._flush(20, limit_ms=100)
    assert 100 <= clock.elapsed <= 140, clock.elapsed
