"""Sessions written by an older store format survive a firmware update.

host_tests/data/store_v1/ holds the raw session files that the version 1 firmware wrote
(host_tests/data/README.md says how and with which commit). The current firmware must
mount them, list them and read back every value, event and profile row as written;
repairing the torn one appends a record of the current version to a file of old ones.
"""

import sys

import portable
from optoread.errors import StoreError
from optoread.store import decode as sd
from optoread.store import records as sr
from optoread.store import store as st

PORTABLE = True

_DATA = portable.project_root() + "/host_tests/data"
if _DATA not in sys.path:
    sys.path.append(_DATA)

import make_store_v1 as v1  # noqa: E402

_FILES = ("00000001.ses", "00000002.ses", "00000003.ses", "acks")


def _collect(store, seq):
    out = []
    store.read(seq, lambda kind, data: out.append((kind, data)))
    return out


def _check(store, repaired, seqs=(1, 2, 3)):
    assert [s.seq for s in store.sessions()] == list(seqs)
    assert store.acked == v1.ACKED
    for seq in (1, 2, 3):
        complete, error, exp = v1.EXPECTED[seq]
        s = store.session(seq)
        got = _collect(store, seq)
        commits = [d for k, d in got if k == "commit"]
        body = [(k, d) for k, d in got if k != "commit"]
        assert len(body) == len(exp), (seq, len(body), len(exp))
        for i in range(len(exp)):
            assert body[i] == exp[i], (seq, i, body[i], exp[i])
        assert s.complete == complete
        assert s.downloaded == (seq <= v1.ACKED)
        if seq == 3:  # torn: interrupted; sealed on disk only after a repairing mount
            assert s.error == sr.INTERRUPTED
            assert s.sealed == repaired
            error = sr.INTERRUPTED  # read() ends an unsealed session with this commit too
        else:
            assert s.sealed and s.error == error
        assert len(commits) == 1
        assert commits[0][:2] == (sr.COMPLETE if complete else sr.INCOMPLETE, error)
        assert commits[0][3] == s.rows == sum(1 for k, _ in exp if k == "row")
    s1 = store.session(1)
    assert (s1.meter, s1.plan, s1.device_time, s1.meter_time) == v1.HEAD1
    assert s1.values == len(v1.VALUES1) and s1.events == len(v1.EVENTS1) and s1.profiles == 3


def test_fixture_is_version_1():
    for name in _FILES:
        data = portable.read_bytes(_DATA + "/store_v1/" + name)
        assert data[0] == sr.MAGIC and data[1] == 1, name


def test_current_firmware_reads_a_version_1_store():
    store = st.Store(st.OsFs(), _DATA + "/store_v1")
    rep = store.mount(repair=False)  # read-only: the committed fixture is never touched
    assert rep.sessions == 3 and rep.torn == 1 and rep.trimmed_bytes == 0
    _check(store, False)


def test_version_1_store_repaired_and_written_by_the_current_firmware():
    # The device's case: it boots the new firmware over the old store, seals the torn session,
    # records a new one, and all of them read back.
    import test_store

    def run(env):
        env.fs.mkdir(env.root)
        for name in _FILES:
            env.write_file(env.root + "/" + name, portable.read_bytes(_DATA + "/store_v1/" + name))
        store = env.store(reserve=0)
        rep = store.mount()
        assert rep.torn == 1 and rep.sessions == 3
        _check(store, True)
        data = env.read_file(env.path(3))
        versions = []
        off = 0
        while off < len(data):
            versions.append(data[off + 1])
            off = sd.check_record(data, off, len(data))[4]
        assert versions[:-1] == [1] * (len(versions) - 1) and versions[-1] == sr.VERSION
        w = store.begin("KFM-0004", "is15959", v1.T0 + 2 * 86400)
        w.value("1.0.1.8.0.255", 7, 0, 30)
        w.commit()
        env.remount()
        store = env.store(reserve=0)
        store.mount()
        _check(store, True, (1, 2, 3, 4))
        assert _collect(store, 4)[1] == ("value", ("1.0.1.8.0.255", 7, 0, 30))
        assert store.ack(4) == 4 and store.reclaim() == 4

    test_store.each_env(run)


def test_version_1_is_still_written_byte_for_byte():
    # Keeping profile clocks as offsets (32-bit boards) did not change a byte on flash: the
    # current writer reproduces the fixture. A later format bumps store.VERSION instead.
    if sr.VERSION != 1:
        portable.skip("the writer's format is version %d now" % sr.VERSION)
    import test_store

    def run(env):
        v1.make(env.root, env.fs)
        for name in _FILES:
            want = portable.read_bytes(_DATA + "/store_v1/" + name)
            assert env.read_file(env.root + "/" + name) == want, name

    test_store.each_env(run)


def test_unknown_versions_are_refused():
    buf = bytearray(64)
    n = sr.encode_record(buf, 0, sr.T_VALUE, 1, ("1.8.0", 1, 0, 30))
    assert sd.check_record(buf, 0, n)[0] == sr.T_VALUE
    for ver in (0, sr.VERSION + 1, 0xFF):
        bad = bytearray(buf[:n])
        bad[1] = ver
        e = portable.raises(StoreError, sd.parse_header, bad, 0, n)
        assert e.field == "version"
