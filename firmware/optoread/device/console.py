"""The device's line console over USB CDC: commands for a person and a framed download for the laptop.

Sans-IO: :meth:`Console.handle_line` takes one command line and writes its answer to
``out.write(str)``; ``firmware/main.py`` owns stdin/stdout and feeds it lines. Every answer
ends with the prompt ``"> "`` (no newline after it).

Machine commands (every output line starts with ``@``; the wire protocol shared with
``optoread download``)::

    @hello            -> @ok optoread <version> sessions=<n> pending=<n> acked=<seq> id=<device id>
    @list             -> @s <seq> <size> <complete 0|1> <downloaded 0|1> <crc32 8hex> ... @end <count>
    @get <seq> <off>  -> @f <frame_no> <seq> <offset> <len> <crc32 8hex> <base64> ...
                         @e <seq> <total_size> <crc32 of the session 8hex> <frames>
    @ack <seq>        -> @ok acked=<seq> freed=<bytes>
    @clock <epoch>    -> @ok clock <epoch> was=<laptop|console|system|unknown>   (needs the PIN)
    errors            -> @err <text>

``@get`` sends the session's raw stored records (``Store.read_raw``) from byte ``off`` in
frames of at most 192 payload bytes; the laptop checks each frame's CRC-32 and the
whole-session CRC-32 and decodes the records with ``optoread.store``'s parser. ``@ack``
marks sessions up to ``seq`` downloaded and reclaims them at once (only acknowledged
sessions are ever deleted, oldest first). Without the PIN it takes only sessions whose whole
content ``@get`` sent since the last ``@hello`` (what the laptop fetched and checked), and never
a sequence number beyond the newest session.

The device PIN (4 to 12 digits, chosen from the laptop at first boot: ``pin set NEW``; kept as a
salted, iterated SHA-256 in ``config.json``) guards what a stranger with a USB cable must not
do: ``erase``, ``config set`` of a secret, ``clock set`` and ``@clock``, ``pin set`` once a PIN
exists, ``@ack`` of sessions nobody fetched, ``maintenance``. ``unlock PIN`` opens them until
``lock``, ``@hello`` or 5 minutes without a command; three wrong PINs in a row shut ``unlock``
for a minute.

Human commands: ``help``, ``status``, ``read [PLAN] [--meter ID]``, ``list``, ``show N``,
``plans``, ``meters``, ``config get [KEY]``, ``config set KEY VALUE``,
``clock set YYYY-MM-DDTHH:MM:SS``, ``erase --yes [--force]``, ``pin set NEW``, ``unlock PIN``,
``lock``, ``maintenance``. Secrets (password, keys, the PIN) are never written back:
``config get`` shows them as ``***``.

``read`` runs the reader to the end before the console answers anything else (on the
device that blocks the loop for the reading's duration, as the probe needs the CPU anyway);
progress lines are written as the reading goes. ``config set heapwatch on`` makes every reading
report the lowest free heap seen (a collection and ``gc.mem_free()`` at every progress message
and every profile row block the store writes): the device's RAM margin, as ``make bench``
measures it on the emulated Pico.
"""

# Store sessions and the reader are duck-typed; pyright cannot see through the factories.
# pyright: reportOptionalMemberAccess=false, reportAttributeAccessIssue=false, reportArgumentType=false

import time
from binascii import b2a_base64

from optoread import __version__
from optoread.compat import const, heap_free, unload
from optoread.crc import crc32
from optoread.dlms.axdr.decode import from_epoch
from optoread.errors import ConsoleError, NoAnswerError, OptoreadError, StoreError

FRAME_PAYLOAD = const(192)  # payload bytes per @f frame (256 base64 characters)
PROMPT = "> "
SECRET_KEYS = ("password", "ek", "ak", "key", "secret", "pin")
PIN_KEY = "pin"  # config key of the PIN's salted hash (device.access)
_UNLOCK_S = const(300)  # an unlocked console locks again after 5 minutes without a command
_EPOCH_2000 = const(946684800)

# Outcomes reported to the UI hook (LED/buzzer/display patterns in main.py).
OK = "ok"
NO_ANSWER = "noanswer"
FAILED = "failed"



def is_secret(key):
    """True for config keys whose values are never shown (passwords and keys)."""
    k = key.lower()
    for s in SECRET_KEYS:
        if k == s or k.endswith("_" + s) or (len(s) > 2 and s in k):
            return True
    return False


def _hex8(v):
    return "%08x" % (v & 0xFFFFFFFF)


def iso(t):
    """Epoch seconds as ``YYYY-MM-DDTHH:MM:SS`` (``-`` for None, the value itself if not a time)."""
    if t is None:
        return "-"
    try:
        y, mo, d, h, mi, s, _ = from_epoch(int(t))
    except (TypeError, ValueError, OptoreadError):
        return str(t)
    return "%04d-%02d-%02dT%02d:%02d:%02d" % (y, mo, d, h, mi, s)


def _digits(text):
    """True for a non-empty run of ASCII digits (str.isdigit also takes "²", which int() refuses)."""
    if not text:
        return False
    for c in text:
        if not "0" <= c <= "9":
            return False
    return True


# ---------------------------------------------------------------- configuration


class Config:
    """Settings in a small JSON file (``<flash>/config.json``, written by :mod:`.settings`: a
    power cut leaves the old or the new version; :attr:`problem` says when it had to be
    repaired at load).

    ``path`` None keeps them in RAM only (tests). Values set from the console are stored
    as ints when they are decimal numbers (except secrets, which stay text).
    """

    def __init__(self, path=None, data=None, fs=None):
        self.path = path
        self.fs = fs
        self.data = dict(data) if data else {}
        self.problem = None
        if path and data is None:
            from optoread.device import settings

            self.data, self.problem = settings.load(path, fs)
            unload("device.settings")

    def get(self, key, default=None):
        return self.data.get(key, default)

    def is_secret(self, key):
        """True for a key whose value is never shown (passwords, keys, the PIN)."""
        return is_secret(key)

    def keys(self):
        return sorted(self.data)

    def set(self, key, value):
        """Set ``key`` (text from the console: decimal numbers become ints) and save."""
        if isinstance(value, str) and not is_secret(key):
            v = value[1:] if value[:1] == "-" else value
            if _digits(v):
                value = int(value)
            elif value in ("true", "false"):
                value = value == "true"
        self.data[key] = value
        self.save()

    def save(self):
        if self.path:
            from optoread.device import settings

            settings.save(self.path, self.data, self.fs)
            unload("device.settings")


def _key_bytes(v):
    """A key or password from config text: ``hex:0011..`` or plain text -> bytes."""
    if v is None or isinstance(v, (bytes, bytearray)):
        return v
    v = str(v)
    if v.startswith("hex:"):
        from binascii import unhexlify

        try:
            return unhexlify(v[4:])
        except ValueError:
            raise ConsoleError("bad hex value", field="config")
    return v.encode()


def dlms_settings(config):
    """The Reader's DLMS defaults (``Reader(dlms=...)``) from a :class:`Config` (or dict)."""
    get = config.get
    out = {}
    for k in ("client", "server", "physical", "address_size", "auth", "link", "baud", "max_info",
              "max_pdu"):
        v = get(k)
        if v is not None:
            out[k] = v
    for k in ("password", "ek", "ak", "system_title"):
        v = get(k)
        if v is not None:
            out[k] = _key_bytes(v)
    if get("ciphered") is not None:
        out["ciphered"] = bool(get("ciphered"))
    return out


# ---------------------------------------------------------------- clock


class DeviceClock:
    """The device clock as epoch seconds (1970). ``set`` writes the board RTC where there is
    one (``machine.RTC``) and otherwise keeps an offset to the system time (unix port).

    ``source``: where its time came from: None until set (a board's RTC starts at a fixed date
    after power-up: the time is unknown), ``"system"`` (the unix port's host clock), ``"laptop"``
    (``@clock`` from ``optoread download``) or ``"console"`` (``clock set``); ``set_at``: when.
    """

    def __init__(self, source=None):
        self.offset = 0
        self.source = source
        self.set_at = None

    def reading_time(self):
        """The time for a session's head: None while the clock was never set (unknown)."""
        return None if self.source is None else self.now()

    def _raw(self):
        t = int(time.time())
        if t < _EPOCH_2000:  # a 2000-epoch port
            t += _EPOCH_2000
        return t

    def now(self):
        return self._raw() + self.offset

    def set(self, epoch, source="console"):
        """Set the clock to ``epoch`` seconds; returns True if the hardware RTC was written."""
        self.source = source
        self.set_at = epoch
        try:
            import machine

            rtc = machine.RTC()
        except (ImportError, AttributeError):
            rtc = None
        if rtc is not None:
            y, mo, d, h, mi, s, wd = from_epoch(epoch)
            rtc.datetime((y, mo, d, wd - 1, h, mi, s, 0))  # RTC weekday: 0 = Monday
            self.offset = epoch - self._raw()  # 0 unless the port's time() ignores the RTC
            return True
        self.offset = epoch - self._raw()
        return False


# ---------------------------------------------------------------- the console


class _Frames:
    """Sink for ``Store.read_raw``: CRC of the whole session, 192-byte frames from ``start``."""

    def __init__(self, console, seq, start, send):
        self.c = console
        self.seq = seq
        self.start = start
        self.send = send
        self.pos = 0  # session bytes seen
        self.crc = 0
        self.buf = console._frame
        self.n = 0  # bytes pending in buf
        self.at = start  # session offset of buf[0]
        self.frames = 0

    def __call__(self, chunk):
        self.crc = crc32(chunk, self.crc)
        k = len(chunk)
        if not self.send:
            self.pos += k
            return
        i = 0
        if self.pos < self.start:  # skip what the laptop already has
            i = self.start - self.pos
            if i > k:
                i = k
        self.pos += k
        buf = self.buf
        while i < k:
            m = FRAME_PAYLOAD - self.n
            if m > k - i:
                m = k - i
            buf[self.n:self.n + m] = chunk[i:i + m]
            self.n += m
            i += m
            if self.n == FRAME_PAYLOAD:
                self.flush()

    def flush(self):
        n = self.n
        if not n:
            return
        mv = memoryview(self.buf)[:n]
        b64 = b2a_base64(mv)
        self.c.out.write("@f %d %d %d %d %s " % (self.frames, self.seq, self.at, n, _hex8(crc32(mv))))
        # b2a_base64 ends with a newline on every port; the frame line needs \r\n.
        self.c.out.write(b64[:-1].decode() if b64[-1:] == b"\n" else b64.decode())
        self.c.out.write("\r\n")
        self.frames += 1
        self.at += n
        self.n = 0


class Console:
    """The console's command interpreter (sans-IO).

    ``store``: a mounted :class:`optoread.store.Store`; ``out``: anything with
    ``write(str)``; ``reader_factory(progress)`` -> an object with ``read(plan, meter_id)``
    returning the committed session summary (``optoread.reader.Reader``); its
    ``transport.close()`` is called afterwards if it has one. ``plans``: name -> plan
    dict; ``config``: a :class:`Config` (a dict is wrapped in one, kept in RAM);
    ``clock``: an object with ``now()`` and ``set(epoch)`` (default :class:`DeviceClock`);
    ``meters``: a ``reader.MeterProfiles`` (for ``meters``); ``on_read(outcome, summary,
    error)`` is called after every reading (LED, buzzer, display).
    """

    def __init__(self, store, out, reader_factory=None, plans=None, config=None, clock=None,
                 meters=None, on_read=None):
        self.store = store
        self.out = out
        self.reader_factory = reader_factory
        self.plans = plans if plans is not None else {}
        if config is None or isinstance(config, dict):
            config = Config(None, config or {})
        self.config = config
        self.clock = clock if clock is not None else DeviceClock()
        self.meters = meters
        self.on_read = on_read
        self.busy = False  # a reading is running
        self.last = None  # (outcome, summary or None, error text or None) of the last reading
        self.heap_low = None  # lowest free heap seen during the last reading (config heapwatch)
        self._frame = bytearray(FRAME_PAYLOAD)
        self.unlocked_at = None  # clock time of the last command while unlocked (None: locked)
        self.fetched = set()  # sessions @get sent whole since the last @hello
        self.device_id = None  # said in @hello (main.py sets it)
        self.wrong_pins = 0  # wrong PINs in a row (device.access)
        self.wrong_at = 0
        self.maintenance = False  # set by `maintenance`: main.py leaves for the REPL

    # -- output helpers
    def _w(self, line):
        self.out.write(line)
        self.out.write("\r\n")

    def say(self, line):
        """Write one answer line (for the commands loaded on first use, ``device.access``)."""
        self._w(line)

    def prompt(self):
        """Write the prompt (after every answer, and once at start-up)."""
        self.out.write(PROMPT)

    # -- dispatch
    def handle_line(self, line):
        """Run one command line; its answer (and then the prompt) goes to ``out``.

        Never raises for bad input or a failing command: errors are answered
        (``@err ...`` for machine commands) and the console carries on.
        """
        if isinstance(line, (bytes, bytearray)):
            try:
                line = bytes(line).decode()
            except UnicodeError:
                self._w("error: input is not UTF-8 text")
                self.prompt()
                return
        words = line.strip().split()
        if words:
            machine_cmd = words[0][:1] == "@"
            try:
                self._dispatch(words)
            except Exception as e:  # a failing command must never stop the console
                text = str(e) if isinstance(e, OptoreadError) else "%s: %s" % (type(e).__name__, e)
                if machine_cmd:
                    self._w("@err " + text)
                else:
                    self._w("error: " + text)
        self.prompt()

    def handle_busy_line(self, line):
        """A line typed while a reading runs (main.py reads them between the probe's reads):
        ``abort`` stops the reading (True is returned: it is committed incomplete), ``status``
        says what runs, anything else is told to wait; every answer ends with the prompt."""
        if isinstance(line, (bytes, bytearray)):
            line = bytes(line).decode("utf-8", "replace")
        words = line.strip().split()
        stop = False
        if words:
            cmd = words[0]
            if cmd == "abort":
                self._w("abort: the reading stops (kept, incomplete)")
                stop = True
            elif cmd[:1] == "@":
                self._w("@err busy: a reading is running")
            elif cmd == "status":
                self._w("reading in progress ('abort' stops it; it ends by its deadline in any case)")
            else:
                self._w("busy: a reading is running ('status', or 'abort' to stop it)")
        self.prompt()
        return stop

    def _dispatch(self, words):
        cmd = words[0]
        args = words[1:]
        if self.unlocked_at is not None:
            now = self.clock.now()
            if now - self.unlocked_at > _UNLOCK_S or now < self.unlocked_at:
                self.unlocked_at = None  # idle too long (or the clock went back): locked again
            else:
                self.unlocked_at = now
        if cmd[:1] == "@":
            fn = _MACHINE.get(cmd)
            if fn is None:
                self._w("@err unknown command")
                return
            fn(self, args)
            return
        fn = _HUMAN.get(cmd.lower())
        if fn is None:
            self._w("unknown command %r: type help" % cmd[:20])
            return
        fn(self, args)

    # -- machine commands
    def _seq_arg(self, args, i):
        if len(args) <= i or not _digits(args[i]):
            raise ConsoleError("usage: sequence number expected", field="seq")
        return int(args[i])

    def m_hello(self, args):
        self.fetched = set()  # a new laptop conversation: it has fetched nothing yet
        self.unlocked_at = None
        st = self.store
        sp = st.space()  # counts from the store's index: no summaries, no query module
        self._w("@ok optoread %s sessions=%d pending=%d acked=%d%s"
                % (__version__, sp["sessions"], sp["unacked_sessions"], st.acked,
                   " id=%s" % self.device_id if self.device_id else ""))

    def m_clock(self, args):
        from optoread.device import access  # @clock EPOCH (PIN): rare, off the heap while reading

        access.set_clock(self, args)
        unload("device.access")

    def _session_crc(self, seq):
        f = _Frames(self, seq, 0, False)
        self.store.read_raw(seq, f)
        return f.crc

    def m_list(self, args):
        st = self.store
        n = st.count()
        for i in range(n):  # one summary at a time, from the store's index
            s = st.summary(i)
            c = self._session_crc(s.seq)
            self._w("@s %d %d %d %d %s" % (s.seq, s.size, 1 if s.complete else 0, 1 if s.downloaded else 0,
                                           _hex8(c)))
        self._w("@end %d" % n)

    def m_get(self, args):
        seq = self._seq_arg(args, 0)
        off = 0
        if len(args) > 1:
            if not _digits(args[1]):
                self._w("@err bad offset")
                return
            off = int(args[1])
        try:
            s = self.store.session(seq)
        except StoreError:
            self._w("@err no such session %d" % seq)
            return
        if off > s.size:
            self._w("@err bad offset")
            return
        f = _Frames(self, seq, off, True)
        self.store.read_raw(seq, f)
        f.flush()
        self._w("@e %d %d %s %d" % (seq, s.size, _hex8(f.crc), f.frames))
        self.fetched.add(seq)

    def m_ack(self, args):
        seq = self._seq_arg(args, 0)
        st = self.store
        n = st.count()
        top = st.summary(n - 1).seq if n else st.acked
        if seq > top:
            seq = top  # never a session that does not exist yet
        if self.unlocked_at is None:
            for i in range(n):
                s = st.summary(i)
                if s.seq > seq:
                    break
                if not s.downloaded and s.seq not in self.fetched:
                    raise ConsoleError("session %d was not fetched with @get since @hello: not acknowledged"
                                       % s.seq, field="seq")
        acked = st.ack(seq)
        freed = self.reclaim()
        self._w("@ok acked=%d freed=%d" % (acked, freed))

    def _has(self, seq):
        try:
            self.store.session(seq)
        except StoreError:
            return False
        return True

    def reclaim(self):
        """Delete every acknowledged session; return the bytes of session data deleted."""
        before = self.store.space()["reclaimable"]
        self.store.reclaim()
        return before - self.store.space()["reclaimable"]

    # -- the device PIN
    def need_pin(self, what):
        """Raise ConsoleError unless the console is unlocked (``what``: the command, for the message)."""
        if self.unlocked_at is not None:
            return
        if not self.config.get(PIN_KEY):
            raise ConsoleError("%s needs the device PIN, and none is set yet: choose one with "
                               "'pin set NEW' (optoread pin --port DEV)" % what, field="pin")
        raise ConsoleError("%s needs the device PIN: 'unlock PIN' first" % what, field="pin")

    def h_unlock(self, args):
        from optoread.device import access  # PIN checks: rare, and off the heap while reading

        access.unlock(self, args)
        unload("device.access")

    def h_lock(self, args):
        self.unlocked_at = None
        self._w("locked")

    def h_pin(self, args):
        from optoread.device import access

        access.set_pin(self, args)
        unload("device.access")

    def h_maintenance(self, args):
        self.need_pin("maintenance")
        self.maintenance = True  # main.py's loop sees it after this answer
        self._w("maintenance: leaving the firmware for the REPL (reset the board to come back)")

    # -- human commands
    def h_help(self, args):
        from optoread.device import console_help  # ~1.2 KB of text: on the heap only for `help`

        for line in console_help.LINES:
            self._w(line)
        unload("device.console_help")

    def h_status(self, args):
        self._admin("status", args)

    def h_config(self, args):
        self._admin("config", args)

    def h_erase(self, args):
        self._admin("erase", args)

    def _admin(self, name, args):
        from optoread.device import console_admin  # status, config, erase: loaded for the command (RAM)

        try:
            getattr(console_admin, name)(self, args, iso)
        finally:
            unload("device.console_admin")

    def h_read(self, args):
        plan = None
        meter = None
        i = 0
        while i < len(args):
            a = args[i]
            if a == "--meter":
                if i + 1 >= len(args):
                    raise ConsoleError("usage: read [PLAN] [--meter ID]", field="args")
                meter = args[i + 1]
                i += 2
                continue
            if plan is None and a[:2] != "--":
                plan = a
            else:
                raise ConsoleError("usage: read [PLAN] [--meter ID]", field="args")
            i += 1
        self.read(plan, meter)

    def read(self, plan=None, meter=None):
        """One reading (console ``read`` and the button): progress lines, then the outcome.

        Returns ``(outcome, summary or None, error text or None)``; never raises.
        """
        if plan is None:
            plan = self.config.get("plan") or None
        if self.reader_factory is None:
            self._w("read: no probe on this console")
            return FAILED, None, "no reader"
        if self.busy:
            self._w("read: a reading is already running")
            return FAILED, None, "busy"
        self.busy = True
        self._w("reading%s%s ..." % (" plan " + plan if plan else "", " meter " + meter if meter else ""))
        # heapwatch: the lowest free heap (after a collection) at every progress message and every
        # profile row block the store writes: the device's RAM margin, measured (make bench).
        watch = self.config.get("heapwatch") in (True, "on")  # Config.set made "true" and "1" True, 1
        self.heap_low = None
        if watch:
            self._sample_heap()
            self.store.watch = self._sample_heap
        summary = None
        err = None
        rd = None
        try:
            rd = self.reader_factory(self._progress)
            summary = rd.read(plan, meter)
            if summary.complete:
                outcome = OK
            else:
                err = summary.error or "incomplete"
                outcome = NO_ANSWER if "no answer" in err else FAILED
        except NoAnswerError as e:
            outcome, err = NO_ANSWER, str(e)
        except Exception as e:  # a crash in one reading must not stop the device
            outcome = FAILED
            err = str(e) if isinstance(e, OptoreadError) else "%s: %s" % (type(e).__name__, e)
            self._seal_open_session(err)
        finally:
            self.busy = False
            if watch:
                self.store.watch = None
                self._sample_heap()
            t = getattr(rd, "transport", None)
            if t is not None and hasattr(t, "close"):
                try:
                    t.close()
                except Exception:
                    pass
        if summary is not None:
            self._w("session %d: %s %s, %d values, %d rows%s" % (
                summary.seq, summary.meter, "complete" if summary.complete else "incomplete",
                summary.values, summary.rows, " (%s)" % err if err else ""))
            if self.heap_low is not None:
                self._w("heap: lowest free %d bytes during the reading" % self.heap_low)
        else:
            self._w("read failed: %s" % err)
        if outcome == NO_ANSWER:
            self._w("no answer: check the probe is seated on the meter's optical port")
        self.last = (outcome, summary, err)
        if self.on_read is not None:
            try:
                self.on_read(outcome, summary, err)
            except Exception as e:
                self._w("display: %s" % e)
        return self.last

    def _seal_open_session(self, err):
        """A reading that crashed outside the reader's own error handling may leave its store
        session open; commit it incomplete so the next reading can begin."""
        try:
            self.store.abort_open("crashed: " + err)
        except Exception:  # the store itself is broken: the next mount seals the session
            pass

    def _progress(self, text):
        if self.heap_low is not None:
            self._sample_heap()
        self._w("  " + text)

    def _sample_heap(self):
        free = heap_free()
        if free is not None and (self.heap_low is None or free < self.heap_low):
            self.heap_low = free

    def h_show(self, args):
        if len(args) != 1 or not _digits(args[0]):
            raise ConsoleError("usage: show N", field="args")
        seq = int(args[0])
        if not self._has(seq):
            raise ConsoleError("no session %d" % seq, field="seq")
        from optoread.device import console_show  # for a person: off the heap while reading

        console_show.show(self.store, seq, self._w, iso)
        unload("device.console_show")

    def h_clock(self, args):
        self._admin("clock", args)

    def h_list(self, args):
        self._admin("sessions", args)

    def h_plans(self, args):
        self._admin("plans", args)

    def h_meters(self, args):
        self._admin("meters", args)

_MACHINE = {
    "@hello": Console.m_hello,
    "@clock": Console.m_clock,
    "@list": Console.m_list,
    "@get": Console.m_get,
    "@ack": Console.m_ack,
}

_HUMAN = {
    "help": Console.h_help,
    "?": Console.h_help,
    "status": Console.h_status,
    "read": Console.h_read,
    "list": Console.h_list,
    "show": Console.h_show,
    "plans": Console.h_plans,
    "meters": Console.h_meters,
    "config": Console.h_config,
    "clock": Console.h_clock,
    "erase": Console.h_erase,
    "pin": Console.h_pin,
    "unlock": Console.h_unlock,
    "lock": Console.h_lock,
    "maintenance": Console.h_maintenance,
}
