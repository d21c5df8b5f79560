"""Decode DLMS/COSEM captures (``.hex`` files) end to end: ``optoread parse FILE.hex [--json]``.

Line format (../shared/captures/README.md): one frame or bare APDU per line,
``C> `` (client to meter) or ``M> `` (meter to client) and the bytes as hex; a line
starting with 0x7E holds HDLC frame(s), any other line one bare APDU (no LLC).
Blank lines and lines starting with ``#`` are skipped.

The chain is the firmware's own codecs: ``hdlc_parse.parse_frame`` (non-strict, so a frame
with a bad FCS is reported *and* still decoded), ``hdlc.Reassembler`` and
``strip_llc`` for segments, ``xdlms_push.GbtAssembler`` for general-block-transfer,
``security.unwrap`` for ciphered APDUs (with ``key``/``auth_key``), ``xdlms``/``acse``
parsers for the APDUs, ``axdr.decode`` and ``push.flatten`` for the values.

:func:`parse_capture` returns a JSON-ready dict::

    {"frames": [...], "apdus": [...], "values": [...], "errors": [...], "warnings": [...]}

``errors`` lists what is wrong with the capture (bad HCS/FCS, malformed frames or APDUs,
failed decryption); ``warnings`` what could not be finished but is not wrong (a ciphered
APDU without ``--key``, a segmented or block transfer that the capture does not complete,
a vendor quirk that was repaired). Values: ints stay ints, octet-strings that are text
become text (trailing NULs dropped), other octet-strings ``"0x"`` + hex, 12-octet
date-times (tagged or as octet-string) ISO text from ``axdr.DateTime.iso``; items with
a scaler_unit keep ``value`` raw and add ``scaler``, ``unit`` and ``scaled``.

This module avoids CPython-only features so the portable capture tests run the same
code on the MicroPython unix port.
"""

import binascii
import json

from optoread import obis as obislib
from optoread import units
from optoread.dlms import push, security
from optoread.dlms.acse import apdu as acse
from optoread.dlms.acse import names as acse_names
from optoread.dlms.acse import server as acse_server
from optoread.dlms.axdr import decode as axdr
from optoread.dlms.axdr import types as axdr_types
from optoread.dlms.hdlc import frame as hdlc
from optoread.dlms.hdlc import parse as hdlc_parse
from optoread.dlms.xdlms import apdu as xdlms
from optoread.dlms.xdlms import get as xdlms_get
from optoread.dlms.xdlms import notification as xdlms_push
from optoread.dlms.xdlms import server as xdlms_server
from optoread.dlms.xdlms import service_errors as xdlms_errors
from optoread.errors import ApduError, OptoreadError

_CAPACITY = 16384  # reassembly buffers (segments, GBT, GET blocks)

_TAG_NAMES = {
    0x01: "initiate-request", 0x08: "initiate-response", 0x0E: "confirmed-service-error",
    0x0F: "data-notification", 0x60: "aarq", 0x61: "aare", 0x62: "rlrq", 0x63: "rlre",
    0xC0: "get-request", 0xC1: "set-request", 0xC2: "event-notification-request",
    0xC3: "action-request", 0xC4: "get-response", 0xC5: "set-response", 0xC7: "action-response",
    0xD8: "exception-response", 0xD9: "access-request", 0xDA: "access-response",
    0xE0: "general-block-transfer", 0xDB: "general-glo-ciphering", 0xDC: "general-ded-ciphering",
    0xDD: "general-ciphering", 0xDF: "general-signing", 0x05: "read-request",
    0x06: "write-request", 0x0C: "read-response", 0x0D: "write-response",
    0x16: "unconfirmed-write-request", 0x18: "information-report-request",
}
_GET_KINDS = {1: "normal", 2: "with-datablock", 3: "with-list"}
_GET_REQ_KINDS = {1: "normal", 2: "next", 3: "with-list"}
_CONTEXTS = ("?", "logical-name", "short-name", "logical-name-ciphered", "short-name-ciphered")


def tag_name(tag):
    """Name of an APDU tag (``0x0F`` -> ``"data-notification"``, ``0xCC`` -> ``"glo-get-response"``)."""
    n = _TAG_NAMES.get(tag)
    if n is not None:
        return n
    if xdlms.is_ciphered(tag):
        plain = xdlms.plain_tag(tag)
        pre = "ded-" if xdlms.is_dedicated(tag) else "glo-"
        return pre + _TAG_NAMES.get(plain, "0x%02x" % (plain or 0))
    return "0x%02x" % tag


def hexs(b):
    """Lower-case hex of a bytes-like object, no separators."""
    return binascii.hexlify(bytes(b)).decode()


def _printable(b):
    for c in b:
        if c < 0x20 or c > 0x7E:
            return False
    return True


def _plausible_datetime(b):
    # 12 octets that read as a COSEM date-time (wildcards allowed): year, month, day, time.
    y = (b[0] << 8) | b[1]
    if not (1970 <= y <= 2200 or y == 0xFFFF):
        return False
    if not (1 <= b[2] <= 12 or b[2] >= 0xFD) or not (1 <= b[3] <= 31 or b[3] >= 0xFD):
        return False
    if not (b[4] <= 7 or b[4] == 0xFF) or not (b[5] < 24 or b[5] == 0xFF):
        return False
    if not (b[6] < 60 or b[6] == 0xFF) or not (b[7] < 60 or b[7] == 0xFF):
        return False
    return b[8] < 100 or b[8] == 0xFF


def render(v):
    """JSON-ready form of a decoded A-XDR value (see the module docstring)."""
    if v is None or isinstance(v, (bool, int, float)):
        return v
    if isinstance(v, (bytes, bytearray, memoryview)):
        b = bytes(v)
        if len(b) == 12 and _plausible_datetime(b):
            return axdr.DateTime.from_bytes(b).iso()
        t = b
        while t and t[-1] == 0:
            t = t[:-1]
        if t and _printable(t):
            return t.decode()
        return "0x" + hexs(b)
    if isinstance(v, str):
        while v and v[-1] == "\x00":
            v = v[:-1]
        return v
    if isinstance(v, (list, tuple)):
        return [render(x) for x in v]
    if isinstance(v, (axdr.DateTime, axdr_types.Date, axdr_types.Time)):
        return v.iso()
    if v is axdr.DONT_CARE_VALUE:
        return None
    return str(v)


def obis_text(code):
    """Dotted A.B.C.D.E.F text of a 6-byte code (None stays None)."""
    return None if code is None else obislib.format(code)


def _obis_name(code):
    try:
        return obislib.name(code)
    except OptoreadError:
        return None


def _is_object_list(v):
    if not isinstance(v, list):
        return False
    for d in v:
        if not (isinstance(d, tuple) and len(d) == 4 and push.is_obis(d[1])):
            return False
    return True


def value_dict(item, message, apdu_index):
    """The JSON ``values`` entry of a :class:`optoread.push.Item`."""
    v = item.value
    if item.class_id == 40 and item.attribute == 2 and _is_object_list(v):
        # A push setup's push_object_list: name the capture objects instead of raw tuples.
        rv = [{"class_id": d[0], "obis": obis_text(d[1]), "attribute": d[2], "data_index": d[3]} for d in v]
    else:
        rv = render(v)
    d = {"obis": obis_text(item.obis), "value": rv, "unit": None, "scaler": item.scaler,
         "position": item.position, "message": message, "apdu": apdu_index}
    if item.obis is not None:
        d["name"] = _obis_name(item.obis)
    if item.unit is not None:
        d["unit"] = units.unit_name(item.unit)
        d["unit_code"] = item.unit
    if item.scaler is not None and isinstance(v, (int, float)) and not isinstance(v, bool):
        d["scaled"] = units.apply_scaler(v, item.scaler)
    if item.class_id is not None:
        d["class_id"] = item.class_id
    if item.attribute is not None:
        d["attribute"] = item.attribute
    if item.data_index is not None:
        d["data_index"] = item.data_index
    return d


# ---------------------------------------------------------------- input lines


def parse_lines(text):
    """``(records, errors)``: records are ``(dir, bytes, line_no)`` of the ``.hex`` line format."""
    records = []
    errors = []
    n = 0
    for line in text.split("\n"):
        n += 1
        s = line.strip()
        if not s or s[0] == "#":
            continue
        d = s[:2]
        if d not in ("C>", "M>"):
            errors.append("line %d: does not start with 'C>' or 'M>'" % n)
            continue
        h = "".join(s[2:].split())
        try:
            data = binascii.unhexlify(h)
        except (ValueError, TypeError):
            errors.append("line %d: not hex bytes" % n)
            continue
        if not data:
            errors.append("line %d: no bytes" % n)
            continue
        records.append((d, data, n))
    return records, errors


# ---------------------------------------------------------------- the decoder


class _Dir:
    # Per-direction reassembly state (segments, GBT, GET blocks).
    def __init__(self):
        self.reasm = hdlc.Reassembler(_CAPACITY)
        self.seg_frames = []
        self.gbt = xdlms_push.GbtAssembler(bytearray(_CAPACITY))
        self.gbt_apdus = []
        self.blocks = {}  # invoke id -> [expected block, bytearray, broken, first apdu]


class Decoder:
    """Feeds records through the firmware codecs and collects the JSON result.

    ``feed(direction, data, line=None)`` takes one line's bytes; ``finish()`` reports
    unfinished transfers and returns the result dict. ``feed_frame`` and ``feed_apdu``
    are the two entry points below a line (used by the byte-wise receiver test).
    """

    def __init__(self, key=None, auth_key=None):
        self.ek = _key(key, "encryption key")
        self.ak = _key(auth_key, "authentication key")
        self.frames = []
        self.apdus = []
        self.values = []
        self.errors = []
        self.warnings = []
        self.messages = 0
        self._dirs = {}
        self._requests = {}  # invoke id -> list of (class_id, obis, attr)

    def _dir(self, d):
        s = self._dirs.get(d)
        if s is None:
            s = self._dirs[d] = _Dir()
        return s

    # ---- lines and frames

    def feed(self, direction, data, line=None):
        """Decode one line: HDLC frame(s) when it starts with 0x7E, else one bare APDU."""
        mv = memoryview(data)
        if mv[0] != hdlc.FLAG:
            self.feed_apdu(direction, mv, {"line": line})
            return
        end = len(mv)
        p = 0
        n = 0
        while True:
            while p + 1 < end and mv[p + 1] == hdlc.FLAG:  # 7E 7E between frames
                p += 1
            if p + 1 >= end:
                if not n:
                    self.errors.append("line %s: flag bytes but no frame" % line)
                return
            n += 1
            try:
                f = hdlc_parse.parse_frame(mv, p, end, strict=False)
            except OptoreadError as e:
                self.errors.append("line %s: %s" % (line, e))
                return
            self.feed_frame(direction, f, line)
            p = f.end - 1  # the closing flag may open the next frame

    def feed_frame(self, direction, f, line=None):
        """Record one :class:`optoread.hdlc.Frame` and pass its information field on."""
        idx = len(self.frames) + 1
        b = f.buf
        a = f.start + 2
        fd = {
            "index": idx, "line": line, "dir": direction, "type": f.kind or "?",
            "format": "0x%x" % (b[f.start] >> 4), "segmented": f.segmented, "length": f.length,
            "dst": hexs(b[a:a + f.dst_size]), "src": hexs(b[a + f.dst_size:a + f.dst_size + f.src_size]),
            "dst_address": {"upper": f.dst_upper, "lower": f.dst_lower},
            "src_address": {"upper": f.src_upper, "lower": f.src_lower},
            "control": "0x%02x" % f.control, "ns": f.ns, "nr": f.nr, "pf": f.pf,
            "hcs_ok": f.hcs_ok, "fcs_ok": f.fcs_ok, "info_len": f.info_len,
        }
        self.frames.append(fd)
        where = "frame %d (line %s)" % (idx, line)
        if f.hcs_ok is False:
            self.errors.append("%s: HCS mismatch (header check sequence); header fields unreliable" % where)
        if not f.fcs_ok:
            e = f.start + f.length - 2
            got = b[e] | (b[e + 1] << 8)
            calc = hdlc.crc16_x25(b, f.start, e)
            self.errors.append("%s: FCS mismatch: computed 0x%04X, frame has 0x%04X; decoded anyway"
                               % (where, calc, got))
        info = f.info()
        if f.kind in ("SNRM", "UA"):
            if f.info_len:
                try:
                    p = hdlc.parse_params(info, 0, f.info_len)
                    fd["params"] = {"max_info_field_length_transmit": p[0],
                                    "max_info_field_length_receive": p[1],
                                    "window_size_transmit": p[2], "window_size_receive": p[3]}
                except OptoreadError as e:
                    self.errors.append("%s: %s" % (where, e))
            return
        if f.kind == "FRMR":
            fd["frmr"] = hdlc_parse.describe_frmr(info, 0, f.info_len)
            fd["info_hex"] = hexs(info)
            return
        if f.kind not in ("I", "UI") or not f.info_len:
            return
        st = self._dir(direction)
        try:
            done = st.reasm.add(f)
        except OptoreadError as e:
            self.errors.append("%s: %s" % (where, e))
            st.seg_frames = []
            return
        st.seg_frames.append(idx)
        if not done:
            return
        frames = st.seg_frames
        st.seg_frames = []
        data = st.reasm.data()
        off = 0
        llc = None
        if len(data) >= 3 and data[0] == 0xE6 and data[2] == 0 and data[1] in (0xE6, 0xE7):
            llc = hexs(data[0:3])
            off = 3
        if off >= len(data):
            return
        src = {"frames": frames, "llc": llc}
        # Copy out: the reassembler's buffer is reused by the next segment.
        self.feed_apdu(direction, memoryview(bytes(data[off:])), src)

    # ---- APDUs

    def _apdu_entry(self, direction, mv, source):
        e = {"index": len(self.apdus) + 1, "dir": direction, "tag": tag_name(mv[0]), "length": len(mv),
             "source": source, "fields": {}}
        self.apdus.append(e)
        return e

    def feed_apdu(self, direction, mv, source):
        """Decode one complete APDU (LLC removed) and everything it carries."""
        e = self._apdu_entry(direction, mv, source)
        where = "apdu %d (%s)" % (e["index"], e["tag"])
        try:
            self._dispatch(direction, mv, e)
        except OptoreadError as ex:
            e["error"] = str(ex)
            self.errors.append("%s: %s" % (where, ex))

    def _dispatch(self, direction, mv, e):
        tag = mv[0]
        f = e["fields"]
        if tag == xdlms.GENERAL_BLOCK_TRANSFER:
            self._gbt(direction, mv, e)
        elif xdlms.is_ciphered(tag):
            self._ciphered(direction, mv, e)
        elif tag == xdlms.DATA_NOTIFICATION:
            self._notification(mv, e)
        elif tag == xdlms.GET_REQUEST:
            self._get_request(mv, f)
        elif tag == xdlms.GET_RESPONSE:
            self._get_response(direction, mv, e)
        elif tag == xdlms.AARQ:
            r = acse_server.parse_aarq(mv)
            self._association(r, f, "calling")
            if r.initiate is not None:
                i = r.initiate
                f["initiate_request"] = {
                    "dedicated_key": None if i.dedicated_key is None else hexs(i.dedicated_key),
                    "response_allowed": i.response_allowed, "proposed_quality_of_service": i.qos,
                    "proposed_dlms_version": i.dlms_version, "proposed_conformance": "%06x" % i.conformance,
                    "proposed_conformance_names": acse_names.conformance_names(i.conformance),
                    "client_max_receive_pdu_size": i.max_pdu}
        elif tag == xdlms.AARE:
            r = acse.parse_aare(mv)
            f["result"] = r.result
            f["result_name"] = r.result_name
            f["diagnostic_source"] = ("acse-service-user" if r.diagnostic_source == acse.SOURCE_USER
                                      else "acse-service-provider" if r.diagnostic_source else None)
            f["diagnostic"] = r.diagnostic
            f["diagnostic_name"] = r.diagnostic_name
            self._association(r, f, "responding")
            if r.initiate is not None:
                i = r.initiate
                f["initiate_response"] = {
                    "negotiated_quality_of_service": i.qos, "negotiated_dlms_version": i.dlms_version,
                    "negotiated_conformance": "%06x" % i.conformance,
                    "negotiated_conformance_names": acse_names.conformance_names(i.conformance),
                    "server_max_receive_pdu_size": i.max_pdu, "vaa_name": "0x%04x" % i.vaa_name}
            if r.service_error is not None:
                f["confirmed_service_error"] = xdlms_errors.confirmed_service_error_text(*r.service_error)
        elif tag == xdlms.RLRQ or tag == xdlms.RLRE:
            r = acse_server.parse_rlrq(mv) if tag == xdlms.RLRQ else acse.parse_rlre(mv)
            f["reason"] = r.reason
        elif tag == xdlms.EXCEPTION_RESPONSE:
            s, v, ic = xdlms_errors.parse_exception_response(mv)
            f["state_error"] = s
            f["service_error"] = v
            f["invocation_counter"] = ic
        elif tag == xdlms.CONFIRMED_SERVICE_ERROR:
            cse = xdlms_errors.parse_confirmed_service_error(mv)
            f["error"] = xdlms_errors.confirmed_service_error_text(*cse)
        else:
            f["hex"] = hexs(mv)
            self.warnings.append("apdu %d: %s is not decoded further" % (e["index"], e["tag"]))

    def _association(self, r, f, who):
        f["application_context_name"] = (_CONTEXTS[r.context_id] if r.context_id is not None
                                         and 0 < r.context_id < 5 else r.context_id)
        f[who + "_ap_title"] = None if r.ap_title is None else hexs(r.ap_title)
        f["acse_requirements_authentication"] = r.acse_requirements
        f["mechanism_name"] = (None if r.mechanism is None else acse_names.MECHANISM_NAMES[r.mechanism]
                               if 0 <= r.mechanism < len(acse_names.MECHANISM_NAMES) else r.mechanism)
        if r.auth_value is not None:
            av = bytes(r.auth_value)
            f[who + "_authentication_value"] = av.decode() if _printable(av) else "0x" + hexs(av)
        f["user_information"] = None if r.user_info_tag is None else tag_name(r.user_info_tag)

    def _gbt(self, direction, mv, e):
        g = xdlms_push.parse_gbt(mv)
        e["fields"] = {"last": g.last, "streaming": g.streaming, "window": g.window, "block_number": g.block,
                       "block_number_ack": g.ack, "block_data_len": g.data_end - g.data_off}
        st = self._dir(direction)
        try:
            done = st.gbt.feed(mv)
        except OptoreadError:
            st.gbt_apdus = []
            raise
        st.gbt_apdus.append(e["index"])
        if done:
            blocks = st.gbt_apdus
            st.gbt_apdus = []
            self.feed_apdu(direction, memoryview(bytes(st.gbt.apdu())), {"gbt_apdus": blocks})

    def _ciphered(self, direction, mv, e):
        f = e["fields"]
        hdr, content = cipher_header(mv)
        f.update(hdr)
        if content is None:
            f["decrypted"] = False
            self.warnings.append("apdu %d: %s is not supported" % (e["index"], e["tag"]))
            return
        if self.ek is None:
            f["decrypted"] = False
            self.warnings.append("apdu %d: %s not decrypted (no --key given)" % (e["index"], e["tag"]))
            return
        sc = f["security_control"]
        if sc & security.SC_AUTH and self.ak is None:
            plain = _decrypt_unverified(mv, f, content, self.ek)
            f["tag_verified"] = False
            self.warnings.append("apdu %d: decrypted without checking the GCM tag (no --auth-key given)"
                                 % e["index"])
        else:
            plain, info = security.unwrap(bytes(mv), self.ek, self.ak)
            f["tag_verified"] = bool(info["authenticated"])
        f["decrypted"] = True
        if plain:
            self.feed_apdu(direction, memoryview(plain), {"deciphered_from": e["index"]})

    def _notification(self, mv, e):
        inv, dt, boff, bend = xdlms_push.parse_data_notification(mv)
        iid, self_desc, boe, confirmed, high = xdlms.long_invoke_id(inv)
        f = e["fields"]
        f["long_invoke_id_and_priority"] = "%08x" % inv
        f["invoke_id"] = iid
        f["confirmed"] = confirmed
        f["high_priority"] = high
        f["date_time"] = None if dt is None else dt.iso()
        if dt is not None:
            f["clock_status"] = dt.status
        body = self._decode_body(mv, boff, bend, e)
        if body is None:
            return
        self._add_items(push.flatten(body), e)

    def _decode_body(self, mv, off, end, e):
        # Strict A-XDR first; on failure try the Landis+Gyr "06 09" repair (module push).
        try:
            body, nxt = axdr.decode(mv, off, end, 16)
        except OptoreadError as first:
            buf = bytearray(mv[off:end])
            fixed = push.repair_swapped_obis_tags(buf)
            if not fixed:
                raise
            try:
                body, nxt = axdr.decode(buf, 0, len(buf), 16)
            except OptoreadError:
                raise first from None
            self.warnings.append(
                "apdu %d: strict A-XDR decoding failed (%s); repaired %d OBIS tag(s) sent as 06 09 instead "
                "of 09 06 (Landis+Gyr firmware quirk) at body offset(s) %s" % (
                    e["index"], first, len(fixed), ", ".join(str(x) for x in fixed)))
            e["fields"]["repaired_obis_tags"] = fixed
            off, end = 0, len(buf)
        if nxt != end:
            self.warnings.append("apdu %d: %d byte(s) after the body" % (e["index"], end - nxt))
        return body

    def _add_items(self, items, e):
        if not items:
            return
        self.messages += 1
        for it in items:
            self.values.append(value_dict(it, self.messages, e["index"]))

    def _get_request(self, mv, f):
        r = xdlms_server.parse_get_request(mv)
        iid = r.invoke & 0x0F
        f["kind"] = _GET_REQ_KINDS.get(r.kind, r.kind)
        f["invoke_id_and_priority"] = "0x%02x" % r.invoke
        f["invoke_id"] = iid
        if r.block is not None:
            f["block_number"] = r.block
        items = []
        for cls, code, attr, sel, p_off, p_end in r.items:
            d = {"class_id": cls, "instance": obis_text(code), "attribute": attr,
                 "access_selector": sel or None}
            if sel:
                d["access_parameters"] = render(axdr.decode(mv, p_off, p_end)[0])
            items.append(d)
        f["items"] = items
        if r.items:
            self._requests[iid] = [(c, o, a) for c, o, a, _s, _p, _q in r.items]

    def _get_response(self, direction, mv, e):
        r = xdlms_get.parse_get_response(mv, strict=False)
        f = e["fields"]
        iid = r.invoke & 0x0F
        f["kind"] = _GET_KINDS.get(r.kind, r.kind)
        f["invoke_id_and_priority"] = "0x%02x" % r.invoke
        f["invoke_id"] = iid
        req = self._requests.get(iid)
        if r.kind == xdlms.WITH_DATABLOCK:
            f["last_block"] = r.last
            f["block_number"] = r.block
            if r.dar is not None:
                f["data_access_result"] = xdlms.dar_name(r.dar)
                self.errors.append("apdu %d: block transfer refused: %s"
                                   % (e["index"], xdlms.dar_name(r.dar)))
                self._dir(direction).blocks.pop(iid, None)
                return
            f["raw_data_len"] = r.data_end - r.data_off
            self._get_block(direction, iid, r, e, req)
            return
        if r.kind == xdlms.NORMAL:
            if r.dar is not None:
                f["data_access_result"] = xdlms.dar_name(r.dar)
                self._requests.pop(iid, None)
                return
            value = self._decode_body(mv, r.data_off, r.data_end, e)
            self._get_value(value, req[0] if req else None, e)
            self._requests.pop(iid, None)
            return
        results = []
        for k in range(len(r.items)):
            it = r.items[k]
            desc = req[k] if req and k < len(req) else None
            if it.dar is not None:
                results.append({"data_access_result": xdlms.dar_name(it.dar)})
                continue
            results.append({"data": True})
            self._get_value(axdr.decode(mv, it.off, it.end, 16)[0], desc, e)
        f["results"] = results
        self._requests.pop(iid, None)

    def _get_value(self, value, desc, e):
        if desc is None:
            self.warnings.append("apdu %d: no GET request in the capture names this value" % e["index"])
            self._add_items([push.Item(None, value, 1)], e)
            return
        self._add_items(push.from_get(value, desc[0], desc[1], desc[2]), e)

    def _get_block(self, direction, iid, r, e, req):
        blocks = self._dir(direction).blocks
        s = blocks.get(iid)
        if s is None:
            s = blocks[iid] = [1, bytearray(), False, e["index"]]
        if r.block != s[0] and not s[2]:
            self.warnings.append(
                "apdu %d: GET block %d follows block %d: blocks %d..%d are not in the capture; %s" % (
                    e["index"], r.block, s[0] - 1, s[0], r.block - 1, _partial(s[1])))
            s[2] = True
        s[0] = r.block + 1
        if not s[2]:
            if len(s[1]) + (r.data_end - r.data_off) > _CAPACITY * 16:
                raise ApduError("GET block data too large", "raw-data", r.data_off)
            s[1].extend(r.mv[r.data_off:r.data_end])
        if r.last:
            del blocks[iid]
            self._requests.pop(iid, None)
            if s[2]:
                return
            e["fields"]["reassembled_len"] = len(s[1])
            value = self._decode_body(memoryview(bytes(s[1])), 0, len(s[1]), e)
            self._get_value(value, req[0] if req else None, e)

    def finish(self):
        """Report transfers the capture leaves unfinished; return the result dict."""
        for d in sorted(self._dirs):
            st = self._dirs[d]
            if st.seg_frames:
                self.warnings.append("%s: segmented transfer not completed (frames %s; the final segment "
                                     "is not in the capture)" % (d, ", ".join(str(i) for i in st.seg_frames)))
            if st.gbt_apdus:
                self.warnings.append("%s: general-block-transfer not completed (apdus %s)"
                                     % (d, ", ".join(str(i) for i in st.gbt_apdus)))
            for iid in st.blocks:
                s = st.blocks[iid]
                if not s[2]:
                    self.warnings.append("%s: GET block transfer (invoke id %d) has no last block; %s"
                                         % (d, iid, _partial(s[1])))
        return {"frames": self.frames, "apdus": self.apdus, "values": self.values, "errors": self.errors,
                "warnings": self.warnings}


def _partial(data):
    # How far the contiguous raw data decodes as an array (profile buffers), for the warnings.
    count = [0]

    def sink(_v):
        count[0] += 1

    s = axdr.ArrayStream(4096, 16)
    try:
        s.feed(data, sink)
    except OptoreadError as e:
        return "the blocks present decode to %d complete array element(s), then: %s" % (count[0], e)
    return "the blocks present decode to %d complete array element(s) of %s" % (count[0], s.expected)


def _key(text, what):
    if text is None:
        return None
    if isinstance(text, (bytes, bytearray)):
        k = bytes(text)
    else:
        try:
            k = binascii.unhexlify("".join(str(text).split()))
        except (ValueError, TypeError):
            raise security.SecurityError("%s is not hex" % what, "key") from None
    if len(k) != security.KEY_LEN:
        raise security.SecurityError("%s must be 16 bytes, got %d" % (what, len(k)), "key")
    return k


def cipher_header(mv):
    """``(fields, (off, end))``: header fields of a ciphered APDU, readable without a key
    (system title for general ciphering, security control, invocation counter, ciphered
    length), and where the ciphered content (SC onwards) lies."""
    end = len(mv)
    tag = mv[0]
    p = 1
    f = {}
    if tag in (xdlms.GENERAL_GLO_CIPHERING, xdlms.GENERAL_DED_CIPHERING):
        n, p = xdlms.read_length(mv, p, end, "system-title")
        xdlms.need(mv, p, end, n, "system-title")
        st = bytes(mv[p:p + n])
        f["system_title"] = hexs(st)
        if st[:3] and _printable(st[:3]):
            f["system_title_maker"] = st[:3].decode()
        p += n
    elif tag in (xdlms.GENERAL_CIPHERING, xdlms.GENERAL_SIGNING):
        return f, None
    n, p = xdlms.read_length(mv, p, end, "ciphered-content")
    xdlms.need(mv, p, end, n, "ciphered-content")
    if n < 5:
        raise security.SecurityError("ciphered content shorter than its header", "security header", p)
    sc = mv[p]
    f["security_control"] = sc
    f["authenticated"] = bool(sc & security.SC_AUTH)
    f["encrypted"] = bool(sc & security.SC_ENC)
    f["invocation_counter"] = (mv[p + 1] << 24) | (mv[p + 2] << 16) | (mv[p + 3] << 8) | mv[p + 4]
    f["ciphered_len"] = n
    return f, (p, p + n)


def _decrypt_unverified(mv, f, content, ek):
    # Authenticated + encrypted content without the authentication key: counter mode only.
    if content is None or "system_title" not in f:
        raise security.SecurityError("no system title in this APDU", "system title")
    p, end = content
    if not f["encrypted"]:
        return bytes(mv[p + 5:end - security.TAG_LEN])
    n = end - p - 5 - security.TAG_LEN
    if n < 0:
        raise security.SecurityError("truncated: no room for the tag", "tag", p)
    iv = bytearray(12)
    iv[0:8] = binascii.unhexlify(f["system_title"])
    ic = f["invocation_counter"]
    iv[8:12] = bytes(((ic >> 24) & 0xFF, (ic >> 16) & 0xFF, (ic >> 8) & 0xFF, ic & 0xFF))
    out = bytearray(n)
    security.Gcm(ek).ctr_into(iv, mv, p + 5, n, out, 0)
    return bytes(out)


def decode_records(records, key=None, auth_key=None):
    """Decode ``(dir, bytes, line)`` records; returns the result dict (see the module docstring)."""
    dec = Decoder(key, auth_key)
    for d, data, line in records:
        dec.feed(d, data, line)
    return dec.finish()


def parse_capture(text, key=None, auth_key=None):
    """Decode the text of a ``.hex`` capture; ``key``/``auth_key`` as hex strings or None."""
    records, errors = parse_lines(text)
    try:
        result = decode_records(records, key, auth_key)
    except OptoreadError as e:  # only a malformed key gets here
        result = {"frames": [], "apdus": [], "values": [], "errors": [], "warnings": []}
        result["errors"].append(str(e))
    result["errors"] = errors + result["errors"]
    return result


# ---------------------------------------------------------------- text output


def _fmt_value(v):
    if isinstance(v, str):
        return v
    return json.dumps(v)


def print_text(result, out):
    """Human-readable listing of a :func:`parse_capture` result."""
    for f in result["frames"]:
        checks = "FCS %s" % ("ok" if f["fcs_ok"] else "BAD")
        if f["hcs_ok"] is not None:
            checks = "HCS %s, %s" % ("ok" if f["hcs_ok"] else "BAD", checks)
        out.write("frame %d %s %-4s len=%d dst=%s src=%s ctrl=%s info=%d%s  %s\n" % (
            f["index"], f["dir"], f["type"], f["length"], f["dst"], f["src"],
            f["control"], f["info_len"], " segmented" if f["segmented"] else "", checks))
        if "params" in f:
            out.write("    %s\n" % json.dumps(f["params"]))
        if "frmr" in f:
            out.write("    %s\n" % f["frmr"])
    for a in result["apdus"]:
        fields = dict(a["fields"])
        out.write("apdu %d %s %s (%d bytes) %s\n" % (a["index"], a["dir"], a["tag"], a["length"],
                                                    json.dumps(a["source"])))
        for k in sorted(fields):
            out.write("    %s: %s\n" % (k, _fmt_value(fields[k])))
    for v in result["values"]:
        label = v["obis"] if v["obis"] is not None else "#%d" % v["position"]
        shown = v.get("scaled", v["value"])
        unit = (" " + v["unit"]) if v.get("unit") else ""
        name = v.get("name") or ""
        extra = "  (raw %s, scaler %d)" % (v["value"], v["scaler"]) if v.get("scaler") else ""
        out.write("%-18s %s%s%s  %s\n" % (label, _fmt_value(shown), unit, extra, name))
    for w in result.get("warnings", []):
        out.write("warning: %s\n" % w)
    for e in result["errors"]:
        out.write("error: %s\n" % e)
