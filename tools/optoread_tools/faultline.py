"""Fault-injecting transport wrapper and the fault matrix runner (CPython, issue #7).

:class:`FaultLine` wraps any transport (``sim_dlms.ServerTransport``, ``VirtualLine(...).reader``)
and injects one kind of fault into the traffic of one *phase* of a reading. The phase of
each request is recognised from the bytes the reader writes (HDLC frames decoded with
``optoread.hdlc``); the fault then hits the meter's answer to that request::

    signon   "/?...!" sign-on request and the option-select ACK (IEC 62056-21)
    snrm     SNRM -> UA
    aarq     AARQ -> AARE
    get      GET-request-normal / -with-list (and SN read) -> response
    block    GET-request-next -> the next block
    release  RLRQ -> RLRE, DISC -> UA/DM

RR frames and continuation segments keep the phase of the exchange they belong to.

Faults (``FAULTS``): ``echo`` (the request comes back before the answer), ``bit_error``
(one bit of the answer flipped), ``bit_error_tx`` (one bit of the request flipped on its
way to the meter), ``drop`` (one byte of the answer lost), ``duplicate`` (one byte of the
answer doubled), ``truncate`` (the answer cut short), ``delay`` (the answer 2.5 s late:
inside the reader's timeout), ``late`` (4 s late: past it), ``missing`` (no answer),
``link_loss`` (the meter forgets the link just before the request: silence, or DM with the
server's ``dm_when_disconnected`` quirk), ``noise`` (the answer replaced by 200 random bytes a
second: for 2 s once, or, with ``times`` None, for ever from that request on: a line that is
never quiet). ``times`` bounds how many requests of the phase are hit (None = every one). The
byte faults hit byte 9 of the answer (the first frame's header/info); ``bit_error@2`` etc. hit
another byte (:data:`POSITIONS`): 2 (the frame format), 17 (the information field).

``python -m optoread_tools.faultline --table`` runs the matrix (:func:`run_matrix`) and
writes ``docs/fault-matrix.md``.
"""

import os
import sys
import tempfile

from optoread.dlms.axdr import decode as axdr
from optoread.dlms.hdlc import frame as hdlc_rx
from optoread.errors import OptoreadError

PHASES = ("signon", "snrm", "aarq", "get", "block", "release")
FAULTS = ("echo", "bit_error", "bit_error_tx", "drop", "duplicate", "truncate", "delay", "late",
          "missing", "link_loss", "noise")
POSITIONS = (2, 17)  # further bytes of the answer the byte faults hit (besides _AT)
BYTE_FAULTS = ("bit_error", "drop", "duplicate", "truncate")
# the matrix's rows: every fault at byte _AT, the byte faults again at each of POSITIONS
ROWS_OF_FAULTS = FAULTS + tuple("%s@%d" % (f, p) for p in POSITIONS for f in BYTE_FAULTS)

_AT = 9  # byte of the answer the byte faults hit (inside the first frame's header/info)
_NOISE_GAP_MS = 5  # 200 bytes a second
_NOISE_ONCE_MS = 2000
_DELAY_MS = {"delay": 2500, "late": 4000}
_APDU_PHASE = {0x60: "aarq", 0x62: "release", 0x05: "get"}  # AARQ, RLRQ, SN read-request
_GET_PHASE = {1: "get", 2: "block", 3: "get"}


def classify(data, current=None):
    """The phase of the request ``data`` (one write of the reader); ``current`` for frames
    that continue an exchange (RR, segments) or bytes that are not recognised."""
    data = bytes(data)
    if data.startswith(b"/") or data[:1] == b"\x06" or data[:1] == b"\x01":
        return "signon"
    rx = hdlc_rx.FrameReceiver(0x7FF)
    off = 0
    phase = current
    while True:
        off = rx.feed(memoryview(data), off, len(data))
        if not rx.ready:
            break
        f = rx.frame
        if f.kind == "SNRM":
            phase = "snrm"
        elif f.kind == "DISC":
            phase = "release"
        elif f.kind == "I":
            info = bytes(f.info())
            if info[:2] == b"\xe6\xe6" and len(info) > 3:
                tag = info[3]
                if tag == 0xC0 and len(info) > 4:
                    phase = _GET_PHASE.get(info[4], phase)
                else:
                    phase = _APDU_PHASE.get(tag, phase)
    return phase


class Hang(Exception):
    """The reading went on past the write or virtual-time budget: it would never end."""


class FaultLine:
    """A transport that passes everything to ``inner`` except the fault it injects.

    ``fault`` one of :data:`FAULTS` (or None: a pass-through that still records phases),
    ``phase`` one of :data:`PHASES`, ``times`` how many requests of that phase are hit
    (None = all), ``on_link_loss`` called for the ``link_loss`` fault. ``phases`` lists the
    phase of every write; ``hits`` counts injections.
    """

    def __init__(self, inner, fault=None, phase=None, times=1, on_link_loss=None, max_writes=600,
                 max_ms=900000):
        self.at = _AT
        if fault is not None and "@" in fault:
            fault, at = fault.split("@")
            self.at = int(at)
            if fault not in BYTE_FAULTS:
                raise ValueError("only %s take a position" % ", ".join(BYTE_FAULTS))
        if fault is not None and fault not in FAULTS:
            raise ValueError("unknown fault %r" % (fault,))
        if phase is not None and phase not in PHASES:
            raise ValueError("unknown phase %r" % (phase,))
        self.inner = inner
        self.fault = fault
        self.phase = phase
        self.times = times
        self.on_link_loss = on_link_loss
        self.max_writes = max_writes
        self.max_ms = max_ms
        self._t0 = inner.ticks_ms()
        self.current = None
        self.phases = []
        self.hits = 0
        self._active = False  # the answer to the last write is being mangled
        self._pos = 0  # bytes of that answer seen so far
        self._pending = bytearray()  # bytes for the reader ahead of the line (echo, duplicates)
        self._hold_until = None  # virtual ms before which the answer is withheld
        self._noise_until = None  # virtual ms the noise lasts to (-1: for ever)
        self._rnd = 0x2545F491  # xorshift state: the noise is the same in every run
        self.applied = 0  # answers a byte fault actually reached (an answer may be shorter)

    # -- the transport API --------------------------------------------------------------------
    def write(self, data):
        """Pass the request on (possibly damaged) after noting its phase."""
        data = bytes(data)
        if len(self.phases) >= self.max_writes or self.inner.ticks_ms() - self._t0 > self.max_ms:
            raise Hang("%d writes, %d s of virtual time, still going; last phases %s"
                       % (len(self.phases), (self.inner.ticks_ms() - self._t0) // 1000,
                          ",".join(self.phases[-4:])))
        self.current = classify(data, self.current)
        self.phases.append(self.current)
        hit = (self.fault is not None and self.current == self.phase
               and (self.times is None or self.hits < self.times))
        self._active = False
        self._pos = 0
        if hit:
            self.hits += 1
            self._active = True
            f = self.fault
            if f == "bit_error_tx":
                self._active = False
                b = bytearray(data)
                b[min(_AT, len(b) - 1)] ^= 0x10
                data = bytes(b)
            elif f == "link_loss":
                self._active = False
                if self.on_link_loss is not None:
                    self.on_link_loss()
            elif f == "echo":
                self._pending += data
            elif f in _DELAY_MS:
                self._hold_until = self.inner.ticks_ms() + _DELAY_MS[f]
            elif f == "noise":
                self._noise_until = -1 if self.times is None else self.inner.ticks_ms() + _NOISE_ONCE_MS
        return self.inner.write(data)

    def drain(self):
        return self.inner.drain()

    def set_line(self, baud, bits, parity, stop=1):
        return self.inner.set_line(baud, bits, parity, stop)

    def sleep_ms(self, ms):
        return self.inner.sleep_ms(ms)

    def ticks_ms(self):
        return self.inner.ticks_ms()

    def close(self):
        close = getattr(self.inner, "close", None)
        if close is not None:
            close()

    def readinto(self, buf, timeout_ms):
        """As the inner transport's, with the answer mangled; waits at most ``timeout_ms``."""
        if self._pending:
            return self._give(buf)
        if self._noise_until is not None:
            return self._noise(buf, timeout_ms)
        start = self.inner.ticks_ms()
        left = timeout_ms
        while left > 0:
            if self._hold_until is not None:
                wait = self._hold_until - self.inner.ticks_ms()
                if wait >= left:
                    self.inner.sleep_ms(left)
                    return 0
                if wait > 0:
                    self.inner.sleep_ms(wait)
                self._hold_until = None
                left = timeout_ms - (self.inner.ticks_ms() - start)
                if left <= 0:
                    return 0
            tmp = bytearray(len(buf))
            n = self.inner.readinto(tmp, left)
            if not n:
                return 0
            self._mangle(tmp, n)
            if self._pending:
                return self._give(buf)
            left = timeout_ms - (self.inner.ticks_ms() - start)
        return 0

    # -- internals ----------------------------------------------------------------------------
    def _noise(self, buf, timeout_ms):
        """One random byte every 5 ms (the meter's own answer is lost under it)."""
        now = self.inner.ticks_ms()
        if self._noise_until != -1 and now >= self._noise_until:
            self._noise_until = None
            tmp = bytearray(len(buf))
            while self.inner.readinto(tmp, 0):  # what the meter said meanwhile: drowned
                pass
            return self.readinto(buf, timeout_ms)
        if timeout_ms < _NOISE_GAP_MS:
            self.inner.sleep_ms(timeout_ms)
            return 0
        self.inner.sleep_ms(_NOISE_GAP_MS)
        x = self._rnd
        x ^= (x << 13) & 0xFFFFFFFF
        x ^= x >> 17
        x ^= (x << 5) & 0xFFFFFFFF
        self._rnd = x
        buf[0] = x & 0xFF
        return 1

    def _give(self, buf):
        n = min(len(buf), len(self._pending))
        buf[:n] = self._pending[:n]
        del self._pending[:n]
        return n

    def _mangle(self, tmp, n):
        f = self.fault if self._active else None
        out = self._pending
        for i in range(n):
            b = tmp[i]
            pos = self._pos
            self._pos += 1
            at = self.at
            if f == "missing" or (f == "truncate" and pos >= at):
                if pos == at:
                    self.applied += 1
                continue
            if pos == at:
                if f is not None:
                    self.applied += 1
                if f == "drop":
                    continue
                if f == "bit_error":
                    b ^= 0x04
                elif f == "duplicate":
                    out.append(b)
            out.append(b)


# ---------------------------------------------------------------- the matrix

PLAN = {"name": "faults", "steps": [{"registers": ["1.0.1.8.0.255", "1.0.32.7.0.255"]},
                                   {"profile": "1.0.99.1.0.255", "entries": 40}]}
PROFILE = "1.0.99.1.0.255"
REGISTERS = ("1.0.1.8.0.255", "1.0.32.7.0.255")
ROWS = 300
CAUSE_WORDS = ("no answer", "fcs", "hcs", "checksum", "bcc", "authentication", "address", "timeout",
               "rejected", "refused", "dm", "frmr", "disconnect", "garbage", "block", "invoke",
               "unexpected", "length", "truncated", "sequence", "denied", "password", "deadline",
               "never went quiet", "kept sending", "store full", "identification")
_BAD_NAMES = ("KeyError", "IndexError", "ValueError", "TypeError", "struct.error", "AttributeError",
              "UnicodeError", "Traceback")


class Outcome:
    """One cell: ``status`` "ok" (complete, data right), "error" (incomplete, cause named) or
    "FAIL" (anything else: ``problems`` says what)."""

    def __init__(self, fault, phase):
        self.fault = fault
        self.phase = phase
        self.status = "FAIL"
        self.error = None
        self.problems = []
        self.hits = 0
        self.raised = None

    @property
    def passed(self):
        return self.status in ("ok", "error", "n/a")

    def short(self):
        if self.status == "ok":
            return "ok (data correct)"
        if self.status == "error":
            return "clean error: %s" % _brief(self.error)
        return "FAIL: %s" % "; ".join(self.problems)

    def __repr__(self):
        return "Outcome(%s/%s: %s)" % (self.fault, self.phase, self.short())


def _brief(text, n=70):
    text = (text or "").replace("|", "/").replace("\n", " ")
    return text if len(text) <= n else text[:n - 3] + "..."


def _new_store(capacity=None):
    """A store in a fresh temp dir; ``capacity`` (bytes): a file system that holds no more (the
    flash filling mid-session)."""
    from optoread.store import store

    root = tempfile.mkdtemp(prefix="faultline-")
    os.makedirs(os.path.join(root, "store"))
    fs = None
    if capacity is not None:
        class SmallFs(store.OsFs):
            def free(self, path):
                used = 0
                for name in os.listdir(os.path.join(root, "store")):
                    used += os.path.getsize(os.path.join(root, "store", name))
                return max(0, capacity - used)

        fs = SmallFs()
    s = store.Store(fs, root=os.path.join(root, "store"))
    s.mount()
    return s


def _expected_row(row):
    out = []
    for c in row:
        if isinstance(c, (bytes, bytearray)) and len(c) == 12:
            out.append(axdr.DateTime.from_bytes(bytes(c)).local_epoch())
        elif isinstance(c, bool):
            out.append(int(c))
        else:
            out.append(c)
    return out


def check(outcome, st, summary, model, server, plan=PLAN, iec=False):
    """Fill ``outcome`` from a reading's summary; see the module doc for the rule."""
    from optoread.device import services as device

    p = outcome.problems
    if summary is None:
        p.append("no session committed (%s)" % outcome.raised)
    else:
        sessions = list(st.sessions())
        last = sessions[-1] if sessions else None
        if last is None or last.seq != summary.seq:
            p.append("the summary is not the store's last session")
        elif last.complete != summary.complete:
            p.append("store and summary disagree on completeness")
        d = device.session_json(st, summary.seq)
        if summary.complete:
            p.extend(_data_problems(d, model, plan, iec))
            if not p:
                outcome.status = "ok"
        else:
            outcome.error = summary.error or ""
            low = outcome.error.lower()
            if not any(w in low for w in CAUSE_WORDS):
                p.append("error does not name a cause: %r" % outcome.error)
            if any(b in outcome.error for b in _BAD_NAMES):
                p.append("error is a Python exception: %r" % outcome.error)
            if d.get("outcome") == "complete":
                p.append("incomplete summary but committed complete")
            if model is not None and not iec:
                p.extend(_partial_problems(d, model, plan, outcome.phase))
            if not p:
                outcome.status = "error"
    # An association does not outlive its HDLC link (the server drops both on DISC/SNRM).
    if server is not None and server.connected:
        p.append("meter's HDLC link left open")
        outcome.status = "FAIL"


def _partial_problems(d, model, plan, phase):
    """What an incomplete session holds must be right: every register value it has equals the
    model's, its rows are the first of the wanted ones, and a fault after the registers were read
    (block, release) leaves them all there."""
    p = []
    vals = {v["obis"]: v for v in d["values"]}
    for obis in REGISTERS:
        v = vals.get(obis)
        if v is None:
            if phase in ("block", "release"):
                p.append("register %s read before the fault is missing" % obis)
            continue
        value, scaler, unit = model.expected_register(obis)
        if (v["value"], v["scaler"], v["unit"]) != (value, scaler, unit):
            p.append("register %s holds %r, the meter has %r" % (obis, v, (value, scaler, unit)))
    for step in plan["steps"]:
        if "profile" not in step:
            continue
        for got in (x for x in d["profiles"] if x["obis"] == step["profile"]):
            n = step["entries"]
            total = model.profile(step["profile"]).rows
            want = [_expected_row(r) for r in model.expected_rows(step["profile"], total - n, total)]
            if got["rows"] != want[:len(got["rows"])]:
                p.append("profile %s: %d rows kept, not the first ones the meter sent"
                         % (step["profile"], len(got["rows"])))
    return p


def _data_problems(d, model, plan, iec):
    p = []
    if iec:
        if {"obis": "1.8.0", "value": "012345.678", "scaler": None, "unit": "kWh"} not in d["values"]:
            p.append("1.8.0 missing or wrong")
        return p
    vals = {v["obis"]: v for v in d["values"]}
    for obis in REGISTERS:
        v = vals.get(obis)
        value, scaler, unit = model.expected_register(obis)
        if v is None or (v["value"], v["scaler"], v["unit"]) != (value, scaler, unit):
            p.append("register %s: got %r, want %r" % (obis, v, (value, scaler, unit)))
    for step in plan["steps"]:
        if "profile" not in step:
            continue
        got = [x for x in d["profiles"] if x["obis"] == step["profile"]]
        if not got:
            p.append("profile %s missing" % step["profile"])
            continue
        n = step["entries"]
        total = model.profile(step["profile"]).rows
        want = [_expected_row(r) for r in model.expected_rows(step["profile"], total - n, total)]
        rows = got[0]["rows"]
        if rows != want:
            p.append("profile %s: %d rows, want %d%s" % (step["profile"], len(rows), len(want),
                                                        "" if len(rows) != len(want) else " (values differ)"))
    return p


def _reader(transport, st, dlms=None, profiles=None):
    from optoread.device import reader

    return reader.Reader(transport, st, plans={PLAN["name"]: PLAN, "readout": {"name": "readout"}},
                         clock=lambda: 1700000000, profiles=profiles, dlms=dlms or {})


def _read(outcome, r, plan, meter_id=None):
    try:
        return r.read(plan, meter_id=meter_id)
    except Hang as e:
        outcome.raised = "hang"
        outcome.problems.append("hang: %s" % e)
    except OptoreadError as e:
        outcome.raised = "%s: %s" % (type(e).__name__, e)
    except Exception as e:  # noqa: BLE001 - a cell must report, not crash the matrix
        outcome.raised = "%s: %s" % (type(e).__name__, e)
        outcome.problems.append("Python exception escaped: %s" % outcome.raised)
    return None


def _lose_link(server):
    def lose():
        server.conn = None
        server.assoc = None
    return lose


def run_cell(fault, phase, times=1, quirks=()):
    """One DLMS cell: a reading through ``FaultLine(fault, phase)`` into a fresh store."""
    from . import sim_dlms
    from .vline import VirtualLine

    model = sim_dlms.MeterModel(rows=ROWS)
    server = sim_dlms.DlmsServer(model, quirks=quirks)
    if phase == "signon":
        line = VirtualLine(sim_dlms.ModeEMeter(server))
        inner = line.reader
    else:
        inner = sim_dlms.ServerTransport(server)
    t = FaultLine(inner, fault, phase, times, on_link_loss=_lose_link(server))
    st = _new_store()
    o = Outcome(fault, phase)
    summary = _read(o, _reader(t, st), PLAN["name"])
    o.hits = t.hits
    check(o, st, summary, model, server)
    if o.status == "FAIL" and phase == "signon" and summary is not None and summary.complete:
        # A damaged byte can turn the mode E identification into a valid mode A one (any
        # baud character is mode A's): the meter then sends its readout, BCC verified. Right data.
        again = Outcome(fault, phase)
        check(again, st, summary, None, server, plan={"name": PLAN["name"], "steps": []}, iec=True)
        if again.status == "ok":
            o.status, o.problems = "ok", []
            o.error = "read as a mode A meter (IEC readout)"
    if not t.hits:
        o.problems.append("the fault was never injected (phase %s not seen)" % phase)
        o.status = "FAIL"
    elif fault.split("@")[0] in BYTE_FAULTS and not t.applied and o.passed:
        o.status = "n/a"  # every answer of the phase is shorter than the position
    return o


def run_special(name):
    """The cells that are a meter or configuration mismatch rather than a line fault."""
    from optoread.device import reader

    from . import sim_dlms
    from .simcli import make_meter
    from .vline import VirtualLine

    model = sim_dlms.MeterModel(rows=ROWS)
    o = Outcome(name, SPECIAL[name][0])
    st = _new_store()
    server = None
    if name.startswith("reset"):
        phase = SPECIAL[name][0]
        server = sim_dlms.DlmsServer(model, quirks={"reset_mid_session"}, reset_after=_APDU_INDEX[phase])
        r = _reader(FaultLine(sim_dlms.ServerTransport(server)), st)
        summary = _read(o, r, PLAN["name"])
    elif name.startswith("frmr"):
        phase = SPECIAL[name][0]
        server = sim_dlms.DlmsServer(model, quirks={"frmr_on_bad_frame"})
        t = FaultLine(sim_dlms.ServerTransport(server), "bit_error_tx", phase, None)
        summary = _read(o, _reader(t, st), PLAN["name"])
    elif name.startswith("dm "):
        phase = SPECIAL[name][0]
        server = sim_dlms.DlmsServer(model, quirks={"dm_when_disconnected"})
        t = FaultLine(sim_dlms.ServerTransport(server), "link_loss", phase, 1,
                      on_link_loss=_lose_link(server))
        summary = _read(o, _reader(t, st), PLAN["name"])
    elif name == "wrong password":
        server = sim_dlms.DlmsServer(model, client=32, auth="low", password=b"12345678")
        r = _reader(FaultLine(sim_dlms.ServerTransport(server)), st,
                    dlms={"client": 32, "auth": "low", "password": b"87654321"})
        summary = _read(o, r, PLAN["name"])
    elif name in ("endless block transfer", "block numbers out of order"):
        quirk = "endless_blocks" if name.startswith("endless") else "blocks_out_of_order"
        server = sim_dlms.DlmsServer(model, quirks={quirk})
        t = FaultLine(sim_dlms.ServerTransport(server), max_writes=100000, max_ms=3600 * 1000)
        summary = _read(o, _reader(t, st), PLAN["name"])
        check(o, st, summary, model, server)
        if summary is not None and quirk == "endless_blocks":
            n = PLAN["steps"][1]["entries"]
            if summary.rows > 2 * n:
                o.problems.append("%d rows stored for a plan of %d: no cap" % (summary.rows, n))
                o.status = "FAIL"
        _next_reading(o, st)
        return o
    elif name == "flash full mid-session":
        st = _new_store(capacity=16384 + 6 * 1024)  # the store's reserve, the registers and some rows
        server = sim_dlms.DlmsServer(sim_dlms.MeterModel(rows=3000))
        plan = {"name": "faults", "steps": [PLAN["steps"][0], {"profile": PROFILE, "entries": 3000}]}
        r = _reader(FaultLine(sim_dlms.ServerTransport(server), max_writes=100000), st)
        r.plans = {"faults": plan}
        summary = _read(o, r, "faults")
        check(o, st, summary, server.model, server, plan=plan)
        _next_reading(o, st)
        return o
    elif name.startswith("wrong address"):
        quirks = {"silent_wrong_address"} if "silent" in name else set()
        server = sim_dlms.DlmsServer(model, server=1, quirks=quirks)
        r = _reader(FaultLine(sim_dlms.ServerTransport(server)), st, dlms={"server": 17})
        summary = _read(o, r, PLAN["name"])
    elif name == "wrong baud (DLMS meter at 19200)":
        server = sim_dlms.DlmsServer(model)
        line = VirtualLine(sim_dlms.HdlcMeter(server, baud=19200))
        summary = _read(o, _reader(FaultLine(line.reader), st), PLAN["name"])
    elif name.startswith("wrong baud (IEC"):
        meter = make_meter(["no_switch"] if "no_switch" in name else [])
        line = VirtualLine(meter)
        prof = reader.MeterProfiles()
        if "forced" in name:
            prof.put("M1", {"protocol": "iec21", "baud_switch": 4800})
        r = _reader(FaultLine(line.reader), st, profiles=prof)
        summary = _read(o, r, "readout", meter_id="M1" if "forced" in name else None)
        line.run(10000)
        check(o, st, summary, None, None, plan={"name": "readout", "steps": []}, iec=True)
        if getattr(meter, "state", "idle") not in ("idle", "push"):
            o.problems.append("IEC meter left in state %r" % meter.state)
            o.status = "FAIL"
        return o
    else:
        raise ValueError(name)
    check(o, st, summary, model, server)
    return o


def _next_reading(o, st):
    """After a runaway or a full store: the session is listed at once, the space figure is sane
    and the next reading can begin (it fails, with the store full, only for want of room)."""
    from optoread.errors import StoreError

    if not list(st.sessions()):
        o.problems.append("the session is not listed")
    free = st.free_space()
    if not 0 <= free < 1 << 40:
        o.problems.append("free space %r" % free)
    try:
        st.begin("NEXT", "p", 1700000100).abort("test")
    except StoreError as e:
        if "full" not in str(e):
            o.problems.append("the next reading cannot begin: %s" % e)
    if o.problems:
        o.status = "FAIL"


# APDU number (1-based, as the server counts them) of the first request of each phase for PLAN.
_APDU_INDEX = {"aarq": 1, "get": 2, "block": 8, "release": 10}
SPECIAL = {
    "reset mid-session @aarq": ("aarq",), "reset mid-session @get": ("get",),
    "reset mid-session @block": ("block",), "reset mid-session @release": ("release",),
    "frmr @aarq": ("aarq",), "frmr @get": ("get",), "frmr @block": ("block",), "frmr @release": ("release",),
    "dm @aarq": ("aarq",), "dm @get": ("get",), "dm @block": ("block",), "dm @release": ("release",),
    "wrong password": ("aarq",), "wrong address (DM)": ("snrm",), "wrong address (silent)": ("snrm",),
    "wrong baud (DLMS meter at 19200)": ("snrm",), "wrong baud (IEC forced 4800)": ("signon",),
    "wrong baud (IEC meter no_switch)": ("signon",),
    "endless block transfer": ("block",), "block numbers out of order": ("block",),
    "flash full mid-session": ("block",),
}


def run_matrix(modes=("once", "always")):
    """All cells: {(fault, phase, mode): Outcome} plus the special cells under (name, phase, "-")."""
    out = {}
    for mode in modes:
        for fault in ROWS_OF_FAULTS:
            for phase in PHASES:
                out[(fault, phase, mode)] = run_cell(fault, phase, 1 if mode == "once" else None)
    for name in SPECIAL:
        # "frmr @get" and "frmr @block" share the table row "frmr"
        out[(name.split(" @")[0], SPECIAL[name][0], "-")] = run_special(name)
    return out


def table(results):
    """The matrix as Markdown: one row per fault and mode, one column per phase."""
    lines = ["| fault | mode | " + " | ".join(PHASES) + " |",
             "|---|---|" + "---|" * len(PHASES)]
    keys = []
    for (f, _ph, mode) in results:
        if (f, mode) not in keys:
            keys.append((f, mode))
    for f, mode in keys:
        cells = []
        for ph in PHASES:
            o = results.get((f, ph, mode))
            cells.append("" if o is None else _cell(o))
        lines.append("| %s | %s | %s |" % (f, mode, " | ".join(cells)))
    bad = [(k, o) for k, o in results.items() if not o.passed]
    lines.append("")
    lines.append("ok = complete, values and rows equal the simulator's model; err = committed incomplete, "
                 "the error names the cause; FAIL = neither (details below). Every cell also checks "
                 "the simulated meter's HDLC link is down afterwards; "
                 "FAIL cells are xfail(strict=True) in host_tests/test_fault_matrix.py "
                 "with the firmware bug they show.")
    lines.append("")
    lines.append("%d cells: %d ok, %d clean errors, %d n/a (every answer shorter than the position), "
                 "%d FAIL" % (len(results), sum(1 for o in results.values() if o.status == "ok"),
                              sum(1 for o in results.values() if o.status == "error"),
                              sum(1 for o in results.values() if o.status == "n/a"), len(bad)))
    for k, o in bad:
        lines.append("- %s @ %s (%s): %s" % (o.fault, o.phase, k[2], "; ".join(o.problems)))
    return "\n".join(lines) + "\n"


def _cell(o):
    if o.status == "ok":
        return "ok"
    if o.status == "n/a":
        return "n/a"
    if o.status == "error":
        return "err: " + _brief(o.error, 48)
    return "**FAIL**"


# The rest of the fault model (issue 17: time limits, the store's and the settings' matrices, who
# may erase), with the numbers the tests named there hold: written after the table by main().
NOTES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fault_notes.md")


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if "--table" not in argv:
        sys.stderr.write("usage: python -m optoread_tools.faultline --table [--out docs/fault-matrix.md]\n")
        return 2
    out = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                       "docs", "fault-matrix.md")
    if "--out" in argv:
        out = argv[argv.index("--out") + 1]
    text = table(run_matrix())
    sys.stdout.write(text)
    with open(out, "w") as f:
        f.write("# Fault matrix\n\nGenerated by `python -m optoread_tools.faultline --table` "
                "(tools/optoread_tools/faultline.py).\n\n" + text)
        with open(NOTES) as notes:
            f.write("\n" + notes.read())
    return 0


if __name__ == "__main__":
    sys.exit(main())
