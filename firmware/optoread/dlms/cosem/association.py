"""COSEM Association LN (15) / SN (12): the object_list, streamed. Sans-IO.

A module of its own because only browsing readings (the generic plan) list the meter's
objects: only the browse step loads it (RAM).
"""

from optoread.compat import const
from optoread.dlms.cosem.base import CosemError, is_int, obis6

# Used by this module (and the tests and the simulator), not by a reading: kept off its heap.
CLASS_ASSOCIATION_SN = const(12)
CLASS_ASSOCIATION_LN = const(15)
ASSOCIATION_OBIS = b"\x00\x00\x28\x00\x00\xff"  # 0.0.40.0.0.255, the current association

_ATTR_OBJECT_LIST = const(2)


def _selectors(v, index):
    if v is None:
        return None
    if not isinstance(v, (list, tuple)):
        raise CosemError("access_selectors is not an array", "access_rights", index)
    for s in v:
        if not is_int(s):
            raise CosemError("access selector is not an integer", "access_rights", index)
    return tuple(v)


def parse_access_rights(v, index=None):
    """Normalised access_rights of an object_list element: ``(attributes, methods)`` with
    attributes = ``((attr_id, access_mode, selectors_or_None), ...)`` and methods =
    ``((method_id, access_mode), ...)`` (boolean modes of version 0 become 0/1)."""
    if not isinstance(v, (tuple, list)) or len(v) < 2:
        raise CosemError("access_rights is not a structure", "access_rights", index)
    attrs = []
    methods = []
    if not isinstance(v[0], (list, tuple)) or not isinstance(v[1], (list, tuple)):
        raise CosemError("access_rights lists are not arrays", "access_rights", index)
    for a in v[0]:
        if not isinstance(a, (tuple, list)) or len(a) < 2 or not is_int(a[0]) or not is_int(a[1]):
            raise CosemError("bad attribute_access_item", "access_rights", index)
        attrs.append((a[0], a[1], _selectors(a[2], index) if len(a) > 2 else None))
    for m in v[1]:
        if not isinstance(m, (tuple, list)) or len(m) < 2 or not is_int(m[0]):
            raise CosemError("bad method_access_item", "access_rights", index)
        mode = m[1]
        if isinstance(mode, bool):
            mode = 1 if mode else 0
        elif not is_int(mode):
            raise CosemError("bad method access_mode", "access_rights", index)
        methods.append((m[0], mode))
    return tuple(attrs), tuple(methods)


class _ObjectSink:
    def __init__(self, sink, ln):
        self.sink = sink
        self.ln = ln
        self.count = 0

    def __call__(self, e):
        i = self.count
        if not isinstance(e, (tuple, list)) or len(e) != 4:
            raise CosemError("object_list element is not a structure of four", "object_list", i)
        if self.ln:
            # {class_id, version, logical_name, access_rights}
            cls, ver, ln, ar = e
            ar = parse_access_rights(ar, i)
        else:
            # {base_name, class_id, version, logical_name}
            ar, cls, ver, ln = e
            if not is_int(ar):
                raise CosemError("base_name is not a number", "object_list", i)
            ar &= 0xFFFF  # sent as a signed long
        if not is_int(cls) or not is_int(ver) or not isinstance(ln, (bytes, bytearray)) or len(ln) != 6:
            raise CosemError("object_list element fields have wrong types", "object_list", i)
        self.count += 1
        self.sink((cls, ver, bytes(ln), ar))


def browse(sess, sink, ln=True, obis=ASSOCIATION_OBIS):
    """Stream the association's object_list: ``sink((class_id, version, obis6, x))`` per object,
    where ``x`` is the access rights (LN, :func:`parse_access_rights`) or the base name (SN,
    class 12). Returns the object count."""
    s = _ObjectSink(sink, ln)
    sess.get(CLASS_ASSOCIATION_LN if ln else CLASS_ASSOCIATION_SN, obis6(obis), _ATTR_OBJECT_LIST, sink=s)
    return s.count
