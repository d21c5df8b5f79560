"""What a DLMS reading records about the meter before its plan runs: who was read (the serial
number, the logical device name, where the id came from) and the meter's clock as it said it,
with the UTC offset that places the session's meter-local times.

Loaded by :class:`optoread.device.reader.Reader` at the session's start and dropped again before
the profile rows stream (RAM on a board).
"""

from optoread.dlms.axdr import decode as axdr
from optoread.dlms.cosem import base as cosem
from optoread.dlms.cosem.base import value_text
from optoread.errors import DataAccessError


def ids(sess):
    """``(meter id, where it came from, logical device name or None)``: the serial number
    0.0.96.1.0.255 is the id, the logical device name 0.0.42.0.0.255 the second key (and the id
    when the meter has no serial number object)."""
    got = []
    for code in (b"\x00\x00\x60\x01\x00\xff", b"\x00\x00\x2a\x00\x00\xff"):
        try:
            got.append(value_text(sess.get(cosem.CLASS_DATA, code, 2)))
        except DataAccessError:  # not this object; link errors go up
            got.append(None)
    if got[0] is not None:
        return got[0], "0.0.96.1.0.255", got[1]
    if got[1] is not None:
        return got[1], "0.0.42.0.0.255 (no serial number object)", got[1]
    return "dlms", "none: the meter gave neither 0.0.96.1.0.255 nor 0.0.42.0.0.255", None


def record(rd, w, ids, ident, dt, plan, prof):
    """Write the session's facts about the meter into writer ``w``: where its id came from, its
    logical device name, the identification line (mode E), its clock as said (ISO text with the
    offset, or the 12 octets when the date is invalid: no meter time is invented) and status, and
    the UTC offset: the clock's deviation ("meter"), else the meter profile's or the plan's
    ``utc_offset_min`` ("configuration")."""
    w.value("meter.id_source", ids[1])
    if ids[2] is not None:
        w.value("0.0.42.0.0.255", ids[2])
    if ident is not None:
        w.value("identification", ident.text)
    if dt.local_epoch() is None:
        b = bytearray(12)
        dt.write(b, 0)
        w.value("0.0.1.0.0.255", bytes(b))
    else:
        w.value("0.0.1.0.0.255", dt.iso())
    w.value("meter.clock_status", dt.status)
    if dt.deviation != axdr.DEVIATION_UNSPECIFIED:
        w.value("meter.utc_offset", -dt.deviation)
        w.value("meter.utc_offset_source", "meter")
        return
    off = prof.get("utc_offset_min")
    if off is None:  # the plan's (on flash: read again, not kept while rows stream)
        off = (rd.plans.get(plan["name"]) or {}).get("utc_offset_min")
    if off is not None:
        w.value("meter.utc_offset", int(off))
        w.value("meter.utc_offset_source", "configuration")
