"""Running a time-driven simulated meter in real time: what the pty and TCP carriers share.

A time-driven meter (:class:`sim_iec21.Iec21Meter`, :class:`sim_dlms.ModeEMeter`,
:class:`sim_dlms.HdlcMeter`) never reads a clock and never does I/O: its carrier tells it
when each byte arrived (``on_rx(t_ms, b, clean)``) and polls it for what it sends
(``next_event_time``, ``poll``). A carrier that runs it in real time has to:

* hand the reader's bytes over one character time apart, each stamped with the end of its
  last bit, because the meter judges the reader's timing from those stamps (reaction and
  turnaround times, "not listening while talking");
* interleave those bytes in time order with the meter's own events (replies, line switches,
  timeouts) and with its own queue of bytes for the reader, if it has one;
* follow the meter's line settings: while they say 7 data bits, the 8th bit of a clean byte
  is parity (or nothing), not data, so it is cleared before the meter sees the byte.

:class:`MeterRunner` is that engine; :class:`ptyline.PtyRunner` (paced at the baud, speed
checked, garbling) and :class:`tcpline.TcpRunner` (no baud: every byte clean, the meter's
bytes written at once) add how bytes get in and out and what "clean" means there.
"""

import time
from collections import deque

from .sim_iec21 import garble_byte


class MeterRunner:
    """The carrier-independent part of running ``meter`` in real time.

    ``trace`` lists (t_ms, what, bytes, tag) for inspection; ``stats`` counts bytes each way
    (and garbled ones). Subclasses provide :meth:`_meter_sends` (what happens to the meter's
    bytes) and may override :meth:`_out_byte` / :meth:`_in_clean` (what a mismatch of line
    settings does) and :meth:`now` (the meter's clock).
    """

    def __init__(self, meter, poll_ms=20):
        self.meter = meter
        self.poll_ms = poll_ms
        self.trace = []
        self.stats = {"to_meter": 0, "to_reader": 0, "garbled_to_meter": 0, "garbled_to_reader": 0}
        self._t0 = None
        self._m_line = tuple(meter.line)
        self._out = deque()  # (due_ms, byte, tag): the meter's bytes, not yet handed to the reader
        self._out_free = 0.0
        self._in = deque()  # (due_ms, byte, tag): the reader's bytes, not yet handed to the meter
        self._in_free = 0.0

    def now(self):
        """Milliseconds since the runner started (the meter's clock)."""
        return (time.monotonic() - self._t0) * 1000.0

    @property
    def meter_line(self):
        """The meter's current (baud, bits, parity), as the runner has seen it switch."""
        return self._m_line

    # ---------------------------------------------------------------- hooks

    def _meter_sends(self, ts, data, pending):
        """The meter starts sending ``data`` at ``ts``: queue it, or add it to ``pending``."""
        raise NotImplementedError

    def _out_byte(self, b, tag):
        """A queued meter byte is due: what the reader gets (e.g. garbled on a speed mismatch)."""
        return b

    def _in_clean(self, tag):
        """Does a queued reader byte reach the meter clean?"""
        return True

    # ---------------------------------------------------------------- engine

    def _queue_in(self, t, data, tag, ct):
        """The reader's ``data`` arrived at ``t``: each byte ends one character time ``ct`` after
        the previous one (a burst from a pty or a socket was sent over that long)."""
        at = max(t, self._in_free)
        for b in data:
            at += ct
            self._in.append((at, b, tag))
        self._in_free = at

    def _next_time(self):
        times = [self.meter.next_event_time()]
        if self._out:
            times.append(self._out[0][0])
        if self._in:
            times.append(self._in[0][0])
        times = [x for x in times if x is not None]
        return min(times) if times else None

    def _process_due(self, t):
        """Run the meter's events and both byte queues up to ``t`` in time order; returns the
        bytes for the reader that became due (a bytearray, possibly empty)."""
        meter = self.meter
        pending = bytearray()
        while True:
            tm = meter.next_event_time()
            to = self._out[0][0] if self._out else None
            ti = self._in[0][0] if self._in else None
            cands = [x for x in (tm, to, ti) if x is not None and x <= t]
            if not cands:
                break
            te = min(cands)
            if tm is not None and tm == te:
                for kind, ts, arg in meter.poll(te):
                    if kind == "line":
                        self._m_line = tuple(arg)
                        self.trace.append((ts, "M:line", b"", self._m_line))
                    else:
                        self._meter_sends(ts, arg, pending)
            elif to is not None and to == te:
                _, b, tag = self._out.popleft()
                pending.append(self._out_byte(b, tag))
                self.stats["to_reader"] += 1
            else:
                _, b, tag = self._in.popleft()
                self._to_meter(te, b, self._in_clean(tag))
        return pending

    def _to_meter(self, t, b, clean):
        """Hand one reader byte to the meter; 7 data bits: the 8th bit is not data."""
        if clean:
            value = b & 0x7F if self._m_line[1] == 7 else b
        else:
            value = garble_byte(b)
            self.stats["garbled_to_meter"] += 1
        self.stats["to_meter"] += 1
        self.meter.on_rx(t, value, clean)
