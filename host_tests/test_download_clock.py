"""``optoread download`` and the device: its id files the sessions, and with the device PIN it
sets the device clock from the laptop's, saying so (issue #18)."""

import os
import sys

sys.path.insert(0, os.path.dirname(__file__))

from test_download import Env  # noqa: E402

T = 1796000000  # 2026-11-30T00:53:20Z: the laptop's time in these tests


def _env_with_pin(pin="2468"):
    e = Env("console", sessions=1, big_rows=10)
    c = e.device.console
    c.device_id = "e6614104032b4f2d"
    c.handle_line("pin set %s" % pin)
    assert c.config.get("pin")
    return e, c


def test_download_files_under_the_device_id_and_sets_the_clock_with_the_pin():
    e, c = _env_with_pin()
    try:
        r = e.downloader(pin="2468", now=lambda: T).run()
        assert r.device == "e6614104032b4f2d"
        assert r.clock == "set to 2026-11-30T00:53:20Z (it was unknown: never set)", r.clock
        assert c.clock.source == "laptop" and c.clock.set_at == T
        assert "device clock set to" in r.summary()
        assert c.unlocked_at is None  # locked again afterwards
        got = e.db.execute("SELECT DISTINCT device FROM sessions").fetchall()
        assert got == [("e6614104032b4f2d",)]
    finally:
        e.close()


def test_a_wrong_pin_leaves_the_clock_alone_and_says_why():
    e, c = _env_with_pin()
    try:
        before = c.clock.source
        r = e.downloader(pin="0000", now=lambda: T).run()
        assert r.clock.startswith("not set: ") and "PIN" in r.clock, r.clock
        assert c.clock.source == before
        assert r.new  # the download itself went on
    finally:
        e.close()


def test_without_a_pin_the_clock_is_not_touched():
    e, c = _env_with_pin()
    try:
        r = e.downloader(now=lambda: T).run()
        assert r.clock is None and c.clock.set_at is None
    finally:
        e.close()
