"""Protocol cost of a full DLMS readout of the simulated meter: frames and bytes each way.

    python tools/bench_readout.py [--json]

A full readout = object list, every register (value + scaler_unit), the clock and the
2880-row block load profile (whole buffer), over HDLC at max-info 128 and at the largest size
both sides agree on, with the firmware's session on CPython against the in-process
simulator (virtual clock: the session time is the 9600-baud wire time plus the
simulator's turnaround, not the host's speed). Prints a table; no pass/fail.
"""

import json
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [os.path.join(ROOT, "firmware"), os.path.join(ROOT, "tools")]

from optoread.dlms.client.session import Session, Settings  # noqa: E402
from optoread.dlms.cosem import association as cosem_association  # noqa: E402
from optoread.dlms.cosem import base as cosem_clock  # noqa: E402
from optoread.dlms.cosem import profile as cosem_profile  # noqa: E402
from optoread.dlms.cosem import register as cosem_register  # noqa: E402
from optoread_tools import sim_dlms  # noqa: E402

PROFILE = b"\x01\x00\x63\x01\x00\xff"  # 1.0.99.1.0.255


def full_readout(max_info_meter, max_info_client, rows=2880):
    model = sim_dlms.MeterModel(rows=rows)
    server = sim_dlms.DlmsServer(model, max_info=max_info_meter, max_pdu=2048)
    t = sim_dlms.ServerTransport(server)
    st = Settings(max_info=max_info_client, timeout_ms=5000)
    regs = []
    counted = [0]
    with Session(st, t) as sess:
        def obj(o):
            if o[0] in (3, 4, 5):
                regs.append(o[2])

        objects = cosem_association.browse(sess, obj)
        cache = {}
        for i in range(0, len(regs), 8):
            cosem_register.read_registers(sess, [(3, r) for r in regs[i:i + 8]], cache)
        cosem_clock.Clock().read(sess)
        pg = cosem_profile.ProfileGeneric(PROFILE)

        def sink(row):
            counted[0] += 1

        pg.read_all(sess, sink)
        neg = sess.negotiated
        stats = sess.stats
    wire_bytes = stats.bytes_tx + stats.bytes_rx
    return {
        "max_info_client": max_info_client, "max_info_meter": max_info_meter,
        "negotiated_max_info": [neg.max_info_tx, neg.max_info_rx],
        "objects": objects, "registers": len(regs), "rows": counted[0],
        "frames_tx": stats.frames_tx, "frames_rx": stats.frames_rx,
        "bytes_tx": stats.bytes_tx, "bytes_rx": stats.bytes_rx,
        "wire_floor_s": round(wire_bytes * 10 / 9600.0, 1),
        "session_s_virtual": round(t.now / 1000.0, 1),
    }


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    results = [full_readout(128, 128), full_readout(2030, None)]
    if "--json" in argv:
        print(json.dumps(results, indent=1))
        return 0
    print("Full readout of the simulated IS 15959 meter (object list, %d registers, clock, %d-row profile)"
          % (results[0]["registers"], results[0]["rows"]))
    print("%-12s %-10s %8s %8s %10s %10s %10s %10s" % ("max-info", "agreed", "frames>", "frames<",
                                                       "bytes>", "bytes<", "wire s", "session s"))
    for r in results:
        print("%-12s %-10s %8d %8d %10d %10d %10.1f %10.1f" % (
            r["max_info_client"] or "largest", "/".join(str(x) for x in r["negotiated_max_info"]),
            r["frames_tx"], r["frames_rx"], r["bytes_tx"], r["bytes_rx"], r["wire_floor_s"],
            r["session_s_virtual"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
