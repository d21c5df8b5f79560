"""The ``optoread`` command: laptop side of optoread (CPython).

    optoread parse FILE [--json]                  decode a captured readout or HDLC/APDU capture
    optoread sim --protocol iec21 --pty [...]     start a simulated meter on a pty
    optoread read --port DEV --iec21 [...]        read a meter through a USB optical probe
    optoread read --tcp HOST:PORT --obis ...      read a DLMS/COSEM meter (probe, HDLC/TCP, wrapper)
    optoread device --probe SPEC --read [PLAN]    the firmware's reading path on the unix port
    optoread download --port DEV --out DB         download stored readings from the device (SQLite)
    optoread export DB --csv DIR                  CSV/JSON from a downloaded database
    optoread deploy --board pico --port DEV       install the firmware on a board
    optoread decode-flash IMAGE                   sessions from a raw flash dump

The reading path is the firmware's own modules, run on CPython with pyserial.
"""

import argparse
import json
import sys

from optoread import driver
from optoread.errors import NoAnswerError, OptoreadError
from optoread.iec62056_21 import readout as iec_readout
from optoread.iec62056_21 import signon as iec


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


def report_error(e):
    """Print a reading's error (and what was tried) for the user; returns the exit status."""
    sys.stderr.write("optoread: %s\n" % e)
    if isinstance(e, NoAnswerError):
        for t in e.tried:
            sys.stderr.write("  tried: %s\n" % t)
        return 3
    return 4


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
    r = iec_readout.parse_readout(data)
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
        from optoread_tools import dlmsread

        return dlmsread.run(args)
    if not args.port:
        sys.stderr.write("optoread read: --iec21 needs --port\n")
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
            values = drv.run(iec_readout.read_registers(opts, args.register, args.password))
            d = {"identification": None, "bcc_ok": True, "crc_ok": None, "complete": True,
                 "datasets": [{"address": a, "values": [list(v) for v in vals]} for a, vals in values],
                 "errors": []}
        else:
            d = drv.run(iec_readout.readout(opts)).as_dict()
    except OptoreadError as e:
        return report_error(e)
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


def cmd_decode_flash(args):
    from optoread_tools import flashdump

    return flashdump.run(args.image, args.block_size, args.json, sys.stdout, root=args.root)


def cmd_device(args):
    """Run the firmware's reading path on the MicroPython unix port (the `unix` board)."""
    import os
    import subprocess

    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    mp = os.path.join(os.path.dirname(sys.executable), "micropython")
    script = os.path.join(root, "firmware", "unix_read.py")
    if not os.path.exists(script):
        sys.stderr.write("optoread device: needs a source checkout (firmware/unix_read.py)\n")
        return 2
    cmd = [mp, "-X", "heapsize=%s" % args.heap, script, "--probe", args.probe, "--flash", args.flash]
    if args.read is not None:
        cmd += ["--read"] + ([args.read] if args.read else [])
    else:
        cmd += ["--list"]
    if args.meter:
        cmd += ["--meter", args.meter]
    if args.json:
        cmd.append("--json")
    return subprocess.call(cmd)


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
    sp.add_argument("--protocol", choices=("iec21", "dlms"), default="iec21")
    sp.add_argument("--pty", action="store_true", help="serve on a new pty and print its path")
    sp.add_argument("--tcp", type=int, metavar="PORT",
                    help="serve on 127.0.0.1:PORT (0 = any free) and print the address; iec21: the bytes "
                         "of the optical line, no baud; dlms: HDLC/wrapper as over a network unless "
                         "--line or --mode-e")
    sp.add_argument("--connect", metavar="HOST:PORT",
                    help="connect out to a loopback listener (e.g. an emulator's --uart0-tcp PORT) and "
                         "serve the optical line's bytes there; ends when the connection closes")
    sp.add_argument("--wrapper", action="store_true", help="dlms over TCP: IEC 62056-47 wrapper, not HDLC")
    sp.add_argument("--line", action="store_true",
                    help="dlms on TCP: as on the optical line (direct HDLC at 9600, sign-on ignored)")
    sp.add_argument("--mode-e", action="store_true",
                    help="dlms on a pty or TCP: IEC 62056-21 sign-on first, then HDLC on the same line")
    sp.add_argument("--auth", choices=("none", "low", "hls"), default="none",
                    help="dlms: authentication of the non-public client (32 low, 48 hls)")
    sp.add_argument("--rows", type=int, default=2880, help="dlms: load profile rows")
    sp.add_argument("--quirk", action="append", default=[], metavar="NAME",
                    help="meter quirk (repeatable); --quirk list shows them")
    sp.add_argument("--readout", help="serve the data lines of this readout file")
    sp.add_argument("--password", default="00000000", help="programming-mode password")
    sp.add_argument("--address", default="", help="the meter's device address")
    sp.add_argument("--seconds", type=float, default=0, help="stop after this long (0 = until Ctrl-C)")
    sp.set_defaults(func=cmd_sim)

    sp = sub.add_parser("decode-flash", help="print the sessions stored in a raw flash dump (LittleFS)")
    sp.add_argument("image")
    sp.add_argument("--block-size", type=int, default=4096)
    sp.add_argument("--root", default="/data", help="the store's folder in the image (device: /data)")
    sp.add_argument("--json", action="store_true")
    sp.set_defaults(func=cmd_decode_flash)

    sp = sub.add_parser("device", help="run the firmware's reading path on the MicroPython unix port")
    sp.add_argument("--probe", required=True, metavar="pty:PATH|tcp:HOST:PORT")
    sp.add_argument("--flash", default="optoread-store.img", help="LittleFS image (created if missing)")
    sp.add_argument("--read", nargs="?", const="", metavar="PLAN", help="read (default plan: generic)")
    sp.add_argument("--meter", help="the meter's id: use what worked for it last time")
    sp.add_argument("--heap", default="512k", help="MicroPython heap (default 512k)")
    sp.add_argument("--json", action="store_true")
    sp.set_defaults(func=cmd_device)

    from optoread_tools import deploy, download

    download.add_download_parser(sub)
    download.add_export_parser(sub)
    deploy.add_deploy_parser(sub)

    sp = sub.add_parser("read", help="read a meter through an optical probe (IEC 62056-21 or DLMS/COSEM)")
    where = sp.add_mutually_exclusive_group(required=True)
    where.add_argument("--port", help="serial device of the probe (or a pty)")
    where.add_argument("--tcp", metavar="HOST:PORT", help="DLMS over TCP (HDLC; --wrapper for 62056-47)")
    sp.add_argument("--iec21", action="store_true", help="IEC 62056-21 readout (modes A-D); default: DLMS")
    sp.add_argument("--mode", choices=("A", "B", "C", "D"), default="C")
    sp.add_argument("--address", help="device address for the sign-on")
    dl = sp.add_argument_group("DLMS/COSEM")
    dl.add_argument("--wrapper", action="store_true", help="IEC 62056-47 wrapper instead of HDLC (TCP)")
    how = dl.add_mutually_exclusive_group()
    how.add_argument("--mode-e", action="store_true", help="IEC 62056-21 sign-on, then HDLC (mode E)")
    how.add_argument("--direct", action="store_true", help="HDLC at 9600 8N1 without sign-on (default)")
    dl.add_argument("--client", type=int, default=16, help="client address (16 public, 32, 48)")
    dl.add_argument("--server", default="1", metavar="LOGICAL[/PHYSICAL]", help="server address (default 1)")
    dl.add_argument("--serial-number", type=int, help="derive the physical address from the serial number")
    dl.add_argument("--address-size", type=int, choices=(1, 2, 4), help="server address bytes")
    dl.add_argument("--auth", choices=("none", "low", "hls"), default="none")
    dl.add_argument("--key", help="HLS / ciphering: encryption key (hex); --auth-key for the GMAC key")
    dl.add_argument("--auth-key", help="authentication key (hex)")
    dl.add_argument("--system-title", default="OPTOREAD", help="client system title (8 chars or 16 hex)")
    dl.add_argument("--sn", action="store_true", help="short-name referencing")
    dl.add_argument("--max-info", type=int, help="max info field to ask for (default: the largest)")
    dl.add_argument("--obis", action="append", default=[], metavar="[CLASS/]OBIS[:ATTR]",
                    help="read this object (repeatable); registers come with scaler and unit")
    dl.add_argument("--profile", metavar="OBIS", help="read a load profile")
    dl.add_argument("--from", dest="from_", metavar="ISO", help="profile range start (local meter time)")
    dl.add_argument("--to", metavar="ISO", help="profile range end")
    dl.add_argument("--last-entries", type=int, metavar="N", help="profile: the last N entries")
    dl.add_argument("--no-deviation", action="store_true", help="range without deviation (some meters)")
    dl.add_argument("--browse", action="store_true", help="list the association's object list")
    dl.add_argument("--set-clock", action="store_true", help="set the meter clock to this computer's time")
    sp.add_argument("--baud-switch", type=_baud_switch, default="auto",
                    help="auto (default; falls back to staying), stay, or a baud rate to force")
    sp.add_argument("--settle-ms", type=int, default=0, help="wait after the ACK before switching (0-300)")
    sp.add_argument("--reaction-ms", type=int, help="wait before the ACK (default: 200, or 20 if allowed)")
    sp.add_argument("--wakeup", action="store_true", help="send the wake-up NUL train first")
    sp.add_argument("--password", help="programming-mode password (P1), or the DLMS LLS password")
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
