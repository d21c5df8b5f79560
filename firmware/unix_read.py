"""Read a meter with the firmware's reading path on the MicroPython unix port (the `unix` board).

    micropython firmware/unix_read.py --probe pty:PATH|tcp:HOST:PORT [--flash IMAGE]
                                      [--read [PLAN]] [--meter ID] [--json] [--list]
                                      [--plans DIR]

Detects the protocol (unless the meter is known), commits the session to the store in the
LittleFS image IMAGE (created if missing) and prints the committed session. Exit status 0
when the reading is complete, 1 when it was committed incomplete, 2 on usage errors.

OPTOREAD_MEM=1 reports the working set (tools/bench_ram.py); OPTOREAD_MEM=2 also prints every
sample of the live heap with its phase (to find where the peak is).
"""

import gc
import sys

# Collect every 4 KB allocated, from the first import on, as main.py does (why: see there).
if hasattr(gc, "threshold"):  # MicroPython
    gc.threshold(4096)

try:
    import os

    # OPTOREAD_FIRMWARE: this directory, when this file runs precompiled from elsewhere (bench)
    HERE = os.getenv("OPTOREAD_FIRMWARE") or (__file__.rsplit("/", 1)[0] if "/" in __file__ else ".")
    sys.path.insert(0, HERE)
    sys.path.insert(0, HERE + "/../boards")
    _mpy = os.getenv("OPTOREAD_MPY")
    if _mpy:  # precompiled modules, as on a board (make mpy)
        sys.path.insert(0, _mpy)
except ImportError:
    HERE = "."

_MEM = None
_TRACE = False  # OPTOREAD_MEM=2: print every sample, to find where the peak is
try:
    if os.getenv("OPTOREAD_MEM"):  # working-set report for tools/bench_ram.py
        _MEM = [0, 0, 0]  # heap after imports, peak seen, the reading's peak (up to its commit)
        _TRACE = os.getenv("OPTOREAD_MEM") == "2"
        _PHASE = ["", 0]  # the current phase (progress text) and its peak live heap
except (NameError, AttributeError):
    pass

from optoread.device import services as device  # noqa: E402
from optoread.device import unixport  # noqa: E402
from optoread.device.reader import MeterProfiles, Reader  # noqa: E402
from optoread.errors import OptoreadError  # noqa: E402


def _sample():
    """Track the live heap (after a collection) for the working-set report (OPTOREAD_MEM only)."""
    if _MEM is not None:
        gc.collect()
        a = gc.mem_alloc()
        if _TRACE:
            print("optoread-mem-sample: %d %s" % (a - _MEM[0], _PHASE[0]))
        if a > _MEM[1]:
            _MEM[1] = a
        if a > _PHASE[1]:
            _PHASE[1] = a


def _phase(text):
    """Start a phase of the working-set report: print the previous one's peak (kept nowhere)."""
    if _MEM is not None:
        _sample()
        if _PHASE[0]:
            print("optoread-mem-phase: %d %s" % (_PHASE[1] - _MEM[0], _PHASE[0]))
        _PHASE[0], _PHASE[1] = text, 0
        _sample()


def _sampling_store(store):
    """Wrap ``store.begin`` so the working set is also sampled while profile rows stream in."""
    begin = store.begin

    def sampled_begin(*args):
        w = begin(*args)
        row = w.row
        n = [0]

        def sampled_row(clock, cols):
            n[0] += 1
            if n[0] & 31 == 1:  # rows 1, 33, ...: short profiles are sampled mid-stream too
                _sample()
            return row(clock, cols)

        w.row = sampled_row
        return w

    store.begin = sampled_begin


def _print_session(store, seq):
    """Print the committed session as it streams off flash (rows are counted, not collected)."""
    st = {"profile": None, "rows": 0}

    def flush():
        if st["profile"] is not None:
            print("  profile %s: %d rows" % (st["profile"], st["rows"]))

    def sink(kind, d):
        if kind == "head":
            st["meter"] = d[0]
        elif kind == "value":
            from optoread import units  # for printing only: not on the reading's heap

            value, scaler, unit = d[1], d[2], d[3]
            if isinstance(unit, int):
                unit = units.unit_name(unit)  # DLMS unit code -> symbol
            if isinstance(value, int) and isinstance(scaler, int) and scaler:
                value = units.scaled_text(value, scaler)
            print("  %-22s %s %s" % (d[0], value, unit if unit is not None else ""))
        elif kind == "profile":
            flush()
            st["profile"], st["rows"] = d[0], 0
        elif kind == "row":
            st["rows"] += 1
            if st["rows"] & 255 == 1:  # from the first row on, whatever the length
                _sample()
        elif kind == "commit":
            st["outcome"], st["error"] = d[0], d[1]

    print("session %d:" % seq)
    s = store.read(seq, sink)
    flush()
    print("session %d: %s %s (%s)" % (seq, st.get("meter"), st.get("outcome"), st.get("error") or "ok"))
    return s


def _args(argv):
    a = {"probe": None, "flash": "optoread-store.img", "read": None, "meter": None, "json": False,
         "list": False, "do_read": False, "format": False,
         "plans": None}
    i = 0
    while i < len(argv):
        k = argv[i]
        if k in ("--probe", "--flash", "--meter", "--plans"):
            a[k[2:]] = argv[i + 1]
            i += 2
            continue
        if k == "--read":
            a["do_read"] = True
            if i + 1 < len(argv) and not argv[i + 1].startswith("--"):
                a["read"] = argv[i + 1]
                i += 1
        elif k == "--json":
            a["json"] = True
        elif k == "--format":
            a["format"] = True
        elif k == "--list":
            a["list"] = True
        else:
            print("unknown argument: " + k)
            sys.exit(2)
        i += 1
    return a


def main():
    a = _args(sys.argv[1:])
    device.mount_image(a["flash"], "/flash", a["format"])
    if _MEM is not None:
        # The baseline: imports done and the flash mounted, as when a board's main.py has done
        # its imports (its boot mounted the flash before main.py ran).
        gc.collect()
        _MEM[0] = _MEM[1] = gc.mem_alloc()
    store, report = device.open_store("/flash/data")
    if a["list"]:
        for s in store.sessions():
            print(device.dumps(s.as_dict()))
        return 0
    if not a["do_read"] or not a["probe"]:
        print("usage: unix_read.py --probe pty:PATH|tcp:HOST:PORT [--flash IMAGE] --read [PLAN]")
        return 2
    plans = device.load_plans(HERE + "/plans", "/flash/plans", *([a["plans"]] if a["plans"] else []))
    profiles = MeterProfiles("/flash/meters.json")
    quiet = a["json"]

    def progress(text):
        _phase(text)
        if not quiet:
            print("optoread: " + text)

    try:
        t = unixport.open_spec(a["probe"])
    except OptoreadError as e:
        print("optoread: %s" % e)
        return 2
    if _MEM is not None:
        _sampling_store(store)
        _phase("start: store mounted, probe open")
    try:
        rd = Reader(t, store, plans=plans, profiles=profiles, clock=device.device_time, progress=progress,
                    dlms=device.dlms_defaults(), facts=[("device.clock", "system")])  # the host's clock
        summary = rd.read(a["read"], a["meter"])
    except OptoreadError as e:  # e.g. an unknown plan: nothing was read
        print("optoread: %s" % e)
        return 2
    finally:
        t.close()
    if _MEM is not None:
        _sample()
        _MEM[2] = _MEM[1]  # the reading is done: what follows is this tool printing it
    _phase("committed: printing the session")
    if a["json"]:
        from optoread import units  # for printing only: not on the reading's heap

        print(device.dumps(units.presented(device.session_json(store, summary.seq))))
    else:
        _print_session(store, summary.seq)
    if _MEM is not None:
        _sample()
        _phase("")
        print("optoread-mem: after_imports=%d peak_live=%d reading_peak=%d heap=%d"
              % (_MEM[0], _MEM[1], _MEM[2], gc.mem_alloc() + gc.mem_free()))
        # which firmware modules the reading loaded (the on-demand ones should not be among them)
        loaded = sorted(k[9:] for k in sys.modules if k.startswith("optoread."))
        print("optoread-modules: " + " ".join(loaded))
        try:
            import micropython

            micropython.qstr_info()  # "qstr pool: n_pool=.., n_qstr=..": the interned names
        except (ImportError, AttributeError):  # CPython
            pass
    return 0 if summary.complete else 1


sys.exit(main())
