#!/usr/bin/env python3
"""Mutation fuzzer over every optoread parser (`make fuzz`; issue #7 "Robustness").

For each parser (a *target* below) a plain, fast mutation loop -- no hypothesis --
feeds ``--inputs`` inputs (default 1,000,000; ``--quick``: 20,000) derived from seeds:
real captures from ``../shared/captures`` when present, else built-in samples, plus
frames recorded from the in-process DLMS simulator. Work is spread over ``--jobs``
processes (default 2). Per parser it reports inputs, distinct error messages (numbers
folded), the slowest input, and the tracemalloc peak while parsing 64 KB hostile
inputs and a sample of mutated ones.

Only ``OptoreadError`` subclasses may come out of a parser. Anything else -- or an
input running longer than ``HANG_S`` -- is a *crash*: printed with the input as hex,
and the exit status is 1. Unless ``--no-write``, the counts are merged into
``docs/benchmarks.json`` (key ``fuzz_inputs``) and the table in ``docs/fuzzing.md``
is replaced between its markers.

The targets are importable (``TARGETS``, ``build(name)``): host_tests/test_fuzz_all.py
drives the same harnesses with hypothesis.
"""

import argparse
import json
import os
import random
import re
import signal
import sys
import time
import tracemalloc

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
for _p in (os.path.join(ROOT, "firmware"), os.path.join(ROOT, "tools")):
    if _p not in sys.path:
        sys.path.insert(0, _p)

from optoread import crc, obis  # noqa: E402
from optoread.device import console as con  # noqa: E402
from optoread.dlms import push, security, wrapper  # noqa: E402
from optoread.dlms.acse import apdu as acse  # noqa: E402
from optoread.dlms.acse import server as acse_server  # noqa: E402
from optoread.dlms.axdr import compact as axdr_compact  # noqa: E402
from optoread.dlms.axdr import decode as axdr  # noqa: E402
from optoread.dlms.axdr import encode as axdr_encode  # noqa: E402
from optoread.dlms.client.session import Session, Settings  # noqa: E402
from optoread.dlms.hdlc import frame as hdlc  # noqa: E402
from optoread.dlms.hdlc import parse as hdlc_parse  # noqa: E402
from optoread.dlms.xdlms import apdu as xdlms  # noqa: E402
from optoread.dlms.xdlms import get as xdlms_get  # noqa: E402
from optoread.dlms.xdlms import notification as xdlms_push  # noqa: E402
from optoread.dlms.xdlms import server as xdlms_server  # noqa: E402
from optoread.dlms.xdlms import service_errors as xdlms_errors  # noqa: E402
from optoread.dlms.xdlms import set_action as xdlms_set  # noqa: E402
from optoread.dlms.xdlms import sn as xdlms_sn  # noqa: E402
from optoread.errors import OptoreadError  # noqa: E402
from optoread.iec62056_21 import readout as iec_readout  # noqa: E402
from optoread.iec62056_21 import signon as iec  # noqa: E402
from optoread.store import records as sr  # noqa: E402
from optoread.store import store  # noqa: E402

HANG_S = 10.0  # one input taking longer than this is reported as a hang
HOSTILE_LEN = 65536
MAX_LEN = 4096  # mutated inputs are cut to this (the 64 KB inputs are fed separately)
EK = bytes(range(16))
AK = bytes(range(0x10, 0x20))
SYSTEM_TITLE = b"SIMMETER"
T0 = 1767225600  # 2026-01-01 00:00:00 UTC

NOTED = set()  # folded messages of OptoreadErrors a target caught itself (see note())


def note(e):
    """Note a caught OptoreadError's folded message (for the distinct-error counts)."""
    if len(NOTED) < 5000:
        NOTED.add(fold(e))


def shared_captures():
    """The capture directory (``$OPTOREAD_SHARED/captures`` or ``../shared/captures``), or None."""
    base = os.getenv("OPTOREAD_SHARED") or os.path.join(os.path.dirname(ROOT), "shared")
    path = os.path.join(base, "captures")
    return path if os.path.isdir(path) else None


def _capture_files(sub, ext):
    d = shared_captures()
    if d is None or not os.path.isdir(os.path.join(d, sub)):
        return []
    names = sorted(n for n in os.listdir(os.path.join(d, sub)) if n.endswith(ext))
    return [os.path.join(d, sub, n) for n in names]


def iec_samples():
    """Raw IEC 62056-21 readouts: the captures when present, else built-in samples."""
    out = []
    for p in _capture_files("iec62056-21", ".txt"):
        with open(p, "rb") as f:
            out.append(f.read())
    if not out:
        out = [
            b"/ISk5\\2MT174-0001\r\n\x06050\r\n\x021-0:1.8.1*01(0006334.294*kWh)(1703100930)\r\n"
            b"0.9.1(201455)9.4(088*C&082*C)\r\nF.F()\r\n!\r\n\x03\x00",
            b"/LGZ4ZMF100AC.M27\r\n\x020.0(        18438636)\r\nC.1.1(        )\r\n32.7(233*V)\r\n!\r\n\x03a",
            b"/KFM5KAIFA-METER\r\n\r\n1-3:0.2.8(42)\r\n0-0:1.0.0(161113205757W)\r\n"
            b"1-0:1.8.1(001581.123*kWh)\r\n0-1:24.2.1(161129200000W)(00981.443*m3)\r\n!6796\r\n",
        ]
    return out


def hdlc_capture_frames():
    """(direction, bytes) of every line of the HDLC/APDU captures (empty without ../shared)."""
    out = []
    for p in _capture_files("hdlc-dlms", ".hex"):
        with open(p) as f:
            for line in f:
                line = line.strip()
                if line[:3] in ("C> ", "M> "):
                    try:
                        out.append((line[0], bytes.fromhex(line[3:])))
                    except ValueError:
                        pass
    return out


def frames_to_apdus(data):
    """Information fields (LLC stripped) of the HDLC frames in ``data``, segments joined."""
    rx = hdlc.FrameReceiver(2047)
    ra = hdlc.Reassembler(8192)
    out = []
    off = 0
    while True:
        off = rx.feed(data, off, len(data))
        if not rx.ready:
            break
        f = rx.frame
        if f.info_len == 0 and not f.segmented:
            continue
        try:
            if ra.add(f):
                mv = ra.data()
                try:
                    p = hdlc.strip_llc(mv, 0, len(mv))
                except OptoreadError:
                    p = 0
                out.append(bytes(mv[p:]))
        except OptoreadError:
            ra.reset()
    return out


# ---------------------------------------------------------------- in-memory file system


class MemFile:
    """A file of :class:`MemFs` (readinto/read/write/tell/seek/flush/close)."""

    def __init__(self, fs, path, mode):
        self.fs = fs
        self.path = path
        if "r" in mode:
            if path not in fs.files:
                raise OSError(2, "ENOENT")
            self.data = fs.files[path]
            self.pos = 0
        elif "w" in mode:
            self.data = fs.files[path] = bytearray()
            self.pos = 0
        else:
            self.data = fs.files.setdefault(path, bytearray())
            self.pos = len(self.data)

    def readinto(self, buf):
        n = max(0, min(len(buf), len(self.data) - self.pos))
        buf[:n] = self.data[self.pos:self.pos + n]
        self.pos += n
        return n

    def read(self, n=-1):
        end = len(self.data) if n is None or n < 0 else min(len(self.data), self.pos + n)
        b = bytes(self.data[self.pos:end])
        self.pos = max(self.pos, end)
        return b

    def write(self, b):
        b = bytes(b)
        self.data[self.pos:self.pos + len(b)] = b
        self.pos += len(b)
        return len(b)

    def tell(self):
        return self.pos

    def seek(self, off, whence=0):
        self.pos = off if whence == 0 else self.pos + off if whence == 1 else len(self.data) + off
        return self.pos

    def flush(self):
        pass

    def close(self):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *a):
        return False


class MemFs:
    """The store's file-system seam in RAM: ``files`` maps path -> bytearray."""

    def __init__(self, files=None, dirs=("/store",)):
        self.files = {k: bytearray(v) for k, v in (files or {}).items()}
        self.dirs = set(dirs)

    def open(self, path, mode):
        return MemFile(self, path, mode)

    def listdir(self, path):
        if path not in self.dirs:
            raise OSError(2, "ENOENT")
        pre = path + "/"
        return [k[len(pre):] for k in self.files if k.startswith(pre) and "/" not in k[len(pre):]]

    def mkdir(self, path):
        self.dirs.add(path)

    def remove(self, path):
        if self.files.pop(path, None) is None:
            raise OSError(2, "ENOENT")

    def rename(self, old, new):
        if old not in self.files:
            raise OSError(2, "ENOENT")
        self.files[new] = self.files.pop(old)

    def free(self, path):
        return (1 << 20) - sum(len(v) for v in self.files.values())


def sample_store_files():
    """A store with three sessions (values, events, two profiles, an incomplete one): {path: bytes}."""
    fs = MemFs(dirs=())
    s = store.Store(fs, "/store", reserve=0)
    s.mount()
    for k, (rows, ncols, outcome) in enumerate(((40, 1, None), (12, 3, "timeout"), (5, 2, None))):
        w = s.begin("MTR-%d" % k, "plan-A", T0, T0 - 7)
        w.value("1.0.1.8.0.255", 12345678, -1, 30)
        w.value("0.0.96.1.0.255", "SN\u00e9 42", None, None)
        w.value("1.0.32.7.0.255", 230.5, 0, "V")
        w.value("0.0.42.0.0.255", b"\x00\xff", None, None)
        w.value("1.0.1.8.1.255", -(2 ** 63), 0, 30)
        w.event(T0 - 3600, 7, "power down")
        w.event(None, 8, None)
        cols = tuple(("1.0.%d.29.0.255" % (i + 1), -2, 30) for i in range(ncols))
        w.profile_begin("1.0.99.1.0.255", cols, 900, T0 - rows * 900)
        acc = [1000] * ncols
        for i in range(rows):
            acc = [a + (i * 37 + j * 11) % 400 for j, a in enumerate(acc)]
            w.row(None if i % 3 == 1 else T0 - (rows - i) * 900, list(acc))
        w.profile_begin("1.0.99.2.0.255", ["1.0.1.8.0.255"], 0, None)
        w.row(T0, [100000 + k])
        if outcome is None:
            w.commit()
        else:
            w.abort(outcome)
    s.ack(1)
    return {k: bytes(v) for k, v in fs.files.items()}


def reseal_records(data):
    """Fix length fields and CRC-32s of the record chain in ``data`` so mutations reach the decoders."""
    d = bytearray(data)
    off = 0
    hs, cs = sr.HEADER_SIZE, sr.CRC_SIZE
    while off + hs + cs <= len(d):
        n = int.from_bytes(d[off + 8:off + 10], "little")
        n = min(n, len(d) - off - hs - cs, sr.MAX_PAYLOAD)
        d[off + 8:off + 10] = n.to_bytes(2, "little")
        end = off + hs + n
        d[end:end + cs] = crc.crc32(bytes(d[off:end])).to_bytes(4, "little")
        off = end + cs
    return bytes(d[:off])


# ---------------------------------------------------------------- session recording


class _RecTransport:
    """Virtual-clock transport recording each write and the simulator's reply to it."""

    def __init__(self, server):
        self.server = server
        self.inbox = bytearray()
        self.now = 0
        self.log = []  # [(written, reply)]

    def write(self, data):
        out = self.server.receive(bytes(data))
        self.log.append((bytes(data), out))
        self.inbox += out
        return len(data)

    def drain(self):
        pass

    def set_line(self, baud, bits, parity, stop=1):
        pass

    def readinto(self, buf, timeout_ms):
        if not self.inbox:
            self.now += timeout_ms
            return 0
        n = min(len(buf), len(self.inbox))
        buf[:n] = self.inbox[:n]
        del self.inbox[:n]
        self.now += 1
        return n

    def sleep_ms(self, ms):
        self.now += ms

    def ticks_ms(self):
        return self.now

    def close(self):
        pass


class Hang(Exception):
    """An input ran too long or a transport saw an endless read loop (never an OptoreadError)."""


class ReplayTransport(_RecTransport):
    """Replays recorded replies; the reply to write number ``at`` is the hostile ``data``.

    Runs on a virtual clock; more than ``max_reads`` reads is reported as a hang.
    """

    def __init__(self, replies, at, data, max_reads=20000):
        _RecTransport.__init__(self, None)
        self.replies = replies
        self.at = at
        self.data = data
        self.reads = 0
        self.max_reads = max_reads

    def write(self, data):
        k = len(self.log)
        self.log.append(None)
        if k == self.at:
            self.inbox += self.data
        elif k < len(self.replies):
            self.inbox += self.replies[k]
        return len(data)

    def readinto(self, buf, timeout_ms):
        self.reads += 1
        if self.reads > self.max_reads:
            raise Hang("session read %d times without giving up" % self.reads)
        return _RecTransport.readinto(self, buf, timeout_ms)


_VOLTAGE = "1.0.32.7.0.255"
_BLOCK_LOAD = bytes((1, 0, 99, 1, 0, 255))


def _entry(first, last):
    b = bytearray(32)
    return bytes(b[:xdlms.encode_entry_descriptor(b, 0, first, last)])


def _session_ops():
    # name -> (session settings, server kwargs, operation on an open Session)
    return {
        "register": ({}, {}, lambda s: s.get(3, _VOLTAGE, 2)),
        "scaler": ({}, {}, lambda s: s.get(3, _VOLTAGE, 3)),
        "profile": ({}, {}, lambda s: s.get(7, _BLOCK_LOAD, 2, sink=lambda v: None)),
        "entries": ({}, {}, lambda s: s.get(7, _BLOCK_LOAD, 2, selector=2, params=_entry(2, 5),
                                          sink=lambda v: None)),
        "many": ({}, {}, lambda s: s.get_many([(3, _VOLTAGE, 2), (3, _VOLTAGE, 3), (3, "1.0.1.8.0.255", 2)])),
    }


_SESSION_CACHE = {}


def session_recordings():
    """{op: (settings kwargs, replies per write, index of the operation's first write)} from the simulator."""
    if _SESSION_CACHE:
        return _SESSION_CACHE
    from optoread_tools import sim_dlms

    for name, (skw, srv_kw, op) in _session_ops().items():
        srv = sim_dlms.DlmsServer(sim_dlms.MeterModel(rows=8), **srv_kw)
        t = _RecTransport(srv)
        kw = dict(timeout_ms=500, retries=2)
        kw.update(skw)
        s = Session(Settings(**kw), t)
        s.open()
        at = len(t.log)
        op(s)
        s.close()
        _SESSION_CACHE[name] = (kw, [r for _, r in t.log], at)
    return _SESSION_CACHE


def _run_session(op_name, data, wrap_apdu):
    kw, replies, at = session_recordings()[op_name]
    if wrap_apdu:
        # Re-frame the hostile APDU as the recorded reply's I-frame (addresses, N(S)/N(R), LLC).
        rx = hdlc.FrameReceiver(2047)
        rep = replies[at]
        rx.feed(rep, 0, len(rep))
        f = rx.frame
        info = b"\xe6\xe7\x00" + bytes(data[:120])
        buf = bytearray(len(info) + 32)
        dst = rep[3:3 + f.dst_size]
        src = rep[3 + f.dst_size:3 + f.dst_size + f.src_size]
        n = hdlc.encode_frame(buf, 0, dst, src, f.control, info)
        data = bytes(buf[:n])
    t = ReplayTransport(replies, at, data)
    s = Session(Settings(**kw), t)
    s.open()
    try:
        _session_ops()[op_name][2](s)
    finally:
        s.close()


# ---------------------------------------------------------------- targets

TARGETS = {}


def target(name):
    """Register ``fn() -> (seeds, run)`` as fuzz target ``name``."""

    def deco(fn):
        TARGETS[name] = fn
        return fn

    return deco


_BUILT = {}


def build(name):
    """(seeds, run) of target ``name``, built once per process."""
    if name not in _BUILT:
        seeds, run = TARGETS[name]()
        _BUILT[name] = ([bytes(s) for s in seeds if s] or [b"\0"], run)
    return _BUILT[name]


def _lines(readouts):
    out = []
    for r in readouts:
        for ln in r.replace(b"\r", b"\n").split(b"\n"):
            if ln:
                out.append(ln)
    return out


@target("iec_readout")
def _t_iec_readout():
    def run(data):
        r = iec_readout.parse_readout(data)
        r.as_dict()
    return iec_samples(), run


@target("iec_readout_bytewise")
def _t_iec_readout_bytes():
    def run(data):
        rx = iec_readout.ReadoutReceiver(ident=True)
        for i in range(len(data)):
            if rx.feed(data[i:i + 1]):
                break
        rx.finish()
    return iec_samples(), run


@target("iec_identification")
def _t_iec_ident():
    seeds = [ln for ln in _lines(iec_samples()) if ln[:1] == b"/"]
    seeds += [b"/?!\r\n/ISk5\\2MT174-0001\r\n", b"/ELL5\\253833635_A\r\n", b"\x7f\x7f/ACE0\\3k260V01.19\r\n"]

    def run(data):
        try:
            iec.Identification(data)
        except OptoreadError as e:
            note(e)
        rx = iec.IdentReceiver()
        for i in range(len(data)):
            if rx.feed(data[i:i + 1]):
                rx.reset()
    return seeds, run


@target("iec_data_line")
def _t_iec_line():
    seeds = [ln for ln in _lines(iec_samples()) if b"(" in ln][:400]

    def run(data):
        iec_readout.parse_data_line(data)
    return seeds, run


@target("iec_message")
def _t_iec_message():
    seeds = [b"\x06", b"\x15", b"\x01P0\x02(1234567)\x03\x60", b"\x021.8.0(001234.5*kWh)\x03\x3c",
             b"\x01B0\x03q", b"\x02(ERROR)\x03\x01"]

    def run(data):
        rx = iec_readout.MessageReceiver()
        for i in range(len(data)):
            if rx.feed(data[i:i + 1]):
                rx.reset()
    return seeds, run


def hdlc_seeds():
    seeds = [d for _, d in hdlc_capture_frames() if d[:1] == b"\x7e"]
    for _kw, replies, _at in session_recordings().values():
        seeds += [r for r in replies if r]
    return seeds


@target("hdlc_receiver")
def _t_hdlc_receiver():
    def run(data):
        rx = hdlc.FrameReceiver(hdlc.frame_capacity(256))
        ra = hdlc.Reassembler(1024)
        step = 1 + len(data) % 5
        for p in range(0, len(data), step):
            off, end = p, min(len(data), p + step)
            while True:
                off = rx.feed(data, off, end)
                if not rx.ready:
                    break
                f = rx.frame
                if f.kind in ("UA", "SNRM") and f.info_len:
                    hdlc.parse_params(f.buf, f.info_off, f.info_off + f.info_len)
                elif f.kind == "FRMR":
                    hdlc_parse.describe_frmr(f.buf, f.info_off, f.info_len)
                elif f.info_len or f.segmented:
                    if ra.add(f):
                        mv = ra.data()
                        hdlc.strip_llc(mv, 0, len(mv))
    return hdlc_seeds(), run


@target("hdlc_parse_frame")
def _t_hdlc_frame():
    def run(data):
        mv = memoryview(data)
        for strict in (True, False):
            try:
                off = data.find(b"\x7e")
                hdlc_parse.parse_frame(mv, max(off, 0), len(data), strict)
            except OptoreadError as e:
                note(e)
    return hdlc_seeds(), run


def apdu_seeds():
    """APDUs: every information field of the captures and of the simulator recordings."""
    seeds = []
    for _, d in hdlc_capture_frames():
        seeds += frames_to_apdus(d) if d[:1] == b"\x7e" else [d]
    for _kw, replies, _at in session_recordings().values():
        for r in replies:
            seeds += frames_to_apdus(r)
    b = bytearray(512)
    seeds.append(bytes(b[:acse.encode_rlrq(b, 0)]))
    seeds.append(bytes(b[:acse_server.encode_rlre(b, 0)]))
    seeds.append(bytes(b[:acse.encode_aarq(b, 0)]))
    seeds.append(bytes(b[:acse_server.encode_aare(b, 0)]))
    seeds.append(bytes(b[:xdlms_server.encode_exception_response(b, 0, 1, 2)]))
    seeds.append(bytes(b[:xdlms_server.encode_confirmed_service_error(b, 0, 5, 6, 1)]))
    seeds.append(bytes(b[:xdlms_get.encode_get_request(b, 0, 0xC1, 3, _BLOCK_LOAD, 2)]))
    seeds.append(bytes(b[:xdlms_server.encode_gbt(b, 0, True, 1, 0, b"\x0f\x01\x02\x03")]))
    return [s for s in seeds if s]


def _touch(r):
    # Follow the lazily decoded parts of a parse result (values, user-information, checks).
    for meth in ("value", "check", "conformance_names", "data", "result_name", "diagnostic_name"):
        fn = getattr(r, meth, None)
        if callable(fn):
            try:
                fn()
            except OptoreadError as e:
                note(e)
    for item in getattr(r, "items", None) or ():
        for meth in ("value",):
            fn = getattr(item, meth, None)
            if callable(fn):
                try:
                    fn()
                except OptoreadError as e:
                    note(e)


_APDU_PARSERS = (
    acse_server.parse_aarq, acse.parse_aare, acse_server.parse_rlrq, acse.parse_rlre,
    acse_server.parse_initiate_request, acse.parse_initiate_response,
    xdlms_server.parse_get_request, xdlms_get.parse_get_response, xdlms_set.parse_set_response,
    xdlms_set.parse_action_response, xdlms_sn.parse_read_response, xdlms_sn.parse_write_response,
    xdlms_push.parse_data_notification, xdlms_push.parse_gbt, xdlms_errors.parse_exception_response,
    xdlms_errors.parse_confirmed_service_error, xdlms_errors.error_from_apdu,
)


@target("apdu")
def _t_apdu():
    def run(data):
        mv = memoryview(data)
        n = len(data)
        for fn in _APDU_PARSERS:
            try:
                r = fn(mv, 0, n)
            except OptoreadError as e:
                note(e)
                continue
            if r is not None:
                _touch(r)
        if n and data[0] in (0xC4, 0xC5, 0xC7):
            for fn in (xdlms_get.parse_get_response, xdlms_set.parse_set_response,
                       xdlms_set.parse_action_response):
                try:
                    _touch(fn(mv, 0, n, False))
                except OptoreadError as e:
                    note(e)
    return apdu_seeds(), run


@target("apdu_gbt_assembler")
def _t_gbt():
    b = bytearray(256)
    blocks = []
    for k in range(1, 4):
        n = xdlms_server.encode_gbt(b, 0, k == 3, k, 0, bytes(range(k * 10, k * 10 + 20)))
        blocks.append(bytes(b[:n]))
    seeds = [b"".join(bytes((len(x),)) + x for x in blocks)]

    def run(data):
        # The input is a sequence of length-prefixed GBT APDUs.
        asm = xdlms_push.GbtAssembler(bytearray(512))
        off = 0
        while off < len(data):
            k = data[off]
            blk = memoryview(data)[off + 1:off + 1 + k]
            off += 1 + k
            try:
                if asm.feed(blk, 0, len(blk)):
                    asm.apdu()
            except OptoreadError as e:
                note(e)
    return seeds, run


def axdr_seeds():
    seeds = []
    for a in apdu_seeds():
        for i in range(len(a)):
            if a[i] in (0x01, 0x02) and i + 1 < len(a) and 0 < a[i + 1] < 0x80:
                seeds.append(a[i:])
                break
    seeds.append(axdr_encode.encode_to_bytes(axdr_encode.ARRAY, [(axdr_encode.STRUCTURE,
            [(axdr_encode.DOUBLE_LONG_UNSIGNED, 5),
                                                                      (axdr_encode.OCTET_STRING, b"ab")])]))
    return seeds


@target("axdr_decode")
def _t_axdr():
    def run(data):
        mv = memoryview(data)
        n = len(data)
        try:
            axdr.decode(mv, 0, n)
        except OptoreadError as e:
            note(e)
        try:
            axdr.skip(mv, 0, n)
        except OptoreadError as e:
            note(e)
        try:
            axdr_compact.decode_type_description(mv, 0, n)
        except OptoreadError as e:
            note(e)
        v = axdr.decode(mv, 0, n)[0]
        push.flatten(v)
    return axdr_seeds(), run


@target("axdr_stream")
def _t_axdr_stream():
    def run(data):
        s = axdr.ArrayStream(capacity=128)
        step = 1 + len(data) % 7
        for p in range(0, len(data), step):
            s.feed(data[p:p + step], lambda v: None)
    return axdr_seeds(), run


@target("security_unwrap")
def _t_security():
    seeds = []
    inner = b"\xc4\x01\xc1\x00\x06\x00\x00\x01\x00"
    for sc in (0x10, 0x20, 0x30):
        seeds.append(security.wrap_general_glo(SYSTEM_TITLE, sc, 0x1234, EK, AK, inner))
        seeds.append(security.wrap_service(0xCC, sc, 0x1235, EK, AK, inner, SYSTEM_TITLE))
    seeds += [a for a in apdu_seeds() if a[:1] in (b"\xdb", b"\xdc")]

    def run(data):
        try:
            security.unwrap(data, EK, AK, SYSTEM_TITLE)
        except OptoreadError as e:
            note(e)
        security.unwrap(data, EK, AK)
    return seeds, run


@target("wrapper")
def _t_wrapper():
    seeds = [wrapper.wrap(1, 16, a) for a in apdu_seeds()[:40]]

    def run(data):
        rx = wrapper.WrapperReceiver(capacity=512)
        step = 1 + len(data) % 3
        for p in range(0, len(data), step):
            off, end = p, min(len(data), p + step)
            while off < end:
                off = rx.feed(data, off, end)
                if rx.ready:
                    rx.apdu()
    return seeds, run


@target("obis")
def _t_obis():
    seeds = [b"1-0:1.8.0*255", b"1.0.1.8.0.255", b"0-0:96.1.0", b"C.1.0", b"F.F", b"1.8.1*01",
             b"1-1:1.8.0&12"]

    def run(data):
        text = data.decode("latin-1")
        try:
            obis.parse(text)
        except OptoreadError as e:
            note(e)
        if len(data) >= 6:
            code = obis.from_bytes(data)
            obis.format(code)
            obis.name(code)
    return seeds, run


_STORE_FILES = {}


def _store_snapshot():
    if not _STORE_FILES:
        _STORE_FILES.update(sample_store_files())
    return _STORE_FILES


def _store_run(files):
    out = []
    for repair in (False, True):
        fs = MemFs(files)
        s = store.Store(fs, "/store", reserve=0)
        s.mount(repair=repair)
        for ses in s.sessions():
            s.read(ses.seq, lambda kind, d: out.append(kind))
            s.read_raw(ses.seq, lambda mv: None)
    return out


@target("store_file")
def _t_store():
    snap = _store_snapshot()
    name = "/store/%08d.ses" % 2

    def run(data):
        files = dict(snap)
        files[name] = data
        _store_run(files)
    return [snap[k] for k in sorted(snap) if k.endswith(".ses")], run


@target("store_resealed")
def _t_store_resealed():
    snap = _store_snapshot()
    name = "/store/%08d.ses" % 2

    def run(data):
        files = dict(snap)
        files[name] = reseal_records(data)
        files["/store/acks"] = reseal_records(snap.get("/store/acks", b"")[:64])
        _store_run(files)
    return [snap[k] for k in sorted(snap) if k.endswith(".ses")], run


class _Out:
    def __init__(self):
        self.n = 0

    def write(self, s):
        if not isinstance(s, str):
            raise TypeError("console wrote %r, not str" % type(s).__name__)
        self.n += len(s)
        if (s[:5] == "@err " or s[:7] == "error: ") and len(NOTED) < 5000:
            NOTED.add(_NUM.sub("#", s))


class _Clock:
    def __init__(self):
        self.t = T0
        self.source = None  # never set (as a board's after power-up)
        self.set_at = None

    def now(self):
        return self.t

    def set(self, epoch, source="console"):
        self.t = epoch
        self.source = source
        self.set_at = epoch
        return False


class StrictConsole(con.Console):
    """Console whose command handlers may fail only with OptoreadError (recorded in ``escaped``).

    ``handle_line`` answers any exception as ``@err`` text; the fuzzer wants to know when
    that text came from an IndexError or the like, so it watches the dispatch below it.
    """

    escaped = None

    def _dispatch(self, words):
        try:
            con.Console._dispatch(self, words)
        except OptoreadError:
            raise
        except Exception as e:
            self.escaped = e
            raise


CONSOLE_SEEDS = [
    b"@hello", b"@list", b"@get 1", b"@get 2 100", b"@get 3 0", b"@get 1 99999999999999999999999",
    b"@get 99999999999999999999999999 1", b"@ack 1", b"@ack 3", b"@ack 18446744073709551617",
    b"@ack 0", b"@get", b"@ack", b"@nope", b"help", b"status", b"list", b"list MTR-1", b"show 1",
    b"show 99999999999999999999", b"plans", b"meters", b"config", b"config baud 9600",
    b"config password secret", b"clock", b"clock 2026-01-01T00:00:00", b"clock 99999-99-99T99:99:99",
    b"erase", b"erase yes", b"read", b"read plan-A", b"", b"   ", b"\xff\xfe", "@get \u0663".encode(),
]


def make_console():
    """A StrictConsole over an in-RAM store holding the sample sessions."""
    fs = MemFs(_store_snapshot())
    s = store.Store(fs, "/store", reserve=0)
    s.mount()
    return StrictConsole(s, _Out(), plans={"plan-A": {"name": "plan-A", "steps": []}},
                         config={}, clock=_Clock())


@target("console")
def _t_console():
    state = {"c": None, "n": 0}

    def run(data):
        if state["c"] is None or state["n"] % 32 == 0:
            state["c"] = make_console()  # commands change the store (ack, erase): start afresh often
        state["n"] += 1
        c = state["c"]
        c.escaped = None
        c.handle_line(data)
        if c.escaped is not None:
            e = c.escaped
            raise e
    return CONSOLE_SEEDS, run


def _session_seeds():
    seeds = []
    for kw_replies_at in session_recordings().values():
        _kw, replies, at = kw_replies_at
        seeds.append(replies[at])
    return seeds


@target("session_raw")
def _t_session_raw():
    names = sorted(session_recordings())

    def run(data):
        # Which operation runs is taken from the input's length, so every seed keeps its own.
        _run_session(names[len(data) % len(names)], data, False)
    seeds = []
    for i, name in enumerate(names):
        _kw, replies, at = session_recordings()[name]
        r = replies[at]
        pad = (i - len(r)) % len(names)
        seeds.append(r + b"\x00" * pad)  # trailing zero bytes are line noise to the receiver
    return seeds, run


@target("session_apdu")
def _t_session_apdu():
    names = sorted(session_recordings())

    def run(data):
        _run_session(names[len(data) % len(names)], data, True)
    seeds = []
    for i, name in enumerate(names):
        _kw, replies, at = session_recordings()[name]
        a = frames_to_apdus(replies[at])
        if a:
            a = a[0][:120]
            # keep the seed's operation: the length picks it, so pad within the 120 bytes the frame takes
            while len(a) % len(names) != i:
                a = a[:-1] if len(a) >= 120 else a + b"\x00"
            seeds.append(a)
    return seeds, run


# ---------------------------------------------------------------- the mutation engine

_INTERESTING = (0x00, 0x01, 0x02, 0x03, 0x06, 0x0A, 0x0D, 0x7E, 0x7F, 0x80, 0x81, 0x82, 0x83, 0x84, 0x88,
                0xFF, 0x28, 0x29, 0x2A, 0x21, 0x2F, 0x26, 0xA0, 0xA8, 0xC4, 0xE6, 0xE7)


def mutate(rng, data, seeds, max_len=MAX_LEN):
    """One mutated input from ``data`` (1-4 stacked byte-level mutations, sometimes a splice)."""
    b = bytearray(data)
    for _ in range(1 + rng.randrange(4)):
        op = rng.randrange(12)
        n = len(b)
        if op == 0 and n:
            i = rng.randrange(n)
            b[i] ^= 1 << rng.randrange(8)
        elif op == 1 and n:
            b[rng.randrange(n)] = rng.randrange(256)
        elif op == 2 and n:
            b[rng.randrange(n)] = rng.choice(_INTERESTING)
        elif op == 3:
            i = rng.randrange(n + 1)
            b[i:i] = bytes(rng.randrange(256) for _ in range(1 + rng.randrange(8)))
        elif op == 4 and n:
            i = rng.randrange(n)
            del b[i:i + 1 + rng.randrange(min(16, n - i))]
        elif op == 5 and n:
            i = rng.randrange(n)
            j = min(n, i + 1 + rng.randrange(32))
            k = rng.randrange(n + 1)
            b[k:k] = b[i:j]
        elif op == 6:
            other = rng.choice(seeds)
            if other:
                i = rng.randrange(len(other))
                j = min(len(other), i + 1 + rng.randrange(64))
                k = rng.randrange(n + 1)
                b[k:k + rng.randrange(8)] = other[i:j]
        elif op == 7 and n:
            del b[rng.randrange(n):]
        elif op == 8 and n >= 2:
            i = rng.randrange(n - 1)
            b[i:i + 2] = rng.choice((b"\xff\xff", b"\x80\x00", b"\x7f\xff", b"\x00\x00", b"\x82\xff"))
        elif op == 9 and n:
            i = rng.randrange(n)
            b[i] = (b[i] + rng.choice((1, -1, 2, -2, 0x7F))) & 0xFF
        elif op == 10 and n:
            i = rng.randrange(n)
            b[i:i + 1] = bytes((b[i],)) * (2 + rng.randrange(40))
        elif op == 11 and rng.randrange(8) == 0:
            b = bytearray(rng.randrange(256) for _ in range(rng.randrange(64)))
    if len(b) > max_len:
        del b[max_len:]
    return bytes(b)


def hostile_inputs(seeds, rng):
    """64 KB inputs: random bytes, a seed with a random tail, a seed repeated, a hostile length prefix."""
    out = [bytes(rng.randrange(256) for _ in range(HOSTILE_LEN))]
    s = max(seeds, key=len)
    out.append((s + bytes(rng.randrange(256) for _ in range(HOSTILE_LEN)))[:HOSTILE_LEN])
    out.append((s * (HOSTILE_LEN // len(s) + 1))[:HOSTILE_LEN])
    out.append((s[:4] + b"\x84\xff\xff\xff\xff" + b"\x01" * HOSTILE_LEN)[:HOSTILE_LEN])
    return out


_NUM = re.compile(r"-?\d+|0x[0-9A-Fa-f]+|'[^']*'|\"[^\"]*\"|b'[^']*'")


def fold(e):
    """An error's class and message with numbers and quoted text folded (for distinct-message counts)."""
    return type(e).__name__ + ": " + _NUM.sub("#", str(e))


def _on_alarm(signum, frame):
    raise Hang("input ran longer than %.0f s" % HANG_S)


def _call(run, data, timed):
    if timed:
        signal.setitimer(signal.ITIMER_REAL, HANG_S)
    try:
        run(data)
    finally:
        if timed:
            signal.setitimer(signal.ITIMER_REAL, 0)


def fuzz_target(name, n, seed, max_crashes=5):
    """Run ``n`` inputs of target ``name``; return a result dict (see :func:`merge`)."""
    seeds, run = build(name)
    rng = random.Random("%s/%d" % (name, seed))
    timed = hasattr(signal, "setitimer")
    if timed:
        signal.signal(signal.SIGALRM, _on_alarm)
    errors = set()
    NOTED.clear()
    crashes = []
    max_s = 0.0
    ok = 0
    corpus = list(seeds)
    t_start = time.perf_counter()
    for i in range(n):
        data = seeds[i] if i < len(seeds) else mutate(rng, rng.choice(corpus), seeds)
        t0 = time.perf_counter()
        try:
            _call(run, data, timed)
            ok += 1
            if len(corpus) < 2000 and rng.randrange(64) == 0:
                corpus.append(data)  # inputs that parse make good parents
        except OptoreadError as e:
            if len(errors) < 5000:
                errors.add(fold(e))
        except Exception as e:  # a crash: anything but OptoreadError
            if len(crashes) < max_crashes:
                crashes.append({"exc": "%s: %s" % (type(e).__name__, str(e)[:300]), "hex": data.hex()})
        dt = time.perf_counter() - t0
        if dt > max_s:
            max_s = dt
    total_s = time.perf_counter() - t_start
    errors.update(NOTED)
    # Memory: the 64 KB hostile inputs and a sample of mutations under tracemalloc.
    peak = 0
    mem_inputs = hostile_inputs(seeds, rng) + [mutate(rng, rng.choice(seeds), seeds) for _ in range(50)]
    for data in mem_inputs:
        tracemalloc.start()
        try:
            _call(run, data, timed)
        except OptoreadError:
            pass
        except Exception as e:
            if len(crashes) < max_crashes:
                crashes.append({"exc": "%s: %s" % (type(e).__name__, str(e)[:300]), "hex": data[:256].hex()
                                + ("... (%d bytes)" % len(data) if len(data) > 256 else "")})
        peak = max(peak, tracemalloc.get_traced_memory()[1])
        tracemalloc.stop()
    return {"target": name, "inputs": n + len(mem_inputs), "ok": ok, "errors": sorted(errors),
            "crashes": crashes, "max_s": max_s, "total_s": total_s, "peak_bytes": peak}


def merge(results):
    """Combine the per-process result dicts of each target."""
    out = {}
    for r in results:
        m = out.setdefault(r["target"], {"inputs": 0, "ok": 0, "errors": set(), "crashes": [], "max_s": 0.0,
                                         "total_s": 0.0, "peak_bytes": 0})
        m["inputs"] += r["inputs"]
        m["ok"] += r["ok"]
        m["errors"].update(r["errors"])
        m["crashes"] += r["crashes"]
        m["max_s"] = max(m["max_s"], r["max_s"])
        m["total_s"] += r["total_s"]
        m["peak_bytes"] = max(m["peak_bytes"], r["peak_bytes"])
    return out


def _task(args):
    return fuzz_target(*args)


def table(merged):
    """The Markdown table of a run."""
    rows = ["| parser | inputs | no error | distinct errors | crashes | max ms/input | peak KB (64 KB in) |",
            "|---|---:|---:|---:|---:|---:|---:|"]
    for name in sorted(merged):
        m = merged[name]
        rows.append("| `%s` | %d | %d | %d | %d | %.2f | %.1f |" % (
            name, m["inputs"], m["ok"], len(m["errors"]), len(m["crashes"]), m["max_s"] * 1000,
            m["peak_bytes"] / 1024))
    return "\n".join(rows)


_BEGIN = "<!-- fuzz-table:begin -->"
_END = "<!-- fuzz-table:end -->"


def write_docs(merged, command):
    """Merge ``fuzz_inputs`` into docs/benchmarks.json and replace the table in docs/fuzzing.md."""
    bj = os.path.join(ROOT, "docs", "benchmarks.json")
    data = {}
    if os.path.exists(bj):
        with open(bj) as f:
            try:
                data = json.load(f)
            except ValueError:
                data = {}
    data["fuzz_inputs"] = {k: merged[k]["inputs"] for k in sorted(merged)}
    with open(bj, "w") as f:
        json.dump(data, f, indent=1, sort_keys=True)
        f.write("\n")
    md = os.path.join(ROOT, "docs", "fuzzing.md")
    block = "%s\nLast run: `%s` (%s)\n\n%s\n%s" % (_BEGIN, command, time.strftime("%Y-%m-%d"),
                                                  table(merged), _END)
    text = ""
    if os.path.exists(md):
        with open(md) as f:
            text = f.read()
    if _BEGIN in text and _END in text:
        text = text[:text.index(_BEGIN)] + block + text[text.index(_END) + len(_END):]
    else:
        text = text.rstrip("\n") + "\n\n## Last counts\n\n" + block + "\n"
    with open(md, "w") as f:
        f.write(text)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--inputs", type=int, default=None, help="inputs per parser (default 1000000)")
    ap.add_argument("--quick", action="store_true", help="short run: 20000 inputs per parser")
    ap.add_argument("--jobs", type=int, default=2, help="worker processes (default 2)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--only", default="", help="comma-separated target names")
    ap.add_argument("--list", action="store_true", help="list the targets and exit")
    ap.add_argument("--no-write", action="store_true", help="do not update docs/")
    a = ap.parse_args(argv)
    if a.list:
        print("\n".join(sorted(TARGETS)))
        return 0
    n = a.inputs if a.inputs is not None else 20000 if a.quick else 1000000
    names = [x for x in a.only.split(",") if x] or sorted(TARGETS)
    bad = [x for x in names if x not in TARGETS]
    if bad:
        ap.error("unknown target(s): %s" % ", ".join(bad))
    jobs = max(1, a.jobs)
    tasks = []
    for name in names:
        for j in range(jobs):
            k = n // jobs + (1 if j < n % jobs else 0)
            if k:
                tasks.append((name, k, a.seed * 1000 + j))
    t0 = time.time()
    print("fuzzing %d parsers x %d inputs on %d process(es)" % (len(names), n, jobs), flush=True)
    if jobs == 1:
        results = [_task(t) for t in tasks]
    else:
        import multiprocessing

        with multiprocessing.get_context("fork" if hasattr(os, "fork") else "spawn").Pool(jobs) as pool:
            results = list(pool.imap_unordered(_task, tasks))
    merged = merge(results)
    print(table(merged))
    print("elapsed %.1f s" % (time.time() - t0))
    crashed = 0
    for name in sorted(merged):
        for c in merged[name]["crashes"]:
            crashed += 1
            print("CRASH %s: %s\n  input hex: %s" % (name, c["exc"], c["hex"]))
    if not a.no_write:
        cmd = "tools/fuzz.py" + (" --quick" if a.quick else "") + (" --inputs %d" % a.inputs
                                                                  if a.inputs is not None else "")
        write_docs(merged, cmd)
    if crashed:
        print("FAIL: %d input(s) raised something other than OptoreadError" % crashed)
        return 1
    print("ok: only OptoreadError escaped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
