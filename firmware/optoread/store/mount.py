"""Mounting the store: scan every session file, trim and seal the torn ones, load the acks.

Bit rot is not a torn tail: records after damaged bytes are still taken when they verify
(:func:`.decode.skip`), a session whose COMMIT verifies is never trimmed (it is listed as
damaged, with the count), and a file that cannot be read at all (an unreadable flash block) is
renamed ``NNNNNNNN.bad`` and listed as a damaged session. The mount never raises for one file.

:meth:`.store.Store.mount` runs this once (at boot on a board) and then drops it and
:mod:`.decode` again (``compat.unload``): a reading never needs the mount's code, so
it is not on the heap while profile rows stream (RAM).
"""

# decode_payload's data has a shape per record kind, and a summary's fields start as None;
# pyright cannot follow either.
# pyright: reportIndexIssue=false, reportArgumentType=false, reportOperatorIssue=false
# pyright: reportAttributeAccessIssue=false, reportGeneralTypeIssues=false, reportOptionalOperand=false

from optoread.compat import const
from optoread.errors import StoreError
from optoread.store.decode import RowDecoder, decode_payload, read_record, skip
from optoread.store.records import (
    ACKS,
    COMPLETE,
    CRC_SIZE,
    INTERRUPTED,
    SUFFIX,
    T_ACK,
    T_HEAD,
    T_ROWS,
    TMP,
    encode_record,
)
from optoread.store.writer import Session

_T_COMMIT = const(6)  # as in records (private: compiled away)
_F_BAD = const(64)  # as in store (private: compiled away)


def mount(store, repair):
    """Scan ``store`` (see :meth:`.store.Store.mount`); return ``(sessions, trimmed_bytes, torn,
    removed, damaged, unreadable)`` for its MountReport (made there: a report the caller keeps
    holds none of this module)."""
    fs = store.fs
    root = store.root
    store.clear_index()
    if not store.exists_dir():
        if not repair:
            store.mounted = True
            return 0, 0, 0, 0, 0, 0
        fs.mkdir(root)
    seqs = []
    trimmed = torn = removed = damaged = unreadable = 0
    for name in fs.listdir(root):
        if name.endswith(TMP):
            if repair:
                try:
                    fs.remove(root + "/" + name)
                    removed += 1
                except OSError:
                    pass
            continue
        quarantined = name.endswith(".bad")
        if not quarantined and not name.endswith(SUFFIX):
            continue
        try:
            seq = int(name[:-4])
        except ValueError:
            continue
        seqs.append(-seq if quarantined else seq)  # quarantined files: negative
    seqs.sort(key=abs)
    rows = RowDecoder()  # for the mount only: reading back makes its own
    last = 0
    for seq in seqs:
        if abs(seq) == last:  # both names (cannot be: a rename is atomic)
            continue
        last = abs(seq)
        path = store.session_path(last, ".bad")
        if seq > 0:
            try:
                s, file_size, whole, bad = _scan(store, seq, rows)
                path = None
            except OSError:  # an unreadable block: the file is set aside, the store goes on
                path = store.session_path(seq)
                if repair:
                    try:
                        fs.rename(path, store.session_path(seq, ".bad"))
                        path = store.session_path(seq, ".bad")
                    except OSError:
                        pass
        if path is not None:  # listed as a damaged session: nothing is lost silently
            s = Session(last)
            s.damaged = 1
            s.error = "unreadable on flash: file " + path[len(root) + 1:]
            store.index_add(s, _F_BAD)
            unreadable += 1
            continue
        if s.damaged:
            damaged += 1
        trimmed += file_size - s.size
        if not s.sealed:
            torn += 1
            if s.records == 0:  # not even the HEAD record made it
                if repair:
                    try:
                        fs.remove(store.session_path(seq))
                        removed += 1
                    except OSError:
                        pass
                continue
            if repair and whole:
                _seal(store, s, file_size)  # bytes after a COMMIT are never rewritten
            s.complete = False
            s.error = INTERRUPTED
        if s.damaged:
            s.error = "damaged on flash: %d record%s, %d bytes unreadable; %s" % (
                s.damaged, "" if s.damaged == 1 else "s", bad,
                "reading was complete" if s.complete else s.error)
            s.complete = False
        store.index_add(s)
    store.acked_up_to = acked = _load_acks(store, repair)
    n = store.count()
    top = store.seq_at(n - 1) if n else 0
    if seqs and abs(seqs[-1]) > top:
        top = abs(seqs[-1])
    store.next_seq = max(top, acked) + 1
    store.mounted = True
    return n, trimmed, torn, removed, damaged, unreadable


def _scan(store, seq, rows):
    # Validate one session file (``rows``: a RowDecoder); return (Session with counts up to the
    # last whole record, file size, False if the scan gave up before the end, damaged bytes).
    # Records after damaged bytes are still counted when they verify: the damage before the last
    # good record is counted in the summary (``damaged``: stretches), what follows it is the
    # torn tail.
    s = Session(seq)
    buf = store.record_buf
    pos = 0  # the end of the last record taken, or set aside as not belonging
    lost = lost_n = bad = 0  # damaged bytes (and stretches) not yet followed by a good record
    with store.fs.open(store.session_path(seq), "rb") as f:
        while True:
            n, rtype, rseq, pay, pend = read_record(f, buf)
            at = pos
            if n and (rtype < 0 or rseq != seq):
                n, rtype, rseq, pay, pend = skip(f, buf, seq, pos)
                if rtype < 0:  # nothing verifies up to the end (-1), or the scan gave up (-2)
                    return s, pos + n, rtype == -1, bad
                at = pos + n - pend - CRC_SIZE  # the record that verifies starts here
                n = pend + CRC_SIZE
                lost += at - pos
                lost_n = 1
                rows.damaged = True
            if n == 0:
                return s, pos, True, bad
            pos = at + n
            if not _apply(s, rtype, buf, pay, pend, rows, lost_n or s.damaged):
                lost += n  # verifies but does not belong here: damage too
                lost_n = 1
                rows.damaged = True
                continue
            if lost:
                s.damaged += lost_n
                bad += lost
                lost = lost_n = 0
            s.size = pos
            if s.sealed:  # anything after the COMMIT is not data
                return s, f.seek(0, 2), True, bad  # the file's size


def _apply(s, rtype, buf, pay, pend, rows, damaged):
    # Account one valid record of the session to its summary; False if it does not belong here.
    # ``damaged``: records were lost before it (a HEAD need not come first; a COMMIT counts them).
    if s.records == 0 and rtype != T_HEAD and not damaged:
        return False
    try:
        if rtype == T_ROWS:
            if not s.profiles:
                return False
            s.rows += rows.block(buf, pay, pend)
        else:
            kind, d = decode_payload(rtype, buf, pay, pend)
            if kind == "head":
                if s.records:
                    return False
                s.meter, s.plan, s.device_time, s.meter_time = d
            elif kind == "value":
                s.values += 1
            elif kind == "event":
                s.events += 1
            elif kind == "profile":
                s.profiles += 1
                rows.reset(len(d[3]), d[1], d[2], buf[3] if buf[1] >= 2 else None)
            elif kind == "commit":
                outcome, error, nrec, nrows = d
                if damaged:  # records lost before it: it counted them
                    if nrec < s.records or nrows < s.rows:
                        return False
                elif nrec != s.records or nrows != s.rows:
                    return False
                s.sealed = True
                s.complete = outcome == COMPLETE
                s.error = error
            else:
                return False
    except StoreError:
        return False
    s.records += 1
    return True


def _seal(store, s, file_size):
    # Make a torn session permanent as *incomplete*: trim the torn tail, append a COMMIT.
    # A failure (no room for the copy, an unreadable block) leaves it as it was: listed as
    # interrupted, sealed by a later mount.
    fs = store.fs
    buf = store.record_buf
    path = store.session_path(s.seq)
    n = encode_record(buf, 0, _T_COMMIT, s.seq, (1, INTERRUPTED, s.records, s.rows))
    tmp = store.session_path(s.seq, TMP)
    try:
        if file_size != s.size:
            # Torn bytes present: copy the whole records to a temporary file and rename it over.
            commit = bytes(buf[:n])
            with fs.open(path, "rb") as src:
                with fs.open(tmp, "wb") as dst:
                    left = s.size
                    mv = memoryview(buf)
                    while left:
                        k = src.readinto(mv[:min(left, len(buf))])
                        if not k:
                            raise StoreError("session file shrank while sealing", "file", s.size - left)
                        dst.write(mv[:k])
                        left -= k
                    dst.write(commit)
                    dst.flush()
            fs.rename(tmp, path)
        else:
            with fs.open(path, "ab") as f:
                f.write(memoryview(buf)[:n])
                f.flush()
    except (OSError, StoreError):
        try:
            fs.remove(tmp)
        except OSError:
            pass
        return
    s.records += 1
    s.size += n
    s.sealed = True


def _load_acks(store, repair):
    # The highest acknowledged sequence in the acks file; a torn file is rewritten (repair).
    buf = store.record_buf
    acked = 0
    torn = False
    try:
        f = store.fs.open(store.root + "/" + ACKS, "rb")
    except OSError:
        return 0
    try:
        with f:
            while True:
                n, rtype, rseq, pay, pend = read_record(f, buf)
                if n == 0:
                    break
                if rtype != T_ACK:
                    torn = True
                    break
                try:
                    v = decode_payload(rtype, buf, pay, pend)[1]
                except StoreError:
                    torn = True
                    break
                if v > acked:
                    acked = v
    except OSError:  # unreadable: the acks read so far count (never more: nothing is freed early)
        torn = True
    if torn and repair:
        try:
            store.write_acks(acked)  # a new file, on other blocks
        except OSError:
            pass
    return acked
