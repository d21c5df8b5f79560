"""Laptop transports for the firmware's driver: pyserial (USB probe, pty) and TCP.

Interface (see firmware/optoread/driver.py): ``write(data)``, ``drain()``,
``set_line(baud, bits, parity, stop=1)``, ``readinto(buf, timeout_ms) -> n`` (0 on
timeout), ``sleep_ms(ms)``, ``ticks_ms()``, ``close()``. Errors are TransportError.
"""

import socket
import time

from optoread.compat import ticks_ms as _ticks_ms
from optoread.errors import TransportError

try:
    import termios
except ImportError:  # Windows: no read-back of the port's format
    termios = None

# What pyserial lets escape when a port refuses settings (termios.error is not an OSError).
_SETTING_ERRORS = (OSError, ValueError) + ((termios.error,) if termios is not None else ())


def parse_hostport(text, default_host=None):
    """``HOST:PORT`` (``[::1]:PORT`` for IPv6) -> (host, port); ValueError naming what is wrong.

    ``default_host`` lets ``:PORT`` stand for that host. The port is 1..65535.
    """
    host, sep, port = str(text).rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not sep:
        raise ValueError("expected HOST:PORT, not %r (no port)" % (text,))
    if not host:
        if default_host is None:
            raise ValueError("expected HOST:PORT, not %r (no host)" % (text,))
        host = default_host
    if not port.isdigit():
        raise ValueError("expected HOST:PORT, not %r (the port is not a number)" % (text,))
    if not 0 < int(port) < 65536:
        raise ValueError("the port must be 1..65535, not %s" % port)
    return host, int(port)


class SerialTransport:
    """A serial port through pyserial (a device path or any pyserial URL).

    Linux ptys (the simulator) and some adapters keep 8N1: 7E1 is accepted and silently
    ignored, and a change of only bytesize/parity fails with EINVAL (toolchain notes). So
    settings are applied in one reconfiguration, read back, and if 7 bits/parity did not
    take, the port is remembered as 8N1-only: it is then driven at 8N1 with the requested
    baud and 7-bit input is emulated by clearing bit 7 (nothing is added on output).
    ``emulated_7bit`` tells whether that happened.
    """

    def __init__(self, port, baud=300, bits=7, parity="E", stop=1):
        import serial

        self._serial = serial
        self.eight_only = False
        self._line = (baud, bits, parity, stop)
        try:
            ser = serial.serial_for_url(port, do_not_open=True, baudrate=baud, bytesize=bits,
                                        parity=parity, stopbits=stop, timeout=0)
        except (serial.SerialException, ValueError) as e:
            raise TransportError("cannot use port %s: %s" % (port, e), field="port") from None
        try:
            ser.open()
        except (serial.SerialException,) + _SETTING_ERRORS as e:
            # A pty already at this speed refuses a change of only bytesize/parity: open 8N1.
            if bits == 8 and parity == "N":
                raise TransportError("cannot open %s: %s" % (port, e), field="port") from None
            ser.bytesize, ser.parity, ser.stopbits = 8, "N", 1
            try:
                ser.open()
            except (serial.SerialException,) + _SETTING_ERRORS as e2:
                raise TransportError("cannot open %s: %s" % (port, e2), field="port") from None
            self.eight_only = True
        self._ser = ser
        self._timeout = 0.0
        self._check_format(bits, parity)

    @property
    def settings(self):
        """What the caller asked for: (baud, bits, parity, stop)."""
        return self._line

    @property
    def emulated_7bit(self):
        return self.eight_only and self._line[1] == 7

    def _fd(self):
        fileno = getattr(self._ser, "fileno", None)
        if fileno is None or termios is None:
            return None
        try:
            return fileno()
        except Exception:  # URL handlers (loop://, socket://) have no fd
            return None

    def _apply(self, baud, bits, parity, stop):
        ser = self._ser
        if self._fd() is not None and hasattr(ser, "_reconfigure_port"):
            # pyserial's apply_settings() reconfigures once per changed attribute: several
            # tcsetattr calls (several UART re-inits on real hardware, EINVAL on a pty).
            # Set them all, then reconfigure once.
            old = (ser._baudrate, ser._bytesize, ser._parity, ser._stopbits)
            ser._baudrate, ser._bytesize, ser._parity, ser._stopbits = baud, bits, parity, stop
            try:
                ser._reconfigure_port()
            except BaseException:
                ser._baudrate, ser._bytesize, ser._parity, ser._stopbits = old
                raise
        else:
            ser.apply_settings({"baudrate": baud, "bytesize": bits, "parity": parity,
                                "stopbits": stop})

    def _check_format(self, bits, parity):
        """Read the format back; if 7 bits or parity did not take, the port is 8N1-only."""
        fd = self._fd()
        if fd is None or termios is None:
            return
        try:
            cflag = termios.tcgetattr(fd)[2]
        except termios.error:
            return
        size_ok = (cflag & termios.CSIZE) == (termios.CS7 if bits == 7 else termios.CS8)
        par_ok = bool(cflag & termios.PARENB) == (parity != "N")
        if not (size_ok and par_ok):
            self.eight_only = True
        if self.eight_only:
            # Keep pyserial's idea of the format equal to the real one, or its next
            # reconfiguration (even for a timeout) asks for 7E1 again and fails.
            ser = self._ser
            ser._bytesize, ser._parity, ser._stopbits = 8, "N", 1

    def write(self, data):
        """Hand bytes to the OS driver (returns once they are queued)."""
        try:
            self._ser.write(data)
        except (self._serial.SerialException, OSError) as e:
            raise TransportError("write failed: %s" % e, field="write") from None
        # When the last byte leaves the wire at the current baud (10 bits per character).
        now = time.monotonic()
        baud = self.settings[0] if self.settings else 9600
        self._tx_done = max(now, getattr(self, "_tx_done", 0.0)) + len(data) * 10.0 / baud

    def drain(self):
        """Block until every byte has left the wire: tcdrain, and at least the bytes' wire time.

        A pty's tcdrain returns at once; waiting the wire time keeps a following line change
        from overtaking the bytes, as it cannot on a real UART.
        """
        try:
            self._ser.flush()
        except (self._serial.SerialException, OSError) as e:
            raise TransportError("drain failed: %s" % e, field="drain") from None
        left = getattr(self, "_tx_done", 0.0) - time.monotonic()
        if left > 0:
            time.sleep(left)

    def set_line(self, baud, bits, parity, stop=1):
        """Apply baud, data bits, parity and stop bits in one reconfiguration."""
        self._line = (baud, bits, parity, stop)
        errors = (self._serial.SerialException,) + _SETTING_ERRORS
        if not self.eight_only:
            try:
                self._apply(baud, bits, parity, stop)
                self._check_format(bits, parity)
                return
            except errors:
                self.eight_only = True
        try:
            self._apply(baud, 8, "N", 1)
        except errors as e:
            raise TransportError("cannot set %d baud: %s" % (baud, e), field="baud") from None

    def readinto(self, buf, timeout_ms):
        """Wait up to ``timeout_ms`` for a byte; then take what else is there (up to len(buf))."""
        if len(buf) == 0:
            return 0
        ser = self._ser
        t = max(0, timeout_ms) / 1000.0
        try:
            if t != self._timeout:
                ser.timeout = t
                self._timeout = t
            first = ser.read(1)  # blocks up to the timeout for the first byte
            if not first:
                return 0
            buf[0] = first[0]
            n = 1
            more = min(ser.in_waiting, len(buf) - 1)
            if more > 0:
                rest = ser.read(more)
                buf[1 : 1 + len(rest)] = rest
                n += len(rest)
        except (self._serial.SerialException,) + _SETTING_ERRORS as e:
            raise TransportError("read failed: %s" % e, field="read") from None
        if self.emulated_7bit:
            for i in range(n):
                buf[i] &= 0x7F
        return n

    def sleep_ms(self, ms):
        if ms > 0:
            time.sleep(ms / 1000.0)

    def ticks_ms(self):
        """Same clock as the firmware's compat.ticks_ms (wrapping like a board's)."""
        return _ticks_ms()

    def close(self):
        self._ser.close()


class TcpTransport:
    """A meter (or a serial server) on a TCP socket. ``set_line`` is recorded and ignored."""

    def __init__(self, host, port, connect_timeout_s=10.0):
        try:
            self._sock = socket.create_connection((host, port), timeout=connect_timeout_s)
        except OSError as e:
            raise TransportError("cannot connect to %s:%s: %s" % (host, port, e), field="connect") from None
        self.settings = None

    def write(self, data):
        try:
            self._sock.settimeout(None)
            self._sock.sendall(data)
        except OSError as e:
            raise TransportError("send failed: %s" % e, field="write") from None

    def drain(self):
        """sendall() has already handed everything to the kernel: nothing to wait for."""

    def set_line(self, baud, bits, parity, stop=1):
        self.settings = (baud, bits, parity, stop)

    def readinto(self, buf, timeout_ms):
        if len(buf) == 0:
            return 0
        try:
            self._sock.settimeout(max(0, timeout_ms) / 1000.0)
            n = self._sock.recv_into(buf)
        except (socket.timeout, BlockingIOError):
            return 0
        except OSError as e:
            raise TransportError("receive failed: %s" % e, field="read") from None
        if n == 0:
            raise TransportError("connection closed by the peer", field="read")
        return n

    def sleep_ms(self, ms):
        if ms > 0:
            time.sleep(ms / 1000.0)

    def ticks_ms(self):
        return _ticks_ms()

    def close(self):
        self._sock.close()
