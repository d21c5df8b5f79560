"""``optoread download`` and ``optoread export``: fetch the device's sessions into SQLite, verified.

    optoread download --port DEV [--out readings.sqlite] [--csv DIR] [--json FILE]
    optoread export DB --csv DIR [--json FILE]

The laptop side of the console's machine protocol (see firmware/optoread/console.py):
``@hello``, ``@list`` (seq, size, complete, downloaded, CRC-32 per session), ``@get SEQ OFFSET``
(frames ``@f NO SEQ OFFSET LEN CRC32 BASE64`` then ``@e SEQ TOTAL CRC32 FRAMES``) and ``@ack SEQ``.

What makes it safe:

* every frame is checked (frame number, session, offset continuity, length, base64, CRC-32); on a
  bad frame the rest of that reply is drained and the session is asked for again from the last
  good offset;
* verified bytes of a session are kept in the database's ``staging`` table (committed every few
  kB and whenever the link fails), so after an unplug (port gone, I/O error, silence) the port is
  reopened and the download goes on from there, in the same run or a later one;
* a session is decoded with the firmware's own record parser and inserted in ONE transaction, only
  once its bytes match the whole-session CRC-32 announced by ``@list`` and ``@e``;
* ``@ack`` is sent after the commit, for the highest seq up to which every listed session is in
  the database (or was acknowledged before), so the device frees only what the laptop holds;
* sessions already stored, keyed by (device, seq, CRC), are skipped: running it twice adds nothing.
"""

import base64
import binascii
import os
import sqlite3
import sys
import time

from optoread.crc import crc32

from . import readings_db

MAX_FRAME = 192
DEFAULT_DEVICE = "optoread"
_STAGE_BYTES = 4096  # commit verified bytes to staging at least this often
_MAX_LINE = 65536  # a "line" longer than this is noise, not protocol
HELLO_TRIES = 3  # @hello attempts answered wrongly before a port is declared not an optoread device


class LinkLost(Exception):
    """The port failed or went silent; ``timeout`` tells which. The download reconnects and resumes."""

    def __init__(self, message, timeout=False):
        Exception.__init__(self, message)
        self.timeout = timeout


class ProtocolError(Exception):
    """The device answered something that does not follow the protocol."""


class DownloadError(Exception):
    """The download gave up (no device, or no progress after many attempts)."""


# ---------------------------------------------------------------- line link


class Link:
    """Line-oriented access to the console over a pyserial-like port.

    The port needs ``read(n)`` (returning b"" after its own short timeout), ``write(b)``,
    ``in_waiting``, ``reset_input_buffer()`` and ``close()``; pyserial's objects (device paths,
    ptys, ``loop://``, ``socket://``) have them. Any OSError/ValueError from the port (pyserial's
    SerialException is an OSError) becomes :class:`LinkLost`.
    """

    def __init__(self, port, timeout=10.0, clock=time.monotonic):
        self.port = port
        self.timeout = timeout
        self.clock = clock
        self._buf = bytearray()
        self.rx = 0

    def close(self):
        try:
            self.port.close()
        except (OSError, ValueError):
            pass

    def send(self, line):
        """Send one command line, discarding whatever is left of earlier output."""
        self._buf = bytearray()
        try:
            self.port.reset_input_buffer()
            self.port.write(line.encode() + b"\n")
        except (OSError, ValueError) as e:
            raise LinkLost("write failed: %s" % e)

    def _read(self):
        try:
            n = self.port.in_waiting
            return self.port.read(n if n else 1)
        except (OSError, ValueError) as e:
            raise LinkLost("read failed: %s" % e)

    def event(self, timeout=None):
        """The next ``("line", text)`` or ``("prompt", None)``; LinkLost after ``timeout`` s of silence.

        Lines end with "\\n" or "\\r\\n"; a prompt left in front of a line ("> @ok ...") is stripped.
        """
        if timeout is None:
            timeout = self.timeout
        deadline = self.clock() + timeout
        while True:
            buf = self._buf
            i = buf.find(b"\n")
            if i >= 0:
                raw = bytes(buf[:i])
                del buf[:i + 1]
                text = raw.decode("utf-8", "replace").strip("\r")
                while text.startswith(">"):
                    text = text[1:].lstrip(" ")
                return "line", text
            if buf.strip(b"\r") == b"> ":
                del buf[:]
                return "prompt", None
            if len(buf) > _MAX_LINE:
                del buf[:]
                return "line", ""
            chunk = self._read()
            if chunk:
                self.rx += len(chunk)
                buf += chunk
                deadline = self.clock() + timeout
            elif self.clock() >= deadline:
                raise LinkLost("no answer for %.1f s" % timeout, timeout=True)

    def at_lines(self, timeout=None):
        """Yield ``(tag, fields)`` for each "@" line and ``(">", None)`` for each prompt; ignore the rest."""
        while True:
            kind, text = self.event(timeout)
            if kind == "prompt":
                yield ">", None
            elif text.startswith("@"):
                parts = text.split()
                yield parts[0], parts[1:]

    def request(self, line, terminals):
        """Send ``line``; yield its "@" lines up to and including the first with a tag in ``terminals``.

        Afterwards the prompt is awaited briefly. A prompt before any "@" line is taken as a
        leftover of earlier output once; a second one means the device ignored the command.
        """
        self.send(line)
        seen = False
        prompts = 0
        for tag, fields in self.at_lines():
            if tag == ">":
                prompts += 1
                if seen or prompts > 1:
                    raise ProtocolError("no answer to %r before the prompt" % line)
                continue
            seen = True
            if tag in terminals:
                self.wait_prompt(quiet=True)
                yield tag, fields
                return
            yield tag, fields

    def wait_prompt(self, timeout=0.5, quiet=False):
        """Read up to the prompt (or ``timeout`` s of silence), ignoring everything before it.

        With ``quiet`` a failing port is not an error here either: the answer before the prompt
        is complete, and the next command will find out about the link.
        """
        try:
            while self.event(timeout)[0] != "prompt":
                pass
        except LinkLost as e:
            if not (e.timeout or quiet):
                raise


# ---------------------------------------------------------------- parsing replies


def _ints(fields, n, what):
    if len(fields) < n:
        raise ProtocolError("short %s line: %r" % (what, " ".join(fields)))
    try:
        return [int(f) for f in fields[:n]]
    except ValueError:
        raise ProtocolError("bad number in %s line: %r" % (what, " ".join(fields)))


def _hex32(text, what):
    if len(text) != 8:
        raise ProtocolError("bad CRC in %s line: %r" % (what, text))
    try:
        return int(text, 16)
    except ValueError:
        raise ProtocolError("bad CRC in %s line: %r" % (what, text))


def parse_hello(fields):
    """``@ok optoread VERSION key=value ...`` fields -> dict (``version`` plus the keys)."""
    if not fields or fields[0] != "optoread":
        raise ProtocolError("not an optoread device: %r" % " ".join(fields))
    out = {"version": fields[1] if len(fields) > 1 else ""}
    for f in fields[2:]:
        k, sep, v = f.partition("=")
        if sep:
            out[k] = v
    return out


class Listed:
    """One ``@s`` line of ``@list``."""

    def __init__(self, seq, size, complete, downloaded, crc):
        self.seq = seq
        self.size = size
        self.complete = complete
        self.downloaded = downloaded
        self.crc = crc

    @property
    def crc_text(self):
        return readings_db.crc_text(self.crc)

    def __repr__(self):
        return "Listed(%d, %d, %08x)" % (self.seq, self.size, self.crc)


def parse_s(fields):
    seq, size, complete, downloaded = _ints(fields, 4, "@s")
    if len(fields) != 5 or seq < 0 or size < 0:
        raise ProtocolError("bad @s line: %r" % " ".join(fields))
    return Listed(seq, size, bool(complete), bool(downloaded), _hex32(fields[4], "@s"))


class BadFrame(Exception):
    """A frame failed verification (the reply is abandoned and asked for again)."""


def check_frame(fields, frame_no, seq, offset):
    """Verify one ``@f`` line's fields; return the payload bytes or raise BadFrame."""
    if len(fields) != 6:
        raise BadFrame("frame has %d fields" % len(fields))
    try:
        no, fseq, foff, n = (int(f) for f in fields[:4])
        want = int(fields[4], 16)
    except ValueError:
        raise BadFrame("bad number in frame")
    if len(fields[4]) != 8:
        raise BadFrame("bad CRC field")
    if no != frame_no:
        raise BadFrame("frame %d where %d was due" % (no, frame_no))
    if fseq != seq:
        raise BadFrame("frame of session %d, asked for %d" % (fseq, seq))
    if foff != offset:
        raise BadFrame("frame at offset %d, expected %d" % (foff, offset))
    if n <= 0 or n > MAX_FRAME:
        raise BadFrame("frame length %d" % n)
    b64 = fields[5]
    if len(b64) != 4 * ((n + 2) // 3):
        raise BadFrame("base64 text of %d chars for %d bytes" % (len(b64), n))
    try:
        payload = base64.b64decode(b64, validate=True)
    except (binascii.Error, ValueError):
        raise BadFrame("bad base64")
    if len(payload) != n:
        raise BadFrame("frame says %d bytes, carries %d" % (n, len(payload)))
    if crc32(payload) != want:
        raise BadFrame("frame CRC mismatch")
    return payload


# ---------------------------------------------------------------- progress


class Progress:
    """Plain-text progress on a stream: sessions, bytes, rate, ETA (one updating line on a tty)."""

    def __init__(self, stream=None, clock=time.monotonic, interval=None):
        self.stream = stream if stream is not None else sys.stderr
        self.clock = clock
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.interval = interval if interval is not None else (0.2 if self.tty else 2.0)
        self.sessions = self.total_sessions = 0
        self.bytes = self.total_bytes = 0
        self.t0 = self.clock()
        self._last = None
        self._width = 0

    def start(self, total_sessions, total_bytes):
        self.total_sessions = total_sessions
        self.total_bytes = total_bytes
        self.sessions = 0
        self.bytes = 0
        self.t0 = self.clock()
        self.show(force=True)

    def add_bytes(self, n):
        self.bytes += n
        self.show()

    def session_done(self):
        self.sessions += 1
        self.show(force=True)

    def note(self, text):
        self._clear()
        self.stream.write("optoread download: %s\n" % text)
        self.stream.flush()
        self._last = None

    def text(self):
        dt = max(self.clock() - self.t0, 1e-6)
        rate = self.bytes / dt
        left = max(self.total_bytes - self.bytes, 0)
        eta = "--" if rate <= 0 or not self.bytes else _hms(left / rate)
        return "sessions %d/%d  %s/%s  %s/s  ETA %s" % (
            self.sessions, self.total_sessions, _kb(self.bytes), _kb(self.total_bytes), _kb(rate), eta)

    def show(self, force=False):
        now = self.clock()
        if not force and self._last is not None and now - self._last < self.interval:
            return
        self._last = now
        t = self.text()
        if self.tty:
            pad = " " * max(self._width - len(t), 0)
            self.stream.write("\r" + t + pad)
            self._width = len(t)
        else:
            self.stream.write(t + "\n")
        self.stream.flush()

    def _clear(self):
        if self.tty and self._width:
            self.stream.write("\r" + " " * self._width + "\r")
            self._width = 0

    def finish(self):
        self.show(force=True)
        if self.tty:
            self.stream.write("\n")
            self._width = 0
        self.stream.flush()


class _NoProgress(Progress):
    def __init__(self):
        Progress.__init__(self, stream=_Null())

    def show(self, force=False):
        pass

    def note(self, text):
        pass

    def finish(self):
        pass


class _Null:
    def write(self, s):
        pass

    def flush(self):
        pass


def _kb(n):
    if n >= 10 * 1024 * 1024:
        return "%.1f MB" % (n / 1048576.0)
    if n >= 1024:
        return "%.1f kB" % (n / 1024.0)
    return "%d B" % n


def _hms(s):
    s = int(s + 0.5)
    if s >= 3600:
        return "%d:%02d:%02d" % (s // 3600, s // 60 % 60, s % 60)
    return "%d:%02d" % (s // 60, s % 60)


# ---------------------------------------------------------------- the download


class Result:
    """What a download did."""

    def __init__(self):
        self.device = None
        self.listed = 0
        self.new = []  # seqs inserted
        self.skipped = 0  # already in the database
        self.failed = {}  # seq -> reason
        self.bytes = 0  # verified payload bytes received
        self.refetches = 0  # bad frames / replies asked for again
        self.reconnects = 0
        self.acked = None  # what the device confirmed, None if no ack was sent
        self.freed = 0
        self.clock = None  # what became of the device clock (text), None if not tried

    def summary(self):
        s = "%d new session(s), %d already stored" % (len(self.new), self.skipped)
        if self.device:
            s = "device %s: %s" % (self.device, s)
        if self.failed:
            s += ", %d failed (%s)" % (len(self.failed), "; ".join(
                "%d: %s" % (k, v) for k, v in sorted(self.failed.items())))
        s += "; %d bytes" % self.bytes
        if self.refetches:
            s += ", %d refetch(es)" % self.refetches
        if self.reconnects:
            s += ", %d reconnect(s)" % self.reconnects
        if self.acked is not None:
            s += "; acked up to %d (freed %d bytes)" % (self.acked, self.freed)
        if self.clock:
            s += "; device clock %s" % self.clock
        return s


class Downloader:
    """Downloads every session the device lists and the database lacks; see the module docstring.

    ``opener()`` returns a fresh pyserial-like port (called again after the link is lost);
    ``db`` is a connection from :func:`readings_db.open_db`. ``device`` overrides the device
    id (default: the ``id=`` of ``@hello``, else "optoread"). ``max_attempts`` bounds the
    reconnects made without any progress; ``reconnect_s`` is how long to wait for the port to
    come back each time.
    """

    def __init__(self, opener, db, device=None, timeout=10.0, reconnect_s=30.0, max_attempts=8,
                 max_refetch=8, ack=True, progress=None, sleep=time.sleep, clock=time.monotonic,
                 port_name="the port", pin=None, now=time.time):
        self.opener = opener
        self.pin = pin  # the device PIN: with it the device clock is set from this laptop's
        self.now = now
        self.port_name = port_name
        self.identified = False  # an "@ok optoread" arrived on this port (this run)
        self._strange = 0  # @hello attempts answered with something else, before that
        self._got = set()  # sessions whose whole-session CRC the device sent since the last @hello
        self.db = db
        self.device_override = device
        self.timeout = timeout
        self.reconnect_s = reconnect_s
        self.max_attempts = max_attempts
        self.max_refetch = max_refetch
        self.do_ack = ack
        self.progress = progress if progress is not None else _NoProgress()
        self.sleep = sleep
        self.clock = clock
        self.link = None
        self.result = Result()

    # -- connection
    def _connect(self, first):
        deadline = self.clock() + (0 if first else self.reconnect_s)
        while True:
            try:
                port = self.opener()
                self.link = Link(port, self.timeout, self.clock)
                return
            except (OSError, ValueError) as e:
                if self.clock() >= deadline:
                    raise DownloadError("cannot open the port: %s" % e)
            self.sleep(0.25)

    def _disconnect(self):
        if self.link is not None:
            self.link.close()
            self.link = None

    def run(self):
        """Download, resuming after link failures; return a :class:`Result` (DownloadError if it gives up)."""
        r = self.result
        attempts = 0
        first = True
        try:
            while True:
                if self.link is None:
                    self._connect(first)
                first = False
                before = r.bytes + len(r.new)
                try:
                    self._run_once()
                    return r
                except (LinkLost, ProtocolError) as e:
                    self._disconnect()
                    attempts = 0 if r.bytes + len(r.new) > before else attempts + 1
                    if attempts >= self.max_attempts:
                        raise DownloadError("giving up after %d attempts without progress: %s"
                                            % (attempts, e))
                    r.reconnects += 1
                    self.progress.note("%s; reconnecting" % e)
                    self.sleep(0.2)
        finally:
            self._disconnect()
            self.progress.finish()

    def _retry(self, fn, tries=3):
        """Run a short idempotent exchange again when its reply was garbled (not when the link is gone)."""
        for i in range(tries):
            try:
                return fn()
            except ProtocolError:
                if i == tries - 1:
                    raise
        return None

    def _not_optoread(self):
        return DownloadError("%s is not an optoread device (no answer to @hello)" % self.port_name)

    def _hello(self):
        """``@hello``, repeated every 2 s up to the link timeout: a device that is still starting
        (or was just plugged in) may lose the first line.

        Until a first ``@ok optoread`` on this port, a port that answers something else
        :data:`HELLO_TRIES` times, or says nothing for the whole link timeout, is not an optoread
        device: DownloadError at once, without the reconnects meant for a device that drops the line.
        """
        link = self.link
        deadline = self.clock() + self.timeout
        while True:
            saved = link.timeout
            rx = link.rx
            link.timeout = max(min(2.0, deadline - self.clock()), 0.1)
            try:
                for tag, fields in link.request("@hello", ("@ok", "@err")):
                    if tag == "@err":
                        raise ProtocolError("@hello: %s" % " ".join(fields))
                    if tag == "@ok":
                        hello = parse_hello(fields)
                        self.identified = True
                        self._got = set()  # the device forgets what it sent before this @hello
                        return hello
                raise ProtocolError("no answer to @hello")
            except ProtocolError:
                if self.identified:
                    raise
                self._strange += 1
                if self._strange >= HELLO_TRIES:
                    raise self._not_optoread() from None
            except LinkLost as e:
                if not e.timeout:
                    raise
                if not self.identified and link.rx > rx:
                    self._strange += 1
                    if self._strange >= HELLO_TRIES:
                        raise self._not_optoread() from None
                if self.clock() >= deadline:
                    if self.identified:
                        raise
                    if self._strange:
                        raise self._not_optoread() from None
                    raise DownloadError("%s: no answer to @hello for %.0f s (not an optoread device, or not "
                                        "running its firmware)" % (self.port_name, self.timeout)) from None
            finally:
                link.timeout = saved

    def _list(self):
        out = []
        for tag, fields in self.link.request("@list", ("@end", "@err")):
            if tag == "@s":
                out.append(parse_s(fields))
            elif tag == "@end":
                n = _ints(fields, 1, "@end")[0]
                if n != len(out):
                    raise ProtocolError("@list announced %d sessions, %d arrived" % (n, len(out)))
                seqs = [s.seq for s in out]
                if len(set(seqs)) != len(seqs):
                    raise ProtocolError("@list repeats a session")
                return sorted(out, key=lambda s: s.seq)
            elif tag == "@err":
                raise ProtocolError("@list: %s" % " ".join(fields))
        raise ProtocolError("no answer to @list")

    def _ack(self, seq):
        for tag, fields in self.link.request("@ack %d" % seq, ("@ok", "@err")):
            if tag == "@err":
                raise ProtocolError("@ack: %s" % " ".join(fields))
            if tag == "@ok":
                kv = dict(f.partition("=")[::2] for f in fields)
                try:
                    return int(kv.get("acked", seq)), int(kv.get("freed", 0))
                except ValueError:
                    raise ProtocolError("bad @ack answer: %r" % " ".join(fields))
        raise ProtocolError("no answer to @ack")

    def _run_once(self):
        r = self.result
        hello = self._retry(self._hello)
        device = self.device_override or hello.get("id") or DEFAULT_DEVICE
        r.device = device
        if self.pin is not None and r.clock is None:
            r.clock = self._set_clock()
        listing = self._retry(self._list)
        r.listed = len(listing)
        db = self.db
        todo = [s for s in listing if not readings_db.session_exists(db, device, s.seq, s.crc_text)
                and s.seq not in r.failed]
        r.skipped = len([s for s in listing if s.seq not in r.failed and s.seq not in r.new]) - len(todo)
        staged = {s.seq: len(readings_db.staged(db, device, s.seq, s.crc_text)) for s in todo}
        self.progress.start(len(todo), sum(max(s.size - staged[s.seq], 0) for s in todo))
        for s in todo:
            self._fetch(device, s)
            self.progress.session_done()
        self._acknowledge(device, listing, hello)

    def _set_clock(self):
        # The device clock from this laptop's (UTC), with the device PIN: unlock, @clock, lock.
        link = self.link
        link.send("unlock %s" % self.pin)
        link.wait_prompt(timeout=2.0, quiet=True)
        t = int(self.now())
        text = None
        try:
            for tag, fields in link.request("@clock %d" % t, ("@ok", "@err")):
                if tag == "@ok":
                    was = [f[4:] for f in fields if f.startswith("was=")]
                    text = "set to %s (it was %s)" % (time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t)),
                                                      "unknown: never set" if was == ["unknown"]
                                                      else "from the %s" % (was[0] if was else "?"))
                elif tag == "@err":
                    text = "not set: %s" % " ".join(fields)
        finally:
            link.send("lock")
            link.wait_prompt(timeout=2.0, quiet=True)
        return text or "not set: no answer to @clock"

    def _stored_top(self, device, listing):
        """(top, held): the highest seq up to which every listed session is in the database."""
        top = None
        held = []
        for s in listing:
            if s.seq in self.result.failed or not readings_db.session_exists(self.db, device, s.seq,
                                                                               s.crc_text):
                break
            top = s.seq
            held.append((s.seq, s.crc))
        return top, held

    def _acknowledge(self, device, listing, hello):
        """Ack the highest seq up to which every listed session is stored in the database.

        The ``@list`` lines carry no check of their own, so a fresh ``@list`` must agree with
        the first one on everything up to that seq: one garbled line can never make the device
        free a session the laptop does not hold (the ack then simply waits for the next run).
        """
        if not self.do_ack:
            return
        top, held = self._stored_top(device, listing)
        try:
            device_acked = int(hello.get("acked", 0))
        except ValueError:
            device_acked = 0
        if top is None or top <= device_acked:
            return
        fresh = self._retry(self._list)
        top2, held2 = self._stored_top(device, fresh)
        if top2 != top or held2 != held:
            self.progress.note("the session list changed while downloading; not acknowledging this time")
            return
        # The device frees (without its PIN) only sessions it sent since this @hello: a session
        # stored in an earlier run or before a reconnect is confirmed with an @get at its end
        # (no frames, just the whole-session CRC, which must be the one the database holds).
        for s in fresh:
            if s.seq > top:
                break
            if not s.downloaded and s.seq not in self._got:
                self._retry(lambda s=s: self._confirm(s))
        acked, freed = self._retry(lambda: self._ack(top))
        self.result.acked = acked
        self.result.freed += freed

    def _confirm(self, s):
        """``@get SEQ SIZE``: the end marker alone, whose whole-session CRC must be the listed one."""
        for tag, fields in self.link.request("@get %d %d" % (s.seq, s.size), ("@e", "@err")):
            if tag == "@err":
                raise ProtocolError("@get: %s" % " ".join(fields))
            if tag == "@f":
                raise ProtocolError("@get at the end of session %d sent a frame" % s.seq)
            if tag == "@e":
                if len(fields) != 4:
                    raise ProtocolError("end marker has %d fields" % len(fields))
                eseq, total, nframes = _ints([fields[0], fields[1], fields[3]], 3, "@e")
                if (eseq, total, nframes, _hex32(fields[2], "@e")) != (s.seq, s.size, 0, s.crc):
                    raise ProtocolError("session %d: the device's end marker %r does not match the "
                                        "stored copy" % (s.seq, " ".join(fields)))
                self._got.add(s.seq)
                return
        raise ProtocolError("no answer to @get")

    # -- one session
    def _fetch(self, device, s):
        """Fetch session ``s`` from the staged offset on, verify it, insert it (one transaction)."""
        db = self.db
        r = self.result
        data = bytearray(readings_db.staged(db, device, s.seq, s.crc_text))
        if len(data) > s.size:
            readings_db.clear_staging(db, device, s.seq)
            data = bytearray()
        bad = 0
        while True:
            mark = len(data)
            try:
                outcome = self._get(device, s, data)
            except BadFrame as e:
                r.refetches += 1
                bad = 0 if len(data) > mark else bad + 1
                self.progress.note("session %d: %s at offset %d; asking again" % (s.seq, e, len(data)))
                if bad >= self.max_refetch:
                    r.failed[s.seq] = "no good frame at offset %d after %d tries (%s)" % (len(data), bad, e)
                    return
                continue
            if outcome is not None:
                if outcome == "gone":
                    r.failed[s.seq] = "the device no longer has it"
                    return
                # Whole-session CRC failed over bytes that all passed their frame checks: start over.
                r.refetches += 1
                bad += 1
                readings_db.clear_staging(db, device, s.seq)
                data = bytearray()
                self.progress.note("session %d: %s; fetching it again" % (s.seq, outcome))
                if bad >= self.max_refetch:
                    r.failed[s.seq] = outcome
                    return
                continue
            break
        sid = readings_db.insert_session(db, device, s.seq, data, s.crc_text)
        if sid is not None:
            r.new.append(s.seq)

    def _get(self, device, s, data):
        """One ``@get``: append verified frames to ``data``; None when complete and verified.

        Returns a reason text when the whole-session check failed, "gone" for an unknown session;
        raises BadFrame (after draining the reply) on a bad frame, LinkLost/ProtocolError otherwise.
        Verified bytes are staged in the database as they come and whenever this returns or raises.
        """
        db = self.db
        link = self.link
        start = len(data)
        staged_to = start
        frame_no = 0

        def flush():
            nonlocal staged_to
            if len(data) > staged_to:
                readings_db.stage(db, device, s.seq, s.crc_text, staged_to, data[staged_to:])
                staged_to = len(data)

        link.send("@get %d %d" % (s.seq, start))
        prompts = 0
        try:
            for tag, fields in link.at_lines():
                if tag == ">":
                    prompts += 1
                    if frame_no or prompts > 1:
                        raise BadFrame("reply ended without @e")
                    continue
                if tag == "@f":
                    try:
                        payload = check_frame(fields, frame_no, s.seq, len(data))
                    except BadFrame:
                        flush()
                        self._drain()
                        raise
                    data += payload
                    frame_no += 1
                    self.result.bytes += len(payload)
                    self.progress.add_bytes(len(payload))
                    if len(data) - staged_to >= _STAGE_BYTES:
                        flush()
                elif tag == "@e":
                    flush()
                    link.wait_prompt(quiet=True)
                    try:
                        if len(fields) != 4:
                            raise ProtocolError("end marker has %d fields" % len(fields))
                        eseq, total, nframes = _ints([fields[0], fields[1], fields[3]], 3, "@e")
                        ecrc = _hex32(fields[2], "@e")
                    except ProtocolError as e:
                        raise BadFrame(str(e))
                    if eseq != s.seq or nframes != frame_no or total != len(data):
                        raise BadFrame("end marker says session %d, %d bytes, %d frames; got %d bytes, "
                                       "%d frames" % (eseq, total, nframes, len(data), frame_no))
                    c = crc32(data)
                    if c != ecrc:
                        return "session CRC %08x, device says %08x" % (c, ecrc)
                    if c != s.crc:
                        raise ProtocolError("session %d changed on the device since @list" % s.seq)
                    self._got.add(s.seq)
                    return None
                elif tag == "@err":
                    flush()
                    link.wait_prompt(quiet=True)
                    text = " ".join(fields)
                    if text.startswith("no such session"):
                        return "gone"
                    if text.startswith("bad offset"):
                        readings_db.clear_staging(db, device, s.seq)
                        del data[:]
                        raise BadFrame("device refused offset %d" % start)
                    raise ProtocolError("@get: %s" % text)
        finally:
            if staged_to < len(data):
                try:
                    flush()
                except Exception:  # keep the original error; the bytes will simply be fetched again
                    pass
        raise ProtocolError("reply ended")

    def _drain(self):
        """Skip the rest of an abandoned reply (up to its prompt, or silence)."""
        try:
            for tag, _fields in self.link.at_lines(timeout=min(1.0, self.timeout)):
                if tag == ">":
                    return
        except LinkLost as e:
            if not e.timeout:
                raise


# ---------------------------------------------------------------- command line


def open_serial(port, baud=115200):
    """A pyserial port for ``port`` (device path, pty path or any pyserial URL such as loop://)."""
    import serial

    return serial.serial_for_url(port, baudrate=baud, timeout=0.05, write_timeout=10)


def add_download_parser(sub):
    from optoread_tools.cli import int_range, seconds

    sp = sub.add_parser("download", help="download the device's sessions into SQLite (verified, resumable)")
    sp.add_argument("--port", required=True, help="the device's USB serial port, a pty or a pyserial URL")
    sp.add_argument("--out", default="readings.sqlite",
                    help="SQLite database (default: readings.sqlite); created if missing, else it must be "
                         "one that optoread wrote")
    sp.add_argument("--csv", metavar="DIR", help="also export everything as CSV files into DIR")
    sp.add_argument("--json", metavar="FILE", help="also export everything as one JSON file")
    sp.add_argument("--baud", type=int_range(1, 10 ** 7, "a baud rate"), default=115200,
                    help="line speed (USB CDC ignores it)")
    sp.add_argument("--device", help="device id to file the sessions under (default: from @hello)")
    sp.add_argument("--timeout", type=seconds(), default=10.0,
                    help="seconds of silence that count as a lost link")
    sp.add_argument("--reconnect", type=seconds(zero_ok=True), default=30.0,
                    help="seconds to wait for the port to come back after an unplug")
    sp.add_argument("--no-ack", action="store_true", help="do not tell the device what was stored")
    sp.add_argument("--pin-env", metavar="VAR", default="OPTOREAD_PIN",
                    help="environment variable holding the device PIN (default OPTOREAD_PIN): with it the "
                         "device clock is set from this laptop's")
    sp.add_argument("--quiet", "-q", action="store_true", help="no progress output")
    sp.set_defaults(func=cmd_download)
    return sp


def add_export_parser(sub):
    sp = sub.add_parser("export", help="export a readings database as CSV files and/or JSON")
    sp.add_argument("db", help="SQLite database written by optoread download (nothing else is accepted)")
    sp.add_argument("--csv", metavar="DIR", help="write CSV files into DIR")
    sp.add_argument("--json", metavar="FILE", help="write one JSON file")
    sp.set_defaults(func=cmd_export)
    return sp


def _export(db, args, out):
    if args.csv:
        counts = readings_db.export_csv(db, args.csv)
        out.write("csv: %s (%s)\n" % (args.csv, ", ".join("%s %d" % kv for kv in sorted(counts.items()))))
    if args.json:
        n = readings_db.export_json(db, args.json)
        out.write("json: %s (%d sessions)\n" % (args.json, n))


def _check_outputs(args):
    from optoread_tools.cli import check_output_dir, check_output_file

    if args.json:
        check_output_file("--json", args.json)
    if args.csv:
        check_output_dir("--csv", args.csv)


def _usage(command, text):
    sys.stderr.write("optoread %s: %s\n" % (command, text))
    return 2


def cmd_download(args):
    """``optoread download``: returns 0 when everything listed is stored, 1 if some failed, 3 on no device."""
    from optoread_tools.cli import UsageError, check_output_file

    try:
        check_output_file("--out", args.out)
        _check_outputs(args)
    except UsageError as e:
        return _usage("download", str(e))
    try:
        db = readings_db.open_db(args.out)
    except readings_db.NotReadingsDb as e:
        return _usage("download", "--out %s" % e)
    except sqlite3.Error as e:
        return _usage("download", "--out %s: %s" % (args.out, e))
    progress = _NoProgress() if args.quiet else Progress(sys.stderr)
    pin = os.environ.get(args.pin_env) or None
    dl = Downloader(lambda: open_serial(args.port, args.baud), db, device=args.device, timeout=args.timeout,
                    reconnect_s=args.reconnect, ack=not args.no_ack, progress=progress, port_name=args.port,
                    pin=pin)
    if pin is None and not args.quiet:
        sys.stderr.write("device clock: not set (no device PIN in $%s)\n" % args.pin_env)
    try:
        try:
            r = dl.run()
        except DownloadError as e:
            sys.stderr.write("optoread download: %s\n" % e)
            sys.stdout.write("%s\n" % dl.result.summary())
            return 3
        except KeyboardInterrupt:
            sys.stderr.write("\noptoread download: interrupted; what arrived is kept, run again to resume\n")
            return 130
        sys.stdout.write("%s: %s\n" % (args.out, r.summary()))
        _export(db, args, sys.stdout)
        return 1 if r.failed else 0
    finally:
        db.close()


def cmd_export(args):
    """``optoread export DB --csv DIR [--json FILE]``."""
    if not args.csv and not args.json:
        sys.stderr.write("optoread export: give --csv DIR and/or --json FILE\n")
        return 2
    if not os.path.exists(args.db):
        sys.stderr.write("optoread export: no such database: %s\n" % args.db)
        return 2
    from optoread_tools.cli import UsageError

    try:
        _check_outputs(args)
    except UsageError as e:
        return _usage("export", str(e))
    try:
        db = readings_db.open_db(args.db)
    except readings_db.NotReadingsDb as e:
        return _usage("export", str(e))
    except sqlite3.Error as e:
        return _usage("export", "%s: %s" % (args.db, e))
    try:
        _export(db, args, sys.stdout)
    finally:
        db.close()
    return 0
