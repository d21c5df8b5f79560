"""The meter reader: find out how the meter speaks, read what the plan says, commit it to the store.

One call of :meth:`Reader.read` is one reading = one stored session: meter identity,
device time and meter clock, plan, values with units, profile rows streamed straight
into the store, outcome. Whatever goes wrong ends up in the session record and the
session is committed *incomplete*; it is never mistaken for a complete one.

Detection (unless the meter is known):

1. IEC 62056-21 sign-on at 300 baud. If the identification offers mode E (``\\2``),
   hand the line over to HDLC and read it as a DLMS meter; else do a mode C readout.
2. No answer: direct HDLC at 9600 8N1 with the public client (IS 15959 meters skip
   the sign-on). An association rejected for its application context is retried with
   short names (SN-only meters).

What worked is remembered per meter (:class:`MeterProfiles`, a small JSON file) and
tried first next time. Plans are JSON data (:func:`load_plan`); see ``firmware/plans/``.

Layering: reader -> session / iec62056_21 -> link layers -> transport. The reader does
no I/O itself except through the transport it is given and the store.
"""

import json

from optoread import driver
from optoread import obis as obislib
from optoread.compat import const, ticks_add, unload
from optoread.dlms.axdr import decode as axdr
from optoread.dlms.client.session import Session, Settings
from optoread.dlms.cosem.base import Clock, value_text
from optoread.dlms.cosem.profile import ProfileGeneric
from optoread.errors import INTERRUPTED, NoAnswerError, OptoreadError, SessionError

_DAY = const(86400)


def _iec():
    # IEC 62056-21 is loaded by the sign-on and dropped again before a DLMS reading
    # (compat.unload, Reader._read_dlms): its ~8 KB of code are not on the heap while rows stream.
    from optoread.iec62056_21 import signon as iec62056_21

    return iec62056_21


def _drop_iec():
    # A DLMS reading does not need the IEC 62056-21 side again: its code off the heap while rows
    # stream (RAM); a mode E session imports the sign-on itself. The readout modules (from an
    # earlier IEC reading) go too: they hold on to the sign-on module.
    for name in ("device.iec_reading", "iec62056_21.readout", "iec62056_21.signon"):
        unload(name)


_MAX_ROWS = const(100000)  # a profile read whole (no days or entries in the plan's step)
_DAY_ROWS = const(1440)  # a day of the finest common capture period, 1 minute


class MeterProfiles:
    """What worked per meter id: ``{"protocol": "dlms"|"iec21", "mode_e", "client", "server",
    "ln", "settle_ms", "baud_switch", ...}``, kept in one small JSON file.

    Written as ``device.settings`` writes ``config.json`` (new file, old one to ``.bak``, new one
    renamed into place), so a power cut leaves the old or the new version; loaded from the first
    of the file, its ``.tmp`` and its ``.bak`` that parses. Inline rather than through that module:
    its names would take the reading's interned-name pool past its next step (test_ram).
    """

    def __init__(self, path=None, fs=None):
        self.path = path
        self.fs = fs
        self._data = {}
        self.problem = None  # for the boot banner: the file itself was damaged or missing
        if path:
            for p in (path, path + ".tmp", path + ".bak"):
                try:
                    with self._open(p, "r") as f:
                        d = json.loads(f.read())
                except (OSError, ValueError):
                    continue
                if isinstance(d, dict):
                    self._data = d
                    if p != path:
                        self.problem = "%s was damaged or missing: its last good copy is used" % path
                    break

    def _open(self, path, mode):
        return self.fs.open(path, mode) if self.fs is not None else open(path, mode)

    def get(self, meter_id):
        return self._data.get(meter_id)

    def put(self, meter_id, profile):
        if self._data.get(meter_id) == profile:
            return
        self._data[meter_id] = profile
        if not self.path:
            return
        tmp = self.path + ".tmp"
        with self._open(tmp, "w") as f:
            f.write(json.dumps(self._data))
        import os

        try:
            os.rename(self.path, self.path + ".bak")  # never a moment without a good copy
        except OSError:
            pass
        os.rename(tmp, self.path)

    def meters(self):
        return sorted(self._data)


def load_plan(source):
    """A plan from a JSON text, a dict or a file path. Checks the fields it relies on."""
    if isinstance(source, dict):
        plan = source
    else:
        try:
            if source.lstrip().startswith("{"):
                plan = json.loads(source)
            else:
                with open(source) as f:
                    plan = json.load(f)  # parsed from the stream: no copy of the text (RAM)
        except ValueError:
            raise SessionError("plan is not valid JSON", field="plan")
    if not isinstance(plan, dict) or "name" not in plan:
        raise SessionError("a plan needs a name", field="plan")
    steps = plan.get("steps", [])
    if not isinstance(steps, list):
        raise SessionError("plan steps must be a list", field="steps")
    for i, st in enumerate(steps):
        if not isinstance(st, dict) or not ("registers" in st or "profile" in st or "browse" in st):
            raise SessionError("step %d needs registers, profile or browse" % (i + 1), field="steps")
    return plan


def _days_back(dt, days):
    """(from, to) range tuples: midnight ``days`` ago .. the meter's current time."""
    e = dt.local_epoch()
    if e is None:
        raise SessionError("meter clock is not valid; cannot choose a date range", field="clock")
    y, m, d, _, _, _, _ = axdr.from_epoch(e - days * _DAY)
    return (y, m, d, 0, 0, 0), dt.as_tuple()


class _FileSteps:
    """The steps of a plan on flash, read from its file one at a time (``Plans.step``)."""

    def __init__(self, plans, name, n):
        self.plans = plans
        self.name = name
        self.n = n

    def __len__(self):
        return self.n

    def __iter__(self):
        for i in range(self.n):
            yield self.plans.step(self.name, i)


class _RowWriter:
    """Profile rows from cosem to the store: the clock as meter-local epoch seconds, ints as
    they are; other cells (floats, text, a clock that is no valid date) are stored as values
    named ``OBIS[row].col`` (``col``: the capture object's 1-based index).
    ``limit``: the most rows the plan's step can bring (a meter that never ends its block
    transfer is cut off there, and the reading committed incomplete)."""

    def __init__(self, writer, obis_text, clock_col, limit=_MAX_ROWS):
        self.w = writer
        self.obis = obis_text
        self.clock_col = clock_col
        self.count = 0
        self.limit = limit
        self._cols = []

    def __call__(self, row):
        if self.count >= self.limit:
            raise SessionError("the meter kept sending: more than %d rows of %s for this plan"
                               % (self.limit, self.obis), field="profile")
        clock = None
        cols = self._cols
        del cols[:]
        for i in range(len(row)):
            c = row[i]
            if i == self.clock_col:
                if isinstance(c, axdr.DateTime):
                    clock = c.local_epoch()
                    if clock is None:  # an invalid date: its 12 octets kept as sent, never guessed
                        b = bytearray(12)
                        c.write(b, 0)
                        self.w.value("%s[%d].%d" % (self.obis, self.count, i + 1), bytes(b))
                continue
            if isinstance(c, bool):
                c = int(c)
            if isinstance(c, int) or c is None:
                cols.append(c)
            elif isinstance(c, float):  # rows hold ints: a float cell is kept whole beside the row
                cols.append(None)
                self.w.value("%s[%d].%d" % (self.obis, self.count, i + 1), c)
            else:
                cols.append(None)
                self.w.value("%s[%d].%d" % (self.obis, self.count, i + 1), value_text(c))
        self.w.row(clock, cols)
        self.count += 1


class Reader:
    """Reads one meter per :meth:`read` through ``transport`` into ``store``.

    ``clock()``: the device's time (epoch seconds) for the session record; ``plans``:
    name -> plan dict; ``profiles``: a :class:`MeterProfiles`; ``progress(text)``.
    """

    def __init__(self, transport, store, plans=None, profiles=None, clock=None, progress=None,
                 dlms=None, deadline_s=None, facts=()):
        self.transport = transport
        # ``facts``: (name, value) pairs written into every session after its head: the device's
        # id, where its clock came from (``device.id``, ``device.clock``, ``device.clock_set``).
        self.facts = facts
        self.expected = None  # the meter id asked for (read --meter): a different one is recorded
        self.deadline_s = deadline_s  # the whole reading's time limit (None: from the plan, in read)
        self.store = store
        self.plans = plans or {}
        self.profiles = profiles or MeterProfiles()
        self.clock = clock or (lambda: 0)
        self.progress = progress
        self.dlms = dlms or {}  # defaults for Settings (client, server, auth, password, keys)

    def say(self, text):
        """Tell the user what the reading is doing (the ``progress`` callback), if anyone listens."""
        if self.progress is not None:
            self.progress(text)

    def plan(self, name):
        if name is None:
            name = "generic"
        p = self.plans.get(name)
        if p is None:
            raise SessionError("no plan named %r (have: %s)" % (name, ", ".join(sorted(self.plans))),
                               field="plan")
        if hasattr(self.plans, "step"):
            # Plans on flash (device.Plans): keep the name, read each step again when the reading
            # gets to it; the whole plan's dicts are not on the heap while profile rows stream.
            p = {"name": p["name"], "steps": _FileSteps(self.plans, name, len(p.get("steps", [])))}
        return p

    # -- the reading ---------------------------------------------------------------------------
    def read(self, plan_name=None, meter_id=None):
        """One reading; returns the committed store session summary (complete or incomplete).

        ``meter_id``: the meter expected at the probe: its remembered profile is tried first. The
        session is always stored under the id read from the meter; a different one is recorded
        (``meter.expected``) and said (wrong meter at the probe)."""
        plan = self.plan(plan_name)
        self.expected = meter_id
        known = self.profiles.get(meter_id) if meter_id else None
        tried = []
        t = self.transport
        try:
            limit = self.deadline_s
            if not limit:
                # From the plan (docs/fault-matrix.md): 60 s to find and associate the meter (IEC
                # 62056-21 sign-on retries at 300 baud, SNRM and AARQ retries), 300 s for an IEC
                # readout (9 KB at 300 baud), 3 s per register, and per profile 30 s plus its rows
                # (40 bytes each at 2400 baud; a day counts 192 rows: 96 quarter hours, twice over).
                # Inline: a function's name would take the reading's interned names past a step.
                limit = 360
                for step in plan.get("steps") or ():  # on flash: each step read once more
                    if "profile" in step:
                        limit += 30 + int(step.get("entries") or 192 * int(step.get("days") or 1)) // 6
                    elif isinstance(step.get("registers"), list):
                        limit += 3 * len(step["registers"])
                    else:
                        limit += 120  # browse: the object list, then each object
            t.deadline = ticks_add(t.ticks_ms(), limit * 1000)  # every read checks it (driver)
            if known is not None:
                self.say("known meter %s: %s" % (meter_id, known.get("protocol")))
                try:
                    return self._read_with(known, plan, tried)
                except NoAnswerError as e:
                    tried.append("stored profile: %s" % e)
                    self.say("stored profile did not answer; detecting")
            return self._detect(plan, tried, meter_id)
        except OptoreadError as e:
            # Failed before the meter was identified (link refused, association rejected, ...):
            # the attempt is still recorded, as an incomplete session naming the cause.
            self.say("failed: %s" % e)
            return self._failed(meter_id, plan, e)
        finally:
            t.deadline = None

    def _detect(self, plan, tried, meter_id):
        signed = self._sign_on(tried)
        if signed is not None:
            drv, opts, ident = signed
            if ident.mode_e:
                self.say("mode E offered: HDLC at %s baud" % (ident.baud or 300))
                drv.run(_iec().hand_over(opts, ident))
                drv = signed = None
                prof = {"protocol": "dlms", "mode_e": True}
                return self._read_dlms(prof, plan, tried, handed_over=True, ident=ident)
            prof = {"protocol": "iec21"}
            from optoread.device import (
                iec_reading as reader_iec,  # IEC meters only: DLMS readings never load it
            )

            return reader_iec.read(self, prof, plan, drv, opts, ident)
        self.say("no sign-on answer: trying direct HDLC at 9600 (client 16)")
        prof = {"protocol": "dlms", "mode_e": False}
        try:
            return self._read_dlms(prof, plan, tried)
        except NoAnswerError as e:
            tried.append(str(e))
            return self._failed(meter_id, plan, NoAnswerError(
                "no answer from the meter: check the probe is seated on the optical port (tried: %s)"
                % "; ".join(tried), tried=tried))

    def _sign_on(self, tried):
        # (driver, options, identification) when a meter answers the 300-baud sign-on, else
        # None. Its own frame: without an answer its driver and buffers are garbage at once.
        drv = driver.Driver(self.transport, progress=self.progress)
        opts = self._iec_options({})
        self.say("signing on (IEC 62056-21, 300 baud)")
        try:
            ident = drv.run(_iec().sign_on(opts))
        except NoAnswerError:
            tried.append("IEC 62056-21 sign-on at 300 baud: no answer")
            return None
        return None if ident is None else (drv, opts, ident)

    def _read_with(self, prof, plan, tried):
        if prof.get("protocol") == "iec21":
            drv = driver.Driver(self.transport, progress=self.progress)
            opts = self._iec_options(prof)
            from optoread.device import iec_reading as reader_iec

            return reader_iec.read(self, prof, plan, drv, opts, None)
        return self._read_dlms(prof, plan, tried)

    def _failed(self, meter_id, plan, error):
        return self.begin(meter_id or "unknown", plan).abort(str(error))

    def begin(self, meter_id, plan, meter_time=None):
        """Begin the session of meter ``meter_id`` (as read from it) in the store, with the
        device's facts; a meter other than the one expected is recorded and said."""
        w = self.store.begin(meter_id, plan["name"], self.clock(), meter_time)
        for k, v in self.facts:
            w.value(k, v)
        e = self.expected
        if e and e != meter_id and meter_id != "unknown":
            w.value("meter.expected", e)
            self.say("wrong meter at the probe? expected %s, read %s" % (e, meter_id))
        return w

    def _iec_options(self, prof):
        kw = {}
        for k in ("settle_ms", "baud_switch", "wakeup", "address", "reaction_ms"):
            if k in prof:
                kw[k] = prof[k]
        return _iec().Options(**kw)

    # -- DLMS/COSEM ----------------------------------------------------------------------------------
    def _settings(self, prof, handed_over, ln=True):
        kw = dict(self.dlms)
        for k in ("client", "server", "physical", "address_size", "auth"):
            if k in prof:
                kw[k] = prof[k]
        kw["ln"] = prof.get("ln", ln)
        kw["mode_e"] = bool(prof.get("mode_e")) and not handed_over
        return Settings(**kw)

    def _open_session(self, prof, handed_over):
        st = self._settings(prof, handed_over)
        sess = Session(st, self.transport, progress=self.progress)
        try:
            sess.open()
            return sess, st.ln
        except SessionError as e:
            if "context" not in str(e) or "ln" in prof:
                raise
        self.say("LN association refused: trying short names (SN)")
        st = self._settings(prof, handed_over, ln=False)
        sess = Session(st, self.transport, progress=self.progress)
        sess.open()
        return sess, False

    def _read_dlms(self, prof, plan, tried, handed_over=False, ident=None):
        _drop_iec()
        sess, ln = self._open_session(prof, handed_over)
        w = None
        try:
            # Who was read and when (device.meter_facts: loaded for the session's start and
            # dropped before the rows stream, RAM).
            from optoread.device import meter_facts

            ids = meter_facts.ids(sess)
            meter_dt = Clock().read(sess)
            w = self.begin(ids[0], plan, meter_dt.local_epoch())
            meter_id = ids[0]
            meter_facts.record(self, w, ids, ident, meter_dt, plan, prof)
            ids = meter_facts = None
            unload("device.meter_facts")
            self._run_plan(sess, plan, w, meter_dt, ln)
            summary = w.commit()
            w = None
            prof = dict(prof)
            prof["ln"] = ln
            self.profiles.put(meter_id, prof)
            return summary
        except OptoreadError as e:
            if w is None:
                raise
            return w.abort(str(e))
        except KeyboardInterrupt:  # ^C on the unix port or CPython: keep what was read
            if w is not None:
                w.abort(INTERRUPTED)
            raise
        finally:
            sess.close()

    def _run_plan(self, sess, plan, w, meter_dt, ln):
        for step in plan.get("steps", []):
            if "browse" in step or "registers" in step:
                from optoread.device import (
                    register_steps as reader_registers,  # register steps only: IS 15959 plans have none (RAM)
                )

                if "browse" in step:
                    reader_registers.browse(self, sess, w, ln)
                if isinstance(step.get("registers"), list):
                    reader_registers.read(self, sess, w, [obislib.parse(o) for o in step["registers"]])
            if "profile" in step:
                self._profile(sess, w, step, meter_dt)

    def _profile(self, sess, w, step, meter_dt):
        # Set-up in its own frame: its lists and objects are gone before the rows stream (RAM).
        pg, sink = self._profile_begin(sess, w, step)
        if "days" in step:
            sink.limit = (int(step["days"]) + 1) * _DAY_ROWS  # the range's ends fall inside days
            f, t = _days_back(meter_dt, int(step["days"]))
            pg.read_range(sess, f, t, sink, no_deviation=step.get("no_deviation", "auto"))
        elif "entries" in step:
            used = pg.entries_in_use(sess)
            if used:
                sink.limit = int(step["entries"])
                pg.read_entries(sess, max(1, used - int(step["entries"]) + 1), used, sink)
        else:
            pg.read_all(sess, sink)
        self.say("profile %s: %d rows" % (sink.obis, sink.count))

    def _profile_begin(self, sess, w, step):
        code = obislib.parse(step["profile"])
        name = obislib.format(code)
        self.say("profile %s" % name)
        pg = ProfileGeneric(code, keep=False)  # read once: no capture objects while rows stream
        cos = pg.capture_objects(sess)
        scalers = None
        if step.get("scaler_profile"):
            try:
                scalers = pg.column_scalers(sess, scaler_profile=obislib.parse(step["scaler_profile"]))
            except OptoreadError:
                scalers = None
        if scalers is None:
            # No scaler profile (or the meter refused it): each column's own scaler_unit; a
            # column the meter gives none for keeps its raw values and an unknown unit.
            try:
                scalers = pg.column_scalers(sess)
            except OptoreadError:
                scalers = None
        clock_col = pg.clock_column(sess)
        cols = []
        for i in range(len(cos)):
            if i == clock_col:
                continue
            sc = scalers[i] if scalers is not None else None
            cols.append((obislib.format(cos[i][1]), sc[0] if sc else None, sc[1] if sc else None))
        period = pg.capture_period(sess)
        w.profile_begin(name, cols, period or None)
        return pg, _RowWriter(w, name, clock_col)
