"""``optoread read`` for DLMS/COSEM meters: the firmware's session and COSEM modules on CPython.

Prints one JSON object per line with ``--json`` (``{"obis", "class", "attr", "value", "unit"}``
per value, ``{"profile", "row"}`` per profile row, ``{"object"...}`` per browsed object),
else aligned text. Progress goes to stderr.
"""

import binascii
import json
import sys
import time

from optoread import obis as obislib
from optoread.dlms.axdr import decode as axdr
from optoread.dlms.axdr import types as axdr_types
from optoread.dlms.cosem import association as cosem_association
from optoread.dlms.cosem import base as cosem
from optoread.dlms.cosem import profile as cosem_profile
from optoread.dlms.cosem import register as cosem_register
from optoread.errors import DataAccessError, OptoreadError


def jsonable(v):
    """A decoded A-XDR value as JSON: text for printable octet-strings, hex otherwise."""
    if isinstance(v, (axdr.DateTime, axdr_types.Date, axdr_types.Time)):
        return v.iso()
    if isinstance(v, (bytes, bytearray)):
        if v and all(0x20 <= b < 0x7F for b in v):
            return bytes(v).decode("ascii")
        return "0x" + binascii.hexlify(bytes(v)).decode()
    if isinstance(v, (list, tuple)):
        return [jsonable(x) for x in v]
    if isinstance(v, (int, float, str, bool)) or v is None:
        return v
    return str(v)


def _usage(text):
    from optoread_tools.cli import UsageError

    return UsageError(text)


def _unhex(text, what):
    if text is None:
        return None
    try:
        return binascii.unhexlify(text.replace(" ", ""))
    except (binascii.Error, ValueError):
        raise _usage("%s must be hex" % what) from None


def parse_spec(spec):
    """``[CLASS/]OBIS[:ATTR]`` -> (class_id or None, obis6, attr or None)."""
    cls = attr = None
    if "/" in spec:
        c, spec = spec.split("/", 1)
        cls = int(c)
    if ":" in spec and spec.rsplit(":", 1)[1].isdigit() and "-" not in spec.rsplit(":", 1)[1]:
        spec, a = spec.rsplit(":", 1)
        attr = int(a)
    return cls, obislib.parse(spec), attr


def _iso_tuple(text):
    """"2026-01-02T03:04[:05]" (or with a space) -> (y, m, d, h, mi, s); ValueError if not a real
    date and time. The meter's local time: a time zone (``Z``, ``+01:00``) is refused, since the
    meter compares with its own local clock and a meter that takes no deviation would misread it."""
    import datetime

    t = text.strip().replace("T", " ", 1)
    if t.endswith(("Z", "z")) or "+" in t or t.count("-") > 2:
        raise ValueError("give the meter's local time without a time zone, not %r" % (text,))
    date, _, clock = t.partition(" ")
    fields = date.split("-")
    parts = clock.split(":") if clock else []
    if len(fields) != 3 or len(parts) > 3 or not all(x.isdigit() for x in fields + parts):
        raise ValueError("expected YYYY-MM-DD[THH:MM[:SS]], not %r" % (text,))
    y, m, d = (int(x) for x in fields)
    hms = [int(x) for x in parts] + [0] * (3 - len(parts))
    datetime.datetime(y, m, d, *hms)  # ValueError for 2026-02-30, 25:00 ...
    return (y, m, d, hms[0], hms[1], hms[2])


def _iso_arg(text):
    import argparse

    try:
        return _iso_tuple(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _arg_type(fn, what):
    import argparse

    def conv(text):
        try:
            fn(text)
        except (ValueError, OptoreadError) as e:
            msg = getattr(e, "message", None) or str(e)
            if repr(text) not in msg:
                msg = "not %s: %r (%s)" % (what, text, msg)
            raise argparse.ArgumentTypeError(msg) from None
        return text

    return conv


def _server(text):
    logical, sep, physical = text.partition("/")
    for part in (logical,) + ((physical,) if sep else ()):
        if not part.isdigit() or not 0 <= int(part) <= 0x3FFF:
            raise ValueError("expected LOGICAL[/PHYSICAL] with numbers 0..16383, not %r" % (text,))


def _system_title(text):
    if len(text.encode()) == 8:
        return
    if len(text) == 16:
        try:
            bytes.fromhex(text)
            return
        except ValueError:
            pass
    raise ValueError("8 characters or 16 hex digits, not %r" % (text,))


def _obis(text):
    obislib.parse(text)


def add_dlms_arguments(sp):
    """``read``'s DLMS/COSEM options and the secrets (also the IEC password)."""
    from optoread_tools.cli import hex_key, int_range

    dl = sp.add_argument_group("DLMS/COSEM")
    dl.add_argument("--wrapper", action="store_true", help="IEC 62056-47 wrapper instead of HDLC (TCP)")
    how = dl.add_mutually_exclusive_group()
    how.add_argument("--mode-e", action="store_true", help="IEC 62056-21 sign-on, then HDLC (mode E)")
    how.add_argument("--direct", action="store_true", help="HDLC at 9600 8N1 without sign-on (default)")
    dl.add_argument("--client", type=int_range(1, 127, "a client address"), default=16,
                    help="client address 1..127 (16 public, 32, 48)")
    dl.add_argument("--server", default="1", metavar="LOGICAL[/PHYSICAL]",
                    type=_arg_type(_server, "a server address"), help="server address (default 1)")
    dl.add_argument("--serial-number", type=int_range(0, None, "a serial number"),
                    help="derive the physical address from the serial number")
    dl.add_argument("--address-size", type=int, choices=(1, 2, 4), help="server address bytes")
    dl.add_argument("--auth", choices=("none", "low", "hls"), default="none")
    dl.add_argument("--system-title", default="OPTOREAD", type=_arg_type(_system_title, "a system title"),
                    help="client system title (8 chars or 16 hex)")
    dl.add_argument("--sn", action="store_true", help="short-name referencing")
    dl.add_argument("--max-info", type=int_range(32, 2030, "a frame size"),
                    help="max info field to ask for, 32..2030 (default: the largest)")
    dl.add_argument("--obis", action="append", default=[], metavar="[CLASS/]OBIS[:ATTR]",
                    type=_arg_type(parse_spec, "an object"),
                    help="read this object (repeatable); registers come with scaler and unit")
    dl.add_argument("--profile", metavar="OBIS", type=_arg_type(_obis, "an OBIS code"),
                    help="read a load profile")
    dl.add_argument("--from", dest="from_", metavar="ISO", type=_iso_arg,
                    help="profile range start, the meter's local time: YYYY-MM-DD[THH:MM[:SS]]")
    dl.add_argument("--to", metavar="ISO", type=_iso_arg, help="profile range end (as --from)")
    dl.add_argument("--last-entries", type=int_range(1, None, "a number of entries"), metavar="N",
                    help="profile: the last N entries (N >= 1)")
    dl.add_argument("--no-deviation", action="store_true", help="range without deviation (some meters)")
    dl.add_argument("--browse", action="store_true", help="list the association's object list")
    dl.add_argument("--set-clock", action="store_true", help="set the meter clock to this computer's time")
    sec = sp.add_argument_group(
        "secrets", "Each of --password, --key and --auth-key: on the command line (visible to other "
        "users of this computer), \"-\" to be asked for it, from a file (--password-file, --key-file, "
        "--auth-key-file: its first line), or from the environment (%s)."
        % ", ".join(name for name, _opt in SECRET_ENV.values()))
    pw = sec.add_mutually_exclusive_group()
    pw.add_argument("--password", help="programming-mode password (P1), or the DLMS LLS password")
    pw.add_argument("--password-file", metavar="FILE", type=_secret_file, help="read the password from FILE")
    k = sec.add_mutually_exclusive_group()
    k.add_argument("--key", type=hex_key, help="HLS / ciphering: encryption key (32 hex digits)")
    k.add_argument("--key-file", metavar="FILE", type=_secret_file, help="read the encryption key from FILE")
    ak = sec.add_mutually_exclusive_group()
    ak.add_argument("--auth-key", type=hex_key, help="authentication key (32 hex digits)")
    ak.add_argument("--auth-key-file", metavar="FILE", type=_secret_file,
                    help="read the authentication key from FILE")


# dest -> (environment variable, option)
SECRET_ENV = {"password": ("OPTOREAD_PASSWORD", "--password"), "key": ("OPTOREAD_KEY", "--key"),
              "auth_key": ("OPTOREAD_AUTH_KEY", "--auth-key")}


class _Secret(str):
    """A secret read from a file: the text, and where it came from (for error messages)."""

    source = ""


def _secret_file(path):
    import argparse

    try:
        with open(path, encoding="utf-8") as f:
            line = f.readline()
    except (OSError, UnicodeError) as e:
        raise argparse.ArgumentTypeError("cannot read %s: %s" % (path, getattr(e, "strerror", None) or
                                                                 type(e).__name__)) from None
    text = _Secret(line.rstrip("\r\n"))
    text.source = path
    if not text:
        raise argparse.ArgumentTypeError("%s is empty" % path)
    return text


def resolve_secrets(args, environ=None):
    """Fill ``args.password``, ``args.key``, ``args.auth_key`` from "-" (a prompt), their ``*_file``
    options or the environment (in that order after the command line); keys are checked as hex.
    Nothing here ever prints a secret."""
    import os

    from optoread_tools.cli import hex_key

    env = os.environ if environ is None else environ
    for dest, (var, opt) in SECRET_ENV.items():
        if dest != "password" and getattr(args, "iec21", False):
            continue  # IEC 62056-21 has no keys: a key in the environment is not for it
        value = getattr(args, dest, None)
        where = opt
        from_file = getattr(args, dest + "_file", None)
        if value is None and from_file is not None:
            value, where = from_file, "%s-file %s" % (opt, from_file.source)
        if value is None and env.get(var):
            value, where = env[var], var
        if value == "-":
            import getpass

            try:
                value = getpass.getpass("%s: " % {"password": "Password", "key": "Encryption key (hex)",
                                                   "auth_key": "Authentication key (hex)"}[dest])
            except EOFError:
                raise _usage("%s -: nothing was typed (end of input)" % opt) from None
        if value is not None and dest != "password":
            import argparse

            try:
                hex_key(value)
            except argparse.ArgumentTypeError as e:
                raise _usage("%s: %s" % (where, e)) from None
        setattr(args, dest, None if value is None else str(value))


def check_args(args):
    """``read``: what argparse cannot check alone (which options go together); UsageError if not."""
    if args.iec21:
        if not args.port:
            raise _usage("--iec21 needs --port")
        dlms_only = [o for o, v in (("--obis", args.obis), ("--profile", args.profile),
                                    ("--browse", args.browse), ("--set-clock", args.set_clock),
                                    ("--tcp", args.tcp)) if v]
        if dlms_only:
            raise _usage("%s is for DLMS/COSEM meters, not with --iec21" % dlms_only[0])
        return
    if args.register:
        raise _usage("--register is for IEC 62056-21 programming mode (--iec21)")
    if not (args.obis or args.profile or args.browse or args.set_clock):
        raise _usage("nothing to read: give --obis, --profile, --browse or --set-clock")
    ranged = [o for o, v in (("--from", args.from_), ("--to", args.to), ("--last-entries", args.last_entries))
              if v is not None]
    if ranged and not args.profile:
        raise _usage("%s selects profile rows: it needs --profile" % ranged[0])
    if args.last_entries is not None and (args.from_ or args.to):
        raise _usage("--last-entries and --from/--to exclude each other")
    if (args.from_ is None) != (args.to is None):
        raise _usage("--from needs --to (a profile range has both ends)" if args.to is None
                     else "--to needs --from (a profile range has both ends)")
    if args.from_ is not None and args.from_ > args.to:
        raise _usage("--from %04d-%02d-%02dT%02d:%02d:%02d is after --to %04d-%02d-%02dT%02d:%02d:%02d"
                     % (args.from_ + args.to))
    import os

    need_keys = args.auth == "hls" or any(getattr(args, d) or getattr(args, d + "_file") or os.environ.get(v)
                                          for d, (v, _o) in SECRET_ENV.items() if d != "password")
    if need_keys:
        missing = [opt for dest, (var, opt) in SECRET_ENV.items() if dest != "password"
                   and not (getattr(args, dest) or getattr(args, dest + "_file") or os.environ.get(var))]
        if missing:
            raise _usage("%s needs %s (or %s-file, or %s)"
                         % ("--auth hls" if args.auth == "hls" else "ciphering", " and ".join(missing),
                            missing[0], SECRET_ENV["key" if missing[0] == "--key" else "auth_key"][0]))


def settings_from_args(args):
    from optoread.dlms.client.session import Settings

    logical, _, physical = args.server.partition("/")
    phys = int(physical) if physical else None
    if args.serial_number is not None:
        from optoread.dlms.hdlc import frame as hdlc

        phys = hdlc.server_address_from_serial(args.serial_number)
    title = args.system_title.encode()
    if len(title) == 16:
        title = _unhex(args.system_title, "--system-title")
    kw = dict(client=args.client, server=int(logical), physical=phys, address_size=args.address_size,
              auth=args.auth, password=(args.password or "").encode(), system_title=title,
              ek=_unhex(args.key, "--key"), ak=_unhex(args.auth_key, "--auth-key"),
              ciphered=bool(args.key), ln=not args.sn, link="wrapper" if args.wrapper else "hdlc",
              mode_e=bool(args.mode_e), max_info=args.max_info)
    return Settings(**kw)


def open_transport(args):
    from optoread_tools.transports import SerialTransport, TcpTransport, parse_hostport

    if args.tcp:
        host, port = parse_hostport(args.tcp, default_host="127.0.0.1")
        return TcpTransport(host, port)
    if args.mode_e:
        return SerialTransport(args.port, baud=300, bits=7, parity="E")
    return SerialTransport(args.port, baud=9600, bits=8, parity="N")


class Printer:
    def __init__(self, as_json, out=None):
        self.json = as_json
        self.out = sys.stdout if out is None else out
        self.count = 0

    def emit(self, obj, text):
        self.count += 1
        if self.json:
            self.out.write(json.dumps(obj) + "\n")
        else:
            self.out.write(text + "\n")
        self.out.flush()


def _read_obis(sess, spec, pr, cache):
    cls, code, attr = parse_spec(spec)
    name = obislib.format(code)
    if code == cosem.CLOCK_OBIS and cls in (None, cosem.CLASS_CLOCK) and attr in (None, 2):
        dt = cosem.Clock().read(sess)
        pr.emit({"obis": name, "class": cosem.CLASS_CLOCK, "attr": 2, "value": dt.iso(), "unit": None},
                "%-18s %s" % (name, dt.iso()))
        return
    registers = (cosem.CLASS_REGISTER, cosem.CLASS_EXTENDED_REGISTER, cosem.CLASS_DEMAND_REGISTER)
    if attr in (None, 2) and cls in (None,) + registers:
        # A register of any of the three classes comes with its scaler and unit (and a class 4/5
        # one with its capture time); without a class given, 3, 4 and 5 are tried, then data.
        v = None
        for c in (cls,) if cls else registers:
            try:
                v = cosem_register.read_register(sess, code, class_id=c, cache=cache)
                cls, attr = c, 2
                break
            except DataAccessError:
                if cls:
                    raise
        if v is None:
            v = cosem_register.read_data(sess, code)
            cls, attr = cosem.CLASS_DATA, 2
        if isinstance(v, cosem.Value):
            t = v.capture_time.iso() if isinstance(v.capture_time, axdr.DateTime) else None
            unit = v.unit if v.unit_code is not None else "unknown"
            pr.emit({"obis": name, "class": cls, "attr": attr, "value": jsonable(v.scaled), "unit": unit,
                     "raw": jsonable(v.raw), "scaler": v.scaler, "unit_code": v.unit_code, "time": t},
                    "%-18s %s %s%s" % (name, v.text, unit, "  at " + t if t else ""))
            return
    else:
        v = cosem.get_attribute(sess, cls or cosem.CLASS_DATA, code, attr or 2)
    if isinstance(v, cosem.Value):
        v = v.raw
    pr.emit({"obis": name, "class": cls, "attr": attr or 2, "value": jsonable(v), "unit": None},
            "%-18s %s" % (name, jsonable(v)))


def _scaled_cell(c, su):
    """A profile cell for a person: a number with its column's scaler and unit applied (text with
    the unit symbol), a number without either "N (unit unknown)", anything else as JSON."""
    if isinstance(c, bool) or not isinstance(c, (int, float)):
        return jsonable(c)
    if su is None:
        return "%s (unit unknown)" % c
    from optoread import units

    sym = units.unit_name(su[1]) if su[1] is not None else None
    return "%s%s" % (units.scaled_text(c, su[0]), " " + sym if sym else "")


def _read_profile(sess, args, pr):
    code = obislib.parse(args.profile)
    name = obislib.format(code)
    pg = cosem_profile.ProfileGeneric(code)
    try:  # each column's scaler and unit, read once (None: the meter gives none: unit unknown)
        scalers = pg.column_scalers(sess)
    except OptoreadError:
        scalers = None
    started = time.monotonic()

    def sink(row):
        scaled = [_scaled_cell(c, scalers[i] if scalers and i < len(scalers) else None)
                  for i, c in enumerate(row)]
        pr.emit({"profile": name, "row": jsonable(row), "scaled": scaled},
                "  ".join(str(c) for c in scaled))
        if pr.count % 500 == 0:
            rate = pr.count / max(0.001, time.monotonic() - started)
            sys.stderr.write("optoread: %d rows (%.0f rows/s)\n" % (pr.count, rate))

    if args.from_ or args.to:
        n = pg.read_range(sess, args.from_, args.to, sink, no_deviation=True if args.no_deviation else "auto")
    elif args.last_entries:
        used = pg.entries_in_use(sess)
        first = max(1, used - args.last_entries + 1)
        n = pg.read_entries(sess, first, used, sink) if used else 0
    else:
        n = pg.read_all(sess, sink)
    sys.stderr.write("optoread: %s: %d rows\n" % (name, n))


def run(args):
    from optoread.dlms.client.session import Session

    progress = None if args.quiet else (lambda text: sys.stderr.write("optoread: %s\n" % text))
    st = settings_from_args(args)
    pr = Printer(args.json)
    transport = open_transport(args)
    try:
        with Session(st, transport, progress=progress) as sess:
            if args.set_clock:
                lt = time.localtime()
                dev = -(time.altzone if lt.tm_isdst > 0 else time.timezone) // 60
                dt = axdr.DateTime(lt.tm_year, lt.tm_mon, lt.tm_mday, lt.tm_hour, lt.tm_min, lt.tm_sec,
                                   0, -dev, 0x80 if lt.tm_isdst > 0 else 0)
                cosem.Clock().set(sess, dt)
                pr.emit({"obis": "0.0.1.0.0.255", "class": 8, "attr": 2, "value": dt.iso(), "unit": None,
                         "set": True}, "clock set to %s" % dt.iso())
            if args.browse:
                def obj(o):
                    cls, ver, ln, _ = o
                    pr.emit({"object": obislib.format(ln), "class": cls, "version": ver},
                            "%-18s class %d v%d" % (obislib.format(ln), cls, ver))

                cosem_association.browse(sess, obj, ln=not args.sn)
            cache = {}
            for spec in args.obis:
                _read_obis(sess, spec, pr, cache)
            if args.profile:
                _read_profile(sess, args, pr)
    except OptoreadError as e:
        from optoread_tools.cli import report_error

        return report_error(e)
    finally:
        transport.close()
    return 0
