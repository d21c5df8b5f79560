"""The peer's cost for the same full readout: gurux-dlms's client against the same simulator.

    python tools/bench_gurux.py [--json]

Same readout as tools/bench_readout.py (object list, value + scaler_unit of every register,
the clock, the 2880-row block-load profile as one whole-buffer GET), by gurux-dlms's
``GXDLMSClient`` (CPython only), through the same in-process ``sim_dlms.ServerTransport``:
one virtual clock at 9600 baud with the simulator's 20 ms turnaround, so the session time
comes from the same model as optoread's. Registers go as GET-with-list (``readList``) when
the meter grants multiple references, as optoread does. Frames and bytes are counted on
the transport (frames by parsing the bytes with the firmware's FrameReceiver). Run at max-info 128 and at the
largest size gurux asks for (2030, the HDLC maximum it accepts). Prints a table.
"""

import json
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [os.path.join(ROOT, "firmware"), os.path.join(ROOT, "tools")]

from optoread.dlms.hdlc import frame as hdlc_rx  # noqa: E402
from optoread_tools import sim_dlms  # noqa: E402

PROFILE = "1.0.99.1.0.255"
REG_BATCH = 8  # registers per with-list GET, as tools/bench_readout.py


class CountingTransport(sim_dlms.ServerTransport):
    """ServerTransport that also counts the HDLC frames each way (parsed, not guessed)."""

    def __init__(self, server, **kw):
        sim_dlms.ServerTransport.__init__(self, server, **kw)
        self.frames_tx = 0
        self.frames_rx = 0
        self._ftx = hdlc_rx.FrameReceiver(0x7FF)
        self._frx = hdlc_rx.FrameReceiver(0x7FF)

    @staticmethod
    def _count(rx, data):
        n = 0
        off = 0
        while True:
            off = rx.feed(data, off)
            if not rx.ready:
                return n
            n += 1

    def write(self, data):
        self.frames_tx += self._count(self._ftx, bytes(data))
        return sim_dlms.ServerTransport.write(self, data)

    def readinto(self, buf, timeout_ms):
        n = sim_dlms.ServerTransport.readinto(self, buf, timeout_ms)
        if n:
            self.frames_rx += self._count(self._frx, bytes(buf[:n]))
        return n


class GuruxLink:
    """gurux's client on a ServerTransport: request bytes out, reply frames in, virtual time."""

    def __init__(self, transport, client):
        import gurux_dlms as g

        self.g = g
        self.t = transport
        self.c = client
        self._buf = bytearray(4096)

    def packet(self, data, reply):
        """Send one request (bytes) and feed reply bytes to gurux until it has a whole frame."""
        g = self.g
        self.t.write(bytes(data))
        rx = g.GXByteBuffer()
        notify = g.GXReplyData()
        while True:
            n = self.t.readinto(self._buf, 5000)
            if n == 0:
                raise RuntimeError("simulator did not answer")
            rx.set(bytes(self._buf[:n]))
            if self.c.getData(rx, reply, notify):
                return

    def block(self, data, reply):
        """One request (or list of requests) with RR/next-block until the reply is complete."""
        from gurux_dlms.enums import RequestTypes

        if data is None:
            return
        for d in _flat(data):
            reply.clear()
            self.packet(d, reply)
            while reply.isMoreData():
                nxt = None if reply.isStreaming() else self.c.receiverReady(reply)
                if nxt is None and reply.moreData == RequestTypes.NONE:
                    break
                self.packet(nxt, reply)

    @classmethod
    def associate(cls, transport, max_info):
        """A public-client (16 -> 1, no authentication) gurux client with HDLC max-info
        ``max_info`` both ways, linked (SNRM/UA) and associated (AARQ/AARE) over ``transport``."""
        import gurux_dlms as g
        from gurux_dlms.enums import Authentication, InterfaceType

        c = g.GXDLMSClient(True, 16, 1, Authentication.NONE, None, InterfaceType.HDLC)
        c.hdlcSettings.maxInfoTX = max_info
        c.hdlcSettings.maxInfoRX = max_info
        link = cls(transport, c)
        reply = g.GXReplyData()
        link.packet(c.snrmRequest(), reply)
        c.parseUAResponse(reply.data)
        reply.clear()
        link.block(c.aarqRequest(), reply)
        c.parseAareResponse(reply.data)
        return c, link


def _flat(data):
    # gurux returns one request, a list of them, or (readList) a list of lists.
    if isinstance(data, list):
        out = []
        for d in data:
            out += _flat(d)
        return out
    return [data]


def full_readout(max_info, rows=2880):
    """One full readout by gurux; returns the same keys as bench_readout.full_readout."""
    import gurux_dlms as g
    from gurux_dlms.enums import Conformance, ObjectType
    from gurux_dlms.objects import GXDLMSClock, GXDLMSProfileGeneric

    model = sim_dlms.MeterModel(rows=rows)
    server = sim_dlms.DlmsServer(model, max_info=max_info, max_pdu=2048)
    t = CountingTransport(server)
    c, link = GuruxLink.associate(t, max_info)

    reply = g.GXReplyData()
    link.block(c.getObjectsRequest(), reply)
    objects = c.parseObjects(reply.data, True)
    regs = [o for o in objects if o.objectType in (ObjectType.REGISTER, ObjectType.EXTENDED_REGISTER,
                                                   ObjectType.DEMAND_REGISTER)]
    multi = bool(c.negotiatedConformance & Conformance.MULTIPLE_REFERENCES)
    for i in range(0, len(regs), REG_BATCH):
        batch = regs[i:i + REG_BATCH]
        # scaler_unit first (attribute 3; 4 for the demand register), then the value.
        items = []
        for o in batch:
            su = 4 if o.objectType == ObjectType.DEMAND_REGISTER else 3
            items += [(o, su), (o, 2)]
        if multi:
            # gurux splits the list into several requests when the PDU is small; each
            # reply holds the values of its own part.
            values = []
            for msg in c.readList(items):
                reply = g.GXReplyData()
                link.block(msg, reply)
                values += list(reply.value)
            c.updateValues(items, values)
        else:
            for o, a in items:
                reply = g.GXReplyData()
                link.block(c.read(o, a), reply)
                c.updateValue(o, a, reply.value)
    clk = GXDLMSClock("0.0.1.0.0.255")
    reply = g.GXReplyData()
    link.block(c.read(clk, 2), reply)
    c.updateValue(clk, 2, reply.value)
    pg = GXDLMSProfileGeneric(PROFILE)
    reply = g.GXReplyData()
    link.block(c.read(pg, 3), reply)
    c.updateValue(pg, 3, reply.value)
    reply = g.GXReplyData()
    link.block(c.read(pg, 2), reply)
    c.updateValue(pg, 2, reply.value)
    got_rows = len(pg.buffer)
    reply = g.GXReplyData()
    link.block(c.releaseRequest(), reply)
    reply.clear()
    link.packet(c.disconnectRequest(), reply)

    st = server.stats
    wire_bytes = t.written + t.received
    return {
        "max_info_client": max_info, "max_info_meter": max_info,
        "negotiated_max_info": [c.hdlcSettings.maxInfoTX, c.hdlcSettings.maxInfoRX],
        "objects": len(objects), "registers": len(regs), "rows": got_rows, "with_list": multi,
        "frames_tx": t.frames_tx, "frames_rx": t.frames_rx, "server_stats": dict(st),
        "bytes_tx": t.written, "bytes_rx": t.received,
        "wire_floor_s": round(wire_bytes * 10 / 9600.0, 1),
        "session_s_virtual": round(t.now / 1000.0, 1),
    }


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    try:
        import gurux_dlms  # noqa: F401
    except ImportError:
        print("gurux-dlms is not installed: no peer figures")
        return 0
    results = [full_readout(128), full_readout(2030)]
    if "--json" in argv:
        print(json.dumps(results, indent=1))
        return 0
    r0 = results[0]
    print("gurux-dlms %s client, same readout (object list, %d registers%s, clock, %d-row profile)"
          % (_version(), r0["registers"], " by with-list" if r0["with_list"] else "", r0["rows"]))
    print("%-12s %-10s %8s %8s %10s %10s %10s %10s" % ("max-info", "agreed", "frames>", "frames<",
                                                       "bytes>", "bytes<", "wire s", "session s"))
    for r in results:
        print("%-12s %-10s %8d %8d %10d %10d %10.1f %10.1f" % (
            r["max_info_client"], "/".join(str(x) for x in r["negotiated_max_info"]),
            r["frames_tx"], r["frames_rx"], r["bytes_tx"], r["bytes_rx"], r["wire_floor_s"],
            r["session_s_virtual"]))
    return 0


def _version():
    try:
        from importlib.metadata import version

        return version("gurux-dlms")
    except Exception:  # noqa: BLE001 - metadata is cosmetic here
        return "?"


if __name__ == "__main__":
    sys.exit(main())
