"""IEC 62056-21 data readout (modes A, B, C and D), programming mode and their receivers.

Only IEC readings load it (docs/architecture.md, "Loaded on first use"); its procedures start with the
sign-on steps of :mod:`optoread.iec62056_21.signon`. Sans-IO like it: receivers are fed bytes,
procedures yield actions for :mod:`optoread.driver` (see that module's docstring).

Readout data sets go to a *sink* ``sink(address, values)`` as they are parsed
(values = list of ``(value, unit)`` strings, unit None when absent). They are
provisional: a procedure that ends in an error (bad BCC, timeout) means the
caller must discard them. With no sink the receiver collects them itself and
the procedure returns them only when the readout verified. Before each attempt's
data sets the sink gets ``sink(None, identification)`` (None when the line did not
parse): who answered, before the data; a second such call means a retried readout
starts again from its first data set.

Data sets keep the groups as the meter sent them; :func:`value_time` tells which of
them are one value with its own time (a maximum demand and when it occurred).
"""

from optoread import crc
from optoread.compat import const
from optoread.driver import DRAIN, FLUSH_INPUT, PROGRESS, READ, SEND, SET_LINE, WAIT
from optoread.errors import ChecksumError, Iec21Error, NoAnswerError
from optoread.iec62056_21.signon import (
    ACK,
    ETX,
    MAX_ADDRESS,
    MODE_PROGRAMMING,
    MODE_READOUT,
    NAK,
    PC_NORMAL,
    SOH,
    STX,
    Identification,  # noqa: F401  (type comments)
    IdentReceiver,
    ascii_text,
    char_for_baud,
    identify,
    no_answer,
    option_select,
    plan_bauds,
    send_request,
)

_CR = const(0x0D)
_LF = const(0x0A)
_SLASH = const(0x2F)
_BANG = const(0x21)
_LPAR = const(0x28)
_RPAR = const(0x29)
_STAR = const(0x2A)
_AMP = const(0x26)
_GARBLED_LIMIT = const(4)  # bytes with bit 7 set before a frame starts = wrong baud

_S_HUNT = const(0)  # looking for '/' (identification) or, if allowed, the data block
_S_IDENT = const(1)  # inside the identification line
_S_PRE = const(2)  # between identification and data: blank lines, echoed ACK, STX
_S_SKIPLINE = const(3)  # discarding an echoed line up to LF
_S_ADDR = const(4)  # data set address
_S_VALUE = const(5)  # inside "( ... )"
_S_AFTER = const(6)  # after ')': another '(' or the next data set
_S_BANG = const(7)  # after '!': CRC digits and/or CR LF
_S_ETX = const(8)  # STX framing: waiting for ETX
_S_BCC = const(9)  # the byte after ETX
_S_DONE = const(10)
_S_FAILED = const(11)


def _stamp(pair):
    """(ISO 8601 text, season letter or None) of a value group that is a meter's timestamp, else
    None: ``YYMMDDhhmm`` or ``YYMMDDhhmmss`` without a unit, or DSMR's ``YYMMDDhhmmssX`` (X = S
    summer / W winter time). Years 69-99 are 19xx, 00-68 are 20xx (POSIX ``%y``: DSMR's
    "no reading" stamp 700101010000W is 1970). Digits that are no valid time are no timestamp,
    except with the season letter: then the meter's text is kept as it is."""
    t, unit = pair
    n = len(t)
    season = None
    if n == 13 and t[12] in "SW":
        season = t[12]
        n = 12
    if unit is not None or n not in (10, 12) or not t[:n].isdigit():
        return None
    y, mo, d, h, mi = int(t[0:2]), int(t[2:4]), int(t[4:6]), int(t[6:8]), int(t[8:10])
    s = int(t[10:12]) if n == 12 else 0
    y += 1900 if y >= 69 else 2000
    days = b"\x1f\x1d\x1f\x1e\x1f\x1e\x1f\x1f\x1e\x1f\x1e\x1f"  # per month (February: 29)
    if 0 < mo < 13 and 0 < d <= days[mo - 1] and h < 24 and mi < 60 and s < 60:
        return "%04d-%02d-%02dT%02d:%02d:%02d" % (y, mo, d, h, mi, s), season
    return (t, season) if season else None


def value_time(values):
    """``(value, unit, time, season)`` when a data set's groups are one value with its own time,
    else None (data sets with one group, or with more that are not exactly value and time).

    Two groups, one a timestamp (see :func:`_stamp`) and the other not: ``1.6.0(02.468*kW)
    (1703100930)`` (IEC 62056-21 maximum demand; Iskra MT174) and, time first, DSMR's
    ``0-1:24.2.1(101209112500W)(12785.123*m3)``. ``time`` is ISO 8601 local meter time without
    an offset ("2017-03-10T09:30:00"); ``season`` is DSMR's letter, "S" (daylight saving time) or
    "W", else None: the offset it implies depends on the meter's country, so none is appended.
    """
    if len(values) != 2:
        return None
    a = _stamp(values[0])
    b = _stamp(values[1])
    if a is None and b is not None:
        return values[0][0], values[0][1], b[0], b[1]
    if b is None and a is not None:
        return values[1][0], values[1][1], a[0], a[1]
    return None  # neither is a time, or both look like one: not a value with its time


def command(cmd, data=None):
    """Programming-mode command: SOH C D [STX data] ETX BCC, e.g. ``command("R1", b"1.8.0()")``."""
    if len(cmd) != 2 or not ("A" <= cmd[0] <= "Z" and "0" <= cmd[1] <= "9"):
        raise Iec21Error("command id is a letter and a digit (e.g. P1, R1, B0)", field="command")
    out = bytearray((SOH,))
    out += cmd.encode()
    if data is not None:
        out.append(STX)
        out += data
    out.append(ETX)
    out.append(crc.bcc(out, 1))
    return bytes(out)


class Readout:
    """Outcome of a readout or push: identification, data sets, checksum verdicts, errors."""

    def __init__(self):
        self.identification = None  # type: Identification | None
        self.datasets = []
        self.bcc_ok = None  # type: bool | None  # True/False when STX..ETX BCC framing was present
        self.crc_ok = None  # type: bool | None  # True/False when a DSMR "!XXXX" CRC-16 was present
        self.complete = False  # the end marker '!' was seen
        self.errors = []

    def as_dict(self):
        """The JSON shape of ``optoread parse --json``."""
        return {
            "identification": self.identification.text if self.identification else None,
            "bcc_ok": self.bcc_ok,
            "crc_ok": self.crc_ok,
            "complete": self.complete,
            "datasets": [{"address": a, "values": [list(v) for v in vals]} for a, vals in self.datasets],
            "errors": list(self.errors),
        }

class ReadoutReceiver:
    """Parses a data message as it arrives: ``[/ident CR LF] [STX] data ! [CRC] CR LF [ETX BCC]``.

    Tolerant of what real meters and captures do: leading noise and echo,
    LF-only line ends, several data sets on one line, several value groups,
    ``value*unit``, empty values, ``&`` compound values (kept raw), garbage
    between data sets (reported in ``errors``). Data sets go to ``sink`` or, without
    one, into ``readout.datasets``. ``feed`` returns True when the message ended
    (or failed: ``failure`` names why).

    ``ident``: True = an identification line comes first, False = data only,
    None = either (captures). ``max_value`` bounds one value (DSMR text messages
    reach 1024 characters); the buffers are allocated once.
    """

    streaming = True  # a readout has no size limit: the driver bounds it by the reading's deadline

    def __init__(self, sink=None, ident=None, max_value=1024, max_errors=16):
        self._addr = bytearray(MAX_ADDRESS)
        self._val = bytearray(max_value)
        self._ident = IdentReceiver()
        self._sink = sink
        self._want_ident = ident
        self._max_errors = max_errors
        self.reset()

    def reset(self):
        self.readout = Readout()
        self.failure = None
        self._state = _S_HUNT if self._want_ident is not False else _S_PRE
        self._ident.reset()
        self._na = 0
        self._nv = 0
        self._values = []
        self._stx = False
        self._bcc = 0
        self._crc = 0
        self._crc_digits = 0
        self._crc_given = 0
        self._skip_addr = False
        self._garbled = 0
        self._crc_on = False
        self.offset = 0

    # -- helpers ---------------------------------------------------------------------------
    def _error(self, text):
        errs = self.readout.errors
        if len(errs) < self._max_errors:
            errs.append(text)
        elif len(errs) == self._max_errors:
            errs.append("further errors suppressed")

    def _emit(self):
        addr = ascii_text(self._addr[: self._na])
        values = self._values
        self._values = []
        self._na = 0
        if self._sink is not None:
            self._sink(addr, values)
        else:
            self.readout.datasets.append((addr, values))

    def _value_done(self):
        v = self._val
        n = self._nv
        self._nv = 0
        star = -1
        for i in range(n):
            c = v[i]
            if c == _AMP:
                star = -1  # compound value ("088*C&082*C"): kept raw
                break
            if c == _STAR and star < 0:
                star = i
        if star < 0:
            self._values.append((ascii_text(v[:n]), None))
        else:
            self._values.append((ascii_text(v[:star]), ascii_text(v[star + 1 : n])))

    # -- the state machine -------------------------------------------------------------------
    def feed(self, data):
        """Feed received bytes; True when the message is complete or has failed."""
        st = self._state
        if st >= _S_DONE:
            return True
        for b in data:
            self.offset += 1
            if self._stx and st < _S_BCC:
                self._bcc ^= b
            if st <= _S_SKIPLINE:
                st = self._pre(b, st)
                if st >= _S_DONE:
                    self._state = st
                    return True
                continue
            if st < _S_BANG and self._crc_on:
                self._crc = crc.crc16_arc((b,), 0, 1, self._crc)
            if st == _S_ADDR:
                if b == _LPAR:
                    if self._skip_addr:
                        self._skip_addr = False
                        self._na = 0
                    st = _S_VALUE
                elif b == _BANG and self._na == 0:
                    st = self._bang()
                elif b == _CR or b == _LF:
                    if self._na:
                        self._error("data set without value: %s" % ascii_text(self._addr[: self._na]))
                        self._na = 0
                    self._skip_addr = False
                elif b == ETX:
                    self._error("ETX before the end marker '!'")
                    self.readout.bcc_ok = None
                    st = _S_BCC
                elif b < 0x20 or b >= 0x7F:
                    if self._na:
                        self._error("noise in data set address after %r" % ascii_text(self._addr[: self._na]))
                        self._na = 0
                    else:
                        self._error("noise byte 0x%02X at offset %d" % (b, self.offset - 1))
                elif self._na >= MAX_ADDRESS:
                    if not self._skip_addr:
                        self._error("data set address longer than %d characters" % MAX_ADDRESS)
                    self._skip_addr = True
                elif b == _BANG:
                    # '!' after garbage without a newline (ACE3000 capture): end of data.
                    self._error("garbage before end marker: %r" % ascii_text(self._addr[: self._na]))
                    self._na = 0
                    st = self._bang()
                else:
                    self._addr[self._na] = b
                    self._na += 1
            elif st == _S_VALUE:
                if b == _RPAR:
                    if self._skip_addr:
                        self._nv = 0
                    else:
                        self._value_done()
                    st = _S_AFTER
                elif b == _CR or b == _LF or b < 0x20 or b >= 0x7F:
                    self._error("unterminated value in data set %s" % ascii_text(self._addr[: self._na]))
                    self._na = self._nv = 0
                    self._values = []
                    st = _S_ADDR
                elif self._nv >= len(self._val):
                    self._error("value longer than %d characters in %s" % (len(self._val),
                                                                          ascii_text(self._addr[: self._na])))
                    self._skip_addr = True
                else:
                    self._val[self._nv] = b
                    self._nv += 1
            elif st == _S_AFTER:
                if b == _LPAR:
                    st = _S_VALUE
                    continue
                if self._skip_addr:
                    self._na = 0
                    self._values = []
                    self._skip_addr = False
                else:
                    self._emit()
                st = _S_ADDR
                if b == _BANG:
                    st = self._bang()
                elif b == ETX:
                    self._error("ETX before the end marker '!'")
                    st = _S_BCC
                elif b == _CR or b == _LF:
                    pass
                elif b < 0x20 or b >= 0x7F:
                    self._error("noise byte 0x%02X at offset %d" % (b, self.offset - 1))
                else:
                    self._addr[0] = b
                    self._na = 1
            elif st == _S_BANG:
                st = self._after_bang(b)
            elif st == _S_ETX:
                if b == ETX:
                    st = _S_BCC
                elif b not in (_CR, _LF):
                    self._error("byte 0x%02X between '!' and ETX" % b)
            elif st == _S_BCC:
                given = b
                computed = self._bcc  # already includes ETX, not this byte
                self.readout.bcc_ok = given == computed
                if given != computed:
                    self._error("BCC mismatch: received 0x%02X, computed 0x%02X" % (given, computed))
                st = _S_DONE
            if st >= _S_DONE:
                self._state = st
                return True
        self._state = st
        return False

    def _pre(self, b, st):
        """States before the data: hunt, identification, between identification and data."""
        if st == _S_HUNT:
            if b == _SLASH:
                self._ident.reset()
                self._ident.feed((b,))
                self._crc_on = True
                self._crc = crc.crc16_arc((b,))
                return _S_IDENT
            if b & 0x80:
                self._garbled += 1
                if self._garbled >= _GARBLED_LIMIT:
                    return self._fail_state("garbage on the line (wrong baud rate?)")
                return st
            if self._want_ident is None and (0x30 <= b <= 0x39 or 0x41 <= b <= 0x5A or 0x61 <= b <= 0x7A):
                # A data block without identification (some captures start with the data).
                self._addr[0] = b
                self._na = 1
                return _S_ADDR
            if b == STX and self._want_ident is None:
                self._stx = True
                self._bcc = 0
                return _S_ADDR
            return st
        if st == _S_IDENT:
            if b == _SLASH and not self._ident._in_line:
                self._crc = 0  # the earlier line was our echoed request; the telegram starts here
            self._crc = crc.crc16_arc((b,), 0, 1, self._crc)
            if self._ident.feed((b,)):
                if self._ident.error is not None:
                    self._error(str(self._ident.error))
                self.readout.identification = self._ident.identification
                if self._sink is not None:
                    self._sink(None, self.readout.identification)  # who answered (module docstring)
                return _S_PRE if b == _LF else _S_SKIPLINE
            return st
        if st == _S_SKIPLINE:
            if self._crc_on:
                self._crc = crc.crc16_arc((b,), 0, 1, self._crc)
            return _S_PRE if b == _LF else st
        # _S_PRE
        if b == STX:
            self._stx = True
            self._bcc = 0
            return _S_ADDR
        if b == ACK:
            return _S_SKIPLINE  # the echo of our option select message
        if self._crc_on:
            self._crc = crc.crc16_arc((b,), 0, 1, self._crc)
        if b == _CR or b == _LF:
            return st
        if b & 0x80:
            self._garbled += 1
            if self._garbled >= _GARBLED_LIMIT:
                return self._fail_state("garbage on the line (wrong baud rate?)")
            return st
        if b < 0x20 or b == 0x7F:
            return st
        if b == _BANG:
            return self._bang()
        self._addr[0] = b
        self._na = 1
        return _S_ADDR

    def _fail_state(self, why):
        self.failure = why
        return _S_FAILED

    def _bang(self):
        self.readout.complete = True
        return _S_BANG

    def _after_bang(self, b):
        r = self.readout
        if self._crc_digits < 4 and (0x30 <= b <= 0x39 or 0x41 <= b <= 0x46 or 0x61 <= b <= 0x66):
            if self._stx:
                self._error("byte 0x%02X between '!' and ETX" % b)
                return _S_ETX
            self._crc_given = (self._crc_given << 4) | int(chr(b), 16)
            self._crc_digits += 1
            if self._crc_digits == 4:
                r.crc_ok = self._crc_given == self._crc
                if not r.crc_ok:
                    self._error("CRC mismatch: received %04X, computed %04X" % (self._crc_given, self._crc))
                return _S_DONE
            return _S_BANG
        if self._crc_digits:
            self._error("CRC after '!' has only %d hex digits" % self._crc_digits)
            return _S_DONE
        if b == _CR:
            return _S_BANG
        if self._stx:
            if b == ETX:
                return _S_BCC
            return _S_ETX
        return _S_DONE  # LF (or anything) after '!' ends an unframed message

    def finish(self):
        """End of input (file parsing): record what is missing; returns the Readout."""
        r = self.readout
        st = self._state
        if st == _S_VALUE or st == _S_AFTER:
            if st == _S_AFTER and not self._skip_addr:
                self._emit()
            else:
                self._error("input ended inside a data set")
        if st == _S_FAILED:
            self._error(self.failure)
        elif st < _S_BANG:
            if st in (_S_HUNT, _S_IDENT) and r.identification is None and not r.datasets:
                self._error("no readout found")
            else:
                self._error("readout incomplete: input ended before the end marker '!'")
        elif self._stx and r.bcc_ok is None:
            self._error("STX framing without ETX and BCC")
        self._state = _S_DONE
        return r

def parse_readout(data, chunk=0):
    """Parse a captured readout or telegram (bytes) tolerantly; returns a :class:`Readout`.

    A capture may hold several messages (a push log, or data blocks one after the
    other): data sets of every message are returned in order; trailing bytes that
    hold no data set (gateway trailers, padding) are ignored. ``chunk`` > 0 feeds
    the bytes in pieces of that size (tests: byte-by-byte equals whole).
    """
    result = None
    pos = 0
    n = len(data)
    while pos < n:
        rx = ReadoutReceiver(ident=None)
        step = chunk or n
        i = pos
        while i < n and not rx.feed(data[i:i + step]):
            i += step
        r = rx.finish()
        pos += rx.offset if rx.offset else n
        if result is None:
            result = r
        elif r.datasets:
            result.datasets.extend(r.datasets)
            result.errors.extend(r.errors)
            result.complete = result.complete and r.complete
            for name in ("bcc_ok", "crc_ok"):
                v = getattr(r, name)
                if v is not None and getattr(result, name) is not False:
                    setattr(result, name, v)
    return result if result is not None else ReadoutReceiver(ident=None).finish()

class MessageReceiver:
    """Programming-mode answers: ACK, NAK, or ``[SOH Cmd] STX data ETX BCC`` (BCC checked)."""

    def __init__(self, capacity=256):
        self._buf = bytearray(capacity)
        self.reset()

    def reset(self):
        self._n = 0
        self._state = 0  # 0 hunting, 1 in message, 2 waiting BCC, 3 done
        self._bcc = 0
        self.kind = None  # "ack", "nak", "message"
        self.command = None  # e.g. "P0", "B0" when the message starts with SOH
        self.data = b""
        self.bcc_ok = None
        self.garbled = 0

    def feed(self, data):
        buf = self._buf
        for b in data:
            st = self._state
            if st == 0:
                if b == ACK or b == NAK:
                    self.kind = "ack" if b == ACK else "nak"
                    self._state = 3
                    return True
                if b == SOH or b == STX:
                    self._state = 1
                    self._n = 0
                    self._bcc = 0
                    self._soh = b == SOH
                    if b == STX:
                        buf[0] = STX
                        self._n = 1
                elif b & 0x80:
                    self.garbled += 1
                continue
            if st == 1:
                self._bcc ^= b
                if b == ETX:
                    self._state = 2
                elif self._n < len(buf):
                    buf[self._n] = b
                    self._n += 1
                else:
                    self._state = 0  # longer than any answer we asked for: hunt again
                    self.garbled += 1
                continue
            if st == 2:
                self.bcc_ok = b == self._bcc
                msg = bytes(buf[: self._n])
                if self._soh:
                    self.command = ascii_text(msg[:2]) if len(msg) >= 2 else ""
                    msg = msg[2:]
                stx = msg.find(b"\x02")
                self.data = msg[stx + 1 :] if stx >= 0 else b""
                self.kind = "message"
                self._state = 3
                return True
        return False

def parse_data_line(text):
    """Split ``address(value*unit)(value)...`` into (address, [(value, unit), ...])."""
    rx = ReadoutReceiver(ident=False)
    if isinstance(text, str):
        text = text.encode()
    rx.feed(text)
    rx.feed(b"\r\n")
    ds = rx.readout.datasets
    if len(ds) != 1:
        raise Iec21Error("not a single data set: %r" % ascii_text(bytes(text[:40])), field="data set")
    return ds[0]

def readout(opts, sink=None, ident=None):
    """Read a meter's data message (modes A, B, C). Returns a :class:`Readout` once verified.

    ``ident``: an identification already received (the sign-on was done by the caller,
    e.g. protocol detection); the first attempt then continues from it.
    Raises NoAnswerError (silence), ChecksumError (BCC/CRC mismatch) or Iec21Error.
    """
    if opts.mode == "D":
        return (yield from listen(opts, sink))
    tried = []
    attempts = 1 + opts.retries
    bauds = None
    for attempt in range(attempts):
        label = "" if attempt == 0 else " (attempt %d)" % (attempt + 1)
        baud = opts.initial_baud
        if ident is not None and attempt == 0 and opts.mode == "C":
            rx = ReadoutReceiver(sink, ident=False, max_value=opts.max_value)
            rx.readout.identification = ident
        elif opts.mode == "A":
            # The data message follows the identification at once: one receiver for both.
            yield from send_request(opts)
            rx = ReadoutReceiver(sink, ident=True, max_value=opts.max_value)
            ok = yield (READ, rx, opts.ident_timeout_ms)
            ident = rx.readout.identification
            if ident is None:
                raise no_answer(opts, tried, label)
        else:
            ident = yield from identify(opts, tried, label)
            rx = ReadoutReceiver(sink, ident=False, max_value=opts.max_value)
            rx.readout.identification = ident
        if sink is not None and opts.mode != "A":
            sink(None, ident)  # who answered, before this attempt's data sets (mode A: the receiver)
        if opts.mode == "A":
            pass
        elif opts.mode == "B":
            baud = ident.mode_b_baud or opts.initial_baud
            if baud != opts.initial_baud:
                yield (SET_LINE, baud, 7, "E")
        else:
            if bauds is None:
                bauds = plan_bauds(opts, ident)
            baud = bauds[min(attempt, len(bauds) - 1)]
            yield (WAIT, opts.reaction_ms if opts.reaction_ms is not None else ident.reaction_ms)
            yield (SEND, option_select(PC_NORMAL, char_for_baud(baud), MODE_READOUT))
            yield (DRAIN,)  # the ACK must have left the wire before the UART is re-initialised
            if opts.settle_ms:
                yield (WAIT, opts.settle_ms)
            if baud != opts.initial_baud:
                yield (SET_LINE, baud, 7, "E")
            yield (PROGRESS, "reading at %d baud" % baud)
        if opts.mode != "A":
            ok = yield (READ, rx, opts.data_timeout_ms)
        if ok and rx.failure is None:
            r = rx.readout
            if r.bcc_ok is False or r.crc_ok is False:
                raise ChecksumError("readout rejected: %s" % "; ".join(
                    e for e in r.errors if "mismatch" in e), field="BCC")
            return r
        why = rx.failure or ("no data" if rx.offset == 0 else "data stopped after %d bytes" % rx.offset)
        tried.append("readout at %d baud: %s" % (baud, why))
        # Let the meter finish whatever it is sending and fall back to idle before signing on again.
        yield (SET_LINE, opts.initial_baud, 7, "E")
        yield (FLUSH_INPUT, 1500)
    raise NoAnswerError("readout failed: " + "; ".join(tried), tried=tried)

def listen(opts, sink=None):
    """Mode D: wait for one pushed telegram (e.g. DSMR P1) and verify its CRC-16 or BCC."""
    yield (SET_LINE, opts.push_baud, opts.push_bits, opts.push_parity)
    rx = ReadoutReceiver(sink, ident=True, max_value=opts.max_value)
    ok = yield (READ, rx, opts.push_timeout_ms)
    if not ok or rx.failure is not None:
        raise NoAnswerError("no telegram within %d ms at %d baud%s" % (
            opts.push_timeout_ms, opts.push_baud, ": " + rx.failure if rx.failure else ""),
            tried=["listen at %d baud" % opts.push_baud])
    r = rx.readout
    if r.crc_ok is False or r.bcc_ok is False:
        raise ChecksumError("telegram rejected: %s" % "; ".join(r.errors), field="CRC")
    return r

def _exchange(msg, rx, timeout_ms):
    rx.reset()
    yield (SEND, msg)
    ok = yield (READ, rx, timeout_ms)
    return ok

def read_registers(opts, addresses, password=None):
    """Programming mode: sign on, (P1 password), R1/R5 each address, B0. Returns [(addr, values)].

    EMH meters answer R1 with only an ACK; then the same address is read with R5.
    """
    tried = []
    ident = yield from identify(opts, tried, "")
    baud = plan_bauds(opts, ident)[0]
    yield (WAIT, opts.reaction_ms if opts.reaction_ms is not None else ident.reaction_ms)
    yield (SEND, option_select(PC_NORMAL, char_for_baud(baud), MODE_PROGRAMMING))
    yield (DRAIN,)
    if opts.settle_ms:
        yield (WAIT, opts.settle_ms)
    if baud != opts.initial_baud:
        yield (SET_LINE, baud, 7, "E")
    rx = MessageReceiver()
    ok = yield (READ, rx, opts.data_timeout_ms)
    if not ok or rx.kind != "message" or rx.command != "P0":
        raise NoAnswerError("meter did not enter programming mode (no P0 at %d baud)" % baud,
                            tried=["programming mode at %d baud" % baud])
    results = []
    try:
        if password is not None:
            ok = yield from _exchange(command("P1", b"(" + password.encode() + b")"), rx,
                                      opts.data_timeout_ms)
            if not ok or rx.kind != "ack":
                raise Iec21Error("password rejected by the meter", field="P1")
        for addr in addresses:
            request = addr.encode() + b"()"
            values = None
            for cmd in ("R1", "R5"):
                ok = yield from _exchange(command(cmd, request), rx, opts.data_timeout_ms)
                if not ok:
                    raise NoAnswerError("no answer to %s %s" % (cmd, addr), tried=[cmd + " " + addr])
                if rx.kind == "message":
                    if rx.bcc_ok is False:
                        raise ChecksumError("BCC mismatch in the answer to %s %s" % (cmd, addr),
                                            field="BCC")
                    values = _register_values(addr, rx.data)
                    break
                if rx.kind == "nak":
                    raise Iec21Error("meter refused %s %s (NAK)" % (cmd, addr), field=cmd)
                # a bare ACK (EMH): ask again with R5
            if values is None:
                raise Iec21Error("meter answered %s with ACK only, also for R5" % addr, field="R5")
            results.append((addr, values))
            yield (PROGRESS, "read %s" % addr)
    finally:
        yield (SEND, command("B0"))
        yield (DRAIN,)
    return results

def _register_values(addr, data):
    text = ascii_text(bytes(b for b in data if 0x20 <= b < 0x7F))
    if text.startswith("(ERROR") or text.startswith("(ER"):
        raise Iec21Error("meter reports an error for %s: %s" % (addr, text), field=addr)
    if not text.startswith("("):
        _, values = parse_data_line(text)
    else:
        _, values = parse_data_line(addr + text)
    return values
