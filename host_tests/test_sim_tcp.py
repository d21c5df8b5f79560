"""The simulated meters on TCP as on the optical line (tools/optoread_tools/tcpline.py).

Real sockets on loopback, real time: the bytes an emulated RP2040's UART0 bridge would carry.
No baud on TCP: every byte is clean, 7-bit bytes may carry a parity bit, the meter's bytes
come at once, and its baud-independent timing rules (reaction time, turnaround after the
identification) still hold. The firmware's own client and reader drive it where they can
(tools' TcpTransport: set_line is bookkeeping there too).
"""

import os
import socket
import subprocess
import sys
import time

import pytest
from optoread import driver
from optoread.crc import bcc
from optoread.device import reader
from optoread.dlms.hdlc import frame as hdlc
from optoread.iec62056_21 import readout as iec_readout
from optoread.iec62056_21 import signon as iec
from optoread.store import store
from optoread_tools import simcli, tcpline
from optoread_tools.sim_dlms import SimError
from optoread_tools.transports import TcpTransport

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PLANS = os.path.join(ROOT, "firmware", "plans")

pytestmark = pytest.mark.slow  # real time on sockets, like the pty tests


# ---------------------------------------------------------------- helpers


def _even_parity(data):
    """Each 7-bit byte with its even-parity bit in bit 7 (a 7E1 character read as 8N1)."""
    return bytes(b | (0x80 if bin(b).count("1") & 1 else 0) for b in data)


def _recv_until(sock, done, timeout=3.0):
    sock.settimeout(0.1)
    out = bytearray()
    end = time.monotonic() + timeout
    while time.monotonic() < end and not done(out):
        try:
            chunk = sock.recv(4096)
        except socket.timeout:
            continue
        if not chunk:
            break
        out += chunk
    return bytes(out)


def _until(cond, timeout=2.0):
    end = time.monotonic() + timeout
    while not cond() and time.monotonic() < end:
        time.sleep(0.01)
    return cond()


def _line(out):
    return out.endswith(b"\n")


def _block(out):
    i = out.find(b"\x03")
    return i >= 0 and len(out) > i + 1


def _quiet(sock, seconds):
    """Nothing arrives for ``seconds``."""
    return _recv_until(sock, lambda o: len(o) > 0, seconds) == b""


def _sign_on_and_readout(sock, parity=False):
    """IEC 62056-21 mode C by hand: request, identification, ACK 0 5 0 after 250 ms, readout."""
    enc = _even_parity if parity else bytes
    t0 = time.monotonic()
    sock.sendall(enc(b"/?!\r\n"))
    ident = _recv_until(sock, _line)
    t_ident = time.monotonic() - t0
    time.sleep(0.25)
    sock.sendall(enc(b"\x06050\r\n"))
    data = _recv_until(sock, _block)
    return ident, t_ident, data


def _check_readout(data, meter):
    """The bytes as served, and the firmware's own parser agrees: BCC good, the data sets."""
    assert data == meter.readout_bytes()
    assert data[0] == 0x02 and bcc(data, 1, len(data) - 1) == data[-1]
    r = iec_readout.parse_readout(data)
    assert r.bcc_ok is True and r.complete
    assert ("1.8.0", [("012345.678", "kWh")]) in r.datasets
    return r


def _snrm(server_address, client=16):
    buf = bytearray(64)
    n = hdlc.encode_snrm(buf, 0, server_address, hdlc.encode_client_address(client))
    return bytes(buf[:n])


def _frames(data):
    rx = hdlc.FrameReceiver(0x7FF)
    out = []
    off = 0
    while True:
        off = rx.feed(data, off)
        if not rx.ready:
            return out
        out.append(rx.frame.kind)


def _plans():
    out = {}
    for name in os.listdir(PLANS):
        p = reader.load_plan(os.path.join(PLANS, name))
        out[p["name"]] = p
    return out


@pytest.fixture
def st(tmp_path):
    os.makedirs(str(tmp_path / "store"))
    s = store.Store(root=str(tmp_path / "store"))
    s.mount()
    return s


# ---------------------------------------------------------------- IEC 62056-21


@pytest.mark.parametrize("parity", [False, True], ids=["7-bit", "parity-bit-set"])
def test_iec21_mode_c_sign_on_and_readout(parity):
    port, stop = tcpline.start_iec21_tcp()
    try:
        with socket.create_connection(("127.0.0.1", port)) as s:
            ident, t_ident, data = _sign_on_and_readout(s, parity)
            _until(lambda: stop.meter.state == "idle")  # back at 300 after the readout
    finally:
        stop()
    meter = stop.meter
    assert ident == meter.identification == b"/ISK5SIM174-01\r\n"
    # The reaction time (200 ms) runs from the end of the request's last character.
    assert t_ident >= 0.2
    _check_readout(data, meter)
    r = stop.runner
    high = sum(1 for b in _even_parity(b"/?!\r\n\x06050\r\n") if b & 0x80)
    assert high > 0 and r.stats["masked"] == (high if parity else 0) and r.stats["garbled_to_meter"] == 0
    assert r.stats["to_reader"] == len(ident) + len(data)
    # baud switches are bookkeeping: 9600 for the readout, back to 300 after it
    assert [e[3][0] for e in r.trace if e[1] == "M:line"] == [9600, 300]
    assert r.ahead_ms > 0  # the meter's clock counted the line time of what it sent


def test_iec21_turnaround_holds_without_baud():
    # An ACK sent at once after the identification falls inside the meter's 200 ms turnaround:
    # ignored, as on the line. A new request later is answered again (one meter per connection).
    port, stop = tcpline.start_iec21_tcp()
    try:
        with socket.create_connection(("127.0.0.1", port)) as s:
            s.sendall(b"/?!\r\n")
            assert _recv_until(s, _line).startswith(b"/ISK5")
            s.sendall(b"\x06050\r\n")
            assert _quiet(s, 0.8)
            assert stop.meter.stats["ignored"] > 0 and stop.meter.stats["readouts"] == 0
            time.sleep(1.0)  # the meter's ACK timeout (1.5 s after the identification) passes
            ident, _t, data = _sign_on_and_readout(s)
            assert ident.startswith(b"/ISK5")
            _check_readout(data, stop.meter)
    finally:
        stop()


@pytest.mark.parametrize("quirks", [(), ("echo",), ("lowercase_id",)])
def test_firmware_iec_client_reads_over_tcp(quirks):
    port, stop = tcpline.start_iec21_tcp(quirks)
    t = TcpTransport("127.0.0.1", port)
    try:
        progress = []
        r = driver.Driver(t, progress=progress.append).run(iec_readout.readout(iec.Options()))
    finally:
        t.close()
        stop()
    want = iec_readout.parse_readout(stop.meter.readout_bytes())
    assert r.bcc_ok is True and r.datasets == want.datasets
    assert any(p.startswith("identification /") for p in progress)
    if "echo" in quirks:
        assert stop.runner.stats["echoed"] > 0


def test_each_connection_gets_a_fresh_meter():
    port, stop = tcpline.start_iec21_tcp()
    try:
        first = stop.meter
        for _ in range(2):
            with socket.create_connection(("127.0.0.1", port)) as s:
                s.sendall(b"/?!\r\n")
                assert _recv_until(s, _line).startswith(b"/ISK5")
        assert len(stop.runners) == 2 and stop.runners[0].meter is first
        assert stop.runners[1].meter is not first and stop.runners[1].meter.stats["idents"] == 1
    finally:
        stop()


# ---------------------------------------------------------------- DLMS as on the optical line


def test_mode_e_sign_on_then_hdlc_on_the_same_stream():
    port, stop = tcpline.start_dlms_line_tcp(mode_e=True, rows=4)
    try:
        with socket.create_connection(("127.0.0.1", port)) as s:
            s.sendall(_even_parity(b"/?!\r\n"))  # the 7E1 request, parity bits on
            ident = _recv_until(s, _line)
            assert ident.startswith(b"/SIM5\\2")
            time.sleep(0.25)
            s.sendall(b"\x06252\r\n")  # mode E: HDLC at 9600
            snrm = _snrm(stop.meter.dlms.server_address)
            time.sleep(0.3)
            s.sendall(snrm)
            assert _frames(_recv_until(s, lambda o: _frames(bytes(o)) == ["UA"])) == ["UA"]
    finally:
        stop()
    assert stop.meter.state == "hdlc" and stop.meter.dlms.connected
    assert [e[3] for e in stop.runner.trace if e[1] == "M:line"] == [(9600, 8, "N")]


def test_direct_hdlc_ignores_the_sign_on_and_answers_snrm():
    port, stop = tcpline.start_dlms_line_tcp(rows=4)
    try:
        with socket.create_connection(("127.0.0.1", port)) as s:
            s.sendall(b"/?!\r\n")
            assert _quiet(s, 0.6)
            s.sendall(_snrm(stop.meter.dlms.server_address))
            assert _frames(_recv_until(s, lambda o: _frames(bytes(o)) == ["UA"])) == ["UA"]
    finally:
        stop()
    assert stop.meter.dlms.connected and stop.meter.stats["idents"] == 0


def _read_energy(st, mode_e=False, rows=100):
    """The firmware's Reader, plan ``energy``, against the DLMS meter on TCP as on the line;
    returns (summary, progress messages, the stopped simulator)."""
    port, stop = tcpline.start_dlms_line_tcp(mode_e=mode_e, rows=rows)
    t = TcpTransport("127.0.0.1", port)
    msgs = []
    try:
        rd = reader.Reader(t, st, plans=_plans(), clock=lambda: 1700000000, progress=msgs.append)
        summary = rd.read("energy")
    finally:
        t.close()
        stop()
    return summary, msgs, stop


def test_firmware_reader_detects_mode_e_over_tcp(st):
    # The device's whole detection path on one stream: sign-on -> "\2" -> ACK 2 5 2 -> HDLC at
    # 9600 -> association -> plan; every value stored equals what the model serves.
    summary, msgs, stop = _read_energy(st, mode_e=True, rows=200)
    assert summary.complete, summary.error
    assert any("mode E offered" in m for m in msgs)
    from optoread.device import services as device

    d = device.session_json(st, summary.seq)
    assert d["meter"] == "IN12345678"
    model = stop.model
    regs = [v for v in d["values"] if v["obis"].startswith("1.0.")]
    assert regs
    for v in regs:
        assert (v["value"], v["scaler"], v["unit"]) == model.expected_register(v["obis"])


def test_firmware_reader_falls_back_to_direct_hdlc_over_tcp(st):
    summary, msgs, stop = _read_energy(st, rows=100)
    assert summary.complete, summary.error
    assert any("no sign-on answer" in m for m in msgs)
    assert stop.meter.stats["idents"] == 0


# ---------------------------------------------------------------- connect out, loopback only


def _listener():
    ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    ls.bind(("127.0.0.1", 0))
    ls.listen(1)
    ls.settimeout(10)
    return ls


def test_connect_out_serves_the_meter_on_the_accepted_connection():
    ls = _listener()
    try:
        port, stop = tcpline.start_iec21_tcp(connect=("127.0.0.1", ls.getsockname()[1]))
        try:
            c, _ = ls.accept()
            with c:
                ident, _t, data = _sign_on_and_readout(c, parity=True)
                assert ident == stop.meter.identification
                _check_readout(data, stop.meter)
            assert stop.done.wait(3.0) and stop.error is None and stop.runner.closed == "peer"
        finally:
            stop()
    finally:
        ls.close()


def test_connect_out_retries_until_the_peer_listens():
    ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    ls.bind(("127.0.0.1", 0))
    port = ls.getsockname()[1]  # bound, not yet listening: connections are refused
    stop = tcpline.connect_tcp_meter(lambda: simcli.make_meter([]), "127.0.0.1", port, retry_s=5.0)
    try:
        time.sleep(0.5)
        assert not stop.connected.is_set()
        ls.listen(1)
        ls.settimeout(5)
        c, _ = ls.accept()
        with c:
            c.sendall(b"/?!\r\n")
            assert _recv_until(c, _line).startswith(b"/ISK5")
    finally:
        stop()
        ls.close()


class _SocketTransport:
    """The firmware's transport interface on an accepted socket (the emulator's side of the bridge)."""

    def __init__(self, sock):
        self.sock = sock

    def write(self, data):
        self.sock.sendall(bytes(data))

    def drain(self):
        pass

    def set_line(self, baud, bits=8, parity="N", stop=1):
        pass  # no baud on TCP

    def readinto(self, buf, timeout_ms):
        self.sock.settimeout(max(timeout_ms, 1) / 1000.0)
        try:
            data = self.sock.recv(len(buf))
        except socket.timeout:
            return 0
        buf[:len(data)] = data
        return len(data)

    def sleep_ms(self, ms):
        time.sleep(ms / 1000.0)

    def ticks_ms(self):
        return int(time.monotonic() * 1000) & ((1 << 30) - 1)

    def close(self):
        self.sock.close()


def test_connect_dlms_line_as_the_device_tests_use_it(st):
    # The emulator listens (--uart0-tcp PORT), the meter connects out; the firmware's reader on the
    # accepted socket finds no sign-on answer, reads direct HDLC, and stores the model's values.
    ls = _listener()
    try:
        meter = tcpline.connect_dlms_line(ls.getsockname()[1], rows=50)  # returns once connected
        t = _SocketTransport(ls.accept()[0])
        msgs = []
        try:
            rd = reader.Reader(t, st, plans=_plans(), clock=lambda: 1700000000, progress=msgs.append)
            summary = rd.read("energy")
        finally:
            t.close()
            meter.stop()
    finally:
        ls.close()
    assert summary.complete, summary.error
    assert any("direct HDLC" in m for m in msgs)
    from optoread.device import services as device

    d = device.session_json(st, summary.seq)
    regs = [v for v in d["values"] if v["obis"].startswith("1.0.")]
    assert regs and all((v["value"], v["scaler"], v["unit"]) == meter.model.expected_register(v["obis"])
                        for v in regs)


def test_connect_out_gives_up_with_the_reason():
    ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    ls.bind(("127.0.0.1", 0))  # bound, never listening
    try:
        with pytest.raises(SimError, match="cannot connect"):
            tcpline.connect_iec21(ls.getsockname()[1], retry_s=0.5)
    finally:
        ls.close()


def test_loopback_only():
    with pytest.raises(SimError, match="loopback only"):
        tcpline.serve_tcp_meter(lambda: simcli.make_meter([]), host="0.0.0.0")
    with pytest.raises(SimError, match="loopback only"):
        tcpline.connect_tcp_meter(lambda: simcli.make_meter([]), "192.0.2.1", 4059)
    with pytest.raises(SimError, match="loopback only"):
        tcpline.parse_hostport("example.org:4059")
    assert tcpline.parse_hostport("[::1]:4059") == ("::1", 4059)


# ---------------------------------------------------------------- the CLI


def _cli_env():
    return dict(os.environ, PYTHONPATH=os.pathsep.join([os.path.join(ROOT, "tools"),
                                                        os.path.join(ROOT, "firmware")]))


def _cli(*args, timeout=30):
    return subprocess.run([sys.executable, "-m", "optoread_tools.cli", "sim", *args], capture_output=True,
                          text=True, timeout=timeout, cwd=ROOT, env=_cli_env())


def test_cli_dlms_mode_e_on_tcp_prints_its_address():
    p = subprocess.Popen([sys.executable, "-m", "optoread_tools.cli", "sim", "--protocol", "dlms",
                          "--tcp", "0", "--mode-e", "--rows", "4", "--seconds", "20"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT, env=_cli_env())
    try:
        host, port = p.stdout.readline().strip().rsplit(":", 1)
        assert host == "127.0.0.1"
        with socket.create_connection((host, int(port))) as s:
            s.sendall(b"/?!\r\n")
            assert _recv_until(s, _line).startswith(b"/SIM5\\2")
    finally:
        p.terminate()
        p.communicate(timeout=10)


def test_cli_iec21_connect_out_ends_with_the_connection():
    ls = _listener()
    where = "127.0.0.1:%d" % ls.getsockname()[1]
    try:
        p = subprocess.Popen([sys.executable, "-m", "optoread_tools.cli", "sim", "--protocol", "iec21",
                              "--connect", where, "--quirk", "lowercase_id"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
                             env=_cli_env())
        try:
            c, _ = ls.accept()
            with c:
                c.sendall(b"/?!\r\n")
                assert _recv_until(c, _line) == b"/ISk5SIM174-01\r\n"
            out, err = p.communicate(timeout=10)
        finally:
            if p.poll() is None:
                p.kill()
                p.communicate()
    finally:
        ls.close()
    assert p.returncode == 0, err
    assert out.strip() == where


@pytest.mark.parametrize("args, text", [
    (["--protocol", "iec21"], "exactly one of --pty, --tcp PORT or --connect"),
    (["--protocol", "iec21", "--pty", "--tcp", "0"], "exactly one of"),
    (["--protocol", "dlms", "--tcp", "0", "--connect", "127.0.0.1:1"], "exactly one of"),
    (["--protocol", "iec21", "--tcp", "0", "--mode-e"], "are for --protocol dlms"),
    (["--protocol", "iec21", "--tcp", "0", "--line"], "are for --protocol dlms"),
    (["--protocol", "dlms", "--tcp", "0", "--line", "--wrapper"], "--wrapper is for"),
    (["--protocol", "dlms", "--connect", "127.0.0.1:1", "--wrapper"], "--wrapper is for"),
    (["--protocol", "dlms", "--connect", "192.0.2.1:4059"], "connects to loopback only"),
    (["--protocol", "iec21", "--connect", "nowhere"], "expected HOST:PORT"),
    (["--protocol", "iec21", "--tcp", "70000"], "must be 0..65535"),
])
def test_cli_wrong_combinations_give_one_line_and_exit_2(args, text, capsys):
    from optoread_tools import cli

    rc = cli.main(["sim"] + args)
    err = capsys.readouterr().err
    assert rc == 2
    assert text in err and err.count("\n") == 1 and "Traceback" not in err
