"""The store's query and download side: reading sessions back, raw bytes, filtered lists, acks.

Kept apart from :mod:`.store` for RAM: on a board every imported module's bytecode, functions
and names live in the heap, and a reading (``Store.mount``, ``Store.begin``, the ``Writer``)
never needs this half. ``Store.read``, ``read_raw``, ``sessions``, ``ack`` and ``Session.as_dict``
stay the public API as thin wrappers that import this module when they are first called (console
commands, download, tools). ``Store.space`` and ``Store.reclaim`` stay in :mod:`.store`: the boot
banner and ``Store.begin`` call them.
"""

# decode_payload's data has a shape per record kind, which pyright cannot follow.
# pyright: reportIndexIssue=false, reportArgumentType=false, reportOptionalSubscript=false

from optoread.compat import const
from optoread.errors import StoreError
from optoread.store.decode import RowDecoder, decode_payload, read_record, skip
from optoread.store.records import (
    ACKS,
    COMPLETE,
    CRC_SIZE,
    INCOMPLETE,
    T_ACK,
    T_ROWS,
    encode_record,
    file_size,
)

_ACKS_COMPACT = const(2048)  # the acks file is rewritten as one record once it is this long


def sessions(store, meter=None, downloaded=None, since=None, until=None):
    """Iterate over ``store``'s session summaries, oldest first, filtered (see ``Store.sessions``)."""
    store.need_mount()
    for i in range(store.count()):
        s = store.summary(i)  # made from the index: a listing holds one summary at a time
        if meter is not None and s.meter != meter:
            continue
        if downloaded is not None and s.downloaded != downloaded:
            continue
        if since is not None and (s.device_time is None or s.device_time < since):
            continue
        if until is not None and (s.device_time is None or s.device_time > until):
            continue
        yield s


def as_dict(s):
    """Session summary ``s`` as a plain dict (see ``Session.as_dict``)."""
    return {
        "seq": s.seq, "meter": s.meter, "plan": s.plan, "device_time": s.device_time,
        "meter_time": s.meter_time, "complete": s.complete, "sealed": s.sealed,
        "error": s.error, "values": s.values, "events": s.events,
        "profiles": s.profiles, "rows": s.rows, "size": s.size,
        "downloaded": s.downloaded, "damaged": s.damaged,
    }


def read(store, seq, sink):
    """Stream session ``seq`` of ``store`` to ``sink(kind, data)``; return its summary (``Store.read``).

    Damaged bytes (records that no longer verify, or cannot be placed after those) are skipped:
    the sink gets ``("damaged", (offset, length))`` for each stretch, and the COMMIT says what
    the summary says (incomplete, the damage in its error text). A session whose file could not
    be read at all (no records) gives ``("damaged", (0, 0))`` and its COMMIT.
    """
    store.need_mount()
    store.check_idle()
    s = store.session(seq)
    buf = store.record_buf
    outcome = COMPLETE if s.complete else INCOMPLETE
    if not s.records:  # unreadable: quarantined at the mount
        sink("damaged", (0, 0))
        sink("commit", (INCOMPLETE, s.error, 0, 0))
        return s
    rows = RowDecoder()
    emit = lambda clock, cols: sink("row", (clock, cols))
    pos = 0
    lost = -1  # where damaged bytes not yet reported began (-1: none)
    hurt = False  # damage seen: the HEAD need not come first (as the mount counts)
    taken = 0  # records given
    profile = False
    with store.fs.open(store.session_path(seq), "rb") as f:
        while pos < s.size:
            n, rtype, rseq, pay, pend = read_record(f, buf)
            at = pos
            if n and (rtype < 0 or rseq != seq):
                n, rtype, rseq, pay, pend = skip(f, buf, seq, pos)
                if rtype >= 0:
                    at = pos + n - pend - CRC_SIZE
                    n = pend + CRC_SIZE
                if lost < 0:
                    lost = pos
                hurt = rows.damaged = True
            if n == 0 or rtype < 0 or at + n > s.size:
                raise StoreError("session %d changed on flash" % seq, "record", at)
            pos = at + n
            # The mount's rules (mount._apply): a record that does not belong is damage too.
            try:
                if rtype == T_ROWS:
                    if not profile:
                        raise StoreError("rows outside a profile", "rows", at)
                    rows.check(buf, pay)
                    kind = d = None
                else:
                    kind, d = decode_payload(rtype, buf, pay, pend)
                    if (kind == "head" and taken) or (not taken and kind != "head" and not hurt) or \
                            (kind == "commit") != (pos == s.size and s.sealed):
                        raise StoreError("record out of place", "record", at)
            except StoreError:
                if lost < 0:
                    lost = at
                hurt = rows.damaged = True
                continue
            if lost >= 0:
                sink("damaged", (lost, at - lost))
                lost = -1
            taken += 1
            if kind is None:
                rows.block(buf, pay, pend, emit)
            elif kind == "profile":
                rows.reset(len(d[3]), d[1], d[2], buf[3] if buf[1] >= 2 else None)
                profile = True
                sink(kind, d)
            elif kind == "commit":
                sink(kind, (outcome, s.error, d[2], d[3]))
            else:
                sink(kind, d)
    if not s.sealed:
        sink("commit", (INCOMPLETE, s.error, s.records, s.rows))
    return s


def read_raw(store, seq, sink):
    """Stream the stored bytes of session ``seq`` (whole records only) as memoryview chunks."""
    store.need_mount()
    store.check_idle()
    s = store.session(seq)
    mv = memoryview(store.record_buf)
    left = s.size
    if not left:  # an unreadable (quarantined) file: nothing to give
        return s
    with store.fs.open(store.session_path(seq), "rb") as f:
        while left:
            k = f.readinto(mv[:min(left, len(mv))])
            if not k:
                raise StoreError("session %d changed on flash" % seq, "file", s.size - left)
            sink(mv[:k])
            left -= k
    return s


def ack(store, up_to_seq):
    """Mark sessions up to ``up_to_seq`` as downloaded (persistent); return the acked sequence."""
    store.need_mount()
    store.check_idle()
    if not isinstance(up_to_seq, int) or up_to_seq < 0:
        raise StoreError("bad sequence number", "seq")
    n = store.count()
    top = store.seq_at(n - 1) if n else 0
    if up_to_seq > top:
        up_to_seq = top
    if up_to_seq <= store.acked_up_to:
        return store.acked_up_to
    path = store.root + "/" + ACKS
    buf = store.record_buf
    try:
        size = file_size(store.fs, path)
    except OSError:
        size = 0
    if size >= _ACKS_COMPACT:
        store.write_acks(up_to_seq)
    else:
        n = encode_record(buf, 0, T_ACK, 0, (up_to_seq,))
        with store.fs.open(path, "ab") as f:
            f.write(memoryview(buf)[:n])
            f.flush()
    store.acked_up_to = up_to_seq  # summaries say downloaded from here on (seq <= acked)
    return up_to_seq
