"""The client's side of ACSE for DLMS/COSEM associations (IEC 62056-5-3 / ISO 8650): AARQ out
(with the plain xDLMS InitiateRequest), AARE in, RLRQ out, RLRE in.

When the InitiateRequest/Response are ciphered (glo-/ded-initiate-*), the AARE exposes their
offsets for the security layer, which decrypts and hands the plain bytes to
:func:`.apdu.parse_initiate_response`. What both sides share (BER, the
association fields, conformance block, InitiateResponse, release) is in :mod:`.apdu`;
conventions as there.
"""

# Aare.initiate starts as None and takes an apdu.InitiateResponse (not imported here: RAM).
# pyright: reportAttributeAccessIssue=false

import struct

from optoread.compat import const
from optoread.dlms.acse.apdu import (
    DEFAULT_CONFORMANCE,
    RELEASE_NORMAL,
    SOURCE_USER,
    Association,
    auth_size,
    ber_int,
    components,
    encode_release,
    inner,
    mechanism_id,
    parse_initiate_response,
    parse_release,
    put_auth,
    put_conformance,
    put_context,
    put_tl,
    tlv,
    tlv_size,
)
from optoread.dlms.xdlms.apdu import (
    AARE,
    AARQ,
    CONFIRMED_SERVICE_ERROR,
    INITIATE_REQUEST,
    INITIATE_RESPONSE,
    RLRE,
    RLRQ,
    length_size,
    put,
    room,
    write_length,
)
from optoread.errors import ApduError

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
