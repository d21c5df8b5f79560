"""``optoread sim``: run a simulated meter on a pty until interrupted."""

import sys
import time

from optoread_tools.ptyline import start_pty_thread
from optoread_tools.sim_iec21 import Iec21Meter

# Quirk switches of the simulated IEC 62056-21 meter (see ../shared/notes/field-notes.md).
QUIRKS = {
    "echo": {"echo": True},
    "switch_guard": {"switch_guard_ms": 100},
    "no_switch": {"no_switch": True, "baud_char": "4"},
    "wakeup": {"wakeup": True},
    "lf_only": {"lf_only": True},
    "bad_bcc": {"bad_bcc": True},
    "slow_reaction": {"slow_reaction": True},
    "lowercase_id": {"lowercase_id": True},
    "mode_e": {"mode_e": True},
    "emh_r1": {"emh_r1": True, "maker": "EMH"},
}


def make_meter(quirks, readout=None, **kw):
    """An Iec21Meter with the named quirks (unknown names raise KeyError)."""
    for q in quirks:
        kw.update(QUIRKS[q])
    if readout:
        return Iec21Meter.from_readout(readout, **kw)
    return Iec21Meter(**kw)


def run_dlms(args):
    from optoread_tools import sim_dlms

    if "list" in args.quirk:
        for name in sorted(sim_dlms.QUIRKS):
            print(name)
        return 0
    unknown = [q for q in args.quirk if q not in sim_dlms.QUIRKS]
    if unknown:
        sys.stderr.write("optoread sim: unknown quirk %s (see --quirk list)\n" % ", ".join(unknown))
        return 2
    client = {"none": 16, "low": 32, "hls": 48}[args.auth]

    def factory():
        return sim_dlms.DlmsServer(sim_dlms.MeterModel(rows=args.rows), client=client, auth=args.auth,
                                   link="wrapper" if args.wrapper else "hdlc", quirks=args.quirk)

    if args.tcp is not None:
        port, stop = sim_dlms.serve_tcp(factory, args.tcp)
        where = "127.0.0.1:%d" % port
    elif args.pty:
        where, stop = sim_dlms.start_pty(factory(), mode_e=args.mode_e)
    else:
        sys.stderr.write("optoread sim: --protocol dlms needs --pty or --tcp PORT\n")
        return 2
    print(where, flush=True)
    sys.stderr.write("optoread sim: DLMS/COSEM meter on %s (Ctrl-C to stop)\n" % where)
    return _wait(args, stop)


def _wait(args, stop):
    end = time.monotonic() + args.seconds if args.seconds else None
    try:
        while end is None or time.monotonic() < end:
            time.sleep(0.2)
    except KeyboardInterrupt:
        pass
    finally:
        stop()
    return 0


def run(args):
    if args.protocol == "dlms":
        return run_dlms(args)
    if "list" in args.quirk:
        for name, kw in QUIRKS.items():
            print("%-14s %s" % (name, ", ".join("%s=%s" % i for i in kw.items())))
        return 0
    unknown = [q for q in args.quirk if q not in QUIRKS]
    if unknown:
        sys.stderr.write("optoread sim: unknown quirk %s (see --quirk list)\n" % ", ".join(unknown))
        return 2
    if not args.pty:
        sys.stderr.write("optoread sim: only --pty is available for --protocol iec21\n")
        return 2
    kw = {"password": args.password}
    if args.address:
        kw["address"] = args.address
    meter = make_meter(args.quirk, args.readout, **kw)
    path, stop = start_pty_thread(meter)
    print(path, flush=True)
    sys.stderr.write("optoread sim: IEC 62056-21 meter %s on %s (Ctrl-C to stop)\n"
                     % (meter.identification.decode().strip(), path))
    return _wait(args, stop)

