"""A full DLMS readout on the MicroPython unix port over loopback TCP (run by test_session_unix.py).

    micropython host_tests/mp_full_readout.py PORT key=value ...

Session settings as key=value (ints parsed; hex: values for ek/ak/password prefixed "hex:").
Reads the object list, every register (value + scaler_unit), the clock and the whole block
load profile (rows streamed to a counting sink), then prints one JSON line with what it read.
"""

import json
import sys

HERE = __file__.rsplit("/", 1)[0] if "/" in __file__ else "."
sys.path.insert(0, HERE + "/../firmware")

import binascii  # noqa: E402

from optoread.device.unixport import TcpTransport  # noqa: E402
from optoread.dlms.client.session import Session, Settings  # noqa: E402
from optoread.dlms.cosem import association as cosem_association  # noqa: E402
from optoread.dlms.cosem import base as cosem_clock  # noqa: E402
from optoread.dlms.cosem import profile as cosem_profile  # noqa: E402
from optoread.dlms.cosem import register as cosem_register  # noqa: E402
from optoread.errors import OptoreadError  # noqa: E402


def _value(v):
    if v.startswith("hex:"):
        return binascii.unhexlify(v[4:])
    if v in ("True", "False"):
        return v == "True"
    try:
        return int(v)
    except ValueError:
        return v


def main():
    port = int(sys.argv[1])
    kw = {}
    for a in sys.argv[2:]:
        k, v = a.split("=", 1)
        kw[k] = _value(v)
    t = TcpTransport("127.0.0.1", port)
    regs = []
    out = {"registers": {}, "rows": 0}
    try:
        with Session(Settings(**kw), t) as sess:
            def obj(o):
                if o[0] in (3, 4, 5):
                    regs.append((o[0], o[2]))

            out["objects"] = cosem_association.browse(sess, obj, ln=kw.get("ln", True))
            cache = {}
            for cls, r in regs:
                v = cosem_register.read_register(sess, r, class_id=cls, cache=cache)
                out["registers"]["%d.%d.%d.%d.%d.%d" % tuple(r)] = [v.raw, v.scaler, v.unit_code]
            out["clock"] = cosem_clock.Clock().read(sess).iso()
            first = []

            def sink(row):
                if not first:
                    first.append(row)
                out["rows"] += 1

            pg = cosem_profile.ProfileGeneric(b"\x01\x00\x63\x01\x00\xff")
            pg.read_all(sess, sink)
            out["first_row"] = [c.iso() if hasattr(c, "iso") else c for c in first[0]]
            got = []
            keep = lambda row: got.append([c.iso() if hasattr(c, "iso") else c for c in row])  # noqa: E731
            out["by_range"] = pg.read_range(sess, (2026, 1, 2, 0, 0, 0), (2026, 1, 2, 23, 45, 0), keep,
                                            no_deviation="auto")
            out["range_last"] = got[-1] if got else None
            del got[:]
            out["by_entry"] = pg.read_entries(sess, 101, 200, keep)
            out["entry_first"] = got[0] if got else None
    except OptoreadError as e:
        print("ERROR %s: %s" % (type(e).__name__, e))
        sys.exit(3)
    finally:
        t.close()
    print(json.dumps(out))


main()
