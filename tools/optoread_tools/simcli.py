"""``optoread sim``: run a simulated meter on a pty or loopback TCP until interrupted.

Where: ``--pty`` (a new pty; its path is printed), ``--tcp PORT`` (listen on 127.0.0.1:PORT,
0 = any free port; the address is printed) or ``--connect HOST:PORT`` (connect out to a
loopback listener, e.g. an emulated RP2040's UART bridge; the address is printed, and the
command ends when that connection closes).

What: ``--protocol iec21``: the time-driven IEC 62056-21 meter (quirks, readout, password,
address), on a pty or on TCP as on the optical line (:mod:`tcpline`). ``--protocol dlms``:
on TCP by default the byte-driven DlmsServer (HDLC or ``--wrapper`` as over a network, which
``optoread read --tcp`` uses); ``--line`` (direct HDLC at 9600, sign-on requests ignored) or
``--mode-e`` (IEC sign-on handing over to HDLC) make it the time-driven meter of the optical
line, which a pty always is and ``--connect`` implies.
"""

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


# --connect: how long to keep trying while the peer (an emulator booting) does not listen yet.
CONNECT_RETRY_S = 30.0


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

    bad = _check_where(args)
    if bad is not None:
        return bad
    line = args.line or args.mode_e or args.connect is not None
    if args.wrapper and (args.pty or line):
        return _usage("--wrapper is for the byte-driven DLMS server on --tcp (not --pty, --line, "
                      "--mode-e or --connect)")
    kind = "mode E: IEC sign-on, then HDLC" if args.mode_e else "direct HDLC"
    try:
        if args.pty:
            where, stop = sim_dlms.start_pty(factory(), mode_e=args.mode_e)
        elif line:
            from optoread_tools import tcpline

            _port, stop = tcpline.start_dlms_line_tcp(
                mode_e=args.mode_e, port=args.tcp or 0, model=sim_dlms.MeterModel(rows=args.rows),
                connect=args.connect, retry_s=CONNECT_RETRY_S, client=client, auth=args.auth,
                quirks=args.quirk)
            where = _where(stop)
        else:
            port, stop = sim_dlms.serve_tcp(factory, args.tcp)
            where = "127.0.0.1:%d" % port
            kind = "wrapper" if args.wrapper else "HDLC"
    except (OSError, OverflowError, sim_dlms.SimError) as e:
        return _fail(e)
    print(where, flush=True)
    sys.stderr.write("optoread sim: DLMS/COSEM meter (%s) %s %s (Ctrl-C to stop)\n"
                     % (kind, "connecting to" if args.connect else "on", where))
    return _wait(args, stop)


def _usage(text):
    sys.stderr.write("optoread sim: %s\n" % text)
    return 2


def _fail(e, rc=1):
    """A failure to start (port taken, bad file): one line, exit 1 (2 is for bad arguments)."""
    sys.stderr.write("optoread sim: %s\n" % (getattr(e, "message", None) or e))
    return rc


def _where(stop):
    host, port = stop.address
    return ("[%s]:%d" if ":" in host else "%s:%d") % (host, port)


def _check_where(args):
    """One of --pty, --tcp PORT, --connect HOST:PORT: a one-line error (exit 2) otherwise."""
    n = sum((bool(args.pty), args.tcp is not None, args.connect is not None))
    if n != 1:
        return _usage("--protocol %s needs exactly one of --pty, --tcp PORT or --connect HOST:PORT"
                      % args.protocol)
    if args.tcp is not None and not 0 <= args.tcp < 65536:
        return _usage("--tcp PORT must be 0..65535 (0 = any free port)")
    if args.connect is not None:
        from optoread_tools import sim_dlms, tcpline

        try:
            args.connect = tcpline.parse_hostport(args.connect)
        except sim_dlms.SimError as e:
            return _fail(e, 2)
    return None


def _wait(args, stop):
    end = time.monotonic() + args.seconds if args.seconds else None
    done = getattr(stop, "done", None)
    rc = 0
    try:
        while end is None or time.monotonic() < end:
            if done is not None and done.wait(0.2):
                # Connect-out: the connection closed (or was never made) -- nothing left to serve.
                if getattr(stop, "error", None):
                    sys.stderr.write("optoread sim: %s\n" % stop.error)
                    rc = 1
                break
            if done is None:
                time.sleep(0.2)
    except KeyboardInterrupt:
        pass
    finally:
        stop()
    return rc


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
    if args.line or args.mode_e or args.wrapper:
        return _usage("--line, --mode-e and --wrapper are for --protocol dlms "
                      "(an IEC meter offering mode E: --quirk mode_e)")
    bad = _check_where(args)
    if bad is not None:
        return bad
    kw = {"password": args.password}
    if args.address:
        kw["address"] = args.address
    if args.pty:
        meter = make_meter(args.quirk, args.readout, **kw)
        where, stop = start_pty_thread(meter)
    else:
        from optoread_tools import sim_dlms, tcpline

        try:
            _port, stop = tcpline.start_iec21_tcp(args.quirk, port=args.tcp or 0, readout=args.readout,
                                                  connect=args.connect, retry_s=CONNECT_RETRY_S, **kw)
        except (OSError, OverflowError, sim_dlms.SimError) as e:
            return _fail(e)
        meter = stop.meter
        where = _where(stop)
    print(where, flush=True)
    sys.stderr.write("optoread sim: IEC 62056-21 meter %s %s %s (Ctrl-C to stop)\n"
                     % (meter.identification.decode().strip(), "connecting to" if args.connect else "on",
                        where))
    return _wait(args, stop)
