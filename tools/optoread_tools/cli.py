"""The ``optoread`` command: laptop side of optoread (CPython).

    optoread parse FILE [--json]                  decode a captured readout or HDLC/APDU capture
    optoread sim --protocol iec21 --pty [...]     start a simulated meter on a pty
    optoread read --port DEV --iec21 [...]        read a meter through a USB optical probe
    optoread read --tcp HOST:PORT --obis ...      read a DLMS/COSEM meter (probe, HDLC/TCP, wrapper)
    optoread device --probe SPEC --read [PLAN]    the firmware's reading path on the unix port
    optoread download --port DEV --out DB         download stored readings from the device (SQLite)
    optoread export DB --csv DIR                  CSV/JSON from a downloaded database
    optoread deploy --board pico --port DEV       install the firmware on a board
    optoread pin --port DEV [--change]            choose (or change) the device PIN
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

_SEASONS = {"S": " (summer time)", "W": " (winter time)"}


def _with_times(d):
    """An IEC readout's JSON (``Readout.as_dict``) with each data set that is one value with its
    own time (``readout.value_time``: ``1.6.0(02.468*kW)(1703100930)``, DSMR's
    ``0-1:24.2.1(101209112500W)(12785.123*m3)``) given ``value``, ``unit`` and ``time`` (ISO 8601,
    the meter's local time), plus ``season`` ("S"/"W") when DSMR gave one. ``values`` stay as sent."""
    for ds in d["datasets"]:
        vt = iec_readout.value_time([tuple(v) for v in ds["values"]])
        if vt is not None:
            ds["value"], ds["unit"], ds["time"] = vt[0], vt[1], vt[2]
            if vt[3] is not None:
                ds["season"] = vt[3]
    return d


def _print_readout_text(d, out):
    if d.get("identification"):
        out.write("identification: %s\n" % d["identification"])
    for ds in d["datasets"]:
        if "time" in ds:  # one value with its time (_with_times)
            vals = "%s%s  at %s%s" % (ds["value"], "" if ds["unit"] is None else " " + ds["unit"], ds["time"],
                                      _SEASONS.get(ds.get("season"), ""))
        else:
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


class UsageError(Exception):
    """A bad option value or combination found after parsing: one line, exit 2 (see :func:`main`)."""


class Parser(argparse.ArgumentParser):
    """argparse with a one-line error (``optoread read: argument --client: ...``), exit 2."""

    def error(self, message):
        self.exit(2, "%s: %s\n" % (self.prog, message))


def int_range(lo=None, hi=None, what="an integer"):
    """An ``type=`` for an integer in lo..hi (either end open when None)."""

    def conv(text):
        try:
            v = int(text, 10)
        except ValueError:
            raise argparse.ArgumentTypeError("expected %s, not %r" % (what, text)) from None
        if (lo is not None and v < lo) or (hi is not None and v > hi):
            if hi is None:
                raise argparse.ArgumentTypeError("must be %d or more, not %d" % (lo, v))
            if lo is None:
                raise argparse.ArgumentTypeError("must be %d or less, not %d" % (hi, v))
            raise argparse.ArgumentTypeError("must be %d..%d, not %d" % (lo, hi, v))
        return v

    return conv


def seconds(zero_ok=False):
    """A ``type=`` for a finite number of seconds, > 0 (or >= 0 with ``zero_ok``)."""

    def conv(text):
        import math

        try:
            v = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError("expected a number of seconds, not %r" % (text,)) from None
        if not math.isfinite(v) or v < 0 or (v == 0 and not zero_ok):
            raise argparse.ArgumentTypeError("must be a number of seconds %s, not %s"
                                             % (">= 0" if zero_ok else "> 0", text))
        return v

    return conv


def hex_key(text):
    """A 16-byte key as 32 hex digits (spaces allowed), or "-" (ask for it). The value is never echoed."""
    if text == "-":
        return text
    try:
        key = bytes.fromhex(text.replace(" ", ""))
    except ValueError:
        raise argparse.ArgumentTypeError("must be hex (32 hex digits for a 16-byte key)") from None
    if len(key) != 16:
        raise argparse.ArgumentTypeError("must be 16 bytes (32 hex digits), not %d bytes" % len(key))
    return text


def existing_file(text):
    """A ``type=`` for a file to read: it must exist and be a file."""
    import os

    if not os.path.exists(text):
        raise argparse.ArgumentTypeError("no such file: %s" % text)
    if os.path.isdir(text):
        raise argparse.ArgumentTypeError("%s is a folder, not a file" % text)
    return text


def hostport(text):
    """``HOST:PORT`` for ``--tcp`` (validated; the text is kept)."""
    from optoread_tools.transports import parse_hostport

    try:
        parse_hostport(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None
    return text


def check_output_file(option, path):
    """An output file's folder must exist (found out before any work is done): UsageError if not."""
    import os

    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise UsageError("%s %s: no such folder: %s" % (option, path, folder))
    if os.path.isdir(path):
        raise UsageError("%s %s is a folder, not a file" % (option, path))


def check_output_dir(option, path):
    """An output folder (created if missing) must not be a file."""
    import os

    if os.path.exists(path) and not os.path.isdir(path):
        raise UsageError("%s %s is a file, not a folder" % (option, path))


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
    if not data.strip():
        sys.stderr.write("optoread parse: %s is empty: no readout or capture in it\n" % args.file)
        return 1
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
    d = _with_times(r.as_dict())
    if args.json:
        json.dump(d, sys.stdout, indent=1)
        sys.stdout.write("\n")
    else:
        _print_readout_text(d, sys.stdout)
    return 0 if not d["errors"] else 1


_IEC_BAUDS = (300, 600, 1200, 2400, 4800, 9600, 19200)


def _baud_switch(text):
    if text in ("auto", "stay"):
        return text
    try:
        baud = int(text)
    except ValueError:
        baud = None
    if baud not in _IEC_BAUDS:
        raise argparse.ArgumentTypeError("auto, stay or a baud rate of IEC 62056-21 (%s), not %r"
                                         % (", ".join(str(b) for b in _IEC_BAUDS), text))
    return baud


def _iec_address(text):
    """A device address for the IEC 62056-21 sign-on (up to 32 letters, digits and spaces)."""
    from optoread.errors import Iec21Error

    try:
        iec.sign_on_request(text)
    except Iec21Error as e:
        raise argparse.ArgumentTypeError(e.message) from None
    return text


def _register(text):
    """A data set address for programming mode: 1..16 printable characters, none of ( ) / ! *."""
    if not 0 < len(text) <= 16 or any(c in "()/!*" or not " " < c <= "~" for c in text):
        raise argparse.ArgumentTypeError("a register address is 1..16 printable characters without "
                                         "( ) / ! *, not %r" % (text,))
    return text


def _heap(text):
    """MicroPython's -X heapsize: N, Nk or Nm (at least 64k)."""
    t = text.lower()
    mult = {"k": 1024, "m": 1024 * 1024}.get(t[-1:], 1)
    digits = t[:-1] if mult > 1 else t
    if not digits.isdigit() or int(digits) * mult < 64 * 1024:
        raise argparse.ArgumentTypeError("a heap size such as 512k or 1m (at least 64k), not %r" % (text,))
    return text


def _probe(text):
    """``pty:PATH``, ``tty:PATH`` or ``tcp:HOST:PORT``: the grammar of the firmware's
    ``unixport.open_spec``, checked here before MicroPython starts (not imported from there: a
    function more in that module is a name more on the device's reading path, test_ram)."""
    kind, _, rest = text.partition(":")
    if kind in ("pty", "tty") and rest:
        return text
    if kind == "tcp":
        host, _, port = rest.rpartition(":")
        if host and port.isdigit() and 0 < int(port) < 65536:
            return text
    raise argparse.ArgumentTypeError("probe must be pty:PATH, tty:PATH or tcp:HOST:PORT, not %r" % (text,))


def _block_size(text):
    v = int_range(128, 1 << 20, "a block size in bytes")(text)
    if v & (v - 1):
        raise argparse.ArgumentTypeError("a block size is a power of two, not %d" % v)
    return v


def _open_port(port):
    from optoread_tools.transports import SerialTransport

    return SerialTransport(port, baud=300, bits=7, parity="E")


def cmd_read(args):
    from optoread_tools import dlmsread

    dlmsread.check_args(args)
    dlmsread.resolve_secrets(args)
    if not args.iec21:
        return dlmsread.run(args)
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
        _with_times(d)
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


def _lfs_mounts(path, block_size=4096):
    """True/False: littlefs-python mounts the image; None when littlefs-python is not installed."""
    try:
        from littlefs import LittleFS, UserContext
    except ImportError:
        return None
    with open(path, "rb") as f:
        buf = bytearray(f.read())
    try:
        fs = LittleFS(context=UserContext(buffer=buf), block_size=block_size,
                      block_count=len(buf) // block_size, mount=False)
        fs.mount()
        fs.unmount()
        return True
    except Exception:  # littlefs-python raises LittleFSError (not an OSError) for a bad image
        return False


def check_flash(path, format_=False):
    """Decide what ``device --flash`` may do with ``path``; UsageError when it must not be touched.

    A missing file (in an existing folder) or a blank one (empty, or all 0xFF/0x00) is created and
    formatted; a LittleFS image is mounted as it is, or erased first with ``format_``; anything
    else (a database, a document, a damaged image without ``format_``) is refused.
    """
    from . import imagefile

    try:
        state = imagefile.image_state(path)
    except OSError:
        import os

        raise UsageError("--flash %s: no such folder: %s"
                         % (path, os.path.dirname(os.path.abspath(path)))) from None
    if state == "dir":
        raise UsageError("--flash %s is a folder, not a LittleFS image file" % path)
    if state == "other":
        raise UsageError("--flash %s is not a LittleFS image: refusing to format it (give a new file "
                         "name, or an image that optoread device created)" % path)
    if state == "littlefs":
        if format_:
            imagefile.erase_image(path)
        elif _lfs_mounts(path) is False:
            raise UsageError("--flash %s is a damaged LittleFS image: not formatting it (optoread "
                             "decode-flash %s recovers what it can; --format erases it)" % (path, path))
    return state


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
    state = check_flash(args.flash, args.format)
    cmd = [mp, "-X", "heapsize=%s" % args.heap, script, "--probe", args.probe, "--flash", args.flash]
    if state in ("missing", "blank") or args.format:
        cmd.append("--format")  # what check_flash allowed: the firmware formats nothing else
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
    p = Parser(prog="optoread", description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="command", required=True)

    sp = sub.add_parser("parse", help="decode a captured readout (.txt) or HDLC/APDU capture (.hex)")
    sp.add_argument("file", type=existing_file)
    sp.add_argument("--json", action="store_true", help="print JSON instead of text")
    sp.add_argument("--key", type=hex_key, help="encryption key (32 hex digits) for ciphered APDUs")
    sp.add_argument("--auth-key", type=hex_key, help="authentication key (32 hex digits) for ciphered APDUs")
    sp.set_defaults(func=cmd_parse)

    sp = sub.add_parser("sim", help="run a simulated meter")
    sp.add_argument("--protocol", choices=("iec21", "dlms"), default="iec21")
    sp.add_argument("--pty", action="store_true", help="serve on a new pty and print its path")
    sp.add_argument("--tcp", type=int_range(0, 65535, "a TCP port number"), metavar="PORT",
                    help="serve on 127.0.0.1:PORT (0 = any free) and print the address; iec21: the bytes "
                         "of the optical line, no baud; dlms: HDLC/wrapper as over a network unless "
                         "--line or --mode-e")
    sp.add_argument("--connect", metavar="HOST:PORT", type=_sim_connect,
                    help="connect out to a loopback listener (e.g. an emulator's --uart0-tcp PORT) and "
                         "serve the optical line's bytes there; ends when the connection closes")
    sp.add_argument("--wrapper", action="store_true", help="dlms over TCP: IEC 62056-47 wrapper, not HDLC")
    sp.add_argument("--line", action="store_true",
                    help="dlms on TCP: as on the optical line (direct HDLC at 9600, sign-on ignored)")
    sp.add_argument("--mode-e", action="store_true",
                    help="dlms on a pty or TCP: IEC 62056-21 sign-on first, then HDLC on the same line")
    sp.add_argument("--auth", choices=("none", "low", "hls"), default="none",
                    help="dlms: authentication of the non-public client (32 low, 48 hls)")
    sp.add_argument("--rows", type=int_range(1, 10 ** 6, "a number of rows"), default=2880,
                    help="dlms: load profile rows (1..1000000)")
    sp.add_argument("--quirk", action="append", default=[], metavar="NAME",
                    help="meter quirk (repeatable); --quirk list shows them")
    sp.add_argument("--readout", type=existing_file, help="serve the data lines of this readout file")
    sp.add_argument("--password", default="00000000", help="programming-mode password")
    sp.add_argument("--address", default="", type=_iec_address, help="the meter's device address")
    sp.add_argument("--seconds", type=seconds(zero_ok=True), default=0,
                    help="stop after this long (0 = until Ctrl-C)")
    sp.set_defaults(func=cmd_sim)

    sp = sub.add_parser("decode-flash", help="print the sessions stored in a raw flash dump (LittleFS)")
    sp.add_argument("image", type=existing_file)
    sp.add_argument("--block-size", type=_block_size, default=4096, help="a power of two (default 4096)")
    sp.add_argument("--root", default="/data", help="the store's folder in the image (device: /data)")
    sp.add_argument("--json", action="store_true")
    sp.set_defaults(func=cmd_decode_flash)

    sp = sub.add_parser("device", help="run the firmware's reading path on the MicroPython unix port")
    sp.add_argument("--probe", required=True, metavar="pty:PATH|tcp:HOST:PORT", type=_probe)
    sp.add_argument("--flash", default="optoread-store.img",
                    help="LittleFS image file: created and formatted if missing; an existing image is "
                         "kept as it is; any other file is refused")
    sp.add_argument("--format", action="store_true",
                    help="erase and format the --flash image first (its readings are lost)")
    sp.add_argument("--read", nargs="?", const="", metavar="PLAN", help="read (default plan: generic)")
    sp.add_argument("--meter", help="the meter's id: use what worked for it last time")
    sp.add_argument("--heap", default="512k", type=_heap, help="MicroPython heap (default 512k)")
    sp.add_argument("--json", action="store_true")
    sp.set_defaults(func=cmd_device)

    from optoread_tools import deploy, devicepin, download

    download.add_download_parser(sub)
    download.add_export_parser(sub)
    deploy.add_deploy_parser(sub)
    devicepin.add_pin_parser(sub)

    sp = sub.add_parser("read", help="read a meter through an optical probe (IEC 62056-21 or DLMS/COSEM)")
    where = sp.add_mutually_exclusive_group(required=True)
    where.add_argument("--port", help="serial device of the probe (or a pty)")
    where.add_argument("--tcp", metavar="HOST:PORT", type=hostport,
                       help="DLMS over TCP (HDLC; --wrapper for 62056-47)")
    sp.add_argument("--iec21", action="store_true", help="IEC 62056-21 readout (modes A-D); default: DLMS")
    sp.add_argument("--mode", choices=("A", "B", "C", "D"), default="C")
    sp.add_argument("--address", type=_iec_address, help="device address for the sign-on")
    from optoread_tools import dlmsread

    dlmsread.add_dlms_arguments(sp)
    sp.add_argument("--baud-switch", type=_baud_switch, default="auto",
                    help="auto (default; falls back to staying), stay, or a baud rate to force")
    sp.add_argument("--settle-ms", type=int_range(0, 1000, "milliseconds"), default=0,
                    help="wait after the ACK before switching (0-1000; 150-250 for slow adapters)")
    sp.add_argument("--reaction-ms", type=int_range(0, 1500, "milliseconds"),
                    help="wait before the ACK (0-1500; default: 200, or 20 if allowed)")
    sp.add_argument("--wakeup", action="store_true", help="send the wake-up NUL train first")
    sp.add_argument("--register", action="append", metavar="ADDR", type=_register,
                    help="read this register in programming mode (repeatable)")
    sp.add_argument("--json", action="store_true")
    sp.add_argument("--quiet", action="store_true", help="no progress messages")
    sp.set_defaults(func=cmd_read)
    return p


def _sim_connect(text):
    from optoread_tools import sim_dlms, tcpline

    try:
        tcpline.parse_hostport(text)
    except sim_dlms.SimError as e:
        raise argparse.ArgumentTypeError(getattr(e, "message", None) or str(e)) from None
    return text


def main(argv=None):
    """Run the command; returns its exit status (2 for a bad option or value: one line on stderr)."""
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as e:  # argparse: --help (0) or a usage error (2, already printed)
        return e.code
    try:
        return args.func(args)
    except UsageError as e:
        sys.stderr.write("optoread %s: %s\n" % (args.command, e))
        return 2
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
