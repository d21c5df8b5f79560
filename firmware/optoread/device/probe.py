"""The optical probe on a board UART: the transport of ``driver.py`` for RP2040 and ESP32.

Board glue, not protocol: besides the board files this is the only module that
touches ``machine``. It imports ``machine`` lazily inside :class:`Probe`, so the
module also imports on the unix port and CPython, where :func:`open_probe`
hands out the ``unixport`` transports instead.

MicroPython UART facts handled here (see the field notes):

* ``uart.init()`` on older ESP32 firmware reset every parameter not passed
  (micropython PR #8363): every line change passes baudrate, bits, parity,
  stop, pins, timeouts and inversion.
* RP2 parity/data-bit changes are not latched reliably by ``init()``
  (micropython #12410, #10976): on RP2 a framing change deinitialises the UART
  and creates a new one, then repeats the settings once with ``init()``.
* There is no uniform TX-done signal (micropython #16182; before PR #16052 the
  rp2 ``flush()``/``txdone()`` returned while the last byte was still on the
  wire): :meth:`Probe.drain` waits for ``txdone()`` (or ``flush()``) where the
  port has them *and* for the computed wire time of what was written.
* The RX ring buffer must hold what arrives while the firmware is busy
  (ESP8266's 256 bytes overflowed on 512-byte frames): :func:`rx_buffer_size`.
"""

from optoread.compat import const, sleep_ms, ticks_add, ticks_diff, ticks_ms
from optoread.errors import TransportError

# MicroPython's parity argument: None = none, 0 = even, 1 = odd.
_PARITY_ARG = {"N": None, "E": 0, "O": 1}

# HDLC frame around a max-length information field: 2 flags, 2 format, up to 4+4 address
# bytes, control, HCS, FCS.
_HDLC_OVERHEAD = const(17)
_MIN_RXBUF = const(256)  # rp2's default; ESP-IDF needs more than its 128-byte FIFO
_RXBUF_ROUND = const(64)
_LATENCY_MS = const(100)  # longest the firmware may leave the UART unread (flash write, display)
_TX_STUCK_MS = const(1000)  # txdone() still False this long after the computed end: give up
_ECHO_GUARD_MS = const(3)  # the echo of the last byte arrives up to this late after its char time
_SCRATCH = const(32)


def char_bits(bits, parity, stop=1):
    """Bits on the wire per character: start + data + parity (if any) + stop."""
    return 1 + bits + (0 if parity in (None, "N") else 1) + stop


def wire_ms(nbytes, baud, bits=8, parity="N", stop=1):
    """Milliseconds ``nbytes`` characters occupy the line at ``baud`` (rounded up)."""
    total = nbytes * char_bits(bits, parity, stop) * 1000
    return (total + baud - 1) // baud


def rx_buffer_size(baud, max_info=128, window=1, latency_ms=_LATENCY_MS):
    """RX ring-buffer bytes for a probe that may run at ``baud`` with HDLC ``max_info``.

    Large enough for ``window`` full frames with a ``max_info``-byte information
    field, and for everything that arrives at ``baud`` while the firmware leaves the
    UART unread for ``latency_ms`` (IEC readouts stream without frames). Rounded up
    to a multiple of 64, at least 256.
    """
    frame = window * (max_info + _HDLC_OVERHEAD)
    # 10 bits per character is the shortest framing used (8N1, 7E1): the most bytes per ms.
    stream = (baud * latency_ms + 9999) // 10000
    need = frame if frame > stream else stream
    need = (need + _RXBUF_ROUND - 1) // _RXBUF_ROUND * _RXBUF_ROUND
    return need if need > _MIN_RXBUF else _MIN_RXBUF


def _get(board, name, default=None):
    """A board setting from a board module/object (attribute) or a dict (key)."""
    if isinstance(board, dict):
        return board.get(name, default)
    return getattr(board, name, default)


def _parity_arg(parity):
    if parity is None:
        return None
    p = _PARITY_ARG.get(parity, -1) if isinstance(parity, str) else -1
    if p == -1:
        raise TransportError("parity must be 'N', 'E' or 'O', not %r" % (parity,), field="parity")
    return p


class _Clock:
    """Real time: MicroPython ticks and sleep (CPython: the compat emulation)."""

    ticks_ms = staticmethod(ticks_ms)  # compat's: real ticks
    sleep_ms = staticmethod(sleep_ms)


class Probe:
    """The optical probe on ``machine.UART``, configured by a board file.

    ``board`` is a board module (attributes) or a dict with the ``PROBE_*`` keys of
    ``boards/README.md``. The line starts at ``baud``/``bits``/``parity``/``stop``
    (IEC 62056-21 sign-on: 300 7E1). ``clock`` (an object with ``ticks_ms()`` and
    ``sleep_ms(ms)``) is for tests; the default is real time.

    With ``PROBE_DISCARD_ECHO`` the probe drops, after each write, up to as many
    received bytes as were sent, for as long as their echo can still arrive (one
    character time plus 3 ms after the last byte left). Off by default: the
    driver's ``EchoFilter`` removes the echo by content, which is safer when a
    probe does not see its own light.
    """

    rx_buffer_size = staticmethod(rx_buffer_size)

    def __init__(self, board, baud=300, bits=7, parity="E", stop=1, clock=None):
        try:
            import machine
        except ImportError:
            machine = None
        uart_cls = getattr(machine, "UART", None)
        if uart_cls is None:
            raise TransportError("this port has no machine.UART (use a unix transport)", field="uart")
        self._uart_cls = uart_cls
        self._clock = clock if clock is not None else _Clock()
        self._id = _get(board, "PROBE_UART", 1)
        self._tx = _get(board, "PROBE_TX")
        self._rx = _get(board, "PROBE_RX")
        invert = 0
        if _get(board, "PROBE_INVERT_TX", False):
            invert |= self._inv_flag("INV_TX")
        if _get(board, "PROBE_INVERT_RX", False):
            invert |= self._inv_flag("INV_RX")
        self._invert = invert
        rxbuf = _get(board, "PROBE_RXBUF")
        if rxbuf is None:
            rxbuf = rx_buffer_size(_get(board, "PROBE_MAX_BAUD", 19200), _get(board, "PROBE_MAX_INFO", 128))
        self.rxbuf = rxbuf
        recreate = _get(board, "PROBE_RECREATE_ON_FRAMING")
        if recreate is None:
            recreate = _get(board, "PORT") == "rp2"
        self.recreate = bool(recreate)
        self.discard_echo = bool(_get(board, "PROBE_DISCARD_ECHO", False))
        self.discarded = 0
        self._scratch = bytearray(_SCRATCH)
        self._uart = None
        self._line = None  # (baud, bits, parity argument, stop)
        self._char_bits = 10
        self._baud = baud
        now = self._clock.ticks_ms()
        self._tx_end = now
        self._mute_until = now
        self._echo_left = 0
        self.set_line(baud, bits, parity, stop)

    def _inv_flag(self, name):
        flag = getattr(self._uart_cls, name, None)
        if flag is None:
            raise TransportError("this port's UART cannot invert (%s)" % name, field="invert")
        return flag

    # --- line settings -----------------------------------------------------------------

    def _settings(self, baud, bits, par, stop):
        """Everything init() accepts that we care about: ports that reset what is not passed
        (esp32 before PR #8363) then keep pins, inversion and timeouts."""
        # timeout=0: readinto() never blocks, timing is ours. timeout_char: two character
        # times, so a read that does wait between characters tolerates a slow probe.
        kw = {
            "baudrate": baud,
            "bits": bits,
            "parity": par,
            "stop": stop,
            "timeout": 0,
            "timeout_char": 2 * wire_ms(1, baud, bits, "N" if par is None else "E", stop) + 1,
            "invert": self._invert,
        }
        if self._tx is not None:
            kw["tx"] = self._tx
        if self._rx is not None:
            kw["rx"] = self._rx
        return kw

    def set_line(self, baud, bits=8, parity="N", stop=1):
        """Switch the line (after the bytes written so far have left the wire).

        Always passes baudrate, bits, parity and stop. On RP2 (or with
        ``PROBE_RECREATE_ON_FRAMING``) a change of bits, parity or stop re-creates the UART.
        """
        par = _parity_arg(parity)
        if not isinstance(baud, int) or baud < 50 or baud > 4000000:
            raise TransportError("unsupported baud rate %r" % (baud,), field="baud")
        if bits not in (7, 8):
            raise TransportError("data bits must be 7 or 8, not %r" % (bits,), field="bits")
        if stop not in (1, 2):
            raise TransportError("stop bits must be 1 or 2, not %r" % (stop,), field="stop")
        kw = self._settings(baud, bits, par, stop)
        old = self._line
        uart = self._uart
        if uart is not None:
            self.drain()  # never switch under a byte still on the wire (the ACK)
        try:
            if uart is None or (self.recreate and (old is None or old[1:] != (bits, par, stop))):
                if uart is not None:
                    self._uart = None
                    uart.deinit()
                kw["rxbuf"] = self.rxbuf
                uart = self._uart_cls(self._id, **kw)
                del kw["rxbuf"]
                if self.recreate:
                    # micropython #12410: the first framing set on an RP2 UART was not latched;
                    # writing the same settings again does latch it.
                    uart.init(**kw)
                self._uart = uart
            else:
                uart.init(**kw)
        except (ValueError, OSError) as e:
            raise TransportError("UART %s: cannot set %d %d%s%d: %s"
                                 % (self._id, baud, bits, parity or "N", stop, e), field="uart")
        self._line = (baud, bits, par, stop)
        self._baud = baud
        self._char_bits = char_bits(bits, par, stop)
        self._echo_left = 0

    # --- transmit ----------------------------------------------------------------------

    def _ms_for(self, nbytes):
        return (nbytes * self._char_bits * 1000 + self._baud - 1) // self._baud

    def write(self, data):
        """Queue ``data`` for transmission (returns when the UART has taken all of it)."""
        uart = self._open()
        n = len(data)
        if not n:
            return
        clock = self._clock
        now = clock.ticks_ms()
        # The line is busy until everything queued before has gone; then n more characters.
        if ticks_diff(self._tx_end, now) < 0:
            self._tx_end = now
        self._tx_end = ticks_add(self._tx_end, self._ms_for(n))
        if self.discard_echo:
            self._echo_left += n
            self._mute_until = ticks_add(self._tx_end, self._ms_for(1) + _ECHO_GUARD_MS)
        done = uart.write(data) or 0
        if done < n:
            mv = memoryview(data)
            limit = ticks_add(self._tx_end, _TX_STUCK_MS)
            while done < n:
                if ticks_diff(clock.ticks_ms(), limit) > 0:
                    raise TransportError("UART %s accepted only %d of %d bytes" % (self._id, done, n),
                                         field="write", offset=done)
                clock.sleep_ms(1)
                done += uart.write(mv[done:]) or 0

    def drain(self):
        """Return once everything written has left the wire.

        Waits for ``txdone()`` (polled) or ``flush()`` where the port has them, and in
        any case until the computed wire time of the written bytes has passed: older
        firmware reports done while the last byte is still being shifted out.
        """
        uart = self._uart
        if uart is None:
            return
        clock = self._clock
        end = self._tx_end
        txdone = getattr(uart, "txdone", None)
        if txdone is not None:
            limit = ticks_add(end, _TX_STUCK_MS)
            while not txdone():
                if ticks_diff(clock.ticks_ms(), limit) > 0:
                    raise TransportError("UART %s transmitter never finished" % self._id, field="txdone")
                clock.sleep_ms(1)
        else:
            flush = getattr(uart, "flush", None)
            if flush is not None:
                flush()
        left = ticks_diff(end, clock.ticks_ms())
        if left >= 0:
            clock.sleep_ms(left + 1)  # +1: tick granularity
        if self._echo_left:
            left = ticks_diff(self._mute_until, clock.ticks_ms())
            if left > 0:
                clock.sleep_ms(left)
            self._drop_echo(uart)

    # --- receive -----------------------------------------------------------------------

    def _drop_echo(self, uart):
        """Discard up to as many bytes as were sent while their echo may still arrive."""
        n = uart.any()
        scratch = self._scratch
        while n and self._echo_left:
            k = min(n, self._echo_left, _SCRATCH)
            got = uart.readinto(scratch, k) or 0
            if not got:
                break
            self._echo_left -= got
            self.discarded += got
            n -= got
        if ticks_diff(self._clock.ticks_ms(), self._mute_until) >= 0:
            self._echo_left = 0  # window over: whatever comes now is the meter's

    def readinto(self, buf, timeout_ms):
        """Read what has arrived into ``buf``; wait up to ``timeout_ms`` for the first byte.

        Returns the number of bytes (0 on timeout). Never blocks longer than the
        timeout: the UART is polled with ``any()`` in 1 ms steps.
        """
        uart = self._open()
        clock = self._clock
        size = len(buf)
        start = clock.ticks_ms()
        while True:
            if self._echo_left:
                self._drop_echo(uart)
            n = uart.any()
            if n and size:
                got = uart.readinto(buf, n if n < size else size)
                if got:
                    return got
            if ticks_diff(clock.ticks_ms(), start) >= timeout_ms:
                return 0
            clock.sleep_ms(1)

    # --- time and lifetime ---------------------------------------------------------------

    def sleep_ms(self, ms):
        """Sleep ``ms`` milliseconds (on the probe's clock)."""
        if ms > 0:
            self._clock.sleep_ms(ms)

    def ticks_ms(self):
        """Millisecond ticks (wrapping; compare with ``compat.ticks_diff``)."""
        return self._clock.ticks_ms()

    def _open(self):
        if self._uart is None:
            raise TransportError("probe is closed", field="uart")
        return self._uart

    def close(self):
        """Release the UART (idempotent)."""
        uart = self._uart
        self._uart = None
        if uart is not None:
            uart.deinit()


def open_probe(board, baud=300, bits=7, parity="E"):
    """The transport for ``board``: a :class:`Probe` on the UART, or for the unix board
    (``PROBE = "pty:PATH"``, ``"tty:PATH"`` or ``"tcp:HOST:PORT"``) a ``unixport`` transport."""
    spec = _get(board, "PROBE")
    if not spec:
        return Probe(board, baud, bits, parity)
    from optoread.device import unixport

    return unixport.open_spec(spec, baud, bits, parity)
