"""A reading of an IEC 62056-21 meter (mode A-D readout) for :class:`optoread.device.reader.Reader`.

Apart from the reader because most readings are DLMS ones: loaded when a meter answers the
sign-on without offering mode E, or is known to be an IEC meter (RAM on a board).

Who was read: the session's meter id is the meter's serial number from its readout. The store's
session head (meter id first) is written before any value, so the session begins lazily: the
first data sets are held back (at most ``_WINDOW``) until the serial register has come, then the
session begins with it and they follow. Preference (the first of the best kind wins):

1. ``C.1.0`` or ``96.1.0`` (EDIS / COSEM "serial number" and "device ID 1", the manufacturer's
   serial number, what the DLMS reading uses too: 0.0.96.1.0.255), whichever comes first;
2. ``0.0.0`` (short form ``0.0``), the "device address": usually the same number, but it is the
   owner's (utility's) number on some meters, a short bus address (``20000``) or blank on others,
   so it is taken only when no serial number came within the window or the readout;
3. the identification line (``ident.text``), marked as such in ``meter.id_source``.

The address may carry an OBIS prefix (``1-0:0.0.0``, ``0.0.96.1.0.255``) with channel B = 0
(``0-1:96.1.0`` is a DSMR gas meter's serial, not this meter's) and the current value's suffix
``*255`` (a billing period's ``*NN`` is not the serial). Blank values do not count.

Every session carries ``meter.id_source`` (the serial's address as the meter wrote it, or
"identification (no serial register in the readout)"), ``identification`` (the sign-on's line)
when there was one, and ``meter.expected`` when the reading was asked for another meter
(``Reader.expected``) than the one read: ``Reader.begin`` writes the head and that. A readout
that fails before the session began begins it then,
with what was held back, and commits it incomplete. A retried readout (readout's sink protocol)
sends its data sets again: those held back are dropped; those already stored stay (said).

Data sets that are one value with its own time (``readout.value_time``: a maximum demand and
when it occurred, a DSMR gas reading and its capture time) are stored as one value with
``time=``; DSMR's season letter goes to a value ``ADDRESS.season`` ("S" or "W") beside it.
"""

from optoread.compat import const
from optoread.errors import INTERRUPTED, OptoreadError
from optoread.iec62056_21 import readout as iec62056_21_readout

_WINDOW = const(24)  # data sets held back at most, waiting for the serial register


def _rank(address):
    # 2: a serial number register, 1: the device address, 0: anything else (module docstring).
    i = address.find(":")
    if i >= 0:
        if address[address.find("-") + 1:i] != "0":  # "A-B:": channel B must be 0
            return 0
        address = address[i + 1:]
    i = address.find("*")
    if i >= 0:
        if address[i + 1:] != "255":
            return 0
        address = address[:i]
    if address.count(".") == 5:  # A.B.C.D.E.F
        g = address.split(".")
        if g[1] != "0" or g[5] != "255":
            return 0
        address = ".".join(g[2:5])
    if address in ("C.1.0", "96.1.0"):
        return 2
    return 1 if address in ("0.0.0", "0.0") else 0


def read(rd, prof, plan, drv, opts, ident):
    """Read an IEC 62056-21 meter (readout) into one session for :class:`Reader` ``rd``."""
    held = []  # (address, values) kept back until the session begins
    w = meter = serial = where = None
    rank = count = 0

    def put(wr, address, values):
        vt = iec62056_21_readout.value_time(values)
        if vt is None:
            for v, unit in values:
                wr.value(address, v, None, unit)
        else:
            wr.value(address, vt[0], None, vt[1], vt[2])
            if vt[3] is not None:
                wr.value(address + ".season", vt[3])

    def begin():
        nonlocal w, meter
        if serial is not None:
            meter, source = serial, where
        elif ident is not None:
            meter, source = ident.text, "identification (no serial register in the readout)"
        else:  # failed before the meter said anything: nobody to compare with the expected one
            meter, source = "unknown", "none: the meter gave neither an identification nor a serial number"
        w = wr = rd.begin(meter, plan)  # with the device's facts, and meter.expected if it differs
        wr.value("meter.id_source", source)  # then the identification, as in a DLMS reading
        if ident is not None:
            wr.value("identification", ident.text)
        for address, values in held:
            put(wr, address, values)
        del held[:]

    def sink(address, values):
        # Values go to the store as they come; the session only commits when the BCC verified.
        nonlocal ident, serial, where, rank, count
        if address is None:  # an attempt starts (readout's sink protocol): who answered
            if values is not None:
                ident = values
            if w is None:
                del held[:]  # a retried readout sends its data sets again
            elif count:
                rd.say("readout failed after %d data sets (stored): reading again" % count)
            count = 0
            return
        count += 1
        if w is not None:
            put(w, address, values)
            return
        held.append((address, values))
        r = _rank(address)
        if r > rank and values and values[0][0].strip():
            serial, where, rank = values[0][0].strip(), address, r
        if rank == 2 or len(held) >= _WINDOW:
            begin()

    try:
        drv.run(iec62056_21_readout.readout(opts, sink, ident=ident))
        if w is None:
            begin()  # no C.1.0 / 96.1.0 within the window: the device address, else the identification
    except OptoreadError as e:
        if w is None:
            try:
                begin()  # with what was held back: the session shows how far the readout got
            except OptoreadError:
                if w is None:
                    raise  # the store began no session
        # (w is set by begin(), which pyright does not follow)
        return w.abort(str(e))  # pyright: ignore[reportAttributeAccessIssue, reportOptionalMemberAccess]
    except KeyboardInterrupt:  # ^C on the unix port or CPython: keep what was read
        if w is None:
            begin()
        w.abort(INTERRUPTED)  # pyright: ignore[reportAttributeAccessIssue, reportOptionalMemberAccess]
        raise
    rd.profiles.put(meter, prof)
    rd.say("readout: %d data sets" % count)
    return w.commit()  # pyright: ignore[reportAttributeAccessIssue, reportOptionalMemberAccess]
