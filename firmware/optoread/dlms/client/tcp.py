"""The DLMS session over the IEC 62056-47 wrapper (TCP): one request out, its APDU back.

A procedure of :class:`optoread.dlms.client.session.Session` (a generator run by its driver, taking the
session as ``s``), apart from it because an optical reading runs over HDLC: loaded by TCP
sessions only (RAM on a board).
"""

from optoread.dlms import wrapper
from optoread.dlms.xdlms import apdu as xdlms
from optoread.driver import READ, SEND
from optoread.errors import SessionError


def receiver(capacity):
    """The message receiver of a wrapper session (largest APDU ``capacity``)."""
    return wrapper.WrapperReceiver(capacity)


def exchange(s, start, end, what):
    """One request out and its answer in, as ``(mv, off, end)`` of the APDU (pushes skipped)."""
    st = s.settings
    wrapper.encode_header(s.tx, start - wrapper.HEADER_LEN, st.client, st.server, end - start)
    s.counts.frames_tx += 1
    yield (SEND, memoryview(s.tx)[start - wrapper.HEADER_LEN:end])
    r = s.reader
    if r is None:
        raise SessionError("wrapper link not set up", "state")
    while True:
        got = r.step()
        if not got:
            got = yield (READ, r, st.timeout_ms)
            if not got:
                raise s.silent(what)
        s.counts.frames_rx += 1
        rx = r.rx
        if rx.source != st.server or rx.destination != st.client:
            continue  # another association's traffic on the same socket
        mv = rx.apdu()
        if len(mv) and mv[0] == xdlms.DATA_NOTIFICATION:
            continue
        return mv, 0, len(mv)
