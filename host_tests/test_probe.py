"""The optical-probe driver against a fake ``machine.UART`` (CPython and the unix port).

The fake ``machine`` module is put into ``sys.modules`` before ``optoread.probe`` is
imported and around each ``Probe`` construction (the probe imports ``machine``
lazily), then taken out again so no other test sees it. A virtual clock drives
time: the fake UART delivers scheduled bytes and reports TX done by that clock.
"""

import sys

from optoread.errors import TransportError
from portable import listdir, project_root, raises, skip

PORTABLE = True

_ALL_FOUR = ("baudrate", "bits", "parity", "stop")


class FakeClock:
    def __init__(self):
        self.now = 1000
        self.slept = 0

    def ticks_ms(self):
        return self.now

    def sleep_ms(self, ms):
        self.now += ms
        self.slept += ms


class FakeUART:
    """Records construction, init() and deinit() calls (with the clock time) and writes."""

    INV_TX = 1
    INV_RX = 2
    clock = None
    instances = []
    log = []  # (time, uart index, what, kwargs) across all instances

    def __init__(self, uart_id, *args, **kw):
        assert not args, "settings must be passed by keyword"
        self.uart_id = uart_id
        self.index = len(FakeUART.instances)
        FakeUART.instances.append(self)
        self.settings = {}
        self.deinited = False
        self.tx = bytearray()
        self.rx = bytearray()
        self.pending = []  # (time, bytes) not yet arrived
        self.hw_end = self.clock.now
        self.hw_extra = 0  # hardware reports done this much later than the wire time
        self.flushes = 0
        self._record("new", kw)

    def _record(self, what, kw):
        FakeUART.log.append((self.clock.now, self.index, what, dict(kw)))
        self.settings.update(kw)

    def init(self, *args, **kw):
        assert not args, "settings must be passed by keyword"
        assert not self.deinited
        self._record("init", kw)

    def deinit(self):
        self.deinited = True
        FakeUART.log.append((self.clock.now, self.index, "deinit", {}))

    def _wire(self, n):
        s = self.settings
        bits = 1 + s["bits"] + (0 if s["parity"] is None else 1) + s["stop"]
        return (n * bits * 1000 + s["baudrate"] - 1) // s["baudrate"]

    def write(self, data):
        assert not self.deinited
        now = self.clock.now
        start = self.hw_end if self.hw_end > now else now
        self.hw_end = start + self._wire(len(data)) + self.hw_extra
        self.tx += data
        return len(data)

    def deliver(self, at, data):
        self.pending.append((at, bytes(data)))

    def _arrive(self):
        now = self.clock.now
        keep = []
        for at, data in self.pending:
            if at <= now:
                self.rx += data
            else:
                keep.append((at, data))
        self.pending = keep

    def any(self):
        self._arrive()
        return len(self.rx)

    def readinto(self, buf, nbytes=None):
        self._arrive()
        n = len(buf) if nbytes is None else nbytes
        n = min(n, len(self.rx), len(buf))
        if not n:
            return None
        buf[:n] = self.rx[:n]
        self.rx = self.rx[n:]
        return n


class TxdoneUART(FakeUART):
    def txdone(self):
        return self.clock.now >= self.hw_end

    def flush(self):
        raise AssertionError("txdone() is preferred to flush()")


class FlushUART(FakeUART):
    def flush(self):
        self.flushes += 1
        if self.clock.now < self.hw_end:
            self.clock.now = self.hw_end


class NoInvertUART(FakeUART):
    pass


# This port's UART has no inversion flags.
NoInvertUART.INV_TX = None  # type: ignore[assignment]
NoInvertUART.INV_RX = None  # type: ignore[assignment]


class _FakeMachine:
    UART = FakeUART


def _with_fake_machine(uart_cls, fn, *args, **kw):
    saved = sys.modules.get("machine")
    m = _FakeMachine()
    m.UART = uart_cls
    sys.modules["machine"] = m
    try:
        return fn(*args, **kw)
    finally:
        if saved is None:
            del sys.modules["machine"]
        else:
            sys.modules["machine"] = saved


def _import_probe():
    from optoread.device import probe

    return probe


probe = _with_fake_machine(FakeUART, _import_probe)

ESP32 = {"PORT": "esp32", "PROBE_UART": 2, "PROBE_TX": 17, "PROBE_RX": 16}
RP2 = {"PORT": "rp2", "PROBE_UART": 0, "PROBE_TX": 0, "PROBE_RX": 1}


def make(board, uart_cls=FakeUART, **kw):
    """A Probe on a fresh fake UART class state; returns (probe, clock)."""
    clock = FakeClock()
    FakeUART.clock = clock
    FakeUART.instances = []
    FakeUART.log = []
    p = _with_fake_machine(uart_cls, probe.Probe, board, clock=clock, **kw)
    return p, clock


def _check_all_four(entries):
    for _t, _i, what, kw in entries:
        if what in ("new", "init"):
            for key in _ALL_FOUR:
                assert key in kw, "%s without %s: %r" % (what, key, kw)


def _without_machine(fn, *args):
    saved = sys.modules.get("machine")
    if saved is not None:
        del sys.modules["machine"]
    try:
        return fn(*args)
    finally:
        if saved is not None:
            sys.modules["machine"] = saved


def test_importable_without_machine_uart():
    # CPython has no machine module; the unix port's has no UART.
    e = _without_machine(raises, TransportError, probe.Probe, ESP32)
    assert e.field == "uart"


def test_every_line_setting_passes_all_four_esp32():
    p, clock = make(ESP32)
    assert len(FakeUART.instances) == 1
    u = FakeUART.instances[0]
    _t, _i, what, kw = FakeUART.log[0]
    assert what == "new"
    assert kw["baudrate"] == 300 and kw["bits"] == 7 and kw["parity"] == 0 and kw["stop"] == 1
    assert u.uart_id == 2 and kw["tx"] == 17 and kw["rx"] == 16
    assert kw["rxbuf"] == p.rxbuf and kw["timeout"] == 0 and kw["invert"] == 0
    p.set_line(9600, 7, "E")
    p.set_line(9600, 8, "N")
    p.set_line(300, 7, "O", 2)
    assert len(FakeUART.instances) == 1  # esp32: init() only
    inits = [x for x in FakeUART.log if x[2] == "init"]
    assert len(inits) == 3
    _check_all_four(FakeUART.log)
    # esp32 reset unspecified parameters (PR #8363): pins, inversion and timeouts go along too.
    for _t, _i, _w, kw in inits:
        assert kw["tx"] == 17 and kw["rx"] == 16 and "invert" in kw and "timeout" in kw
    assert inits[1][3]["parity"] is None and inits[1][3]["bits"] == 8
    assert inits[2][3]["parity"] == 1 and inits[2][3]["stop"] == 2
    assert "rxbuf" not in inits[0][3]  # would reinstall the esp32 driver each time
    p.close()
    assert u.deinited


def test_rp2_parity_change_recreates_the_uart():
    p, clock = make(RP2)
    assert p.recreate
    assert [x[2] for x in FakeUART.log] == ["new", "init"]  # second write latches (#12410)
    p.set_line(9600, 7, "E")  # baud only: init() on the same UART
    assert len(FakeUART.instances) == 1
    assert FakeUART.log[-1][2] == "init" and FakeUART.log[-1][3]["baudrate"] == 9600
    p.set_line(9600, 8, "N")  # 7E1 -> 8N1: deinit and a new UART
    assert len(FakeUART.instances) == 2
    first, second = FakeUART.instances
    assert first.deinited and not second.deinited
    tail = [(x[1], x[2]) for x in FakeUART.log[-3:]]
    assert tail == [(0, "deinit"), (1, "new"), (1, "init")]
    assert second.settings["parity"] is None and second.settings["bits"] == 8
    assert second.uart_id == 0 and second.settings["tx"] == 0 and second.settings["rx"] == 1
    p.set_line(300, 7, "E")
    assert len(FakeUART.instances) == 3
    _check_all_four(FakeUART.log)
    # A board can ask for re-creation on other ports too, or switch it off.
    p2, _ = make({"PORT": "esp32", "PROBE_RECREATE_ON_FRAMING": True})
    p2.set_line(300, 8, "N")
    assert len(FakeUART.instances) == 2


def test_inversion_flags():
    board = dict(ESP32)
    board["PROBE_INVERT_TX"] = True
    board["PROBE_INVERT_RX"] = True
    p, _ = make(board)
    assert FakeUART.log[0][3]["invert"] == FakeUART.INV_TX | FakeUART.INV_RX
    p.set_line(9600, 8, "N")
    assert FakeUART.log[-1][3]["invert"] == FakeUART.INV_TX | FakeUART.INV_RX
    board["PROBE_INVERT_RX"] = False
    make(board)
    assert FakeUART.log[0][3]["invert"] == FakeUART.INV_TX
    e = raises(TransportError, make, board, NoInvertUART)
    assert e.field == "invert"


def test_drain_waits_for_txdone():
    p, clock = make(ESP32, TxdoneUART)
    u = FakeUART.instances[0]
    u.hw_extra = 40  # the hardware finishes later than the computed time
    start = clock.now
    p.write(b"/?!\r\n")  # 5 chars of 7E1 at 300 Bd = 166.7 ms
    p.drain()
    assert clock.now >= u.hw_end == start + 167 + 40
    assert clock.now <= u.hw_end + 2
    # Hardware that says "done" early (rp2 before PR #16052): the wire time still holds.
    u.hw_extra = -100
    start = clock.now
    p.write(b"/?!\r\n")
    p.drain()
    assert clock.now - start >= 167


def test_drain_uses_flush_where_there_is_no_txdone():
    p, clock = make(ESP32, FlushUART)
    u = FakeUART.instances[0]
    u.hw_extra = 25
    start = clock.now
    p.write(b"\x06050\r\n")
    p.drain()
    assert u.flushes == 1
    assert clock.now >= start + 200 + 25


def test_drain_without_signals_waits_the_byte_time():
    p, clock = make(ESP32)
    start = clock.now
    p.write(b"\x06050\r\n")  # 6 chars x 10 bits at 300 Bd = 200 ms
    p.drain()
    assert 200 <= clock.now - start <= 202
    # At 9600 8N1 a 145-byte frame takes 151.04 ms.
    p.set_line(9600, 8, "N")
    start = clock.now
    p.write(bytes(145))
    p.drain()
    assert 152 <= clock.now - start <= 154
    # Nothing written: no wait.
    start = clock.now
    p.drain()
    assert clock.now == start


def test_set_line_switches_only_after_the_ack_left():
    p, clock = make(RP2)
    start = clock.now
    p.write(b"\x06050\r\n")
    p.set_line(9600, 7, "E")
    t_switch = FakeUART.log[-1][0]
    assert t_switch >= start + 200
    start = clock.now
    p.write(b"\x06051\r\n")
    p.set_line(4800, 8, "N")  # re-creation too waits for the ACK
    deinit = [x for x in FakeUART.log if x[2] == "deinit"][0]
    assert deinit[0] >= start + 7  # 6 chars at 9600 7E1 = 6.25 ms


def test_driver_set_line_action_on_the_probe():
    from optoread.driver import Driver
    from optoread.iec62056_21.signon import SEND, SET_LINE

    p, clock = make(RP2)
    d = Driver(p)
    start = clock.now
    d._do((SEND, b"\x06050\r\n"))
    d._do((SET_LINE, 9600, 7, "E"))
    assert FakeUART.log[-1][0] >= start + 200
    assert FakeUART.log[-1][3]["baudrate"] == 9600 and FakeUART.log[-1][3]["stop"] == 1


def test_readinto_honours_the_timeout():
    p, clock = make(ESP32)
    u = FakeUART.instances[0]
    buf = bytearray(8)
    start = clock.now
    assert p.readinto(buf, 50) == 0
    assert 50 <= clock.now - start <= 51
    assert p.readinto(buf, 0) == 0
    u.deliver(clock.now + 30, b"/ISK5")
    start = clock.now
    n = p.readinto(buf, 1000)
    assert n == 5 and bytes(buf[:5]) == b"/ISK5"
    assert 30 <= clock.now - start <= 31
    u.deliver(clock.now, b"ABCDEFGHIJKL")
    assert p.readinto(buf, 10) == 8 and bytes(buf) == b"ABCDEFGH"
    assert p.readinto(buf, 10) == 4 and bytes(buf[:4]) == b"IJKL"


def test_readinto_real_clock_never_blocks_forever():
    clock = FakeClock()
    FakeUART.clock = clock
    FakeUART.instances = []
    FakeUART.log = []
    p = _with_fake_machine(FakeUART, probe.Probe, ESP32)  # real ticks and sleep
    t0 = p.ticks_ms()
    assert p.readinto(bytearray(4), 30) == 0
    from optoread.compat import ticks_diff

    took = ticks_diff(p.ticks_ms(), t0)
    assert 25 <= took < 1000, took
    p.close()


def test_rx_buffer_sized_for_a_max_info_frame():
    rbs = probe.rx_buffer_size
    assert probe.Probe.rx_buffer_size(9600, 1024) == rbs(9600, 1024)
    assert rbs(9600, 128) == 256  # 145-byte frame, 96 bytes per 100 ms: the minimum
    assert rbs(9600, 1024) >= 1024 + 17 and rbs(9600, 1024) % 64 == 0
    assert rbs(9600, 2030) >= 2047
    assert rbs(9600, 1024, window=2) >= 2 * (1024 + 17)
    assert rbs(115200, 128) >= 1152  # what arrives in 100 ms at 115200
    assert rbs(300, 128) == 256
    # The probe asks for it at the board's highest baud, or takes the board's own figure.
    board = dict(ESP32)
    board["PROBE_MAX_BAUD"] = 115200
    board["PROBE_MAX_INFO"] = 2030
    p, _ = make(board)
    assert p.rxbuf == rbs(115200, 2030) and FakeUART.log[0][3]["rxbuf"] == p.rxbuf
    board["PROBE_RXBUF"] = 4096
    p, _ = make(board)
    assert FakeUART.log[0][3]["rxbuf"] == 4096


def test_wire_time_helpers():
    assert probe.char_bits(7, "E", 1) == 10
    assert probe.char_bits(8, "N", 1) == 10
    assert probe.char_bits(8, "E", 2) == 12
    assert probe.wire_ms(6, 300, 7, "E") == 200
    assert probe.wire_ms(1, 9600) == 2


def test_discard_echo_option():
    board = dict(ESP32)
    board["PROBE_DISCARD_ECHO"] = True
    p, clock = make(board)
    u = FakeUART.instances[0]
    start = clock.now
    p.write(b"/?!\r\n")
    u.deliver(start + 167, b"/?!\r\n")  # the probe sees its own light
    u.deliver(start + 400, b"/ISK5\r\n")
    buf = bytearray(32)
    n = p.readinto(buf, 1000)
    assert bytes(buf[:n]) == b"/ISK5\r\n"
    assert p.discarded == 5
    # drain() drops the echo too; never more bytes than were sent.
    start = clock.now
    p.write(b"\x06050\r\n")
    u.deliver(start + 200, b"\x06050\r\n")
    p.drain()
    assert p.discarded == 11 and u.any() == 0
    # A probe that does not see itself: the answer survives once the window has passed.
    start = clock.now
    p.write(b"AB")
    u.deliver(start + 300, b"XY")
    n = p.readinto(buf, 1000)
    assert bytes(buf[:n]) == b"XY"
    # Without the option everything arrives.
    p, clock = make(ESP32)
    u = FakeUART.instances[0]
    p.write(b"/?!\r\n")
    u.deliver(clock.now + 167, b"/?!\r\n")
    n = p.readinto(buf, 1000)
    assert bytes(buf[:n]) == b"/?!\r\n"


def test_bad_settings_and_closed_probe():
    p, _ = make(ESP32)
    assert raises(TransportError, p.set_line, 9600, 9, "N").field == "bits"
    assert raises(TransportError, p.set_line, 9600, 8, "X").field == "parity"
    assert raises(TransportError, p.set_line, 9600, 8, "N", 3).field == "stop"
    assert raises(TransportError, p.set_line, 0, 8, "N").field == "baud"
    p.sleep_ms(5)
    p.close()
    p.close()
    assert FakeUART.instances[0].deinited
    assert raises(TransportError, p.write, b"x").field == "uart"
    assert raises(TransportError, p.readinto, bytearray(4), 10).field == "uart"
    p.drain()  # nothing to wait for


def _board(name):
    ns = {}
    with open(project_root() + "/boards/" + name + ".py") as f:
        exec(f.read(), ns)
    return ns


def _unix_board_loads():
    """boards/unix.py reads ``os.getenv``, which the board builds (rp2, esp32) lack."""
    import os

    return hasattr(os, "getenv")


def test_board_files_drive_the_probe():
    names = [n[:-3] for n in listdir(project_root() + "/boards") if n.endswith(".py")]
    assert "pico" in names and "esp32_devkitc" in names and "unix" in names
    for name in names:
        if name == "unix" and not _unix_board_loads():
            continue  # checked by test_unix_board_and_open_probe where it loads
        b = _board(name)
        if "PROBE" in b:
            continue  # the unix port: a pty/TCP transport, no UART
        for key in ("PROBE_UART", "PROBE_TX", "PROBE_RX", "LED", "LED_ACTIVE_LOW", "BUTTON",
                    "BUTTON_PULL", "BUZZER", "I2C", "FLASH_MOUNT", "PROBE_INVERT_TX",
                    "PROBE_INVERT_RX", "PROBE_RXBUF"):
            assert key in b, (name, key)
        assert b["FLASH_MOUNT"] in ("/", "/flash")
        assert b["I2C"] is None or len(b["I2C"]) == 2
        p, _ = make(b)
        assert FakeUART.instances[0].uart_id == b["PROBE_UART"]
        kw = FakeUART.log[0][3]
        assert kw["tx"] == b["PROBE_TX"] and kw["rx"] == b["PROBE_RX"]
        assert kw["rxbuf"] >= b["PROBE_MAX_INFO"] + 17
        assert p.recreate == (b["PORT"] == "rp2")


def test_unix_board_and_open_probe():
    if not _unix_board_loads():
        skip("boards/unix.py needs os.getenv (the unix port's board file)")
    b = _board("unix")
    spec = b["PROBE"]
    assert spec.startswith("pty:") or spec.startswith("tty:") or spec.startswith("tcp:")
    assert b["STORE_IMAGE"]
    for bad in ("serial:/dev/x", "tcp:localhost", "tcp:host:99999", "pty:"):
        e = raises(TransportError, probe.open_probe, {"PROBE": bad})
        assert e.field == "probe", bad
    e = raises(TransportError, probe.open_probe, {"PROBE": "pty:/nonexistent/pts/9"})
    assert e.field == "port"
    # No PROBE key: the board UART (absent here).
    e = _without_machine(raises, TransportError, probe.open_probe, {"PORT": "rp2"})
    assert e.field == "uart"
