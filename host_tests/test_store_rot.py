"""The store's fault model on flash (issue 17): bit rot, unreadable blocks, a full flash.

* Bit rot is not a torn tail: one flipped bit in any record of a finished 3,000-row session
  (one image per record) keeps every record that verifies, marks the session damaged and
  never truncates or deletes the file; ``decode-flash`` recovers the same.
* An unreadable file (LittleFS reports corruption, OSError 84) is quarantined: the mount
  never raises for it, lists it as damaged and the store goes on taking sessions.
* Free space from statvfs never wraps; a runaway session stops with room for its COMMIT;
  a per-session byte cap.

CPython (host directory and littlefs-python); the unix port's unreadable-block cases are in
test_store_faults.py.
"""

import io
import os
import struct
import tempfile

import pytest
import test_store as ts
from optoread.errors import StoreError
from optoread.store import decode as sd
from optoread.store import records as sr
from optoread.store import store as st

T0 = ts.T0


def _records(data):
    """[(offset, length, rtype)] of a session file whose records all verify."""
    out = []
    off = 0
    while off < len(data):
        rtype, _f, _s, _p, nxt = sd.check_record(data, off, len(data))
        out.append((off, nxt - off, rtype))
        off = nxt
    return out


def _items_per_record(store, seq, data):
    """What Store.read gives for each record of the clean file, as a list per record (the
    COMMIT's own item left out): by reading the file back with one record cut off at a time
    would be slow, so decode it here the way the store does."""
    per = []
    rows = sd.RowDecoder()
    for off, n, rtype in _records(data):
        got = []
        if rtype == sr.T_ROWS:
            rows.block(data, off + sr.HEADER_SIZE, off + n - sr.CRC_SIZE,
                       lambda c, v, got=got: got.append(("row", (c, v))))
        else:
            kind, d = sd.decode_payload(rtype, data, off + sr.HEADER_SIZE, off + n - sr.CRC_SIZE)
            if kind == "profile":
                rows.reset(len(d[3]), d[1], d[2])
            if kind != "commit":
                got.append((kind, d))
        per.append(got)
    return per


def _flip(data, off, n):
    bad = bytearray(data)
    bad[off + n // 2] ^= 0x10
    return bytes(bad)


@pytest.mark.parametrize("kind", ts.kinds())
def test_bit_flip_matrix_keeps_every_intact_record(kind):
    """One flipped bit in each record of a finished 3,000-row session in turn: every other record
    is read back, the session is marked damaged (not interrupted), the file keeps every byte."""
    env = ts.Env(kind, blocks=64)
    try:
        s = env.store(reserve=0)
        s.mount()
        summary, exp = ts.write_sample(s, rows=3000)
        clean = env.read_file(env.path(1))
        recs = _records(clean)
        assert sum(1 for r in recs if r[2] == sr.T_ROWS) >= 10
        per = _items_per_record(s, 1, clean)
        assert [x for p in per for x in p] == exp[:-1]
        damaged = interrupted = profile_lost = 0
        for i, (off, n, rtype) in enumerate(recs):
            env.write_file(env.path(1), _flip(clean, off, n))
            s = env.store(reserve=0)
            rep = s.mount()
            got = ts.collect(s, 1)
            # lost: the record itself; a PROFILE takes its ROWS with it (they cannot be placed)
            gone = [i]
            while rtype == 4 and recs[gone[-1] + 1][2] == sr.T_ROWS:
                gone.append(gone[-1] + 1)
            n = recs[gone[-1]][0] + recs[gone[-1]][1] - off
            want = [x for j, p in enumerate(per) if j not in gone for x in p]
            body = [x for x in got if x[0] not in ("commit", "damaged")]
            assert body == want, (i, rtype, len(body), len(want))
            profile_lost += rtype == 4
            x = s.session(1)
            assert not x.complete
            if rtype == 6:  # the COMMIT itself: no verifying COMMIT = a torn tail (trimmed, sealed)
                assert x.error == sr.INTERRUPTED and rep.torn == 1
                interrupted += 1
            else:
                assert rep.torn == 0 and x.sealed and x.damaged == 1, (i, rtype)
                assert x.error == ("damaged on flash: 1 record, %d bytes unreadable; reading was complete"
                                   % n), x.error
                assert [d for k, d in got if k == "damaged"] == [(off, n)]
                assert env.read_file(env.path(1)) == _flip(clean, off, recs[i][1])  # never truncated
                assert x.as_dict()["damaged"] == 1
                # a second mount finds the same (nothing was repaired)
                s = env.store(reserve=0)
                rep = s.mount()
                assert rep.torn == 0 and s.session(1).damaged == 1
                damaged += 1
        assert damaged == len(recs) - 1 and interrupted == 1 and profile_lost == 2
    finally:
        env.close()


def test_damaged_head_never_deletes_the_file():
    def run(env):
        s = env.store(reserve=0)
        s.mount()
        ts.write_sample(s, rows=50)
        clean = env.read_file(env.path(1))
        off, n, _ = _records(clean)[0]
        env.write_file(env.path(1), _flip(clean, off, n))
        s = env.store(reserve=0)
        rep = s.mount()
        assert rep.removed == 0 and rep.sessions == 1
        x = s.session(1)
        assert x.meter is None and x.damaged == 1 and x.values == 6 and x.rows == 53
        assert len(env.read_file(env.path(1))) == len(clean)
    ts.each_env(run)


def test_resync_never_takes_garbage_for_a_record():
    """Garbage that looks like record headers of the session (right magic, version, type and
    seq, wrong CRC) between two records is skipped as damage, never decoded."""
    def run(env):
        s = env.store(reserve=0)
        s.mount()
        w = s.begin("M", "p", T0)
        w.value("1.8.0", 1, 0, 30)
        w.commit()
        clean = env.read_file(env.path(1))
        recs = _records(clean)
        fake = struct.pack(sr.HDR, sr.MAGIC, sr.VERSION, sr.T_VALUE, 0, 1, 4) + b"\x00" * 8
        junk = fake * 40 + b"\xa7" * 37
        at = recs[1][0] + recs[1][1]  # after the VALUE
        env.write_file(env.path(1), clean[:at] + junk + clean[at:])
        s = env.store(reserve=0)
        s.mount()
        got = ts.collect(s, 1)
        assert [k for k, _ in got] == ["head", "value", "damaged", "commit"]
        assert got[2][1] == (at, len(junk))
        assert s.session(1).error.startswith("damaged on flash: 1 record, %d bytes" % len(junk))
    ts.each_env(run)


def _lfs_or_skip():
    try:
        import littlefs  # noqa: F401
    except ImportError:
        pytest.skip("littlefs-python is not installed")


def _image_with_sessions(n=5, rows=2500):
    env = ts.Env("lfspy", blocks=64)
    s = env.store(reserve=0)
    s.mount()
    exps = []
    for i in range(n):
        summary, exp = ts.write_sample(s, meter="M-%d" % (i + 1), rows=rows, seed=i + 1)
        exps.append(exp)
    return env, exps


def corrupt_file(env, seq):
    """Make session ``seq``'s file unreadable the way a bad flash block does: the CTZ skip-list
    pointer (the first word of every data block but the first) of its later blocks points
    nowhere, so LittleFS reports corruption (OSError 84) reading it. Returns the blocks changed."""
    data = env.read_file(env.path(seq))
    env.lfs.unmount()
    buf = env.buf
    bs = env.block_size
    nblocks = len(buf) // bs
    first = bytes(buf).find(data[:64])
    assert first >= 0 and first % bs == 0
    changed = []
    for b in range(nblocks):
        a = b * bs
        chunk = bytes(buf[a + 16:a + 80])  # past up to 4 pointer words: this file's bytes
        if a != first and chunk in data and struct.unpack_from("<I", buf, a)[0] < nblocks:
            buf[a:a + 4] = b"\xee\xee\xee\xee"
            changed.append(b)
    env.lfs.mount()
    return changed


def test_unreadable_session_file_is_quarantined_and_the_store_goes_on():
    _lfs_or_skip()
    env, exps = _image_with_sessions()
    try:
        assert corrupt_file(env, 3)
        with pytest.raises(OSError):
            env.read_file(env.path(3))
        s = env.store(reserve=0)
        rep = s.mount()  # never raises for one damaged file
        assert rep.sessions == 5 and rep.unreadable == 1
        x = s.session(3)
        assert not x.complete and x.damaged and "unreadable" in x.error
        for seq in (1, 2, 4, 5):
            assert ts.collect(s, seq) == exps[seq - 1]
        got = ts.collect(s, 3)
        assert got[-1][0] == "commit" and got[-1][1][0] == "incomplete"
        names = env.fs.listdir(env.root)
        assert "00000003.bad" in names and "00000003.ses" not in names
        w = s.begin("M-6", "p", T0)
        w.value("1.8.0", 6, 0, 30)
        assert w.commit().seq == 6
        env.remount()
        s = env.store(reserve=0)
        rep = s.mount()
        assert [y.seq for y in s.sessions()] == [1, 2, 3, 4, 5, 6] and s.session(3).damaged
        s.ack(6)
        assert s.reclaim(None) == 6 and "00000003.bad" not in env.fs.listdir(env.root)
    finally:
        env.close()


def _dump(env):
    env.lfs.unmount()
    f = tempfile.NamedTemporaryFile(suffix=".bin", delete=False)
    f.write(bytes(env.buf))
    f.close()
    return f.name


def test_decode_flash_recovers_every_intact_record_of_a_damaged_image():
    _lfs_or_skip()
    from optoread_tools import flashdump

    env, exps = _image_with_sessions(3, rows=3000)
    clean = env.read_file(env.path(2))
    recs = [r for r in _records(clean) if r[2] == sr.T_ROWS]
    off, n, _ = recs[len(recs) // 3]
    env.write_file(env.path(2), _flip(clean, off, n))
    path = _dump(env)
    try:
        sessions = flashdump.decode_flash(path, block_size=4096)
        assert [d["seq"] for d in sessions] == [1, 2, 3]
        d = sessions[1]
        assert d["damaged"] == 1 and d["damaged_list"] == [[off, n]]
        rows = sum(len(p["rows"]) for p in d["profiles_list"])
        lost = sum(1 for k, _ in exps[1] if k == "row") - rows
        assert 0 < lost <= 512
        out = io.StringIO()
        assert flashdump.run(path, 4096, out=out) == 3  # documented: recovered, with damage
        assert "damaged" in out.getvalue()
    finally:
        os.remove(path)


def test_decode_flash_recovers_the_readable_files_of_an_image_with_an_unreadable_block():
    _lfs_or_skip()
    from optoread_tools import flashdump

    env, exps = _image_with_sessions()
    assert corrupt_file(env, 4)
    path = _dump(env)
    try:
        sessions = flashdump.decode_flash(path, block_size=4096)
        assert [d["seq"] for d in sessions] == [1, 2, 3, 4, 5]
        for d in sessions:
            if d["seq"] == 4:
                assert "unreadable" in d["error"]
            else:
                assert d["complete"] and len(d["profiles_list"][0]["rows"]) == 2500
        out = io.StringIO()
        assert flashdump.run(path, 4096, out=out) == 3
        assert "unreadable" in out.getvalue()
    finally:
        os.remove(path)


# ---------------------------------------------------------------- space


class _FakeOs:
    def __init__(self, st):
        self.st = st

    def statvfs(self, path):
        return self.st


def test_free_space_from_statvfs_never_wraps():
    fs = st.OsFs()
    for stv, want in (((4096, 4096, 352, 100, 100, 0, 0, 0, 0, 255), 100 * 4096),
                      ((4096, 4096, 352, 4294967290, 4294967290, 0, 0, 0, 0, 255), 0),  # 64-bit: wrapped
                      ((4096, 4096, 352, -6, -6, 0, 0, 0, 0, 255), 0),  # 32-bit small int: wrapped
                      ((4096, 4096, 352, 400, 400, 0, 0, 0, 0, 255), 0),  # beyond the size
                      ((4096, 512, 1000, 10, 10, 0, 0, 0, 0, 255), 5120)):  # counted in fragments
        fs._os = _FakeOs(stv)
        assert fs.free("/") == want, stv


def _runaway(w, n=10 ** 7):
    w.profile_begin("1.0.99.1.0.255", ["a", "b", "c", "d"], 900, T0)
    for r in range(n):
        w.row(None, [r * 7, r * 300, r % 5, r * r])


def test_runaway_session_stops_with_room_for_its_commit():
    _lfs_or_skip()
    env = ts.Env("lfspy", blocks=32)
    try:
        s = env.store()
        s.mount()
        s.begin("M", "p", T0).commit()
        w = s.begin("M", "p", T0)
        with pytest.raises(StoreError) as e:
            _runaway(w)
        assert "store full" in str(e.value)
        with pytest.raises(StoreError):  # refused from here on
            w.value("1.8.0", 1, 0, 30)
        x = w.abort("meter kept sending")
        assert x.seq == 2 and not x.complete and x.rows > 1000
        assert [(y.seq, y.error) for y in s.sessions()][-1] == (2, "meter kept sending")
        with pytest.raises(StoreError) as e:
            s.begin("M", "p", T0)
        assert "store full: download first" in str(e.value)
        s.ack(2)
        s.begin("M", "p", T0).commit()
        env.remount()
        s = env.store()
        rep = s.mount()
        assert rep.torn == 0
    finally:
        env.close()


def test_session_byte_cap():
    def run(env):
        s = env.store(reserve=0)
        s.mount()
        w = s.begin("M", "p", T0, max_bytes=20000)
        with pytest.raises(StoreError) as e:
            _runaway(w)
        assert "20000 bytes" in str(e.value)
        x = w.abort("meter kept sending")
        assert 20000 <= x.size < 20000 + 2 * 1040 and x.rows > 1000
        assert s.session(x.seq).error == "meter kept sending"
        assert s.begin("M", "p", T0).commit().seq == x.seq + 1
    ts.each_env(run)


def test_a_failed_commit_never_blocks_the_next_session():
    def run(env):
        s = env.store(reserve=0)
        s.mount()
        w = s.begin("M", "p", T0)
        w.profile_begin("x", ["a"], 900, T0)
        w.row(T0, [1])

        def boom(*a):
            raise OSError(28, "ENOSPC")
        w._f.write = boom
        with pytest.raises(StoreError):
            w.commit()
        w2 = s.begin("M", "p", T0)  # not "a session is already being written"
        assert w2.commit().seq == 2
    ts.each_env(run)
