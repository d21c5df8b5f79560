"""Turn a decoded push (data-notification) or GET body into flat items. Sans-IO.

Input is the Python value :func:`optoread.axdr.decode` made of the body; output is a
list of :class:`Item` (OBIS or list position, value, scaler, unit). Layouts seen on real
meters (../shared/captures/hdlc-dlms):

* nested structures ``{obis, value}`` and ``{obis, value, {scaler, unit}}`` inside an
  array or structure (Aidon, Iskra AM550, Salzburg Kaifa);
* flat pairs ``obis, value, obis, value, ...`` in one array or structure (Kaifa
  "Swedish" list, Kamstrup, Landis+Gyr E450), possibly after leading bare values
  (a list id, a date-time);
* bare values without OBIS (Kaifa/Norwegian list 1/2): meaning by position only;
* the VSE/Swiss layout: element 0 is the push_object_list (array of
  ``{class_id, obis, attribute, data_index}``, capture object 0 being that list
  itself), then one value per capture object;
* a GET response: one value, named by the request's descriptor (:func:`from_get`).

An OBIS code is recognised as a 6-byte octet-string that is not printable text (a
6-character id such as ``"160456"`` is a value, not a code). ``position`` is the
1-based ordinal of the item in the message, for all items.

:func:`repair_swapped_obis_tags` handles the Landis+Gyr ZMF100 firmware bug that sends
OBIS codes as ``06 09`` instead of ``09 06``; it is meant to be tried only after a strict
decode failed.
"""

from optoread.compat import const

_OBIS_LEN = const(6)
_PUSH_SETUP_CLASS = const(40)  # push setup: attribute 2 = push_object_list


class Item:
    """One flat value: ``obis`` (6 bytes or None), ``value`` (as decoded), ``scaler`` and
    ``unit`` (ints, or None when the frame carries no scaler_unit), ``position`` (1-based),
    ``class_id``/``attribute``/``data_index`` where the layout names them (VSE, GET)."""

    def __init__(self, obis, value, position, scaler=None, unit=None, class_id=None, attribute=None,
                 data_index=None):
        self.obis = obis
        self.value = value
        self.position = position
        self.scaler = scaler
        self.unit = unit
        self.class_id = class_id
        self.attribute = attribute
        self.data_index = data_index

    def __repr__(self):
        return "Item(%r, %r, pos=%d, scaler=%r, unit=%r)" % (
            self.obis, self.value, self.position, self.scaler, self.unit)


def _printable(b):
    for c in b:
        if c < 0x20 or c > 0x7E:
            return False
    return True


def is_obis(v):
    """True when ``v`` looks like an OBIS code: 6 octets (bytes) that are not printable text."""
    return isinstance(v, (bytes, bytearray)) and len(v) == _OBIS_LEN and not _printable(v)


def _is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


def scaler_unit(v):
    """``(scaler, unit)`` when ``v`` is a scaler_unit structure ``{integer, enum}``, else None."""
    if isinstance(v, tuple) and len(v) == 2 and _is_int(v[0]) and _is_int(v[1]):
        if -128 <= v[0] <= 127 and 0 <= v[1] <= 255:
            return v[0], v[1]
    return None


def _obis_struct(v):
    # {obis, value} or {obis, value, {scaler, unit}} -> (obis, value, scaler, unit), else None
    if not isinstance(v, tuple) or not 2 <= len(v) <= 3 or not is_obis(v[0]):
        return None
    if len(v) == 2:
        return v[0], v[1], None, None
    su = scaler_unit(v[2])
    if su is None:
        return None
    return v[0], v[1], su[0], su[1]


def vse_objects(body):
    """The push_object_list of a VSE-layout body as ``[(class_id, obis, attribute, data_index)]``,
    or None when ``body`` does not have that layout (first element an array of such
    descriptors, one body element per descriptor)."""
    if not isinstance(body, (tuple, list)) or not body or not isinstance(body[0], list):
        return None
    objs = body[0]
    if len(objs) != len(body):
        return None
    for d in objs:
        if not (isinstance(d, tuple) and len(d) == 4 and _is_int(d[0]) and is_obis(d[1])
                and _is_int(d[2]) and _is_int(d[3])):
            return None
    return objs


def flatten(body):
    """Flat :class:`Item` list of a push body (any layout in the module docstring)."""
    objs = vse_objects(body)
    if objs is not None:
        out = []
        for i in range(len(objs)):
            cls, code, attr, idx = objs[i]
            # Capture object 0 is the push_object_list itself (class 40, attribute 2).
            out.append(Item(code, body[i], i + 1, None, None, cls, attr, idx))
        return out
    if not isinstance(body, (tuple, list)):
        return [Item(None, body, 1)]
    out = []
    n = len(body)
    i = 0
    while i < n:
        e = body[i]
        pos = len(out) + 1
        s = _obis_struct(e)
        if s is not None:
            out.append(Item(s[0], s[1], pos, s[2], s[3]))
            i += 1
        elif is_obis(e) and i + 1 < n and not is_obis(body[i + 1]):
            out.append(Item(e, body[i + 1], pos))
            i += 2
        else:
            out.append(Item(None, e, pos))
            i += 1
    return out


def from_get(value, class_id, obis, attribute):
    """Items of a GET response ``value`` for the request's descriptor.

    A register's scaler_unit (attribute 3) is given as its own item; the caller pairs it
    with the value of attribute 2 of the same OBIS when both were read.
    """
    return [Item(obis, value, 1, None, None, class_id, attribute)]


def repair_swapped_obis_tags(buf, off=0, end=None):
    """Rewrite ``02 0n 06 09`` (structure start, then "06 09") as ``02 0n 09 06`` in place.

    Landis+Gyr ZMF100 firmware sends some OBIS codes of ``{obis, value, ...}`` structures
    with the tag and length swapped (esphome-libs/dlms_parser calls it a firmware bug).
    ``buf`` must be a bytearray; returns the offsets of the repaired tags (empty when none).
    Try it only after a strict decode failed: a real double-long-unsigned starting with
    0x09 as a structure's first element would be rewritten too.
    """
    if end is None or end > len(buf):
        end = len(buf)
    fixed = []
    i = off
    while i + 4 + _OBIS_LEN <= end:
        if buf[i] == 0x02 and 2 <= buf[i + 1] <= 3 and buf[i + 2] == 0x06 and buf[i + 3] == 0x09:
            buf[i + 2] = 0x09
            buf[i + 3] = 0x06
            fixed.append(i + 2)
            i += 4 + _OBIS_LEN
        else:
            i += 1
    return fixed
