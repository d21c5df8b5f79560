"""The server side of ACSE (IEC 62056-5-3 / ISO 8650): parse AARQ and RLRQ, encode AARE and
RLRE, and the xDLMS InitiateRequest parser / InitiateResponse encoder inside them.

The meter's half of ACSE (the client's is :mod:`.apdu`; what both share, :mod:`.apdu`): the
simulated meter, the laptop's capture decoder and the tests use it; the reader never does (not
deployed to a board, no RAM in a reading).
"""

import struct

from optoread.compat import const
from optoread.dlms.acse.apdu import (
    DEFAULT_CONFORMANCE,
    RELEASE_NORMAL,
    SOURCE_USER,
    Association,
    auth_size,
    components,
    encode_release,
    mechanism_id,
    optional_u8,
    parse_release,
    put_auth,
    put_conformance,
    put_context,
    put_tl,
    read_conformance,
    tlv,
    tlv_size,
)
from optoread.dlms.xdlms.apdu import (
    AARE,
    AARQ,
    INITIATE_REQUEST,
    INITIATE_RESPONSE,
    RLRE,
    RLRQ,
    bounds,
    need,
    put,
    read_length,
    room,
    u8,
    u16,
)
from optoread.errors import ApduError

VAA_LN = const(0x0007)  # vaa-name of an InitiateResponse: logical names
VAA_SN = const(0xFA00)  # short names

_DEFAULT_DLMS_VERSION = const(6)


class InitiateRequest:
    """Decoded InitiateRequest: ``dedicated_key``, ``response_allowed``, ``qos``,
    ``dlms_version``, ``conformance``, ``max_pdu``."""

    def __init__(self):
        self.dedicated_key = None  # type: bytes | None
        self.response_allowed = True
        self.qos = None
        self.dlms_version = None
        self.conformance = 0
        self.max_pdu = None


def parse_initiate_request(mv, off=0, end=None):
    """Decode an xDLMS InitiateRequest (0x01) into an :class:`InitiateRequest`."""
    end = bounds(mv, off, end)
    tag, off = u8(mv, off, end, "initiate-request")
    if tag != INITIATE_REQUEST:
        raise ApduError("expected InitiateRequest, got 0x%02X" % tag, "initiate-request", off - 1)
    r = InitiateRequest()
    flag, off = u8(mv, off, end, "dedicated-key")
    if flag == 1:
        n, off = read_length(mv, off, end, "dedicated-key")
        need(mv, off, end, n, "dedicated-key")
        r.dedicated_key = bytes(mv[off:off + n])
        off += n
    elif flag != 0:
        raise ApduError("bad OPTIONAL flag", "dedicated-key", off - 1)
    allowed, off = optional_u8(mv, off, end, "response-allowed")
    r.response_allowed = allowed is None or allowed != 0
    r.qos, off = optional_u8(mv, off, end, "proposed-quality-of-service")
    r.dlms_version, off = u8(mv, off, end, "proposed-dlms-version-number")
    r.conformance, off = read_conformance(mv, off, end)
    r.max_pdu, off = u16(mv, off, end, "client-max-receive-pdu-size")
    return r


def encode_initiate_response(buf, off, conformance=DEFAULT_CONFORMANCE, max_pdu=0x0400,
                             dlms_version=_DEFAULT_DLMS_VERSION, vaa_name=VAA_LN):
    """xDLMS InitiateResponse (08 ...), server side."""
    room(buf, off, 14)
    buf[off] = INITIATE_RESPONSE
    buf[off + 1] = 0  # negotiated-quality-of-service: absent
    buf[off + 2] = dlms_version
    off = put_conformance(buf, off + 3, conformance)
    struct.pack_into(">HH", buf, off, max_pdu, vaa_name)
    return off + 4


class Aarq(Association):
    """Decoded AARQ (server side): see :class:`.apdu.Association` fields, plus ``initiate``
    (an :class:`InitiateRequest` when user-information is plain)."""

    def __init__(self):
        Association.__init__(self)
        self.initiate = None  # type: InitiateRequest | None


def parse_aarq(mv, off=0, end=None):
    """Decode an AARQ (0x60) into an :class:`Aarq`; unknown components are skipped."""
    off, end = components(mv, off, end, AARQ, "aarq")
    r = Aarq()
    while off < end:
        tag, v_off, v_end = tlv(mv, off, end)
        r.common_component(mv, tag, v_off, v_end, 0xA6, 0x8A, 0x8B, 0xAC)
        off = v_end
    if r.user_info_tag == INITIATE_REQUEST:
        r.initiate = parse_initiate_request(mv, r.user_info_off, r.user_info_end)
    return r


def encode_aare(buf, off, *, ln=True, ciphered=False, result=0, diagnostic_source=SOURCE_USER,
                diagnostic=0, responding_ap_title=None, mechanism=None, auth_value=None,
                conformance=DEFAULT_CONFORMANCE, max_pdu=0x0400, dlms_version=_DEFAULT_DLMS_VERSION,
                vaa_name=None, user_information=None):
    """AARE (0x61), server side: result, diagnostic, optional title/mechanism/StoC and
    either ``user_information`` (pre-built, e.g. a confirmed-service-error or a
    glo-initiate-response) or a plain InitiateResponse."""
    mech = mechanism_id(mechanism)
    if vaa_name is None:
        vaa_name = VAA_LN if ln else VAA_SN
    ui_len = len(user_information) if user_information is not None else 14
    n = 11 + 5 + 7 + auth_size(responding_ap_title, mech, auth_value, ui_len)
    room(buf, off, tlv_size(n))
    off = put_tl(buf, off, AARE, n)
    off = put_context(buf, off, ln, ciphered)
    off = put(buf, off, b"\xA2\x03\x02\x01")
    buf[off] = result
    off = put(buf, off + 1, b"\xA3\x05")
    buf[off] = 0xA0 + diagnostic_source
    off = put(buf, off + 1, b"\x03\x02\x01")
    buf[off] = diagnostic
    off = put_auth(buf, off + 1, 0, responding_ap_title, mech, auth_value, ui_len)
    if user_information is not None:
        return put(buf, off, user_information)
    return encode_initiate_response(buf, off, conformance, max_pdu, dlms_version, vaa_name)


def encode_rlre(buf, off, reason=RELEASE_NORMAL, user_information=None):
    """RLRE (0x63): release response (server side)."""
    return encode_release(buf, off, RLRE, reason, user_information)


def parse_rlrq(mv, off=0, end=None):
    """Decode an RLRQ (0x62) into a :class:`.apdu.Release` (server side)."""
    r = parse_release(mv, off, end, RLRQ, "rlrq")
    if r.user_info_tag == INITIATE_REQUEST:
        r.initiate = parse_initiate_request(mv, r.user_info_off, r.user_info_end)
    return r
