"""Read a whole load profile through Session with a sink and report the live heap (unix port or CPython).

    micropython -X heapsize=4m host_tests/mp_session_heap.py PORT [hdlc|wrapper] [max_info]

Connects to the simulator served on loopback TCP (``serve_tcp``), reads
1.0.99.1.0.255 attribute 2 element by element and prints one JSON line:
``{"rows": N, "peak": bytes, "base": bytes, "first": [...], "last": [...]}`` where
``peak`` is the largest live heap (after gc.collect) seen in the sink minus ``base``,
the live heap just before the read. ``ERROR <class>: <message>`` and exit status 3 on failure.
"""

import gc
import json
import sys

HERE = __file__.rsplit("/", 1)[0] if "/" in __file__ else "."
sys.path.insert(0, HERE + "/../firmware")

from optoread.device.unixport import TcpTransport  # noqa: E402
from optoread.dlms.client.session import Session, Settings  # noqa: E402
from optoread.errors import OptoreadError  # noqa: E402

_EVERY = 16  # rows between heap samples


class _Tcp(TcpTransport):
    """unixport.TcpTransport whose readinto returns what has arrived: MicroPython's readinto on a
    blocking socket waits until the whole buffer is full (a lone 9-byte frame would hang)."""

    def __init__(self, host, port):
        TcpTransport.__init__(self, host, port)
        self._s.setblocking(False)

    def readinto(self, buf, timeout_ms):
        if not self._poll.poll(max(0, int(timeout_ms))):
            return 0
        try:
            n = self._s.readinto(buf)
        except OSError:  # EAGAIN: poll said readable but nothing came
            return 0
        if n is None:
            return 0
        if not n:
            raise OptoreadError("connection closed by the peer", "tcp")
        return n


def _plain(v):
    if isinstance(v, (bytes, bytearray)):
        return "".join("%02x" % b for b in v)
    if isinstance(v, (tuple, list)):
        return [_plain(x) for x in v]
    return v


def main():
    port = int(sys.argv[1])
    link = sys.argv[2] if len(sys.argv) > 2 else "hdlc"
    max_info = int(sys.argv[3]) if len(sys.argv) > 3 else None
    st = Settings(link=link, max_info=max_info, timeout_ms=5000, max_pdu=2048)
    t = _Tcp("127.0.0.1", port)
    state = {"n": 0, "peak": 0, "first": None, "last": None}

    def sink(row):
        n = state["n"] + 1
        state["n"] = n
        if n == 1:
            state["first"] = _plain(row)
        state["last"] = row
        if n % _EVERY == 0:
            gc.collect()
            a = gc.mem_alloc()
            if a > state["peak"]:
                state["peak"] = a

    try:
        with Session(st, t) as s:
            gc.collect()
            base = gc.mem_alloc()
            state["peak"] = base
            count = s.get(7, "1.0.99.1.0.255", 2, sink=sink)
    except OptoreadError as e:
        print("ERROR %s: %s" % (type(e).__name__, e))
        sys.exit(3)
    finally:
        t.close()
    print(json.dumps({"rows": count, "sunk": state["n"], "peak": state["peak"] - base, "base": base,
                      "first": state["first"], "last": _plain(state["last"])}))


main()
