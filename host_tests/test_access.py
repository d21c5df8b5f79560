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
from test_console import FakeClock, Out, run
from test_store import Env, write_sample


def _console(n=3):
    env = Env("dir")
    store = env.store(reserve=0)
    store.mount()
    for i in range(n):
        write_sample(store, meter="M%d" % i, rows=20)
    return env, store, con.Console(store, Out(), clock=FakeClock())


def _fetch(c, seq):
    lines = run(c, "@get %d 0" % seq)
    assert lines[-1].startswith("@e %d " % seq), lines[-1]


@pytest.mark.xfail(strict=True, reason="issue 17 finding 6: @ack frees sessions nobody fetched")
def test_ack_without_fetch_frees_nothing():
    env, store, c = _console()
    try:
        run(c, "@hello")
        out = run(c, "@ack 99999999999999999999")
        assert out[0].startswith("@err"), out
        assert store.count() == 3 and store.acked == 0
        _fetch(c, 1)
        out = run(c, "@ack 3")  # 2 and 3 were not fetched
        assert out[0].startswith("@err"), out
        assert store.count() == 3
    finally:
        env.close()


@pytest.mark.xfail(strict=True, reason="issue 17 finding 6: erase --yes --force needs no PIN")
def test_erase_force_needs_the_pin():
    env, store, c = _console()
    try:
        out = run(c, "erase --yes --force")
        assert store.count() == 3, out
        assert any("PIN" in x for x in out), out
    finally:
        env.close()


@pytest.mark.xfail(strict=True, reason="issue 17 finding 6: credentials and the clock change without a PIN")
def test_credentials_and_clock_need_the_pin():
    env, store, c = _console(0)
    try:
        run(c, "config set password 12345678")
        assert c.config.get("password") is None
        t = c.clock.now()
        run(c, "clock set 2030-01-01T00:00:00")
        assert c.clock.now() == t
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
