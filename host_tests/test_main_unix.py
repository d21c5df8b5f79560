"""firmware/main.py on the MicroPython unix port, driven through a pty like a USB CDC console.

The simulated IEC 62056-21 meter runs on a second pty (OPTOREAD_PROBE=pty:PATH), the store
is a LittleFS image in a temp directory. A reading through the console, the framed
download of what it stored (decoded with the firmware's record parser), a failing
reading (missing probe, unknown plan) that leaves the loop running, and @ack.
"""

import binascii
import os
import select
import subprocess
import time

import mpbin
import pytest
from optoread.crc import crc32
from optoread.store import decode as sd
from optoread.store import records as sr

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MICROPYTHON = mpbin.MICROPYTHON  # $OPTOREAD_MICROPYTHON, else .venv/bin/micropython
MAIN = os.path.join(ROOT, "firmware", "main.py")

pytestmark = pytest.mark.skipif(not os.path.exists(MICROPYTHON), reason="no MicroPython unix port")


class Device:
    """main.py under a pty: ``cmd(line)`` sends a line and returns the answer up to the prompt."""

    def __init__(self, env):
        self.master, slave = os.openpty()
        self.err = open(os.path.join(env["TMP"], "stderr.txt"), "w+")
        self.p = subprocess.Popen([MICROPYTHON, "-X", "heapsize=1m", MAIN], stdin=slave, stdout=slave,
                                  stderr=self.err, env=env, close_fds=True)
        os.close(slave)
        self.buf = b""

    def until(self, marker, timeout=60.0):
        end = time.monotonic() + timeout
        while marker not in self.buf:
            left = end - time.monotonic()
            if left <= 0 or self.p.poll() is not None:
                self.err.seek(0)
                raise AssertionError("no %r in %r (stderr: %s)"
                                     % (marker, self.buf[-600:], self.err.read()[-2000:]))
            r, _, _ = select.select([self.master], [], [], min(left, 0.5))
            if r:
                try:
                    self.buf += os.read(self.master, 65536)
                except OSError:
                    pass
        i = self.buf.index(marker) + len(marker)
        out, self.buf = self.buf[:i], self.buf[i:]
        return out

    def cmd(self, line, timeout=60.0):
        os.write(self.master, line.encode() + b"\n")
        out = self.until(b"\r\n> " if not self.buf.endswith(b"> ") else b"> ", timeout)
        text = out.decode()
        assert text.endswith("> ")
        return [x for x in text[:-2].split("\r\n") if x]

    def close(self):
        os.close(self.master)  # end of input: main.py returns
        try:
            return self.p.wait(10)
        finally:
            if self.p.poll() is None:
                self.p.kill()
            self.err.close()


def _decode_session(raw):
    """Walk the downloaded bytes with the firmware's own record parser."""
    out = []
    rows = sd.RowDecoder()
    off = 0
    mv = memoryview(raw)
    while off < len(raw):
        rtype, _flags, _seq, pay, nxt = sd.check_record(mv, off, len(raw))
        if rtype == sr.T_ROWS:
            rows.block(mv, pay, nxt - sr.CRC_SIZE, lambda c, v: out.append(("row", (c, v))))
        else:
            out.append(sd.decode_payload(rtype, mv, pay, nxt - sr.CRC_SIZE))
        off = nxt
    return out


def _get(dev, seq, off=0):
    lines = dev.cmd("@get %d %d" % (seq, off))
    data = b""
    for i, line in enumerate(lines[:-1]):
        f = line.split(" ")
        assert f[0] == "@f" and int(f[1]) == i and int(f[3]) == off + len(data)
        payload = binascii.a2b_base64(f[6])
        assert len(payload) == int(f[4]) and "%08x" % crc32(payload) == f[5]
        data += payload
    e = lines[-1].split(" ")
    assert e[0] == "@e" and int(e[1]) == seq and int(e[4]) == len(lines) - 1
    return data, int(e[2]), e[3]


def test_main_loop_reads_downloads_and_survives_failures(tmp_path):
    from optoread_tools.ptyline import start_pty_thread
    from optoread_tools.simcli import make_meter

    meter = make_meter([])
    path, stop = start_pty_thread(meter)
    env = dict(os.environ, OPTOREAD_BOARD="unix", OPTOREAD_PROBE="pty:" + path,
               OPTOREAD_STORE=str(tmp_path / "flash.img"), TMP=str(tmp_path))
    dev = Device(env)
    try:
        banner = dev.until(b"> ", 30).decode()
        assert "optoread" in banner and "0 sessions" in banner
        assert dev.cmd("@hello")[0].startswith("@ok optoread ")
        # the machine mode never echoes: the answer is exactly the @ line
        assert dev.cmd("@hello") == [dev.cmd("@hello")[0]]

        out = dev.cmd("read readout", timeout=120)
        text = "\n".join(out)
        assert "session 1: 71234567 complete" in text, text

        lst = dev.cmd("@list")
        assert lst[-1] == "@end 1"
        s = lst[0].split(" ")
        assert s[:2] == ["@s", "1"] and s[3:5] == ["1", "0"]
        raw, size, crc = _get(dev, 1)
        assert len(raw) == size == int(s[2]) and "%08x" % crc32(raw) == crc == s[5]
        half = size // 2 + 1
        tail, size2, crc2 = _get(dev, 1, half)
        assert tail == raw[half:] and (size2, crc2) == (size, crc)
        recs = _decode_session(raw)
        assert recs[0][0] == "head" and recs[0][1][0] == "71234567" and recs[0][1][1] == "readout"
        assert recs[-1][0] == "commit" and recs[-1][1][0] == "complete"
        values = [r[1] for r in recs if r[0] == "value"]
        assert len(values) >= 5

        # failures: a probe that does not exist, a plan that does not exist -- the loop goes on
        assert dev.cmd("config set probe pty:/nonexistent/pty") == ['probe = "pty:/nonexistent/pty"']
        out = dev.cmd("read readout")
        assert any(x.startswith("read failed: ") for x in out), out
        dev.cmd("config set probe pty:" + path)
        out = dev.cmd("read no-such-plan")
        assert any("no plan named" in x for x in out), out
        out = dev.cmd("read readout", timeout=120)
        assert any(x.startswith("session 2: 71234567 complete") for x in out), out

        # a DLMS meter on another line, chosen with the probe setting (what `make demo` does)
        from optoread_tools import sim_dlms

        dpath, dstop = sim_dlms.start_pty(sim_dlms.DlmsServer(sim_dlms.MeterModel(rows=200)))
        try:
            dev.cmd("config set probe pty:" + dpath)
            out = dev.cmd("read energy", timeout=180)
        finally:
            dstop()
        assert any(x.startswith("session 3: IN12345678 complete") for x in out), out
        raw3, _, _ = _get(dev, 3)
        recs = _decode_session(raw3)
        assert recs[0][1][0] == "IN12345678" and sum(1 for r in recs if r[0] == "value") >= 2
        # that reading dropped the IEC 62056-21 module after the unanswered sign-on (RAM): the
        # next IEC meter loads it again
        dev.cmd("config set probe pty:" + path)
        out = dev.cmd("read readout", timeout=120)
        assert any(x.startswith("session 4: 71234567 complete") for x in out), out

        out = "\n".join(dev.cmd("status"))
        assert "sessions   4" in out and "pending    4" in out
        sizes = [int(x.split(" ")[2]) for x in dev.cmd("@list")[:-1]]
        assert dev.cmd("@ack 1") == ["@ok acked=1 freed=%d" % sizes[0]]
        assert " sessions=3 pending=3 acked=1 id=" in dev.cmd("@hello")[0]  # + the device id
        assert dev.cmd("config get password") == ["password is not set"]
        assert dev.cmd("config set password hunter2")[0].startswith("error: console: setting password needs")
        assert dev.cmd("pin set 2468")[0].startswith("PIN set")
        assert dev.cmd("unlock 2468")[0].startswith("unlocked")
        assert dev.cmd("config set password hunter2") == ["password set"]
        assert dev.cmd("config get password") == ["password = ***"]
    finally:
        rc = dev.close()
        stop()
    assert rc == 0
    # the store and the settings survive a restart of main.py
    dev = Device(env)
    try:
        banner = dev.until(b"> ", 30).decode()
        assert "3 sessions, 3 not downloaded" in banner, banner
        assert dev.cmd("config get password") == ["password = ***"]
        assert dev.cmd("@list")[-1] == "@end 3"
        assert dev.cmd("maintenance")[0].startswith("error: console: maintenance needs the device PIN")
        assert dev.cmd("unlock 2468")[0].startswith("unlocked")  # the PIN survived the restart
        os.write(dev.master, b"maintenance\n")
        dev.until(b"leaving the firmware", 30)
        assert dev.p.wait(30) == 0  # main.py ended (a board's REPL would follow)
    finally:
        assert dev.close() == 0
