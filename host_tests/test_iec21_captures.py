"""Every real readout in ../shared/captures/iec62056-21 parses to its sidecar's expectation."""

import json
import os

import portable
from optoread.iec62056_21 import readout as iec_readout
from optoread.iec62056_21 import signon as iec

PORTABLE = True

DIR = ("captures", "iec62056-21")


def _small_heap():
    """True on a board (a heap of a few hundred KB, not the unix port's 16 MB)."""
    import gc

    return hasattr(gc, "mem_free") and gc.mem_free() + gc.mem_alloc() < (1 << 20)


# A board's heap cannot hold the parsed sidecar of iskra_mt174_smartmeter_obis (57 KB of JSON,
# about 200 KB as objects): there, sidecars above this size are left out (the other 24 captures
# run; CPython and the unix ports read them all).
MAX_SIDECAR = 32768 if _small_heap() else None


def _captures():
    d = portable.shared_or_skip(*DIR)
    for name in portable.listdir(d):
        if name.endswith(".json"):
            if MAX_SIDECAR and os.stat(d + "/" + name)[6] > MAX_SIDECAR:
                continue
            with open(d + "/" + name) as f:
                meta = json.load(f)
            yield meta, portable.read_bytes(d + "/" + meta["file"])


def _as_expected(datasets):
    """Our data sets in the sidecar's "expected" shape (first occurrence of each address)."""
    out = {}
    for addr, values in datasets:
        if addr in out:
            continue
        pairs = [[v, u] for v, u in values]
        out[addr] = pairs[0] if len(pairs) == 1 else pairs
    return out


def test_complete_readouts_parse_exactly_to_expected():
    n = 0
    for meta, data in _captures():
        if not meta.get("complete_readout"):
            continue
        r = iec_readout.parse_readout(data)
        name = meta["file"]
        got_lines = [{"address": a, "values": [[v, u] for v, u in vals]} for a, vals in r.datasets]
        assert got_lines == meta["lines"], name
        assert _as_expected(r.datasets) == meta["expected"], name
        ident = meta.get("identification")
        if ident and ident != "(none)":
            assert r.identification is not None and r.identification.text == ident, name
        else:
            assert r.identification is None, name
        n += 1
    assert n >= 20


def test_identification_parts_match_sidecars():
    for meta, _data in _captures():
        parts = meta.get("identification_parts") or {}
        if "flag_id" not in parts:
            continue
        ident = iec.Identification(meta["identification"])
        assert ident.maker == parts["flag_id"], meta["file"]
        assert ident.baud_char == parts["baud_char"], meta["file"]
        if "model_text" in parts:
            assert ident.model == parts["model_text"], meta["file"]
        marker = parts.get("mode_marker")
        if marker:
            assert "\\" + "".join(ident.escapes) == marker, meta["file"]
        assert ident.reaction_ms == (20 if parts["flag_id"][2].islower() else 200)


def test_checksums_match_sidecars():
    for meta, data in _captures():
        if not meta.get("complete_readout"):
            continue
        r = iec_readout.parse_readout(data)
        framing = meta["framing"]
        if "bcc" in framing:
            assert r.bcc_ok is framing["bcc"]["ok"], meta["file"]
        else:
            assert r.bcc_ok is None, meta["file"]
        if "crc16" in framing:
            assert r.crc_ok is framing["crc16"]["ok"], meta["file"]
        else:
            assert r.crc_ok is None, meta["file"]


def test_noisy_ace3000_reports_bcc_mismatch_and_noise():
    for meta, data in _captures():
        if meta["file"].startswith("actaris_ace3000"):
            r = iec_readout.parse_readout(data)
            assert r.bcc_ok is False
            assert any("BCC mismatch: received 0x46, computed 0x4D" in e for e in r.errors), r.errors
            assert any("noise" in e or "garbage" in e for e in r.errors), r.errors
            return
    portable.skip("ACE3000 capture missing")


def test_fragments_give_the_incomplete_error_and_keep_complete_lines():
    seen = 0
    for meta, data in _captures():
        if meta.get("complete_readout"):
            continue
        r = iec_readout.parse_readout(data)
        assert not r.complete
        assert "readout incomplete: input ended before the end marker '!'" in r.errors, r.errors
        got = [{"address": a, "values": [[v, u] for v, u in vals]} for a, vals in r.datasets]
        assert got == meta["lines"], meta["file"]
        seen += 1
    assert seen == 2


def test_byte_by_byte_equals_whole():
    for meta, data in _captures():
        whole = iec_readout.parse_readout(data)
        r = iec_readout.parse_readout(data, chunk=1)
        assert r.datasets == whole.datasets, meta["file"]
        assert (r.bcc_ok, r.crc_ok, r.errors) == (whole.bcc_ok, whole.crc_ok, whole.errors), meta["file"]
        r7 = iec_readout.parse_readout(data, chunk=7)
        assert r7.datasets == whole.datasets, meta["file"]


# ---- one value with its own time (readout.value_time) -------------------------------------------

# Data sets that are a value and its time, as the sidecars' "lines" hold them, decoded by hand:
# (file, address) -> (value, unit, ISO 8601 time, DSMR season letter). Built by the test that uses
# it, not at import: on the emulated Pico the module's data stays on the heap through every test.
def _timed():
    return {
        ("iskra_mt174_smartmeter_obis.txt", "1-0:1.6.0*255"): ("02.468", "kW", "2017-03-10T09:30:00", None),
        ("iskra_mt174_smartmeter_obis.txt", "1-0:2.6.0*255"): ("00.000", "kW", "2017-03-18T20:15:00", None),
        ("iskra_mt174_smartmeter_obis.txt", "1-0:1.6.0*15"): ("03.806", "kW", "2015-12-16T20:45:00", None),
        ("iskra_mt174_smartmeter_obis.txt", "1-0:2.6.1*01"): ("00.000", "kW", "2017-03-01T00:00:00", None),
        ("fluvius_flu5_v171_be.txt", "1-0:1.6.0"): ("02.589", "kW", "2020-05-09T13:45:58", "S"),
        ("fluvius_flu5_v171_be.txt", "0-1:24.2.3"): ("00112.384", "m3", "2020-05-12T13:45:58", "S"),
        ("fluvius_flu5_v171_be.txt", "0-2:24.2.1"): ("00872.234", "m3", "2020-05-12T13:45:58", "S"),
        ("fluvius_flu5_v171_be_alt.txt", "1-0:1.6.0"): ("03.064", "kW", "2023-11-02T11:45:00", "W"),
        ("fluvius_flu5_v171_be_alt.txt", "0-1:24.2.3"): ("00092.287", "m3", "2023-11-02T12:10:02", "W"),
        ("fluvius_flu5_v171_be_alt.txt", "0-2:24.2.1"): ("00008.579", "m3", "2023-11-02T12:15:32", "W"),
        ("iskra_am550e_1phase_dsmr50_nl.txt", "0-1:24.2.1"): ("03199.256", "m3", "2023-05-21T13:35:05", "S"),
        # DSMR's "no gas meter reading" placeholder: 1970 (POSIX %y), no unit
        ("iskra_am550t_dsmr50_two_mbus_nl.txt", "0-1:24.2.1"): ("00000000", None, "1970-01-01T01:00:00", "W"),
        ("iskra_am550t_dsmr50_two_mbus_nl.txt", "0-2:24.2.1"): ("00246.138", "m3", "2020-04-26T22:30:01",
                                                                "S"),
        ("iskra_mt382_dsmr50_nl.txt", "0-1:24.2.1"): ("00000.107", "m3", "2017-01-02T16:10:05", "W"),
        ("kaifa_kfm5_dsmr42_nl.txt", "0-1:24.2.1"): ("00981.443", "m3", "2016-11-29T20:00:00", "W"),
        ("xmx5_dsmr42_se.txt", "0-1:24.2.1"): ("04890.857", "m3", "2018-09-24T13:00:00", "S"),
    }
# How many data sets of each capture are a value with its time (the MT174's billing periods:
# 1.6.0, 1.6.1, 2.6.0, 2.6.1 for *01..*15 and 1.6.0, 2.6.0 *255); every other capture: none.
TIMED_COUNT = {"iskra_mt174_smartmeter_obis.txt": 62, "fluvius_flu5_v171_be.txt": 3,
               "fluvius_flu5_v171_be_alt.txt": 3, "iskra_am550e_1phase_dsmr50_nl.txt": 1,
               "iskra_am550t_dsmr50_two_mbus_nl.txt": 2, "iskra_mt382_dsmr50_nl.txt": 1,
               "kaifa_kfm5_dsmr42_nl.txt": 1, "xmx5_dsmr42_se.txt": 1}


def test_values_with_their_time_in_the_captures():
    timed = _timed()
    seen = set()
    for meta, data in _captures():
        name = meta["file"]
        n = 0
        for addr, values in iec_readout.parse_readout(data).datasets:
            vt = iec_readout.value_time(values)
            if (name, addr) in timed:
                assert vt == timed[(name, addr)], (name, addr, vt)
                seen.add((name, addr))
            if vt is None:
                continue
            n += 1
            assert len(values) == 2 and vt[2][:2] in ("19", "20") and len(vt[2]) == 19, (name, addr, vt)
        assert n == TIMED_COUNT.get(name, 0), (name, n)
    if MAX_SIDECAR is None:
        assert seen == set(timed)


def test_data_sets_that_are_not_a_value_with_its_time_stay_as_they_are():
    # Event logs, monthly peak histories (more groups), an event log naming no event, single
    # groups (the telegram's own time): value_time says None; the parser keeps every group.
    for values in ([("0", None), ("0-0:96.7.19", None)],
                   [("1", None), ("0-0:96.7.19", None), ("190326095015W", None), ("0000002014", "s")],
                   [("200512135409S", None)], [("02.468", "kW")], [],
                   [("1703100930", None), ("1703100931", None)],  # two times: which is the value?
                   [("02.468", "kW"), ("1703100930", "s")],  # a unit: a quantity, not a time
                   [("02.468", "kW"), ("1713100930", None)],  # month 13: no time
                   [("02.468", "kW"), ("1702300930", None)],  # 30 February
                   [("02.468", "kW"), ("1703102430", None)],  # 24 h
                   [("02.468", "kW"), ("170310093", None)],  # 9 digits
                   [("02.468", "kW"), ("17031009300", None)],  # 11 digits
                   [("02.468", "kW"), ("17-03-10 09:30", None)]):  # separators: not this format
        assert iec_readout.value_time(values) is None, values
    ds = iec_readout.parse_data_line("1-0:99.97.0(1)(0-0:96.7.19)(190326095015W)(0000002014*s)")
    assert ds == ("1-0:99.97.0", [("1", None), ("0-0:96.7.19", None), ("190326095015W", None),
                                  ("0000002014", "s")])


def test_value_with_its_time_literal_readouts():
    vt = iec_readout.value_time
    assert iec_readout.parse_data_line("1.6.0(02.468*kW)(1703100930)") == (
        "1.6.0", [("02.468", "kW"), ("1703100930", None)])  # the groups as sent
    assert vt([("02.468", "kW"), ("1703100930", None)]) == ("02.468", "kW", "2017-03-10T09:30:00", None)
    assert vt([("1.5", "kW"), ("170310093015", None)]) == ("1.5", "kW", "2017-03-10T09:30:15", None)
    assert vt([("101209112500W", None), ("12785.123", "m3")]) == (  # DSMR: the time first
        "12785.123", "m3", "2010-12-09T11:25:00", "W")
    assert vt([("240331030000S", None), ("", None)]) == ("", None, "2024-03-31T03:00:00", "S")
    assert vt([("7", None), ("0002290000", None)]) == ("7", None, "2000-02-29T00:00:00", None)
    assert vt([("7", None), ("6812312359", None)]) == ("7", None, "2068-12-31T23:59:00", None)
    assert vt([("7", None), ("6901010000", None)]) == ("7", None, "1969-01-01T00:00:00", None)
    # With DSMR's season letter it is a time even when the digits are none: kept as the meter wrote it
    assert vt([("632525252525W", None), ("00.000", "kW")]) == ("00.000", "kW", "632525252525W", "W")
