"""``optoread download`` / ``optoread export`` against an in-process device (CPython only).

The device side is a real ``optoread.store.Store`` in a temp directory, served either by a
small fake that implements the console's @-protocol (written here from the wire spec) or by the
firmware's own ``optoread.console.Console``; the laptop reaches it through a pyserial-like fake
port that can vanish after N bytes or flip a byte, or over a real pty with pyserial.
"""

import argparse
import base64
import binascii
import json
import os
import shutil
import sqlite3
import sys
import tempfile
import threading

import mpbin
import pytest
from optoread.crc import crc32
from optoread.store import records as sr
from optoread.store import store as st
from optoread_tools import download as dl
from optoread_tools import readings_db

T0 = 1700000000


# ---------------------------------------------------------------- the device


def make_store(root, sessions=4, big_rows=2500, fs=None):
    """A store with a values-only session, profile sessions (one big), and an incomplete one."""
    store = st.Store(fs or st.OsFs(), root, reserve=0)
    store.mount()
    for n in range(sessions):
        w = store.begin("MTR-%d" % (n % 2), "plan-%d" % n, T0 + n * 3600, T0 + n * 3600 - 5)
        w.value("1.0.1.8.0.255", 1234567 + n, -1, 30)
        w.value("0.0.96.1.0.255", "SN\u00e9-%d" % n)
        w.value("1.0.32.7.0.255", 230.5 + n, 0, "V")
        w.value("0.0.42.0.0.255", b"\x00\xff\x10")
        w.value("1.8.0", "000671.578", None, "kWh")
        w.value("1.0.1.8.1.255", 2 ** 64 - 1, 0, 30)
        w.event(T0 - 3600, 7, "power down")
        w.event(None, 8)
        if n % 4 in (1, 2):
            rows = big_rows if n % 4 == 2 else 40
            w.profile_begin("1.0.99.1.0.255", [("1.0.1.29.0.255", -2, 30), "1.0.2.29.0.255"], 900,
                            T0 - rows * 900)
            acc = 1000
            for i in range(rows):
                acc += (i * 7919) % 300
                w.row(None if i % 5 else T0 - (rows - i) * 900, [acc, None if i == 3 else i])
        if n % 4 == 3:
            w.abort("no answer after 3 tries")
        else:
            w.commit()
    return store


def session_bytes(store, seq):
    out = bytearray()
    store.read_raw(seq, lambda mv: out.extend(mv))
    return bytes(out)


class FakeConsole:
    """The @-protocol over a Store, written from the wire spec (not console.py)."""

    def __init__(self, store):
        self.store = store

    def handle(self, line):
        out = []
        w = lambda s: out.append(s + "\r\n")
        words = line.split()
        st_ = self.store
        try:
            if words[:1] == ["@hello"]:
                ss = list(st_.sessions())
                w("@ok optoread 0.1.0 sessions=%d pending=%d acked=%d"
                  % (len(ss), len([s for s in ss if not s.downloaded]), st_.acked))
            elif words[:1] == ["@list"]:
                ss = list(st_.sessions())
                for s in ss:
                    w("@s %d %d %d %d %08x" % (s.seq, s.size, s.complete, s.downloaded,
                                               crc32(session_bytes(st_, s.seq))))
                w("@end %d" % len(ss))
            elif words[:1] == ["@get"] and len(words) == 3:
                seq, off = int(words[1]), int(words[2])
                if seq not in [s.seq for s in st_.sessions()]:
                    w("@err no such session %d" % seq)
                else:
                    data = session_bytes(st_, seq)
                    if off > len(data):
                        w("@err bad offset")
                    else:
                        no = 0
                        for p in range(off, len(data), 192):
                            chunk = data[p:p + 192]
                            w("@f %d %d %d %d %08x %s" % (no, seq, p, len(chunk), crc32(chunk),
                                                          base64.b64encode(chunk).decode()))
                            no += 1
                        w("@e %d %d %08x %d" % (seq, len(data), crc32(data), no))
            elif words[:1] == ["@ack"] and len(words) == 2:
                before = sum(s.size for s in st_.sessions())
                acked = st_.ack(int(words[1]))
                st_.reclaim()
                w("@ok acked=%d freed=%d" % (acked, before - sum(s.size for s in st_.sessions())))
            elif words:
                w("unknown command")
        except Exception as e:
            w("@err %s" % e)
        return ("".join(out) + "> ").encode()


class RealConsole:
    """The firmware's own console as the device."""

    def __init__(self, store):
        from optoread.device.console import Console

        self.buf = []
        self.console = Console(store, self)

    def write(self, s):
        self.buf.append(s)

    def handle(self, line):
        self.buf = []
        self.console.handle_line(line)
        return "".join(self.buf).encode()


DEVICES = ["fake", "console"]


def make_device(kind, store):
    if kind == "console":
        try:
            return RealConsole(store)
        except ImportError:
            pytest.skip("optoread.console is not there yet")
    return FakeConsole(store)


class Unplugged(OSError):
    pass


class FakePort:
    """A pyserial-like port to an in-process device.

    ``die_after``: the port vanishes (OSError, as pyserial's SerialException) after that many
    bytes reached the laptop. ``flips``: absolute positions in the device->laptop byte stream
    whose byte is XOR-ed with 0x01 (a line error); ``flip_filter(line)`` limits flips to lines
    for which it is true.
    """

    def __init__(self, device, link_state, die_after=None, flip_filter=None):
        self.device = device
        self.s = link_state
        self.die_after = die_after
        self.flip_filter = flip_filter
        self.out = bytearray()
        self.inbuf = bytearray()
        self.dead = False
        self.timeout = 0.05

    def _check(self):
        if self.dead:
            raise Unplugged(5, "device reports readiness to read but returned no data")

    @property
    def in_waiting(self):
        self._check()
        return len(self.out)

    def reset_input_buffer(self):
        self._check()
        del self.out[:]

    def write(self, data):
        self._check()
        self.inbuf += data
        while b"\n" in self.inbuf:
            i = self.inbuf.index(b"\n")
            line = bytes(self.inbuf[:i]).decode()
            del self.inbuf[:i + 1]
            reply = bytearray(self.device.handle(line))
            pos = self.s["sent"] + len(self.out)
            for k in range(len(reply)):
                if pos + k in self.s["flips"]:
                    if self.flip_filter is None or self.flip_filter(line):
                        reply[k] ^= 0x01
                        self.s["flipped"] += 1
            self.out += reply
        return len(data)

    def read(self, n=1):
        self._check()
        if not self.out:
            self.s["clock"].t += self.timeout  # what pyserial's read timeout would have waited
            return b""
        k = min(n, len(self.out))
        if self.die_after is not None:
            left = self.die_after - self.s["sent"]
            if left <= 0:
                self.dead = True
                self._check()
            k = min(k, left)
        data = bytes(self.out[:k])
        del self.out[:k]
        self.s["sent"] += k
        return data

    def close(self):
        self.dead = True


class Clock:
    def __init__(self):
        self.t = 0.0

    def __call__(self):
        return self.t

    def sleep(self, s):
        self.t += s


class Env:
    """A device store, a laptop database, and the ports between them."""

    def __init__(self, kind="fake", sessions=4, big_rows=2500):
        self.tmp = tempfile.mkdtemp(prefix="optoread-dl-")
        self.store = make_store(self.tmp + "/store", sessions, big_rows)
        self.kind = kind
        self.device = make_device(kind, self.store)
        self.dbpath = self.tmp + "/readings.sqlite"
        self.db = readings_db.open_db(self.dbpath)
        self.db.execute("PRAGMA synchronous = OFF")  # speed only: the tests do not cut power
        self.clock = Clock()
        self.state = {"sent": 0, "flips": set(), "flipped": 0, "clock": self.clock}
        self.opens = 0
        self.originals = {s.seq: session_bytes(self.store, s.seq) for s in self.store.sessions()}
        self.expected = {s.seq: dump_store_session(self.store, s.seq) for s in self.store.sessions()}

    def opener(self, die_after=None, flip_filter=None, fail_after_first=False):
        def open_():
            self.opens += 1
            if fail_after_first and self.opens > 1:
                raise Unplugged(2, "could not open port: No such file or directory")
            d = die_after if self.opens == 1 else None
            return FakePort(self.device, self.state, d, flip_filter)
        return open_

    def downloader(self, opener=None, **kw):
        kw.setdefault("timeout", 2.0)
        kw.setdefault("reconnect_s", 1.0)
        return dl.Downloader(opener or self.opener(), self.db, clock=self.clock, sleep=self.clock.sleep, **kw)

    def close(self):
        self.db.close()
        shutil.rmtree(self.tmp, ignore_errors=True)


@pytest.fixture(params=DEVICES)
def env(request):
    e = Env(request.param)
    yield e
    e.close()


def dump_store_session(store, seq):
    """A session as read back on the device, in the shape session_dicts gives (for comparing)."""
    out = {"values": [], "events": [], "profiles": []}

    def sink(kind, d):
        if kind == "head":
            out["meter_id"], out["plan"], out["device_time"], out["meter_time"] = d
        elif kind == "value":
            out["values"].append((d[0], d[1], d[2]))
        elif kind == "event":
            out["events"].append(tuple(d))
        elif kind == "profile":
            out["profiles"].append({"obis": d[0], "period": d[1], "columns": [list(c) for c in d[3]],
                                    "rows": []})
        elif kind == "row":
            out["profiles"][-1]["rows"].append([d[0]] + list(d[1]))
        elif kind == "commit":
            out["complete"] = d[0] == sr.COMPLETE
            out["error"] = d[1]

    store.read(seq, sink)
    return out


def db_sessions(db):
    """seq -> (raw bytes, decoded content) of every session in the database (asserting no duplicates)."""
    raw = {}
    for seq, data in db.execute(
            "SELECT s.seq, r.data FROM sessions s JOIN session_raw r ON r.session_id = s.id"):
        assert seq not in raw, "session %d stored twice" % seq
        raw[seq] = bytes(data)
    out = {}
    for s in readings_db.session_dicts(db):
        vals = []
        for v in s["values"]:
            value = v["value"]
            vals.append((v["obis"], value, v["scaler"]))
        out[s["seq"]] = {
            "meter_id": s["meter_id"], "plan": s["plan"], "device_time": s["device_time"],
            "meter_time": s["meter_time"], "complete": s["complete"], "error": s["error"],
            "values": vals, "events": [(e["time"], e["code"], e["text"]) for e in s["events"]],
            "profiles": [{"obis": p["obis"], "period": p["capture_period"], "columns": p["columns"],
                          "rows": p["rows"]} for p in s["profiles"]],
        }
    return raw, out


def normalise(expected):
    """What the database gives back for a device session: bytes as hex, big ints as text."""
    e = dict(expected)
    vals = []
    for obis, value, scaler in e["values"]:
        if isinstance(value, bytes):
            value = value.hex()
        elif isinstance(value, int) and value >= 2 ** 63:
            value = str(value)
        vals.append((obis, value, scaler))
    e["values"] = vals
    return e


def assert_all_stored(env, seqs=None):
    raw, dec = db_sessions(env.db)
    seqs = sorted(env.originals) if seqs is None else seqs
    assert sorted(raw) == seqs
    for seq in seqs:
        assert raw[seq] == env.originals[seq], "session %d differs from the device's bytes" % seq
        assert dec[seq] == normalise(env.expected[seq]), seq
    assert env.db.execute("SELECT COUNT(*) FROM staging").fetchone()[0] == 0


# ---------------------------------------------------------------- plain runs


def table_counts(db):
    return [db.execute("SELECT COUNT(*) FROM %s" % t).fetchone()[0]
            for t in ("sessions", "register_values", "profiles", "profile_rows", "events", "meters")]


def test_download_everything_then_nothing_new(env):
    r = env.downloader().run()
    assert sorted(r.new) == sorted(env.originals) and not r.failed and r.refetches == 0
    assert_all_stored(env)
    top = max(env.originals)
    assert r.acked == top and env.store.acked == top
    assert r.freed == sum(len(b) for b in env.originals.values())
    assert list(env.store.sessions()) == []  # acknowledged and reclaimed
    counts = table_counts(env.db)
    assert counts == [4, 24, 2, 2540, 8, 2]
    r2 = env.downloader().run()
    assert r2.new == [] and r2.acked is None and r2.bytes == 0
    assert table_counts(env.db) == counts


def test_second_download_of_unacked_sessions_adds_nothing(env):
    r = env.downloader(ack=False).run()
    assert len(r.new) == 4 and r.acked is None and env.store.acked == 0
    r2 = env.downloader(ack=False).run()
    assert r2.new == [] and r2.skipped == 4 and r2.bytes == 0
    assert_all_stored(env)
    # Acking later (a third run) frees exactly what is stored, without fetching anything.
    r3 = env.downloader().run()
    assert r3.new == [] and r3.bytes == 0 and r3.acked == 4 and env.store.acked == 4


def test_new_sessions_after_a_download_are_fetched_next_time(env):
    env.downloader().run()
    w = env.store.begin("MTR-9", "plan-x", T0 + 99999, None)
    w.value("1.0.1.8.0.255", 5, 0, 30)
    w.commit()
    seq = max(s.seq for s in env.store.sessions())
    env.originals[seq] = session_bytes(env.store, seq)
    env.expected[seq] = dump_store_session(env.store, seq)
    r = env.downloader().run()
    assert r.new == [seq] and r.acked == seq
    assert_all_stored(env)


def test_values_columns_and_scaling(env):
    env.downloader().run()
    db = env.db
    rows = db.execute("SELECT obis, value, scaler, unit, unit_code, scaled FROM register_values v "
                      "JOIN sessions s ON s.id = v.session_id WHERE s.seq = 1 ORDER BY v.id").fetchall()
    assert rows[0] == ("1.0.1.8.0.255", 1234567, -1, "Wh", 30, 123456.7)
    assert rows[1] == ("0.0.96.1.0.255", "SN\u00e9-0", None, None, None, None)
    assert rows[2] == ("1.0.32.7.0.255", 230.5, 0, "V", None, 230.5)
    assert rows[3] == ("0.0.42.0.0.255", b"\x00\xff\x10", None, None, None, None)
    assert rows[4] == ("1.8.0", "000671.578", None, "kWh", None, 671.578)
    assert rows[5][1] == str(2 ** 64 - 1)
    s = db.execute("SELECT device, complete, error, crc, size FROM sessions WHERE seq = 4").fetchone()
    assert s[0] == "optoread" and s[1] == 0 and s[2] == "no answer after 3 tries"
    assert s[3] == "%08x" % crc32(env.originals[4]) and s[4] == len(env.originals[4])
    cols = json.loads(db.execute("SELECT columns_json FROM profiles ORDER BY id").fetchone()[0])
    assert cols == [["1.0.1.29.0.255", -2, 30], ["1.0.2.29.0.255", None, None]]


# ---------------------------------------------------------------- interruptions


def _traffic(env):
    """Bytes the device sends for a whole clean download (measured on a copy)."""
    e = Env(env.kind)
    try:
        e.downloader().run()
        return e.state["sent"]
    finally:
        e.close()


def test_interrupted_at_many_points_resumes_in_the_same_run(env):
    total = _traffic(env)
    assert total > 8000
    step = max(total // 60, 1)
    for n in list(range(0, total, step)) + [1, 2, 40, total - 1]:
        e = Env(env.kind)
        try:
            r = e.downloader(e.opener(die_after=n)).run()
            assert not r.failed, (n, r.failed)
            # the port vanished (after the last answer's final prompt bytes nothing is needed)
            assert r.reconnects >= 1 or n >= total - 2, n
            assert_all_stored(e)
            assert e.store.acked == max(e.originals), n
            assert list(e.store.sessions()) == []
        finally:
            e.close()


def test_interrupted_then_rerun(env):
    total = _traffic(env)
    step = max(total // 40, 1)
    resumed = 0
    for n in list(range(step // 2, total, step)) + [total - 3]:
        e = Env(env.kind)
        try:
            first = e.downloader(e.opener(die_after=n, fail_after_first=True))
            try:
                r1 = first.run()
                done = True  # the cut came after the last byte that mattered
            except dl.DownloadError:
                r1 = first.result
                done = False
            stored = [row[0] for row in e.db.execute("SELECT seq FROM sessions ORDER BY seq")]
            assert stored == sorted(r1.new)
            # Nothing is acknowledged that the laptop does not hold.
            assert e.store.acked == 0 or e.store.acked <= max(stored), (n, e.store.acked, stored)
            staged = e.db.execute("SELECT COALESCE(SUM(LENGTH(data)), 0) FROM staging").fetchone()[0]
            before = e.state["sent"]
            r2 = e.downloader().run()
            assert not r2.failed
            assert set(r2.new).isdisjoint(r1.new)
            assert_all_stored(e)
            assert e.store.acked == max(e.originals)
            if not done and staged:
                # the rerun fetched less than everything: it resumed from the staged offset
                left = sum(len(b) for s, b in e.originals.items() if s not in r1.new)
                assert r2.bytes == left - staged, (n, r2.bytes, left, staged)
                resumed += 1
            assert e.state["sent"] > before or done
        finally:
            e.close()
    assert resumed >= 10  # many cuts fell inside a session and the rerun went on from the staged bytes


def test_port_that_never_comes_back_gives_up_cleanly(env):
    d = env.downloader(env.opener(die_after=3000, fail_after_first=True))
    with pytest.raises(dl.DownloadError):
        d.run()
    assert env.store.acked == 0
    assert env.db.execute("SELECT COUNT(*) FROM staging").fetchone()[0] >= 0


def test_silent_device_is_a_lost_link():
    e = Env("fake")
    try:
        class Silent(FakePort):
            def write(self, data):
                return len(data)

        d = e.downloader(lambda: Silent(e.device, e.state), timeout=0.5, max_attempts=3)
        with pytest.raises(dl.DownloadError) as ei:
            d.run()
        assert "no answer" in str(ei.value)
    finally:
        e.close()


def test_no_port_at_all():
    e = Env("fake", sessions=1)
    try:
        def opener():
            raise Unplugged(2, "No such file or directory")

        with pytest.raises(dl.DownloadError):
            e.downloader(opener).run()
    finally:
        e.close()


class Stranger:
    """Something on the port that answers, but not as an optoread device does."""

    def __init__(self, reply):
        self.reply = reply

    def handle(self, line):
        return self.reply


STRANGERS = {
    "shell": b"sh: 1: @hello: not found\r\n$ ",
    "repl": b"@hello\r\nTraceback (most recent call last):\r\nNameError: name 'hello' isn't defined\r\n>>> ",
    "another @ok": b"@ok modem 1.0\r\n> ",
    "a console without machine commands": b"unknown command\r\n> ",
    "an echo": b"@hello\r\n",
}


@pytest.mark.parametrize("name", sorted(STRANGERS))
def test_a_port_that_is_not_an_optoread_device_is_told_within_seconds(name):
    e = Env("fake", sessions=1)
    try:
        opens = []

        def opener():
            opens.append(1)
            return FakePort(Stranger(STRANGERS[name]), e.state)

        d = e.downloader(opener, timeout=10.0, reconnect_s=30.0)
        d.port_name = "/dev/ttyACM7"  # what the command passes: named in the message
        with pytest.raises(dl.DownloadError) as ei:
            d.run()
        assert str(ei.value) == "/dev/ttyACM7 is not an optoread device (no answer to @hello)"
        assert e.clock.t < 7.0 and len(opens) == 1, (e.clock.t, len(opens))
        assert e.db.execute("SELECT COUNT(*) FROM staging").fetchone()[0] == 0
    finally:
        e.close()


def test_a_port_silent_from_the_start_gives_up_after_one_hello_window():
    e = Env("fake", sessions=1)
    try:
        class Silent(FakePort):
            def write(self, data):
                return len(data)

        d = e.downloader(lambda: Silent(e.device, e.state), timeout=10.0, reconnect_s=30.0)
        d.port_name = "/dev/ttyACM7"
        with pytest.raises(dl.DownloadError) as ei:
            d.run()
        assert "/dev/ttyACM7" in str(ei.value) and "no answer to @hello" in str(ei.value)
        assert e.clock.t < 12.0, e.clock.t
    finally:
        e.close()


def test_a_device_that_drops_the_line_mid_download_still_gets_its_reconnects():
    e = Env("fake", sessions=2, big_rows=400)
    try:
        opens = []

        def opener():
            opens.append(1)
            # every connection but the last dies a little further into the traffic
            d = 600 * len(opens) if len(opens) < 4 else None
            return FakePort(e.device, e.state, d)

        r = e.downloader(opener, timeout=10.0).run()
        assert not r.failed and r.reconnects >= 3 and len(opens) >= 4
        assert_all_stored(e)
    finally:
        e.close()


# ---------------------------------------------------------------- corruption


def _frame_lines(line):
    return line.startswith("@get")


def test_corrupted_frame_is_detected_and_refetched(env):
    # flip one bit in the middle of the big session's traffic
    env.state["flips"] = {4000}
    r = env.downloader(env.opener(flip_filter=_frame_lines)).run()
    assert env.state["flipped"] == 1
    assert r.refetches >= 1 and not r.failed
    assert_all_stored(env)


def test_corruption_anywhere_never_stores_or_acks_wrong_data(env):
    total = _traffic(env)
    step = max(total // 50, 1)
    noticed = 0
    positions = list(range(1, total, step)) + [total - 2]
    for p in positions:
        e = Env(env.kind)
        try:
            e.state["flips"] = {p}
            r = e.downloader().run()
            assert e.state["flipped"] == 1
            assert not r.failed, (p, r.failed)
            assert_all_stored(e)
            # either everything was acknowledged, or (a garbled @list line) nothing was
            everything = r.acked == max(e.originals) == e.store.acked
            assert everything or (r.acked is None and e.store.acked == 0), p
            noticed += bool(r.refetches or r.reconnects)
        finally:
            e.close()
    assert noticed >= len(positions) * 3 // 4  # most flips land in frames and were caught there


def test_session_that_never_arrives_intact_blocks_the_ack_after_it(env):
    # Every frame of session 3 (the big one, sessions 1 and 2 come first) gets a flipped byte.
    class Flipper:
        def __init__(self, device):
            self.device = device

        def handle(self, line):
            out = self.device.handle(line)
            if line.startswith("@get 3 "):
                out = bytearray(out)
                i = 0
                while True:
                    i = out.find(b"@f ", i)
                    if i < 0:
                        break
                    j = out.index(b"\r\n", i)
                    out[j - 3] ^= 0x02
                    i = j
                out = bytes(out)
            return out

    env.device = Flipper(env.device)
    r = env.downloader(max_refetch=3).run()
    assert list(r.failed) == [3] and sorted(r.new) == [1, 2, 4]
    assert r.acked == 2 and env.store.acked == 2
    left = [s.seq for s in env.store.sessions()]
    assert left == [3, 4]  # only what the laptop holds contiguously was freed
    raw, _ = db_sessions(env.db)
    assert sorted(raw) == [1, 2, 4]
    # once the line is clean again, the rest arrives and everything is acked
    env.device = env.device.device
    r2 = env.downloader().run()
    assert r2.new == [3] and r2.acked == 4
    assert_all_stored(env)


def test_check_frame_rejects_every_kind_of_bad_frame():
    payload = bytes(range(100))
    good = ["0", "5", "192", "100", "%08x" % crc32(payload), base64.b64encode(payload).decode()]
    assert dl.check_frame(good, 0, 5, 192) == payload
    bad = [
        (good[:5], "fields"), (["1"] + good[1:], "frame 1"), (good[:1] + ["6"] + good[2:], "session"),
        (good[:2] + ["0"] + good[3:], "offset"), (good[:3] + ["99"] + good[4:], "base64 text"),
        (good[:3] + ["0"] + good[4:], "length"), (good[:3] + ["193"] + good[4:], "length"),
        (good[:4] + ["%08x" % (crc32(payload) ^ 1)] + good[5:], "CRC"),
        (good[:4] + ["zz"] + good[5:], "number"), (good[:4] + ["1234567"] + good[5:], "CRC"),
        (good[:5] + ["!" + good[5][1:]], "base64"),
    ]
    for fields, why in bad:
        with pytest.raises(dl.BadFrame) as ei:
            dl.check_frame(fields, 0, 5, 192)
        assert why in str(ei.value), (why, str(ei.value))


def test_link_accepts_crlf_lf_and_prompt_prefixes():
    class P:
        def __init__(self, data):
            self.data = bytearray(data)
            self.in_waiting = len(data)

        def read(self, n):
            d = bytes(self.data[:n])
            del self.data[:n]
            self.in_waiting = len(self.data)
            return d

    link = dl.Link(P(b"noise\r\n> @ok optoread 1 a=1\n@s 1 2 1 0 0000000a\r\n> "), timeout=0.1)
    got = []
    with pytest.raises(dl.LinkLost):
        for x in link.at_lines():
            got.append(x)
    assert got == [("@ok", ["optoread", "1", "a=1"]), ("@s", ["1", "2", "1", "0", "0000000a"]), (">", None)]
    assert dl.parse_hello(["optoread", "0.1", "sessions=2", "id=abc"])["id"] == "abc"
    with pytest.raises(dl.ProtocolError):
        dl.parse_hello(["other"])
    with pytest.raises(dl.ProtocolError):
        dl.parse_s(["1", "2", "1", "0"])
    with pytest.raises(dl.ProtocolError):
        dl.parse_s(["1", "2", "1", "0", "xyz"])


def test_device_id_from_hello_and_override():
    e = Env("fake", sessions=2)
    try:
        class WithId(FakeConsole):
            def handle(self, line):
                out = FakeConsole.handle(self, line)
                if line.startswith("@hello"):
                    out = out.replace(b" acked=", b" id=e66038b7 acked=")
                return out

        e.device = WithId(e.store)
        e.downloader(ack=False).run()
        assert [r[0] for r in e.db.execute("SELECT DISTINCT device FROM sessions")] == ["e66038b7"]
        r = e.downloader(ack=False, device="bench").run()
        assert sorted(r.new) == [1, 2]  # another device id: a separate copy
        assert e.db.execute("SELECT COUNT(*) FROM sessions").fetchone()[0] == 4
    finally:
        e.close()


def test_device_renumbered_after_erase_gets_new_rows():
    e = Env("fake", sessions=2)
    try:
        e.downloader(ack=False).run()
        # wipe the device's store: the numbering starts again at 1 with other data
        shutil.rmtree(e.tmp + "/store")
        e.store = st.Store(st.OsFs(), e.tmp + "/store", reserve=0)
        e.store.mount()
        w = e.store.begin("MTR-0", "plan-0", T0 + 7 * 86400, None)
        w.value("1.0.1.8.0.255", 1299999, -1, 30)
        w.commit()
        e.device = FakeConsole(e.store)
        r = e.downloader().run()
        assert r.new == [1]
        assert e.db.execute("SELECT COUNT(*) FROM sessions WHERE seq = 1").fetchone()[0] == 2
    finally:
        e.close()


def test_staging_survives_and_is_discarded_when_crc_changes():
    e = Env("fake", sessions=3)
    try:
        db = e.db
        readings_db.stage(db, "optoread", 3, "deadbeef", 0, b"xx")
        assert readings_db.staged(db, "optoread", 3, "deadbeef") == b"xx"
        assert readings_db.staged(db, "optoread", 3, "00000000") == b""
        assert db.execute("SELECT COUNT(*) FROM staging").fetchone()[0] == 0
        readings_db.stage(db, "optoread", 3, "deadbeef", 0, b"ab")
        readings_db.stage(db, "optoread", 3, "deadbeef", 5, b"cd")  # a gap: not trusted
        assert readings_db.staged(db, "optoread", 3, "deadbeef") == b""
    finally:
        e.close()


def test_decode_session_rejects_bad_bytes_and_insert_keeps_them():
    e = Env("fake", sessions=1)
    try:
        data = e.originals[1]
        assert readings_db.decode_session(data, 1).head[0] == "MTR-0"
        for bad in (data[:-1], data[:20], b"\x00" * 20, data + data[:14]):
            with pytest.raises(st.StoreError):
                readings_db.decode_session(bad, 1)
        with pytest.raises(st.StoreError):
            readings_db.decode_session(data, 2)
        sid = readings_db.insert_session(e.db, "x", 1, data[:-1])
        row = e.db.execute("SELECT complete, error FROM sessions WHERE id = ?", (sid,)).fetchone()
        assert row[0] == 0 and row[1].startswith("cannot decode")
        assert readings_db.insert_session(e.db, "x", 1, data[:-1]) is None  # idempotent
    finally:
        e.close()


# ---------------------------------------------------------------- exports and the command line


def test_export_csv_and_json(env, capsys):
    env.downloader().run()
    out = env.tmp + "/csv"
    counts = readings_db.export_csv(env.db, out)
    assert counts["sessions.csv"] == 4 and counts["register_values.csv"] == 24
    assert counts["profile_rows.csv"] == 2 * 2540 and counts["events.csv"] == 8
    import csv

    with open(out + "/register_values.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert rows[0]["obis"] == "1.0.1.8.0.255" and float(rows[0]["scaled"]) == 123456.7
    assert rows[3]["value"] == "00ff10"
    with open(out + "/profile_rows.csv", newline="") as f:
        prow = next(csv.DictReader(f))
    assert prow["column_obis"] == "1.0.1.29.0.255" and prow["unit"] == "Wh" and prow["clock_local"]
    assert prow["clock_utc"] == ""  # the session does not say the meter's UTC offset
    jpath = env.tmp + "/all.json"
    assert readings_db.export_json(env.db, jpath) == 4
    with open(jpath) as f:
        doc = json.load(f)
    assert [s["seq"] for s in doc["sessions"]] == [1, 2, 3, 4]
    assert len(doc["sessions"][2]["profiles"][0]["rows"]) == 2500
    # the same through the command
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="command")
    dl.add_export_parser(sub)
    env.db.close()
    args = p.parse_args(["export", env.dbpath, "--csv", env.tmp + "/csv2", "--json", env.tmp + "/b.json"])
    assert args.func(args) == 0
    env.db = sqlite3.connect(env.dbpath)
    assert os.path.exists(env.tmp + "/csv2/events.csv") and os.path.exists(env.tmp + "/b.json")
    assert "sessions.csv 4" in capsys.readouterr().out
    args = p.parse_args(["export", env.tmp + "/nope.sqlite", "--csv", env.tmp + "/x"])
    assert args.func(args) == 2


def test_progress_text():
    clock = Clock()

    class S:
        def __init__(self):
            self.text = []

        def write(self, s):
            self.text.append(s)

        def flush(self):
            pass

        def isatty(self):
            return True

    s = S()
    p = dl.Progress(s, clock=clock)
    p.start(3, 30000)
    clock.t = 2.0
    p.add_bytes(10240)
    p.session_done()
    assert "sessions 1/3" in p.text() and "10.0 kB/29.3 kB" in p.text() and "5.0 kB/s" in p.text()
    assert "ETA 0:04" in p.text()
    p.finish()
    assert s.text[-1] == "\n" and any(t.startswith("\r") for t in s.text)


# ---------------------------------------------------------------- over a real pty with pyserial


def serve_pty(device):
    """The device on a pty (raw): returns (slave path, stop)."""
    import termios
    import tty

    master, slave = os.openpty()
    tty.setraw(master)
    tty.setraw(slave)
    attrs = termios.tcgetattr(slave)
    attrs[3] &= ~termios.ECHO
    termios.tcsetattr(slave, termios.TCSANOW, attrs)
    path = os.ttyname(slave)
    stop = threading.Event()

    def run():
        import select

        buf = b""
        while not stop.is_set():
            r, _, _ = select.select([master], [], [], 0.05)
            if not r:
                continue
            try:
                chunk = os.read(master, 4096)
            except OSError:
                return
            buf += chunk
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                out = device.handle(line.decode())
                view = memoryview(out)
                while view:
                    n = os.write(master, view[:4096])
                    view = view[n:]

    t = threading.Thread(target=run, daemon=True)
    t.start()

    def close():
        stop.set()
        t.join(2)
        os.close(master)
        os.close(slave)

    return path, close


@pytest.mark.parametrize("kind", DEVICES)
def test_cli_download_over_a_pty(kind, capsys):
    e = Env(kind)
    path, close = serve_pty(e.device)
    try:
        p = argparse.ArgumentParser()
        sub = p.add_subparsers(dest="command")
        dl.add_download_parser(sub)
        e.db.close()
        argv = ["download", "--port", path, "--out", e.dbpath, "--csv", e.tmp + "/csv", "--json",
                e.tmp + "/r.json", "--timeout", "3"]
        args = p.parse_args(argv)
        assert args.func(args) == 0
        cap = capsys.readouterr()
        assert "4 new session(s)" in cap.out and "acked up to 4" in cap.out
        assert "sessions 4/4" in cap.err
        e.db = sqlite3.connect(e.dbpath)
        assert_all_stored(e)
        assert os.path.exists(e.tmp + "/csv/profile_rows.csv")
        e.db.close()
        assert args.func(p.parse_args(argv + ["-q"])) == 0
        assert "0 new session(s), 0 already stored" in capsys.readouterr().out
        e.db = sqlite3.connect(e.dbpath)
        assert e.db.execute("SELECT COUNT(*) FROM sessions").fetchone()[0] == 4
    finally:
        close()
        e.close()


def test_cli_download_no_device(tmp_path, capsys):
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="command")
    dl.add_download_parser(sub)
    args = p.parse_args(["download", "--port", str(tmp_path / "nope"), "--out", str(tmp_path / "r.sqlite"),
                         "-q"])
    assert args.func(args) == 3
    assert "cannot open the port" in capsys.readouterr().err


@pytest.mark.slow
def test_cli_download_from_a_pty_that_is_not_an_optoread_device(tmp_path, capsys):
    import time

    from optoread_tools import cli

    path, close = serve_pty(Stranger(STRANGERS["a console without machine commands"]))
    try:
        t0 = time.monotonic()
        code = cli.main(["download", "--port", path, "--out", str(tmp_path / "r.sqlite"), "-q"])
        took = time.monotonic() - t0
    finally:
        close()
    err = capsys.readouterr().err
    assert code == 3 and took < 8.0, (code, took, err)
    assert err.strip() == "optoread download: %s is not an optoread device (no answer to @hello)" % path


def _foreign_db(path):
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE sessions (who TEXT, token TEXT)")
    db.execute("INSERT INTO sessions VALUES ('ada', 'xyz')")
    db.commit()
    db.close()
    with open(path, "rb") as f:
        return f.read()


def test_download_and_export_refuse_a_database_that_is_not_theirs(tmp_path, capsys):
    from optoread_tools import cli

    other = str(tmp_path / "other.sqlite")
    before = _foreign_db(other)
    code = cli.main(["download", "--port", str(tmp_path / "nope"), "--out", other, "-q"])
    assert code == 2
    code = cli.main(["export", other, "--json", str(tmp_path / "o.json")])
    assert code == 2
    with open(other, "rb") as f:
        assert f.read() == before
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["optoread download: --out %s is not an optoread readings database" % other,
                   "optoread export: %s is not an optoread readings database" % other]
    with pytest.raises(readings_db.NotReadingsDb):
        readings_db.open_db(other)
    # an empty file (a new temp file) and optoread's own database are fine
    empty = tmp_path / "empty.sqlite"
    empty.write_bytes(b"")
    readings_db.open_db(str(empty)).close()
    readings_db.open_db(str(empty)).close()


def test_base64_matches_binascii():
    # the console uses binascii.b2a_base64; the laptop decodes with base64 (strict)
    data = bytes(range(191))
    assert base64.b64decode(binascii.b2a_base64(data)[:-1], validate=True) == data


# ---------------------------------------------------------------- the real firmware on the unix port


ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MICROPYTHON = mpbin.MICROPYTHON  # $OPTOREAD_MICROPYTHON, else .venv/bin/micropython


class CutPort:
    """A pyserial port that is "unplugged" (closed, OSError) after ``budget`` bytes were read."""

    def __init__(self, ser, budget):
        self.ser = ser
        self.budget = budget

    @property
    def in_waiting(self):
        return self.ser.in_waiting

    def _cut(self):
        if self.budget is not None and self.budget <= 0:
            self.ser.close()
            raise OSError(5, "unplugged")

    def read(self, n=1):
        self._cut()
        data = self.ser.read(n if self.budget is None else min(n, self.budget))
        if self.budget is not None:
            self.budget -= len(data)
        return data

    def write(self, data):
        self._cut()
        return self.ser.write(data)

    def reset_input_buffer(self):
        self.ser.reset_input_buffer()

    def close(self):
        self.ser.close()


@pytest.mark.slow
@pytest.mark.skipif(not os.path.exists(MICROPYTHON), reason="no MicroPython unix port")
def test_download_from_main_py_on_the_unix_port_with_unplugs(tmp_path):
    pytest.importorskip("littlefs")
    from littlefs import LittleFS, UserContext
    from optoread_tools.flashdump import LittleFsAdapter
    from optoread_tools.ptybridge import PtyBridge

    # The device's flash: a LittleFS image holding four sessions, as the board would have it.
    blocks = 352
    buf = bytearray(b"\xff" * (4096 * blocks))
    lfs = LittleFS(context=UserContext(buffer=buf), block_size=4096, block_count=blocks, mount=False)
    lfs.format()
    lfs.mount()
    store = make_store("/data", fs=LittleFsAdapter(lfs, 4096))
    originals = {s.seq: session_bytes(store, s.seq) for s in store.sessions()}
    expected = {s.seq: dump_store_session(store, s.seq) for s in store.sessions()}
    lfs.unmount()
    img = tmp_path / "flash.img"
    img.write_bytes(bytes(buf))

    env = dict(os.environ, OPTOREAD_BOARD="unix", OPTOREAD_STORE=str(img), OPTOREAD_PROBE="tcp:127.0.0.1:9")
    argv = [MICROPYTHON, "-X", "heapsize=1m", os.path.join(ROOT, "firmware", "main.py")]
    db = readings_db.open_db(str(tmp_path / "r.sqlite"))
    with PtyBridge(argv, env=env) as br:
        opens = [0]

        def opener():
            opens[0] += 1
            ser = dl.open_serial(br.path)
            # the first two connections are cut in the middle of the big session's frames
            return CutPort(ser, 5000 if opens[0] <= 2 else None)

        r = dl.Downloader(opener, db, timeout=15.0, reconnect_s=10.0, progress=dl.Progress(sys.stderr)).run()
        assert br.alive()
        assert not r.failed and r.reconnects >= 2 and opens[0] >= 3, r.summary()
        assert sorted(r.new) == [1, 2, 3, 4] and r.acked == 4
        e = Env.__new__(Env)
        e.db, e.originals, e.expected = db, originals, expected
        assert_all_stored(e)
        # the device freed exactly what was acknowledged; a second download adds nothing
        r2 = dl.Downloader(lambda: dl.open_serial(br.path), db, timeout=15.0).run()
        assert r2.new == [] and r2.listed == 0
    db.close()
