"""ACSE for DLMS/COSEM associations (IEC 62056-5-3 / ISO 8650): the client's side (AARQ out with
the plain xDLMS InitiateRequest, AARE in, RLRQ out, RLRE in) and what the meter's side
(:mod:`.server`) shares with it: BER TLV primitives, the application-context and mechanism
names, the fields AARQ and AARE share, the xDLMS conformance block and InitiateResponse carried
in user-information, and RLRQ/RLRE.

When the InitiateRequest/Response are ciphered (glo-/ded-initiate-*), the AARE exposes their
offsets for the security layer, which decrypts and hands the plain bytes to
:func:`parse_initiate_response`.

BER lengths may use the long form anywhere (Kamstrup OMNIA sends them, u9n/dlms-cosem PR #115)
and unknown optional components are skipped. Encoders write into a caller-provided ``bytearray``
and return the new offset; decoders take ``(mv, off=0, end=None)`` and raise only
:class:`ApduError`. The names of the codes are :mod:`.names` (loaded when one is printed).
"""

# Aare.initiate starts as None and takes an InitiateResponse.
# pyright: reportAttributeAccessIssue=false

import struct

from optoread.compat import const
from optoread.dlms.xdlms.apdu import (
    AARE,
    AARQ,
    CONFIRMED_SERVICE_ERROR,
    INITIATE_REQUEST,
    INITIATE_RESPONSE,
    RLRE,
    RLRQ,
    bounds,
    is_ciphered,
    length_size,
    need,
    put,
    read_length,
    room,
    u8,
    u16,
    write_length,
)
from optoread.errors import ApduError

# Conformance blocks a client proposes (bits: below, names.py).
# get, set, action, selective access, block transfer for all three, multiple references.
DEFAULT_CONFORMANCE = const(0x001E1D)
# SN: read, write, unconfirmed-write, block read/write, multiple references, parameterized access.
DEFAULT_CONFORMANCE_SN = const(0x1C1A20)

# ---------------------------------------------------------------- names (tables: names.py)
CONTEXT_LN = const(1)
CONTEXT_SN = const(2)
CONTEXT_LN_CIPHERED = const(3)
_CONTEXT_SN_CIPHERED = const(4)

_MECHANISM_NONE = const(0)
MECHANISM_LLS = const(1)
MECHANISM_HLS = const(2)
_MECHANISM_HLS_MD5 = const(3)
_MECHANISM_HLS_SHA1 = const(4)
MECHANISM_HLS_GMAC = const(5)
_MECHANISM_HLS_SHA256 = const(6)
_MECHANISM_HLS_ECDSA = const(7)
_MECHANISMS = {"lls": 1, "hls": 2, "hls-md5": 3, "hls-sha1": 4, "hls-gmac": 5, "hls-sha256": 6,
               "hls-ecdsa": 7}

# 2.16.756.5.8.1.x (application context) and 2.16.756.5.8.2.x (mechanism), minus the last arc.
_OID_CONTEXT = b"\x60\x85\x74\x05\x08\x01"
_OID_MECHANISM = b"\x60\x85\x74\x05\x08\x02"

SOURCE_USER = const(1)  # acse-service-user
_SOURCE_PROVIDER = const(2)  # acse-service-provider

RELEASE_NORMAL = const(0)
_RELEASE_URGENT = const(1)  # RLRQ; in an RLRE, 1 = not-finished
_RELEASE_USER_DEFINED = const(30)


def mechanism_id(mechanism):
    """Mechanism id from None, a name ('lls', 'hls-gmac', ...) or an int."""
    if mechanism is None:
        return None
    if isinstance(mechanism, int):
        return mechanism
    if mechanism in _MECHANISMS:
        return _MECHANISMS[mechanism]
    raise ApduError("unknown mechanism %r" % (mechanism,), "mechanism-name")


def _context_id(ln, ciphered):
    return (CONTEXT_LN if ln else CONTEXT_SN) + (2 if ciphered else 0)


# ---------------------------------------------------------------- BER helpers
def put_tl(buf, off, tag, n):
    """A BER tag and definite length (the ``n`` value bytes follow); returns the new offset."""
    room(buf, off, 1)
    buf[off] = tag
    return write_length(buf, off + 1, n)


def tlv_size(n):
    """Bytes of a BER element (one-byte tag) with ``n`` value bytes."""
    return 1 + length_size(n) + n


def tlv(mv, off, end):
    """One BER element: ``(tag, value_off, value_end)``; multi-byte tags are folded into one int."""
    tag, off = u8(mv, off, end, "ber-tag")
    if tag & 0x1F == 0x1F:
        for _ in range(3):
            b, off = u8(mv, off, end, "ber-tag")
            tag = (tag << 8) | b
            if not b & 0x80:
                break
        else:
            raise ApduError("BER tag too long", "ber-tag", off)
    n, off = read_length(mv, off, end, "ber-length")
    need(mv, off, end, n, "ber-value")
    return tag, off, off + n


def inner(mv, off, end, tag, field):
    """``(value_off, value_end)`` of the single element inside a constructed [n] wrapper, which
    must carry ``tag``."""
    t, v_off, v_end = tlv(mv, off, end)
    if t != tag:
        raise ApduError("expected 0x%02X, got 0x%02X" % (tag, t), field, off)
    return v_off, v_end


def ber_int(mv, off, end, field):
    """The value of a BER INTEGER of 1..4 bytes at ``mv[off:end]``."""
    if end - off < 1 or end - off > 4:
        raise ApduError("bad INTEGER length", field, off)
    v = 0
    for i in range(off, end):
        v = (v << 8) | mv[i]
    return v


def _oid_arc(mv, off, end, prefix):
    # Last arc of an OID under ``prefix`` (DLMS names are 7 bytes), or None if it is another OID.
    if end - off == 7 and bytes(mv[off:off + 6]) == prefix:
        return mv[off + 6]
    return None


def _auth_value(mv, off, end):
    # Authentication-value CHOICE: [0] charstring, [1] bitstring (leading unused-bits byte), ...
    t, v_off, v_end = tlv(mv, off, end)
    if t == 0x81 and v_end > v_off:
        v_off += 1
    return bytes(mv[v_off:v_end])


# ---------------------------------------------------------------- conformance block, InitiateResponse
def put_conformance(buf, off, bits):
    """The xDLMS conformance block (5F 1F 04 00 b1 b2 b3) of the 24 ``bits``."""
    room(buf, off, 7)
    buf[off] = 0x5F
    buf[off + 1] = 0x1F
    buf[off + 2] = 0x04
    buf[off + 3] = 0x00
    buf[off + 4] = (bits >> 16) & 0xFF
    buf[off + 5] = (bits >> 8) & 0xFF
    buf[off + 6] = bits & 0xFF
    return off + 7


def read_conformance(mv, off, end):
    """``(bits, off)`` of a conformance block: [APPLICATION 31] IMPLICIT BIT STRING (SIZE 24),
    5F 1F len unused-bits b1 b2 b3."""
    need(mv, off, end, 3, "conformance")
    if mv[off] != 0x5F or mv[off + 1] != 0x1F:
        raise ApduError("expected conformance block", "conformance", off)
    n, off = read_length(mv, off + 2, end, "conformance")
    need(mv, off, end, n, "conformance")
    if n < 1 or n > 4:
        raise ApduError("bad conformance length", "conformance", off)
    bits = 0
    for i in range(1, 4):
        bits = (bits << 8) | (mv[off + i] if i < n else 0)
    return bits, off + n


def optional_u8(mv, off, end, field):
    """An A-XDR OPTIONAL byte: ``(None, off)`` when absent (00), else ``(value, off)``."""
    flag, off = u8(mv, off, end, field)
    if flag == 0:
        return None, off
    if flag != 1:
        raise ApduError("bad OPTIONAL flag", field, off - 1)
    return u8(mv, off, end, field)


class InitiateResponse:
    """Decoded InitiateResponse: ``qos``, ``dlms_version``, ``conformance`` (int),
    ``max_pdu`` (server max receive PDU size), ``vaa_name`` (0x0007 LN, 0xFA00 SN)."""

    def __init__(self):
        self.qos = None
        self.dlms_version = None
        self.conformance = 0
        self.max_pdu = None
        self.vaa_name = None

    def conformance_names(self):
        from optoread.dlms.acse import names as acse_names

        return acse_names.conformance_names(self.conformance)


def parse_initiate_response(mv, off=0, end=None):
    """Decode a plain xDLMS InitiateResponse (0x08) into an :class:`InitiateResponse`.

    A confirmed-service-error (0x0E) raises ApduError naming the error.
    """
    end = bounds(mv, off, end)
    tag, off2 = u8(mv, off, end, "initiate-response")
    if tag == CONFIRMED_SERVICE_ERROR:
        from optoread.dlms.xdlms import (
            service_errors as xdlms_errors,  # the meter refused the InitiateRequest
        )

        s, k, c = xdlms_errors.parse_confirmed_service_error(mv, off, end)
        raise ApduError("confirmed-service-error " + xdlms_errors.confirmed_service_error_text(s, k, c),
                        "initiate-response", off)
    if tag != INITIATE_RESPONSE:
        raise ApduError("expected InitiateResponse, got 0x%02X" % tag, "initiate-response", off)
    off = off2
    r = InitiateResponse()
    r.qos, off = optional_u8(mv, off, end, "negotiated-quality-of-service")
    r.dlms_version, off = u8(mv, off, end, "negotiated-dlms-version-number")
    r.conformance, off = read_conformance(mv, off, end)
    r.max_pdu, off = u16(mv, off, end, "server-max-receive-pdu-size")
    r.vaa_name, off = u16(mv, off, end, "vaa-name")
    return r


# ---------------------------------------------------------------- AARQ / AARE common parts
class Association:
    """Fields shared by the decoded AARQ (server.py) and AARE (below)."""

    def __init__(self):
        self.context_id = None  # 1..4 (CONTEXT_*), None if not a DLMS context name
        self.ap_title = None  # calling (AARQ) / responding (AARE) AP title, bytes
        self.mechanism = None  # mechanism id (MECHANISM_*) or None
        self.auth_value = None  # calling (LLS password / CtoS) / responding (StoC) value
        self.acse_requirements = None  # True when the authentication functional unit is selected
        self.user_info_tag = None  # first byte of the xDLMS APDU in user-information
        self.user_info_off = 0  # xDLMS APDU bytes (valid when user_info_tag is not None)
        self.user_info_end = 0

    @property
    def ln(self):
        """True for logical-name referencing contexts (None if the context is unknown)."""
        return None if self.context_id is None else self.context_id in (1, 3)

    @property
    def ciphered(self):
        """True for the ciphered application contexts."""
        return self.context_id in (3, 4)

    @property
    def ciphered_user_info(self):
        """True when user-information holds a ciphered APDU the security layer must decrypt."""
        return self.user_info_tag is not None and is_ciphered(self.user_info_tag)

    def common_component(self, mv, tag, v_off, v_end, title_tag, req_tag, mech_tag, auth_tag):
        """Take a component both PDUs share (their tags differ: ``*_tag``); False if it is not one."""
        if tag == 0xA1:
            o_off, o_end = inner(mv, v_off, v_end, 0x06, "application-context-name")
            self.context_id = _oid_arc(mv, o_off, o_end, _OID_CONTEXT)
        elif tag == title_tag:
            t_off, t_end = inner(mv, v_off, v_end, 0x04, "ap-title")
            self.ap_title = bytes(mv[t_off:t_end])
        elif tag == req_tag:
            # BIT STRING: unused-bits byte, then bit 0 = authentication
            self.acse_requirements = v_end - v_off >= 2 and bool(mv[v_off + 1] & 0x80)
        elif tag == mech_tag:
            arc = _oid_arc(mv, v_off, v_end, _OID_MECHANISM)
            if arc is None:
                raise ApduError("unknown mechanism name", "mechanism-name", v_off)
            self.mechanism = arc
        elif tag == auth_tag:
            self.auth_value = _auth_value(mv, v_off, v_end)
        elif tag == 0xBE:
            u_off, u_end = inner(mv, v_off, v_end, 0x04, "user-information")
            self.user_info_off, self.user_info_end = u_off, u_end
            self.user_info_tag = mv[u_off] if u_end > u_off else None
        else:
            return False
        return True

    def user_info(self, mv):
        """A memoryview of the xDLMS APDU in user-information (None if absent)."""
        if self.user_info_tag is None:
            return None
        return memoryview(mv)[self.user_info_off:self.user_info_end]


def components(mv, off, end, tag, field):
    """``(value_off, value_end)`` of the components inside the APDU's [APPLICATION n] wrapper ``tag``."""
    end = bounds(mv, off, end)
    t, v_off, v_end = tlv(mv, off, end)
    if t != tag:
        raise ApduError("expected 0x%02X, got 0x%02X" % (tag, t), field, off)
    return v_off, v_end


def put_context(buf, off, ln, ciphered):
    """The application-context-name component (LN/SN, ciphered or not)."""
    off = put_tl(buf, off, 0xA1, 9)
    off = put_tl(buf, off, 0x06, 7)
    off = put(buf, off, _OID_CONTEXT)
    buf[off] = _context_id(ln, ciphered)
    return off + 1


def _put_mechanism(buf, off, tag, mech):
    off = put_tl(buf, off, tag, 7)
    off = put(buf, off, _OID_MECHANISM)
    buf[off] = mech
    return off + 1


def _put_auth_value(buf, off, tag, value):
    off = put_tl(buf, off, tag, tlv_size(len(value)))
    off = put_tl(buf, off, 0x80, len(value))
    return put(buf, off, value)


def _put_title(buf, off, tag, title):
    off = put_tl(buf, off, tag, tlv_size(len(title)))
    off = put_tl(buf, off, 0x04, len(title))
    return put(buf, off, title)


def _user_info_sizes(ui_len):
    # user-information: [30] around an OCTET STRING of ``ui_len`` bytes
    return tlv_size(tlv_size(ui_len))


def _put_user_info(buf, off, ui_len):
    # the user-information's tags and lengths; its ``ui_len`` bytes follow
    off = put_tl(buf, off, 0xBE, tlv_size(ui_len))
    return put_tl(buf, off, 0x04, ui_len)


def auth_size(title, mech, auth_value, ui_len):
    """Bytes of the optional AP title, mechanism and authentication value, and of the
    user-information ([30] OCTET STRING around ``ui_len`` bytes) of an AARQ or AARE."""
    n = _user_info_sizes(ui_len)
    if title is not None:
        n += tlv_size(tlv_size(len(title)))
    if mech is not None:
        n += 4 + 9  # acse-requirements + mechanism-name
    if auth_value is not None:
        n += tlv_size(tlv_size(len(auth_value)))
    return n


def put_auth(buf, off, d, title, mech, auth_value, ui_len):
    """The fields :func:`auth_size` counts, up to the user-information's contents. AARQ tags are
    the AARE's + 2 (``d``): AP title A6/A4, acse-requirements 8A/88, mechanism-name 8B/89,
    authentication-value AC/AA."""
    if title is not None:
        off = _put_title(buf, off, 0xA4 + d, title)
    if mech is not None:
        buf[off] = 0x88 + d
        off = put(buf, off + 1, b"\x02\x07\x80")
        off = _put_mechanism(buf, off, 0x89 + d, mech)
    if auth_value is not None:
        off = _put_auth_value(buf, off, 0xAA + d, auth_value)
    return _put_user_info(buf, off, ui_len)


# ---------------------------------------------------------------- RLRQ / RLRE
def encode_release(buf, off, tag, reason, user_information):
    """RLRQ or RLRE (``tag``): ``reason`` (None omits it), optional ``user_information`` bytes."""
    n = 0 if reason is None else 3
    if user_information is not None:
        n += _user_info_sizes(len(user_information))
    room(buf, off, tlv_size(n))
    off = put_tl(buf, off, tag, n)
    if reason is not None:
        off = put(buf, off, b"\x80\x01")
        buf[off] = reason
        off += 1
    if user_information is not None:
        off = _put_user_info(buf, off, len(user_information))
        off = put(buf, off, user_information)
    return off


class Release:
    """Decoded RLRQ/RLRE: ``reason`` (None if absent), user-information offsets/tag, and
    ``initiate`` when it holds a plain InitiateRequest/Response."""

    def __init__(self):
        self.reason = None  # type: int | None
        self.user_info_tag = None
        self.user_info_off = 0
        self.user_info_end = 0
        self.initiate = None  # type: object  # InitiateResponse; server.parse_rlrq: InitiateRequest


def parse_release(mv, off, end, tag, field):
    """Decode an RLRQ or RLRE (``tag``) into a :class:`Release`."""
    off, end = components(mv, off, end, tag, field)
    r = Release()
    while off < end:
        t, v_off, v_end = tlv(mv, off, end)
        if t == 0x80:
            r.reason = ber_int(mv, v_off, v_end, "reason")
        elif t == 0xBE:
            u_off, u_end = inner(mv, v_off, v_end, 0x04, "user-information")
            r.user_info_off, r.user_info_end = u_off, u_end
            r.user_info_tag = mv[u_off] if u_end > u_off else None
        off = v_end
    if r.user_info_tag == INITIATE_RESPONSE:
        r.initiate = parse_initiate_response(mv, r.user_info_off, r.user_info_end)
    return r  # an InitiateRequest (in an RLRQ) is parsed by server.parse_rlrq





# ---------------------------------------------------------------- conformance block bits
# (those the client never tests are in names.py)
_CONF_GENERAL_PROTECTION = const(0x400000)
_CONF_UNCONFIRMED_WRITE = const(0x040000)
_CONF_DELTA_VALUE_ENCODING = const(0x020000)
_CONF_ATTRIBUTE0_WITH_SET = const(0x008000)
CONF_BLOCK_TRANSFER_SET = const(0x000800)  # block-transfer-with-set-or-write
CONF_MULTIPLE_REFERENCES = const(0x000200)
_CONF_DATA_NOTIFICATION = const(0x000080)
_CONF_ACCESS = const(0x000040)
_CONF_EVENT_NOTIFICATION = const(0x000002)

_RESULT_ACCEPTED = const(0)
RESULT_REJECTED_PERMANENT = const(1)
_RESULT_REJECTED_TRANSIENT = const(2)
RESULT_NAMES = ("accepted", "rejected-permanent", "rejected-transient")

DIAG_AUTHENTICATION_FAILURE = const(13)
DIAG_AUTHENTICATION_REQUIRED = const(14)

_DEFAULT_DLMS_VERSION = const(6)


# ---------------------------------------------------------------- InitiateRequest
def initiate_request_size(dedicated_key=None):
    """Bytes taken by :func:`encode_initiate_request`."""
    return 14 + (length_size(len(dedicated_key)) + len(dedicated_key) if dedicated_key else 0)


def encode_initiate_request(buf, off, conformance=DEFAULT_CONFORMANCE, max_pdu=0xFFFF,
                            dlms_version=_DEFAULT_DLMS_VERSION, dedicated_key=None):
    """xDLMS InitiateRequest (01 ...): proposed conformance, client max receive PDU size."""
    room(buf, off, initiate_request_size(dedicated_key))
    buf[off] = INITIATE_REQUEST
    off += 1
    if dedicated_key:
        buf[off] = 1
        off = write_length(buf, off + 1, len(dedicated_key))
        off = put(buf, off, dedicated_key)
    else:
        buf[off] = 0
        off += 1
    buf[off] = 0  # response-allowed: DEFAULT TRUE
    buf[off + 1] = 0  # proposed-quality-of-service: absent
    buf[off + 2] = dlms_version
    off = put_conformance(buf, off + 3, conformance)
    struct.pack_into(">H", buf, off, max_pdu)
    return off + 2


# ---------------------------------------------------------------- AARQ
def encode_aarq(buf, off, *, ln=True, ciphered=False, mechanism=None, calling_ap_title=None,
                auth_value=None, conformance=DEFAULT_CONFORMANCE, max_pdu=0xFFFF,
                dlms_version=_DEFAULT_DLMS_VERSION, user_information=None):
    """AARQ (0x60) requesting an association.

    ``mechanism``: None, 'lls', 'hls', 'hls-gmac' (5), ... or an int; ``auth_value``: the
    LLS password or the HLS challenge CtoS; ``calling_ap_title``: the 8-byte system title
    (needed with ciphering); ``user_information``: a pre-built xDLMS APDU (e.g. a
    glo-initiate-request) instead of the plain InitiateRequest built from
    ``conformance``/``max_pdu``/``dlms_version``.
    """
    mech = mechanism_id(mechanism)
    ui_len = len(user_information) if user_information is not None else initiate_request_size()
    n = 11 + auth_size(calling_ap_title, mech, auth_value, ui_len)  # 11: application-context-name
    room(buf, off, tlv_size(n))
    off = put_tl(buf, off, AARQ, n)
    off = put_context(buf, off, ln, ciphered)
    off = put_auth(buf, off, 2, calling_ap_title, mech, auth_value, ui_len)
    if user_information is not None:
        return put(buf, off, user_information)
    return encode_initiate_request(buf, off, conformance, max_pdu, dlms_version)


# ---------------------------------------------------------------- AARE


class Aare(Association):
    """Decoded AARE. Besides the :class:`.apdu.Association` fields: ``result`` (0 accepted,
    1 rejected-permanent, 2 rejected-transient), ``diagnostic_source`` (1 user, 2 provider),
    ``diagnostic``; ``initiate`` (:class:`.apdu.InitiateResponse`) when user-information is a plain
    InitiateResponse, ``service_error`` = (service, type, code) for a confirmed-service-error;
    for a ciphered user-information (``ciphered_user_info``), decrypt
    ``user_info(mv)`` and call :func:`.apdu.parse_initiate_response` on the plaintext."""

    def __init__(self):
        Association.__init__(self)
        self.result = None  # type: int | None
        self.diagnostic_source = None  # type: int | None
        self.diagnostic = None  # type: int | None
        self.initiate = None  # an apdu.InitiateResponse once parsed
        self.service_error = None  # type: tuple | None

    @property
    def accepted(self):
        return self.result == _RESULT_ACCEPTED

    @property
    def result_name(self):
        r = self.result
        return RESULT_NAMES[r] if r is not None and 0 <= r < 3 else "result-%r" % (r,)

    @property
    def diagnostic_name(self):
        if self.diagnostic is None:
            return None
        from optoread.dlms.acse import names as acse_names  # a rejected association: name why

        return acse_names.diagnostic_name(self.diagnostic_source, self.diagnostic)

    def check(self):
        """Raise ApduError unless the association was accepted without a service error."""
        if self.service_error is not None:
            from optoread.dlms.xdlms import service_errors as xdlms_errors

            text = xdlms_errors.confirmed_service_error_text(*self.service_error)
            raise ApduError("association refused: confirmed-service-error " + text, "user-information")
        if not self.accepted:
            src = "acse-service-user" if self.diagnostic_source == SOURCE_USER else "acse-service-provider"
            raise ApduError("association %s: %s %s" % (self.result_name, src, self.diagnostic_name),
                            "result")


def parse_aare(mv, off=0, end=None):
    """Decode an AARE (0x61) into an :class:`Aare`. A rejection is reported in the object
    (see :meth:`Aare.check`), not raised; malformed bytes raise ApduError."""
    off, end = components(mv, off, end, AARE, "aare")
    r = Aare()
    while off < end:
        tag, v_off, v_end = tlv(mv, off, end)
        if tag == 0xA2:
            i_off, i_end = inner(mv, v_off, v_end, 0x02, "result")
            r.result = ber_int(mv, i_off, i_end, "result")
        elif tag == 0xA3:
            s, d_off, d_end = tlv(mv, v_off, v_end)
            if s not in (0xA1, 0xA2):
                raise ApduError("bad result-source-diagnostic", "result-source-diagnostic", v_off)
            r.diagnostic_source = s - 0xA0
            i_off, i_end = inner(mv, d_off, d_end, 0x02, "result-source-diagnostic")
            r.diagnostic = ber_int(mv, i_off, i_end, "result-source-diagnostic")
        else:
            r.common_component(mv, tag, v_off, v_end, 0xA4, 0x88, 0x89, 0xAA)
        off = v_end
    if r.result is None:
        raise ApduError("AARE without result", "result", off)
    if r.user_info_tag == INITIATE_RESPONSE:
        r.initiate = parse_initiate_response(mv, r.user_info_off, r.user_info_end)
    elif r.user_info_tag == CONFIRMED_SERVICE_ERROR:
        from optoread.dlms.xdlms import service_errors as xdlms_errors

        r.service_error = xdlms_errors.parse_confirmed_service_error(mv, r.user_info_off, r.user_info_end)
    return r


# ---------------------------------------------------------------- RLRQ / RLRE
def encode_rlrq(buf, off, reason=RELEASE_NORMAL, user_information=None):
    """RLRQ (0x62): release request; ``reason`` None omits it; ``user_information`` e.g. a
    (ciphered) InitiateRequest when the meter wants one."""
    return encode_release(buf, off, RLRQ, reason, user_information)


def parse_rlre(mv, off=0, end=None):
    """Decode an RLRE (0x63) into a :class:`.apdu.Release`; an empty RLRE (63 00) is valid."""
    return parse_release(mv, off, end, RLRE, "rlre")
