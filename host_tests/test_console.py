"""The device console: human commands and the framed download protocol (@hello/@list/@get/@ack).

Drives ``optoread.console.Console`` with an in-memory output sink and a store on a real
file system (a VfsLfs2 RAM block device on the unix port, a host directory on CPython, a folder
on its own flash on a board).
"""

import binascii
import os

import portable
from optoread.crc import crc32
from optoread.device import console as con
from optoread.device import console_admin
from optoread.errors import NoAnswerError, SessionError
from test_store import Env, small_heap, write_sample

PORTABLE = True


class Out:
    def __init__(self):
        self.parts = []

    def write(self, s):
        assert isinstance(s, str)
        self.parts.append(s)

    def take(self):
        s = "".join(self.parts)
        self.parts = []
        return s


class FakeClock:
    def __init__(self, t=1700000000):
        self.t = t
        self.source = "system"
        self.set_at = None

    def now(self):
        return self.t

    def set(self, epoch, source="console"):
        self.t = epoch
        self.source = source
        self.set_at = epoch
        return False


def run(c, line):
    """Run one command; return its answer lines (the prompt checked and stripped)."""
    c.out.take()
    c.handle_line(line)
    text = c.out.take()
    assert text.endswith("> "), repr(text[-40:])
    body = text[:-2]
    assert body == "" or body.endswith("\r\n"), repr(body[-40:])
    return [x for x in body.split("\r\n") if x]


def make_env():
    """A fresh store file system: a host directory on CPython, else test_store's own choice (a
    VfsLfs2 RAM disk on the unix port, a folder on the board's flash where the heap is a board's)."""
    return Env(None if portable.IS_MICROPYTHON else "dir")


def setup(n=3, rows=300, **kw):
    env = make_env()
    store = env.store()
    store.mount()
    for i in range(n):
        write_sample(store, meter="MTR-%d" % (i + 1), rows=rows + 50 * i, seed=i + 1)
    c = con.Console(store, Out(), clock=FakeClock(), **kw)
    return env, store, c


def fetch(c, *seqs):
    """``@get`` each session whole: what lets ``@ack`` free it without the PIN."""
    for seq in seqs:
        assert run(c, "@get %d 0" % seq)[-1].startswith("@e %d " % seq)


def unlock(c, pin="2468"):
    """Choose the device PIN (if none is set) and unlock the console with it."""
    if not c.config.get("pin"):
        assert run(c, "pin set %s" % pin)[0].startswith("PIN set")
    assert run(c, "unlock %s" % pin)[0].startswith("unlocked")


def file_bytes(env, seq):
    return env.read_file(env.path(seq))


def parse_get(lines):
    """Check the @f frames and the @e line; return (payload bytes, start offset, @e fields)."""
    data = b""
    start = None
    for i, line in enumerate(lines[:-1]):
        f = line.split(" ")
        assert f[0] == "@f" and len(f) == 7, line
        frame_no, off, n = int(f[1]), int(f[3]), int(f[4])
        assert frame_no == i
        if start is None:
            start = off
        assert off == start + len(data)
        payload = binascii.a2b_base64(f[6])
        assert len(payload) == n and 0 < n <= con.FRAME_PAYLOAD
        assert "%08x" % crc32(payload) == f[5]
        data += payload
    e = lines[-1].split(" ")
    assert e[0] == "@e" and len(e) == 5, lines[-1]
    assert int(e[4]) == len(lines) - 1
    return data, start, e


# ---------------------------------------------------------------- machine commands


def test_hello():
    env, store, c = setup()
    try:
        out = run(c, "@hello")
        assert out == ["@ok optoread %s sessions=3 pending=3 acked=0" % con.__version__]
        fetch(c, 1)
        run(c, "@ack 1")
        assert run(c, "@hello") == ["@ok optoread %s sessions=2 pending=2 acked=1" % con.__version__]
    finally:
        env.close()


def test_list_sizes_and_crcs():
    env, store, c = setup()
    try:
        out = run(c, "@list")
        assert out[-1] == "@end 3"
        assert len(out) == 4
        for i, line in enumerate(out[:-1]):
            f = line.split(" ")
            assert f[0] == "@s" and int(f[1]) == i + 1
            raw = file_bytes(env, i + 1)
            assert int(f[2]) == len(raw)
            assert f[3] == "1" and f[4] == "0"
            assert f[5] == "%08x" % crc32(raw)
        fetch(c, 1, 2)
        run(c, "@ack 2")
        out = run(c, "@list")
        assert out == [out[0], "@end 1"] and out[0].startswith("@s 3 ")
    finally:
        env.close()


def test_list_marks_incomplete_and_downloaded():
    env, store, c = setup(n=2)
    try:
        w = store.begin("MTR-X", "p", 1)
        w.value("1.8.0", 1)
        w.abort("no answer")
        store.ack(1)
        out = run(c, "@list")
        assert [x.split(" ")[3:5] for x in out[:-1]] == [["1", "1"], ["1", "0"], ["0", "0"]]
        assert out[-1] == "@end 3"
    finally:
        env.close()


def test_get_whole_session_frames():
    env, store, c = setup(rows=300 if small_heap() else 2000)  # a board's heap: ~20 frames a session
    try:
        for seq in (1, 2, 3):
            raw = file_bytes(env, seq)
            out = run(c, "@get %d 0" % seq)
            data, start, e = parse_get(out)
            assert start == 0 and data == raw
            assert int(e[1]) == seq and int(e[2]) == len(raw) and e[3] == "%08x" % crc32(raw)
            assert int(e[4]) == (len(raw) + con.FRAME_PAYLOAD - 1) // con.FRAME_PAYLOAD
        # the offset may be left out
        assert run(c, "@get 1") == run(c, "@get 1 0")
    finally:
        env.close()


def test_get_from_offsets_resumes():
    env, store, c = setup(n=1, rows=300 if small_heap() else 800)
    try:
        raw = file_bytes(env, 1)
        for off in (1, 191, 192, 193, 500, len(raw) - 1):
            out = run(c, "@get 1 %d" % off)
            data, start, e = parse_get(out)
            assert start == off and data == raw[off:], off
            # the whole-session CRC and size never depend on the offset
            assert int(e[2]) == len(raw) and e[3] == "%08x" % crc32(raw)
        out = run(c, "@get 1 %d" % len(raw))
        assert out == ["@e 1 %d %08x 0" % (len(raw), crc32(raw))]
        assert run(c, "@get 1 %d" % (len(raw) + 1)) == ["@err bad offset"]
        assert run(c, "@get 1 -5") == ["@err bad offset"]
        assert run(c, "@get 9 0") == ["@err no such session 9"]
        assert run(c, "@get x 0")[0].startswith("@err ")
        assert run(c, "@get")[0].startswith("@err ")
    finally:
        env.close()


def test_ack_frees_exactly_the_acknowledged_sessions():
    env, store, c = setup(n=4)
    try:
        sizes = [len(file_bytes(env, s)) for s in (1, 2, 3, 4)]
        fetch(c, 1, 2, 3, 4)
        out = run(c, "@ack 2")
        assert out == ["@ok acked=2 freed=%d" % (sizes[0] + sizes[1])]
        assert [s.seq for s in store.sessions()] == [3, 4]
        assert not any(s.downloaded for s in store.sessions())
        # acking again frees nothing; an ack beyond the last session is clamped
        assert run(c, "@ack 2") == ["@ok acked=2 freed=0"]
        assert run(c, "@ack 99") == ["@ok acked=4 freed=%d" % (sizes[2] + sizes[3])]
        assert list(store.sessions()) == []
        # a new session after everything was acked is pending again
        write_sample(store, meter="MTR-9", rows=10)
        assert run(c, "@hello")[0].endswith("sessions=1 pending=1 acked=4")
        assert run(c, "@ack x")[0].startswith("@err ")
    finally:
        env.close()


def test_ack_persists_across_remount():
    env, store, c = setup(n=3)
    try:
        fetch(c, 1)
        run(c, "@ack 1")
        env.remount()
        s2 = env.store()
        s2.mount()
        assert s2.acked == 1
        assert [s.seq for s in s2.sessions()] == [2, 3]
    finally:
        env.close()


def test_machine_output_lines_start_with_at():
    env, store, c = setup(n=2)
    try:
        for cmd in ("@hello", "@list", "@get 1 0", "@get 2 100", "@ack 1", "@nope", "@get 7 0"):
            for line in run(c, cmd):
                assert line.startswith("@"), (cmd, line)
        assert run(c, "@nope") == ["@err unknown command"]
    finally:
        env.close()


def test_show_prints_scaled_values_with_units_and_says_what_is_unknown():
    env, store, c = setup(n=0)
    try:
        w = store.begin("IN12345678", "is15959", None, 1767225600)
        w.value("1.0.32.7.0.255", 23012, -2, 35)
        w.value("1.0.13.7.0.255", 987, None, None)
        w.value("1.6.0", "02.468", None, "kW", "2017-03-10T09:30:00")
        w.profile_begin("1.0.99.1.0.255", [("1.0.12.27.0.255", -2, 35), ("1.0.1.29.0.255", 0, 30),
                                           ("1.0.2.29.0.255", None, None)], 900, 1767225600)
        w.row(1767225600, [22000, 100, 7])
        w.commit()
        out = "\n".join(run(c, "show 1"))
        assert "device time unknown (clock not set)" in out, out
        assert "230.12 V" in out and "987 (unit unknown)" in out
        assert "02.468 kW  at 2017-03-10T09:30:00" in out
        assert "220.00 V, 100 Wh, 7 (unit unknown)" in out
    finally:
        env.close()


def test_hello_says_the_device_id_and_at_clock_needs_the_pin():
    env, store, c = setup(n=0)
    try:
        c.device_id = "e6614104032b4f2d"
        assert run(c, "@hello")[0].endswith(" id=e6614104032b4f2d")
        assert run(c, "@clock 1767225600")[0].startswith("@err")  # no PIN yet
        unlock(c)
        assert run(c, "@clock 1767225600") == ["@ok clock 1767225600 was=system"]
        assert "set by laptop at 2026-01-01T00:00:00" in "\n".join(run(c, "status"))
    finally:
        env.close()


def test_bytes_input_and_blank_lines():
    env, store, c = setup(n=1)
    try:
        assert run(c, b"@hello\r\n")[0].startswith("@ok optoread")
        assert run(c, "") == []
        assert run(c, "   \r") == []
        assert run(c, b"\xff\xfe")[0].startswith("error:")
    finally:
        env.close()


# ---------------------------------------------------------------- human commands


def test_help_status_list_show():
    env, store, c = setup(n=2, rows=20)
    try:
        assert any("read [PLAN]" in x for x in run(c, "help"))
        out = "\n".join(run(c, "status"))
        assert "2023-11-14T22:13:20" in out  # FakeClock
        assert "sessions   2" in out and "pending    2" in out and "free" in out
        out = run(c, "list")
        assert out[-1] == "2 sessions"
        assert "MTR-1" in out[1] and "MTR-2" in out[2] and "complete" in out[1]
        out = "\n".join(run(c, "show 2"))
        assert "meter MTR-2" in out and "1.0.1.8.0.255" in out and "1234567.8 Wh" in out
        assert "profile 1.0.99.1.0.255" in out and "... 70 rows" in out
        assert "power down" in out and "complete" in out
        assert run(c, "show 9")[0].startswith("error:")
        assert run(c, "show")[0].startswith("error:")
        assert run(c, "frobnicate")[0].startswith("unknown command")
    finally:
        env.close()


def test_plans_and_meters():
    class Meters:
        def meters(self):
            return ["A1", "B2"]

        def get(self, m):
            return {"protocol": "iec21", "password": "x"} if m == "A1" else {"protocol": "dlms"}

    env, store, c = setup(n=0, plans={"readout": {"name": "readout", "description": "mode C"},
                                      "energy": {"name": "energy"}},
                          meters=Meters())
    try:
        c.config.set("plan", "readout")
        out = run(c, "plans")
        assert out == [" energy       ", "*readout      mode C", "2 plans"]
        out = run(c, "meters")
        assert out[0].startswith("A1") and "protocol=iec21" in out[0] and "password" not in out[0]
        assert out[-1] == "2 meters"
    finally:
        env.close()


def test_config_secrets_never_echoed():
    env, store, c = setup(n=0)
    try:
        unlock(c)
        for key in ("password", "ek", "ak", "key", "hls_key"):
            out = run(c, "config set %s S3cr3tValue99" % key)
            assert out == ["%s set" % key]
        assert run(c, "config set client 32") == ["client = 32"]
        assert run(c, "config set auth low") == ['auth = "low"']
        out = run(c, "config get")
        text = "\n".join(out)
        assert "S3cr3tValue99" not in text
        assert "password = ***" in out and "ek = ***" in out and "client = 32" in out
        assert "pin = ***" in out  # the PIN's hash, never shown either
        assert run(c, "config get password") == ["password = ***"]
        assert run(c, "config get nothere") == ["nothere is not set"]
        assert c.config.get("password") == "S3cr3tValue99"  # stored as text, even if numeric
        run(c, "config set password 12345678")
        assert c.config.get("password") == "12345678"
        assert run(c, "config")[0].startswith("error: ")
        assert run(c, "config set password")[0].startswith("error: ")
    finally:
        env.close()


def settings_path(env, name):
    """A settings file's path in the store's folder (made if missing), as on the device's flash."""
    try:
        os.mkdir(env.root)
    except OSError:
        pass
    return env.root + "/" + name


def test_config_file_round_trip():
    env = make_env()
    try:
        path = settings_path(env, "config.json")
        cfg = con.Config(path)
        cfg.set("client", "48")
        cfg.set("ek", "hex:000102030405060708090a0b0c0d0e0f")
        cfg.set("password", "ABCDEFGH")
        again = con.Config(path)
        assert again.get("client") == 48
        d = con.dlms_settings(again)
        assert d["client"] == 48 and d["password"] == b"ABCDEFGH" and d["ek"] == bytes(range(16))
        assert "ak" not in d
        assert con.Config(env.root + "/missing.json").keys() == []
        assert again.problem is None
    finally:
        env.close()


def test_damaged_meter_profiles_are_reported_and_the_last_good_copy_used():
    if small_heap():  # the reader and its DLMS modules would stay on a board's heap for this file
        portable.skip("imports the reader (~40 KB): CPython and the unix ports run it")
    from optoread.device.reader import MeterProfiles

    env = make_env()
    try:
        path = settings_path(env, "meters.json")
        m = MeterProfiles(path)
        m.put("M1", {"protocol": "dlms"})
        m.put("M2", {"protocol": "iec21"})  # the first version is now meters.json.bak
        assert MeterProfiles(path).problem is None
        with open(path, "w") as f:
            f.write('{"M1": {"proto')
        again = MeterProfiles(path)
        assert again.get("M1") == {"protocol": "dlms"} and again.get("M2") is None
        assert again.problem == path + " was damaged or missing: its last good copy is used"
    finally:
        env.close()


def test_damaged_config_is_reported_and_the_last_good_copy_used():
    env = make_env()
    try:
        path = settings_path(env, "config.json")
        cfg = con.Config(path)
        cfg.set("client", "48")
        cfg.set("plan", "is15959")  # the first version is now config.json.bak
        with open(path, "w") as f:
            f.write('{"client": 48, "pla')  # bit rot, or a write nobody finished
        again = con.Config(path)
        assert again.get("client") == 48 and again.get("plan") is None  # the last good copy
        assert "config.json was damaged (kept as config.json.bad)" in again.problem, again.problem
        assert "config.json.bad" in os.listdir(env.root)
        third = con.Config(path)  # repaired: nothing to say at the next boot
        assert third.problem is None and third.get("client") == 48
        os.remove(path)
        assert con.Config(path).problem == "config.json was missing: restored from the last good copy"
    finally:
        env.close()


def test_clock_set():
    env, store, c = setup(n=0)
    try:
        unlock(c)
        assert run(c, "clock set 2026-03-01T12:34:56") == ["clock 2026-03-01T12:34:56"]
        assert c.clock.now() == 1772368496
        assert run(c, "clock") == ["clock 2026-03-01T12:34:56"]
        for bad in ("2026-02-30T00:00:00", "2026-03-01", "2026-3-1T1:2:3", "xxxx-03-01T12:34:56"):
            assert run(c, "clock set " + bad)[0].startswith("error: console:"), bad
        assert c.clock.now() == 1772368496
        assert console_admin.parse_iso("1970-01-01 00:00:00") == 0
    finally:
        env.close()


def test_device_clock_offset():
    clk = con.DeviceClock()
    clk.set(2000000000)
    assert abs(clk.now() - 2000000000) <= 2


def test_erase():
    env, store, c = setup(n=4)
    try:
        sizes = [len(file_bytes(env, s)) for s in (1, 2, 3, 4)]
        out = run(c, "erase")
        assert "--yes" in out[0] and len(list(store.sessions())) == 4
        store.ack(2)
        unlock(c)
        out = run(c, "erase --yes")
        assert out == ["erased 2 sessions (%d bytes); 2 not downloaded kept" % (sizes[0] + sizes[1])]
        assert [s.seq for s in store.sessions()] == [3, 4]
        out = run(c, "erase --yes --force")
        assert out == ["erased 2 sessions (%d bytes); 0 not downloaded kept" % (sizes[2] + sizes[3])]
        assert list(store.sessions()) == []
        # sequence numbers keep growing after an erase
        write_sample(store, rows=5)
        assert [s.seq for s in store.sessions()] == [5]
    finally:
        env.close()


# ---------------------------------------------------------------- readings


class FakeTransport:
    def __init__(self):
        self.closed = False

    def close(self):
        self.closed = True


class FakeReader:
    """Writes a session like the real Reader, or fails the way a reading can fail."""

    def __init__(self, store, progress, mode, log):
        self.store = store
        self.progress = progress
        self.mode = mode
        self.transport = FakeTransport()
        log.append(self)

    def read(self, plan, meter):
        self.progress("signing on")
        if self.mode == "raise_early":
            raise NoAnswerError("no answer from the meter")
        if self.mode == "bad_plan":
            raise SessionError("no plan named %r" % plan, field="plan")
        w = self.store.begin(meter or "MTR-R", plan or "generic", 1700000000)
        w.value("1.0.1.8.0.255", 4711, 0, 30)
        if self.mode == "crash":
            raise TypeError("a plan step blew up")  # leaves the writer open
        if self.mode == "noanswer":
            return w.abort("no answer from the meter: check the probe is seated")
        return w.commit()


def reading_console(store, out, modes, log, results, config=None):
    def factory(progress):
        return FakeReader(store, progress, modes.pop(0), log)

    return con.Console(store, out, reader_factory=factory, clock=FakeClock(), config=config,
                       on_read=lambda o, s, e: results.append((o, s.seq if s else None, e)))


def test_read_commands_and_outcomes():
    env = make_env()
    try:
        store = env.store()
        store.mount()
        modes = ["ok", "noanswer", "crash", "ok", "raise_early", "bad_plan", "ok"]
        log, results = [], []
        c = reading_console(store, Out(), modes, log, results, config={"plan": "readout"})
        out = run(c, "read energy --meter M7")
        assert out[0] == "reading plan energy meter M7 ..."
        assert "  signing on" in out
        assert out[-1] == "session 1: M7 complete, 1 values, 0 rows"
        assert results[-1] == ("ok", 1, None)
        assert log[-1].transport.closed
        out = run(c, "read")  # default plan from config
        assert out[0] == "reading plan readout ..."
        assert results[-1][0:2] == ("noanswer", 2)
        assert "check the probe" in out[-1]
        # a crash in the middle of a session: reported, session sealed, console goes on
        out = run(c, "read")
        assert results[-1][0] == "failed" and "TypeError" in results[-1][2]
        assert any(x.startswith("read failed: TypeError") for x in out)
        assert log[-1].transport.closed
        s3 = store.session(3)
        assert not s3.complete and "crashed" in s3.error
        out = run(c, "read")
        assert results[-1] == ("ok", 4, None)
        run(c, "read")
        assert results[-1][0:2] == ("noanswer", None)
        run(c, "read nosuch")
        assert results[-1][0] == "failed" and "nosuch" in results[-1][2]
        assert "last read  failed" in "\n".join(run(c, "status"))
        assert run(c, "read a b")[0].startswith("error: ")
        assert run(c, "read --meter")[0].startswith("error: ")
        assert [s.seq for s in store.sessions()] == [1, 2, 3, 4]
        # the download sees the sessions written by readings
        data, start, e = parse_get(run(c, "@get 3 0"))
        assert data == file_bytes(env, 3)
    finally:
        env.close()


def test_read_without_probe():
    env, store, c = setup(n=0)
    try:
        assert run(c, "read") == ["read: no probe on this console"]
    finally:
        env.close()


def test_is_secret():
    for k in ("password", "ek", "ak", "key", "hls_key", "llsPassword", "secret_x"):
        assert con.is_secret(k), k
    for k in ("client", "server", "auth", "plan", "peak", "break"):
        assert not con.is_secret(k), k


def test_store_error_is_answered_not_raised():
    env, store, c = setup(n=1)
    try:
        store.mounted = False  # e.g. the flash went away
        assert run(c, "@hello") == ["@err store: store not mounted [store]"]
        assert run(c, "@list") == ["@err store: store not mounted [store]"]
        assert run(c, "list")[-1] == "error: store: store not mounted [store]"
        store.mounted = True
        assert run(c, "@list")[-1] == "@end 1"
    finally:
        env.close()
