"""An in-process serial line between a reader and a simulated meter, on a virtual clock.

``VirtualLine(meter).reader`` is a transport (``write``, ``drain``, ``set_line``,
``readinto``, ``sleep_ms``, ``ticks_ms``, ``close``) for the firmware's driver. Time only
moves when the reader waits (``drain``, ``readinto``, ``sleep_ms``), so a 300-baud readout
of 10 KB takes milliseconds of real time, and every run is identical.

Wire model:
* each character occupies ``char_ms(baud, bits, parity)`` (7E1 and 8N1: 10 bits); bytes
  written queue behind those still on the wire and arrive when their last bit is sent;
* each character is sent with the settings its sender has *when it starts*; ``set_line``
  while bytes are still queued changes the settings of those not yet started, and cuts the
  one in flight (it arrives garbled): the classic "switched before the ACK left" failure;
* ``set_line`` is a UART re-initialisation: the meter gets ``on_glitch``;
* a byte arrives clean only if the receiver's (baud, bits, parity) equal the sender's
  (:func:`sim_iec21.deliver` says what a mismatch turns it into);
* with ``meter.echo`` the probe returns each reader byte to the reader as it is sent.
"""

from collections import deque

from optoread.errors import TransportError

from .sim_iec21 import char_ms, deliver, garble_byte

_INF = float("inf")


class VirtualLine:
    """Carries bytes between ``reader`` (a transport) and ``meter`` (an Iec21Meter-like model).

    ``trace`` lists ``(t_ms, what, bytes, settings)``: what is "R>M" (reader write), "M>R"
    (meter send), "R:set_line", "M:line". ``stats`` counts garbled bytes each way, echoes
    and glitches. ``now`` is the virtual time in ms (float).
    """

    def __init__(self, meter, reader_line=(300, 7, "E"), trace=True):
        self.meter = meter
        self.now = 0.0
        self.trace = []
        self._tracing = trace
        self.stats = {"to_meter": 0, "to_reader": 0, "garbled_to_meter": 0, "garbled_to_reader": 0,
                      "echoed": 0, "glitches": 0}
        self._r_line = tuple(reader_line)
        self._r_pending = deque()  # reader bytes not yet started
        self._r_cur = None  # [byte, start, end, settings, cut]
        self._m_line = tuple(meter.line)
        self._m_out = deque()  # (arrival, byte, settings) of meter bytes on the wire
        self._m_free = 0.0  # when the meter's side of the wire is free again
        self._rx = bytearray()  # arrived at the reader, not yet read
        self.reader = VirtualTransport(self)

    # ------------------------------------------------------------------ inspection

    @property
    def reader_line(self):
        """The reader's current (baud, bits, parity)."""
        return self._r_line

    @property
    def meter_line(self):
        """The meter's current (baud, bits, parity), as the line has seen it."""
        return self._m_line

    def reader_tx_busy(self):
        """True while reader bytes are still queued or on the wire."""
        return self._r_cur is not None

    def run(self, ms):
        """Let ``ms`` of virtual time pass (the reader does nothing); arrivals stay buffered."""
        self._advance(self.now + ms)

    # ------------------------------------------------------------------ engine

    def _log(self, what, data, settings):
        if self._tracing:
            self.trace.append((self.now, what, bytes(data), settings))

    def _start_next(self, t):
        if self._r_pending:
            b = self._r_pending.popleft()
            s = self._r_line
            self._r_cur = [b, t, t + char_ms(*s), s, False]
        else:
            self._r_cur = None

    def _advance(self, until, want_data=False):
        """Process events in time order up to ``until``; with ``want_data`` stop as soon as
        the reader has input (after finishing everything at that same instant)."""
        meter = self.meter
        while True:
            tm = meter.next_event_time()
            if tm is None:
                tm = _INF
            tr = self._r_cur[2] if self._r_cur is not None else _INF
            ta = self._m_out[0][0] if self._m_out else _INF
            t = min(tm, tr, ta)
            if t > until or (want_data and self._rx and t > self.now):
                break
            if t > self.now:
                self.now = t
            if tm == t:
                for out in meter.poll(t):
                    self._meter_output(out)
            elif tr == t:
                self._reader_byte_done()
            else:
                at, b, s = self._m_out.popleft()
                value, clean = deliver(b, s, self._r_line)
                self._rx.append(value)
                self.stats["to_reader"] += 1
                if not clean:
                    self.stats["garbled_to_reader"] += 1
        if until > self.now and not (want_data and self._rx):
            self.now = until

    def _meter_output(self, out):
        kind, t, arg = out
        if kind == "line":
            self._m_line = tuple(arg)
            self._log("M:line", b"", self._m_line)
            return
        s = self._m_line
        ct = char_ms(*s)
        at = max(t, self._m_free)
        q = self._m_out
        for b in arg:
            at += ct
            q.append((at, b, s))
        self._m_free = at
        self._log("M>R", arg, s)

    def _reader_byte_done(self):
        b, _, end, s, cut = self._r_cur
        if cut:
            value, clean = garble_byte(b), False
        else:
            value, clean = deliver(b, s, self._m_line)
        self.stats["to_meter"] += 1
        if not clean:
            self.stats["garbled_to_meter"] += 1
        if self.meter.echo:
            # The probe's receiver sees the reader's own transmitter, at the reader's settings.
            self._rx.append(b & 0x7F if s[1] == 7 else b)
            self.stats["echoed"] += 1
        self.meter.on_rx(end, value, clean)
        self._start_next(end)

    # ------------------------------------------------------------------ reader side

    def _write(self, data):
        self._log("R>M", data, self._r_line)
        self._r_pending.extend(data)
        if self._r_cur is None:
            self._start_next(self.now)

    def _drain(self):
        while self._r_cur is not None:
            ct = char_ms(*self._r_line)
            self._advance(self._r_cur[2] + ct * len(self._r_pending))

    def _set_line(self, line):
        cur = self._r_cur
        if cur is not None:
            if cur[1] < self.now:
                cur[4] = True  # re-initialising the UART cuts the character in flight
            else:
                cur[3] = line  # not started yet: goes out with the new settings
                cur[2] = cur[1] + char_ms(*line)
        self._r_line = line
        self.stats["glitches"] += 1
        self._log("R:set_line", b"", line)
        self.meter.on_glitch(self.now)

    def _readinto(self, buf, timeout_ms):
        if not self._rx:
            self._advance(self.now + max(0, timeout_ms), want_data=True)
        n = min(len(buf), len(self._rx))
        if n:
            buf[:n] = self._rx[:n]
            del self._rx[:n]
        return n


class VirtualTransport:
    """The reader's end of a :class:`VirtualLine`: the transport interface of the driver."""

    def __init__(self, line):
        self._line = line
        self.closed = False

    def _check(self):
        if self.closed:
            raise TransportError("virtual line is closed", field="transport")

    @property
    def settings(self):
        """(baud, bits, parity) the reader uses now."""
        return self._line.reader_line

    def write(self, data):
        """Queue bytes behind anything still being sent, at the current settings."""
        self._check()
        self._line._write(bytes(data))

    def drain(self):
        """Advance the clock until every queued byte has left the wire."""
        self._check()
        self._line._drain()

    def set_line(self, baud, bits, parity, stop=1):
        """Re-initialise the reader's UART (applies to bytes not yet started; glitches the line)."""
        self._check()
        if bits not in (7, 8) or parity not in ("N", "E", "O") or stop not in (1, 2) or baud <= 0:
            raise TransportError("unsupported line settings %r" % ((baud, bits, parity, stop),),
                                 field="line")
        self._line._set_line((baud, bits, parity))

    def readinto(self, buf, timeout_ms):
        """Wait up to ``timeout_ms`` (virtual) for input; returns the number of bytes put in buf."""
        self._check()
        return self._line._readinto(buf, timeout_ms)

    def sleep_ms(self, ms):
        """Let ``ms`` of virtual time pass."""
        self._check()
        if ms > 0:
            self._line._advance(self._line.now + ms)

    def ticks_ms(self):
        """The virtual clock in whole milliseconds."""
        return int(self._line.now)

    def close(self):
        self.closed = True
