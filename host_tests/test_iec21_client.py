"""IEC 62056-21 procedures driven through the driver against a scripted line (both interpreters).

The full meter model with quirks lives in tools/ (test_iec21_e2e.py); this checks the
procedures' action sequences and error paths in isolation, on MicroPython too.
"""

import portable
from optoread import crc, driver
from optoread.errors import ChecksumError, Iec21Error, NoAnswerError
from optoread.iec62056_21 import readout as iec_readout
from optoread.iec62056_21 import signon as iec

PORTABLE = True


class ScriptLine:
    """Answers each written message with the next scripted reply; a virtual clock; records settings."""

    def __init__(self, script, echo=False):
        self.script = list(script)
        self.echo = echo
        self.now = 0
        self.inbox = bytearray()
        self.sent = []
        self.log = []
        self.line = (300, 7, "E")

    def write(self, data):
        self.sent.append(bytes(data))
        self.log.append(("tx", self.now, bytes(data), self.line))
        if self.echo:
            self.inbox += data
        if self.script:
            expect, reply = self.script[0]
            if expect is None or bytes(data).startswith(expect):
                self.script.pop(0)
                if reply:
                    self.inbox += reply

    def drain(self):
        self.log.append(("drain", self.now))

    def set_line(self, baud, bits, parity, stop=1):
        self.line = (baud, bits, parity)
        self.log.append(("line", self.now, self.line))

    def readinto(self, buf, timeout_ms):
        if not self.inbox:
            self.now += timeout_ms
            return 0
        n = min(len(buf), len(self.inbox), 5)  # small chunks: data arrives in pieces
        buf[:n] = self.inbox[:n]
        self.inbox = self.inbox[n:]
        self.now += 1
        return n

    def sleep_ms(self, ms):
        self.log.append(("wait", self.now, ms))
        self.now += ms

    def ticks_ms(self):
        return self.now


def _readout(lines, lf=b"\r\n"):
    body = b"".join(ln + lf for ln in lines) + b"!" + lf + b"\x03"
    bcc = 0
    for b in body:
        bcc ^= b
    return b"\x02" + body + bytes((bcc,))


DATA = [b"1.8.0(001234.5*kWh)", b"0.9.1(120000)", b"F.F(00)"]


def test_mode_c_switches_to_the_proposed_baud_after_draining_the_ack():
    line = ScriptLine([(b"/?!", b"/ABC5\\2Model1\r\n"), (b"\x06050\r\n", _readout(DATA))], echo=True)
    r = driver.run(iec_readout.readout(iec.Options()), line)
    assert [a for a, _ in r.datasets] == ["1.8.0", "0.9.1", "F.F"]
    assert r.datasets[0][1] == [("001234.5", "kWh")]
    assert r.bcc_ok is True and r.identification.maker == "ABC" and r.identification.mode_e
    # ACK sent at 300 baud, then a drain, then the switch to 9600.
    i = [k for k, e in enumerate(line.log) if e[0] == "tx" and e[2].startswith(b"\x06")][0]
    assert line.log[i][3][0] == 300
    assert line.log[i + 1][0] == "drain"
    assert ("line", line.log[i + 2][1], (9600, 7, "E")) == line.log[i + 2] or line.log[i + 2][0] == "drain"
    assert line.line == (9600, 7, "E")


def test_reaction_time_follows_the_identification_case():
    for ident, wait in ((b"/ABC5X\r\n", 200), (b"/ABc5X\r\n", 20)):
        line = ScriptLine([(b"/?!", ident), (b"\x06", _readout(DATA))])
        driver.run(iec_readout.readout(iec.Options()), line)
        waits = [e[2] for e in line.log if e[0] == "wait"]
        assert waits[0] == wait, (ident, waits)


def test_settle_delay_and_stay():
    line = ScriptLine([(b"/?!", b"/ABC5X\r\n"), (b"\x06000\r\n", _readout(DATA))])
    driver.run(iec_readout.readout(iec.Options(baud_switch="stay", settle_ms=150)), line)
    assert line.line == (300, 7, "E")
    assert [e[2] for e in line.log if e[0] == "wait"] == [200, 150]


def test_bad_bcc_is_rejected_with_a_clear_error():
    bad = bytearray(_readout(DATA))
    bad[-1] ^= 0x55
    line = ScriptLine([(b"/?!", b"/ABC5X\r\n"), (b"\x06", bytes(bad))])
    e = portable.raises(ChecksumError, driver.run, iec_readout.readout(iec.Options()), line)
    assert "BCC mismatch" in str(e)


def test_no_answer_names_the_cause():
    line = ScriptLine([])
    e = portable.raises(NoAnswerError, driver.run, iec_readout.readout(iec.Options()), line)
    assert "no answer to the sign-on request at 300 baud" in str(e) and "probe" in str(e)
    assert e.tried


def test_auto_falls_back_to_the_initial_baud_when_the_meter_does_not_switch():
    garbage = bytes(0x80 | i for i in range(20))
    line = ScriptLine([(b"/?!", b"/LGZ4ZMD120AP\r\n"), (b"\x06040", garbage),
                       (b"/?!", b"/LGZ4ZMD120AP\r\n"), (b"\x06000", _readout(DATA))])
    r = driver.run(iec_readout.readout(iec.Options()), line)
    assert len(r.datasets) == 3 and line.line == (300, 7, "E")


def test_wakeup_train_then_quiet():
    line = ScriptLine([(b"\x00", None), (b"/?!", b"/ABC5X\r\n"), (b"\x06", _readout(DATA))])
    driver.run(iec_readout.readout(iec.Options(wakeup=True)), line)
    assert line.sent[0] == bytes(66)  # 2.2 s of NUL at 300 baud (10 bits per character)
    assert ("wait", line.log[2][1], 1500) in line.log


def test_mode_a_and_b():
    line = ScriptLine([(b"/?!", b"/ABC0X\r\n" + _readout(DATA))])
    r = driver.run(iec_readout.readout(iec.Options(mode="A")), line)
    assert len(r.datasets) == 3 and line.line == (300, 7, "E")
    line = ScriptLine([(b"/?!", b"/ABCEX\r\n" + _readout(DATA))])
    r = driver.run(iec_readout.readout(iec.Options(mode="B")), line)
    assert line.line == (9600, 7, "E")


def test_mode_d_dsmr_telegram_crc():
    tel = b"/ISK5\\2M550T-1012\r\n\r\n1-0:1.8.1(000671.578*kWh)\r\n!"
    from optoread import crc

    good = tel + ("%04X" % crc.crc16_arc(tel)).encode() + b"\r\n"
    line = ScriptLine([])
    line.inbox += b"garbage)\r\n" + good
    r = driver.run(iec_readout.readout(iec.Options(mode="D")), line)
    assert r.crc_ok is True and r.datasets == [("1-0:1.8.1", [("000671.578", "kWh")])]
    line = ScriptLine([])
    line.inbox += tel + b"0000\r\n"
    portable.raises(ChecksumError, driver.run, iec_readout.readout(iec.Options(mode="D")), line)


def test_mode_e_hands_over_at_the_proposed_baud_8n1():
    line = ScriptLine([(b"/?!", b"/ABC6\\2X\r\n")])
    h = driver.run(iec.mode_e(iec.Options()), line)
    assert h.baud == 19200 and line.line == (19200, 8, "N")
    assert line.sent[-1] == b"\x06262\r\n"


def test_programming_mode_r1_then_r5_for_emh():
    p0 = iec_readout.command("P0", b"(12345678)")
    answer = b"\x021.8.0(0001234.5*kWh)\x03"
    answer += bytes((crc.bcc(answer, 1),))
    line = ScriptLine([(b"/?!", b"/EMH5X\r\n"), (b"\x06051", p0), (b"\x01P1", b"\x06"),
                       (b"\x01R1", b"\x06"), (b"\x01R5", answer), (b"\x01B0", None)])
    values = driver.run(iec_readout.read_registers(iec.Options(), ["1.8.0"], password="secret"), line)
    assert values == [("1.8.0", [("0001234.5", "kWh")])]
    assert line.sent[-1] == iec_readout.command("B0")
    bcc = crc.bcc(b"R1\x021.8.0()\x03")
    assert iec_readout.command("R1", b"1.8.0()") == b"\x01R1\x021.8.0()\x03" + bytes((bcc,))


def test_password_rejected():
    p0 = iec_readout.command("P0", b"(1)")
    line = ScriptLine([(b"/?!", b"/EMH5X\r\n"), (b"\x06051", p0), (b"\x01P1", b"\x15"), (b"\x01B0", None)])
    proc = iec_readout.read_registers(iec.Options(), ["1.8.0"], "x")
    e = portable.raises(Iec21Error, driver.run, proc, line)
    assert "password" in str(e)
    assert line.sent[-1] == iec_readout.command("B0")  # the session is always ended


def test_builders_validate():
    assert iec.sign_on_request("12345678") == b"/?12345678!\r\n"
    portable.raises(Iec21Error, iec.sign_on_request, "1" * 33)
    portable.raises(Iec21Error, iec.sign_on_request, "a/b")
    assert iec.option_select(0, "5", 0) == b"\x06050\r\n"
    portable.raises(Iec21Error, iec.option_select, 3, "5", 0)
    portable.raises(Iec21Error, iec.option_select, 0, "9", 0)
    portable.raises(Iec21Error, iec.Options, settle_ms=5000)
    ident = iec.Identification(b"/LGZ52ZMD120APt.G03\r\n")
    assert (ident.maker, ident.baud, ident.model, ident.reaction_ms) == ("LGZ", 9600, "2ZMD120APt.G03", 200)
    portable.raises(Iec21Error, iec.Identification, b"/12")


def test_echo_filter_releases_a_partial_match():
    class Sink:
        def __init__(self):
            self.got = bytearray()

        def feed(self, mv):
            self.got += mv
            return False

    f = driver.EchoFilter()
    s = Sink()
    f.expect(b"/?!\r\n")
    f.feed(s, memoryview(b"/?"))
    f.feed(s, memoryview(b"!\r\n/ABC"))
    assert bytes(s.got) == b"/ABC"
    f.expect(b"/?!\r\n")
    s.got = bytearray()
    f.feed(s, memoryview(b"/AB"))  # the answer starts like the echo: nothing is lost
    assert bytes(s.got) == b"/AB"


def _recording_sink():
    calls = []

    def sink(address, values):
        # (None, identification text) when an attempt starts, else the data set
        calls.append((address, values if address is not None else values and values.text))

    return calls, sink


def test_sink_hears_who_answered_before_each_attempts_data_sets():
    sets = [("1.8.0", [("001234.5", "kWh")]), ("0.9.1", [("120000", None)]), ("F.F", [("00", None)])]
    for mode, script in (("C", [(b"/?!", b"/ABC5X\r\n"), (b"\x06", _readout(DATA))]),
                         ("A", [(b"/?!", b"/ABC0X\r\n" + _readout(DATA))])):
        calls, sink = _recording_sink()
        driver.run(iec_readout.readout(iec.Options(mode=mode), sink), ScriptLine(script))
        assert calls == [(None, "/ABC5X" if mode == "C" else "/ABC0X")] + sets, (mode, calls)
    # The identification passed in (the reader signed on first): the sink hears it all the same.
    calls, sink = _recording_sink()
    ident = iec.Identification(b"/ABC5X")
    driver.run(iec_readout.readout(iec.Options(), sink, ident=ident),
               ScriptLine([(b"\x06", _readout(DATA))]))
    assert calls == [(None, "/ABC5X")] + sets
    # Mode D: the telegram's own identification line.
    tel = b"/ISK5\\2M550T-1012\r\n\r\n1-0:1.8.1(000671.578*kWh)\r\n!"
    line = ScriptLine([])
    line.inbox += tel + ("%04X" % crc.crc16_arc(tel)).encode() + b"\r\n"
    calls, sink = _recording_sink()
    driver.run(iec_readout.readout(iec.Options(mode="D"), sink), line)
    assert calls == [(None, "/ISK5\\2M550T-1012"), ("1-0:1.8.1", [("000671.578", "kWh")])]


def test_a_retried_readout_is_announced_to_the_sink_before_its_data_sets_come_again():
    # The first attempt stops after one data set (the meter fell silent): the second starts over.
    first = _readout(DATA)[:25]
    line = ScriptLine([(b"/?!", b"/LGZ4ZMD120AP\r\n"), (b"\x06040", first),
                       (b"/?!", b"/LGZ4ZMD120AP\r\n"), (b"\x06000", _readout(DATA))])
    calls, sink = _recording_sink()
    driver.run(iec_readout.readout(iec.Options(), sink), line)
    assert calls == [(None, "/LGZ4ZMD120AP"), ("1.8.0", [("001234.5", "kWh")]),
                     (None, "/LGZ4ZMD120AP"), ("1.8.0", [("001234.5", "kWh")]),
                     ("0.9.1", [("120000", None)]), ("F.F", [("00", None)])]
