"""``optoread parse FILE.hex [--json] [--key K --auth-key A]`` on real captures (CPython only),
plus a hypothesis fuzz of the decode chain: hostile bytes give errors in the result, never
an exception."""

import json
import os
import subprocess
import sys

import portable
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from optoread.dlms.hdlc import frame as hdlc
from optoread_tools import cli, dlmsparse

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_FUZZ = settings(max_examples=int(os.getenv("FUZZ_EXAMPLES", "300")), deadline=None,
                 suppress_health_check=[HealthCheck.too_slow])


def _capture(name):
    d = portable.shared_dir("captures", "hdlc-dlms")
    if d is None:
        pytest.skip("../shared/captures/hdlc-dlms is absent")
    return os.path.join(d, name)


def _sidecar(name):
    with open(_capture(name[:-4] + ".json")) as f:
        return json.load(f)


def _run(capsys, *argv):
    code = cli.main(["parse"] + list(argv))
    out = capsys.readouterr().out
    return code, out


def test_json_of_a_segmented_push(capsys):
    code, out = _run(capsys, _capture("iskra_am550_3seg_dlmsparser.hex"), "--json")
    assert code == 0
    r = json.loads(out)
    assert [f["segmented"] for f in r["frames"]] == [True, True, False]
    assert len(r["apdus"]) == 1 and r["apdus"][0]["source"]["frames"] == [1, 2, 3]
    v = {x["obis"]: x for x in r["values"]}
    assert v["1.0.32.7.0.255"]["value"] == 2364 and v["1.0.32.7.0.255"]["scaler"] == -1
    assert v["1.0.32.7.0.255"]["scaled"] == 236.4 and v["1.0.32.7.0.255"]["unit"] == "V"
    assert v["0.0.96.1.1.255"]["value"] == "160456"
    assert r["errors"] == [] and r["warnings"] == []


def test_key_decrypts_the_e450_gbt_push(capsys):
    name = "landisgyr_e450_gbt_encrypted_dlmsparser.hex"
    keys = _sidecar(name)["keys"]
    code, out = _run(capsys, _capture(name), "--json", "--key", keys["encryption_key"],
                     "--auth-key", keys["authentication_key"])
    assert code == 0
    r = json.loads(out)
    tags = [a["tag"] for a in r["apdus"]]
    assert tags == ["general-block-transfer"] * 3 + ["general-glo-ciphering", "data-notification"]
    glo = r["apdus"][3]["fields"]
    assert glo["decrypted"] and glo["tag_verified"] and glo["security_control"] == 0x30
    v = {x["obis"]: x["value"] for x in r["values"]}
    assert v["1.0.1.8.0.255"] == 4408736 and v["1.0.3.7.0.255"] == 1735


def test_key_without_auth_key_decrypts_but_does_not_verify(capsys):
    name = "kamstrup_omnipower_encrypted_dlmsparser.hex"
    keys = _sidecar(name)["keys"]
    code, out = _run(capsys, _capture(name), "--json", "--key", keys["encryption_key"])
    assert code == 0
    r = json.loads(out)
    assert r["apdus"][0]["fields"]["tag_verified"] is False
    assert any("without checking the GCM tag" in w for w in r["warnings"])
    assert {x["obis"]: x["value"] for x in r["values"]}["1.1.1.8.0.255"] == 6307498


def test_wrong_key_is_an_error(capsys):
    name = "landisgyr_e450_gbt_encrypted_2_dlmsparser.hex"
    code, out = _run(capsys, _capture(name), "--json", "--key", "00" * 16, "--auth-key", "11" * 16)
    assert code == 1
    r = json.loads(out)
    assert r["values"] == [] and any("security" in e for e in r["errors"])


def test_bad_fcs_exits_1_and_names_the_fcs(capsys):
    code, out = _run(capsys, _capture("landisgyr_zmf100_embriq_fcs_mismatch_dlmsparser.hex"))
    assert code == 1
    assert "error: frame 1 (line 1): FCS mismatch" in out
    assert "warning: apdu 1: strict A-XDR decoding failed" in out
    assert "40799390" in out and "EMBRIQ_V1_1" in out  # still decoded


def test_text_output_of_an_association(capsys):
    code, out = _run(capsys, _capture("u9n_tests_snrm_ua_aarq_aare.hex"))
    assert code == 0
    assert "frame 2 M> UA" in out and '"max_info_field_length_transmit": 154' in out
    assert "apdu 2 M> aare" in out and "result_name: accepted" in out


def test_get_request_names_the_response_value(capsys):
    code, out = _run(capsys, _capture("u9n_tests_get_normal_invocation_counter_apdu.hex"), "--json")
    assert code == 0
    r = json.loads(out)
    assert r["values"] == [{"obis": "0.0.43.1.0.255", "value": 5009, "unit": None, "scaler": None,
                            "position": 1, "message": 1, "apdu": 2, "name": r["values"][0]["name"],
                            "class_id": 1, "attribute": 2}]


def test_module_entry_point():
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([os.path.join(ROOT, "firmware"), os.path.join(ROOT, "tools")])
    p = subprocess.run([sys.executable, "-m", "optoread_tools.cli", "parse",
                        _capture("aidon_list1_escape_byte_amshan.hex"), "--json"],
                       capture_output=True, text=True, env=env, timeout=60)
    assert p.returncode == 0, p.stderr
    assert json.loads(p.stdout)["values"][0]["value"] == 1661


def test_malformed_lines_and_keys():
    r = dlmsparse.parse_capture("X> 7E\nM> 7G\n\n# comment\nM>\n")
    assert len(r["errors"]) == 3 and r["frames"] == []
    r = dlmsparse.parse_capture("M> 0F", key="zz")
    assert r["errors"] == ["security: encryption key is not hex [key]"]
    r = dlmsparse.parse_capture("M> 0F 00", key="00")
    assert "16 bytes" in r["errors"][0]


def _check_result(r):
    assert set(r) == {"frames", "apdus", "values", "errors", "warnings"}
    json.dumps(r)  # always serialisable


@_FUZZ
@given(st.binary(min_size=1, max_size=300))
def test_fuzz_bare_apdus(data):
    _check_result(dlmsparse.decode_records([("M>", data, 1)], key="00" * 16, auth_key="11" * 16))


_PREFIXES = (b"\x0f", b"\xc4\x01\xc1\x00", b"\xc4\x02\xc1", b"\xe0", b"\xdb\x08", b"\x61", b"\x60",
             b"\x0f\x00\x00\x00\x00\x00\x02")


@_FUZZ
@given(st.sampled_from(_PREFIXES), st.binary(max_size=200))
def test_fuzz_apdu_bodies(prefix, rest):
    _check_result(dlmsparse.decode_records([("M>", prefix + rest, 1)], key="00" * 16))


@_FUZZ
@given(st.lists(st.tuples(st.booleans(), st.binary(min_size=1, max_size=80)), min_size=1, max_size=4))
def test_fuzz_frames(parts):
    # Valid HDLC frames (good HCS/FCS) around hostile information fields, some segmented.
    records = []
    for seg, info in parts:
        buf = bytearray(len(info) + 32)
        n = hdlc.encode_ui(buf, 0, b"\x41", b"\x08\x83", info, segmented=seg)
        records.append(("M>", bytes(buf[:n]), 1))
    _check_result(dlmsparse.decode_records(records))
