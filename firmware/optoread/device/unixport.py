"""Transports for the MicroPython unix port (and CPython): a tty/pty device or a TCP socket.

Board glue, not protocol: this is where the ``unix`` board's probe lives (a pty
to the simulated meter, or a USB serial adapter). Implements the transport
interface of ``driver.py``.
"""

import select
import socket

from optoread.compat import IS_MICROPYTHON, const, sleep_ms, ticks_add, ticks_diff, ticks_ms
from optoread.errors import TransportError

try:
    import termios
except ImportError:  # a board: no termios (the probe uses machine.UART instead)
    termios = None

# termios speed codes (the unix port's termios module has no B* constants). Constants with
# const(): a private module-level name is otherwise an interned name for good (test_ram).
_SPEEDS = {300: 7, 600: 8, 1200: 9, 2400: 11, 4800: 12, 9600: 13, 19200: 14, 38400: 15,
           57600: 0o10001, 115200: 0o10002}
_CSIZE = const(0o60)
_CS7 = const(0o40)
_CS8 = const(0o60)
_PARENB = const(0o400)
_PARODD = const(0o1000)
_VMIN = const(6)
_VTIME = const(5)
_TCSANOW = const(0)


class TtyTransport:
    """A serial device or pty opened raw. Line settings that a pty refuses (7E1) are emulated:
    the port stays 8N1 and bit 7 is stripped from input when 7 data bits were asked for."""

    def __init__(self, path, baud=300, bits=7, parity="E"):
        try:
            self._f = open(path, "r+b", buffering=0)
        except OSError as e:
            raise TransportError("cannot open %s: %s" % (path, e), field="port")
        self._fd = self._f.fileno()
        self._poll = select.poll()
        self._poll.register(self._f, select.POLLIN)
        self.path = path
        self.fixed_8n1 = False
        self._strip = False
        self._baud = baud
        self._tx_done = ticks_ms()
        if termios is not None:
            if hasattr(termios, "setraw"):
                termios.setraw(self._fd)
            else:  # CPython keeps setraw in the tty module
                import tty  # pyright: ignore[reportMissingImports]

                tty.setraw(self._fd)
        self.set_line(baud, bits, parity)

    def set_line(self, baud, bits=8, parity="N", stop=1):
        self._baud = baud
        if termios is None:
            return
        speed = _SPEEDS.get(baud)
        if speed is None:
            raise TransportError("unsupported baud rate %s" % baud, field="baud")
        a = termios.tcgetattr(self._fd)
        a[4] = a[5] = speed
        cc = a[6]
        cc[_VMIN] = 0 if isinstance(cc[_VMIN], int) else b"\x00"
        cc[_VTIME] = 0 if isinstance(cc[_VTIME], int) else b"\x00"
        cflag = a[2]
        if not self.fixed_8n1:
            cflag = (cflag & ~(_CSIZE | _PARENB | _PARODD)) | (_CS7 if bits == 7 else _CS8)
            if parity in ("E", "O"):
                cflag |= _PARENB | (_PARODD if parity == "O" else 0)
        a[2] = cflag
        try:
            termios.tcsetattr(self._fd, _TCSANOW, a)
        except OSError:
            # A pty keeps 8N1 and refuses bit/parity changes: set the speed alone from now on.
            self.fixed_8n1 = True
            a[2] = (a[2] & ~(_CSIZE | _PARENB | _PARODD)) | _CS8
            termios.tcsetattr(self._fd, _TCSANOW, a)
        if self.fixed_8n1 or not IS_MICROPYTHON:
            self._check_emulation(bits)

    def _check_emulation(self, bits):
        a = termios.tcgetattr(self._fd) if termios is not None else None
        size = (a[2] & _CSIZE) if a is not None else _CS8
        self._strip = bits == 7 and size == _CS8

    def write(self, data):
        mv = memoryview(data)
        while len(mv):
            n = self._f.write(mv)
            if n is None:
                n = 0
            mv = mv[n:]
        # When the last byte leaves the wire at the current baud (10 bits per character).
        now = ticks_ms()
        if ticks_diff(self._tx_done, now) < 0:
            self._tx_done = now
        self._tx_done = ticks_add(self._tx_done, (len(data) * 10000 + self._baud - 1) // self._baud)

    def drain(self):
        """Wait until the bytes written have left the wire (tcdrain where the OS has it, and at
        least their wire time: a pty's drain returns at once, and a line change must not
        overtake the bytes)."""
        if termios is not None and hasattr(termios, "tcdrain"):
            try:
                termios.tcdrain(self._fd)  # pyright: ignore[reportAttributeAccessIssue]
            except OSError:
                pass
        left = ticks_diff(self._tx_done, ticks_ms())
        if left > 0:
            sleep_ms(left)

    def readinto(self, buf, timeout_ms):
        if not self._poll.poll(max(0, int(timeout_ms))):
            return 0
        n = self._f.readinto(buf) or 0
        if self._strip:
            for i in range(n):
                buf[i] &= 0x7F
        return n

    sleep_ms = staticmethod(sleep_ms)  # compat's: real time
    ticks_ms = staticmethod(ticks_ms)

    def close(self):
        self._f.close()


class TcpTransport:
    """HDLC or IEC bytes over TCP (simulator, HDLC-over-TCP gateways). Line settings are ignored."""

    def __init__(self, host, port):
        try:
            ai = socket.getaddrinfo(host, port)[0][-1]
            self._s = socket.socket()
            self._s.connect(ai)
        except OSError as e:
            raise TransportError("cannot connect to %s:%s: %s" % (host, port, e), field="tcp")
        # Non-blocking after connect: MicroPython's readinto on a blocking socket waits until the
        # whole buffer is full; poll() below does the waiting instead.
        self._s.setblocking(False)
        self._poll = select.poll()
        self._poll.register(self._s, select.POLLIN)

    def set_line(self, baud, bits=8, parity="N", stop=1):
        pass

    def write(self, data):
        mv = memoryview(data)
        while len(mv):
            try:
                n = self._s.send(mv)
            except OSError as e:
                if e.args and e.args[0] == 11:  # EAGAIN: the socket buffer is full, wait
                    select.select([], [self._s], [], 1) if hasattr(select, "select") else None
                    continue
                raise TransportError("send failed: %s" % e, field="tcp")
            mv = mv[n or 0:]

    def drain(self):
        pass

    def readinto(self, buf, timeout_ms):
        if not self._poll.poll(max(0, int(timeout_ms))):
            return 0
        try:
            if hasattr(self._s, "recv_into"):
                n = self._s.recv_into(buf)  # pyright: ignore[reportAttributeAccessIssue]
            else:
                n = self._s.readinto(buf)  # pyright: ignore[reportAttributeAccessIssue]
        except OSError as e:
            if e.args and e.args[0] == 11:  # EAGAIN: nothing after all
                return 0
            raise TransportError("receive failed: %s" % e, field="tcp")
        if n is None:
            return 0
        if not n:
            raise TransportError("connection closed by the peer", field="tcp")
        return n

    sleep_ms = staticmethod(sleep_ms)  # compat's: real time
    ticks_ms = staticmethod(ticks_ms)

    def close(self):
        self._s.close()


def open_spec(spec, baud=300, bits=7, parity="E"):
    """The transport for a unix-board probe spec: ``pty:PATH``, ``tty:PATH`` or ``tcp:HOST:PORT``."""
    i = spec.find(":")
    kind = spec[:i] if i > 0 else ""
    rest = spec[i + 1:]
    if kind in ("pty", "tty") and rest:
        return TtyTransport(rest, baud, bits, parity)
    if kind == "tcp":
        j = rest.rfind(":")
        port = rest[j + 1:] if j > 0 else ""
        if port.isdigit() and 0 < int(port) < 65536:
            return TcpTransport(rest[:j], int(port))
    raise TransportError("probe must be pty:PATH, tty:PATH or tcp:HOST:PORT, not %r" % (spec,), field="probe")
