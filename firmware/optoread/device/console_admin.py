"""The console's administration commands, loaded for the command and dropped again (their code
and texts are not on the heap while a reading runs): ``status``, ``config get|set``, ``erase``,
``clock [set]``, ``list``, ``plans``, ``meters``.
Each takes the console, the command's words and the console's time formatter.
"""

import json

from optoread import __version__
from optoread.compat import heap_free
from optoread.dlms.axdr.decode import to_epoch
from optoread.errors import ConsoleError, OptoreadError

_PIN_KEY = "pin"  # config key of the PIN's hash (as device.access has it)


def status(console, args, iso):
    """``status``: version, clock and where its time came from, flash, sessions, PIN, heap."""
    sp = console.store.space()
    console.say("optoread %s" % __version__)
    c = console.clock
    console.say("clock      %s (%s)" % (iso(c.now()), "set by %s at %s" % (c.source, iso(c.set_at))
                                       if c.set_at is not None else c.source or "never set: unknown"))
    free = sp["free"]  # -1: the file system could not say (an unreadable block)
    console.say("free       %s" % ("%d bytes" % free if free >= 0 else "unknown (flash unreadable)"))
    console.say("sessions   %d (%d bytes)" % (sp["sessions"], sp["stored"]))
    console.say("pending    %d not downloaded (%d bytes)" % (sp["unacked_sessions"], sp["unacked"]))
    console.say("acked      up to %d" % console.store.acked)
    pin = console.config.get(_PIN_KEY)
    console.say("pin        %s" % ("not set: choose one with 'pin set NEW'" if not pin
                                   else "unlocked" if console.unlocked_at is not None else "set, locked"))
    free = heap_free()
    if free is not None:
        low = console.heap_low
        console.say("heap       %d bytes free%s" % (
            free, "" if low is None else " (lowest during the last reading: %d)" % low))
    if console.last is not None:
        outcome, s, err = console.last
        console.say("last read  %s%s%s" % (outcome, " session %d" % s.seq if s is not None else "",
                                           " (%s)" % err if err else ""))


def config(console, args, iso):
    """``config get [KEY]`` (secrets as ***) and ``config set KEY VALUE`` (a secret needs the PIN)."""
    cfg = console.config
    if not args or args[0] not in ("get", "set"):
        raise ConsoleError("usage: config get [KEY] | config set KEY VALUE", field="args")
    if args[0] == "get":
        keys = args[1:2] if len(args) > 1 else cfg.keys()
        for k in keys:
            v = cfg.get(k)
            if v is None:
                console.say("%s is not set" % k)
            elif cfg.is_secret(k):
                console.say("%s = ***" % k)
            else:
                console.say("%s = %s" % (k, json.dumps(v)))
        return
    if len(args) < 3:
        raise ConsoleError("usage: config set KEY VALUE", field="args")
    key = args[1]
    value = " ".join(args[2:])
    if cfg.is_secret(key):
        console.need_pin("setting %s" % key)
        if key.lower() == _PIN_KEY:
            raise ConsoleError("the PIN is set with 'pin set NEW'", field="pin")
    cfg.set(key, value)
    if cfg.is_secret(key):
        console.say("%s set" % key)  # never the value
    else:
        console.say("%s = %s" % (key, json.dumps(cfg.get(key))))


def erase(console, args, iso):
    """``erase --yes [--force]`` (PIN): delete downloaded sessions (with --force all of them)."""
    if "--yes" not in args:
        console.say("erase deletes downloaded sessions; confirm with: erase --yes "
                    "(add --force to also delete sessions not downloaded yet)")
        return
    console.need_pin("erase")
    force = "--force" in args
    st = console.store
    if force and st.count():
        st.ack(st.summary(st.count() - 1).seq)  # the store deletes acknowledged sessions only
    n0 = st.count()
    freed = console.reclaim()
    n1 = st.count()
    console.say("erased %d sessions (%d bytes); %d not downloaded kept" % (n0 - n1, freed, n1))


def parse_iso(text):
    """``YYYY-MM-DDTHH:MM:SS`` (or a space instead of T) -> epoch seconds; ConsoleError if malformed."""
    t = text.strip()
    if len(t) != 19 or t[4] != "-" or t[7] != "-" or t[10] not in "T " or t[13] != ":" or t[16] != ":":
        raise ConsoleError("expected YYYY-MM-DDTHH:MM:SS", field="clock")
    parts = (t[0:4], t[5:7], t[8:10], t[11:13], t[14:16], t[17:19])
    for p in parts:
        if not p.isdigit():
            raise ConsoleError("expected YYYY-MM-DDTHH:MM:SS", field="clock")
    y, mo, d, h, mi, s = [int(p) for p in parts]
    try:
        return to_epoch(y, mo, d, h, mi, s)
    except OptoreadError:
        raise ConsoleError("not a valid date and time", field="clock")


def clock(console, args, iso):
    """``clock``: the device's time; ``clock set YYYY-MM-DDTHH:MM:SS`` (PIN) sets it (UTC)."""
    c = console.clock
    if len(args) == 0:
        console.say("clock %s" % iso(c.now()))
        return
    if args[0] != "set" or len(args) != 2:
        raise ConsoleError("usage: clock set YYYY-MM-DDTHH:MM:SS", field="args")
    t = parse_iso(args[1])
    console.need_pin("clock set")
    rtc = c.set(t)
    console.say("clock %s%s" % (iso(c.now()), " (RTC)" if rtc else ""))


def sessions(console, args, iso):
    """``list``: the stored sessions, one line each (a damaged one with what was lost)."""
    n = 0
    console.say("  seq  meter                time                 plan      outcome     "
                "values  rows  bytes  dl")
    for s in console.store.sessions():
        outcome = "damaged" if s.damaged else "complete" if s.complete else "incomplete"
        console.say("%5d  %-20s %-20s %-9s %-10s %7d %5d %6d  %s" % (
            s.seq, str(s.meter)[:20], iso(s.device_time), str(s.plan)[:9], outcome, s.values,
            s.rows, s.size, "yes" if s.downloaded else "no"))
        if s.damaged:  # what was lost, and the reading's own outcome (store: "damaged on flash: ...")
            console.say("       %s" % s.error)
        n += 1
    console.say("%d sessions" % n)


def plans(console, args, iso):
    """``plans``: the reading plans (``*`` the default)."""
    default = console.config.get("plan")
    for name in sorted(console.plans):
        p = console.plans.get(name) or {"description": "(unreadable plan file)"}
        console.say("%s%-12s %s" % ("*" if name == default else " ", name, p.get("description", "")))
    console.say("%d plans" % len(console.plans))


def meters(console, args, iso):
    """``meters``: what worked per meter (secrets left out)."""
    m = console.meters
    if m is None:
        console.say("0 meters")
        return
    names = m.meters()
    for mid in names:
        prof = m.get(mid) or {}
        console.say("%-24s %s" % (mid, " ".join("%s=%s" % (k, prof[k]) for k in sorted(prof)
                                                if not console.config.is_secret(k))))
    console.say("%d meters" % len(names))
