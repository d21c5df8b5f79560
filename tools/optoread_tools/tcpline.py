"""The simulated meters on loopback TCP: the bytes of the optical line, without a baud (CPython).

Why: the firmware is tested on an emulated RP2040 whose UART0 is bridged to a TCP socket
(``build/emu/run-mpy.mjs --uart0-tcp PORT | --uart0-connect HOST:PORT``). The meter on the
other end must put on that socket exactly the bytes it would put on the optical line -- the
IEC 62056-21 sign-on, the readout, a mode E hand-over to HDLC, direct HDLC -- so the same
time-driven meters that run on a pty (:mod:`ptyline`) run here, one fresh meter per
connection. (``sim_dlms.serve_tcp`` is something else: the byte-driven DlmsServer, HDLC or
wrapper over TCP as a meter's network port speaks it, with no sign-on and no timing.)

What "no baud" means here:

* Every byte is clean: a TCP bridge has no speed to mismatch, so the reader's speed is never
  checked, nothing is garbled, and no UART re-initialisation is visible (``on_glitch`` is
  never called: the ``switch_guard`` quirk cannot trigger, and ``no_switch`` goes unnoticed
  by a reader that switches anyway). The meter's baud switches are bookkeeping:
  they only say whether its line has 7 data bits, in which case bit 7 of each byte from the
  reader is cleared, exactly as ptyline does for a clean byte (a reader on a UART without
  parity, like the emulated one, may send the parity bit or not: the meter must not care).
* The meter's bytes are written at once, not paced. Its clock (:meth:`TcpRunner.now`) then
  jumps ahead by the time they would have taken on the line (``ahead_ms``), because the
  meter's timing rules count from the end of what it sent: "not listening while talking",
  the minimum turnaround after the identification, the ACK timeout. With the jump they
  count from the moment the reader got the bytes, as on the line, whatever the baud.
* The reader's bytes are handed to the meter one character time (at the meter's current
  settings) apart, as on a pty: a reader believes its bytes take that long (it drains before
  switching speed), so the meter's reaction time runs from where the reader thinks its
  message ended.

So replies come the meter's reaction time after the request; turnaround, ACK, programming-mode
and HDLC inactivity timeouts hold in real time; only the durations of transmissions vanish.
Loopback only: the simulators are test equipment, never a service on a network.

API (each returns at once; the meter runs in threads)::

    port, stop = serve_tcp_meter(factory, port=0)          # listen on 127.0.0.1
    stop = connect_tcp_meter(factory, "127.0.0.1", 4059)   # connect out (an emulator listens)
    port, stop = start_iec21_tcp(quirks=("echo",))         # IEC 62056-21 meter (simcli quirks)
    port, stop = start_dlms_line_tcp(mode_e=True, rows=200)  # DLMS: mode E or direct HDLC
    meter = connect_iec21(port)                             # connect out, return once connected
    meter = connect_dlms_line(port, mode_e=False, rows=96)  # (the stopper, as below)
    stop.meter, stop.model, stop.runners, stop.runner.trace, stop.runner.stats
    stop() or stop.stop()                                   # close everything, join the threads
"""

import select
import socket
import threading
import time

from .meterrun import MeterRunner
from .sim_dlms import SimError, check_loopback
from .sim_iec21 import char_ms


def parse_hostport(text):
    """``HOST:PORT`` (``[::1]:PORT`` for IPv6) -> (host, port); SimError if malformed or not loopback."""
    host, sep, port = str(text).rpartition(":")
    host = host.strip("[]")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise SimError("expected HOST:PORT, not %r" % (text,), "address")
    check_loopback(host, "connects to")
    return host, int(port)


class TcpRunner(MeterRunner):
    """Runs one meter on one connected socket until the peer closes or the stop event is set.

    ``trace`` lists (t_ms, what, bytes, tag) with what "R>M" (from the reader), "M>R" (to the
    reader, tag = the meter's baud, bookkeeping), "M:line"; t is the meter's clock. ``stats``
    counts bytes each way, ``masked`` (reader bytes whose bit 7 was cleared: 7 data bits) and
    ``echoed``; nothing is ever garbled. ``ahead_ms``: how far the meter's clock is ahead of
    the wall clock (the line time of everything the meter sent). ``closed``: "peer", "stop"
    or "error: ..." once run() returned.
    """

    def __init__(self, meter, poll_ms=20):
        MeterRunner.__init__(self, meter, poll_ms)
        self.stats.update(masked=0, echoed=0)
        self.ahead_ms = 0.0
        self.peer = None
        self.closed = None
        self._sock = None

    def now(self):
        """The meter's clock: wall-clock ms since the connection, plus ``ahead_ms``."""
        return (time.monotonic() - self._t0) * 1000.0 + self.ahead_ms

    def run(self, sock, stop_event=None):
        """Serve the meter on ``sock`` (connected); returns when the peer closes or on stop."""
        self._sock = sock
        self._t0 = time.monotonic()
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # a reply is one write
        except OSError:
            pass
        sock.settimeout(10.0)  # for sendall only: reads wait in select()
        try:
            self.peer = sock.getpeername()
        except OSError:
            pass
        while self.closed is None:
            if stop_event is not None and stop_event.is_set():
                self.closed = "stop"
                break
            self._step()

    def _step(self):
        t = self.now()
        pending = self._process_due(t)
        if pending:
            self.trace.append((t, "M>R", bytes(pending), self._m_line[0]))
            self._write(bytes(pending))
        nxt = self._next_time()
        wait = self.poll_ms
        if nxt is not None:
            wait = max(0.0, min(wait, nxt - self.now()))
        try:
            r, _, _ = select.select([self._sock], [], [], wait / 1000.0)
        except InterruptedError:
            return
        except (OSError, ValueError) as e:
            self.closed = "error: %s" % e
            return
        if not r:
            return
        try:
            data = self._sock.recv(4096)
        except (BlockingIOError, socket.timeout):
            return
        except OSError as e:
            self.closed = "error: %s" % e
            return
        if not data:
            self.closed = "peer"
            return
        t = self.now()
        self.trace.append((t, "R>M", data, None))
        if self.meter.echo:
            # The optical probe echoes the reader's bytes at once (field notes: probe physics).
            self.stats["echoed"] += len(data)
            self._write(data)
        self._queue_in(t, data, None, char_ms(*self._m_line))

    def _meter_sends(self, ts, data, pending):
        # No pacing: the bytes go out now and the meter's clock moves on by their line time
        # (it believes it talked that long; see the module docstring).
        pending.extend(data)
        self.stats["to_reader"] += len(data)
        self.ahead_ms += len(data) * char_ms(*self._m_line)

    def _to_meter(self, t, b, clean):
        if b & 0x80 and self._m_line[1] == 7:
            self.stats["masked"] += 1
        MeterRunner._to_meter(self, t, b, clean)

    def _write(self, data):
        try:
            self._sock.sendall(data)
        except OSError as e:
            # The reader is gone (or stopped reading for 10 s): the connection is over.
            self.closed = "error: %s" % e


class TcpMeterStopper:
    """What the TCP starters return as ``stop``: call it to close the listener or connection and
    every connection's socket, and to join the threads.

    ``meter``: the meter of the newest connection (before the first one: the fresh meter the
    first connection will get), e.g. to compare what it serves with what a reader stored;
    ``model``: the DLMS model behind the meters (start_dlms_line_tcp), else None; ``runners``:
    one :class:`TcpRunner` per connection so far (``runner``: the newest, or None), with
    trace and stats; ``address``: (host, port) listened on or connected to; ``connected`` (an
    Event): a connection exists or existed; ``done`` (an Event): serving has ended (stop(),
    or in connect-out mode the connection closed or could not be made: ``error`` says why).
    """

    def __init__(self, factory, poll_ms=20):
        self.factory = factory
        self.poll_ms = poll_ms
        self.runners = []
        self.address = None
        self.model = None
        self.error = None
        self.event = threading.Event()
        self.connected = threading.Event()
        self.done = threading.Event()
        self._threads = []
        self._lock = threading.Lock()
        self._spare = factory()  # fails here, in the caller, if the factory is broken

    @property
    def port(self):
        return self.address[1] if self.address else None

    @property
    def runner(self):
        return self.runners[-1] if self.runners else None

    @property
    def meter(self):
        with self._lock:
            return self.runners[-1].meter if self.runners else self._spare

    def _new_runner(self):
        with self._lock:
            meter = self._spare if self._spare is not None else self.factory()
            self._spare = None
            runner = TcpRunner(meter, self.poll_ms)
            self.runners.append(runner)
        return runner

    def _serve(self, sock):
        """One connection: a fresh meter, served until the peer closes or stop()."""
        try:
            runner = self._new_runner()
            self.connected.set()
            runner.run(sock, self.event)
        except Exception as e:
            self.error = "%s: %s" % (type(e).__name__, e)
            raise
        finally:
            sock.close()

    def _start(self, target, name):
        th = threading.Thread(target=target, name=name, daemon=True)
        with self._lock:
            self._threads.append(th)
        th.start()
        return th

    def stop(self, timeout=5.0):
        """The same as calling the stopper."""
        self(timeout)

    def __call__(self, timeout=5.0):
        self.event.set()
        end = time.monotonic() + timeout
        with self._lock:
            threads = list(self._threads)
        for th in threads:
            if th is not threading.current_thread():
                th.join(max(0.0, end - time.monotonic()))
        self.done.set()


def _listen_socket(host, port):
    check_loopback(host, "listens on")
    family = socket.AF_INET6 if host == "::1" else socket.AF_INET
    ls = socket.socket(family, socket.SOCK_STREAM)
    try:
        ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        ls.bind(("127.0.0.1" if host == "localhost" else host, port))
        ls.listen(4)
    except (OSError, OverflowError) as e:
        ls.close()
        raise SimError("cannot listen on %s:%s: %s" % (host, port, e), "port")
    ls.setblocking(False)
    return ls


def serve_tcp_meter(factory, port=0, host="127.0.0.1", poll_ms=20):
    """Serve a time-driven meter on loopback TCP: every connection gets ``factory()`` (a new
    Iec21Meter, ModeEMeter or HdlcMeter), in its own thread, in real time.

    Returns ``(port, stop)`` at once (port 0 = any free port); see :class:`TcpMeterStopper`.
    Connections may overlap (each has its own meter); a test usually makes one at a time.
    """
    stop = TcpMeterStopper(factory, poll_ms)
    ls = _listen_socket(host, port)
    stop.address = ls.getsockname()[:2]

    def accept_loop():
        try:
            while not stop.event.is_set():
                try:
                    r, _, _ = select.select([ls], [], [], 0.05)
                except (OSError, ValueError):
                    break
                if not r:
                    continue
                try:
                    c, _addr = ls.accept()
                except OSError:
                    continue
                c.setblocking(True)
                stop._start(lambda c=c: stop._serve(c), "sim-tcp-meter-conn")
        finally:
            ls.close()

    stop._start(accept_loop, "sim-tcp-meter")
    return stop.port, stop


def connect_tcp_meter(factory, host, port, retry_s=10.0, reconnect=False, poll_ms=20):
    """Connect out to ``host:port`` (loopback only; e.g. an emulator's UART bridge listening
    with ``--uart0-tcp PORT``) and serve ``factory()`` on that connection, in a thread.

    Returns ``stop`` at once. The peer may not listen yet (it boots): connecting is retried
    every 0.2 s for ``retry_s``. When the connection closes, serving ends (``stop.done``
    is set) unless ``reconnect``: then a new meter is served on a new connection.
    """
    check_loopback(host, "connects to")
    stop = TcpMeterStopper(factory, poll_ms)
    stop.address = (host, port)

    def connect_loop():
        try:
            deadline = time.monotonic() + retry_s
            while not stop.event.is_set():
                try:
                    c = socket.create_connection((host, port), timeout=1.0)
                except (OSError, OverflowError) as e:
                    if time.monotonic() >= deadline:
                        stop.error = "cannot connect to %s:%s: %s" % (host, port, e)
                        break
                    stop.event.wait(0.2)
                    continue
                stop._serve(c)
                if not reconnect:
                    break
                deadline = time.monotonic() + retry_s
        finally:
            stop.done.set()

    stop._start(connect_loop, "sim-tcp-meter-connect")
    return stop


def _start(factory, port, connect, retry_s):
    """Listen on ``port``, or with ``connect`` ("HOST:PORT" or (host, port)) connect out."""
    if connect is None:
        return serve_tcp_meter(factory, port)
    host, cport = parse_hostport(connect) if isinstance(connect, str) else connect
    return cport, connect_tcp_meter(factory, host, cport, retry_s=retry_s)


def start_iec21_tcp(quirks=(), port=0, readout=None, connect=None, retry_s=10.0, **kw):
    """An IEC 62056-21 meter on TCP, as ``optoread sim --protocol iec21 --tcp PORT`` serves it.

    ``quirks``: names from ``simcli.QUIRKS`` (KeyError if unknown); ``readout``: a readout file
    whose data lines to serve; other keywords go to Iec21Meter (password, address, ...).
    ``connect``: "HOST:PORT" or (host, port) to connect out instead of listening.
    Returns ``(port, stop)``; ``stop.meter.readout_bytes()`` is what the meter serves.
    """
    from .simcli import make_meter

    quirks = list(quirks)

    def factory():
        return make_meter(quirks, readout, **kw)

    return _start(factory, port, connect, retry_s)


def start_dlms_line_tcp(mode_e=False, rows=2880, port=0, model=None, connect=None, retry_s=10.0,
                        meter_kw=None, **server_kw):
    """A DLMS/COSEM meter on TCP as on the optical line (time-driven): mode E (IEC sign-on then
    HDLC on the same stream, ``mode_e=True``) or direct HDLC at 9600 8N1 that ignores sign-on
    requests. Each connection gets a new DlmsServer(``model``, ``**server_kw``) on one shared
    model (``MeterModel(rows=rows)`` unless given), so values stay comparable with
    ``stop.model`` (expected_register, expected_rows). ``meter_kw`` go to ModeEMeter/HdlcMeter.
    Returns ``(port, stop)``.
    """
    from .sim_dlms import DlmsServer, HdlcMeter, MeterModel, ModeEMeter

    if model is None:
        model = MeterModel(rows=rows)
    mkw = dict(meter_kw or {})
    cls = ModeEMeter if mode_e else HdlcMeter

    def factory():
        return cls(DlmsServer(model, **server_kw), **mkw)

    port, stop = _start(factory, port, connect, retry_s)
    stop.model = model
    return port, stop


def _connected(stop, retry_s):
    """Wait until ``stop``'s connect-out connection exists: the meter is on the line."""
    end = time.monotonic() + retry_s + 2.0
    while not stop.connected.wait(0.05):
        if stop.done.is_set() or time.monotonic() > end:
            stop()
            raise SimError(stop.error or "cannot connect to %s:%s" % stop.address, "connect")
    return stop


def connect_iec21(port, quirks=(), host="127.0.0.1", retry_s=10.0, readout=None, **kw):
    """An IEC 62056-21 meter connected out to ``host:port`` (an emulator's UART0 bridge listening
    with ``--uart0-tcp PORT``); returns once connected. The result is the stopper: ``.stop()``,
    ``.meter`` (what it serves: ``meter.readout_bytes()``), ``.runner`` (trace, stats).
    Keywords go to Iec21Meter, e.g. ``ack_timeout_ms`` for a reader slower than a real one."""
    _port, stop = start_iec21_tcp(quirks, readout=readout, connect=(host, port), retry_s=retry_s, **kw)
    return _connected(stop, retry_s)


def connect_dlms_line(port, mode_e=False, rows=2880, host="127.0.0.1", model=None, retry_s=10.0,
                      meter_kw=None, **server_kw):
    """A DLMS/COSEM meter as on the optical line (mode E, or direct HDLC at 9600) connected out to
    ``host:port``; returns once connected. The result is the stopper: ``.stop()``, ``.model``
    (values to compare with: expected_register, expected_rows), ``.meter``, ``.runner``."""
    _port, stop = start_dlms_line_tcp(mode_e=mode_e, rows=rows, model=model, connect=(host, port),
                                      retry_s=retry_s, meter_kw=meter_kw, **server_kw)
    return _connected(stop, retry_s)
