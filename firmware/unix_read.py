"""Read a meter with the firmware's reading path on the MicroPython unix port (the `unix` board).

    micropython firmware/unix_read.py --probe pty:PATH|tcp:HOST:PORT [--flash IMAGE]
                                      [--read [PLAN]] [--meter ID] [--json] [--list]

Detects the protocol (unless the meter is known), commits the session to the store in the
LittleFS image IMAGE (created if missing) and prints the committed session. Exit status 0
when the reading is complete, 1 when it was committed incomplete, 2 on usage errors.
"""

import sys

HERE = __file__.rsplit("/", 1)[0] if "/" in __file__ else "."
sys.path.insert(0, HERE)
sys.path.insert(0, HERE + "/../boards")
try:
    import os

    _mpy = os.getenv("OPTOREAD_MPY")
    if _mpy:  # precompiled modules, as on a board (make mpy)
        sys.path.insert(0, _mpy)
except ImportError:
    pass

from optoread import device, probe  # noqa: E402
from optoread.reader import MeterProfiles, Reader  # noqa: E402


def _args(argv):
    a = {"probe": None, "flash": "optoread-store.img", "read": None, "meter": None, "json": False,
         "list": False, "do_read": False}
    i = 0
    while i < len(argv):
        k = argv[i]
        if k in ("--probe", "--flash", "--meter"):
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
        elif k == "--list":
            a["list"] = True
        else:
            print("unknown argument: " + k)
            sys.exit(2)
        i += 1
    return a


def main():
    a = _args(sys.argv[1:])
    device.mount_image(a["flash"], "/flash")
    store, report = device.open_store("/flash/data")
    if a["list"]:
        for s in store.sessions():
            print(device.dumps(s.as_dict()))
        return 0
    if not a["do_read"] or not a["probe"]:
        print("usage: unix_read.py --probe pty:PATH|tcp:HOST:PORT [--flash IMAGE] --read [PLAN]")
        return 2
    plans = device.load_plans(HERE + "/plans", "/flash/plans")
    profiles = MeterProfiles("/flash/meters.json")
    quiet = a["json"]

    def progress(text):
        if not quiet:
            print("optoread: " + text)

    t = probe.open_probe({"PROBE": a["probe"]})
    try:
        rd = Reader(t, store, plans=plans, profiles=profiles, clock=device.device_time, progress=progress)
        summary = rd.read(a["read"], a["meter"])
    finally:
        t.close()
    out = device.session_json(store, summary.seq)
    if a["json"]:
        print(device.dumps(out))
    else:
        print("session %d: %s %s (%s)" % (summary.seq, out.get("meter"), out.get("outcome"),
                                          out.get("error") or "ok"))
        for v in out["values"]:
            print("  %-22s %s %s" % (v["obis"], v["value"], v["unit"] if v["unit"] is not None else ""))
        for p in out["profiles"]:
            print("  profile %s: %d rows" % (p["obis"], len(p["rows"])))
    return 0 if summary.complete else 1


sys.exit(main())
