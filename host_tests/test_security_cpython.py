"""CPython-only checks of optoread.security: AESGCM cross-checks, gurux-dlms as a peer, fuzzing."""

import os

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from hypothesis import given, settings
from hypothesis import strategies as st
from optoread.dlms import security as s
from optoread.errors import OptoreadError, SecurityError

EXAMPLES = int(os.getenv("FUZZ_EXAMPLES", "300"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None)

keys = st.binary(min_size=16, max_size=16)
ivs = st.binary(min_size=12, max_size=12)
titles = st.binary(min_size=8, max_size=8)
counters = st.integers(min_value=0, max_value=0xFFFFFFFF)
tag_lens = st.sampled_from((4, 8, 12, 13, 14, 15, 16))

_EK = bytes.fromhex("000102030405060708090A0B0C0D0E0F")
_AK = bytes.fromhex("D0D1D2D3D4D5D6D7D8D9DADBDCDDDEDF")
_ST = bytes.fromhex("4D4D4D0000BC614E")


# ---------------------------------------------------------------- GCM against `cryptography`


@FUZZ
@given(key=keys, iv=ivs, plaintext=st.binary(max_size=300), aad=st.binary(max_size=80), tag_len=tag_lens)
def test_gcm_encrypt_matches_aesgcm(key, iv, plaintext, aad, tag_len):
    c, t = s.Gcm(key).encrypt(iv, plaintext, aad, tag_len)
    ref = AESGCM(key).encrypt(iv, plaintext, aad)
    assert c == ref[:-16]
    assert t == ref[-16:][:tag_len]


@FUZZ
@given(key=keys, iv=ivs, plaintext=st.binary(max_size=300), aad=st.binary(max_size=80))
def test_gcm_decrypts_aesgcm_output(key, iv, plaintext, aad):
    ref = AESGCM(key).encrypt(iv, plaintext, aad)
    g = s.Gcm(key)
    assert g.decrypt(iv, ref[:-16], aad, ref[-16:]) == plaintext
    assert g.decrypt(iv, ref[:-16], aad, ref[-16:-4]) == plaintext


@FUZZ
@given(key=keys, iv=ivs, plaintext=st.binary(min_size=1, max_size=100), aad=st.binary(max_size=40),
       pos=st.integers(min_value=0), bit=st.integers(min_value=0, max_value=7))
def test_gcm_any_flipped_bit_fails(key, iv, plaintext, aad, pos, bit):
    g = s.Gcm(key)
    c, t = g.encrypt(iv, plaintext, aad, 12)
    blob = bytearray(c + t)
    blob[pos % len(blob)] ^= 1 << bit
    with pytest.raises(SecurityError, match="tag mismatch"):
        g.decrypt(iv, bytes(blob[:len(c)]), aad, bytes(blob[len(c):]))


# ---------------------------------------------------------------- DLMS ciphering vs a reference


def _reference_protect(sc, title, ic, ek, ak, apdu):
    """Green Book suite 0 written directly on AESGCM, as an independent reference."""
    iv = title + ic.to_bytes(4, "big")
    head = bytes([sc]) + ic.to_bytes(4, "big")
    if sc & 0x30 == 0x10:
        return head + apdu + AESGCM(ek).encrypt(iv, b"", bytes([sc]) + ak + apdu)[:12]
    if sc & 0x30 == 0x20:
        return head + AESGCM(ek).encrypt(iv, apdu, b"")[:-16]
    ct = AESGCM(ek).encrypt(iv, apdu, bytes([sc]) + ak)
    return head + ct[:-16] + ct[-16:-4]


@FUZZ
@given(sc=st.sampled_from((0x10, 0x20, 0x30, 0x50, 0x60, 0x70)), title=titles, ic=counters, ek=keys,
       ak=keys, apdu=st.binary(max_size=400))
def test_protect_matches_reference_and_round_trips(sc, title, ic, ek, ak, apdu):
    out = s.protect(sc, title, ic, ek, ak, apdu)
    assert out == _reference_protect(sc, title, ic, ek, ak, apdu)
    assert s.unprotect(out, title, ek, ak) == (apdu, sc, ic)
    w = s.wrap_general_glo(title, sc, ic, ek, ak, apdu)
    plain, info = s.unwrap(w, ek, ak)
    assert plain == apdu and info["ic"] == ic and info["system_title"] == title


@FUZZ
@given(challenge=st.binary(min_size=8, max_size=64), title=titles, ic=counters, ek=keys, ak=keys)
def test_hls_gmac_matches_reference(challenge, title, ic, ek, ak):
    f = s.hls_gmac(title, ic, ek, ak, challenge)
    iv = title + ic.to_bytes(4, "big")
    tag = AESGCM(ek).encrypt(iv, b"", b"\x10" + ak + challenge)[:12]
    assert f == b"\x10" + ic.to_bytes(4, "big") + tag
    assert s.verify_hls_gmac(f, title, ek, ak, challenge) == ic


# ---------------------------------------------------------------- gurux-dlms as a peer


def _gurux_cipher(tag, sc, ic, apdu):
    from gurux_dlms.AesGcmParameter import AesGcmParameter
    from gurux_dlms.enums.Security import Security
    from gurux_dlms.GXDLMSChippering import GXDLMSChippering

    sec = {0x10: Security.AUTHENTICATION, 0x20: Security.ENCRYPTION,
           0x30: Security.AUTHENTICATION_ENCRYPTION}[sc]
    p = AesGcmParameter(tag, bytearray(_ST), bytearray(_EK), bytearray(_AK))
    p.security = sec
    p.invocationCounter = ic
    return bytes(GXDLMSChippering.encryptAesGcm(p, bytearray(apdu)))


@pytest.mark.parametrize("sc", (0x10, 0x20, 0x30))
@pytest.mark.parametrize("tag", (0xDB, 0xC8, 0xCC, 0xCB, 0x21, 0xD0))
@pytest.mark.parametrize("n", (0, 13, 200))
def test_gurux_peer_produces_the_same_apdus(sc, tag, n):
    apdu = bytes((0xC0 + i) & 0xFF for i in range(n))
    theirs = _gurux_cipher(tag, sc, 0x01234567, apdu)
    if tag == 0xDB:
        ours = s.wrap_general_glo(_ST, sc, 0x01234567, _EK, _AK, apdu)
    else:
        ours = s.wrap_service(tag, sc, 0x01234567, _EK, _AK, apdu, _ST)
    assert ours == theirs
    plain, info = s.unwrap(theirs, _EK, _AK, _ST)
    assert plain == apdu and info["sc"] == sc


def test_gurux_peer_gmac_password():
    from gurux_dlms.GXCiphering import GXCiphering

    c = GXCiphering(bytearray(_ST))
    c.blockCipherKey = bytearray(_EK)
    c.authenticationKey = bytearray(_AK)
    c.invocationCounter = 77
    theirs = bytes(c.generateGmacPassword(bytearray(b"K56iVagY")))
    assert theirs == s.hls_gmac(_ST, 77, _EK, _AK, b"K56iVagY")
    assert s.verify_hls_gmac(theirs, _ST, _EK, _AK, b"K56iVagY", last_ic=76) == 77


# ---------------------------------------------------------------- fuzzing: only OptoreadError escapes


def _only_optoread_errors(fn, *args, **kwargs):
    try:
        fn(*args, **kwargs)
    except OptoreadError:
        pass


@FUZZ
@given(data=st.binary(max_size=120), ak=st.one_of(st.none(), keys), title=st.one_of(st.none(), titles))
def test_fuzz_unwrap_random_bytes(data, ak, title):
    _only_optoread_errors(s.unwrap, data, _EK, ak, title)


@FUZZ
@given(tag=st.sampled_from((0xDB, 0xDC, 0xC8, 0xCC, 0x21, 0x28, 0xD4)), rest=st.binary(max_size=80))
def test_fuzz_unwrap_plausible_headers(tag, rest):
    _only_optoread_errors(s.unwrap, bytes([tag]) + rest, _EK, _AK, _ST)


@FUZZ
@given(data=st.binary(max_size=80), ak=st.one_of(st.none(), keys, st.binary(max_size=20)))
def test_fuzz_unprotect_random_bytes(data, ak):
    _only_optoread_errors(s.unprotect, data, _ST, _EK, ak)


@FUZZ
@given(sc=st.sampled_from((0x10, 0x20, 0x30)), apdu=st.binary(max_size=200), data=st.data())
def test_fuzz_mutated_valid_apdus(sc, apdu, data):
    w = bytearray(s.wrap_general_glo(_ST, sc, 5, _EK, _AK, apdu))
    edits = data.draw(st.lists(st.tuples(st.integers(0, len(w) - 1), st.integers(0, 255)),
                               min_size=1, max_size=4))
    for pos, val in edits:
        w[pos] = val
    cut = data.draw(st.integers(0, len(w)))
    try:
        plain, info = s.unwrap(bytes(w[:cut]), _EK, _AK)
    except OptoreadError:
        return
    # Accepted: either nothing relevant changed, or SC 0x20 (no tag) let a ciphertext edit through.
    assert info["sc"] & 0x10 == 0 or plain == apdu
