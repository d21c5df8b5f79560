"""IEC 62056-21 (formerly IEC 1107) sign-on: the messages, identification, option select, options
and the sign-on procedures, including the mode E hand-over to HDLC.

What every reading needs for protocol detection. The data readout (modes A-D) and programming
mode are :mod:`optoread.iec62056_21.readout`, which builds on this module: their procedures begin with this
module's steps (``send_request``, ``identify``, ``plan_bauds``); a DLMS reading never loads them.

Sans-IO. Two kinds of pieces live in this package:

* Codecs and receivers: ``sign_on_request``, ``option_select``, ``Identification`` and the
  byte-fed ``IdentReceiver`` here, ``command``, ``ReadoutReceiver`` and ``MessageReceiver`` in
  the readout module: they never read a port, the driver feeds them bytes.
* Procedures: generators (``sign_on``, ``mode_e`` here; ``readout``, ``listen``,
  ``read_registers`` in the readout module) that *yield actions* for a driver and receive each
  action's outcome::

      (SEND, data)                 -> None      send bytes
      (DRAIN,)                     -> None      wait until TX has left the wire
      (WAIT, ms)                   -> None      keep quiet for ms
      (SET_LINE, baud, bits, par)  -> None      drain TX, then switch the line
      (READ, receiver, silence_ms) -> bool      feed bytes until receiver is done;
                                                False after silence_ms without a byte
      (FLUSH_INPUT, quiet_ms)      -> None      discard input until quiet_ms of silence
      (PROGRESS, text)             -> None      tell the user what is happening

  Every timing decision (reaction time, settle delay after the ACK, baud
  switch, wake-up train, retries) is made here, so it is testable on a
  virtual clock; ``driver.run`` performs the actions on a transport.

Readout data sets go to a *sink* ``sink(address, values)`` as they are parsed
(values = list of ``(value, unit)`` strings, unit None when absent). They are
provisional: a procedure that ends in an error (bad BCC, timeout) means the
caller must discard them. With no sink the receiver collects them itself and
the procedure returns them only when the readout verified.
"""

from optoread.compat import const

# The actions (see the module docstring) are the driver's vocabulary: defined there, re-exported.
from optoread.driver import DRAIN, FLUSH_INPUT, PROGRESS, READ, SEND, SET_LINE, WAIT  # noqa: F401
from optoread.errors import Iec21Error, NoAnswerError

SOH = const(0x01)
STX = const(0x02)
ETX = const(0x03)
_EOT = const(0x04)
ACK = const(0x06)
NAK = const(0x15)
_CR = const(0x0D)
_LF = const(0x0A)
_SLASH = const(0x2F)
_BSLASH = const(0x5C)
_QMARK = const(0x3F)

# Baud characters: '0'..'6' for modes C and E, 'A'..'F' for mode B.
BAUD_C = (300, 600, 1200, 2400, 4800, 9600, 19200)
BAUD_B = (600, 1200, 2400, 4800, 9600, 19200)

MAX_ADDRESS = const(32)

# Protocol control character V and mode character Y of the option select message.
PC_NORMAL = const(0)
_PC_SECONDARY = const(1)
_PC_HDLC = const(2)
MODE_READOUT = const(0)
MODE_PROGRAMMING = const(1)
_MODE_HDLC = const(2)
_MODE_MANUFACTURER = const(6)


def baud_for_char(ch, mode_b=False):
    """Baud rate of a baud character (int code point or 1-char str); None if it names none."""
    if isinstance(ch, str):
        if len(ch) != 1:
            return None
        ch = ord(ch)
    if mode_b:
        i = ch - 0x41
        return BAUD_B[i] if 0 <= i < len(BAUD_B) else None
    i = ch - 0x30
    return BAUD_C[i] if 0 <= i < len(BAUD_C) else None


def char_for_baud(baud):
    """Mode C/E baud character for a baud rate (Iec21Error if there is none)."""
    for i in range(len(BAUD_C)):
        if BAUD_C[i] == baud:
            return chr(0x30 + i)
    raise Iec21Error("no mode C baud character for %s baud" % baud, field="baud")


def sign_on_request(address=""):
    """``/?`` [address] ``!`` CR LF. The address (device address, up to 32 chars) is optional."""
    if len(address) > MAX_ADDRESS:
        raise Iec21Error("device address longer than 32 characters", field="address")
    for c in address:
        if not ("0" <= c <= "9" or "A" <= c <= "Z" or "a" <= c <= "z" or c == " "):
            raise Iec21Error("device address may hold only letters, digits and spaces", field="address")
    return b"/?" + address.encode() + b"!\r\n"


def option_select(protocol_control, baud_char, mode):
    """ACK V Z Y CR LF: protocol control 0/1/2, baud character, mode 0/1/2/6."""
    if protocol_control not in (0, 1, 2):
        raise Iec21Error("protocol control must be 0, 1 or 2", field="V")
    if mode not in (0, 1, 2, 6):
        raise Iec21Error("mode must be 0 (readout), 1 (programming), 2 (HDLC) or 6", field="Y")
    if isinstance(baud_char, int):
        baud_char = chr(baud_char & 0x7F)
    if baud_for_char(baud_char) is None:
        raise Iec21Error("baud character must be 0..6", field="Z")
    return bytes((ACK, 0x30 + protocol_control, ord(baud_char), 0x30 + mode, _CR, _LF))


def ascii_text(b):
    """``bytes`` of printable ASCII (what the receivers keep) as a ``str``; never fails."""
    return "".join(chr(c) for c in b)


class Identification:
    """A parsed identification message ``/XXXZ[\\W...]<model>``.

    ``maker`` (3 letters as sent), ``baud_char``, ``baud`` (mode C/E rate, None for
    mode B), ``mode_b_baud``, ``escapes`` (the ``\\W`` characters), ``mode_e``
    (``\\2`` offered), ``reaction_ms`` (20 when the 3rd maker letter is lower case,
    else 200), ``model`` and ``text`` (the whole line without CR LF).
    """

    def __init__(self, line):
        if isinstance(line, str):
            line = line.encode()
        n = len(line)
        while n and line[n - 1] in (_CR, _LF):
            n -= 1
        if n < 5 or line[0] != _SLASH:
            raise Iec21Error("identification must start with '/' and hold maker and baud", field="ident",
                             offset=0)
        for i in range(n):
            if not 0x20 <= line[i] < 0x7F:
                raise Iec21Error("non-printable byte in identification", field="ident", offset=i)
        for i in range(1, 4):
            c = line[i]
            if not (0x41 <= c <= 0x5A or 0x61 <= c <= 0x7A):
                raise Iec21Error("maker id must be three letters", field="maker", offset=i)
        self.text = ascii_text(line[:n])
        self.maker = self.text[1:4]
        z = line[4]
        self.baud_char = chr(z)
        self.baud = baud_for_char(z)
        # Mode A meters send any other character: they stay at 300 baud.
        self.mode_b_baud = baud_for_char(z, True)
        self.reaction_ms = 20 if 0x61 <= line[3] <= 0x7A else 200
        esc = []
        i = 5
        while i + 1 < n and line[i] == _BSLASH:
            esc.append(chr(line[i + 1]))
            i += 2
        self.escapes = esc
        self.mode_e = "2" in esc
        self.model = self.text[i:]

    def __repr__(self):
        return "Identification(%r)" % self.text


# ---------------------------------------------------------------------------------------------
# Receivers: byte-fed state machines with fixed buffers.


class IdentReceiver:
    """Receives the identification line, skipping line noise and the echo of ``/?..!``."""

    def __init__(self, capacity=64):
        self._buf = bytearray(capacity)
        self.reset()

    def reset(self):
        self._n = 0
        self._in_line = False
        self.garbled = 0
        self.identification = None
        self.error = None
        self.raw = b""

    def feed(self, data):
        """Feed received bytes; True once a line starting with '/' (not the echo) has ended."""
        buf = self._buf
        for b in data:
            if not self._in_line:
                if b == _SLASH:
                    self._in_line = True
                    buf[0] = b
                    self._n = 1
                elif b & 0x80:
                    self.garbled += 1
                continue
            if b == _CR:
                continue  # the line ends at LF (the reaction time counts from the last byte)
            if b == _LF:
                line = buf[: self._n]
                self._in_line = False
                if self._n >= 2 and line[1] == _QMARK:
                    continue  # our own request, echoed by the probe
                self.raw = bytes(line)
                try:
                    self.identification = Identification(line)
                except Iec21Error as e:
                    self.error = e
                return True
            if self._n >= len(buf):
                self._in_line = False  # longer than any identification: noise, hunt again
                continue
            buf[self._n] = b
            self._n += 1
        return False


# ---------------------------------------------------------------------------------------------
# Procedures (generators yielding actions; see the module docstring).


class Options:
    """How to talk to one meter. Every timing knob the field needs is here.

    mode: "A", "B", "C" (readout) or "D" (listen to pushed telegrams).
    address: device address for the sign-on ("" = any meter).
    baud_switch: "auto" (switch to the proposed baud, on failure retry once at the
      initial baud: the ZMD120 case), "stay" (never switch) or an int (force that baud).
    settle_ms: quiet time after the ACK has left the wire, before switching (0-300).
    reaction_ms: wait after the identification before sending the ACK (None = 20 or
      200 ms as the identification allows).
    wakeup: send the NUL wake-up train (~2.2 s) and keep ~1.5 s quiet first.
    lower_baud_on_retry: after a failed attempt at a baud, try the next lower one.
    retries: extra attempts after a failed readout (no answer, garbage, silence).
    """

    def __init__(self, **kw):
        self.mode = "C"
        self.address = ""
        self.initial_baud = 300
        self.baud_switch = "auto"
        self.settle_ms = 0
        self.reaction_ms = None
        self.wakeup = False
        self.wakeup_ms = 2200
        self.wakeup_quiet_ms = 1500
        self.ident_timeout_ms = 2000
        self.data_timeout_ms = 2000
        self.retries = 1
        self.lower_baud_on_retry = False
        self.password = None
        self.max_value = 1024
        self.push_baud = 115200  # mode D (DSMR P1: 115200 8N1; classic mode D: 2400 7E1)
        self.push_bits = 8
        self.push_parity = "N"
        self.push_timeout_ms = 12000
        for k in kw:
            if not hasattr(self, k):
                raise Iec21Error("unknown option %r" % k, field=k)
            setattr(self, k, kw[k])
        if not 0 <= self.settle_ms <= 1000:
            raise Iec21Error("settle_ms must be 0..1000", field="settle_ms")
        if self.mode not in ("A", "B", "C", "D"):
            raise Iec21Error("mode must be A, B, C or D", field="mode")


def send_request(opts):
    """Procedure step: the line at the initial baud (7E1), the wake-up train if asked for, the
    request message. The first step of every IEC 62056-21 exchange (sign-on and readouts)."""
    yield (SET_LINE, opts.initial_baud, 7, "E")
    if opts.wakeup:
        yield (PROGRESS, "waking the meter (NUL train)")
        n = opts.wakeup_ms * opts.initial_baud // 10000  # 10 bits per character
        yield (SEND, bytes(n))
        yield (DRAIN,)
        yield (WAIT, opts.wakeup_quiet_ms)
    yield (SEND, sign_on_request(opts.address))


def no_answer(opts, tried, label):
    """The NoAnswerError for a sign-on request nobody answered (noted in ``tried``)."""
    tried.append("sign-on at %d baud%s: no answer" % (opts.initial_baud, label))
    return NoAnswerError("no answer to the sign-on request at %d baud: check the probe is seated "
                         "on the optical port%s" % (opts.initial_baud,
                                                    "" if opts.wakeup else " (or try --wakeup)"),
                         tried=tried)


def identify(opts, tried, label):
    """Procedure step: wake-up, request, identification; returns the Identification or raises."""
    yield from send_request(opts)
    rx = IdentReceiver()
    ok = yield (READ, rx, opts.ident_timeout_ms)
    if not ok:
        raise no_answer(opts, tried, label)
    if rx.identification is None:
        raise Iec21Error("bad identification %r: %s" % (rx.raw, rx.error), field="ident")
    yield (PROGRESS, "identification " + rx.identification.text)
    return rx.identification


def plan_bauds(opts, ident):
    """Bauds to try after the ACK, in order (the option select's baud, then the retries')."""
    proposed = ident.baud or opts.initial_baud
    bs = opts.baud_switch
    if bs == "stay":
        first = opts.initial_baud
    elif bs == "auto":
        first = proposed
    else:
        first = int(bs)
        if first > proposed:
            raise Iec21Error("meter offers at most %d baud, %d was forced" % (proposed, first),
                             field="baud")
        char_for_baud(first)
    bauds = [first]
    for _ in range(opts.retries):
        nxt = bauds[-1]
        if opts.lower_baud_on_retry:
            i = BAUD_C.index(nxt) if nxt in BAUD_C else 0
            nxt = BAUD_C[i - 1] if i > 0 else BAUD_C[0]
        elif bs == "auto" and nxt != opts.initial_baud:
            nxt = opts.initial_baud  # ZMD120: the meter did not switch; stay at the start baud
        bauds.append(nxt)
    return bauds


class Handover:
    """Mode E result: the line now carries HDLC at ``baud`` 8N1 (the HDLC layer takes over)."""

    def __init__(self, identification, baud):
        self.identification = identification
        self.baud = baud


def sign_on(opts):
    """Wake-up (if configured), request and identification: returns the :class:`Identification`.

    The caller then continues with :func:`readout` (``ident=``) or :func:`hand_over`, e.g.
    to pick mode E when the identification offers it (protocol detection).
    """
    return (yield from identify(opts, [], ""))


def mode_e(opts):
    """Sign on and hand the line over to HDLC: ACK 2 Z 2, then switch to the proposed baud 8N1."""
    ident = yield from identify(opts, [], "")
    return (yield from hand_over(opts, ident))


def hand_over(opts, ident):
    """After the identification: ACK 2 Z 2, drain, settle, switch to the baud 8N1 (mode E)."""
    if not ident.mode_e:
        yield (PROGRESS, "identification does not announce mode E (\\2); trying anyway")
    baud = ident.baud or opts.initial_baud
    if opts.baud_switch == "stay":
        baud = opts.initial_baud
    elif opts.baud_switch != "auto":
        baud = int(opts.baud_switch)
    yield (WAIT, opts.reaction_ms if opts.reaction_ms is not None else ident.reaction_ms)
    yield (SEND, option_select(_PC_HDLC, char_for_baud(baud), _MODE_HDLC))
    yield (DRAIN,)
    if opts.settle_ms:
        yield (WAIT, opts.settle_ms)
    yield (SET_LINE, baud, 8, "N")
    return Handover(ident, baud)

