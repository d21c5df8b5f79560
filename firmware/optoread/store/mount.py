"""Mounting the store: scan every session file, trim and seal the torn ones, load the acks.

:meth:`.store.Store.mount` runs this once (at boot on a board) and then drops it and
:mod:`.decode` again (``compat.unload``): a reading never needs the mount's code, so
it is not on the heap while profile rows stream (RAM).
"""

# decode_payload's data has a shape per record kind, and a summary's fields start as None;
# pyright cannot follow either.
# pyright: reportIndexIssue=false, reportArgumentType=false, reportOperatorIssue=false
# pyright: reportAttributeAccessIssue=false, reportGeneralTypeIssues=false

from optoread.compat import const
from optoread.errors import StoreError
from optoread.store.decode import RowDecoder, decode_payload, read_record
from optoread.store.records import (
    ACKS,
    COMPLETE,
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


def mount(store, repair):
    """Scan ``store`` (see :meth:`.store.Store.mount`); return ``(sessions, trimmed_bytes, torn,
    removed)`` for its MountReport (made there: a report the caller keeps holds none of this module)."""
    fs = store.fs
    root = store.root
    store.clear_index()
    if not store.exists_dir():
        if not repair:
            store.mounted = True
            return 0, 0, 0, 0
        fs.mkdir(root)
    seqs = []
    trimmed = torn = removed = 0
    for name in fs.listdir(root):
        if name.endswith(TMP):
            if repair:
                fs.remove(root + "/" + name)
                removed += 1
            continue
        if not name.endswith(SUFFIX):
            continue
        try:
            seqs.append(int(name[:-len(SUFFIX)]))
        except ValueError:
            continue
    seqs.sort()
    rows = RowDecoder()  # for the mount only: reading back makes its own
    for seq in seqs:
        s, file_size = _scan(store, seq, rows)
        if s.sealed and s.size == file_size:
            store.index_add(s)
            continue
        trimmed += file_size - s.size
        if s.sealed:  # bytes after a COMMIT: ignored, never rewritten
            store.index_add(s)
            continue
        torn += 1
        if s.records == 0:  # not even the HEAD record made it
            if repair:
                fs.remove(store.session_path(seq))
                removed += 1
            continue
        if repair:
            _seal(store, s, file_size)
        s.complete = False
        s.error = INTERRUPTED
        store.index_add(s)
    store.acked_up_to = acked = _load_acks(store, repair)
    n = store.count()
    top = store.seq_at(n - 1) if n else 0
    if seqs and seqs[-1] > top:
        top = seqs[-1]
    store.next_seq = max(top, acked) + 1
    store.mounted = True
    return n, trimmed, torn, removed


def _scan(store, seq, rows):
    # Validate one session file (``rows``: a RowDecoder); return (Session with counts up to the
    # last whole record, file size).
    s = Session(seq)
    buf = store.record_buf
    pos = 0
    with store.fs.open(store.session_path(seq), "rb") as f:
        while True:
            n, rtype, rseq, pay, pend = read_record(f, buf)
            if n == 0:
                break
            # Torn, garbage, anything after the COMMIT or a record that does not
            # belong: nothing from here on is data.
            if rtype < 0 or s.sealed or rseq != seq or not _apply(s, rtype, buf, pay, pend, rows):
                return s, pos + n + _drain(f, buf)
            pos += n
            s.size = pos
    return s, pos


def _drain(f, buf):
    # Count the bytes left in ``f`` (the torn tail).
    n = 0
    mv = memoryview(buf)
    while True:
        k = f.readinto(mv)
        if not k:
            return n
        n += k


def _apply(s, rtype, buf, pay, pend, rows):
    # Account one valid record of the session to its summary; False if it does not belong
    # (stop there).
    if s.records == 0 and rtype != T_HEAD:
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
                rows.reset(len(d[3]), d[1], d[2])
            elif kind == "commit":
                outcome, error, nrec, nrows = d
                if nrec != s.records or nrows != s.rows:
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
    fs = store.fs
    buf = store.record_buf
    path = store.session_path(s.seq)
    n = encode_record(buf, 0, _T_COMMIT, s.seq, (1, INTERRUPTED, s.records, s.rows))
    if file_size != s.size:
        # Torn bytes present: copy the whole records to a temporary file and rename it over.
        commit = bytes(buf[:n])
        tmp = store.session_path(s.seq, TMP)
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
    if torn and repair:
        store.write_acks(acked)
    return acked
