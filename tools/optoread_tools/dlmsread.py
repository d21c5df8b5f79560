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


def _unhex(text, what):
    if text is None:
        return None
    try:
        return binascii.unhexlify(text.replace(" ", ""))
    except (binascii.Error, ValueError):
        raise SystemExit("optoread read: %s must be hex" % what) from None


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
    """"2026-01-02T03:04[:05]" (or with a space) -> (y, m, d, h, mi, s)."""
    t = text.replace("T", " ").strip()
    date, _, clock = t.partition(" ")
    y, m, d = (int(x) for x in date.split("-"))
    parts = [int(x) for x in clock.split(":")] if clock else []
    parts += [0] * (3 - len(parts))
    return (y, m, d, parts[0], parts[1], parts[2])


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
    from optoread_tools.transports import SerialTransport, TcpTransport

    if args.tcp:
        host, _, port = args.tcp.rpartition(":")
        return TcpTransport(host or "127.0.0.1", int(port))
    if args.mode_e:
        return SerialTransport(args.port, baud=300, bits=7, parity="E")
    return SerialTransport(args.port, baud=9600, bits=8, parity="N")


class Printer:
    def __init__(self, as_json, out=sys.stdout):
        self.json = as_json
        self.out = out
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
    if cls is None and attr is None:
        try:
            v = cosem_register.read_register(sess, code, cache=cache)
            cls, attr = cosem.CLASS_REGISTER, 2
        except DataAccessError:
            v = cosem_register.read_data(sess, code)
            cls, attr = cosem.CLASS_DATA, 2
        if isinstance(v, cosem.Value):
            pr.emit({"obis": name, "class": cls, "attr": attr, "value": jsonable(v.scaled), "unit": v.unit,
                     "raw": jsonable(v.raw), "scaler": v.scaler},
                    "%-18s %s %s" % (name, v.text, v.unit or ""))
            return
    else:
        v = cosem.get_attribute(sess, cls or cosem.CLASS_DATA, code, attr or 2)
    if isinstance(v, cosem.Value):
        v = v.raw
    pr.emit({"obis": name, "class": cls, "attr": attr or 2, "value": jsonable(v), "unit": None},
            "%-18s %s" % (name, jsonable(v)))


def _read_profile(sess, args, pr):
    code = obislib.parse(args.profile)
    name = obislib.format(code)
    pg = cosem_profile.ProfileGeneric(code)
    started = time.monotonic()

    def sink(row):
        pr.emit({"profile": name, "row": jsonable(row)}, "  ".join(str(jsonable(c)) for c in row))
        if pr.count % 500 == 0:
            rate = pr.count / max(0.001, time.monotonic() - started)
            sys.stderr.write("optoread: %d rows (%.0f rows/s)\n" % (pr.count, rate))

    if args.from_ or args.to:
        if not (args.from_ and args.to):
            raise SystemExit("optoread read: --profile needs both --from and --to (or --last-entries)")
        n = pg.read_range(sess, _iso_tuple(args.from_), _iso_tuple(args.to), sink,
                          no_deviation=True if args.no_deviation else "auto")
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
