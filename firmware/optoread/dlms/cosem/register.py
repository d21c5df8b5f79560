"""COSEM Data (1), Register (3), Extended Register (4) and Demand Register (5). Sans-IO.

:func:`read_data`, :func:`read_register` and :func:`read_registers` give
:class:`.base.Value` (raw x 10^scaler in a DLMS unit). scaler_unit is read once per
OBIS and kept in a small dict the caller may pass (``cache``). A module of its own because
profile readings (IS 15959 plans) never read a register: only the register steps load it (RAM).
"""

from optoread.compat import const
from optoread.dlms.cosem.base import (
    CLASS_DATA,
    CLASS_REGISTER,
    REGISTER_ATTRS,
    CosemError,
    Value,
    get_attributes,
    obis6,
    parse_scaler_unit,
    to_datetime,
)

_ATTR_VALUE = const(2)


def _register_attrs(class_id):
    a = REGISTER_ATTRS.get(class_id)
    if a is None:
        raise CosemError("class %r has no scaler_unit" % (class_id,), "class_id")
    return a


def read_data(sess, obis):
    """Attribute 2 (value) of a Data object (class 1), as decoded."""
    return sess.get(CLASS_DATA, obis6(obis), _ATTR_VALUE)


def _register_requests(class_id, code, need_su, value_attr):
    # The (class, obis, attr) requests for one register, in the order _register_value reads them.
    su_attr, st_attr, ct_attr = _register_attrs(class_id)
    reqs = [(class_id, code, value_attr)]
    if need_su:
        reqs.append((class_id, code, su_attr))
    if st_attr:
        reqs.append((class_id, code, st_attr))
        reqs.append((class_id, code, ct_attr))
    return reqs


def _register_value(class_id, code, answers, need_su, cache):
    # answers: value, [scaler_unit], [status, capture_time]; the first failed one is returned.
    for a in answers:
        if isinstance(a, Exception):
            return a
    i = 1
    if need_su:
        su = parse_scaler_unit(answers[1], "scaler_unit")
        cache[code] = su
        i = 2
    else:
        su = cache[code]
    status = None
    ct = None
    if len(answers) > i:
        status = answers[i]
        ct = to_datetime(answers[i + 1])
    return Value(answers[0], su[0], su[1], status, ct, code, class_id)


def read_register(sess, obis, class_id=CLASS_REGISTER, cache=None, value_attr=_ATTR_VALUE):
    """A Register (3), Extended Register (4) or Demand Register (5) as a :class:`Value`.

    scaler_unit is read once per OBIS when ``cache`` (a dict the caller keeps: obis6 ->
    (scaler, unit)) is given. For class 5 ``value_attr`` picks current (2) or last (3)
    average. The DataAccessError of any attribute is raised.
    """
    code = obis6(obis)
    if cache is None:
        cache = {}
    reqs = _register_requests(class_id, code, code not in cache, value_attr)
    if len(reqs) == 1:
        answers = [sess.get(class_id, code, value_attr)]
    else:
        answers = get_attributes(sess, reqs)
    v = _register_value(class_id, code, answers, code not in cache, cache)
    if isinstance(v, Exception):
        raise v
    return v


def read_registers(sess, items, cache=None):
    """Several registers in as few round trips as the session allows (one ``get_many``, which
    the session splits to the negotiated PDU size).

    ``items``: OBIS codes (class 3) or ``(class_id, obis)`` pairs. Returns a list in the
    same order holding a :class:`Value` or the error (DataAccessError, CosemError) of that item.
    """
    if cache is None:
        cache = {}
    asked = {}  # OBIS codes whose scaler_unit this batch requests (an OBIS may repeat)
    plan = []
    reqs = []
    for it in items:
        if isinstance(it, tuple) and len(it) == 2:
            class_id, code = it[0], obis6(it[1])
        else:
            class_id, code = CLASS_REGISTER, obis6(it)
        need_su = code not in cache and code not in asked
        if need_su:
            asked[code] = True
        r = _register_requests(class_id, code, need_su, _ATTR_VALUE)
        plan.append((class_id, code, len(reqs), len(r), need_su))
        reqs.extend(r)
    answers = get_attributes(sess, reqs) if reqs else []
    out = []
    for class_id, code, start, n, need_su in plan:
        part = answers[start:start + n]
        if not need_su and code not in cache:
            # Its scaler_unit was requested for an earlier item of this batch, which failed.
            out.append(CosemError("scaler_unit of this object could not be read", "scaler_unit"))
            continue
        try:
            out.append(_register_value(class_id, code, part, need_su, cache))
        except CosemError as e:
            out.append(e)
    return out
