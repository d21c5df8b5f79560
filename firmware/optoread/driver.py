"""Runs a sans-IO procedure's actions on a transport: the only place protocol meets I/O.

A transport has ``write(data)``, ``drain()``, ``set_line(baud, bits, parity, stop)``,
``readinto(buf, timeout_ms) -> n`` (0 on timeout), ``sleep_ms(ms)`` and ``ticks_ms()``.
Board UART, pyserial, TCP, pty and the simulator's virtual line all provide it. Its optional
``deadline`` (a ``ticks_ms`` value, set per reading by ``device.reader``) bounds every read and
wait: past it they raise :class:`~optoread.errors.DeadlineError`.

Time limits (docs/fault-matrix.md has the numbers): a READ ends after ``silence_ms`` without a
byte (the standards' inter-character and reaction times), and, for an answer of bounded size
(everything but a streamed IEC 62056-21 readout, whose receiver says ``streaming``), after the
time ``_EXCHANGE_BYTES`` take on the line plus ``silence_ms`` and a second, however busy the line:
noise that never goes quiet cannot hold a reading.
"""

from optoread.compat import buffer, const, ticks_diff
from optoread.errors import DeadlineError

# Actions a procedure yields (IEC 62056-21 and the DLMS session; outcomes in iec62056_21's docstring).
SEND = const(1)  # (SEND, data)
DRAIN = const(2)  # (DRAIN,): wait until TX has left the wire
WAIT = const(3)  # (WAIT, ms)
SET_LINE = const(4)  # (SET_LINE, baud, bits, parity): drain, then switch the line
READ = const(5)  # (READ, receiver, silence_ms) -> bool
FLUSH_INPUT = const(6)  # (FLUSH_INPUT, quiet_ms)
PROGRESS = const(7)  # (PROGRESS, text)

_EXCHANGE_BYTES = const(2048)  # more than an HDLC frame (max_info 1024 + header) or an identification


class EchoFilter:
    """Drops the optical probe's echo of what we just sent from the start of the input.

    Bytes that match the echo so far are held back; on the first mismatch they are
    released to the receiver after all (the answer merely started like our request).
    """

    def __init__(self, capacity=64):
        self._echo = bytearray(capacity)
        self._mv = memoryview(self._echo)
        self._len = 0
        self._pos = 0
        self.dropped = 0

    def expect(self, data):
        n = len(data)
        if n > len(self._echo):
            n = 0  # longer than anything we echo-check (wake-up train): don't filter
        self._echo[:n] = data[:n]
        self._len = n
        self._pos = 0

    def feed(self, receiver, mv):
        """Pass ``mv`` to ``receiver.feed`` minus the echo; returns the receiver's verdict."""
        if self._len == 0:
            return receiver.feed(mv)
        echo = self._echo
        i = 0
        n = len(mv)
        while i < n and self._pos < self._len:
            if mv[i] != echo[self._pos]:
                held = self._pos
                self._len = self._pos = 0
                if held and receiver.feed(self._mv[:held]):
                    return True
                return receiver.feed(mv[i:])
            self._pos += 1
            i += 1
        if self._pos == self._len:
            self.dropped += self._len
            self._len = self._pos = 0
        return receiver.feed(mv[i:]) if i < n else False


class Driver:
    """Performs actions for one procedure at a time. ``progress(text)`` gets progress messages."""

    def __init__(self, transport, echo=True, progress=None, bufsize=256, buf=None, baud=300):
        self.transport = transport
        self.baud = baud  # the line's speed (SET_LINE changes it): how long an answer may take
        self.echo = EchoFilter() if echo else None
        self.progress = progress
        self._buf = buffer(bufsize, buf)  # buf: the caller's read buffer, if large enough
        self._mv = memoryview(self._buf)
        self.bytes_in = 0
        self.bytes_out = 0

    def run(self, proc):
        """Drive generator ``proc`` to completion and return its value (its errors propagate).

        A DeadlineError is raised inside ``proc`` at its READ or WAIT, so that a procedure can
        still end cleanly (a session's DISC after an RLRQ that got no answer)."""
        result = None
        late = None
        while True:
            try:
                action = proc.send(result) if late is None else proc.throw(late)
            except StopIteration as e:
                return e.args[0] if e.args else None
            late = None
            try:
                result = self._do(action)
            except DeadlineError as e:
                late = e
                result = None

    def _do(self, a):
        t = self.transport
        kind = a[0]
        if kind == SEND:
            t.write(a[1])
            self.bytes_out += len(a[1])
            if self.echo is not None:
                self.echo.expect(a[1])
        elif kind == READ:
            return self._read(a[1], a[2])
        elif kind == WAIT:
            t.sleep_ms(a[1])  # short (wake-up, settle, reaction times): the next READ checks the deadline
        elif kind == DRAIN:
            t.drain()
        elif kind == SET_LINE:
            t.drain()
            t.set_line(a[1], a[2], a[3], 1)
            self.baud = a[1]
        elif kind == FLUSH_INPUT:
            self._flush(a[1])
        elif kind == PROGRESS:
            if self.progress is not None:
                self.progress(a[1])
        return None

    def _read(self, receiver, silence_ms):
        t = self.transport
        mv = self._mv
        start = last = t.ticks_ms()
        # a bounded answer: its bytes at this baud (10 bits each), the silence and a second
        limit = None if getattr(receiver, "streaming", False) else \
            silence_ms + _EXCHANGE_BYTES * 10000 // (self.baud or 300) + 1000
        while True:
            now = t.ticks_ms()
            left = silence_ms - ticks_diff(now, last)
            if left <= 0:
                return False
            dl = getattr(t, "deadline", None)  # the reading's (device.reader); names here cost RAM
            if dl is not None:
                dl = ticks_diff(dl, now)
                if dl <= 0:
                    raise DeadlineError("the reading ran past its deadline (config deadline_s; "
                                        "docs/fault-matrix.md)")
                if dl < left:
                    left = dl
            if limit is not None:
                rest = limit - ticks_diff(now, start)
                if rest <= 0:
                    raise DeadlineError("no complete answer in %d ms although the line never went quiet "
                                        "(noise, or a second device on the line?)" % limit)
                if rest < left:
                    left = rest
            n = t.readinto(self._buf, left)
            if n:
                self.bytes_in += n
                last = t.ticks_ms()
                done = self.echo.feed(receiver, mv[:n]) if self.echo else receiver.feed(mv[:n])
                if done:
                    return True

    def _flush(self, quiet_ms, limit_ms=10000):
        t = self.transport
        start = t.ticks_ms()
        while t.readinto(self._buf, quiet_ms):
            if ticks_diff(t.ticks_ms(), start) > limit_ms:
                break  # a line that never goes quiet: the next READ's limits deal with it
        if self.echo is not None:
            self.echo.expect(b"")


def run(proc, transport, echo=True, progress=None):
    """Convenience: run one procedure on a transport with a fresh Driver."""
    return Driver(transport, echo, progress).run(proc)
