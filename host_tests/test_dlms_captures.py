"""Every DLMS/HDLC capture in ../shared/captures/hdlc-dlms decodes as its JSON sidecar states.

Runs the same decode chain as ``optoread parse`` (tools/optoread_tools/dlmsparse.py over
the firmware codecs) on CPython and on the MicroPython unix port.

How sidecar ``expected`` keys map onto our flat ``values`` (every key is checked; a key
that matches no value, or more than one, fails the test):

* ``"A.B.C.D.E.F"``: the value with that OBIS (and attribute 2 or none, see below);
* ``"A.B.C.D.E.F attrN"``: the VSE capture object with that OBIS and attribute N;
* ``"posN (no OBIS in frame)"``: the value without OBIS at 1-based position N;
* a leading ``"msgK "``: only values of the K-th value-carrying APDU of the capture.

Expected ``[value, unit]``: numbers compare with our ``scaled`` when the frame carried
a scaler, else with the raw ``value`` (floats to 1e-9 relative); date-times written
``"YYYY-MM-DD hh:mm:ss"`` or ``"... dev=N"`` compare with our ISO text (local fields;
an offset of -N minutes exactly when ``dev=N`` is given, none otherwise; hundredths
ignored); ``"(this push_object_list array itself)"`` is the capture-object list we give
for the push setup (one entry per capture object); other text compares equal. Units
compare equal, with one documented exception: the ZMF100 sidecar (``negative_case``)
states the source's repaired values without units, so null units there are not compared.
"""

import json
import sys

import portable

PORTABLE = True

_TOOLS = portable.project_root() + "/tools"
if _TOOLS not in sys.path:
    sys.path.append(_TOOLS)

from optoread.dlms.hdlc import frame as hdlc_rx  # noqa: E402
from optoread_tools import dlmsparse  # noqa: E402

_VSE_SELF = "(this push_object_list array itself)"
_NEGATIVE = "landisgyr_zmf100_embriq_fcs_mismatch_dlmsparser"
# Warnings a capture is expected to produce (the capture itself is incomplete or quirky).
_EXPECTED_WARNINGS = {
    _NEGATIVE: ("06 09 instead of 09 06",),
    "u9n_tests_get_response_block_profile_apdu": ("blocks 2..18 are not in the capture",
                                                  "77 complete array element(s) of 1440"),
    "u9n_tests_segmented_frame_flag_byte_in_length": ("segmented transfer not completed",),
}


def _captures():
    d = portable.shared_or_skip("captures", "hdlc-dlms")
    out = []
    for name in portable.listdir(d):
        if not name.endswith(".hex"):
            continue
        base = name[:-4]
        text = portable.read_bytes(d + "/" + name).decode()
        side = json.loads(portable.read_bytes(d + "/" + base + ".json").decode())
        out.append((base, text, side))
    assert len(out) >= 28, "expected the 28 capture files, found %d" % len(out)
    return out


def _keys(side):
    k = side.get("keys") or {}
    return k.get("encryption_key"), k.get("authentication_key")


_cache = {}


def _decode(base, text, side):
    r = _cache.get(base)
    if r is None:
        ek, ak = _keys(side)
        r = _cache[base] = dlmsparse.parse_capture(text, key=ek, auth_key=ak)
    return r


# ---------------------------------------------------------------- value mapping


def _parse_key(key):
    """``(message, obis_text, position, attribute)`` of a sidecar ``expected`` key."""
    parts = key.split(" ")
    msg = None
    if parts[0][:3] == "msg":
        msg = int(parts[0][3:])
        parts = parts[1:]
    obis = None
    pos = None
    if parts[0][:3] == "pos":
        pos = int(parts[0][3:])
    else:
        obis = parts[0]
    attr = None
    if len(parts) > 1 and parts[1][:4] == "attr":
        attr = int(parts[1][4:])
    return msg, obis, pos, attr


def _find(values, key):
    msg, obis, pos, attr = _parse_key(key)
    found = []
    for v in values:
        if msg is not None and v["message"] != msg:
            continue
        if obis is None:
            if v["obis"] is not None or v["position"] != pos:
                continue
        elif v["obis"] != obis:
            continue
        a = v.get("attribute")
        if attr is not None:
            if a != attr:
                continue
        elif a not in (None, 2):
            continue
        found.append(v)
    assert len(found) == 1, "%s: %d matching values" % (key, len(found))
    return found[0]


def _is_date_text(s):
    return len(s) >= 19 and s[4] == "-" and s[7] == "-" and s[10] == " " and s[13] == ":" and s[16] == ":"


def _offset_text(dev):
    off = -dev
    sign = "+" if off >= 0 else "-"
    off = abs(off)
    return "%s%02d:%02d" % (sign, off // 60, off % 60)


def _same_datetime(ours, local, dev):
    """Our ISO text vs a sidecar local time ``YYYY-MM-DD hh:mm:ss`` and deviation (None = unspecified)."""
    if not isinstance(ours, str) or len(ours) < 19:
        return False
    if ours[:10] + " " + ours[11:19] != local:
        return False
    rest = ours[19:]
    if rest[:1] == ".":  # hundredths
        rest = rest[3:]
    return rest == ("" if dev is None else _offset_text(dev))


def _check_value(base, side, key, exp, v):
    want, unit = exp
    where = "%s %s" % (base, key)
    if isinstance(want, str):
        if want == _VSE_SELF:
            got = v["value"]
            assert isinstance(got, list) and v.get("class_id") == 40, where
            n = len([x for x in got if isinstance(x, dict) and "obis" in x])
            assert n == len(got) and got[0]["obis"] == v["obis"], where
        elif _is_date_text(want):
            dev = None
            local = want
            if " dev=" in want:
                local, d = want.split(" dev=")
                dev = int(d)
            assert _same_datetime(v["value"], local, dev), "%s: %r vs %r" % (where, v["value"], want)
        else:
            assert v["value"] == want, "%s: %r != %r" % (where, v["value"], want)
    else:
        got = v["scaled"] if "scaled" in v else v["value"]
        assert isinstance(got, (int, float)) and not isinstance(got, bool), "%s: %r" % (where, got)
        if isinstance(want, float) or isinstance(got, float):
            assert abs(got - want) <= 1e-9 * max(1.0, abs(want)), "%s: %r != %r" % (where, got, want)
        else:
            assert got == want, "%s: %r != %r" % (where, got, want)
    if unit is None and side.get("negative_case"):
        return  # the source states its repaired values without units (module docstring)
    assert v["unit"] == unit, "%s: unit %r != %r" % (where, v["unit"], unit)


def test_expected_values_of_every_capture():
    checked = 0
    files = 0
    for base, text, side in _captures():
        exp = side.get("expected")
        if not exp:
            continue
        files += 1
        r = _decode(base, text, side)
        for key in exp:
            _check_value(base, side, key, exp[key], _find(r["values"], key))
            checked += 1
    assert files >= 22 and checked >= 338, (files, checked)


# ---------------------------------------------------------------- frames, errors


def test_frames_match_the_collectors_checks():
    for base, text, side in _captures():
        r = _decode(base, text, side)
        checks = side.get("frames_checked_by_me") or []
        if checks and "format_type" not in checks[0]:  # bare APDUs: no frames at all
            assert r["frames"] == [], base
            assert [a["length"] for a in r["apdus"] if a["source"].get("line")] == \
                [c["length_bytes"] for c in checks], base
            continue
        assert len(r["frames"]) == len(checks), base
        for f, c in zip(r["frames"], checks):
            w = "%s frame %d" % (base, f["index"])
            assert f["dir"] == c["dir"], w
            assert f["format"] == c["format_type"], w
            assert f["segmented"] == c["segmented"], w
            assert f["length"] == c["length_field"], w
            assert f["dst"] == c["dst"] and f["src"] == c["src"], w
            assert int(f["control"], 16) == int(c["control"], 16), w
            assert f["hcs_ok"] == c["hcs_ok"] and f["fcs_ok"] == c["fcs_ok"], w
            assert f["info_len"] == c["info_len"], w


def test_errors_and_warnings():
    for base, text, side in _captures():
        r = _decode(base, text, side)
        if base == _NEGATIVE:
            assert len(r["errors"]) == 1 and "FCS mismatch" in r["errors"][0], r["errors"]
            assert "frame 1" in r["errors"][0]
        else:
            assert r["errors"] == [], (base, r["errors"])
        want = _EXPECTED_WARNINGS.get(base, ())
        assert len(r["warnings"]) == (1 if want else 0), (base, r["warnings"])
        for w in want:
            assert w in r["warnings"][0], (base, r["warnings"])


def test_ciphered_capture_without_key_reports_the_header():
    for base, text, side in _captures():
        if not side.get("keys"):
            continue
        r = dlmsparse.parse_capture(text)
        assert r["errors"] == [] and r["values"] == [], base
        c = [a for a in r["apdus"] if a["tag"] == "general-glo-ciphering"]
        assert len(c) == 1 and c[0]["fields"]["decrypted"] is False, base
        g = side["hand_decoded"]["general_glo_ciphering"]
        assert c[0]["fields"]["system_title"] == g["system_title"], base
        assert c[0]["fields"]["invocation_counter"] == g["invocation_counter"], base
        assert "no --key" in r["warnings"][0], base


# ---------------------------------------------------------------- hand-decoded fields


def _check_notification(base, a, hd):
    f = a["fields"]
    assert a["tag"] == "data-notification", base
    assert f["long_invoke_id_and_priority"] == hd["long_invoke_id_and_priority"], base
    dt = hd.get("date_time")
    if dt is None:
        assert f["date_time"] is None, base
    else:
        assert _same_datetime(f["date_time"], dt["iso_local"], dt["deviation_min"]), (base, f["date_time"])
        assert f["clock_status"] == int(dt["clock_status"], 16), base


def test_hand_decoded_headers():
    seen = 0
    for base, text, side in _captures():
        hd = side.get("hand_decoded")
        if not hd or "error" in hd:
            continue
        r = _decode(base, text, side)
        hds = hd if isinstance(hd, list) else [hd]
        notes = [a for a in r["apdus"] if a["tag"] == "data-notification"]
        assert len(notes) == len(hds), base
        for a, h in zip(notes, hds):
            _check_notification(base, a, h)
            if "llc" in h:
                src = a["source"]
                while "frames" not in src:  # deciphered / GBT: follow back to the frames
                    back = src.get("deciphered_from") or src["gbt_apdus"][0]
                    src = r["apdus"][back - 1]["source"]
                assert src["llc"] == h["llc"], base
            gbt = h.get("general_block_transfer")
            if gbt:
                blocks = [x["fields"] for x in r["apdus"] if x["tag"] == "general-block-transfer"]
                assert len(blocks) == len(gbt), base
                for g, b in zip(blocks, gbt):
                    assert g["last"] == b["last"] and g["streaming"] == b["streaming"], base
                    assert g["window"] == b["window"] and g["block_number"] == b["block_number"], base
                    assert g["block_number_ack"] == b["block_number_ack"], base
                    assert g["block_data_len"] == b["len"], base
            c = h.get("general_glo_ciphering")
            if c:
                x = [y for y in r["apdus"] if y["tag"] == "general-glo-ciphering"][0]["fields"]
                assert x["system_title"] == c["system_title"], base
                assert x["security_control"] == int(c["security_control"], 16), base
                assert x["invocation_counter"] == c["invocation_counter"], base
                assert x["decrypted"] is True, base
                assert x["tag_verified"] == (c["tag_ok"] is True), base
                assert a["length"] * 2 == len(h["plaintext_apdu_hex"]), base
            seen += 1
    assert seen >= 21, seen


def _apdu(r, tag, n=0):
    return [a for a in r["apdus"] if a["tag"] == tag][n]["fields"]


def test_request_and_response_fields():
    done = set()
    for base, text, side in _captures():
        r = _decode(base, text, side)
        for d in side.get("decoded") or []:
            kind = d.get("type", "") + d.get("apdu", "")
            w = "%s #%d" % (base, d["frame"])
            if "frame" in d and "control" in d:
                f = r["frames"][d["frame"] - 1]
                assert int(f["control"], 16) == int(d["control"].split(" ")[0], 16), w
            p = d.get("proposed") or d.get("negotiated")
            if p and "aarq" not in d:
                got = r["frames"][d["frame"] - 1]["params"]
                for k in ("max_info_field_length_transmit", "max_info_field_length_receive",
                          "window_size_transmit", "window_size_receive"):
                    assert got[k] == p[k], (w, k)
                done.add("params")
            if "aarq" in d:
                a = _apdu(r, "aarq")
                q = d["aarq"]
                assert a["application_context_name"] == "logical-name", w
                ir = a["initiate_request"]
                want = q["user_information"]["initiate_request"]
                assert ir["proposed_dlms_version"] == want["proposed_dlms_version"], w
                assert ir["proposed_conformance"] == want["proposed_conformance_hex"].lower(), w
                assert ir["proposed_conformance_names"] == want["proposed_conformance"], w
                assert ir["client_max_receive_pdu_size"] == want["client_max_receive_pdu_size"], w
                if "calling_ap_title_hex" in q:
                    assert a["calling_ap_title"] == q["calling_ap_title_hex"].lower(), w
                    assert a["mechanism_name"] == "lls" and a["acse_requirements_authentication"], w
                    assert a["calling_authentication_value"] == "12345678", w
                else:
                    assert a["mechanism_name"] is None, w
                done.add("aarq")
            if "aare" in d:
                a = _apdu(r, "aare")
                q = d["aare"]
                assert a["result"] == 0 and a["result_name"] == "accepted", w
                assert a["diagnostic_source"] == "acse-service-user" and a["diagnostic"] == 0, w
                ir = a["initiate_response"]
                want = q["user_information"]["initiate_response"]
                assert ir["negotiated_dlms_version"] == want["negotiated_dlms_version"], w
                assert ir["negotiated_conformance"] == want["negotiated_conformance_hex"].lower(), w
                assert ir["negotiated_conformance_names"] == want["negotiated_conformance"], w
                assert ir["server_max_receive_pdu_size"] == want["server_max_receive_pdu_size"], w
                assert ir["vaa_name"] == want["vaa_name"].split(" ")[0], w
                done.add("aare")
            if "frmr" in d:
                f = r["frames"][d["frame"] - 1]
                assert f["type"] == "FRMR" and f["info_hex"] == d["info_hex"], w
                assert "rejected control 0x54" in f["frmr"] and "invalid N(S)" in f["frmr"], w
                done.add("frmr")
            if "get-request" in kind:
                g = _apdu(r, "get-request")
                item = g["items"][0]
                assert g["invoke_id_and_priority"] == d["invoke_id_and_priority"].split(" ")[0].lower(), w
                assert item["class_id"] == d["class_id"] and item["instance"] == d["instance"], w
                assert item["attribute"] == d["attribute"] and item["access_selector"] is None, w
                done.add("get-request")
            if "get-response" in kind:
                g = _apdu(r, "get-response", d["frame"] - 1 if "datablock" in kind else 0)
                assert g["invoke_id_and_priority"] == d["invoke_id_and_priority"].lower(), w
                if "datablock" in kind:
                    assert g["kind"] == "with-datablock" and g["last_block"] == d["last_block"], w
                    assert g["block_number"] == d["block_number"], w
                    assert g["raw_data_len"] == d["raw_data_length"], w
                    done.add("get-block")
                else:
                    assert g["kind"] == "normal", w
                    done.add("get-response")
            if d.get("type") == "UA without information field" or d.get("info", 1) is None:
                f = r["frames"][d["frame"] - 1]
                assert f["info_len"] == 0 and f["hcs_ok"] is None and "params" not in f, w
                done.add("no-info")
            if "segmented" in d.get("type", ""):
                f = r["frames"][d["frame"] - 1]
                assert f["segmented"] and f["type"] == "I" and f["ns"] == 3 and f["nr"] == 4, w
                assert f["dst_address"]["upper"] == 16 and f["src_address"]["upper"] == 1, w
                done.add("segment")
    for k in ("params", "aarq", "aare", "frmr", "get-request", "get-response", "get-block", "no-info",
              "segment"):
        assert k in done, k


def test_four_byte_server_address():
    for base, text, side in _captures():
        if base.startswith("u9n_issue95"):
            f = _decode(base, text, side)["frames"][0]
            assert f["src_address"] == {"upper": 1, "lower": 2836}, f["src_address"]
            return
    portable.skip("u9n_issue95 capture absent")


# ---------------------------------------------------------------- byte-wise receiver


def _receiver_frames(data, bytewise):
    rx = hdlc_rx.FrameReceiver(0x7FF)
    out = []
    step = 1 if bytewise else len(data)
    for i in range(0, len(data), step):
        off = i
        end = min(len(data), i + step)
        while True:
            off = rx.feed(data, off, end)
            if not rx.ready:
                break
            out.append(rx.frame.raw())
    return out, rx


def test_framereceiver_bytewise_equals_whole():
    for base, text, side in _captures():
        records, errs = dlmsparse.parse_lines(text)
        assert errs == [], base
        if records[0][1][0] != 0x7E:
            continue  # bare APDUs: no link layer
        line_frames = [f for f in _decode(base, text, side)["frames"]]
        for d in ("C>", "M>"):
            stream = b"".join(x[1] for x in records if x[0] == d)
            if not stream:
                continue
            one, rx1 = _receiver_frames(stream, True)
            whole, rx2 = _receiver_frames(stream, False)
            assert one == whole and rx1.errors == rx2.errors, base
            good = [f for f in line_frames if f["dir"] == d and f["fcs_ok"]]
            assert len(one) == len(good), base
            for raw, f in zip(one, good):
                assert len(raw) == f["length"], base
            if base == _NEGATIVE:
                # The receiver drops a frame whose FCS fails (by design); the line decoder
                # reports it and decodes it anyway.
                assert rx1.errors >= 1 and one == [], base
            else:
                assert rx1.errors == 0 and rx1.dropped_bytes == 0, base


def test_decoding_receiver_frames_gives_the_same_result():
    for base, text, side in _captures():
        records, _ = dlmsparse.parse_lines(text)
        if records[0][1][0] != 0x7E or base == _NEGATIVE:
            continue
        ek, ak = _keys(side)
        dec = dlmsparse.Decoder(ek, ak)
        rxs = {}
        for d, data, line in records:
            rx = rxs.get(d)
            if rx is None:
                rx = rxs[d] = hdlc_rx.FrameReceiver(0x7FF)
            for i in range(len(data)):  # one byte at a time
                off = i
                while True:
                    off = rx.feed(data, off, i + 1)
                    if not rx.ready:
                        break
                    dec.feed_frame(d, rx.frame, line)
        got = dec.finish()
        want = _decode(base, text, side)
        assert got["values"] == want["values"], base
        assert got["apdus"] == want["apdus"], base
        assert got["errors"] == want["errors"] and got["warnings"] == want["warnings"], base
        assert got["frames"] == want["frames"], base


# ---------------------------------------------------------------- units and push (no captures needed)

from optoread import units  # noqa: E402
from optoread.dlms import push  # noqa: E402
from optoread.errors import AxdrError  # noqa: E402

_OB = bytes((1, 0, 1, 8, 0, 255))
_OB2 = bytes((1, 0, 32, 7, 0, 255))


def test_unit_names():
    assert units.unit_name(27) == "W" and units.unit_name(30) == "Wh" and units.unit_name(32) == "varh"
    assert units.unit_name(35) == "V" and units.unit_name(33) == "A" and units.unit_name(9) == "\u00b0C"
    assert units.unit_name(255) == "count" and units.unit_name(56) == "%"
    assert units.unit_name(58) is None and units.unit_name(0) is None and units.unit_name("W") is None
    # the ends and the gaps of the one-string symbol table
    assert units.unit_name(1) == "a" and units.unit_name(72) == "dB" and units.unit_name(71) == "dB\u00b5V"
    assert units.unit_name(38) == "\u03a9" and units.unit_name(57) == "Ah" and units.unit_name(60) == "Wh/m3"
    assert units.unit_name(66) is None and units.unit_name(73) is None and units.unit_name(253) == "reserved"


def test_apply_scaler_and_exact_text():
    assert units.apply_scaler(93, -1) == 9.3 and units.apply_scaler(63, -2) == 0.63
    v = units.apply_scaler(5, 3)
    assert v == 5000 and isinstance(v, int)
    assert units.apply_scaler(7, 0) == 7 and isinstance(units.apply_scaler(7, 0), int)
    assert units.scaled_text(2307, -1) == "230.7" and units.scaled_text(-5, -2) == "-0.05"
    assert units.scaled_text(12, 2) == "1200" and units.scaled_text(0, -3) == "0.000"
    portable.raises(AxdrError, units.apply_scaler, 1, 200)
    portable.raises(AxdrError, units.apply_scaler, "1", 0)
    portable.raises(AxdrError, units.scaled_text, None, -1)


def test_flatten_layouts():
    # nested {obis, value, {scaler, unit}} and {obis, value}
    items = push.flatten([(_OB, 10, (-1, 30)), (_OB2, b"abc")])
    assert [(i.obis, i.value, i.scaler, i.unit, i.position) for i in items] == [
        (_OB, 10, -1, 30, 1), (_OB2, b"abc", None, None, 2)]
    # flat pairs after a bare list id; a printable 6-byte string is a value, not an OBIS
    items = push.flatten(("LIST", _OB, 5, _OB2, b"160456"))
    assert [(i.obis, i.value) for i in items] == [(None, "LIST"), (_OB, 5), (_OB2, b"160456")]
    items = push.flatten((b"160456", 7))
    assert [(i.obis, i.position) for i in items] == [(None, 1), (None, 2)]
    # bare single value
    assert push.flatten(5502)[0].position == 1
    # VSE: capture object 0 is the push_object_list itself
    po = bytes((0, 6, 25, 9, 0, 255))
    objs = [(40, po, 2, 0), (3, _OB, 2, 0)]
    items = push.flatten((objs, 42))
    assert [(i.obis, i.class_id, i.attribute, i.position) for i in items] == [
        (po, 40, 2, 1), (_OB, 3, 2, 2)]
    assert items[0].value is objs and items[1].value == 42
    # not VSE when the counts differ
    assert push.vse_objects((objs, 1, 2)) is None


def test_repair_swapped_obis_tags():
    good = bytearray(b"\x02\x02\x09\x06" + _OB + b"\x11\x05")
    bad = bytearray(b"\x02\x02\x06\x09" + _OB + b"\x11\x05")
    assert push.repair_swapped_obis_tags(good) == []
    assert push.repair_swapped_obis_tags(bad) == [2] and bad == good
    assert push.repair_swapped_obis_tags(bytearray(b"\x02\x02\x06\x09\x01")) == []  # too short


def test_hostile_lines_never_raise():
    for text in ("M> 7E", "M> 7E A0", "M> 7E A0 07 21 03 73 01 41 7E", "M> 7E 7E 7E", "M> 0F",
                 "M> 0F 00 00 00 00 00 02 FF", "M> E0 80 00 01 00 00 05 0F", "M> DB 08 41",
                 "C> C0 01 C1 00 01", "M> C4 02 C1 00 00 00 00 01 00 84 FF FF FF FF",
                 "M> 7E A8 0A 41 03 13 00 00 E6 7E", "M> 61 03 A2 01"):
        r = dlmsparse.parse_capture(text, key="00" * 16)
        assert r["errors"] or r["warnings"], text
