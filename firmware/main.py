"""optoread device entry point: the board's main loop (also runs on the MicroPython unix port).

* The board file: ``board.py`` on a device (deployed from ``boards/``); on the unix port
  ``boards/<OPTOREAD_BOARD>.py`` (default ``unix``).
* The store: on a device the flash filesystem is already mounted and the store lives in
  ``STORE_DIR``; on the unix port the LittleFS image ``STORE_IMAGE`` is mounted at
  ``FLASH_MOUNT`` first. Settings: ``<FLASH_MOUNT>/config.json`` (see ``optoread.console``).
* asyncio tasks: the console on stdin/stdout (USB CDC; polled with ``select.poll``), the
  status LED, the button (debounced; starts a reading with the default plan). A reading
  runs to its end inside the loop (it needs the CPU for the probe anyway); while it runs a
  ``machine.Timer`` blinks the LED fast where there is one.
* Outcomes: success = LED on 1.5 s and one high beep; "no answer - check probe" = three
  slow blinks and three low beeps, repeated; any other failure = a burst of fast blinks and
  one long low beep. An SSD1306 (if the board has ``I2C`` and ``ssd1306`` imports) shows
  the last meter, outcome and a few values.
* Every reading and every command is wrapped: an exception is reported and the loop goes on.
* ^C does not interrupt the firmware (``micropython.kbd_intr(-1)``): a USB cable alone never
  reaches the REPL. The console's ``maintenance`` command (device PIN) ends main.py, and the
  board's REPL follows; ``optoread deploy --port`` goes that way.

On the unix port a stdin that is a terminal is switched to raw mode (no echo, ``\\r\\n``
written by the console itself) and restored at exit; end of input ends the program.
"""

# Board files are modules of plain data read with getattr; machine is absent on the unix port.
# pyright: reportAttributeAccessIssue=false, reportOptionalMemberAccess=false
# pyright: reportCallIssue=false, reportArgumentType=false

import gc
import sys

# Collect every 4 KB allocated, from the first import on: otherwise the garbage each import
# leaves between the modules' objects is collected only when the heap is full, and the holes
# it then leaves are too small for the reading's 1 KB buffers (308 KB instead of 272 KB
# needed for the IS 15959 plan: tools/bench_ram.py).
if hasattr(gc, "threshold"):  # MicroPython
    gc.threshold(4096)

try:
    _FILE = __file__
except NameError:  # a port that runs main.py without setting __file__
    _FILE = "main.py"
HERE = _FILE.rsplit("/", 1)[0] if "/" in _FILE else "."
if HERE not in sys.path:
    sys.path.insert(0, HERE)
sys.path.append(HERE + "/../boards")  # a checkout; on a device the board file is board.py
try:
    import os

    _mpy = os.getenv("OPTOREAD_MPY") if hasattr(os, "getenv") else None
    if _mpy:  # precompiled modules, as on a board
        sys.path.insert(0, _mpy)
except ImportError:
    os = None

import asyncio  # noqa: E402
import select  # noqa: E402

from optoread.compat import ticks_diff, unload  # noqa: E402
from optoread.device import console as con  # noqa: E402
from optoread.device import services as device  # noqa: E402
from optoread.device.reader import MeterProfiles, Reader  # noqa: E402  (services has loaded it)
from optoread.errors import INTERRUPTED, DeadlineError  # noqa: E402

try:
    import machine  # noqa: E402
except ImportError:
    machine = None

_UNIX = sys.platform in ("linux", "darwin")
_MAX_LINE = 512
_POLL_MS = 20
_BUSY_POLL_MS = 50  # during a reading: how often the console's input is looked at


def _getenv(name):
    if os is not None and hasattr(os, "getenv"):
        return os.getenv(name)
    return None


def load_board():
    """The board file: ``board.py`` on a device, ``boards/<OPTOREAD_BOARD>.py`` on the unix port."""
    name = _getenv("OPTOREAD_BOARD")
    if not name and not _UNIX:
        try:
            import board  # pyright: ignore[reportMissingImports]

            return board
        except ImportError:
            name = {"rp2": "pico", "esp32": "esp32_devkitc"}.get(sys.platform, "pico")
    return __import__(name or "unix")


def _path(base, name):
    return base.rstrip("/") + "/" + name


# ---------------------------------------------------------------- LED, buzzer, display


class Ui:
    """Status LED, buzzer and optional SSD1306 of a board; every part is optional."""

    def __init__(self, board, store=None):
        self.board = board
        self.store = store
        self.state = "idle"  # idle | reading | ok | noanswer | failed
        self.changed = asyncio.Event()
        self.led = None
        self.pwm = None
        self.oled = None
        self._timer = None
        self._active_low = bool(getattr(board, "LED_ACTIVE_LOW", False))
        self._lit = False
        if machine is None or not hasattr(machine, "Pin"):
            return
        Pin = machine.Pin
        led = getattr(board, "LED", None)
        if led is not None:
            try:
                self.led = Pin(led, Pin.OUT)
                self.set_led(False)
            except Exception:
                self.led = None
        buz = getattr(board, "BUZZER", None)
        if buz is not None and hasattr(machine, "PWM"):
            try:
                self.pwm = machine.PWM(Pin(buz))
                self.pwm.duty_u16(0)
            except Exception:
                self.pwm = None
        if getattr(board, "I2C", None) and hasattr(machine, "I2C"):
            from optoread.device import display  # boards with a display only (RAM)

            self.oled = display.open_display(board, machine)
            if self.oled is None:
                unload("device.display")

    def set_led(self, on):
        self._lit = on
        if self.led is not None:
            self.led.value(1 if on != self._active_low else 0)

    def _toggle(self, _t=None):
        self.set_led(not self._lit)

    def beep(self, freq, ms):
        """Blocking beep (short: only used at the end of a reading)."""
        if self.pwm is None:
            return
        try:
            self.pwm.freq(freq)
            self.pwm.duty_u16(32768)
            _sleep_ms(ms)
        finally:
            self.pwm.duty_u16(0)

    def reading(self, on):
        """Blink fast from a timer while a (blocking) reading runs; plain on without a timer."""
        if on:
            if self.state == "reading":
                return
            self.state = "reading"
            self.set_led(True)
            if self.led is not None and hasattr(machine, "Timer"):
                for tid in (-1, 0):
                    try:
                        self._timer = machine.Timer(tid)
                        self._timer.init(period=100, mode=machine.Timer.PERIODIC, callback=self._toggle)
                        break
                    except Exception:
                        self._timer = None
        else:
            if self._timer is not None:
                try:
                    self._timer.deinit()
                except Exception:
                    pass
                self._timer = None
            self.set_led(False)

    def outcome(self, outcome, summary, error):
        """The hook the console calls after every reading."""
        self.reading(False)
        self.state = outcome
        self.changed.set()
        if outcome == con.OK:
            self.beep(2700, 150)
        elif outcome == con.NO_ANSWER:
            for _ in range(3):
                self.beep(880, 80)
                _sleep_ms(80)
        else:
            self.beep(440, 600)
        if self.oled is not None:
            self.oled.summary(self.store, outcome, summary, error)

    async def led_task(self):
        """Idle: a short blink every 2 s. Outcome patterns play once, then back to idle."""
        while True:
            st = self.state
            if st == "ok":
                self.set_led(True)
                await asyncio.sleep_ms(1500)
                self.set_led(False)
            elif st == "noanswer":  # "check probe": 3 slow blinks, twice
                for _ in range(2):
                    for _ in range(3):
                        self.set_led(True)
                        await asyncio.sleep_ms(300)
                        self.set_led(False)
                        await asyncio.sleep_ms(300)
                    await asyncio.sleep_ms(700)
            elif st == "failed":  # a burst of fast blinks
                for _ in range(10):
                    self.set_led(True)
                    await asyncio.sleep_ms(60)
                    self.set_led(False)
                    await asyncio.sleep_ms(60)
            if self.state == st and st != "reading":
                self.state = "idle"
            self.set_led(True)
            await asyncio.sleep_ms(40)
            self.set_led(False)
            self.changed.clear()
            try:
                await asyncio.wait_for_ms(self.changed.wait(), 1960)
            except asyncio.TimeoutError:
                pass


def _sleep_ms(ms):
    import time

    if hasattr(time, "sleep_ms"):
        time.sleep_ms(ms)
    else:
        time.sleep(ms / 1000)


def button(board):
    """``pressed()`` of the board's push-button (to GND with a pull-up, or per BUTTON_PULL), or
    None without one."""
    pin_no = getattr(board, "BUTTON", None)
    if pin_no is None or machine is None or not hasattr(machine, "Pin"):
        return None
    Pin = machine.Pin
    pull = getattr(board, "BUTTON_PULL", "up")
    pull_arg = Pin.PULL_UP if pull == "up" else (Pin.PULL_DOWN if pull == "down" else None)
    try:
        pin = Pin(pin_no, Pin.IN, pull_arg) if pull_arg is not None else Pin(pin_no, Pin.IN)
    except Exception:
        return None
    level = 0 if pull != "down" else 1
    return lambda: pin.value() == level


async def button_task(pressed, ui, console, out):
    """The debounced button (``pressed()``): a press starts a reading."""
    if pressed is None:
        return
    stable = 0
    while True:
        await asyncio.sleep_ms(10)
        if pressed():
            stable += 1
            if stable == 3:  # 30 ms of the same level: a press, not a bounce
                out.write("\r\nbutton: reading\r\n")
                try:
                    console.read()
                except Exception as e:  # console.read reports its own; this is a last resort
                    out.write("read crashed: %s\r\n" % e)
                    ui.outcome(con.FAILED, None, str(e))
                console.prompt()
        else:
            stable = 0


# ---------------------------------------------------------------- console on stdin/stdout


class StreamOut:
    """``write(str)`` onto stdout's byte stream (USB CDC on a board)."""

    def __init__(self, stream):
        self.b = getattr(stream, "buffer", None)
        self.s = stream

    def write(self, text):
        if self.b is not None:
            self.b.write(text.encode())
        else:
            self.s.write(text)


class Lines:
    """Command lines from the console's input, polled a byte at a time: ``\\r``, ``\\n`` or
    ``\\r\\n`` end a line, backspace edits, ^C/^U drop what was typed, a line longer than
    ``_MAX_LINE`` is refused whole (never run cut short)."""

    def __init__(self, inp):
        self.inp = inp
        self.poller = select.poll()
        self.poller.register(inp, select.POLLIN)
        self.line = bytearray()
        self.over = False
        self.last = 0
        self.ended = False  # end of input (unix port; a board's USB CDC never ends)
        self.intr = False  # a ^C arrived (BusyLine stops a reading for it)

    def next(self):
        """``(text, too_long)`` of the next complete line, or None when none is there yet."""
        while not self.ended and self.poller.poll(0):
            try:
                b = self.inp.read(1)
            except OSError:  # the pty's other side went away
                b = b""
            if not b:
                self.ended = True
                return None
            c = b[0]
            if c == 0x0A and self.last == 0x0D:  # \r\n counts as one line end
                self.last = c
                continue
            self.last = c
            if c in (0x0A, 0x0D):
                text, over = bytes(self.line), self.over
                self.line = bytearray()
                self.over = False
                return text, over
            if c in (0x08, 0x7F):
                if self.line:
                    self.line = self.line[:-1]
            elif c == 0x03 or c == 0x15:  # ^C / ^U: drop the line typed so far
                self.line = bytearray()
                self.over = False
                self.intr = c == 0x03
            elif len(self.line) < _MAX_LINE:
                self.line.append(c)
            else:
                self.over = True
        return None


def _too_long(console, text):
    console.out.write("%s line too long (more than %d bytes): ignored\r\n"
                      % ("@err" if text[:1] == b"@" else "error:", _MAX_LINE))
    console.prompt()


class BusyLine:
    """The probe's transport while a reading runs: between the probe's reads (every
    ``_BUSY_POLL_MS`` at most) the console's input is read and answered (``status``, ``abort``;
    anything else: busy), so the console answers throughout a reading. ``abort`` makes the next
    read raise, and the reading is committed incomplete ("stopped at the console"); ^C at the
    console or a press of the button (``pressed()``, once released since the reading began) the
    same, "interrupted by the user". What was read until then is kept."""

    def __init__(self, transport, console, lines, pressed=None):
        self.t = transport
        self.console = console
        self.lines = lines
        self.pressed = pressed
        self.up = False  # the button was seen released since the reading began
        self.deadline = None  # the reading's, set by the reader (driver)
        self.aborted = None  # why the reading stops (None: it goes on)
        lines.intr = False
        self._polled = transport.ticks_ms()

    # The transport's other calls, passed on (no __getattr__: a bound method made per call would
    # be an allocation per frame and per read).
    def write(self, data):
        return self.t.write(data)

    def drain(self):
        return self.t.drain()

    def set_line(self, baud, bits, parity, stop=1):
        return self.t.set_line(baud, bits, parity, stop)

    def sleep_ms(self, ms):
        return self.t.sleep_ms(ms)

    def ticks_ms(self):
        return self.t.ticks_ms()

    def close(self):
        return self.t.close()

    def _serve(self):
        item = self.lines.next()
        while item is not None:
            text, over = item
            if over:
                _too_long(self.console, text)
            elif self.console.handle_busy_line(text):
                self.aborted = "stopped at the console ('abort')"
            item = self.lines.next()
        p = self.pressed
        if self.lines.intr or (p is not None and p() and self.up):
            self.aborted = INTERRUPTED
        elif p is not None and not p():
            self.up = True

    def readinto(self, buf, timeout_ms):
        t = self.t
        start = t.ticks_ms()
        while True:
            if self.aborted:
                raise DeadlineError(self.aborted)
            now = t.ticks_ms()
            if ticks_diff(now, self._polled) >= _BUSY_POLL_MS:
                self._polled = now
                self._serve()
                continue
            left = timeout_ms - ticks_diff(now, start)
            if left <= 0:
                return 0
            n = t.readinto(buf, min(left, _BUSY_POLL_MS))
            if n:
                return n


async def console_task(console, lines):
    """Run command lines from ``lines`` (a :class:`Lines`). Returns at end of input (unix port) or
    after ``maintenance``."""
    while True:
        item = lines.next()
        if item is None:
            if lines.ended:
                return
            await asyncio.sleep_ms(_POLL_MS)
            continue
        text, over = item
        if over:
            _too_long(console, text)
            continue
        try:
            console.handle_line(text)
        except Exception as e:  # handle_line answers errors itself; last resort
            console.out.write("error: %s\r\n" % e)
            console.prompt()
        if console.maintenance:  # `maintenance` (with the PIN): main.py ends, the REPL follows
            return


def _raw_tty(fd):
    """Unix port: raw mode on a terminal stdin; returns the attributes to restore, or None."""
    try:
        import termios  # pyright: ignore[reportMissingImports]

        old = termios.tcgetattr(fd)
        termios.setraw(fd)
        return old
    except Exception:
        return None


def _restore_tty(fd, old):
    if old is None:
        return
    try:
        import termios  # pyright: ignore[reportMissingImports]

        termios.tcsetattr(fd, termios.TCSANOW, old)
    except Exception:
        pass


def open_store(board):
    """Mount the store (unix: the LittleFS image at FLASH_MOUNT first); (store, report)."""
    image = getattr(board, "STORE_IMAGE", None)
    flash = getattr(board, "FLASH_MOUNT", "/")
    if image:
        device.mount_image(image, flash)
    return device.open_store(getattr(board, "STORE_DIR", _path(flash, "data")))


def read_device_id(path):
    """The device's id (``device.settings.device_id``: the board's unique id, else one made at
    first boot). Its own frame: ``run`` never returns, and a module bound there would stay."""
    from optoread.device import settings

    try:
        return settings.device_id(path, getattr(machine, "unique_id", lambda: None)())
    finally:
        unload("device.settings")


def make_reader_factory(board, store, plans, profiles, config, clock, device_id=None):
    """``factory(progress) -> Reader`` on a freshly opened probe (closed by the console).

    On the unix board the config key ``probe`` (``pty:PATH``, ``tcp:HOST:PORT``) overrides
    the board's ``PROBE`` so one running device can read meters on different lines.
    """

    def factory(progress):
        spec = config.get("probe") if getattr(board, "PROBE", None) else None
        if spec:
            from optoread.device import unixport

            t = unixport.open_spec(spec)
        else:
            from optoread.device import probe

            t = probe.open_probe(board)
        try:
            facts = [("device.id", device_id), ("device.clock", clock.source or "unknown")]
            if clock.set_at is not None:
                facts.append(("device.clock_set", clock.set_at))
            return Reader(t, store, plans=plans, profiles=profiles, clock=clock.reading_time,
                          progress=progress, dlms=device.dlms_defaults(con.dlms_settings(config)),
                          deadline_s=config.get("deadline_s"), facts=facts)
        except Exception:
            t.close()
            raise

    return factory


async def run(board):
    out = StreamOut(sys.stdout)
    store, report = open_store(board)
    flash = getattr(board, "FLASH_MOUNT", "/")
    config = con.Config(_path(flash, "config.json"))
    plans = device.load_plans(HERE + "/plans", _path(flash, "plans"))
    profiles = MeterProfiles(_path(flash, "meters.json"))
    # The unix port's time is the host's; a board's RTC starts at a fixed date at power-up.
    clock = con.DeviceClock("system" if _UNIX else None)
    ui = Ui(board, store)
    device_id = read_device_id(_path(flash, "device_id"))
    factory = make_reader_factory(board, store, plans, profiles, config, clock, device_id)
    pressed = button(board)

    inp = getattr(sys.stdin, "buffer", sys.stdin)
    lines = Lines(inp)

    def factory_with_ui(progress):
        ui.reading(True)  # the fast blink runs from here until the console reports the outcome
        rd = factory(progress)
        rd.transport = BusyLine(rd.transport, console, lines, pressed)  # the console answers meanwhile
        return rd

    console = con.Console(store, out, factory_with_ui, plans=plans, config=config, clock=clock,
                          meters=profiles, on_read=ui.outcome)
    console.device_id = device_id
    torn = "" if report.torn == 0 else ", %d interrupted sessions sealed" % report.torn
    if report.damaged or report.unreadable:  # kept and listed, never deleted (docs/fault-matrix.md)
        torn += ", %d damaged and %d unreadable sessions kept (see list)" % (
            report.damaged, report.unreadable)
    out.write("optoread %s on %s: %d sessions, %d not downloaded%s; type help\r\n" % (
        con.__version__, getattr(board, "NAME", "?"), report.sessions,
        store.space()["unacked_sessions"], torn))
    for problem in (config.problem, profiles.problem):  # a settings file repaired at load
        if problem:
            out.write("warning: %s\r\n" % problem)
            ui.outcome(con.FAILED, None, problem)  # the failure pattern: look at the console
    console.prompt()
    if hasattr(gc, "threshold"):  # the boot imports are done: collect less often while reading
        gc.threshold(device.GC_THRESHOLD_RUN)
    asyncio.create_task(ui.led_task())
    asyncio.create_task(button_task(pressed, ui, console, out))
    await console_task(console, lines)


def _kbd_intr(c):
    """^C at the console: -1 while the firmware runs (the REPL, and config.json with the
    credentials in it, only through `maintenance` with the PIN), 3 again when it ends."""
    try:
        import micropython

        micropython.kbd_intr(c)
    except (ImportError, AttributeError):
        pass


def main():
    board = load_board()
    old = _raw_tty(0) if _UNIX else None
    _kbd_intr(-1)
    try:
        asyncio.run(run(board))
    finally:
        _kbd_intr(3)
        _restore_tty(0, old)


main()
