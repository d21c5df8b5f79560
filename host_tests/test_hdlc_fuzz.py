"""HDLC fuzzing (hypothesis) and gurux-dlms peer checks; CPython only."""

import binascii
import os

import portable
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from optoread.dlms.hdlc import connection as hdlc_conn
from optoread.dlms.hdlc import frame as hdlc
from optoread.dlms.hdlc import parse as hdlc_parse
from optoread.errors import LinkError, OptoreadError

EXAMPLES = int(os.getenv("FUZZ_EXAMPLES", "300"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])

CLIENT = hdlc.encode_client_address(16)
SERVER = hdlc.encode_server_address(1, 17, 2)
SERVER4 = hdlc.encode_server_address(1, 2836, 4)


def _frame(dst, src, control, info=None, segmented=False):
    buf = bytearray(2100)
    n = hdlc.encode_frame(buf, 0, dst, src, control, info, segmented=segmented)
    return bytes(buf[:n])


def _seed_frames():
    """Generated frames plus every HDLC frame of the shared captures (when present)."""
    frames = [
        _frame(SERVER, CLIENT, 0x93),
        _frame(CLIENT, SERVER, 0x73, binascii.unhexlify("81801205019a06019a070400000001080400000001")),
        _frame(CLIENT, SERVER4, 0x30, b"\xe6\xe7\x00" + bytes(range(256))),
        _frame(CLIENT, SERVER, 0x96, b"\x7e" * 116, True),
        _frame(CLIENT, SERVER, 0x97, b"\x54\x00\x10"),
    ]
    d = portable.shared_dir("captures", "hdlc-dlms")
    if d:
        for name in portable.listdir(d):
            wanted = ("u9n_", "iskra_am550_3seg", "aidon_se", "landisgyr_zmf")
            if name.endswith(".hex") and name.startswith(wanted):
                for line in portable.read_bytes(d + "/" + name).decode().splitlines():
                    raw = binascii.unhexlify(line[3:].replace(" ", ""))
                    if raw[:1] == b"\x7e":
                        frames.append(raw)
    return frames


SEEDS = _seed_frames()


def _mutate(raw, edits):
    b = bytearray(raw)
    for pos, val, op in edits:
        if not b:
            break
        i = pos % len(b)
        if op == 0:
            b[i] = val
        elif op == 1:
            del b[i]
        else:
            b.insert(i, val)
    return bytes(b)


def _run(rx, chunks):
    out = []
    for c in chunks:
        off = 0
        while True:
            off = rx.feed(c, off)
            assert 0 <= rx.pending <= rx.capacity
            if not rx.ready:
                break
            f = rx.frame
            assert f.fcs_ok and f.info_off + f.info_len <= f.length
            out.append(f.raw())
        assert off == len(c)
    return out


def _check_parse(data):
    for strict in (True, False):
        try:
            f = hdlc_parse.parse_frame(data, 0, len(data), strict)
        except LinkError:
            continue
        assert f.start + f.length <= len(data) and f.info_off + f.info_len <= f.start + f.length
        if f.kind in ("SNRM", "UA"):
            try:
                hdlc.parse_params(f.buf, f.info_off, f.info_off + f.info_len)
            except LinkError:
                pass


def _check_receiver(data, cut):
    cap = hdlc.frame_capacity(600)
    whole = hdlc.FrameReceiver(cap)
    a = _run(whole, [data])
    single = hdlc.FrameReceiver(cap)
    b = _run(single, [data[i : i + 1] for i in range(len(data))])
    split = hdlc.FrameReceiver(cap)
    c = _run(split, [data[:cut], data[cut:]])
    assert a == b == c
    stats = [(r.frames, r.errors, r.dropped_bytes, r.last_error) for r in (whole, single, split)]
    assert stats[0] == stats[1] == stats[2]
    for r in (whole, single, split):
        assert len(r.buf) == cap
    return a


@FUZZ
@given(st.binary(max_size=600))
def test_random_bytes_parse_frame(data):
    _check_parse(data)
    _check_parse(b"\x7e" + data)
    _check_parse(b"\x7e\xa0" + data)


@FUZZ
@given(st.binary(max_size=400), st.integers(0, 400))
def test_random_bytes_receiver(data, cut):
    _check_receiver(data, cut)
    _check_receiver(b"\x7e\xa0" + data + b"\x7e", cut)


@FUZZ
@given(st.sampled_from(SEEDS),
       st.lists(st.tuples(st.integers(0, 2000), st.integers(0, 255), st.integers(0, 2)),
                min_size=1, max_size=4),
       st.integers(0, 2000))
def test_mutated_frames(raw, edits, cut):
    m = _mutate(raw, edits)
    _check_parse(m)
    good = SEEDS[0]
    got = _check_receiver(m + good, cut % (len(m) + 1))
    # a valid frame after the damage is never lost (it is at the end, after a flag)
    assert got and got[-1] == good[1:-1]


@FUZZ
@given(st.lists(st.sampled_from(SEEDS), min_size=1, max_size=6), st.binary(max_size=20), st.integers(0, 3000))
def test_streams_of_real_frames_with_noise(frames, noise, cut):
    data = noise.join(frames)
    got = _check_receiver(data, cut % (len(data) + 1))
    if b"\x7e" not in noise:
        # noise without flags between complete frames never costs a good frame
        want = [f[1:-1] for f in frames if hdlc_parse.parse_frame(f, strict=False).fcs_ok
                and len(f) - 2 <= hdlc.frame_capacity(600)]
        assert got == want


@FUZZ
@given(st.lists(st.sampled_from(SEEDS + [_frame(CLIENT, SERVER, c) for c in (0x73, 0x1F, 0x31, 0x10, 0x13)]),
                max_size=8))
def test_connection_survives_arbitrary_frames(frames):
    for server in (False, True):
        conn = hdlc_conn.HdlcConnection(SERVER if server else CLIENT, CLIENT if server else SERVER, server,
                                        check_addresses=False, rx_capacity=4096)
        if not server:
            conn.connect()
        for raw in frames:
            f = hdlc_parse.parse_frame(raw, strict=False)
            if not f.fcs_ok:
                continue
            try:
                conn.receive_frame(f)
            except LinkError:
                pass
            assert conn.out_len <= len(conn.out)


def test_only_optoread_errors_escape_bad_arguments():
    buf = bytearray(8)
    for fn, args in (
        (hdlc.encode_frame, (buf, 0, CLIENT, SERVER, 0x10, b"x" * 10)),
        (hdlc.encode_frame, (buf, -1, CLIENT, SERVER, 0x10)),
        (hdlc_parse.parse_frame, (b"\x7e\xa0\x07", 0, 10)),
        (hdlc.parse_params, (b"\x81\x80\xff",)),
        (hdlc.FrameReceiver, (5000,)),
    ):
        with pytest.raises(OptoreadError):
            fn(*args)


# ---------------------------------------------------------------- gurux-dlms as a peer


def _gurux_client(max_rx=128, max_tx=128, win_rx=1, win_tx=1):
    gx = pytest.importorskip("gurux_dlms")
    from gurux_dlms.enums import Authentication, InterfaceType

    c = gx.GXDLMSClient(True, 16, gx.GXDLMSClient.getServerAddress(1, 17), Authentication.NONE, None,
                        InterfaceType.HDLC)
    c.hdlcSettings.maxInfoRX = max_rx
    c.hdlcSettings.maxInfoTX = max_tx
    c.hdlcSettings.windowSizeRX = win_rx
    c.hdlcSettings.windowSizeTX = win_tx
    return c


@pytest.mark.parametrize("params", [(128, 128, 1, 1), (300, 512, 1, 3), (1024, 64, 7, 2)])
def test_gurux_snrm_parses_and_our_server_answers(params):
    max_tx, max_rx, win_tx, win_rx = params
    c = _gurux_client(max_rx, max_tx, win_rx, win_tx)
    snrm = bytes(c.snrmRequest())
    f = hdlc_parse.parse_frame(snrm)
    assert f.kind == "SNRM" and (f.dst_upper, f.dst_lower, f.src) == (1, 17, 16)
    assert hdlc.parse_params(f.buf, f.info_off, f.info_off + f.info_len) == params
    server = hdlc_conn.HdlcConnection(SERVER, CLIENT, True, 256, 256, 3, 3)
    assert server.receive_frame(f) == hdlc_conn.EV_CONNECTED
    ua = hdlc_parse.parse_frame(bytes(server.output()))
    c.parseUAResponse(bytes(ua.info()))
    s = c.hdlcSettings
    # gurux reads the UA from the server's view: its TX is the server's RX
    assert (s.maxInfoTX, s.maxInfoRX) == (server.max_info_rx, server.max_info_tx)
    assert (s.maxInfoTX, s.maxInfoRX) == (min(max_tx, 256), min(max_rx, 256))


def test_gurux_aarq_frame_parses_and_matches_our_encoding():
    c = _gurux_client()
    frames = [bytes(x) for x in c.aarqRequest()]
    assert len(frames) == 1
    f = hdlc_parse.parse_frame(frames[0])
    assert (f.kind, f.ns, f.nr, f.pf, f.segmented) == ("I", 0, 0, 1, False)
    assert hdlc.strip_llc(f.buf, f.info_off, f.info_off + f.info_len, response=False)
    buf = bytearray(200)
    n = hdlc.encode_i(buf, 0, SERVER, CLIENT, 0, 0, f.info())
    assert bytes(buf[:n]) == frames[0]


def test_gurux_serial_number_address_agrees():
    gx = pytest.importorskip("gurux_dlms")
    for sn in (0, 1, 9999, 12345678, 40799390, 2**31 - 1):
        value = gx.GXDLMSClient.getServerAddressFromSerialNumber(sn)
        assert value == (1 << 14) | hdlc.server_address_from_serial(sn)
