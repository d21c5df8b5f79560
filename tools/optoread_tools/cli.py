"""The ``optoread`` command: laptop side of optoread (CPython).

    optoread parse FILE [--json]                  decode a captured readout or HDLC/APDU capture
    optoread sim --protocol iec21 --pty [...]     start a simulated meter on a pty
    optoread read --port DEV --iec21 [...]        read a meter through a USB optical probe

The reading path is the firmware's own modules, run on CPython with pyserial.
"""

import argparse
import json
import sys

from optoread import driver
from optoread import iec62056_21 as iec
from optoread.errors import NoAnswerError, OptoreadError


def _print_readout_text(d, out):
    if d.get("identification"):
        out.write("identification: %s\n" % d["identification"])
    for ds in d["datasets"]:
        vals = "  ".join(v + ("" if u is None else " " + u) for v, u in ds["values"])
        out.write("%-20s %s\n" % (ds["address"], vals))
    checks = []
    if d.get("bcc_ok") is not None:
        checks.append("BCC " + ("ok" if d["bcc_ok"] else "MISMATCH"))
    if d.get("crc_ok") is not None:
        checks.append("CRC16 " + ("ok" if d["crc_ok"] else "MISMATCH"))
    if checks:
        out.write("checksum: %s\n" % ", ".join(checks))
    for e in d.get("errors", []):
        out.write("error: %s\n" % e)


def _is_hex_capture(data):
    head = data[:200].lstrip()
    return head[:3] in (b"C> ", b"M> ")


def cmd_parse(args):
    with open(args.file, "rb") as f:
        data = f.read()
    if _is_hex_capture(data) or args.file.endswith(".hex"):
        from optoread_tools import dlmsparse

        result = dlmsparse.parse_capture(data.decode("ascii", "replace"), key=args.key,
                                         auth_key=args.auth_key)
        if args.json:
            json.dump(result, sys.stdout, indent=1)
            sys.stdout.write("\n")
        else:
            dlmsparse.print_text(result, sys.stdout)
        return 0 if not result.get("errors") else 1
    r = iec.parse_readout(data)
    d = r.as_dict()
    if args.json:
        json.dump(d, sys.stdout, indent=1)
        sys.stdout.write("\n")
    else:
        _print_readout_text(d, sys.stdout)
    return 0 if not d["errors"] else 1


def _baud_switch(text):
    if text in ("auto", "stay"):
        return text
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError("--baud-switch is auto, stay or a baud rate") from None


def _open_port(port):
    from optoread_tools.transports import SerialTransport

    return SerialTransport(port, baud=300, bits=7, parity="E")


def cmd_read(args):
    if not args.iec21:
        sys.stderr.write("optoread read: only --iec21 is available in this version\n")
        return 2
    opts = iec.Options(mode=args.mode, address=args.address or "", baud_switch=args.baud_switch,
                       settle_ms=args.settle_ms, wakeup=args.wakeup)
    if args.reaction_ms is not None:
        opts.reaction_ms = args.reaction_ms
    progress = None if args.quiet else (lambda text: sys.stderr.write("optoread: %s\n" % text))
    transport = _open_port(args.port)
    try:
        drv = driver.Driver(transport, echo=True, progress=progress)
        if args.register:
            values = drv.run(iec.read_registers(opts, args.register, args.password))
            d = {"identification": None, "bcc_ok": True, "crc_ok": None, "complete": True,
                 "datasets": [{"address": a, "values": [list(v) for v in vals]} for a, vals in values],
                 "errors": []}
        else:
            d = drv.run(iec.readout(opts)).as_dict()
    except NoAnswerError as e:
        sys.stderr.write("optoread: %s\n" % e)
        for t in e.tried:
            sys.stderr.write("  tried: %s\n" % t)
        return 3
    except OptoreadError as e:
        sys.stderr.write("optoread: %s\n" % e)
        return 4
    finally:
        transport.close()
    if args.json:
        json.dump(d, sys.stdout, indent=1)
        sys.stdout.write("\n")
    else:
        _print_readout_text(d, sys.stdout)
    return 0


def cmd_sim(args):
    from optoread_tools import simcli

    return simcli.run(args)


def build_parser():
    p = argparse.ArgumentParser(prog="optoread", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True)

    sp = sub.add_parser("parse", help="decode a captured readout (.txt) or HDLC/APDU capture (.hex)")
    sp.add_argument("file")
    sp.add_argument("--json", action="store_true", help="print JSON instead of text")
    sp.add_argument("--key", help="encryption key (hex) for ciphered APDUs")
    sp.add_argument("--auth-key", help="authentication key (hex) for ciphered APDUs")
    sp.set_defaults(func=cmd_parse)

    sp = sub.add_parser("sim", help="run a simulated meter")
    sp.add_argument("--protocol", choices=("iec21",), default="iec21")
    sp.add_argument("--pty", action="store_true", help="serve on a new pty and print its path")
    sp.add_argument("--quirk", action="append", default=[], metavar="NAME",
                    help="meter quirk (repeatable); --quirk list shows them")
    sp.add_argument("--readout", help="serve the data lines of this readout file")
    sp.add_argument("--password", default="00000000", help="programming-mode password")
    sp.add_argument("--address", default="", help="the meter's device address")
    sp.add_argument("--seconds", type=float, default=0, help="stop after this long (0 = until Ctrl-C)")
    sp.set_defaults(func=cmd_sim)

    sp = sub.add_parser("read", help="read a meter through an optical probe")
    sp.add_argument("--port", required=True, help="serial device of the probe (or a pty)")
    sp.add_argument("--iec21", action="store_true", help="IEC 62056-21 (modes A-C)")
    sp.add_argument("--mode", choices=("A", "B", "C", "D"), default="C")
    sp.add_argument("--address", help="device address for the sign-on")
    sp.add_argument("--baud-switch", type=_baud_switch, default="auto",
                    help="auto (default; falls back to staying), stay, or a baud rate to force")
    sp.add_argument("--settle-ms", type=int, default=0, help="wait after the ACK before switching (0-300)")
    sp.add_argument("--reaction-ms", type=int, help="wait before the ACK (default: 200, or 20 if allowed)")
    sp.add_argument("--wakeup", action="store_true", help="send the wake-up NUL train first")
    sp.add_argument("--password", help="programming-mode password (P1)")
    sp.add_argument("--register", action="append", metavar="ADDR",
                    help="read this register in programming mode (repeatable)")
    sp.add_argument("--json", action="store_true")
    sp.add_argument("--quiet", action="store_true", help="no progress messages")
    sp.set_defaults(func=cmd_read)
    return p


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except OptoreadError as e:
        sys.stderr.write("optoread: %s\n" % e)
        return 4
    except (OSError, KeyboardInterrupt) as e:
        if isinstance(e, KeyboardInterrupt):
            return 130
        sys.stderr.write("optoread: %s\n" % e)
        return 5


if __name__ == "__main__":
    sys.exit(main())
