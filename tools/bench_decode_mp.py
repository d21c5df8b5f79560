"""optoread's decode of recorded profile responses; the same file runs on CPython and MicroPython.

    micropython tools/bench_decode_mp.py FRAMES_FILE [REPEAT] [--load-only]

FRAMES_FILE holds the meter's HDLC frames of one 2880-row profile GET, back to back (written
by tools/bench_decode.py). One decode = the firmware's receive path without the link state
machine: ``hdlc.FrameReceiver`` (length-driven framing, HCS/FCS) -> ``hdlc.Reassembler``
(segmented I frames) -> LLC -> ``xdlms_get.parse_get_response`` (datablocks) ->
``axdr.ArrayStream`` (rows, one at a time, to a counting sink). Prints
``rows=N repeat=R us=T`` (T for all R decodes). ``--load-only`` reads the file and imports
the modules but decodes nothing: the baseline subtracted from instruction counts.
"""

import sys

try:
    from time import ticks_diff, ticks_us
except ImportError:  # CPython
    from time import perf_counter

    def ticks_us():
        return int(perf_counter() * 1000000)

    def ticks_diff(a, b):
        return a - b

if "firmware" not in sys.path:
    sys.path.insert(0, "firmware")

from optoread.dlms.axdr import decode as axdr  # noqa: E402
from optoread.dlms.hdlc import frame as hdlc
from optoread.dlms.xdlms import apdu as xdlms
from optoread.dlms.xdlms import get as xdlms_get

MAX_INFO = 2030  # the receiver is sized for the largest frame, whatever was recorded


def decode(data, reasm_cap=4096, element_max=512):
    """Decode the frames in ``data``; return the number of profile rows."""
    return decode_chunks((data,), reasm_cap, element_max)


def decode_file(f, chunk=2048, reasm_cap=4096, element_max=512):
    """Decode the frames read from the open file ``f`` ``chunk`` bytes at a time (a board's heap
    cannot hold the whole recording); return the number of profile rows."""
    buf = bytearray(chunk)

    def chunks():
        while True:
            n = f.readinto(buf)
            if not n:
                return
            yield memoryview(buf)[:n]

    return decode_chunks(chunks(), reasm_cap, element_max)


def decode_chunks(chunks, reasm_cap=4096, element_max=512):
    """Decode the frames arriving in the byte chunks of ``chunks``; return the number of rows."""
    rows = [0]

    def sink(row):
        rows[0] += 1

    rx = hdlc.FrameReceiver(hdlc.frame_capacity(MAX_INFO))
    ra = hdlc.Reassembler(reasm_cap)
    stream = axdr.ArrayStream(element_max)
    expect = 1
    done = False
    for data in chunks:
        mv = memoryview(data)
        n = len(data)
        off = 0
        while not done:
            off = rx.feed(mv, off, n)
            if not rx.ready:
                break
            f = rx.frame
            if f.kind != "I" or not ra.add(f):
                continue
            apdu = ra.data()
            end = len(apdu)
            p = hdlc.strip_llc(apdu, 0, end, True)
            r = xdlms_get.parse_get_response(apdu, p, end, False)
            if r.kind == xdlms.NORMAL:
                stream.feed(apdu[r.data_off:r.data_end], sink)
                done = True
                break
            if r.dar is not None or r.block != expect:
                raise xdlms.ApduError("block %r (dar %r), %d expected" % (r.block, r.dar, expect), "block")
            stream.feed(apdu[r.data_off:r.data_end], sink)
            expect += 1
            if r.last:
                done = True
        if done:
            break
    if not stream.done or stream.pending():
        raise axdr.AxdrError("profile array incomplete", "array")
    return rows[0]


def main(argv):
    path = argv[0]
    repeat = int(argv[1]) if len(argv) > 1 and not argv[1].startswith("-") else 1
    with open(path, "rb") as f:
        data = f.read()
    if "--load-only" in argv:
        print("rows=0 repeat=0 us=0")
        return
    rows = 0
    t0 = ticks_us()
    for _ in range(repeat):
        rows = decode(data)
    us = ticks_diff(ticks_us(), t0)
    print("rows=%d repeat=%d us=%d" % (rows, repeat, us))


if __name__ == "__main__":
    main(sys.argv[1:])
