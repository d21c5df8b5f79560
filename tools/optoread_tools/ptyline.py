"""The simulated meter on a pseudo-terminal, in real time (Linux/POSIX, CPython only).

A reader (pyserial, the MicroPython unix port, a terminal program) opens the slave path and
talks to the meter as to a serial port. A pty carries every byte instantly and always as
8N1, but its master sees the speed the reader set on the slave (toolchain notes: "A
simulator on a pty can see the reader's baud"). So this runner:

* paces the meter's bytes: each is written when its last bit would have been sent at the
  meter's baud, and the reader's bytes are handed to the meter one character time apart;
* compares the reader's speed with the meter's for every byte: a mismatch delivers the
  byte garbled (as in the virtual line; data bits and parity are not visible on a pty);
* treats a change of the reader's speed as a UART re-initialisation (``meter.on_glitch``);
* survives the reader closing and reopening the slave (EIO on the master: wait, retry).
"""

import errno
import os
import select
import termios
import threading
import time
import tty

from .meterrun import MeterRunner
from .sim_iec21 import char_ms, garble_byte

_SPEEDS = {}
for _b in (50, 75, 110, 134, 150, 200, 300, 600, 1200, 1800, 2400, 4800, 9600, 19200, 38400,
           57600, 115200, 230400, 460800, 500000, 576000, 921600, 1000000):
    _c = getattr(termios, "B%d" % _b, None)
    if _c is not None:
        _SPEEDS[_c] = _b


class PtyRunner(MeterRunner):
    """Runs one meter on one pty. ``trace`` lists (t_ms, what, bytes, clean) for inspection;
    ``stats`` counts bytes and garbled bytes each way, glitches and EIO waits.

    The engine (time order of the meter's events and both byte queues, 7-bit input) is
    :class:`meterrun.MeterRunner`, shared with the TCP carrier (:mod:`tcpline`)."""

    def __init__(self, meter, poll_ms=20):
        MeterRunner.__init__(self, meter, poll_ms)
        self.stats.update(glitches=0, eio=0)
        self.slave_path = None
        self._reader_baud = None

    def _speed(self, fd):
        try:
            attrs = termios.tcgetattr(fd)
        except termios.error:
            return self._reader_baud
        return _SPEEDS.get(attrs[5], _SPEEDS.get(attrs[4]))

    def run(self, ready=None, stop_event=None):
        """Open the pty, call ``ready(slave_path)``, serve until ``stop_event`` is set."""
        master, slave = os.openpty()
        tty.setraw(master)
        tty.setraw(slave)
        self.slave_path = os.ttyname(slave)
        # Keep no slave fd of our own: a reader closing the port must be visible as EIO.
        os.close(slave)
        self._t0 = time.monotonic()
        self._reader_baud = self._speed(master)
        if ready is not None:
            ready(self.slave_path)
        try:
            while stop_event is None or not stop_event.is_set():
                self._step(master)
        finally:
            os.close(master)

    def _check_speed(self, master):
        sp = self._speed(master)
        if sp != self._reader_baud:
            # The reader re-initialised its port (a new speed): a glitch on the line.
            self._reader_baud = sp
            self.stats["glitches"] += 1
            self.trace.append((self.now(), "R:speed", b"", sp))
            self.meter.on_glitch(self.now())

    def _step(self, master):
        self._check_speed(master)
        t = self.now()
        pending = self._process_due(t)
        if pending:
            self.trace.append((t, "M>R", bytes(pending), self._reader_baud))
            self._write(master, bytes(pending))
        nxt = self._next_time()
        wait = self.poll_ms
        if nxt is not None:
            wait = max(0.0, min(wait, nxt - self.now()))
        try:
            r, _, _ = select.select([master], [], [], wait / 1000.0)
        except InterruptedError:
            return
        if not r:
            return
        try:
            data = os.read(master, 4096)
        except OSError as e:
            if e.errno != errno.EIO:
                raise
            # No reader has the slave open (not yet, or it closed it): wait and retry.
            self.stats["eio"] += 1
            time.sleep(self.poll_ms / 1000.0)
            return
        if not data:
            return
        # The reader may have set its speed just before writing: look again before tagging.
        self._check_speed(master)
        t = self.now()
        sp = self._reader_baud
        self.trace.append((t, "R>M", data, sp))
        if self.meter.echo:
            # The optical probe echoes the reader's bytes, cleanly (field notes: probe physics).
            self._write(master, data)
        self._queue_in(t, data, sp, char_ms(sp or 9600, 7, "E"))

    # The pty's line: the reader's bytes are tagged with its speed, the meter's with the
    # meter's baud; a byte reaches the other side clean only if the two agree.

    def _in_clean(self, baud):
        return baud == self._m_line[0]

    def _out_byte(self, b, baud):
        if baud == self._reader_baud:
            return b
        self.stats["garbled_to_reader"] += 1
        return garble_byte(b)

    def _meter_sends(self, ts, data, pending):
        self._queue_out(ts, data)

    def _queue_out(self, ts, data):
        # Paced: each byte is due when its last bit would have left the meter at its baud.
        baud = self._m_line[0]
        ct = char_ms(*self._m_line)
        at = max(ts, self._out_free)
        for b in data:
            at += ct
            self._out.append((at, b, baud))
        self._out_free = at

    def _write(self, master, data):
        try:
            os.write(master, data)
        except OSError as e:
            if e.errno not in (errno.EIO, errno.EAGAIN):
                raise
            # Nobody is listening (slave closed) or the buffer is full: the bytes are lost,
            # as they would be on a real line.


def run_pty(meter, ready=None, stop_event=None):
    """Serve ``meter`` on a new pty until ``stop_event`` (a threading.Event) is set; blocking.

    ``ready(slave_path)`` is called once the pty exists. Returns the PtyRunner (for its trace).
    """
    runner = PtyRunner(meter)
    runner.run(ready, stop_event)
    return runner


class PtyStopper:
    """Returned by :func:`start_pty_thread`: call it to stop; ``runner`` has trace and stats."""

    def __init__(self, event, thread, runner):
        self.event = event
        self.thread = thread
        self.runner = runner

    def __call__(self, timeout=5.0):
        self.event.set()
        self.thread.join(timeout)


def start_pty_thread(meter):
    """Run ``meter`` on a pty in a daemon thread. Returns ``(slave_path, stop)``."""
    runner = PtyRunner(meter)
    event = threading.Event()
    ready = threading.Event()
    thread = threading.Thread(target=runner.run, args=(lambda path: ready.set(), event),
                              name="optoread-pty-meter", daemon=True)
    thread.start()
    if not ready.wait(5.0):
        event.set()
        raise RuntimeError("pty meter did not start")
    return runner.slave_path, PtyStopper(event, thread, runner)
