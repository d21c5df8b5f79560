"""A simulated IEC 62056-21 meter (the meter side of the optical port), for tests and demos.

The meter is *time-driven*: it never reads a clock and never does I/O. Whoever carries
its bytes (the in-process :mod:`vline`, the real-time :mod:`ptyline`) tells it what arrived
and when, and asks it what to send and when::

    meter.on_rx(t_ms, byte, clean)   # a byte arrived (its last bit) at t; clean=False: garbled
    meter.on_glitch(t_ms)            # the reader re-initialised its UART (a line glitch)
    meter.next_event_time()          # earliest time the meter wants to act, or None
    meter.poll(t_ms) -> [...]        # everything due up to t:
        ("tx", t, bytes)             #   send bytes at the meter's current settings from t on
        ("line", t, (baud, bits, parity))  # the meter's UART settings change at t

Times are milliseconds (floats allowed). A character occupies ``char_ms(...)`` on the wire
(start + data + parity + stop bits); the meter uses this to know when it finished talking.

Protocol behaviour follows IEC 62056-21 modes A-E; the quirk switches model what real meters
and probes do (see /work/shared/notes/field-notes.md, cited per switch below).
"""

import heapq
import os

from optoread.crc import bcc, crc16_arc
from optoread.errors import Iec21Error

SOH = 0x01
STX = 0x02
ETX = 0x03
ACK = 0x06
NAK = 0x15
CR = 0x0D
LF = 0x0A

INITIAL_LINE = (300, 7, "E")
# Baud characters: modes C/E use '0'..'6', mode B 'A'..'F' ('G'..'I' are reserved).
BAUD_C = (300, 600, 1200, 2400, 4800, 9600, 19200)
BAUD_B = {"A": 600, "B": 1200, "C": 2400, "D": 4800, "E": 9600, "F": 19200}

# Float times: a reader that waits exactly the turnaround must not be rejected by rounding.
_EPS = 1e-6

DEFAULT_DATA_LINES = (
    b"F.F(00000000)",
    b"0.0.0(71234567)",
    b"0.9.1(143015)",
    b"0.9.2(250314)",
    b"1.8.0(012345.678*kWh)",
    b"1.8.1(008123.456*kWh)",
    b"1.8.2(004222.222*kWh)",
    b"2.8.0(000321.004*kWh)",
    b"1.6.0(02.468*kW)(2503100930)",
    b"32.7(231.4*V)",
    b"31.7(001.24*A)",
    b"14.7(50.01*Hz)",
)


def char_ms(baud, bits=7, parity="E", stop=1):
    """Time one character occupies the wire: start + data + parity + stop bits (7E1 = 8N1 = 10)."""
    return (1 + bits + (0 if parity == "N" else 1) + stop) * 1000.0 / baud


def garble_byte(b):
    """What a receiver at the wrong baud makes of byte ``b``: deterministic, high bit set.

    The high bit means it can never pass for a valid 7-bit protocol character.
    """
    return 0x80 | ((b * 7) & 0x7F)


def _parity_bit(b, parity):
    ones = bin(b & 0x7F).count("1") & 1
    return ones if parity == "E" else ones ^ 1


def deliver(b, sent, recv):
    """Byte ``b`` sent with settings ``sent`` = (baud, bits, parity), received with ``recv``.

    Returns ``(value, clean)``. Same settings: clean (7-bit formats carry 7 bits). Different
    baud: garbled (high bit set). Same baud, 7E1/7O1 sent, 8N1 received: the parity bit becomes
    bit 7. 8N1 sent, 7-bit received: bit 7 is taken as parity and dropped. Anything else at the
    same baud (e.g. 7E1 vs 7O1, 8N1 vs 8E1): garbled.
    """
    if sent[0] != recv[0]:
        return garble_byte(b), False
    if sent[1] == recv[1] and sent[2] == recv[2]:
        return (b & 0x7F if sent[1] == 7 else b & 0xFF), True
    if sent[1] == 7 and sent[2] != "N" and recv[1] == 8 and recv[2] == "N":
        return (b & 0x7F) | (_parity_bit(b, sent[2]) << 7), False
    if sent[1] == 8 and sent[2] == "N" and recv[1] == 7:
        return b & 0x7F, False
    return garble_byte(b), False


def baud_of_char(ch):
    """Baud for an identification baud character ('0'..'6' modes C/E, 'A'..'F' mode B), or None."""
    if "0" <= ch <= "6":
        return BAUD_C[ord(ch) - 0x30]
    return BAUD_B.get(ch)


def _read_source(source):
    """bytes of a readout given as bytes, a path (str or PathLike) or the text itself (str)."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        return bytes(source)
    if isinstance(source, os.PathLike) or (isinstance(source, str) and os.path.isfile(source)):
        with open(source, "rb") as f:
            return f.read()
    return str(source).encode("latin-1")


def load_readout_text(source):
    """Data lines (list of bytes, no line ends) from a readout: bytes, a path, or the text (str).

    Takes the lines after STX (or after the identification line ``/XXXZ...`` and an echoed
    ACK, or from the start when neither is present) up to the line that starts with ``!``
    (or ends with ``!``), or ETX. Blank lines are skipped. Raises Iec21Error if no data line
    is found.
    """
    data = _read_source(source)
    stx = data.find(b"\x02")
    if stx >= 0:
        data = data[stx + 1 :]
        etx = data.find(b"\x03")
        if etx >= 0:
            data = data[:etx]
    lines = data.replace(b"\r", b"\n").split(b"\n")
    out = []
    started = stx >= 0
    for raw in lines:
        line = raw.strip(b"\x00\x7f\xff ")
        if not started:
            if line.startswith(b"/") or line.startswith(b"\x06") or not line:
                continue  # request echo, identification, ACK echo, blank
            started = True
        if not line:
            continue
        if line.startswith(b"!"):
            break
        if line.endswith(b"!"):
            # "!" right after the last value, perhaps behind line noise: keep up to the ")".
            close = line.rfind(b")")
            if close > 0:
                out.append(line[: close + 1])
            break
        out.append(line)
    if not out:
        raise Iec21Error("no data lines in the readout text", field="readout")
    return out


def parse_identification(line):
    """(maker, baud_char, mode_e, model) of an identification line ``/XXXZ[\\2]model``, or None."""
    line = line.strip()
    if len(line) < 5 or line[:1] != b"/":
        return None
    maker = line[1:4].decode("latin-1")
    baud_char = chr(line[4])
    rest = line[5:]
    mode_e = rest[:2] == b"\\2"
    if mode_e:
        rest = rest[2:]  # the meter adds "\2" itself; other "\W" sequences stay in the model
    return maker, baud_char, mode_e, rest.decode("latin-1")


class Iec21Meter:
    """Simulated IEC 62056-21 meter. See the module docstring for the event API.

    Configuration (keyword arguments):
      maker, model: identification ``/`` maker baud-char [``\\2``] model.
      mode: "A", "B", "C" (default), "D" (push) or "E" (= C with ``mode_e``).
      baud_char: proposed baud ('0'..'6' for C/E, 'A'..'F' for B; default '5' / 'E'; mode A
        default 'Z', which names no baud).
      address: device address; a request naming another address gets silence.
      data_lines: list of bytes (one data set each, no line end); default a small
        electricity meter. ``from_readout()`` loads them from a readout text.
      serial: P0 operand; password: P1 password (None = any); password_for_read: R1/R5 need P1.
      reaction_ms: override the reaction time (default 200, 20 with lowercase_id,
        1200 with slow_reaction).
      Mode D: push_interval_ms, push_first_ms, push_line=(baud, bits, parity) (default
        115200 8N1, DSMR P1), push_crc (True: ``!CRC16``; False: plain ``!`` CR LF).
      Timeouts: ack_timeout_ms (no ACK after the identification: back to idle),
        prog_timeout_ms, hdlc_timeout_ms (inactivity).

    Timing: the meter answers ``reaction_ms`` after the last byte of a message; it does not
    hear bytes that start while it is sending, nor within its minimum turnaround (200 ms,
    20 ms with lowercase_id) after the end of its identification (the ACK comes too early).

    Quirks (field-notes.md):
      echo: the optical probe returns the reader's own bytes (u9n/dlms-cosem #62; captures
        show echoed ``/?!`` and ACK). The carrier (vline/ptyline) implements it.
      switch_guard_ms=N: a reader line re-init within N ms after the ACK aborts the readout
        (aquaticus/esphome-iec62056 #13/#16 "No STX"; openHAB: up to 250 ms after the ACK).
      no_switch: proposes a baud but stays at 300 after the ACK (pwitab/iec62056-21 #33,
        Landis+Gyr ZMD120).
      wakeup: asleep unless a NUL train >= 1.5 s then >= 1 s quiet preceded the request; then
        awake for 5 s (pwitab/iec62056-21 PR #20; aquaticus PR #14, L+G UH50).
      lf_only: data lines end with LF only (Landis+Gyr E350 capture, LF LF).
      bad_bcc: the readout's BCC is wrong (one real capture's BCC does not verify).
      slow_reaction: 1200 ms reaction time (pwitab/iec62056-21 #14: Iskra MT174 timing).
      lowercase_id: lower-case 3rd maker letter: 20 ms turnaround and reaction time.
      mode_e: identification carries ``\\2`` and ACK ``2 Z 2`` hands over to HDLC at 8N1.
      emh_r1: R1 is answered with a bare ACK; R5 gives the value (pwitab/iec62056-21 #7, #8).
    """

    def __init__(self, maker="ISK", model="SIM174-01", mode="C", baud_char=None, address=None,
                 data_lines=None, serial="71234567", password="00000000", password_for_read=False,
                 reaction_ms=None, echo=False, switch_guard_ms=0, no_switch=False, wakeup=False,
                 lf_only=False, bad_bcc=False, slow_reaction=False, lowercase_id=False,
                 mode_e=False, emh_r1=False, push_interval_ms=10000, push_first_ms=None,
                 push_line=None, push_crc=True, ack_timeout_ms=1500, prog_timeout_ms=60000,
                 hdlc_timeout_ms=120000):
        if mode == "E":
            mode, mode_e = "C", True
        if mode not in ("A", "B", "C", "D"):
            raise ValueError("mode must be A, B, C, D or E")
        if len(maker) != 3:
            raise ValueError("maker id must have 3 letters")
        if baud_char is None:
            baud_char = {"A": "Z", "B": "E"}.get(mode, "5")
        if mode == "B" and baud_char not in BAUD_B:
            raise ValueError("mode B baud char must be 'A'..'F'")
        if mode in ("C", "D") and not "0" <= baud_char <= "6":
            raise ValueError("mode C/E baud char must be '0'..'6'")
        self.mode = mode
        self.maker = maker[:2] + (maker[2].lower() if lowercase_id else maker[2])
        self.model = model
        self.baud_char = baud_char
        self.address = address
        self.serial = serial
        self.password = password
        self.password_for_read = password_for_read
        self.echo = echo
        self.switch_guard_ms = switch_guard_ms
        self.no_switch = no_switch
        self.wakeup = wakeup
        self.lf_only = lf_only
        self.bad_bcc = bad_bcc
        self.lowercase_id = lowercase_id
        self.mode_e = mode_e
        self.emh_r1 = emh_r1
        # A lower-case 3rd maker letter announces 20 ms turnaround (field-notes: sign-on).
        self.turnaround_ms = 20 if lowercase_id else 200
        if reaction_ms is None:
            reaction_ms = 1200 if slow_reaction else self.turnaround_ms
        self.reaction_ms = reaction_ms
        self.push_interval_ms = push_interval_ms
        self.push_first_ms = push_interval_ms if push_first_ms is None else push_first_ms
        self.push_line = tuple(push_line) if push_line else (115200, 8, "N")
        self.push_crc = push_crc
        self.ack_timeout_ms = ack_timeout_ms
        self.prog_timeout_ms = prog_timeout_ms
        self.hdlc_timeout_ms = hdlc_timeout_ms
        self.set_data_lines(DEFAULT_DATA_LINES if data_lines is None else data_lines)
        self.reset()

    @classmethod
    def from_readout(cls, source, **kw):
        """A meter whose data lines (and, unless given, maker/model/baud) come from a readout text."""
        data = _read_source(source)
        for raw in data.replace(b"\r", b"\n").split(b"\n"):
            ident = parse_identification(raw.strip(b"\x00\x7f\xff"))
            if ident is not None and not raw.strip().startswith(b"/?"):
                maker, baud_char, mode_e, model = ident
                if maker.isalpha():
                    kw.setdefault("maker", maker.upper() if maker[2].isupper() else maker)
                    kw.setdefault("lowercase_id", maker[2].islower())
                    kw.setdefault("model", model)
                    if "0" <= baud_char <= "6" and kw.get("mode", "C") in ("C", "E", "D"):
                        kw.setdefault("baud_char", baud_char)
                    if mode_e:
                        kw.setdefault("mode_e", True)
                break
        return cls(data_lines=load_readout_text(data), **kw)

    # ---------------------------------------------------------------- configuration

    def set_data_lines(self, lines):
        """Replace the data set (list of bytes/str, no line ends); rebuilds the register map."""
        self.data_lines = [ln.encode("latin-1") if isinstance(ln, str) else bytes(ln) for ln in lines]
        self.registers = {}
        for ln in self.data_lines:
            i = ln.find(b"(")
            if i > 0 and ln[:i] not in self.registers:
                self.registers[ln[:i]] = ln[i:]

    @property
    def identification(self):
        """The identification message, CR LF included."""
        esc = b"\\2" if self.mode_e else b""
        return (b"/" + self.maker.encode() + self.baud_char.encode() + esc + self.model.encode()
                + b"\r\n")

    def readout_bytes(self):
        """The mode A/B/C data message: STX data-lines ``!`` CR LF ETX BCC."""
        eol = b"\n" if self.lf_only else b"\r\n"
        body = b"".join(ln + eol for ln in self.data_lines) + b"!\r\n\x03"
        check = bcc(body)
        if self.bad_bcc:
            check ^= 0x01
        return b"\x02" + body + bytes((check,))

    def telegram_bytes(self):
        """The mode D telegram: ``/ident`` CR LF CR LF data ``!`` [CRC16 as 4 hex digits] CR LF."""
        head = self.identification + b"\r\n"
        body = head + b"".join(ln + b"\r\n" for ln in self.data_lines) + b"!"
        if self.push_crc:
            crc = crc16_arc(body)
            if self.bad_bcc:
                crc ^= 0x0001
            return body + (b"%04X" % crc) + b"\r\n"
        return body + b"\r\n"

    # ---------------------------------------------------------------- state

    def reset(self):
        """Back to power-on: idle at 300 7E1 (mode D: push settings), nothing scheduled."""
        self.line = self.push_line if self.mode == "D" else INITIAL_LINE
        self.state = "push" if self.mode == "D" else "idle"
        self._q = []
        self._seq = 0
        self._planned_line = self.line
        self._tx_end = -1e18  # end of the last byte the meter sent
        self._listen_from = -1e18  # input that starts earlier is not heard
        self._rx = bytearray()
        self._rx_bad = False
        self._guard_until = None
        self._nul_start = None
        self._nul_last = None
        self._awake_until = -1e18
        self.authorised = False
        self.ack = None  # last option-select message seen
        self.hdlc_rx = bytearray()
        self._hdlc_last = 0
        self.log = []
        self.stats = {"requests": 0, "idents": 0, "readouts": 0, "ignored": 0, "bad_ack": 0,
                      "glitch_aborts": 0, "asleep": 0, "address_mismatch": 0, "pushes": 0,
                      "commands": 0}
        if self.mode == "D":
            self._at(self.push_first_ms, "push")

    def _note(self, t, text):
        self.log.append((t, text))

    def _at(self, t, kind, arg=None):
        heapq.heappush(self._q, (t, self._seq, kind, arg))
        self._seq += 1

    def _cancel(self):
        self._q = []
        self._planned_line = self.line

    def _set_line_at(self, t, line):
        if line != self._planned_line:
            self._at(t, "line", line)
            self._planned_line = line

    def _send(self, t, data, state=None, turnaround=False):
        """Schedule ``data`` at t (at the settings planned for then); returns when it ends.

        ``turnaround``: after this message the meter does not listen for its minimum
        turnaround time (the identification)."""
        self._at(t, "tx", (data, state, turnaround))
        return t + len(data) * char_ms(*self._planned_line)

    def _go_idle(self, t, why):
        self._cancel()
        self._note(t, "idle: " + why)
        self.state = "idle"
        self._rx = bytearray()
        self._rx_bad = False
        self._guard_until = None
        self.authorised = False
        if self.wakeup:
            self._awake_until = max(self._awake_until, t + 5000)
        self._set_line_at(t, INITIAL_LINE)

    # ---------------------------------------------------------------- event API

    def next_event_time(self):
        """Earliest time at which :meth:`poll` has something to do, or None."""
        return self._q[0][0] if self._q else None

    def poll(self, t_ms):
        """Run everything due up to ``t_ms``; returns the list of ("tx"|"line", t, arg) outputs."""
        out = []
        while self._q and self._q[0][0] <= t_ms + _EPS:
            te, _, kind, arg = heapq.heappop(self._q)  # (_go_idle may replace self._q)
            if kind == "tx":
                data, state, turnaround = arg
                out.append(("tx", te, data))
                self._tx_end = max(self._tx_end, te) + len(data) * char_ms(*self.line)
                self._listen_from = self._tx_end + (self.turnaround_ms if turnaround else 0)
                if state is not None:
                    self.state = state
            elif kind == "line":
                self.line = arg
                out.append(("line", te, arg))
            elif kind == "idle":
                self._go_idle(te, arg)
            elif kind == "hdlc_timeout":
                quiet = te - self._hdlc_last
                if quiet >= self.hdlc_timeout_ms - _EPS:
                    self._go_idle(te, "HDLC inactivity")
                else:
                    self._at(self._hdlc_last + self.hdlc_timeout_ms, "hdlc_timeout")
            elif kind == "push":
                self.stats["pushes"] += 1
                out.append(("tx", te, self.telegram_bytes()))
                self._at(te + self.push_interval_ms, "push")
        return out

    def on_glitch(self, t_ms):
        """The reader re-initialised its UART at t: a glitch on its TX line."""
        if self._guard_until is not None and t_ms < self._guard_until - _EPS:
            # "needs >= N ms before the baud switch": the glitch breaks the session.
            self.stats["glitch_aborts"] += 1
            self._go_idle(t_ms, "line glitch %.1f ms after the ACK" % (
                t_ms - (self._guard_until - self.switch_guard_ms)))

    def on_rx(self, t_ms, b, clean=True):
        """Byte ``b`` arrived (its stop bit ended) at ``t_ms``; ``clean`` False = garbled."""
        if self.mode == "D":
            return
        start = t_ms - char_ms(*self.line)
        if self.wakeup:
            self._track_wakeup(start, t_ms, b, clean)
        if start < self._listen_from - 1e-3:
            # Talking, or inside the minimum turnaround after the identification: not listening.
            self.stats["ignored"] += 1
            return
        st = self.state
        if st == "idle":
            self._rx_request(t_ms, b, clean)
        elif st == "wait_ack":
            self._rx_ack(t_ms, b, clean)
        elif st == "prog":
            self._rx_prog(t_ms, b, clean)
        elif st == "hdlc":
            self.hdlc_rx.append(b)
            self._hdlc_last = t_ms
        else:
            self.stats["ignored"] += 1

    # ---------------------------------------------------------------- receive paths

    def _track_wakeup(self, start, t, b, clean):
        if b == 0 and clean:
            if self._nul_last is None or start - self._nul_last > 100:
                self._nul_start = start
            self._nul_last = t
            return
        if self._nul_last is not None:
            if (self._nul_last - self._nul_start >= 1500 - 1e-3 and start - self._nul_last >= 1000 - 1e-3):
                self._awake_until = self._nul_last + 6000
                self._note(t, "woken up")
            self._nul_start = self._nul_last = None

    def _rx_request(self, t, b, clean):
        rx = self._rx
        if not clean:
            self._rx = bytearray()
            return
        if b == 0x2F:  # "/" starts a request wherever it appears
            self._rx = rx = bytearray()
        elif not rx:
            return
        rx.append(b)
        if len(rx) > 40:
            self._rx = bytearray()
            return
        if b == LF:
            msg = bytes(rx)
            self._rx = bytearray()
            if msg.startswith(b"/?") and msg.endswith(b"!\r\n"):
                self._request(t, msg[2:-3])

    def _request(self, t, addr):
        self.stats["requests"] += 1
        if self.wakeup and t > self._awake_until:
            self.stats["asleep"] += 1
            self._note(t, "asleep: request ignored")
            return
        if self.address is not None and addr:
            if addr.lstrip(b"0") != self.address.encode().lstrip(b"0"):
                self.stats["address_mismatch"] += 1
                self._note(t, "request for another address")
                return
        self.stats["idents"] += 1
        self._cancel()
        t_id = t + self.reaction_ms
        ident = self.identification
        if self.mode == "A":
            # Mode A: the data message follows the identification at once, at 300.
            self.state = "readout"
            self.stats["readouts"] += 1
            end = self._send(t_id, ident)
            done = self._send(end, self.readout_bytes())
            self._at(done, "idle", "mode A readout sent")
        elif self.mode == "B":
            # Mode B: the meter switches to the announced baud by itself after the identification.
            self.state = "readout"
            self.stats["readouts"] += 1
            end = self._send(t_id, ident)
            self._set_line_at(end, (BAUD_B[self.baud_char], 7, "E"))
            done = self._send(end + self.reaction_ms, self.readout_bytes())
            self._at(done, "idle", "mode B readout sent")
        else:
            self.state = "ident"
            end = self._send(t_id, ident, "wait_ack", turnaround=True)
            self._at(end + self.ack_timeout_ms, "idle", "no ACK")

    def _rx_ack(self, t, b, clean):
        rx = self._rx
        if clean and b == 0x2F:  # a new request instead of an ACK
            self.state = "idle"
            self._rx = bytearray()
            self._rx_request(t, b, clean)
            return
        if not clean:
            self._rx_bad = True
        rx.append(b)
        if b != LF and len(rx) < 8:
            return
        msg = bytes(rx)
        self._rx = bytearray()
        bad = self._rx_bad
        self._rx_bad = False
        self.ack = msg
        ok = (not bad and len(msg) == 6 and msg[0] == ACK and msg[4:] == b"\r\n")
        if not ok:
            self.stats["bad_ack"] += 1
            self._go_idle(t, "bad ACK %r" % msg)
            return
        v, z, y = chr(msg[1]), chr(msg[2]), chr(msg[3])
        proposed = self.baud_char
        if not ("0" <= z <= "6") or z > proposed:
            self._go_idle(t, "ACK asks for baud %r above the proposed %r" % (z, proposed))
            return
        baud = 300 if self.no_switch else BAUD_C[ord(z) - 0x30]
        self._cancel()
        if v == "2" and y in "02":
            if not self.mode_e:
                self._go_idle(t, "mode E not supported")
                return
            self._note(t, "HDLC hand-over at %d 8N1" % baud)
            self.state = "hdlc"
            self._set_line_at(t, (baud, 8, "N"))
            self._hdlc_last = t
            self._at(t + self.hdlc_timeout_ms, "hdlc_timeout")
            return
        if v not in "01" or y not in "01":
            self._go_idle(t, "unsupported option select %r" % msg)
            return
        if self.switch_guard_ms:
            self._guard_until = t + self.switch_guard_ms
        self._set_line_at(t, (baud, 7, "E"))
        if y == "0":
            self.state = "readout"
            self.stats["readouts"] += 1
            done = self._send(t + self.reaction_ms, self.readout_bytes(), "readout")
            self._at(done, "idle", "readout sent")
        else:
            self.state = "prog"
            self.authorised = self.password is None
            op = b"(" + self.serial.encode() + b")"
            self._send(t + self.reaction_ms, _block(b"P0", op), "prog")
            self._at(t + self.prog_timeout_ms, "idle", "programming mode inactivity")

    def _rx_prog(self, t, b, clean):
        rx = self._rx
        if not rx and b != SOH:
            return
        if not clean:
            self._rx_bad = True
        rx.append(b)
        if len(rx) > 300:
            self._rx = bytearray()
            self._rx_bad = False
            return
        # SOH C D [STX data] ETX BCC: complete one byte after ETX.
        if len(rx) < 2 or rx[-2] != ETX:
            return
        msg = bytes(rx)
        bad = self._rx_bad
        self._rx = bytearray()
        self._rx_bad = False
        self._guard_until = None
        self.stats["commands"] += 1
        self._cancel()
        reply_at = t + self.reaction_ms
        if bad or len(msg) < 5 or bcc(msg, 1, len(msg) - 1) != msg[-1]:
            self._note(t, "bad block %r: NAK" % msg)
            self._reply(reply_at, bytes((NAK,)))
            return
        cmd = msg[1:3]
        data = msg[4:-2] if msg[3] == STX else b""
        self._note(t, "command %s %r" % (cmd.decode("latin-1"), data))
        if cmd == b"B0":
            self._go_idle(t, "B0")
            return
        if cmd == b"P1":
            ok = self.password is None or data == b"(" + self.password.encode() + b")"
            self.authorised = self.authorised or ok
            self._reply(reply_at, bytes((ACK if ok else NAK,)))
            return
        if cmd in (b"R1", b"R5"):
            if self.password_for_read and not self.authorised:
                self._reply(reply_at, bytes((NAK,)))
                return
            if cmd == b"R1" and self.emh_r1:
                self._reply(reply_at, bytes((ACK,)))
                return
            i = data.find(b"(")
            addr = data[:i] if i >= 0 else data
            value = self.registers.get(addr)
            if value is None:
                answer = b"\x02(ERROR)\x03"
            else:
                answer = b"\x02" + addr + value + b"\x03"
            self._reply(reply_at, answer + bytes((bcc(answer, 1),)))
            return
        self._reply(reply_at, bytes((NAK,)))  # writes, executes, ...: not supported here

    def _reply(self, t, data):
        self._send(t, data, "prog")
        self._at(t + self.prog_timeout_ms, "idle", "programming mode inactivity")


def _block(cmd, data):
    """SOH C D STX data ETX BCC (BCC over everything after SOH)."""
    msg = b"\x01" + cmd + b"\x02" + data + b"\x03"
    return msg + bytes((bcc(msg, 1),))
