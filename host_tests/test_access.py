"""Who may delete readings: the device console's access rules (issue 17, finding 6), and console
lines longer than the console takes (finding 8).

Anyone with a USB cable reaches the console. Readings not yet downloaded are the one thing the
device must never lose, so freeing them (``@ack`` beyond what the laptop fetched, ``erase``),
changing credentials and setting the clock need the device PIN; ``@ack N`` without it frees
only sessions whose content ``@get`` sent since the last ``@hello``.
"""

import os

import pytest
from optoread.device import console as con
from test_console import FakeClock, Out, fetch, run, unlock
from test_store import Env, write_sample


def _console(n=3):
    env = Env("dir")
    store = env.store(reserve=0)
    store.mount()
    for i in range(n):
        write_sample(store, meter="M%d" % i, rows=20)
    return env, store, con.Console(store, Out(), clock=FakeClock())


def test_ack_without_fetch_frees_nothing():
    env, store, c = _console()
    try:
        run(c, "@hello")
        out = run(c, "@ack 99999999999999999999")
        assert out[0].startswith("@err"), out
        assert store.count() == 3 and store.acked == 0
        fetch(c, 1)
        out = run(c, "@ack 3")  # 2 and 3 were not fetched
        assert out == ["@err console: session 2 was not fetched with @get since @hello: "
                       "not acknowledged [seq]"]
        assert store.count() == 3
        assert run(c, "@ack 1")[0].startswith("@ok acked=1 ")  # what was fetched goes
        fetch(c, 2, 3)
        run(c, "@hello")  # a new conversation: what the last one fetched no longer counts
        assert run(c, "@ack 3")[0].startswith("@err console: session 2 ")
        fetch(c, 2, 3)
        assert run(c, "@ack 99999999999999999999")[0].startswith("@ok acked=3 ")
        assert store.count() == 0
    finally:
        env.close()


def test_ack_of_anything_with_the_pin():
    env, store, c = _console()
    try:
        unlock(c)
        assert run(c, "@ack 2")[0].startswith("@ok acked=2 ")
        assert store.count() == 1
    finally:
        env.close()


def test_erase_force_needs_the_pin():
    env, store, c = _console()
    try:
        out = run(c, "erase --yes --force")
        assert store.count() == 3, out
        assert out == ["error: console: erase needs the device PIN, and none is set yet: choose one with "
                       "'pin set NEW' (optoread pin --port DEV) [pin]"]
        assert run(c, "pin set 1357")[0].startswith("PIN set")
        assert run(c, "erase --yes --force") == ["error: console: erase needs the device PIN: 'unlock PIN' "
                                                 "first [pin]"]
        assert run(c, "unlock 9999") == ["error: console: wrong PIN [pin]"]
        unlock(c, "1357")
        assert run(c, "erase --yes --force")[0].startswith("erased 3 sessions")
        assert store.count() == 0
    finally:
        env.close()


def test_pin_rules():
    env, store, c = _console(0)
    try:
        for bad in ("pin set 12", "pin set 1234567890123", "pin set 12a4", "pin 1234", "pin set"):
            assert run(c, bad)[0].startswith("error: console:"), bad
        assert run(c, "unlock 1234") == ["error: console: no device PIN is set yet: choose one with "
                                         "'pin set NEW' [pin]"]
        run(c, "pin set 1234")
        stored = c.config.get("pin")
        assert "1234" not in stored and len(stored) == 16 + 1 + 64  # salt:hash, hex
        assert run(c, "pin set 5678")[0].startswith("error: console: changing the PIN needs the device PIN")
        assert run(c, "config set pin 0000")[0].startswith("error: console: setting pin needs the device PIN")
        # three wrong PINs shut unlock for a minute, even for the right one
        for _ in range(3):
            assert run(c, "unlock 0000") == ["error: console: wrong PIN [pin]"]
        assert run(c, "unlock 1234") == ["error: console: too many wrong PINs: try again in a minute [pin]"]
        c.clock.t += 61
        unlock(c, "1234")
        assert run(c, "lock") == ["locked"]
        assert run(c, "clock set 2030-01-01T00:00:00")[0].startswith("error: console: clock set needs")
        unlock(c, "1234")
        c.clock.t += 301  # idle for more than 5 minutes: locked again
        assert run(c, "clock set 2030-01-01T00:00:00")[0].startswith("error: console: clock set needs")
        unlock(c, "1234")
        run(c, "@hello")  # the laptop's conversation starts locked
        assert run(c, "erase --yes")[0].startswith("error: console: erase needs")
        unlock(c, "1234")
        assert run(c, "pin set 5678")[0].startswith("PIN set")
        unlock(c, "5678")
        assert run(c, "maintenance")[0].startswith("maintenance: leaving") and c.maintenance
    finally:
        env.close()


def test_credentials_and_clock_need_the_pin():
    env, store, c = _console(0)
    try:
        run(c, "config set password 12345678")
        assert c.config.get("password") is None
        t = c.clock.now()
        run(c, "clock set 2030-01-01T00:00:00")
        assert c.clock.now() == t
        run(c, "config set client 48")  # not a secret: no PIN
        assert c.config.get("client") == 48
        unlock(c)
        assert run(c, "config set password 12345678") == ["password set"]
        assert run(c, "clock set 2030-01-01T00:00:00") == ["clock 2030-01-01T00:00:00"]
    finally:
        env.close()


# ---------------------------------------------------------------- finding 8: long lines


def test_overlong_console_line_is_refused(tmp_path):
    import mpbin
    from test_main_unix import Device

    if not os.path.exists(mpbin.MICROPYTHON):
        pytest.skip("no MicroPython unix port")
    env = dict(os.environ, OPTOREAD_BOARD="unix", OPTOREAD_PROBE="tcp:127.0.0.1:9",
               OPTOREAD_STORE=str(tmp_path / "flash.img"), TMP=str(tmp_path))
    dev = Device(env)
    try:
        dev.until(b"> ", 30)
        out = dev.cmd("config set note " + "v" * 2000)
        assert any("too long" in x for x in out), out
        assert out == ["error: line too long (more than 512 bytes): ignored"], out
        assert dev.cmd("@get 1 " + "0" * 600) == ["@err line too long (more than 512 bytes): ignored"]
        out = dev.cmd("config get note")
        assert out == ["note is not set"], out
        assert dev.cmd("@hello")[0].startswith("@ok optoread")  # the console carries on
    finally:
        dev.close()


def test_a_damaged_session_is_listed_as_such():
    env, store, c = _console(2)
    try:
        path = env.path(1)
        data = bytearray(env.read_file(path))
        data[len(data) // 3] ^= 0x08  # one flipped bit a third of the way in: rot, not a torn tail
        with open(path, "wb") as f:
            f.write(bytes(data))
        env.remount()
        s2 = env.store(reserve=0)
        report = s2.mount()
        assert report.damaged == 1 and report.unreadable == 0
        c2 = con.Console(s2, Out(), clock=FakeClock())
        out = run(c2, "list")
        row = [x for x in out if x.lstrip().startswith("1 ")][0]
        assert " damaged " in row, out
        assert any("damaged on flash" in x for x in out), out
        assert " complete " in [x for x in out if x.lstrip().startswith("2 ")][0]
    finally:
        env.close()


def test_the_console_answers_during_a_reading_and_abort_stops_it(tmp_path):
    """A reading runs inside main.py's loop; between the probe's reads the console still answers:
    status says a reading runs, other commands are told to wait, abort stops it (kept incomplete)."""
    import mpbin
    from optoread_tools import sim_dlms
    from test_main_unix import Device

    if not os.path.exists(mpbin.MICROPYTHON):
        pytest.skip("no MicroPython unix port")
    server = sim_dlms.DlmsServer(sim_dlms.MeterModel(rows=400), quirks={"slow"})  # 1.5 s an answer
    path, stop = sim_dlms.start_pty(server)
    env = dict(os.environ, OPTOREAD_BOARD="unix", OPTOREAD_PROBE="pty:" + path,
               OPTOREAD_STORE=str(tmp_path / "flash.img"), TMP=str(tmp_path))
    dev = Device(env)
    try:
        dev.until(b"> ", 30)
        os.write(dev.master, b"read energy\n")
        dev.until(b"(client 16)\r\n", 60)  # the reading goes on, slowly, meanwhile
        want = "reading in progress ('abort' stops it; it ends by its deadline in any case)"
        assert want in dev.cmd("status")
        assert "@err busy: a reading is running" in dev.cmd("@hello")
        assert any(x.startswith("busy: a reading is running") for x in dev.cmd("list"))
        os.write(dev.master, b"abort\n")
        out = dev.until(b"\r\n> ", 60).decode()
        out += dev.until(b"\r\n> ", 60).decode()  # the abort's answer, then the reading's end
        assert "stopped at the console ('abort')" in out and "incomplete" in out, out
        assert dev.cmd("@hello")[0].startswith("@ok optoread")  # the console is itself again
        assert " incomplete " in dev.cmd("list")[1]
    finally:
        dev.close()
        stop()
